//! The HTTP surface: the axum router with `/mcp`, `/events`, `/artifacts/*`, `/health`,
//! `/metrics` and a JSON 404, behind a Host/Origin guard (DNS-rebinding protection) on every
//! route.

pub mod artifacts;
mod body_gate;
pub mod events;
pub mod mcp;
pub mod serve;

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use axum::middleware::{self, Next};
use axum::routing::{any, get, post};
use serde_json::json;

use crate::config::Config;
use crate::tools::Hub;
use mcp::{McpEndpoint, json_response};

/// Advertised on every `/mcp` (POST/GET), `/events` and `/health` response.
pub const CAPABILITIES: &str = "nano,blob_resolve,artifact_tickets,read_snapshot,sse_events,namespace_quotas,adaptive_consistency";

#[derive(Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub mcp: McpEndpoint,
    pub events: Arc<events::StreamCaps>,
    allowed_hosts: Arc<Vec<String>>,
}

pub fn router(hub: Arc<Hub>, mcp: McpEndpoint) -> Router {
    let state = AppState {
        allowed_hosts: Arc::new(allowed_hosts(&hub.config)),
        hub,
        mcp,
        events: Arc::new(events::StreamCaps::default()),
    };
    Router::new()
        .route("/mcp", any(mcp_route))
        .route("/health", get(health))
        .route("/events", get(events_route))
        .route("/artifacts/upload/{id}", post(artifacts::upload))
        .route("/artifacts/download/{id}", get(artifacts::download))
        .route("/metrics", get(metrics_route))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), host_guard))
        .with_state(state)
}

/// Loopback names plus every address the hub listens on.
fn allowed_hosts(config: &Config) -> Vec<String> {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|h| h.to_string())
        .collect();
    for address in config.bind_addresses() {
        if address.is_unspecified() {
            continue;
        }
        let text = address.to_string();
        if !hosts.contains(&text) {
            hosts.push(text);
        }
    }
    hosts
}

/// The host part of an authority (`name`, `name:port`, `[v6]`, `[v6]:port`), lowercased.
fn host_of(authority: &str) -> String {
    let authority = authority.trim();
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if authority.matches(':').count() > 1 {
        // A bare IPv6 address without brackets.
        authority
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn is_allowed_host(host: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|a| a == host)
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() && allowed.iter().any(|a| a == "127.0.0.1"))
}

fn forbidden(reason: String) -> Response<Body> {
    json_response(
        StatusCode::FORBIDDEN,
        &json!({"success": false, "error_code": "FORBIDDEN", "error": reason}),
    )
}

/// Refuses requests whose `Host` (or browser `Origin`) is not this hub: DNS-rebinding
/// protection for a server that agents reach on loopback.
async fn host_guard(State(state): State<AppState>, request: Request, next: Next) -> Response<Body> {
    // Refusals on the MCP, events and health routes carry the capabilities header too.
    let advertise = matches!(request.uri().path(), "/mcp" | "/events" | "/health")
        && request.method() != Method::DELETE;
    let forbidden = |reason: String| {
        let response = forbidden(reason);
        if advertise {
            with_capabilities(response)
        } else {
            response
        }
    };
    let authority = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    if let Some(authority) = authority {
        let host = host_of(&authority);
        if !is_allowed_host(&host, &state.allowed_hosts) {
            return forbidden(format!(
                "Host {authority:?} is not allowed; use localhost or a configured bind address"
            ));
        }
    }
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let allowed = origin
            .split_once("://")
            .filter(|(scheme, _)| matches!(*scheme, "http" | "https"))
            .is_some_and(|(_, rest)| {
                let authority = rest.split('/').next().unwrap_or(rest);
                is_allowed_host(&host_of(authority), &state.allowed_hosts)
            });
        if !allowed {
            return forbidden(format!("Origin {origin:?} is not allowed"));
        }
    }
    next.run(request).await
}

fn with_capabilities(mut response: Response<Body>) -> Response<Body> {
    response.headers_mut().insert(
        "x-mcp-hub-capabilities",
        HeaderValue::from_static(CAPABILITIES),
    );
    response
}

async fn mcp_route(State(state): State<AppState>, request: Request) -> Response<Body> {
    let method = request.method().clone();
    let response = state.mcp.handle(request).await;
    if method == Method::DELETE {
        response
    } else {
        with_capabilities(response)
    }
}

async fn events_route(
    state: State<AppState>,
    headers: HeaderMap,
    query: axum::extract::Query<Vec<(String, String)>>,
) -> Response<Body> {
    with_capabilities(events::subscribe(state, headers, query).await)
}

async fn health(State(state): State<AppState>) -> Response<Body> {
    let config = &state.hub.config;
    // Durable tickets: the count is the table's (expired ones until the next sweep).
    let artifact_tickets = state
        .hub
        .store
        .read(crate::store::artifacts::ticket_count)
        .await
        .unwrap_or(0);
    let body = json!({
        "status": "ok",
        "sessions": state.mcp.sessions.count().await,
        "waiters": state.hub.waiters.load(std::sync::atomic::Ordering::Relaxed),
        "event_streams": state.events.open_streams(),
        "auth_mode": config.auth_mode.as_str(),
        "namespace_quota_mode": config.namespace_quota_mode.as_str(),
        "namespace_quota_rps": config.namespace_quota_rps,
        "namespace_token_budget_per_min": config.namespace_token_budget_per_min,
        "event_stream": {
            "endpoint": "/events",
            "default_interval_ms": config.event_stream_interval_ms,
            "heartbeat_ms": config.event_stream_heartbeat_ms,
        },
        "artifact_tickets": artifact_tickets,
        "session_idle_timeout_ms": config.session_idle_timeout_ms(),
        "session_gc_enabled": config.session_idle_timeout.is_some(),
        "unknown_session_policy": config.unknown_session_policy.as_str(),
        "version": crate::VERSION,
        "db_sync": state.hub.store.sync_mode().map(crate::store::SyncMode::as_str),
        "database": state.hub.store.database_state(),
        "schema_version": crate::store::schema_version(),
    });
    with_capabilities(json_response(StatusCode::OK, &body))
}

/// Prometheus text exposition. Loopback peers, or `Authorization: Bearer <admin token>`:
/// the figures describe the whole swarm.
async fn metrics_route(State(state): State<AppState>, request: Request) -> Response<Body> {
    let Some(metrics) = state.hub.metrics.clone() else {
        return not_found(Method::GET, request.uri().clone()).await;
    };
    let loopback = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .is_some_and(|info| info.0.ip().is_loopback());
    let bearer = crate::auth::bearer_token(
        request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok()),
    );
    if !loopback && !crate::auth::admin_token_valid(&state.hub.config, bearer.as_deref()) {
        return forbidden(
            "/metrics is served to loopback clients, or with Authorization: Bearer \
             <MCP_HUB_ADMIN_TOKEN>"
                .into(),
        );
    }
    let now = state.hub.store.now_ms();
    let board = state
        .hub
        .store
        .read(move |db| {
            Ok((
                crate::store::kpi::queue(db, now)?.claims_active,
                crate::store::kpi::backlog(db, crate::store::kpi::BacklogBy::Namespace, 20)?,
            ))
        })
        .await;
    // A database that is down is what an operator scrapes for: the board's gauges read 0
    // then, and `hub_database_up` says why.
    let (claims_active, pending_by_namespace) = board.unwrap_or_else(|error| {
        tracing::warn!(%error, "sampling the task board for metrics failed");
        (0, Vec::new())
    });
    let database = state.hub.store.database_state();
    let sampled = crate::metrics::Sampled {
        database_connected: database.connected,
        database_errors: database.errors,
        sessions: state.mcp.sessions.count().await as i64,
        waiters: state.hub.waiters.load(std::sync::atomic::Ordering::Relaxed) as i64,
        sse_streams: state.events.open_streams() as i64,
        claims_active,
        pending_by_namespace,
    };
    let mut response = Response::new(Body::from(metrics.render(&sampled)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Response<Body> {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"success": false, "error": format!("no route for {method} {}", uri.path())}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_parsing() {
        assert_eq!(host_of("localhost:3000"), "localhost");
        assert_eq!(host_of("[::1]:3000"), "::1");
        assert_eq!(host_of("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_of("Example.COM."), "example.com");
        let allowed = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        assert!(is_allowed_host("127.0.0.2", &allowed));
        assert!(!is_allowed_host("evil.example", &allowed));
    }
}
