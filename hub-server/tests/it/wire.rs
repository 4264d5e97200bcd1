//! The HTTP wire under bad input and load: malformed, truncated, oversized and mistyped
//! bodies each get a JSON 4xx (a proptest over raw bodies: never a 5xx, never a dropped
//! connection); header-read and idle timeouts close stuck connections but not open
//! streams; past the connection cap the oldest idle connection makes room, busy ones get a
//! 503 JSON, and `/health` keeps answering — also in a child hub whose open-file limit is
//! lowered to 256 and flooded with 1,124 idle clients.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::events::{SseReader, open};
use crate::harness::{TestHub, http, initialize_body, raw_session};

/// A guard against a hung test, not a speed claim.
const PATIENCE: Duration = Duration::from_secs(30);

/// Sends raw bytes, returns everything the server sent until it closed the connection.
async fn raw_exchange(address: &str, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .ok();
    answer
}

/// Status and JSON body of a raw HTTP/1.1 response.
fn parse_response(raw: &[u8]) -> (u16, String, Value) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a full response");
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    let json = serde_json::from_str(&body).unwrap_or_else(|_| panic!("JSON body: {text}"));
    (status, head.to_ascii_lowercase(), json)
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&tail[..size]);
        rest = &tail[size + 2..];
    }
    out
}

fn post_head(host: &str, extra: &str) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{extra}"
    )
}

/// POSTs `body` to /mcp on `session`; status and JSON body (panics on a dropped connection).
async fn post(url: &str, session: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let response = http()
        .post(url)
        .header("content-type", content_type)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .body(body)
        .send()
        .await
        .expect("an answer, not a dropped connection");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: {text}"));
    (status, json)
}

#[tokio::test]
async fn malformed_bodies_get_json_errors_with_the_right_status() {
    let hub = TestHub::start().await;
    let url = hub.url();
    let session = raw_session(&url).await;
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let call = |params: Value| {
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params})
            .to_string()
            .into_bytes()
    };
    let table: Vec<(&str, &str, Vec<u8>, u16, i64)> = vec![
        (
            "truncated",
            "application/json",
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/li"#.to_vec(),
            400,
            -32700,
        ),
        (
            "invalid utf-8",
            "application/json",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\"}".to_vec(),
            400,
            -32700,
        ),
        (
            "1e400",
            "application/json",
            br#"{"jsonrpc":"2.0","id":1e400,"method":"ping"}"#.to_vec(),
            400,
            -32700,
        ),
        (
            "nesting past 128",
            "application/json",
            deep.into_bytes(),
            400,
            -32700,
        ),
        ("empty", "application/json", Vec::new(), 400, -32700),
        ("batch", "application/json", b"[]".to_vec(), 400, -32600),
        (
            "not json-rpc",
            "application/json",
            br#"{"hello":"world"}"#.to_vec(),
            400,
            -32600,
        ),
        (
            "tools/call without name",
            "application/json",
            call(json!({"arguments": {}})),
            400,
            -32602,
        ),
        (
            "tools/call with array arguments",
            "application/json",
            call(json!({"name": "list_agents", "arguments": [1, 2]})),
            400,
            -32602,
        ),
        (
            "text/plain",
            "text/plain",
            call(json!({"name": "list_agents"})),
            415,
            -32600,
        ),
        (
            "too large",
            "application/json",
            vec![b' '; 300 * 1024],
            413,
            -32600,
        ),
    ];
    for (case, content_type, body, status, code) in table {
        let (got, json) = post(&url, &session, content_type, body).await;
        assert_eq!(got, status, "{case}: {json}");
        assert_eq!(json["error"]["code"], code, "{case}: {json}");
        assert!(json["error"]["message"].is_string(), "{case}: {json}");
    }
    // A well-formed call still works on the same session.
    let (status, json) = post(
        &url,
        &session,
        "application/json",
        call(json!({"name": "list_agents", "arguments": {}})),
    )
    .await;
    assert_eq!(status, 200, "{json}");
    hub.stop().await;
}

#[tokio::test]
async fn broken_bodies_are_400_and_413_closes_the_connection() {
    let hub = TestHub::start().await;
    let address = hub.handle.addresses[0].to_string();
    let session = raw_session(&hub.url()).await;
    let head = post_head(&address, &format!("mcp-session-id: {session}\r\n"));

    // A body shorter than its Content-Length: the client gave up sending.
    let mut stream = TcpStream::connect(&address).await.unwrap();
    let short = format!("{head}Content-Length: 100\r\n\r\n{{\"jsonrpc\":");
    stream.write_all(short.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .ok();
    let (status, _, json) = parse_response(&answer);
    assert_eq!(status, 400, "not 'too large': {json}");

    // A bad chunk size.
    let chunked = format!(
        "{head}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n"
    );
    let (status, _, json) = parse_response(&raw_exchange(&address, chunked.as_bytes()).await);
    assert_eq!(status, 400, "{json}");

    // Declared too large: 413 JSON with Connection: close, and the server does close.
    let large = format!("{head}Content-Length: 10000000\r\n\r\n{{");
    let answer = raw_exchange(&address, large.as_bytes()).await;
    let (status, head_text, json) = parse_response(&answer);
    assert_eq!(status, 413, "{json}");
    assert!(head_text.contains("connection: close"), "{head_text}");
    assert_eq!(json["error"]["code"], -32600);

    // Other routes: every error body is JSON too.
    let response = http()
        .put(format!("{}/mcp", hub.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert!(response.json::<Value>().await.is_ok());
    hub.stop().await;
}

/// Raw bodies a fuzzer would send: random bytes, strict prefixes of real messages, JSON of
/// the wrong shape.
fn raw_bodies() -> impl Strategy<Value = Vec<u8>> {
    let messages = [
        initialize_body(1).to_string(),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "send_message",
                          "arguments": {"from_agent": "a", "content": "x"}}})
        .to_string(),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}).to_string(),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z]{0,8}".prop_map(Value::from),
    ];
    let json_values = leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        (0usize..3, any::<prop::sample::Index>()).prop_map(move |(which, cut)| {
            let message = messages[which].as_bytes();
            message[..cut.index(message.len())].to_vec()
        }),
        json_values.prop_map(|value| value.to_string().into_bytes()),
    ]
}

#[test]
fn proptest_every_raw_body_gets_a_json_4xx() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hub = runtime.block_on(TestHub::start());
    let url = hub.url();
    let session = runtime.block_on(raw_session(&url));
    let config = ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(body in raw_bodies())| {
        let (status, json) = runtime.block_on(post(&url, &session, "application/json", body.clone()));
        prop_assert!(
            (400..500).contains(&status),
            "{status} for {:?}: {json}",
            String::from_utf8_lossy(&body)
        );
        prop_assert!(json["error"].is_object() || json["success"] == false, "{json}");
    });
    runtime.block_on(hub.stop());
}

/// Waits until the server closes `stream` (EOF or reset); returns the bytes it sent.
async fn closed_by_server(mut stream: TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut received))
        .await
        .expect("the server closes the connection")
        .ok();
    received
}

#[tokio::test]
async fn stuck_headers_and_idle_connections_are_closed_but_streams_stay_open() {
    let hub = TestHub::start_with(&[
        ("MCP_HUB_HTTP_HEADER_READ_TIMEOUT_MS", "200"),
        ("MCP_HUB_HTTP_IDLE_TIMEOUT_MS", "400"),
    ])
    .await;
    let address = hub.handle.addresses[0].to_string();
    hub.register_ids(&["watcher"]).await;
    let mut stream = SseReader::new(open(&hub, "agent_id=watcher&streams=messages", None).await);
    assert_eq!(stream.next().await.name, "hello");

    // Half-sent headers: closed without an answer.
    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(format!("GET /health HTTP/1.1\r\nHost: {address}\r\n").as_bytes())
        .await
        .unwrap();
    assert!(closed_by_server(slow).await.is_empty());
    // Idle keep-alive after one answered request: closed after the idle timeout.
    let mut idle = TcpStream::connect(&address).await.unwrap();
    idle.write_all(format!("GET /health HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let answered = closed_by_server(idle).await;
    assert!(String::from_utf8_lossy(&answered).starts_with("HTTP/1.1 200"));
    // Silent from the start: closed too.
    assert!(
        closed_by_server(TcpStream::connect(&address).await.unwrap())
            .await
            .is_empty()
    );

    // The idle timeout has passed for the SSE stream's connection as well: it is still open.
    let sender = hub.client().await;
    sender
        .call(
            "send_message",
            json!({"from_agent": "s", "to_agent": "watcher", "content": "still there?"}),
        )
        .await
        .ok();
    assert_eq!(stream.next().await.name, "update");
    hub.stop().await;
}

#[tokio::test]
async fn past_the_cap_idle_connections_make_room_and_busy_ones_get_503() {
    let hub = TestHub::start_with(&[
        ("MCP_HUB_HTTP_MAX_CONNECTIONS", "8"),
        ("MCP_HUB_EVENT_STREAM_MAX_TOTAL", "100"),
    ])
    .await;
    let address = hub.handle.addresses[0].to_string();
    let health = || async {
        http()
            .get(format!("{}/health", hub.base_url()))
            .send()
            .await
            .expect("health answers")
    };

    // A flood of idle clients: each new one closes the oldest idle, /health gets through.
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(TcpStream::connect(&address).await.unwrap());
    }
    let response = health().await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "ok");

    // Every slot busy with an open stream: a new request gets a 503 JSON, /health still
    // answers, and the streams are never cut.
    let mut streams = Vec::new();
    for n in 0..8 {
        let mut reader =
            SseReader::new(open(&hub, &format!("agent_id=w{n}&streams=messages"), None).await);
        assert_eq!(reader.next().await.name, "hello");
        streams.push(reader);
    }
    let refused = http()
        .post(hub.url())
        .header("content-type", "application/json")
        .json(&initialize_body(1))
        .send()
        .await
        .expect("an answer");
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["connection"], "close");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error_code"], "TOO_MANY_CONNECTIONS");
    assert_eq!(health().await.status(), 200);
    drop(idle);
    drop(streams);
    hub.stop().await;
}

#[tokio::test]
async fn a_hub_with_256_open_files_answers_health_under_a_flood_of_idle_clients() {
    hub_server::http::serve::raise_open_file_limit();
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // `ulimit -n` lowers the soft and hard limits, so the hub cannot raise them back.
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 256 && exec \"$0\"")
        .arg(env!("CARGO_BIN_EXE_hub-server"))
        .env("MCP_HUB_DATA", data.path())
        .env("MCP_HUB_PORT", port.to_string())
        .env("MCP_HUB_DB_SYNC", "normal")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn hub-server");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    use tokio::io::AsyncBufReadExt;
    while !line.contains("listening on") {
        line.clear();
        let read = tokio::time::timeout(PATIENCE, stdout.read_line(&mut line))
            .await
            .expect("the hub starts");
        assert!(read.unwrap() > 0, "hub-server exited before listening");
    }
    let address = format!("127.0.0.1:{port}");
    let mut flood = Vec::new();
    for _ in 0..1124 {
        flood.push(TcpStream::connect(&address).await.expect("connect"));
    }
    let health = tokio::time::timeout(
        PATIENCE,
        http().get(format!("http://{address}/health")).send(),
    )
    .await
    .expect("/health answers under the flood")
    .expect("an answer");
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");
    drop(flood);
    child.start_kill().unwrap();
    let output = child.wait_with_output().await.unwrap();
    let log = strip_ansi(&String::from_utf8_lossy(&output.stderr));
    assert!(
        log.contains("open-file limit") && log.contains("open_files=256"),
        "the hub logs the open-file limit it runs with: {log}"
    );
}

/// The log without terminal colour codes.
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for code in chars.by_ref() {
                if code.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
