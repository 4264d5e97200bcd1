//! Row cursors of the paged reads (inbox, task board, context): `<seq>:<id>` of the last row
//! returned, opaque to clients. Pure; the 4-segment live cursor is `crate::live::Cursor`.

/// The sequence a row cursor resumes after; `None` for text this hub never issued.
pub fn parse_row_cursor(cursor: &str) -> Option<i64> {
    let mut parts = cursor.trim().split(':');
    let seq = parts
        .next()?
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)?;
    match parts.next() {
        None => Some(seq),
        Some(id) => id
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|v| *v >= 0)
            .map(|_| seq),
    }
}

pub fn row_cursor(seq: i64, id: i64) -> String {
    format!("{seq}:{id}")
}

/// Where a delta page ends: after its last row `(seq, id)`, else where the reader already
/// was (an empty page must not send it back to the start).
pub fn resume_cursor(last: Option<(i64, i64)>, cursor: Option<&str>) -> Option<String> {
    match last {
        Some((seq, id)) => Some(row_cursor(seq, id)),
        None => cursor.map(str::to_string),
    }
}

/// Where a page leaves its reader: `(next_cursor, last_seq, next_offset)`. Delta reads
/// (`delta`) resume after the last row `(seq, id)`; newest-first reads page by offset.
pub fn page_end(
    delta: bool,
    last: Option<(i64, i64)>,
    cursor: Option<&str>,
    has_more: bool,
    offset: i64,
    limit: i64,
) -> (Option<String>, Option<i64>, Option<i64>) {
    let next_cursor = if delta {
        resume_cursor(last, cursor)
    } else {
        None
    };
    let next_offset = (!delta && has_more).then_some(offset + limit);
    (next_cursor, last.map(|(seq, _)| seq), next_offset)
}

/// How many rows of a page fit a byte budget on their content: rows are kept in order while
/// the running total stays within `budget`, and the first row always (a message larger than
/// the budget still arrives whole, alone on its page).
pub fn rows_within_budget(sizes: impl IntoIterator<Item = usize>, budget: usize) -> usize {
    let mut total = 0usize;
    let mut kept = 0;
    for size in sizes {
        total = total.saturating_add(size);
        if kept > 0 && total > budget {
            break;
        }
        kept += 1;
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_table() {
        let cases: [(&[usize], usize, usize); 6] = [
            (&[], 10, 0),
            (&[4, 4, 4], 10, 2),
            (&[4, 6, 1], 10, 2),
            (&[50, 1], 10, 1),
            (&[1, 1, 1], 10, 3),
            (&[0, 0, 11], 10, 2),
        ];
        for (sizes, budget, kept) in cases {
            assert_eq!(
                rows_within_budget(sizes.iter().copied(), budget),
                kept,
                "{sizes:?}"
            );
        }
    }

    #[test]
    fn row_cursor_table() {
        let cases = [
            ("12:3", Some(12)),
            (" 12 : 3 ", Some(12)),
            ("12", Some(12)),
            ("0:0", Some(0)),
            ("-1:3", None),
            ("12:-3", None),
            ("12:x", None),
            ("abc", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_row_cursor(text), expected, "{text:?}");
        }
        assert_eq!(parse_row_cursor(&row_cursor(7, 9)), Some(7));
    }
}
