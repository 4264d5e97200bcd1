//! `GET /events`: the SSE push channel (spec http-config-cli §4), event-driven.
//!
//! After `hello`, the stream sends `update` as soon as a subscribed stream moves past the
//! resume point as the agent sees it (woken by the writer's publish, no polling), and
//! `heartbeat` after `MCP_HUB_EVENT_STREAM_HEARTBEAT_MS` of silence. Every event carries an
//! `id:` — its cursor — so a client reconnecting with `Last-Event-ID` (or `?cursor=`) gets
//! an `update` for everything it missed. Connections are capped per agent and in total.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde_json::{Value, json};

use super::AppState;
use super::mcp::json_response;
use crate::auth::{self, AuthDecision, AuthOutcome};
use crate::bookkeeping::{Bookkeeper, CallRecord, CallStat};
use crate::domain::observability::CallOutcome;
use crate::live::{self, Cursor, StreamSet, WaitEnd};
use crate::store::activity::ActivityRow;
use crate::tools::Hub;

/// Open streams per agent and in total.
#[derive(Debug, Default)]
pub struct StreamCaps {
    per_agent: Mutex<HashMap<String, usize>>,
}

impl StreamCaps {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.per_agent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot, or says which cap is full.
    fn acquire(&self, agent: &str, per_agent: usize, total: usize) -> Result<(), &'static str> {
        let mut open = self.lock();
        if open.values().sum::<usize>() >= total {
            return Err("total");
        }
        let count = open.entry(agent.to_string()).or_insert(0);
        if *count >= per_agent {
            return Err("per_agent");
        }
        *count += 1;
        Ok(())
    }

    fn release(&self, agent: &str) {
        let mut open = self.lock();
        if let Some(count) = open.get_mut(agent) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(agent);
            }
        }
    }

    pub fn open_streams(&self) -> usize {
        self.lock().values().sum()
    }
}

/// The query parameters; `streams` may be comma-separated and/or repeated.
#[derive(Debug, Default)]
struct EventsQuery {
    agent_id: Option<String>,
    auth_token: Option<String>,
    response_mode: Option<String>,
    streams: Vec<String>,
    cursor: Option<String>,
}

impl EventsQuery {
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut query = EventsQuery::default();
        for (key, value) in pairs {
            match key.as_str() {
                "agent_id" => query.agent_id = Some(value),
                "auth_token" => query.auth_token = Some(value),
                "response_mode" => query.response_mode = Some(value),
                "streams" => query
                    .streams
                    .extend(value.split(',').map(|s| s.trim().to_ascii_lowercase())),
                "cursor" => query.cursor = Some(value),
                // poll_ms is accepted for compatibility: the hub pushes on commit.
                _ => {}
            }
        }
        query
    }
}

fn error(status: StatusCode, body: Value) -> Response<Body> {
    json_response(status, &body)
}

/// Releases the cap slot and logs the unsubscribe when the stream ends, however it ends.
struct Subscription {
    caps: Arc<StreamCaps>,
    bookkeeper: Arc<Bookkeeper>,
    agent: String,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.caps.release(&self.agent);
        let row = ActivityRow {
            agent_id: self.agent.clone(),
            action: "events_unsubscribe".into(),
            details: String::new(),
            quiet: true,
        };
        self.bookkeeper.activity(row);
    }
}

struct StreamState {
    hub: Arc<Hub>,
    agent: String,
    streams: StreamSet,
    nano: bool,
    resume: Cursor,
    heartbeat: Duration,
    hello: Option<Value>,
    _subscription: Subscription,
}

fn event(name: &str, cursor: &Cursor, data: &Value) -> Event {
    Event::default()
        .event(name)
        .id(cursor.encode())
        .data(data.to_string())
}

fn events(state: StreamState) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(state, |mut state| async move {
        if let Some(hello) = state.hello.take() {
            let event = event("hello", &state.resume, &hello);
            return Some((Ok(event), state));
        }
        let deadline = tokio::time::Instant::now() + state.heartbeat;
        let cancel = state.hub.shutdown.clone();
        let outcome = live::wait_for_change(
            &state.hub.store,
            &state.agent,
            state.streams,
            state.resume,
            deadline,
            &cancel,
        )
        .await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::warn!(%error, "event stream check failed");
                let body = json!({"success": false, "error": "event_stream_internal_error"});
                return Some((Ok(event("error", &state.resume, &body)), state));
            }
        };
        let cursor_text = outcome.cursor.encode();
        match outcome.end {
            // Shutdown: end the stream cleanly.
            WaitEnd::Cancelled => None,
            WaitEnd::TimedOut => {
                let body = if state.nano {
                    json!({"c": 0, "u": cursor_text})
                } else {
                    json!({"changed": false, "cursor": cursor_text})
                };
                Some((Ok(event("heartbeat", &state.resume, &body)), state))
            }
            WaitEnd::Changed => {
                state.resume = outcome.cursor;
                let changed: Vec<&str> = live::STREAM_NAMES
                    .iter()
                    .zip(outcome.changed)
                    .filter(|(_, c)| *c)
                    .map(|(name, _)| *name)
                    .collect();
                let body = if state.nano {
                    json!({"c": 1, "s": changed, "u": cursor_text})
                } else {
                    json!({
                        "changed": true,
                        "streams": changed,
                        "cursor": cursor_text,
                        "watermark": {
                            "now": state.hub.store.now_ms(),
                            "latest_message_ts": outcome.cursor.0[0],
                            "latest_task_ts": outcome.cursor.0[1],
                            "latest_context_ts": outcome.cursor.0[2],
                            "latest_activity_ts": outcome.cursor.0[3],
                            "latest_artifact_seq": outcome.cursor.0[4],
                        },
                    })
                };
                Some((Ok(event("update", &state.resume, &body)), state))
            }
        }
    })
}

pub async fn subscribe(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response<Body> {
    let query = EventsQuery::from_pairs(pairs);
    let hub = app.hub.clone();
    let config = hub.config.clone();
    let Some(agent) = query
        .agent_id
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            json!({"success": false, "error": "agent_id is required"}),
        );
    };
    // Unknown names are dropped; none left means all of them.
    let streams = StreamSet::parse(
        query
            .streams
            .iter()
            .map(String::as_str)
            .filter(|name| live::STREAM_NAMES.contains(name)),
    )
    .unwrap_or(StreamSet::ALL);
    let nano = query
        .response_mode
        .as_deref()
        .is_some_and(|m| m.eq_ignore_ascii_case("nano"));
    // Last-Event-ID (what EventSource sends on reconnect) wins over ?cursor=.
    let cursor_text = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(query.cursor.clone());
    let requested = match Cursor::parse(cursor_text.as_deref().unwrap_or("")) {
        Ok(cursor) => cursor,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                json!({"success": false, "error": "Invalid cursor format"}),
            );
        }
    };

    // Auth: the bearer header is preferred; the query token stays for compatibility.
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = auth::bearer_token(authorization).or_else(|| {
        query
            .auth_token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    });
    let verify_agent = agent.clone();
    let outcome = hub
        .store
        .read(move |db| auth::verify(db, &verify_agent, token.as_deref()))
        .await
        .unwrap_or(AuthOutcome::Invalid);
    let decision = auth::decide(config.auth_mode, outcome, "events_stream", Some("agent_id"));
    let refused = matches!(decision, AuthDecision::Refuse { .. });
    hub.bookkeeper.record(CallRecord {
        call: Some(CallStat {
            tool: "events_stream",
            agent_id: Some(agent.clone()),
            namespace: hub.config.namespace_quota_fallback.clone(),
            auth: outcome,
            outcome: if refused {
                CallOutcome::Refused
            } else {
                CallOutcome::Ok
            },
            at_ms: hub.store.now_ms(),
        }),
        ..CallRecord::default()
    });
    let warning = match decision {
        AuthDecision::Refuse { code, message } => {
            return error(
                StatusCode::UNAUTHORIZED,
                json!({"success": false, "error_code": code, "error": message,
                       "auth_mode": config.auth_mode.as_str()}),
            );
        }
        AuthDecision::Allow { warning } => warning,
    };

    if let Err(which) = app.events.acquire(
        &agent,
        config.event_stream_max_per_agent,
        config.event_stream_max_total,
    ) {
        let (limit, what) = match which {
            "per_agent" => (config.event_stream_max_per_agent, "for this agent"),
            _ => (config.event_stream_max_total, "in total"),
        };
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"success": false, "error_code": "EVENT_STREAM_LIMIT",
                   "error": format!("at most {limit} /events streams may be open {what}; close one and retry"),
                   "retry_after_ms": 1000}),
        );
    }
    let subscription = Subscription {
        caps: app.events.clone(),
        bookkeeper: hub.bookkeeper.clone(),
        agent: agent.clone(),
    };

    // The starting point: the client's cursor, else "now" as this agent sees it. The
    // subscribe row is quiet, so it cannot trigger an update for the subscriber (D13).
    let resume = match requested {
        Some(cursor) => cursor,
        None => {
            let heads = *hub.store.subscribe().borrow();
            match live::watermark(&hub.store, &agent, heads).await {
                Ok(cursor) => cursor,
                Err(error) => {
                    tracing::warn!(%error, "computing the initial watermark");
                    return error_response_internal();
                }
            }
        }
    };
    let mode = if nano { "nano" } else { "compact" };
    let row = ActivityRow {
        agent_id: agent.clone(),
        action: "events_subscribe".into(),
        details: format!("streams={} mode={mode}", streams.names().join(",")),
        quiet: true,
    };
    hub.bookkeeper.activity(row);
    let mut hello = json!({
        "success": true,
        "mode": mode,
        "streams": streams.names(),
        "cursor": resume.encode(),
    });
    if let Some(warning) = warning {
        hello["warning"] = json!(warning);
    }
    let state = StreamState {
        hub: hub.clone(),
        agent,
        streams,
        nano,
        resume,
        heartbeat: Duration::from_millis(config.event_stream_heartbeat_ms as u64),
        hello: Some(hello),
        _subscription: subscription,
    };
    let mut response = Sse::new(events(state))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(30)))
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn error_response_internal() -> Response<Body> {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"success": false, "error": "event_stream_internal_error"}),
    )
}
