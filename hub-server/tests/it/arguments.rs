//! Bad arguments, generated from `tools/list` so every tool is covered (also those added
//! later): missing required fields, wrong types, deep nesting, unknown fields, blank and
//! huge ids. Each answer is an `INVALID_ARGUMENT` tool error (`isError: true`) naming the
//! field, with what was expected and what came — and the database is unchanged.

use hub_server::tools::registry;
use serde_json::{Map, Value, json};

use crate::authz::{required_args, table_state};
use crate::harness::{Client, TestHub};

/// The JSON types a property accepts (`None`: anything).
fn accepted_types(schema: &Value, defs: &Value) -> Option<Vec<String>> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or_default();
        return accepted_types(&defs[name], defs);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(variants) = schema[key].as_array() {
            let mut all = Vec::new();
            for variant in variants {
                all.extend(accepted_types(variant, defs)?);
            }
            return Some(all);
        }
    }
    match &schema["type"] {
        Value::String(kind) => Some(vec![kind.clone()]),
        Value::Array(kinds) => Some(
            kinds
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        ),
        _ if schema.get("enum").is_some() => Some(vec!["string".into()]),
        _ => None,
    }
}

/// An object nested `depth` levels deep.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!("bottom"), |inner, _| json!({ "n": inner }))
}

/// A value of a type the property refuses, if it refuses any.
fn wrong_value(schema: &Value, defs: &Value) -> Option<Value> {
    let types = accepted_types(schema, defs)?;
    if !types.iter().any(|t| t == "object") {
        Some(nested(60))
    } else if !types.iter().any(|t| t == "string") {
        Some(json!("ten"))
    } else {
        None
    }
}

/// One bad call: `field` must be named in the refusal.
struct Case {
    what: &'static str,
    args: Map<String, Value>,
    field: String,
}

fn cases(tool: &rmcp::model::Tool, caller: &str, token: &str) -> Vec<Case> {
    let def = registry().get(tool.name.as_ref()).expect("registered");
    let schema = Value::Object((*tool.input_schema).clone());
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    let mut base = required_args(tool);
    if let Some(field) = def.caller_field {
        base.insert(field.into(), json!(caller));
    }
    // Every tool takes auth_token, though tools/list leaves the shared arguments out.
    base.insert("auth_token".into(), json!(token));
    let mut cases = Vec::new();
    let mut args = base.clone();
    args.insert("auth_token".into(), json!(7));
    cases.push(Case {
        what: "wrong type",
        args,
        field: "auth_token".into(),
    });
    for name in schema["required"].as_array().into_iter().flatten() {
        let name = name.as_str().unwrap();
        let mut args = base.clone();
        args.remove(name);
        cases.push(Case {
            what: "missing required",
            args,
            field: name.into(),
        });
    }
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        if let Some(wrong) = wrong_value(property, &defs) {
            let mut args = base.clone();
            args.insert(name.clone(), wrong);
            cases.push(Case {
                what: "wrong type",
                args,
                field: name.clone(),
            });
        }
    }
    let mut args = base.clone();
    args.insert("bogus_argument".into(), json!(1));
    cases.push(Case {
        what: "unknown field",
        args,
        field: "bogus_argument".into(),
    });
    let id_field = def.caller_field.or_else(|| {
        schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|name| *name == "id")
    });
    if let Some(field) = id_field {
        for (what, value) in [
            ("blank id", json!("")),
            ("whitespace id", json!(" \t ")),
            ("huge id", json!("x".repeat(100_000))),
        ] {
            let mut args = base.clone();
            args.insert(field.into(), value);
            cases.push(Case {
                what,
                args,
                field: field.into(),
            });
        }
    }
    cases
}

#[tokio::test]
async fn every_tool_answers_bad_arguments_with_a_tool_error_naming_the_field() {
    let hub = TestHub::start_with(&[("MCP_HUB_RATE_LIMIT_RPS", "0")]).await;
    let (alice, alice_token) = hub.agent("alice").await;
    let (_bob, _) = hub.agent("bob").await;
    alice
        .call(
            "send_message",
            json!({"from_agent": "alice", "to_agent": "bob", "content": "unread",
                   "auth_token": alice_token}),
        )
        .await
        .ok();
    alice
        .call(
            "create_task",
            json!({"created_by": "alice", "title": "t", "auth_token": alice_token}),
        )
        .await
        .ok();
    hub.flush_bookkeeping().await;
    let before = table_state(&hub, &[]).await;

    let tools = alice.service.list_all_tools().await.unwrap();
    let mut checked = 0;
    for tool in &tools {
        for case in cases(tool, "alice", &alice_token) {
            let name = tool.name.as_ref();
            let outcome = alice.call(name, Value::Object(case.args.clone())).await;
            let body = &outcome.json;
            assert!(
                outcome.is_error && body["error_code"] == "INVALID_ARGUMENT",
                "{name} ({}): {body}",
                case.what
            );
            assert_eq!(
                body["field"],
                case.field.as_str(),
                "{name} ({}): {body}",
                case.what
            );
            assert!(
                body["expected"].is_string() && body["received"].is_string(),
                "{name} ({}): {body}",
                case.what
            );
            let message = body["error"].as_str().unwrap();
            assert!(message.contains(&case.field), "{name}: {message}");
            checked += 1;
        }
    }
    assert!(
        checked > 200,
        "the table covers the catalog ({checked} cases)"
    );

    hub.flush_bookkeeping().await;
    assert_eq!(
        table_state(&hub, &[]).await,
        before,
        "a refused argument leaves no trace: no row, no read mark, no idempotency key"
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_typo_never_turns_a_direct_message_into_a_broadcast() {
    let hub = TestHub::start().await;
    let (alice, token) = hub.agent("alice").await;
    let (_bob, _) = hub.agent("bob").await;
    let send = |args: Value| {
        let alice: &Client = &alice;
        async move { alice.call("send_message", args).await }
    };
    let typo = send(
        json!({"from_agent": "alice", "to_agnet": "bob", "content": "hi",
                           "auth_token": token, "idempotency_key": "k1"}),
    )
    .await;
    assert_eq!(typo.error_code(), "INVALID_ARGUMENT");
    assert_eq!(typo.json["field"], "to_agnet");
    assert_eq!(typo.json["suggestion"], "to_agent");
    assert!(
        typo.json["error"]
            .as_str()
            .unwrap()
            .contains("did you mean `to_agent`?")
    );

    let nobody = send(json!({"from_agent": "alice", "to_agent": "nobody-here",
                             "content": "hi", "auth_token": token, "idempotency_key": "k2"}))
    .await;
    assert_eq!(nobody.error_code(), "RECIPIENT_NOT_FOUND");
    assert_eq!(nobody.json["field"], "to_agent");
    let blob = alice
        .call(
            "send_blob_message",
            json!({"from_agent": "alice", "to_agent": "nobody-here", "payload": "hi",
                   "auth_token": token}),
        )
        .await;
    assert_eq!(blob.error_code(), "RECIPIENT_NOT_FOUND");
    assert_eq!(
        hub.query("SELECT COUNT(*) FROM messages").await,
        vec![vec!["0".to_string()]]
    );
    assert_eq!(
        hub.query("SELECT COUNT(*) FROM protocol_blobs").await,
        vec![vec!["0".to_string()]],
        "a refused blob message stores no blob"
    );

    // Neither refusal consumed its idempotency key: the corrected calls go through.
    for key in ["k1", "k2"] {
        let sent = send(
            json!({"from_agent": "alice", "to_agent": "bob", "content": key,
                               "auth_token": token, "idempotency_key": key}),
        )
        .await;
        assert_eq!(sent.ok()["message"]["content"], key);
        assert_eq!(sent.ok()["message"]["to_agent"], "bob");
    }
    // `to_agent: ""` still broadcasts (spec); only whitespace is refused.
    let broadcast = send(
        json!({"from_agent": "alice", "to_agent": "", "content": "all",
                                "auth_token": token}),
    )
    .await;
    assert_eq!(broadcast.ok()["message"]["to_agent"], Value::Null);
    let blank = send(
        json!({"from_agent": "alice", "to_agent": "  ", "content": "x",
                            "auth_token": token}),
    )
    .await;
    assert_eq!(blank.error_code(), "INVALID_ARGUMENT");
    assert_eq!(blank.json["field"], "to_agent");
    hub.stop().await;
}

#[tokio::test]
async fn blank_caller_ids_are_refused_in_every_auth_mode() {
    for mode in ["observe", "warn", "enforce"] {
        let hub = TestHub::start_with(&[("MCP_HUB_AUTH_MODE", mode)]).await;
        let (alice, token) = hub.agent("alice").await;
        alice
            .call(
                "create_task",
                json!({"created_by": "alice", "title": "t", "auth_token": token}),
            )
            .await
            .ok();
        for (tool, args) in [
            ("poll_and_claim", json!({"agent_id": " "})),
            ("send_message", json!({"from_agent": "", "content": "x"})),
            ("create_task", json!({"created_by": "\t", "title": "t"})),
            (
                "register_agent",
                json!({"id": "  ", "name": "n", "type": "t"}),
            ),
        ] {
            let outcome = alice.call(tool, args.clone()).await;
            assert_eq!(
                outcome.error_code(),
                "INVALID_ARGUMENT",
                "{mode} {tool} {args}"
            );
            assert_eq!(
                outcome.json["expected"], "a non-blank id",
                "{mode} {tool}: {}",
                outcome.json
            );
        }
        assert_eq!(
            hub.query("SELECT COUNT(*) FROM task_claims").await,
            vec![vec!["0".to_string()]],
            "{mode}: nothing claimed for nobody"
        );
        assert_eq!(
            hub.query("SELECT COUNT(*) FROM agents WHERE trim(id) = ''")
                .await,
            vec![vec!["0".to_string()]]
        );
        hub.stop().await;
    }
}
