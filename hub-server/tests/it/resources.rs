//! MCP resources through the rmcp client: list, templates, read each, a foreign inbox
//! refused under enforce, and subscribe → a committed write → notifications/resources/updated.
// resources/subscribe is legacy in rmcp 3.11 (2026-07-28 uses subscriptions/listen); the
// session protocol versions the hub serves use it.
#![allow(deprecated)]

use std::time::Duration;

use rmcp::handler::client::ClientHandler;
use rmcp::model::{
    ClientConfig, ReadResourceRequestParams, ResourceContents, ResourceUpdatedNotificationParam,
    SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::harness::TestHub;

/// A client that hands every resource-updated notification to the test.
#[derive(Clone)]
struct Watcher {
    updates: mpsc::UnboundedSender<String>,
}

impl ClientHandler for Watcher {
    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.updates.send(params.uri);
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }
}

type Session = RunningService<RoleClient, Watcher>;

async fn session(
    hub: &TestHub,
    bearer: Option<&str>,
) -> (Session, mpsc::UnboundedReceiver<String>) {
    let mut config = StreamableHttpClientTransportConfig::with_uri(hub.url());
    if let Some(token) = bearer {
        config = config.auth_header(token.to_string());
    }
    let (updates, received) = mpsc::unbounded_channel();
    let service = Watcher { updates }
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("MCP handshake");
    (service, received)
}

async fn read(session: &Session, uri: &str) -> Result<Value, rmcp::ServiceError> {
    let result = session
        .read_resource(ReadResourceRequestParams::new(uri))
        .await?;
    match &result.contents[..] {
        [
            ResourceContents::TextResourceContents {
                text, mime_type, ..
            },
        ] => {
            assert_eq!(mime_type.as_deref(), Some("application/json"));
            Ok(serde_json::from_str(text).expect("JSON text"))
        }
        other => panic!("{uri}: one JSON text content expected, got {other:?}"),
    }
}

/// The hub's refusal code carried in a JSON-RPC error's data.
fn refusal_code(error: rmcp::ServiceError) -> String {
    match error {
        rmcp::ServiceError::McpError(error) => error
            .data
            .as_ref()
            .and_then(|data| data["error_code"].as_str())
            .unwrap_or_else(|| panic!("no error_code in {error:?}"))
            .to_string(),
        other => panic!("expected an MCP error, got {other:?}"),
    }
}

/// The next notification, bounded so a missing one fails instead of hanging.
async fn next_update(received: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(20), received.recv())
        .await
        .expect("a notifications/resources/updated within 20 s")
        .expect("the session is open")
}

#[tokio::test]
async fn resources_are_listed_and_each_reads_through_its_tool() {
    let hub = TestHub::start_with(&[("MCP_HUB_MAX_MESSAGE_CONTENT_CHARS", "20000")]).await;
    let (alice, _) = hub.agent("alice").await;
    let (bob, bob_token) = hub.agent("bob").await;
    // 10 KB: the inbox resource carries whole messages.
    let long = "x".repeat(10 * 1024);
    alice
        .call(
            "send_message",
            json!({"from_agent": "alice", "to_agent": "bob", "content": long}),
        )
        .await
        .ok();
    let task = alice
        .call(
            "create_task",
            json!({"created_by": "alice", "title": "ship it", "namespace": "ns1"}),
        )
        .await;
    let task_id = task.ok()["task"]["id"].as_i64().unwrap();

    let (viewer, _) = session(&hub, Some(&bob_token)).await;
    let listed = viewer.list_all_resources().await.expect("resources/list");
    let uris: Vec<&str> = listed.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, ["hub://agents", "hub://tasks"]);
    let templates = viewer
        .list_all_resource_templates()
        .await
        .expect("resources/templates/list");
    let templates: Vec<&str> = templates.iter().map(|t| t.uri_template.as_str()).collect();
    assert!(templates.contains(&"hub://inbox/{agent}"), "{templates:?}");
    assert!(templates.contains(&"hub://tasks/{id}?agent={agent}"));

    let agents = read(&viewer, "hub://agents").await.unwrap();
    let ids: Vec<&str> = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"alice") && ids.contains(&"bob"), "{agents}");

    let tasks = read(&viewer, "hub://tasks?namespace=ns1&status=pending")
        .await
        .unwrap();
    assert_eq!(tasks["tasks"][0]["id"], task_id, "{tasks}");
    let none = read(&viewer, "hub://tasks?namespace=other").await.unwrap();
    assert_eq!(none["tasks"], json!([]));

    let packet = read(&viewer, &format!("hub://tasks/{task_id}?agent=bob"))
        .await
        .unwrap();
    assert_eq!(packet["task"]["id"], task_id, "{packet}");
    assert!(packet["depends_on"].is_array());

    let inbox = read(&viewer, "hub://inbox/bob").await.unwrap();
    assert_eq!(
        inbox["messages"][0]["content"],
        json!(long),
        "whole content"
    );
    assert_eq!(inbox["messages"][0]["from_agent"], "alice");

    // Browsing is not reading: the message is still unread.
    let unread = bob
        .call(
            "read_messages",
            json!({"agent_id": "bob", "unread_only": true, "response_mode": "compact"}),
        )
        .await;
    assert_eq!(
        unread.ok()["messages"].as_array().map(Vec::len),
        Some(1),
        "{}",
        unread.json
    );

    // Bad URIs name what is wrong.
    for (uri, part) in [
        ("hub://nope", "unknown resource"),
        ("hub://tasks/abc", "positive integer"),
        ("hub://tasks?status=todo", "status"),
        ("hub://tasks/1", "?agent="),
    ] {
        let error = read(&viewer, uri).await.expect_err(uri);
        assert!(error.to_string().contains(part), "{uri}: {error}");
    }
    viewer.cancel().await.ok();
    hub.stop().await;
}

#[tokio::test]
async fn enforce_refuses_a_foreign_inbox_and_an_anonymous_read() {
    let hub = TestHub::start_with(&[("MCP_HUB_AUTH_MODE", "enforce")]).await;
    let (_alice, alice_token) = hub.agent("alice").await;
    let (bob, bob_token) = hub.agent("bob").await;
    bob.call(
        "send_message",
        json!({"from_agent": "bob", "to_agent": "bob", "content": "private",
               "auth_token": bob_token}),
    )
    .await
    .ok();

    let (mallory, _) = session(&hub, Some(&alice_token)).await;
    // alice's own token aimed at bob's inbox: refused, for reads and subscriptions.
    let error = read(&mallory, "hub://inbox/bob")
        .await
        .expect_err("foreign");
    assert_eq!(refusal_code(error), "AUTH_TOKEN_INVALID");
    let error = mallory
        .subscribe(SubscribeRequestParams::new("hub://inbox/bob"))
        .await
        .expect_err("foreign subscription");
    assert_eq!(refusal_code(error), "AUTH_TOKEN_INVALID");
    // Her own inbox and the board are hers to read when she says who she is.
    let own = read(&mallory, "hub://inbox/alice").await.unwrap();
    assert_eq!(own["messages"], json!([]));
    read(&mallory, "hub://agents?agent=alice").await.unwrap();
    // Naming someone else as the caller does not help.
    let error = read(&mallory, "hub://agents?agent=bob")
        .await
        .expect_err("as bob");
    assert_eq!(refusal_code(error), "AUTH_TOKEN_INVALID");

    let (anonymous, _) = session(&hub, None).await;
    let error = read(&anonymous, "hub://agents")
        .await
        .expect_err("anonymous");
    assert_eq!(refusal_code(error), "AUTH_TOKEN_REQUIRED");
    let error = read(&anonymous, "hub://inbox/bob")
        .await
        .expect_err("anonymous");
    assert_eq!(refusal_code(error), "AUTH_TOKEN_REQUIRED");
    mallory.cancel().await.ok();
    anonymous.cancel().await.ok();
    hub.stop().await;
}

#[tokio::test]
async fn a_subscribed_resource_is_notified_when_a_write_moves_its_stream() {
    let hub = TestHub::start().await;
    let (alice, _) = hub.agent("alice").await;
    let (_bob, bob_token) = hub.agent("bob").await;
    let (watcher, mut updates) = session(&hub, Some(&bob_token)).await;
    watcher
        .subscribe(SubscribeRequestParams::new("hub://inbox/bob"))
        .await
        .expect("subscribe inbox");
    watcher
        .subscribe(SubscribeRequestParams::new("hub://tasks"))
        .await
        .expect("subscribe tasks");

    // The watcher runs wait_for_updates' wait, whose visibility rule live.rs tests: a message
    // to carol commits first here, and the notification that follows is bob's inbox.
    hub.register_ids(&["carol"]).await;
    alice
        .call(
            "send_message",
            json!({"from_agent": "alice", "to_agent": "carol", "content": "not for bob"}),
        )
        .await
        .ok();
    alice
        .call(
            "send_message",
            json!({"from_agent": "alice", "to_agent": "bob", "content": "ping"}),
        )
        .await
        .ok();
    assert_eq!(next_update(&mut updates).await, "hub://inbox/bob");
    let inbox = read(&watcher, "hub://inbox/bob").await.unwrap();
    assert_eq!(inbox["messages"][0]["content"], "ping");

    alice
        .call("create_task", json!({"created_by": "alice", "title": "t"}))
        .await
        .ok();
    assert_eq!(next_update(&mut updates).await, "hub://tasks");

    // After unsubscribe a message notifies nothing; the task written after it proves the
    // order (notifications of one session arrive in order).
    watcher
        .unsubscribe(UnsubscribeRequestParams::new("hub://inbox/bob"))
        .await
        .expect("unsubscribe");
    alice
        .call(
            "send_message",
            json!({"from_agent": "alice", "to_agent": "bob", "content": "pong"}),
        )
        .await
        .ok();
    alice
        .call("create_task", json!({"created_by": "alice", "title": "t2"}))
        .await
        .ok();
    assert_eq!(next_update(&mut updates).await, "hub://tasks");
    watcher.cancel().await.ok();
    hub.stop().await;
}
