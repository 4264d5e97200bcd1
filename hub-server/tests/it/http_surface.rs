//! The HTTP contract of /mcp and /health: handshake, Host/Origin guard, the session
//! recovery envelope, stateless fallback, the sessionless protocol revision, DELETE, GET.

use serde_json::{Value, json};

use crate::harness::{Client, TestHub, http, initialize_body, raw_session};

const CAPABILITIES: &str = "nano,blob_resolve,artifact_tickets,read_snapshot,sse_events,namespace_quotas,adaptive_consistency";

#[tokio::test]
async fn handshake_lists_the_tools_with_object_schemas() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    let info = client.service.peer_info().expect("server info");
    assert_eq!(info.server_info.as_ref().unwrap().name, "mcp-agent-hub");
    // One version everywhere: initialize's serverInfo and /health agree.
    assert_eq!(
        info.server_info.as_ref().unwrap().version,
        hub_server::VERSION
    );
    let health = hub.health().await;
    assert_eq!(health["version"], hub_server::VERSION);
    let tools = client.service.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for expected in [
        "register_agent",
        "update_runtime_profile",
        "list_agents",
        "get_onboarding",
        "send_message",
        "read_messages",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    for tool in &tools {
        assert_eq!(
            tool.input_schema.get("type"),
            Some(&json!("object")),
            "{}",
            tool.name
        );
        assert!(tool.description.as_deref().is_some_and(|d| d.len() > 20));
    }
    let send = tools.iter().find(|t| t.name == "send_message").unwrap();
    let required = send.input_schema["required"].as_array().unwrap();
    assert!(required.contains(&json!("from_agent")) && required.contains(&json!("content")));
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn foreign_host_and_origin_are_forbidden_on_every_route() {
    let hub = TestHub::start().await;
    let client = http();
    let health = format!("{}/health", hub.base_url());
    for (header, value) in [
        ("host", "evil.example"),
        ("host", "evil.example:3000"),
        ("origin", "http://evil.example"),
        ("origin", "null"),
    ] {
        let response = client
            .get(&health)
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{header}: {value}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["success"], json!(false));
    }
    let response = client
        .post(hub.url())
        .header("host", "rebind.attacker.test")
        .json(&initialize_body(1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // Loopback names and local browser origins pass.
    for (header, value) in [
        ("host", "localhost:3000"),
        ("origin", "http://localhost:5173"),
        ("origin", "http://127.0.0.1:3000"),
    ] {
        let response = client
            .get(&health)
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{header}: {value}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn health_reports_the_spec_fields_with_the_capabilities_header() {
    let hub = TestHub::start_with(&[("MCP_HUB_AUTH_MODE", "warn")]).await;
    let _session = raw_session(&hub.url()).await;
    let response = http()
        .get(format!("{}/health", hub.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-mcp-hub-capabilities"], CAPABILITIES);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["sessions"], 1);
    assert_eq!(body["auth_mode"], "warn");
    assert_eq!(body["namespace_quota_mode"], "off");
    assert_eq!(body["event_stream"]["endpoint"], "/events");
    assert_eq!(body["session_idle_timeout_ms"], 21_600_000);
    assert_eq!(body["session_gc_enabled"], true);
    assert_eq!(body["unknown_session_policy"], "error");
    hub.stop().await;
}

async fn post_raw(url: &str, session: Option<&str>, body: &Value) -> reqwest::Response {
    let mut request = http()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    request.json(body).send().await.unwrap()
}

fn assert_recovery(body: &Value, reason: &str, id: Value) {
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["id"], id);
    assert_eq!(body["error"]["code"], -32000);
    let data = &body["error"]["data"];
    assert_eq!(data["reinitialize_required"], true);
    assert_eq!(data["retryable"], true);
    assert_eq!(data["reason"], reason);
    assert_eq!(
        data["recovery_sequence"],
        json!([
            "initialize",
            "notifications/initialized",
            "retry_original_request_once"
        ])
    );
    assert_eq!(data["protocol_version"], "hub-protocol-2026.02");
    assert!(data["onboarding_hint"].as_str().is_some());
}

#[tokio::test]
async fn unknown_or_missing_session_gets_the_recovery_contract() {
    let hub = TestHub::start().await;
    let list = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"});

    let response = post_raw(&hub.url(), Some("no-such-session"), &list).await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-mcp-reinit-required"], "1");
    assert_eq!(
        response.headers()["x-mcp-error-reason"],
        "unknown_or_expired_session"
    );
    assert_eq!(response.headers()["x-mcp-hub-capabilities"], CAPABILITIES);
    let body: Value = response.json().await.unwrap();
    assert_recovery(&body, "unknown_or_expired_session", json!(7));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Unknown or expired MCP session")
    );

    let response = post_raw(&hub.url(), None, &list).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_recovery(&body, "server_not_initialized", json!(7));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Server not initialized")
    );

    for (session, status) in [(None, 400), (Some("no-such-session"), 404)] {
        let mut request = http().get(hub.url()).header("accept", "text/event-stream");
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status);
        assert_eq!(response.headers()["x-mcp-reinit-required"], "1");
        let body: Value = response.json().await.unwrap();
        assert_recovery(&body, "no_active_session", Value::Null);
    }

    // A stale id on a fresh initialize is ignored: a new session is issued.
    let response = post_raw(&hub.url(), Some("stale"), &initialize_body(1)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("mcp-session-id").is_some());
    hub.stop().await;
}

#[tokio::test]
async fn stateless_fallback_serves_a_request_for_an_unknown_session() {
    let hub =
        TestHub::start_with(&[("MCP_HUB_UNKNOWN_SESSION_POLICY", "stateless_fallback")]).await;
    let call = json!({
        "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "register_agent", "arguments": {"id": "fb", "name": "Fallback", "type": "test"}}
    });
    let response = post_raw(&hub.url(), Some("expired-after-restart"), &call).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-mcp-session-recovery"],
        "stateless_fallback"
    );
    assert!(response.headers().get("mcp-session-id").is_none());
    let body: Value = response.json().await.unwrap();
    let text = body["result"]["content"][0]["text"].as_str().unwrap();
    let result: Value = serde_json::from_str(text).unwrap();
    assert_eq!(result["success"], true);
    assert_eq!(result["agent"]["id"], "fb");
    // Without any session id the contract still asks for initialize.
    let response = post_raw(
        &hub.url(),
        None,
        &json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}),
    )
    .await;
    assert_eq!(response.status(), 400);
    hub.stop().await;
}

#[tokio::test]
async fn sessionless_protocol_revision_clients_work() {
    let hub = TestHub::start().await;
    let client = Client::connect_sessionless(&hub.url()).await;
    let token = client.register("modern", json!({})).await;
    assert_eq!(token.len(), 73);
    let sent = client
        .call(
            "send_message",
            json!({"from_agent": "modern", "content": "hi", "auth_token": token}),
        )
        .await;
    assert_eq!(sent.ok()["message"]["content"], "hi");
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn session_lifecycle_delete_reinitialize_and_accept_tolerance() {
    let hub = TestHub::start().await;
    let session = raw_session(&hub.url()).await;

    // initialize on a live session is refused.
    let response = post_raw(&hub.url(), Some(&session), &initialize_body(9)).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32600);

    // Clients that send no Accept header (or only JSON) still get a JSON answer.
    for accept in [None, Some("application/json")] {
        let mut request = http()
            .post(hub.url())
            .header("content-type", "application/json")
            .header("mcp-session-id", &session);
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let response = request
            .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "accept {accept:?}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let body: Value = response.json().await.unwrap();
        assert!(body["result"]["tools"].as_array().unwrap().len() >= 6);
    }

    // A second concurrent GET stream on one session is refused.
    let first = http()
        .get(hub.url())
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let second = http()
        .get(hub.url())
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 409);
    drop(first);

    let deleted = http()
        .delete(hub.url())
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let response = post_raw(
        &hub.url(),
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
    )
    .await;
    assert_eq!(response.status(), 404);
    let again = http()
        .delete(hub.url())
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    hub.stop().await;
}

#[tokio::test]
async fn unknown_routes_are_json_404s() {
    let hub = TestHub::start().await;
    let response = http()
        .get(format!("{}/nope", hub.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["success"], false);
    hub.stop().await;
}
