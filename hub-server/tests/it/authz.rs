//! Authorization under enforce: the matrix over every tool in `tools/list` (no token, a
//! garbage token, another agent's token, one's own token aimed at another agent's private
//! data — each refused, the database unchanged), and granted, never self-declared, roles.

use hub_server::tools::registry;
use serde_json::{Map, Value, json};

use crate::harness::{Client, TestHub};

const ADMIN_TOKEN: &str = "operator-secret-for-tests";

async fn enforce_hub() -> TestHub {
    TestHub::start_with(&[
        ("MCP_HUB_AUTH_MODE", "enforce"),
        ("MCP_HUB_RATE_LIMIT_RPS", "0"),
        ("MCP_HUB_ADMIN_TOKEN", ADMIN_TOKEN),
        ("MCP_HUB_PRIVILEGED_AGENTS", "lead:orchestrator"),
    ])
    .await
}

/// A schema-valid value for `schema` (first enum value, first non-null variant).
pub(crate) fn sample(schema: &Value, defs: &Value) -> Value {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or_default();
        return sample(&defs[name], defs);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(variants) = schema[key].as_array() {
            let variant = variants
                .iter()
                .find(|v| v["type"] != "null")
                .unwrap_or(&variants[0]);
            return sample(variant, defs);
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        return values[0].clone();
    }
    if let Some(constant) = schema.get("const") {
        return constant.clone();
    }
    let kind = match &schema["type"] {
        Value::Array(kinds) => kinds
            .iter()
            .find(|k| *k != "null")
            .cloned()
            .unwrap_or(Value::Null),
        other => other.clone(),
    };
    match kind.as_str() {
        Some("string") => json!("x"),
        Some("integer") | Some("number") => json!(1),
        Some("boolean") => json!(false),
        Some("array") => json!([]),
        _ => json!({}),
    }
}

/// The required arguments of a tool, filled with schema-valid samples.
pub(crate) fn required_args(tool: &rmcp::model::Tool) -> Map<String, Value> {
    let schema = Value::Object((*tool.input_schema).clone());
    let defs = schema
        .get("$defs")
        .or(schema.get("definitions"))
        .cloned()
        .unwrap_or(Value::Null);
    let mut args = Map::new();
    for name in schema["required"].as_array().into_iter().flatten() {
        let name = name.as_str().unwrap();
        args.insert(name.into(), sample(&schema["properties"][name], &defs));
    }
    args
}

/// Every table an agent's call may change, as text, without the guard's own bookkeeping
/// (per-minute call and activity counts, activity rows and the sequence they take, token
/// last-use).
async fn domain_state(hub: &TestHub) -> Vec<(String, Vec<Vec<String>>)> {
    table_state(
        hub,
        &[
            "auth_events",
            "call_minutes",
            "activity_minutes",
            "activity_log",
            "agent_tokens",
            "idempotency_keys",
            "hub_meta",
        ],
    )
    .await
}

/// Every table but `skip`, each row as text.
pub(crate) async fn table_state(hub: &TestHub, skip: &[&str]) -> Vec<(String, Vec<Vec<String>>)> {
    let skip: Vec<String> = skip.iter().map(|t| t.to_string()).collect();
    let store = hub.handle.hub.store.clone();
    store
        .read(move |db| {
            let mut state = Vec::new();
            for table in hub_server::store::inspect::table_names(db)? {
                if skip.contains(&table) {
                    continue;
                }
                let rows = hub_server::store::inspect::query(
                    db,
                    &format!("SELECT * FROM \"{table}\" ORDER BY 1"),
                    100_000,
                )?
                .rows;
                state.push((table, rows));
            }
            Ok(state)
        })
        .await
        .unwrap()
}

/// bob has private data worth stealing: an unread direct message, a claimed task, context.
async fn seed(hub: &TestHub) -> (Client, String, Client, String) {
    let (bob, bob_token) = hub.agent("bob").await;
    let (mallory, mallory_token) = hub.agent("mallory").await;
    let (alice, alice_token) = hub.agent("alice").await;
    let sent = alice
        .call(
            "send_message",
            json!({"from_agent": "alice", "to_agent": "bob", "content": "bob's secret",
                   "auth_token": alice_token}),
        )
        .await;
    sent.ok();
    let task = bob
        .call(
            "create_task",
            json!({"created_by": "bob", "title": "bob's task", "auth_token": bob_token}),
        )
        .await;
    let task_id = task.ok()["task"]["id"].as_i64().unwrap();
    bob.call(
        "claim_task",
        json!({"agent_id": "bob", "task_id": task_id, "auth_token": bob_token}),
    )
    .await
    .ok();
    bob.call(
        "share_context",
        json!({"agent_id": "bob", "key": "k", "value": "v", "auth_token": bob_token}),
    )
    .await
    .ok();
    alice.close().await;
    (bob, bob_token, mallory, mallory_token)
}

fn expect_refused(tool: &str, case: &str, outcome: &crate::harness::Outcome, codes: &[&str]) {
    assert!(
        outcome.is_error && codes.contains(&outcome.json["error_code"].as_str().unwrap_or("")),
        "{tool} ({case}) must be refused with one of {codes:?}, got {}",
        outcome.json
    );
}

#[tokio::test]
async fn every_tool_refuses_what_the_token_does_not_prove() {
    let hub = enforce_hub().await;
    let (bob, _bob_token, mallory, mallory_token) = seed(&hub).await;
    let anonymous = hub.client().await;
    let as_mallory = hub.client_with_bearer(&mallory_token).await;
    let before = domain_state(&hub).await;

    let tools = anonymous.service.list_all_tools().await.unwrap();
    assert!(tools.len() >= 31, "the matrix covers the whole catalog");
    let mut covered = 0;
    for tool in &tools {
        let name = tool.name.as_ref();
        let def = registry().get(name).expect("listed tools are registered");
        let Some(caller_field) = def.caller_field else {
            // register_agent creates its caller; re-registration is tested below.
            assert_eq!(name, "register_agent");
            continue;
        };
        let mut args = required_args(tool);
        args.insert(caller_field.into(), json!("bob"));
        let args = Value::Object(args);

        let outcome = anonymous.call(name, args.clone()).await;
        expect_refused(name, "no token", &outcome, &["AUTH_TOKEN_REQUIRED"]);

        let mut garbage = args.clone();
        garbage["auth_token"] = json!("not-a-token");
        let outcome = anonymous.call(name, garbage).await;
        expect_refused(name, "garbage token", &outcome, &["AUTH_TOKEN_INVALID"]);

        // Mallory's valid token (as a bearer header) naming bob as the caller.
        let outcome = as_mallory.call(name, args.clone()).await;
        expect_refused(
            name,
            "another agent's token",
            &outcome,
            &["AUTH_TOKEN_INVALID"],
        );

        // Mallory as herself, aimed at bob's private data.
        if let Some(subject_field) = def.subject_field {
            let mut aimed = args.clone();
            aimed[caller_field] = json!("mallory");
            aimed[subject_field] = json!("bob");
            let outcome = as_mallory.call(name, aimed).await;
            expect_refused(
                name,
                "own token, bob's data",
                &outcome,
                &["FOREIGN_PRIVATE_DATA"],
            );
        }
        covered += 1;
    }
    assert!(covered >= 30);
    // Re-registering bob with mallory's token is refused too.
    let outcome = as_mallory
        .call(
            "register_agent",
            json!({"id": "bob", "name": "bob", "type": "x", "auth_token": mallory_token}),
        )
        .await;
    expect_refused(
        "register_agent",
        "another agent's token",
        &outcome,
        &["AUTH_TOKEN_INVALID"],
    );

    assert_eq!(
        domain_state(&hub).await,
        before,
        "refused calls changed nothing"
    );
    for client in [bob, mallory, anonymous, as_mallory] {
        client.close().await;
    }
    hub.stop().await;
}

#[tokio::test]
async fn snapshot_and_wait_read_only_the_callers_own_inbox() {
    let hub = enforce_hub().await;
    let (bob, bob_token, mallory, mallory_token) = seed(&hub).await;
    for tool in ["read_snapshot", "wait_for_updates"] {
        let outcome = mallory
            .call(
                tool,
                json!({"requesting_agent": "mallory", "agent_id": "bob",
                       "auth_token": mallory_token}),
            )
            .await;
        expect_refused(
            tool,
            "mallory reads bob",
            &outcome,
            &["FOREIGN_PRIVATE_DATA"],
        );
        assert!(!outcome.json.to_string().contains("bob's secret"));
    }
    // Bob's message is still unread and reaches bob.
    let inbox = bob
        .call(
            "read_messages",
            json!({"agent_id": "bob", "unread_only": true, "auth_token": bob_token}),
        )
        .await;
    assert!(
        inbox.ok().to_string().contains("bob's secret"),
        "{}",
        inbox.json
    );
    bob.close().await;
    mallory.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn warn_mode_allows_a_foreign_read_with_a_warning() {
    let hub = TestHub::start_with(&[("MCP_HUB_AUTH_MODE", "warn")]).await;
    let (mallory, token) = hub.agent("mallory").await;
    let outcome = mallory
        .call(
            "read_snapshot",
            json!({"requesting_agent": "mallory", "agent_id": "bob", "auth_token": token}),
        )
        .await;
    let warnings = outcome.ok()["warnings"].to_string();
    assert!(
        warnings.contains("another agent's private data"),
        "{warnings}"
    );
    mallory.close().await;
    hub.stop().await;
}

async fn task_of(client: &Client, creator: &str, token: &str) -> i64 {
    client
        .call(
            "create_task",
            json!({"created_by": creator, "title": "t", "auth_token": token}),
        )
        .await
        .ok()["task"]["id"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn privileged_roles_are_granted_by_the_operator_not_declared() {
    let hub = enforce_hub().await;
    let (bob, bob_token) = hub.agent("bob").await;
    let task_id = task_of(&bob, "bob", &bob_token).await;

    // Self-declared: registered as a worker, told how to get the role, may not delete.
    let mallory = hub.client().await;
    let outcome = mallory
        .call(
            "register_agent",
            json!({"id": "mallory", "name": "m", "type": "x", "role": "orchestrator"}),
        )
        .await;
    let body = outcome.ok();
    assert_eq!(body["agent"]["role"], "worker");
    assert!(
        body["warnings"]
            .to_string()
            .contains("MCP_HUB_PRIVILEGED_AGENTS")
    );
    let token = body["auth"]["token"].as_str().unwrap().to_string();
    let outcome = mallory
        .call(
            "delete_task",
            json!({"agent_id": "mallory", "id": task_id, "auth_token": token}),
        )
        .await;
    assert_eq!(outcome.error_code(), "NOT_TASK_OWNER");

    // Granted by the admin token.
    let boss = hub.client().await;
    let token = boss
        .register(
            "boss",
            json!({"role": "orchestrator", "admin_token": ADMIN_TOKEN}),
        )
        .await;
    let outcome = boss
        .call(
            "update_task",
            json!({"agent_id": "boss", "id": task_id, "title": "renamed",
                   "auth_token": token}),
        )
        .await;
    outcome.ok();

    // Granted by the allowlist (lead:orchestrator), no role argument needed.
    let lead = hub.client().await;
    let token = lead.register("lead", json!({})).await;
    let outcome = lead
        .call(
            "delete_task",
            json!({"agent_id": "lead", "id": task_id, "auth_token": token}),
        )
        .await;
    outcome.ok();
    for client in [bob, mallory, boss, lead] {
        client.close().await;
    }
    hub.stop().await;
}

#[tokio::test]
async fn observe_mode_keeps_a_declared_role_with_a_warning() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    let outcome = client
        .call(
            "register_agent",
            json!({"id": "o", "name": "o", "type": "x", "role": "orchestrator"}),
        )
        .await;
    let body = outcome.ok();
    assert_eq!(body["agent"]["role"], "orchestrator");
    assert!(body["warnings"].to_string().contains("role_self_declared"));
    client.close().await;
    hub.stop().await;
}
