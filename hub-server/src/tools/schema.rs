//! The input schemas agents pay for in every session: schemars' output minus what tells a
//! model nothing. `$schema`/`title` go; `$defs` are inlined; `["T","null"]` becomes `"T"`
//! (optionality is what `required` says); `format` and an enum's redundant `type` go; a
//! `oneOf` of constants becomes an `enum`; `items: true` and the root description go;
//! doc-comment line breaks become spaces; and the arguments every tool shares
//! ([`SHARED_FIELDS`]) are listed once, in the server instructions and onboarding, not on
//! each tool (they stay accepted: validation checks the uncompacted schema). Pure: JSON in,
//! JSON out.

use rmcp::model::JsonObject;
use serde_json::{Map, Value};

/// Arguments with the same meaning on every tool that has them: `auth_token` on every tool,
/// `idempotency_key` on writes, `trace_id`/`span_id` where a row records them.
pub const SHARED_FIELDS: [&str; 4] = ["auth_token", "idempotency_key", "trace_id", "span_id"];

/// The compacted form of a schemars object schema.
pub fn compact(schema: &JsonObject) -> JsonObject {
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut out = Map::new();
    for (key, value) in schema {
        match key.as_str() {
            // A root description is the args struct's doc comment: for developers, not models.
            "$schema" | "title" | "$defs" | "description" => {}
            "properties" => {
                // Every tool accepts the shared arguments (validation reads the full schema);
                // the instructions name them once instead of every tool listing them.
                let shown = |name: &str| !SHARED_FIELDS.contains(&name);
                out.insert(key.clone(), properties(value, &defs, 0, shown));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    out
}

/// A `properties` map with each schema compacted, keeping the names `shown` accepts.
fn properties(
    value: &Value,
    defs: &Map<String, Value>,
    depth: usize,
    shown: impl Fn(&str) -> bool,
) -> Value {
    let map = value
        .as_object()
        .map(|props| {
            props
                .iter()
                .filter(|(name, _)| shown(name))
                .map(|(name, prop)| (name.clone(), property(prop, defs, depth)))
                .collect()
        })
        .unwrap_or_default();
    Value::Object(map)
}

/// A property's schema. `true` (any value) becomes `{}`, which means the same: the official
/// TypeScript SDK refuses a tools/list whose property schema is a boolean.
fn property(value: &Value, defs: &Map<String, Value>, depth: usize) -> Value {
    match value {
        Value::Bool(true) => Value::Object(Map::new()),
        other => node(other, defs, depth),
    }
}

/// Depth guards a self-referencing `$defs` entry (none today) from looping.
fn node(value: &Value, defs: &Map<String, Value>, depth: usize) -> Value {
    match value {
        Value::Object(object) => Value::Object(object_node(object, defs, depth)),
        Value::Array(items) => Value::Array(items.iter().map(|v| node(v, defs, depth)).collect()),
        other => other.clone(),
    }
}

fn object_node(
    object: &Map<String, Value>,
    defs: &Map<String, Value>,
    depth: usize,
) -> Map<String, Value> {
    // A `$ref` to a local definition: inline it (keeping this node's own description).
    if let Some(target) = object
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .and_then(|name| defs.get(name))
        .filter(|_| depth < 8)
        .and_then(Value::as_object)
    {
        let mut inlined = object_node(target, defs, depth + 1);
        inlined.remove("description");
        inlined.remove("title");
        merge_description(&mut inlined, object);
        return inlined;
    }
    // `anyOf: [X, {type: null}]` is an optional X.
    if let Some(variants) = object.get("anyOf").and_then(Value::as_array) {
        let real: Vec<&Value> = variants
            .iter()
            .filter(|v| v.get("type") != Some(&Value::String("null".into())))
            .collect();
        if real.len() == 1 && variants.len() == 2 {
            let mut inner = node(real[0], defs, depth + 1)
                .as_object()
                .cloned()
                .unwrap_or_default();
            inner.remove("description");
            merge_description(&mut inner, object);
            return inner;
        }
    }
    let mut out = Map::new();
    for (key, value) in object {
        match key.as_str() {
            "format" | "title" | "$schema" => {}
            "type" => {
                out.insert(key.clone(), non_null_type(value));
            }
            "description" => {
                out.insert(key.clone(), Value::String(one_line(value)));
            }
            "default" if value.is_null() => {}
            "properties" => {
                out.insert(key.clone(), properties(value, defs, depth, |_| true));
            }
            // `items: true` allows any item, as no `items` does.
            "items" if value == &Value::Bool(true) => {}
            _ => {
                out.insert(key.clone(), node(value, defs, depth));
            }
        }
    }
    // A `oneOf` of constants is an enum.
    if let Some(consts) = out
        .get("oneOf")
        .and_then(Value::as_array)
        .and_then(|variants| {
            variants
                .iter()
                .map(|v| {
                    v.get("const")
                        .or_else(|| v.get("enum").and_then(|e| e.get(0)))
                        .cloned()
                })
                .collect::<Option<Vec<Value>>>()
        })
    {
        out.remove("oneOf");
        out.insert("enum".into(), Value::Array(consts));
    }
    // The values of an enum already say their type.
    if let Some(values) = out.get_mut("enum").and_then(Value::as_array_mut) {
        values.retain(|v| !v.is_null());
        out.remove("type");
    }
    out
}

fn merge_description(target: &mut Map<String, Value>, source: &Map<String, Value>) {
    if let Some(description) = source.get("description") {
        target.insert("description".into(), Value::String(one_line(description)));
    }
}

/// `["string", "null"]` → `"string"`.
fn non_null_type(value: &Value) -> Value {
    match value {
        Value::Array(types) => {
            let real: Vec<&Value> = types
                .iter()
                .filter(|t| t.as_str() != Some("null"))
                .collect();
            match real.as_slice() {
                [only] => (*only).clone(),
                _ => Value::Array(real.into_iter().cloned().collect()),
            }
        }
        other => other.clone(),
    }
}

fn one_line(description: &Value) -> String {
    description
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn compaction_table() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Args",
            "description": "The args struct's doc comment.",
            "type": "object",
            "$defs": {"Mode": {"type": "string", "enum": ["a", "b"]},
                      "Kind": {"oneOf": [{"const": "x", "type": "string", "description": "X"},
                                         {"const": "y", "type": "string"}]}},
            "properties": {
                "agent_id": {"type": "string", "description": "The\ncaller."},
                "limit": {"type": ["number", "null"], "format": "double"},
                "mode": {"anyOf": [{"$ref": "#/$defs/Mode"}, {"type": "null"}],
                         "description": "a or b."},
                "kind": {"$ref": "#/$defs/Kind", "description": "x or y."},
                "auth_token": {"type": ["string", "null"], "description": "Token."},
                "tags": {"type": "array", "items": true},
                "extra": true,
                "nested": {"type": "object", "properties": {"flag": true}}
            },
            "required": ["agent_id"]
        });
        let compacted = Value::Object(compact(schema.as_object().unwrap()));
        assert_eq!(
            compacted,
            json!({
                "type": "object",
                "properties": {
                    "agent_id": {"type": "string", "description": "The caller."},
                    "limit": {"type": "number"},
                    "mode": {"enum": ["a", "b"], "description": "a or b."},
                    "kind": {"enum": ["x", "y"], "description": "x or y."},
                    "tags": {"type": "array"},
                    "extra": {},
                    "nested": {"type": "object", "properties": {"flag": {}}}
                },
                "required": ["agent_id"]
            })
        );
    }
}
