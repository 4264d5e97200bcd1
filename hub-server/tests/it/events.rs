//! GET /events: hello, update after a write, ids on every event, resume with Last-Event-ID,
//! heartbeats, caps (429), auth (401) and bad input (400).

use futures::StreamExt;
use serde_json::{Value, json};

use crate::harness::{Client, TestHub, http};

/// Reads SSE events from a streaming response.
pub(crate) struct SseReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

#[derive(Debug)]
pub(crate) struct SseEvent {
    pub(crate) name: String,
    id: Option<String>,
    data: Value,
}

impl SseReader {
    pub(crate) fn new(response: reqwest::Response) -> Self {
        SseReader {
            stream: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event with data (keep-alive comments are skipped).
    pub(crate) async fn next(&mut self) -> SseEvent {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                let (mut name, mut id, mut data) = (String::from("message"), None, String::new());
                for line in raw.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return SseEvent {
                    name,
                    id,
                    data: serde_json::from_str(&data).expect("event data is JSON"),
                };
            }
            let chunk = self
                .stream
                .next()
                .await
                .expect("stream still open")
                .expect("chunk");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

pub(crate) async fn open(
    hub: &TestHub,
    query: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let mut request = http().get(format!("{}/events?{query}", hub.base_url()));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.unwrap()
}

async fn send_to(client: &Client, to: &str) {
    client
        .call(
            "send_message",
            json!({"from_agent": "s", "to_agent": to, "content": "ping"}),
        )
        .await
        .ok();
}

#[tokio::test]
async fn hello_then_update_after_a_write_each_with_an_id() {
    let hub = TestHub::start().await;
    // Direct messages go to registered agents only (RECIPIENT_NOT_FOUND).
    hub.register_ids(&["someone-else", "e"]).await;
    let sender = hub.client().await;
    let response = open(&hub, "agent_id=e&streams=messages", None).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert!(response.headers().get("x-mcp-hub-capabilities").is_some());
    let mut events = SseReader::new(response);
    let hello = events.next().await;
    assert_eq!(hello.name, "hello");
    assert_eq!(hello.data["success"], true);
    assert_eq!(hello.data["mode"], "compact");
    assert_eq!(hello.data["streams"], json!(["messages"]));
    assert_eq!(hello.id.as_deref(), hello.data["cursor"].as_str());

    send_to(&sender, "someone-else").await; // invisible to e: no update
    send_to(&sender, "e").await;
    let update = events.next().await;
    assert_eq!(update.name, "update");
    assert_eq!(update.data["changed"], true);
    assert_eq!(update.data["streams"], json!(["messages"]));
    assert_eq!(update.id.as_deref(), update.data["cursor"].as_str());
    assert_ne!(update.id, hello.id);
    hub.stop().await;
}

#[tokio::test]
async fn reconnecting_with_last_event_id_delivers_what_was_missed() {
    let hub = TestHub::start().await;
    // Direct messages go to registered agents only (RECIPIENT_NOT_FOUND).
    hub.register_ids(&["someone-else", "r"]).await;
    let sender = hub.client().await;
    let mut events = SseReader::new(open(&hub, "agent_id=r&response_mode=nano", None).await);
    let hello = events.next().await;
    let last_id = hello.id.clone().expect("hello has an id");
    drop(events);

    send_to(&sender, "r").await; // happens while disconnected

    let mut events =
        SseReader::new(open(&hub, "agent_id=r&response_mode=nano", Some(&last_id)).await);
    let hello = events.next().await;
    assert_eq!(
        hello.data["cursor"],
        json!(last_id),
        "hello reports the resume point"
    );
    let update = events.next().await;
    assert_eq!(update.name, "update");
    assert_eq!(update.data["c"], 1);
    assert!(
        update.data["s"]
            .as_array()
            .unwrap()
            .contains(&json!("messages"))
    );
    assert_eq!(update.id.as_deref(), update.data["u"].as_str());

    // ?cursor= works the same way.
    let query = format!("agent_id=r&response_mode=nano&cursor={last_id}");
    let mut events = SseReader::new(open(&hub, &query, None).await);
    events.next().await;
    assert_eq!(events.next().await.name, "update");
    hub.stop().await;
}

#[tokio::test]
async fn heartbeats_follow_silence() {
    let hub = TestHub::start_with(&[("MCP_HUB_EVENT_STREAM_HEARTBEAT_MS", "2000")]).await;
    let mut events = SseReader::new(open(&hub, "agent_id=quiet&streams=messages", None).await);
    let hello = events.next().await;
    let heartbeat = events.next().await;
    assert_eq!(heartbeat.name, "heartbeat");
    assert_eq!(
        heartbeat.data,
        json!({"changed": false, "cursor": hello.data["cursor"]})
    );
    assert!(heartbeat.id.is_some());
    hub.stop().await;
}

#[tokio::test]
async fn caps_refuse_extra_streams_with_429() {
    let hub = TestHub::start_with(&[
        ("MCP_HUB_EVENT_STREAM_MAX_PER_AGENT", "1"),
        ("MCP_HUB_EVENT_STREAM_MAX_TOTAL", "2"),
    ])
    .await;
    let mut first = SseReader::new(open(&hub, "agent_id=a", None).await);
    first.next().await;
    let second = open(&hub, "agent_id=a", None).await;
    assert_eq!(second.status(), 429);
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["error_code"], "EVENT_STREAM_LIMIT");

    let mut other = SseReader::new(open(&hub, "agent_id=b", None).await);
    other.next().await;
    let third = open(&hub, "agent_id=c", None).await;
    assert_eq!(third.status(), 429, "total cap");
    hub.stop().await;
}

#[tokio::test]
async fn auth_and_bad_input() {
    let hub = TestHub::start_with(&[("MCP_HUB_AUTH_MODE", "enforce")]).await;
    let (_client, token) = hub.agent("secure").await;
    let missing = open(&hub, "agent_id=secure", None).await;
    assert_eq!(missing.status(), 401);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error_code"], "AUTH_TOKEN_REQUIRED");

    let bearer = http()
        .get(format!("{}/events?agent_id=secure", hub.base_url()))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    let mut events = SseReader::new(bearer);
    assert_eq!(events.next().await.name, "hello");

    let query_token = open(&hub, &format!("agent_id=secure&auth_token={token}"), None).await;
    assert_eq!(query_token.status(), 200);

    let no_agent = open(&hub, "streams=messages", None).await;
    assert_eq!(no_agent.status(), 400);
    let bad_cursor = open(
        &hub,
        &format!("agent_id=secure&cursor=1.2&auth_token={token}"),
        None,
    )
    .await;
    assert_eq!(bad_cursor.status(), 400);
    let body: Value = bad_cursor.json().await.unwrap();
    assert_eq!(body["error"], "Invalid cursor format");
    hub.stop().await;
}
