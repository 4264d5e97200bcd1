//! Row cursors of the paged reads (read_messages, list_tasks, get_context): `<seq>:<id>` of
//! the last row returned, opaque to clients. Owns only the format; must not read rows.

/// A row cursor is `<seq>:<id>` of the last row returned; reads resume strictly after it.
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

#[cfg(test)]
mod tests {
    use super::*;

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
