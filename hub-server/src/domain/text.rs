//! Text rules shared by services (limits, compression) and tool renderers: character-safe
//! prefixes, digests, whitespace collapse and lossless JSON minification. Pure: no I/O.

use sha2::{Digest, Sha256};

/// An optional text argument as stored: empty means absent.
pub fn optional_text(value: Option<&str>) -> Option<String> {
    value.filter(|v| !v.is_empty()).map(str::to_string)
}

/// Length in characters (Unicode scalar values), which is what every `*_chars` field counts.
pub fn char_count(text: &str) -> usize {
    text.chars().count()
}

/// The first `max_chars` characters, never splitting one.
pub fn prefix(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// Lowercase hex SHA-256 of the UTF-8 bytes, cut to `hex_chars`.
pub fn digest(text: &str, hex_chars: usize) -> String {
    let mut hex = hex::encode(Sha256::digest(text.as_bytes()));
    hex.truncate(hex_chars);
    hex
}

/// Every run of whitespace becomes one space; the ends are trimmed.
pub fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// If `text` is JSON, the same JSON without insignificant whitespace — key order, number
/// spelling and string escapes untouched, so nothing is lost. `None` if it is not JSON.
pub fn minify_json(text: &str) -> Option<String> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_never_splits_a_character() {
        assert_eq!(prefix("héllo", 2), "hé");
        assert_eq!(prefix("ab", 5), "ab");
        assert_eq!(char_count("héllo"), 5);
    }

    #[test]
    fn minify_keeps_order_numbers_and_strings() {
        let input =
            "{ \"b\": 1, \"a\": [ 12345678901234567890123 , 1.50 ], \"s\": \"x  y\\\" z\" }";
        assert_eq!(
            minify_json(input).unwrap(),
            "{\"b\":1,\"a\":[12345678901234567890123,1.50],\"s\":\"x  y\\\" z\"}"
        );
        assert_eq!(minify_json("not json"), None);
    }

    #[test]
    fn collapse() {
        assert_eq!(collapse_whitespace("  a \n\t b  "), "a b");
    }
}
