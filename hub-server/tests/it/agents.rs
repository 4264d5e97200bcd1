//! Agent tools and authentication: registration, onboarding, runtime profiles, negotiation,
//! auth modes (observe / warn / enforce), tokens at rest.

use serde_json::json;

use crate::harness::{TestHub, skip_unless_sqlite};

#[tokio::test]
async fn registration_onboarding_depends_on_lifecycle_and_reregistration() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    let tool_count = client.service.list_all_tools().await.unwrap().len();

    let first = client
        .call(
            "register_agent",
            json!({"id": "p1", "name": "P", "type": "claude"}),
        )
        .await;
    let body = first.ok();
    assert_eq!(body["registration"]["is_new"], true);
    assert_eq!(body["registration"]["onboarding_mode"], "full");
    assert_eq!(body["registration"]["role"], "worker");
    assert_eq!(body["onboarding"]["tool_count"], tool_count);
    assert_eq!(
        body["onboarding"]["protocol_version"],
        "hub-protocol-2026.02"
    );
    assert_eq!(
        body["onboarding"]["quickstart"].as_array().unwrap().len(),
        7
    );
    assert!(body["onboarding"]["rules"]["done_gate"]["confidence_floor"].is_number());
    assert!(body["onboarding"]["tool_catalog"]["messaging"].is_array());
    assert_eq!(body["agent"]["status"], "online");
    assert_eq!(body["agent"]["lifecycle"], "persistent");
    let token = body["auth"]["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 73);

    let ephemeral = client
        .call(
            "register_agent",
            json!({"id": "e1", "name": "E", "type": "codex", "lifecycle": "ephemeral"}),
        )
        .await;
    let body = ephemeral.ok();
    assert_eq!(body["registration"]["onboarding_mode"], "compact");
    assert!(body["onboarding"]["tool_names"].is_array());
    assert!(body["onboarding"].get("tool_catalog").is_none());
    let ephemeral_token = body["auth"]["token"].as_str().unwrap().to_string();

    // Same id again, with its token: not new, no onboarding detail, same token, and the
    // omitted lifecycle keeps its stored value (D34).
    let again = client
        .call(
            "register_agent",
            json!({"id": "e1", "name": "E2", "type": "codex", "auth_token": ephemeral_token}),
        )
        .await;
    let body = again.ok();
    assert_eq!(body["registration"]["is_new"], false);
    assert_eq!(body["registration"]["onboarding_mode"], "none");
    assert!(body["onboarding"]["quickstart"].is_array());
    assert!(body["onboarding"].get("rules").is_none());
    assert_eq!(body["auth"]["token"], json!(ephemeral_token));
    assert_eq!(body["agent"]["lifecycle"], "ephemeral");
    assert_eq!(body["agent"]["name"], "E2");
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn runtime_profiles_are_inferred_and_warned_about() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    let cases = [
        (json!({"has_git": true, "file_count": 120}), "repo", None),
        (
            json!({"empty_dir": true}),
            "isolated",
            Some("isolated_runtime_detected:"),
        ),
        (json!({}), "unknown", Some("runtime_mode_unknown:")),
        (json!({"mode": "repo", "empty_dir": true}), "repo", None),
    ];
    for (index, (profile, mode, warning)) in cases.into_iter().enumerate() {
        let outcome = client
            .call(
                "register_agent",
                json!({"id": format!("rp{index}"), "name": "R", "type": "t", "runtime_profile": profile}),
            )
            .await;
        let body = outcome.ok();
        assert_eq!(body["agent"]["runtime_mode"], mode, "{profile}");
        assert_eq!(body["runtime_profile"]["mode"], mode);
        assert_eq!(body["runtime_profile"]["source"], "server_inferred");
        let warnings = body["warnings"].as_array().unwrap();
        match warning {
            Some(prefix) => assert!(warnings[0].as_str().unwrap().starts_with(prefix)),
            None => assert!(warnings.is_empty()),
        }
        let strategy = &body["runtime_guidance"]["strategy"];
        let expected = match mode {
            "repo" => "direct_repo_execution",
            "isolated" => "repo_isolated_handoff",
            _ => "runtime_discovery",
        };
        assert_eq!(strategy, expected);
    }

    let token = client
        .register("mover", json!({"runtime_profile": {"has_git": true}}))
        .await;
    let moved = client
        .call(
            "update_runtime_profile",
            json!({"agent_id": "mover", "auth_token": token, "runtime_profile": {"empty_dir": true}}),
        )
        .await;
    assert_eq!(moved.ok()["agent"]["runtime_mode"], "isolated");
    let missing = client
        .call(
            "update_runtime_profile",
            json!({"agent_id": "ghost", "runtime_profile": {"mode": "repo"}}),
        )
        .await;
    assert_eq!(missing.error_code(), "AGENT_NOT_FOUND");
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn capability_negotiation_picks_what_both_sides_support() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    let rich = client
        .call(
            "register_agent",
            json!({"id": "n1", "name": "N", "type": "t", "client_capabilities": {
                "response_modes": ["NANO", "tiny"], "snapshot_reads": true,
                "push_transports": ["sse", "ws"], "blob_resolve": true}}),
        )
        .await;
    let negotiated = &rich.ok()["capability_negotiation"]["negotiated"];
    assert_eq!(negotiated["preferred_read_mode"], "nano");
    assert_eq!(negotiated["snapshot_tool"], "read_snapshot");
    assert_eq!(negotiated["push_transport"], "sse_events");
    assert_eq!(negotiated["wait_for_updates_mode"], "nano");
    assert_eq!(negotiated["blob_handoff_mode"], "hash_ref");

    let plain = client
        .call(
            "register_agent",
            json!({"id": "n2", "name": "N", "type": "t"}),
        )
        .await;
    let negotiated = &plain.ok()["capability_negotiation"]["negotiated"];
    assert_eq!(negotiated["preferred_read_mode"], "compact");
    assert_eq!(negotiated["snapshot_tool"], "manual_reads");
    assert_eq!(negotiated["push_transport"], "wait_for_updates");
    assert_eq!(negotiated["wait_for_updates_mode"], "micro");

    // A websocket-only client is not offered a transport the hub does not serve (D35).
    let ws = client
        .call(
            "register_agent",
            json!({"id": "n3", "name": "N", "type": "t", "client_capabilities": {"push_transports": ["websocket"]}}),
        )
        .await;
    assert_eq!(
        ws.ok()["capability_negotiation"]["negotiated"]["push_transport"],
        "wait_for_updates"
    );
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn enforce_mode_refuses_missing_wrong_and_borrowed_tokens() {
    let hub = TestHub::start_with(&[("MCP_HUB_AUTH_MODE", "enforce")]).await;
    let (alice, alice_token) = hub.agent("alice").await;
    let (_bob, bob_token) = hub.agent("bob").await;

    let missing = alice
        .call(
            "send_message",
            json!({"from_agent": "alice", "to_agent": "bob", "content": "x"}),
        )
        .await;
    assert_eq!(missing.error_code(), "AUTH_TOKEN_REQUIRED");
    assert_eq!(missing.json["auth_mode"], "enforce");

    let wrong = alice
        .call(
            "send_message",
            json!({"from_agent": "alice", "content": "x", "auth_token": "not-a-token"}),
        )
        .await;
    assert_eq!(wrong.error_code(), "AUTH_TOKEN_INVALID");

    // Bob's token cannot speak for Alice.
    let borrowed = alice
        .call(
            "send_message",
            json!({"from_agent": "alice", "content": "x", "auth_token": bob_token}),
        )
        .await;
    assert_eq!(borrowed.error_code(), "AUTH_TOKEN_INVALID");

    // Reading someone else's inbox with your own token fails: the inbox owner is the caller.
    let snoop = alice
        .call(
            "read_messages",
            json!({"agent_id": "bob", "auth_token": alice_token}),
        )
        .await;
    assert_eq!(snoop.error_code(), "AUTH_TOKEN_INVALID");

    // Anonymous calls are refused too (D2).
    let anonymous = alice.call("list_agents", json!({})).await;
    assert_eq!(anonymous.error_code(), "AUTH_TOKEN_REQUIRED");

    let good = alice
        .call(
            "send_message",
            json!({"from_agent": "alice", "to_agent": "bob", "content": "hi", "auth_token": alice_token}),
        )
        .await;
    good.ok();

    // The token also works as a bearer header, keeping it out of the arguments.
    let bearer = hub.client_with_bearer(&bob_token).await;
    let inbox = bearer
        .call(
            "read_messages",
            json!({"agent_id": "bob", "response_mode": "compact"}),
        )
        .await;
    assert_eq!(inbox.ok()["messages"].as_array().unwrap().len(), 1);

    // Re-registering an existing id needs its token and never reveals it (D3).
    let hijack = alice
        .call(
            "register_agent",
            json!({"id": "bob", "name": "Mallory", "type": "evil"}),
        )
        .await;
    assert_eq!(hijack.error_code(), "AUTH_TOKEN_REQUIRED");
    assert!(!hijack.json.to_string().contains(&bob_token));
    let hijack = alice
        .call(
            "register_agent",
            json!({"id": "bob", "name": "Mallory", "type": "evil", "auth_token": alice_token}),
        )
        .await;
    assert_eq!(hijack.error_code(), "AUTH_TOKEN_INVALID");
    let agents = alice
        .call(
            "list_agents",
            json!({"agent_id": "alice", "auth_token": alice_token}),
        )
        .await;
    let bob = agents.ok()["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "bob")
        .cloned()
        .unwrap();
    assert_eq!(
        bob["name"], "bob",
        "a refused re-registration changes nothing"
    );
    hub.stop().await;
}

#[tokio::test]
async fn warn_mode_adds_warnings_and_observe_rotates_tokens_on_tokenless_reregistration() {
    let hub = TestHub::start_with(&[("MCP_HUB_AUTH_MODE", "warn")]).await;
    let (client, token) = hub.agent("w").await;
    let unauthenticated = client
        .call("send_message", json!({"from_agent": "w", "content": "x"}))
        .await;
    let body = unauthenticated.ok();
    assert_eq!(body["auth_mode"], "warn");
    assert!(body["warnings"][0].as_str().unwrap().contains("enforce"));
    let authenticated = client
        .call(
            "send_message",
            json!({"from_agent": "w", "content": "x", "auth_token": token}),
        )
        .await;
    assert!(authenticated.ok().get("warnings").is_none());

    // Tokenless re-registration outside enforce: a new token, the old one revoked.
    let again = client
        .call(
            "register_agent",
            json!({"id": "w", "name": "w", "type": "test"}),
        )
        .await;
    let body = again.ok();
    assert_eq!(body["auth"]["rotated"], true);
    let new_token = body["auth"]["token"].as_str().unwrap();
    assert_ne!(new_token, token);
    let old = client
        .call(
            "send_message",
            json!({"from_agent": "w", "content": "x", "auth_token": token}),
        )
        .await;
    assert!(
        old.ok()["warnings"][0]
            .as_str()
            .unwrap()
            .contains("invalid")
    );
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn tokens_and_message_bodies_never_reach_the_database_in_clear() {
    if skip_unless_sqlite("reads the SQLite file directly after the hub stopped") {
        return;
    }
    let hub = TestHub::start().await;
    // Direct messages go to registered agents only (RECIPIENT_NOT_FOUND).
    hub.register_ids(&["other"]).await;
    let (client, token) = hub.agent("secretive").await;
    let secret_body = "the launch code is 0000-SECRET-BODY";
    client
        .call(
            "send_message",
            json!({"from_agent": "secretive", "to_agent": "other", "content": secret_body, "auth_token": token}),
        )
        .await
        .ok();
    client.close().await;
    let db_path = hub.db_path();
    let _keep_dir = hub.data_dir.clone();
    hub.stop().await;
    let conn = rusqlite::Connection::open(db_path).unwrap();
    let token_rows: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM agent_tokens WHERE CAST(token_sha256 AS TEXT) = ?1",
            [&token],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(token_rows, 0);
    let mut stmt = conn.prepare("SELECT details FROM activity_log").unwrap();
    let details: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!details.is_empty());
    for detail in details {
        assert!(!detail.contains(&token), "token in activity: {detail}");
        assert!(
            !detail.contains("SECRET"),
            "message body in activity: {detail}"
        );
    }
}

#[tokio::test]
async fn list_agents_modes_and_whole_registry_summary() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    for (id, lifecycle, profile) in [
        ("l1", "persistent", json!({"has_git": true})),
        ("l2", "ephemeral", json!({"empty_dir": true})),
        ("l3", "persistent", json!({})),
    ] {
        client
            .register(
                id,
                json!({"lifecycle": lifecycle, "runtime_profile": profile}),
            )
            .await;
    }
    let full = client.call("list_agents", json!({"limit": 2})).await;
    let agents = full.ok()["agents"].as_array().unwrap().clone();
    assert_eq!(agents.len(), 2);
    assert!(agents[0].get("runtime_profile_json").is_some());
    assert!(
        full.json.get("success").is_none(),
        "read tools carry no success key"
    );

    let compact = client
        .call("list_agents", json!({"response_mode": "compact"}))
        .await;
    let first = &compact.ok()["agents"][0];
    assert!(first.get("runtime_profile_json").is_none());
    assert!(first.get("lifecycle").is_some());

    let summary = client
        .call(
            "list_agents",
            json!({"response_mode": "summary", "limit": 1}),
        )
        .await;
    let summary = &summary.ok()["summary"];
    assert_eq!(summary["total"], 3);
    assert_eq!(summary["online"], 3);
    assert_eq!(summary["ephemeral"], 1);
    assert_eq!(summary["runtime_repo"], 1);
    assert_eq!(summary["runtime_isolated"], 1);
    assert_eq!(summary["runtime_unknown"], 1);

    let bad = client
        .call("list_agents", json!({"response_mode": "verbose"}))
        .await;
    assert_eq!(
        bad.error_code(),
        "INVALID_ARGUMENT",
        "an invalid enum value"
    );
    assert_eq!(bad.json["field"], "response_mode");

    let onboarding = client
        .call(
            "get_onboarding",
            json!({"agent_id": "l1", "mode": "compact", "role": "reviewer", "runtime_mode": "isolated", "empty_dir": true}),
        )
        .await;
    let body = onboarding.ok();
    assert_eq!(body["role_guidance"]["role"], "reviewer");
    assert!(
        body["role_guidance"]["primary_tools"]
            .as_array()
            .unwrap()
            .contains(&json!("resolve_consensus"))
    );
    let cautions = body["runtime_guidance"]["cautions"].as_array().unwrap();
    assert!(
        cautions
            .iter()
            .any(|c| c.as_str().unwrap().contains("empty_dir=true"))
    );
    assert!(body["onboarding"]["tool_names"].is_array());
    client.close().await;
    hub.stop().await;
}
