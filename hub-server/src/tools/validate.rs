//! Argument validation against a tool's own JSON schema, before anything else runs.
//!
//! MCP 2025-11-25 (SEP-1303): an input validation failure is a tool execution error
//! (`isError: true`) the model can read and correct, not a JSON-RPC `-32602` its SDK turns
//! into an exception. So every failure names the field path, what the schema expects and
//! what came, and an unknown argument is refused (with a "did you mean") instead of being
//! dropped: a typo'd `to_agnet` must never turn a direct message into a broadcast.
//!
//! The checker understands the subset of JSON Schema that schemars emits for our args
//! structs; `every_tool_schema_is_understood` fails when a new tool brings a keyword it
//! does not know, so nothing is silently unchecked.

use rmcp::model::JsonObject;
use serde_json::{Map, Value};

use super::ToolError;

/// The longest agent or record id an argument may carry.
pub const MAX_ID_CHARS: usize = 256;

/// Keywords that describe rather than constrain.
#[cfg(test)]
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "title",
    "description",
    "format",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$defs",
    "definitions",
];
/// Keywords [`check`] enforces.
#[cfg(test)]
const CONSTRAINTS: &[&str] = &[
    "$ref",
    "type",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "allOf",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
];

/// One validation failure, rendered as an `INVALID_ARGUMENT` tool error.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// Path of the offending argument: `to_agent`, `evidence[0].kind`.
    pub field: String,
    pub expected: String,
    pub received: String,
    /// A documented argument close to an unknown one.
    pub suggestion: Option<String>,
}

impl Invalid {
    pub fn to_error(&self, tool: &str) -> ToolError {
        let mut message = format!(
            "{tool}: argument `{}` is invalid: expected {}, received {}",
            self.field, self.expected, self.received
        );
        if let Some(suggestion) = &self.suggestion {
            message.push_str(&format!("; did you mean `{suggestion}`?"));
        }
        let mut error = ToolError::new("INVALID_ARGUMENT", message)
            .with("field", self.field.clone())
            .with("expected", self.expected.clone())
            .with("received", self.received.clone());
        if let Some(suggestion) = &self.suggestion {
            error = error.with("suggestion", suggestion.clone());
        }
        error
    }
}

/// Checks `args` against the tool's input `schema` (its root, for `$ref` lookups).
pub fn check(schema: &JsonObject, args: &JsonObject) -> Result<(), Invalid> {
    let root = Value::Object(schema.clone());
    Checker { root: &root }.object(schema, args, "")
}

/// Agent and record ids: a blank one names nobody, so it is refused wherever it is
/// required (the caller above all, in every auth mode); an optional one may be `""` where
/// the spec gives that a meaning (`to_agent: ""` broadcasts) but never only whitespace.
pub fn check_ids(schema: &JsonObject, args: &JsonObject, callers: &[&str]) -> Result<(), Invalid> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for (name, value) in args {
        let Some(text) = value.as_str() else { continue };
        let is_caller = callers.contains(&name.as_str());
        if !(is_caller || is_id_name(name)) {
            continue;
        }
        let must_name_someone = is_caller || required.contains(&name.as_str());
        let blank = text.trim().is_empty() && (must_name_someone || !text.is_empty());
        if blank {
            return Err(Invalid {
                field: name.clone(),
                expected: "a non-blank id".into(),
                received: describe(value),
                suggestion: None,
            });
        }
        if text.chars().count() > MAX_ID_CHARS {
            return Err(Invalid {
                field: name.clone(),
                expected: format!("an id of at most {MAX_ID_CHARS} characters"),
                received: describe(value),
                suggestion: None,
            });
        }
    }
    Ok(())
}

/// Argument names that carry an agent's or a record's id.
fn is_id_name(name: &str) -> bool {
    name == "id"
        || name.ends_with("_id")
        || name.ends_with("_agent")
        || matches!(name, "from" | "created_by" | "assigned_to")
}

struct Checker<'a> {
    root: &'a Value,
}

impl Checker<'_> {
    fn resolve<'s>(&'s self, schema: &'s Value) -> &'s Value {
        let mut schema = schema;
        // Bounded: a cyclic $ref chain must not loop forever.
        for _ in 0..32 {
            let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
                return schema;
            };
            let target = reference
                .strip_prefix('#')
                .and_then(|pointer| self.root.pointer(pointer));
            match target {
                Some(target) => schema = target,
                None => return &Value::Bool(true),
            }
        }
        schema
    }

    fn value(&self, schema: &Value, value: &Value, path: &str) -> Result<(), Invalid> {
        let schema = self.resolve(schema);
        let Some(rules) = schema.as_object() else {
            return match schema {
                Value::Bool(false) => Err(self.invalid(path, "nothing here", value)),
                _ => Ok(()),
            };
        };
        let mismatch = || Invalid {
            field: path.to_string(),
            expected: self.expected(schema),
            received: describe(value),
            suggestion: None,
        };
        for key in ["anyOf", "oneOf"] {
            if let Some(variants) = rules.get(key).and_then(Value::as_array)
                && !variants
                    .iter()
                    .any(|variant| self.value(variant, value, path).is_ok())
            {
                // The closest variant's own complaint names the deeper field, if any.
                let nested = variants
                    .iter()
                    .filter(|variant| self.type_matches(variant, value))
                    .find_map(|variant| self.value(variant, value, path).err());
                return Err(nested.unwrap_or_else(mismatch));
            }
        }
        if let Some(all) = rules.get("allOf").and_then(Value::as_array) {
            for part in all {
                self.value(part, value, path)?;
            }
        }
        if let Some(allowed) = rules.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            return Err(mismatch());
        }
        if let Some(constant) = rules.get("const")
            && constant != value
        {
            return Err(mismatch());
        }
        if !self.type_matches(schema, value) {
            return Err(mismatch());
        }
        match value {
            Value::Object(object) if rules.contains_key("properties") => {
                self.object(rules, object, path)
            }
            Value::Object(object) => match rules.get("additionalProperties") {
                Some(extra) => {
                    for (name, item) in object {
                        self.value(extra, item, &join(path, name))?;
                    }
                    Ok(())
                }
                None => Ok(()),
            },
            Value::Array(items) => self.array(rules, items, path),
            Value::Number(number) => {
                let n = number.as_f64().unwrap_or(f64::NAN);
                let below = rules
                    .get("minimum")
                    .and_then(Value::as_f64)
                    .is_some_and(|min| n < min);
                let above = rules
                    .get("maximum")
                    .and_then(Value::as_f64)
                    .is_some_and(|max| n > max);
                if below || above {
                    return Err(mismatch());
                }
                Ok(())
            }
            Value::String(text) => {
                let chars = text.chars().count() as u64;
                let short = rules
                    .get("minLength")
                    .and_then(Value::as_u64)
                    .is_some_and(|min| chars < min);
                let long = rules
                    .get("maxLength")
                    .and_then(Value::as_u64)
                    .is_some_and(|max| chars > max);
                if short || long {
                    return Err(mismatch());
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Properties, required ones, and no argument the schema does not document.
    fn object(
        &self,
        rules: &Map<String, Value>,
        object: &Map<String, Value>,
        path: &str,
    ) -> Result<(), Invalid> {
        let empty = Map::new();
        let properties = rules
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let extra = rules.get("additionalProperties");
        for (name, item) in object {
            match (properties.get(name), extra) {
                (Some(property), _) => self.value(property, item, &join(path, name))?,
                (None, Some(extra)) => self.value(extra, item, &join(path, name))?,
                (None, None) => {
                    let known: Vec<&str> = properties.keys().map(String::as_str).collect();
                    return Err(Invalid {
                        field: join(path, name),
                        expected: format!("one of the documented arguments ({})", known.join(", ")),
                        received: "an unknown argument".into(),
                        suggestion: closest(name, &known),
                    });
                }
            }
        }
        for name in rules
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(name) {
                let expected = properties
                    .get(name)
                    .map(|property| self.expected(property))
                    .unwrap_or_else(|| "a value".into());
                return Err(Invalid {
                    field: join(path, name),
                    expected: format!("{expected} (required)"),
                    received: "nothing".into(),
                    suggestion: None,
                });
            }
        }
        Ok(())
    }

    fn array(
        &self,
        rules: &Map<String, Value>,
        items: &[Value],
        path: &str,
    ) -> Result<(), Invalid> {
        let count = items.len() as u64;
        let few = rules
            .get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|min| count < min);
        let many = rules
            .get("maxItems")
            .and_then(Value::as_u64)
            .is_some_and(|max| count > max);
        if few || many {
            return Err(Invalid {
                field: path.to_string(),
                expected: self.expected(&Value::Object(rules.clone())),
                received: describe(&Value::Array(items.to_vec())),
                suggestion: None,
            });
        }
        if let Some(item_schema) = rules.get("items") {
            for (index, item) in items.iter().enumerate() {
                self.value(item_schema, item, &format!("{path}[{index}]"))?;
            }
        }
        Ok(())
    }

    fn type_matches(&self, schema: &Value, value: &Value) -> bool {
        let schema = self.resolve(schema);
        match schema.get("type") {
            Some(Value::String(kind)) => is_of_type(kind, value),
            Some(Value::Array(kinds)) => kinds
                .iter()
                .filter_map(Value::as_str)
                .any(|kind| is_of_type(kind, value)),
            _ => true,
        }
    }

    fn invalid(&self, path: &str, expected: &str, value: &Value) -> Invalid {
        Invalid {
            field: path.to_string(),
            expected: expected.to_string(),
            received: describe(value),
            suggestion: None,
        }
    }

    /// What a schema wants, in a few words: `integer`, `one of "a", "b"`, `string or null`.
    fn expected(&self, schema: &Value) -> String {
        let schema = self.resolve(schema);
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            let listed: Vec<String> = values.iter().map(Value::to_string).collect();
            return format!("one of {}", listed.join(", "));
        }
        if let Some(constant) = schema.get("const") {
            return constant.to_string();
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(variants) = schema.get(key).and_then(Value::as_array) {
                let consts: Vec<String> = variants
                    .iter()
                    .filter_map(|v| self.resolve(v).get("const").map(Value::to_string))
                    .collect();
                if consts.len() == variants.len() {
                    return format!("one of {}", consts.join(", "));
                }
                let words: Vec<String> = variants.iter().map(|v| self.expected(v)).collect();
                return words.join(" or ");
            }
        }
        let kind = match schema.get("type") {
            Some(Value::String(kind)) => kind.clone(),
            Some(Value::Array(kinds)) => kinds
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" or "),
            _ => "any value".into(),
        };
        match (kind.as_str(), schema.get("items")) {
            ("array", Some(items)) => format!("array of {}", self.expected(items)),
            _ => kind,
        }
    }
}

fn is_of_type(kind: &str, value: &Value) -> bool {
    match kind {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        // JSON Schema: an integer is any number without a fractional part (`3.0` too).
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|n| n.fract() == 0.0)
        }
        _ => true,
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// What came, in a few words, with long strings cut.
pub fn describe(value: &Value) -> String {
    const SHOWN: usize = 40;
    match value {
        Value::Null => "null".into(),
        Value::Bool(flag) => format!("boolean {flag}"),
        Value::Number(number) if number.is_f64() => format!("number {number}"),
        Value::Number(number) => format!("integer {number}"),
        Value::String(text) => {
            let chars = text.chars().count();
            if chars > SHOWN {
                let head: String = text.chars().take(SHOWN).collect();
                format!("string of {chars} characters starting {head:?}")
            } else {
                format!("string {text:?}")
            }
        }
        Value::Array(items) => format!("array of {} items", items.len()),
        Value::Object(fields) => format!("object with {} fields", fields.len()),
    }
}

/// The documented name closest to a typo, if one is close enough to be what was meant.
fn closest(name: &str, known: &[&str]) -> Option<String> {
    let lowered = name.to_ascii_lowercase();
    known
        .iter()
        .map(|candidate| (edit_distance(&lowered, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).clamp(1, 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.to_string())
}

/// Optimal string alignment distance: edits plus swaps of neighbours (`agnet` → `agent`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    rows[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// Keywords of `schema` (recursively) that [`check`] neither enforces nor ignores.
#[cfg(test)]
pub fn unknown_keywords(schema: &Value) -> Vec<String> {
    let mut unknown = Vec::new();
    collect_unknown(schema, &mut unknown);
    unknown
}

#[cfg(test)]
fn collect_unknown(schema: &Value, unknown: &mut Vec<String>) {
    let Some(rules) = schema.as_object() else {
        return;
    };
    for (key, value) in rules {
        if !(ANNOTATIONS.contains(&key.as_str()) || CONSTRAINTS.contains(&key.as_str())) {
            unknown.push(key.clone());
        }
        match key.as_str() {
            "properties" | "$defs" | "definitions" => {
                for sub in value.as_object().into_iter().flat_map(|m| m.values()) {
                    collect_unknown(sub, unknown);
                }
            }
            "anyOf" | "oneOf" | "allOf" => {
                for sub in value.as_array().into_iter().flatten() {
                    collect_unknown(sub, unknown);
                }
            }
            "items" | "additionalProperties" => collect_unknown(value, unknown),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(value: Value) -> JsonObject {
        value.as_object().cloned().unwrap_or_default()
    }

    fn send_schema() -> JsonObject {
        schema(json!({
            "type": "object",
            "properties": {
                "from_agent": {"type": "string"},
                "to_agent": {"type": ["string", "null"]},
                "content": {"type": "string"},
                "limit": {"type": ["integer", "null"], "format": "int64"},
                "mode": {"anyOf": [{"$ref": "#/$defs/Mode"}, {"type": "null"}]},
                "tags": {"type": ["array", "null"], "items": {"type": "string"}},
                "evidence": {"type": "array", "items": {"$ref": "#/$defs/Evidence"}}
            },
            "required": ["from_agent", "content"],
            "$defs": {
                "Mode": {"type": "string", "enum": ["compact", "full"]},
                "Evidence": {
                    "type": "object",
                    "properties": {"kind": {"type": "string"}},
                    "required": ["kind"]
                }
            }
        }))
    }

    fn fails(args: Value) -> Invalid {
        check(&send_schema(), args.as_object().unwrap()).expect_err("refused")
    }

    #[test]
    fn every_failure_names_field_expected_and_received() {
        let table: Vec<(Value, &str, &str, &str)> = vec![
            (
                json!({"from_agent": "a"}),
                "content",
                "string (required)",
                "nothing",
            ),
            (
                json!({"from_agent": 5, "content": "x"}),
                "from_agent",
                "string",
                "integer 5",
            ),
            (
                json!({"from_agent": "a", "content": "x", "limit": "ten"}),
                "limit",
                "integer or null",
                "string \"ten\"",
            ),
            (
                json!({"from_agent": "a", "content": "x", "limit": 2.5}),
                "limit",
                "integer or null",
                "number 2.5",
            ),
            (
                json!({"from_agent": "a", "content": "x", "mode": "huge"}),
                "mode",
                "one of \"compact\", \"full\"",
                "string \"huge\"",
            ),
            (
                json!({"from_agent": "a", "content": "x", "tags": ["a", 1]}),
                "tags[1]",
                "string",
                "integer 1",
            ),
            (
                json!({"from_agent": "a", "content": "x", "evidence": [{"kind": "ok"}, {}]}),
                "evidence[1].kind",
                "string (required)",
                "nothing",
            ),
            (
                json!({"from_agent": "a", "content": "x", "evidence": [{"kind": "ok", "x": 1}]}),
                "evidence[0].x",
                "one of the documented arguments (kind)",
                "an unknown argument",
            ),
        ];
        for (args, field, expected, received) in table {
            let invalid = fails(args.clone());
            assert_eq!(invalid.field, field, "{args}");
            assert_eq!(invalid.expected, expected, "{args}");
            assert_eq!(invalid.received, received, "{args}");
        }
    }

    #[test]
    fn valid_arguments_pass_and_whole_floats_are_integers() {
        for args in [
            json!({"from_agent": "a", "content": ""}),
            json!({"from_agent": "a", "content": "x", "limit": 10, "mode": "full"}),
            json!({"from_agent": "a", "content": "x", "limit": 10.0, "to_agent": null}),
            json!({"from_agent": "a", "content": "x", "evidence": [{"kind": "k"}]}),
        ] {
            let checked = check(&send_schema(), args.as_object().unwrap());
            assert!(checked.is_ok(), "{args}: {checked:?}");
        }
    }

    #[test]
    fn an_unknown_argument_is_refused_with_the_closest_name() {
        let invalid = fails(json!({"from_agent": "a", "to_agnet": "bob", "content": "x"}));
        assert_eq!(invalid.field, "to_agnet");
        assert_eq!(invalid.suggestion.as_deref(), Some("to_agent"));
        let error = invalid.to_error("send_message").to_json();
        assert_eq!(error["error_code"], "INVALID_ARGUMENT");
        assert_eq!(error["suggestion"], "to_agent");
        assert!(
            error["error"]
                .as_str()
                .unwrap()
                .contains("did you mean `to_agent`")
        );
        let far = fails(json!({"from_agent": "a", "content": "x", "zzzzzz": 1}));
        assert_eq!(far.suggestion, None);
    }

    #[test]
    fn suggestions_tolerate_case_swaps_and_small_edits() {
        let known = ["to_agent", "from_agent", "content", "limit"];
        for (typo, meant) in [
            ("to_agnet", Some("to_agent")),
            ("From_Agent", Some("from_agent")),
            ("contnet", Some("content")),
            ("limt", Some("limit")),
            ("agent", None),
            ("x", None),
        ] {
            assert_eq!(closest(typo, &known).as_deref(), meant, "{typo}");
        }
    }

    #[test]
    fn blank_and_oversized_ids_are_refused() {
        let schema = send_schema();
        let callers = ["from_agent"];
        let refused = |args: Value| check_ids(&schema, args.as_object().unwrap(), &callers);
        assert_eq!(
            refused(json!({"from_agent": " "})).unwrap_err().field,
            "from_agent"
        );
        assert_eq!(
            refused(json!({"from_agent": ""})).unwrap_err().field,
            "from_agent"
        );
        // `to_agent: ""` broadcasts (spec); only whitespace is a mistake.
        assert!(refused(json!({"from_agent": "a", "to_agent": ""})).is_ok());
        assert_eq!(
            refused(json!({"from_agent": "a", "to_agent": " \t"}))
                .unwrap_err()
                .field,
            "to_agent"
        );
        let huge = "x".repeat(MAX_ID_CHARS + 1);
        let long = refused(json!({"from_agent": huge})).unwrap_err();
        assert!(long.received.starts_with("string of 257 characters"));
        assert!(refused(json!({"from_agent": "a", "content": " "})).is_ok());
    }

    #[test]
    fn every_tool_schema_is_understood() {
        for tool in &super::super::registry().tools {
            let schema = Value::Object((*tool.schema).clone());
            assert_eq!(
                unknown_keywords(&schema),
                Vec::<String>::new(),
                "{}: schema keywords the validator would ignore",
                tool.name
            );
        }
    }
}
