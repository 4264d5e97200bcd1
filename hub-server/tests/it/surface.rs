//! The MCP surface a connection sees: the catalog covers every listed tool, annotations agree
//! with what each tool's op does, tool profiles filter tools/list and refuse calls outside
//! them, and initialize carries the server instructions.

use std::collections::HashMap;

use hub_server::tools::surface::{self, Profile};
use hub_server::tools::{ToolKind, registry};
use rmcp::model::Tool;
use serde_json::json;

use crate::harness::{Client, TestHub};

async fn listed(client: &Client) -> Vec<Tool> {
    client.service.list_all_tools().await.expect("tools/list")
}

#[tokio::test]
async fn every_listed_tool_has_a_catalog_row_and_true_annotations() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    let tools = listed(&client).await;
    assert_eq!(tools.len(), registry().tools.len(), "full lists every tool");
    for tool in &tools {
        let name = tool.name.as_ref();
        let row = surface::entry(name)
            .unwrap_or_else(|| panic!("{name} has no row in tools::surface::CATALOG"));
        let def = registry().get(name).expect("registered");
        assert_eq!(row.category, def.category, "{name}: catalog category");
        let hints = tool.annotations.as_ref().expect("annotations");
        assert_eq!(hints.title.as_deref(), Some(row.title), "{name}");
        assert_eq!(hints.open_world_hint, Some(false), "{name}");
        // What the op does decides the hints: only pure reads are read-only; a read that
        // marks messages read changes state, but repeating it changes nothing more.
        let read_only = def.kind == ToolKind::Reads;
        assert_eq!(
            hints.read_only_hint,
            Some(read_only),
            "{name}: readOnlyHint"
        );
        if def.kind == ToolKind::MarksRead {
            assert_eq!(hints.idempotent_hint, Some(true), "{name}");
        }
        // MCP defines destructive/idempotent only for tools that write: a read-only tool
        // leaves them out; every writing tool states both.
        if read_only {
            assert_eq!(hints.destructive_hint, None, "{name}");
            assert_eq!(hints.idempotent_hint, None, "{name}");
        } else {
            assert!(hints.destructive_hint.is_some(), "{name}: destructiveHint");
            assert!(hints.idempotent_hint.is_some(), "{name}: idempotentHint");
        }
        // Tools that delete or replace say so.
        if name.starts_with("delete_") || name.starts_with("update_") {
            assert_eq!(hints.destructive_hint, Some(true), "{name}");
        }
    }
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn initialize_says_what_the_hub_is_for_and_where_to_start() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    let info = client.service.peer_info().expect("server info");
    let instructions = info.instructions.as_deref().expect("instructions");
    assert!(instructions.len() <= 1024, "{} bytes", instructions.len());
    assert!(instructions.contains("register_agent"));
    assert!(instructions.contains("tools=worker"));
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn a_profile_filters_tools_list_and_refuses_calls_outside_it() {
    let hub = TestHub::start().await;
    let worker = Client::connect(&format!("{}?tools=worker", hub.url()), None).await;
    let names: Vec<String> = listed(&worker)
        .await
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(names.len() <= 12, "{names:?}");
    for name in [
        "register_agent",
        "poll_and_claim",
        "read_messages",
        "wait_for_updates",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
    }
    assert!(!names.iter().any(|n| n == "create_task"));

    let token = worker.register("w1", json!({})).await;
    let refused = worker
        .call(
            "create_task",
            json!({"title": "t", "created_by": "w1", "auth_token": token}),
        )
        .await;
    assert_eq!(refused.error_code(), "TOOL_NOT_IN_PROFILE");
    assert_eq!(refused.json["profile"], "worker");
    assert!(
        hub.query("SELECT id FROM tasks").await.is_empty(),
        "nothing created"
    );
    // An allowed tool works on the same connection.
    worker
        .call(
            "send_message",
            json!({"from_agent": "w1", "content": "hi", "auth_token": token}),
        )
        .await
        .ok();

    // The header chooses too; observer sees only read-only tools (and register_agent).
    let mut headers = HashMap::new();
    headers.insert(
        http::HeaderName::from_static(surface::PROFILE_HEADER),
        http::HeaderValue::from_static("observer"),
    );
    let config =
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            hub.url(),
        )
        .custom_headers(headers);
    let observer = Client::connect_with(config).await;
    let tools = listed(&observer).await;
    assert!(!tools.is_empty());
    for tool in &tools {
        assert!(Profile::Observer.allows(&tool.name));
        let read_only = tool.annotations.as_ref().unwrap().read_only_hint == Some(true);
        assert!(read_only || tool.name == "register_agent", "{}", tool.name);
    }
    let refused = observer
        .call("send_message", json!({"from_agent": "w1", "content": "x"}))
        .await;
    assert_eq!(refused.error_code(), "TOOL_NOT_IN_PROFILE");

    // A profile name the hub does not know is a protocol error naming the choices.
    let bogus = Client::connect(&format!("{}?tools=admin", hub.url()), None).await;
    let error = bogus
        .service
        .list_all_tools()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("worker, orchestrator, observer or full"),
        "{error}"
    );

    for client in [worker, observer, bogus] {
        client.close().await;
    }
    hub.stop().await;
}
