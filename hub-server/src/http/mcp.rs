//! `/mcp`: the Streamable HTTP MCP endpoint (spec http-config-cli §3).
//!
//! rmcp's `StreamableHttpService` speaks the protocol; this layer in front of it adds the
//! hub's session contract:
//! - a request naming an unknown session gets HTTP 404 with the JSON-RPC `-32000` recovery
//!   envelope (400 when no session id was sent), or — with `stateless_fallback` — is served
//!   by a one-shot stateless service;
//! - clients on the sessionless protocol revision (2026-07-28) pass straight through;
//! - POST responses are plain JSON (rmcp answers session requests as SSE);
//! - `Accept` is completed for clients that send only `application/json` or nothing;
//! - sessions are tracked for `/health`, idle eviction (an open GET stream counts as
//!   activity) and a hard cap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use futures::StreamExt;
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::body_gate;
use crate::config::{Config, UnknownSessionPolicy};
use crate::tools::{Hub, HubServer};

/// Largest JSON-RPC body accepted on POST /mcp.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
const SESSION_HEADER: &str = "mcp-session-id";
/// The first protocol revision without sessions (SEP-2567).
const SESSIONLESS_REVISION: &str = "2026-07-28";
const PROTOCOL_META_KEY: &str = "io.modelcontextprotocol/protocolVersion";

#[derive(Debug)]
struct SessionEntry {
    last_active: Instant,
    open_streams: usize,
}

/// Live MCP sessions: rmcp owns the transports, this table owns their lifetimes.
pub struct SessionTable {
    manager: Arc<LocalSessionManager>,
    entries: Mutex<HashMap<String, SessionEntry>>,
    idle_timeout: Option<Duration>,
    max_sessions: usize,
}

impl SessionTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionEntry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub async fn count(&self) -> usize {
        self.manager.sessions.read().await.len()
    }

    async fn is_live(&self, id: &str) -> bool {
        self.manager
            .sessions
            .read()
            .await
            .contains_key(&Arc::<str>::from(id))
    }

    fn touch(&self, id: &str) {
        let mut entries = self.lock();
        let entry = entries.entry(id.to_string()).or_insert(SessionEntry {
            last_active: Instant::now(),
            open_streams: 0,
        });
        entry.last_active = Instant::now();
    }

    /// A session was just created: track it, and evict the least recently active ones
    /// (without open streams) beyond the cap.
    async fn register(&self, id: &str) {
        self.touch(id);
        let evict: Vec<String> = {
            let entries = self.lock();
            let excess = entries.len().saturating_sub(self.max_sessions);
            let mut idle: Vec<(&String, &SessionEntry)> = entries
                .iter()
                .filter(|(key, e)| e.open_streams == 0 && key.as_str() != id)
                .collect();
            idle.sort_by_key(|(_, e)| e.last_active);
            idle.into_iter()
                .take(excess)
                .map(|(key, _)| key.clone())
                .collect()
        };
        if !evict.is_empty() {
            tracing::info!(
                evicted = evict.len(),
                max = self.max_sessions,
                "session cap reached; closed the least recently active sessions"
            );
        }
        for id in evict {
            self.close(&id).await;
        }
    }

    pub async fn close(&self, id: &str) {
        self.lock().remove(id);
        if let Err(error) = self.manager.close_session(&Arc::<str>::from(id)).await {
            tracing::debug!(%error, "closing session");
        }
    }

    /// Whether the session already has its standalone GET stream open.
    fn stream_open(&self, id: &str) -> bool {
        self.lock().get(id).is_some_and(|e| e.open_streams > 0)
    }

    fn stream_opened(self: &Arc<Self>, id: &str) -> StreamGuard {
        {
            let mut entries = self.lock();
            let entry = entries.entry(id.to_string()).or_insert(SessionEntry {
                last_active: Instant::now(),
                open_streams: 0,
            });
            entry.open_streams += 1;
            entry.last_active = Instant::now();
        }
        StreamGuard {
            table: self.clone(),
            id: id.to_string(),
        }
    }

    /// Closes sessions idle past the timeout; forgets entries rmcp already dropped.
    pub async fn collect_garbage(&self) {
        let live: Vec<String> = self
            .manager
            .sessions
            .read()
            .await
            .keys()
            .map(|k| k.to_string())
            .collect();
        let expired: Vec<String> = {
            let mut entries = self.lock();
            entries.retain(|id, _| live.contains(id));
            match self.idle_timeout {
                None => Vec::new(),
                Some(timeout) => entries
                    .iter()
                    .filter(|(_, e)| e.open_streams == 0 && e.last_active.elapsed() > timeout)
                    .map(|(id, _)| id.clone())
                    .collect(),
            }
        };
        if expired.is_empty() {
            return;
        }
        for id in &expired {
            self.close(id).await;
        }
        let active = self.count().await;
        tracing::info!(
            evicted = expired.len(),
            active,
            timeout_ms = self.idle_timeout.map(|t| t.as_millis() as u64).unwrap_or(0),
            "evicted idle MCP sessions"
        );
    }
}

/// Keeps a session's open-stream count up while its GET stream body is alive.
struct StreamGuard {
    table: Arc<SessionTable>,
    id: String,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut entries = self.table.lock();
        if let Some(entry) = entries.get_mut(&self.id) {
            entry.open_streams = entry.open_streams.saturating_sub(1);
            // The stream was activity up to its last moment.
            entry.last_active = Instant::now();
        }
    }
}

/// The `/mcp` endpoint.
#[derive(Clone)]
pub struct McpEndpoint {
    stateful: StreamableHttpService<HubServer, LocalSessionManager>,
    stateless: StreamableHttpService<HubServer, NeverSessionManager>,
    pub sessions: Arc<SessionTable>,
    policy: UnknownSessionPolicy,
}

impl McpEndpoint {
    pub fn new(hub: Arc<Hub>, config: &Config, shutdown: CancellationToken) -> Self {
        let mut manager = LocalSessionManager::default();
        // Eviction is ours (configurable, aware of open streams), not the worker's 5 min.
        manager.session_config.keep_alive = None;
        let manager = Arc::new(manager);
        let base = StreamableHttpServerConfig::default()
            // Host and Origin are checked for every route by the router's guard.
            .disable_allowed_hosts()
            .with_json_response(true)
            .with_max_request_body_bytes(MAX_BODY_BYTES)
            .with_cancellation_token(shutdown);
        let factory_hub = hub.clone();
        let stateful = StreamableHttpService::new(
            move || Ok(HubServer::new(factory_hub.clone())),
            manager.clone(),
            base.clone(),
        );
        let stateless = StreamableHttpService::new(
            move || Ok(HubServer::new(hub.clone())),
            Arc::new(NeverSessionManager::default()),
            base.with_legacy_session_mode(false),
        );
        McpEndpoint {
            stateful,
            stateless,
            sessions: Arc::new(SessionTable {
                manager,
                entries: Mutex::new(HashMap::new()),
                idle_timeout: config.session_idle_timeout,
                max_sessions: config.session_max,
            }),
            policy: config.unknown_session_policy,
        }
    }

    pub async fn handle(&self, request: Request<Body>) -> Response<Body> {
        match *request.method() {
            Method::POST => self.post(request).await,
            Method::GET => self.get(request).await,
            Method::DELETE => self.delete(request).await,
            _ => {
                let mut response = json_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &json!({"success": false, "error_code": "METHOD_NOT_ALLOWED",
                            "error": "/mcp accepts GET, POST and DELETE"}),
                );
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
                response
            }
        }
    }

    async fn post(&self, request: Request<Body>) -> Response<Body> {
        let (mut parts, body) = request.into_parts();
        complete_accept(&mut parts.headers);
        let (bytes, message) = match body_gate::admit(&parts.headers, body).await {
            Ok(admitted) => admitted,
            Err(refusal) => return *refusal,
        };
        let shape = MessageShape::of(Some(&message), &parts.headers);
        let requested_session = session_id(&parts.headers);

        let route = match &requested_session {
            Some(id) if self.sessions.is_live(id).await => {
                if shape.is_initialize {
                    return jsonrpc_error(
                        StatusCode::BAD_REQUEST,
                        shape.id,
                        -32600,
                        "Invalid Request: this session is already initialized",
                    );
                }
                self.sessions.touch(id);
                Route::Stateful
            }
            Some(_) if shape.is_initialize || shape.sessionless => {
                // A stale id on a fresh handshake (or a sessionless request) is ignored.
                parts.headers.remove(SESSION_HEADER);
                Route::Stateful
            }
            Some(_) if self.policy == UnknownSessionPolicy::StatelessFallback => {
                parts.headers.remove(SESSION_HEADER);
                Route::Stateless
            }
            Some(_) => {
                return recovery_error(
                    StatusCode::NOT_FOUND,
                    Reason::UnknownOrExpiredSession,
                    shape.id,
                );
            }
            None if shape.is_initialize || shape.sessionless => Route::Stateful,
            None => {
                return recovery_error(
                    StatusCode::BAD_REQUEST,
                    Reason::ServerNotInitialized,
                    shape.id,
                );
            }
        };

        let forwarded = Request::from_parts(parts, Body::from(bytes));
        let response = match route {
            Route::Stateful => self.stateful.handle(forwarded).await,
            Route::Stateless => self.stateless.handle(forwarded).await,
        };
        let mut response = response.map(Body::new);
        if shape.is_initialize
            && let Some(new_id) = session_id(response.headers())
        {
            self.sessions.register(&new_id).await;
        }
        if route == Route::Stateless {
            response.headers_mut().insert(
                "x-mcp-session-recovery",
                HeaderValue::from_static("stateless_fallback"),
            );
        }
        if shape.is_request && is_event_stream(response.headers()) {
            response = sse_to_json(response, shape.id.clone()).await;
        }
        body_gate::json_error_body(response, &shape.id).await
    }

    async fn get(&self, request: Request<Body>) -> Response<Body> {
        let Some(id) = session_id(request.headers()) else {
            return recovery_error(
                StatusCode::BAD_REQUEST,
                Reason::NoActiveSession,
                Value::Null,
            );
        };
        if !self.sessions.is_live(&id).await {
            return recovery_error(StatusCode::NOT_FOUND, Reason::NoActiveSession, Value::Null);
        }
        if self.sessions.stream_open(&id) {
            return jsonrpc_error(
                StatusCode::CONFLICT,
                Value::Null,
                -32000,
                "Conflict: only one SSE stream per session",
            );
        }
        let response = self.stateful.handle(request).await.map(Body::new);
        if response.status() != StatusCode::OK {
            return response;
        }
        let guard = self.sessions.stream_opened(&id);
        let (parts, body) = response.into_parts();
        let stream = body.into_data_stream().map(move |chunk| {
            let _alive = &guard;
            chunk
        });
        Response::from_parts(parts, Body::from_stream(stream))
    }

    async fn delete(&self, request: Request<Body>) -> Response<Body> {
        match session_id(request.headers()) {
            Some(id) if self.sessions.is_live(&id).await => {
                self.sessions.close(&id).await;
                json_response(StatusCode::OK, &json!({"success": true}))
            }
            _ => json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": "Session not found"}),
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Stateful,
    Stateless,
}

/// What the POST body is, as far as routing needs to know.
struct MessageShape {
    is_initialize: bool,
    /// A request (expects a response), as opposed to notifications and replies.
    is_request: bool,
    /// Carries the sessionless protocol revision (header or per-request metadata).
    sessionless: bool,
    /// The JSON-RPC id, or null.
    id: Value,
}

impl MessageShape {
    fn of(message: Option<&Value>, headers: &HeaderMap) -> Self {
        let object = message.and_then(Value::as_object);
        let method = object.and_then(|m| m.get("method")).and_then(Value::as_str);
        let id = object
            .and_then(|m| m.get("id"))
            .cloned()
            .unwrap_or(Value::Null);
        let header_revision = headers
            .get("mcp-protocol-version")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() >= SESSIONLESS_REVISION);
        let meta_revision = object
            .and_then(|m| m.get("params"))
            .and_then(|p| p.get("_meta"))
            .is_some_and(|meta| meta.get(PROTOCOL_META_KEY).is_some());
        MessageShape {
            is_initialize: method == Some("initialize"),
            is_request: method.is_some() && !id.is_null(),
            sessionless: header_revision || meta_revision || method == Some("server/discover"),
            id,
        }
    }
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// The transport requires `Accept` to name both JSON and SSE; clients that send only one, or
/// nothing, are completed rather than refused.
fn complete_accept(headers: &mut HeaderMap) {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase();
    if !(accept.contains("application/json") && accept.contains("text/event-stream")) {
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
    }
}

/// Reads an SSE response until the JSON-RPC response to `id` arrives and returns it as a
/// plain JSON body, keeping the other headers (e.g. `mcp-session-id`).
async fn sse_to_json(response: Response<Body>, id: Value) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    let mut stream = body.into_data_stream();
    let mut buffer: Vec<u8> = Vec::new();
    let mut last_message: Option<String> = None;
    'read: while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        buffer.extend_from_slice(&chunk);
        while let Some(end) = find_event_end(&buffer) {
            let event: Vec<u8> = buffer.drain(..end.0 + end.1).collect();
            let text = String::from_utf8_lossy(&event[..end.0]).replace("\r\n", "\n");
            let data: Vec<&str> = text
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if data.is_empty() {
                continue;
            }
            let data = data.join("\n");
            let answers_request = serde_json::from_str::<Value>(&data).is_ok_and(|message| {
                (message.get("result").is_some() || message.get("error").is_some())
                    && message.get("id") == Some(&id)
            });
            last_message = Some(data);
            if answers_request {
                break 'read;
            }
        }
    }
    let Some(body) = last_message else {
        return jsonrpc_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            id,
            -32603,
            "Internal error: the request produced no response",
        );
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.headers.remove(header::CACHE_CONTROL);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(Bytes::from(body)))
}

/// Position and separator length of the first blank line ending an SSE event.
fn find_event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[derive(Debug, Clone, Copy)]
enum Reason {
    UnknownOrExpiredSession,
    ServerNotInitialized,
    NoActiveSession,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::UnknownOrExpiredSession => "unknown_or_expired_session",
            Reason::ServerNotInitialized => "server_not_initialized",
            Reason::NoActiveSession => "no_active_session",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Reason::UnknownOrExpiredSession => {
                "Unknown or expired MCP session (the hub may have restarted). Run initialize, \
                 then notifications/initialized, and retry the request once."
            }
            Reason::ServerNotInitialized => {
                "Server not initialized: no mcp-session-id was sent. Run initialize, then \
                 notifications/initialized, and retry the request once."
            }
            Reason::NoActiveSession => {
                "No active session for this stream. Run initialize, then \
                 notifications/initialized, and open the stream again."
            }
        }
    }
}

/// The §3.4 recovery envelope: clients re-run the handshake and retry once.
fn recovery_error(status: StatusCode, reason: Reason, id: Value) -> Response<Body> {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {
            "code": -32000,
            "message": reason.message(),
            "data": {
                "reinitialize_required": true,
                "retryable": true,
                "reason": reason.as_str(),
                "recovery_sequence": ["initialize", "notifications/initialized", "retry_original_request_once"],
                "onboarding_hint": "after register_agent, call get_onboarding once and pass auth_token on later tool calls",
                "protocol_version": crate::tools::PROTOCOL_VERSION,
            }
        }
    });
    let mut response = json_response(status, &body);
    let headers = response.headers_mut();
    headers.insert("x-mcp-reinit-required", HeaderValue::from_static("1"));
    headers.insert(
        "x-mcp-error-reason",
        HeaderValue::from_static(reason.as_str()),
    );
    response
}

pub fn jsonrpc_error(status: StatusCode, id: Value, code: i64, message: &str) -> Response<Body> {
    json_response(
        status,
        &json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
    )
}

pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("static response")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(idle_timeout: Option<Duration>, max_sessions: usize) -> Arc<SessionTable> {
        let mut manager = LocalSessionManager::default();
        manager.session_config.keep_alive = None;
        Arc::new(SessionTable {
            manager: Arc::new(manager),
            entries: Mutex::new(HashMap::new()),
            idle_timeout,
            max_sessions,
        })
    }

    async fn open_session(table: &SessionTable) -> String {
        let (id, _transport) = table.manager.create_session().await.unwrap();
        table.register(&id).await;
        id.to_string()
    }

    fn backdate(table: &SessionTable, id: &str, by: Duration) {
        table.lock().get_mut(id).unwrap().last_active = Instant::now() - by;
    }

    #[tokio::test]
    async fn idle_sessions_are_evicted_but_open_streams_count_as_activity() {
        let table = table(Some(Duration::from_secs(60)), 100);
        let idle = open_session(&table).await;
        let streaming = open_session(&table).await;
        let fresh = open_session(&table).await;
        backdate(&table, &idle, Duration::from_secs(120));
        backdate(&table, &streaming, Duration::from_secs(120));
        let stream = table.stream_opened(&streaming);
        backdate(&table, &streaming, Duration::from_secs(120));

        table.collect_garbage().await;
        assert!(
            !table.is_live(&idle).await,
            "idle past the timeout: evicted"
        );
        assert!(
            table.is_live(&streaming).await,
            "an open GET stream is activity"
        );
        assert!(table.is_live(&fresh).await);

        // Once the stream closes, the session is active as of that moment.
        drop(stream);
        table.collect_garbage().await;
        assert!(table.is_live(&streaming).await);
        assert_eq!(table.count().await, 2);
    }

    #[tokio::test]
    async fn without_a_timeout_nothing_is_evicted_but_the_cap_still_holds() {
        let table = table(None, 2);
        let oldest = open_session(&table).await;
        backdate(&table, &oldest, Duration::from_secs(86_400));
        let middle = open_session(&table).await;
        backdate(&table, &middle, Duration::from_secs(60));
        table.collect_garbage().await;
        assert_eq!(table.count().await, 2, "eviction disabled");

        let newest = open_session(&table).await;
        assert!(
            !table.is_live(&oldest).await,
            "the least recently active goes first"
        );
        assert!(table.is_live(&middle).await);
        assert!(table.is_live(&newest).await);
        assert_eq!(table.count().await, 2);
    }

    #[test]
    fn event_boundaries_with_either_line_ending() {
        assert_eq!(find_event_end(b"data: x\n\nrest"), Some((7, 2)));
        assert_eq!(find_event_end(b"data: x\r\n\r\n"), Some((7, 4)));
        assert_eq!(find_event_end(b"data: x\n"), None);
    }

    #[test]
    fn accept_is_completed_only_when_incomplete() {
        let mut headers = HeaderMap::new();
        complete_accept(&mut headers);
        assert_eq!(
            headers.get(header::ACCEPT).unwrap(),
            "application/json, text/event-stream"
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream, application/json;q=0.9"),
        );
        complete_accept(&mut headers);
        assert_eq!(
            headers.get(header::ACCEPT).unwrap(),
            "text/event-stream, application/json;q=0.9"
        );
    }
}
