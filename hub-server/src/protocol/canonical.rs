//! Canonical JSON (tools-more §0.1): the one serialisation every hash in the hub is taken
//! over, so the same value hashes the same whatever its key order or spacing.
//!
//! - object keys sorted by UTF-16 code units at every depth (not numeric-first: defect 4);
//! - no insignificant whitespace; strings escaped minimally (`"`, `\`, U+0000–U+001F);
//! - numbers as ECMAScript `Number.prototype.toString` prints the f64 they parse to.

use std::cmp::Ordering;

use serde_json::Value;

/// Parses JSON text. Numbers that do not fit an f64 (`1e400`) are refused here.
pub fn parse(text: &str) -> Result<Value, String> {
    serde_json::from_str::<Value>(text).map_err(|e| e.to_string())
}

/// The canonical serialisation of `value`.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// Parses and canonicalises in one step.
pub fn canonicalize_text(text: &str) -> Result<String, String> {
    parse(text).map(|value| canonical(&value))
}

/// Orders two keys by their UTF-16 code units, as JavaScript's default sort does.
pub fn utf16_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// `value` with every object's keys in canonical order and every number normalised to the
/// f64 it denotes; a value equal to what parsing [`canonical`] gives back.
pub fn normalize(value: &Value) -> Value {
    match value {
        Value::Number(n) => number_value(n.as_f64().unwrap_or(0.0)),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (key, item) in sorted_entries(map) {
                out.insert(key.clone(), normalize(item));
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// The JSON number for an f64: integral values become integers, so `1.0` and `1` agree.
fn number_value(x: f64) -> Value {
    if x == x.trunc() && x.abs() < 9_007_199_254_740_992.0 {
        if x == 0.0 {
            return Value::from(0);
        }
        return Value::from(x as i64);
    }
    serde_json::Number::from_f64(x)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn sorted_entries(map: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| utf16_cmp(a.0, b.0));
    entries
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => out.push_str(&js_number(n.as_f64().unwrap_or(0.0))),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (index, (key, item)) in sorted_entries(map).into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// ECMAScript `Number::toString(x)` for a finite f64: the shortest digits that round-trip,
/// plain notation for 1e-6 ≤ |x| < 1e21, exponent form (`1e+21`, `1.5e-7`) otherwise.
pub fn js_number(x: f64) -> String {
    if !x.is_finite() {
        return "null".into();
    }
    if x == 0.0 {
        return "0".into();
    }
    let negative = x < 0.0;
    // `{:e}` yields the shortest round-trip digits: "1.2345e-7", "1e21".
    let sci = format!("{:e}", x.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = digits.len() as i64;
    let n = exponent + 1; // position of the decimal point relative to the digits
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if n > 0 { '+' } else { '-' });
        out.push_str(&(n - 1).abs().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn numbers_print_like_javascript() {
        let cases = [
            (1.0, "1"),
            (-0.0, "0"),
            (0.1, "0.1"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (100.0, "100"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (1e20, "100000000000000000000"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (1.25e-7, "1.25e-7"),
            (123456789.125, "123456789.125"),
            (9007199254740993.0, "9007199254740992"),
            (0.000123, "0.000123"),
        ];
        for (x, expected) in cases {
            assert_eq!(js_number(x), expected, "{x}");
        }
    }

    #[test]
    fn keys_sort_by_utf16_not_numeric_first() {
        let value =
            json!({"b": 1, "a": [3, {"z": true, "10": null, "2": "x"}], "\u{ff61}": 0, "😀": 1});
        assert_eq!(
            canonical(&value),
            "{\"a\":[3,{\"10\":null,\"2\":\"x\",\"z\":true}],\"b\":1,\"😀\":1,\"\u{ff61}\":0}"
        );
    }

    #[test]
    fn strings_are_escaped_minimally() {
        let value = json!("q\"b\\/\u{1}\n\té");
        assert_eq!(canonical(&value), "\"q\\\"b\\\\/\\u0001\\n\\té\"");
        assert_eq!(canonicalize_text("[1.0, 2.50, -0]").unwrap(), "[1,2.5,0]");
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(Value::from),
            ".*".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((".{0,6}", inner), 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    /// The same members inserted in reverse order (serde_json's map sorts, so rebuild text).
    fn reversed_text(value: &Value) -> String {
        match value {
            Value::Object(map) => {
                let parts: Vec<String> = map
                    .iter()
                    .rev()
                    .map(|(k, v)| format!("{}:{}", Value::from(k.clone()), reversed_text(v)))
                    .collect();
                format!("{{ {} }}", parts.join(" , "))
            }
            Value::Array(items) => {
                let parts: Vec<String> = items.iter().map(reversed_text).collect();
                format!("[ {} ]", parts.join(", "))
            }
            other => other.to_string(),
        }
    }

    proptest! {
        #[test]
        fn hash_is_independent_of_key_order_and_spacing(value in arb_json()) {
            let plain = canonicalize_text(&value.to_string()).unwrap();
            let shuffled = canonicalize_text(&reversed_text(&value)).unwrap();
            prop_assert_eq!(&plain, &shuffled);
            prop_assert_eq!(crate::protocol::sha256_hex(&plain), crate::protocol::sha256_hex(&shuffled));
        }

        #[test]
        fn canonical_is_a_fixed_point(value in arb_json()) {
            let once = canonical(&value);
            let twice = canonicalize_text(&once).unwrap();
            prop_assert_eq!(&once, &twice);
            prop_assert_eq!(canonical(&normalize(&value)), once);
        }

        #[test]
        fn js_number_round_trips(x in any::<f64>().prop_filter("finite", |x| x.is_finite())) {
            let printed = js_number(x);
            let back: f64 = printed.parse().unwrap();
            prop_assert_eq!(back, if x == 0.0 { 0.0 } else { x });
        }
    }
}
