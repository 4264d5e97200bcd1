//! The accept loop: one HTTP/1.1 connection per task, with the limits `axum::serve` lacks.
//!
//! - Header-read timeout: once a client starts a request (its first byte arrives while no
//!   request is in flight), the whole header block must arrive within
//!   `MCP_HUB_HTTP_HEADER_READ_TIMEOUT_MS`, however slowly it trickles.
//! - Idle timeout: a connection with no request in flight is closed after
//!   `MCP_HUB_HTTP_IDLE_TIMEOUT_MS`. A request is in flight until its response body ends,
//!   so open SSE streams and long-polls are never idle.
//! - Connection cap (`MCP_HUB_HTTP_MAX_CONNECTIONS`, bounded by the open-file limit): a new
//!   connection past the cap closes the oldest idle one (a flood of idle clients cannot
//!   starve `/health`); when every connection is busy, it gets one 503 JSON answer — or
//!   `/health` itself — and `Connection: close`.
//!
//! Timeouts run on real time (the hub's manual clock drives stored time only).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use futures::StreamExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::mcp::json_response;
use crate::config::Config;

/// File descriptors kept free for the database, its readers, listeners and logs.
const RESERVED_FILES: u64 = 96;

/// The connection limits in force.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    /// The configured limits, the cap lowered to what the open-file limit allows.
    pub fn new(config: &Config, open_files: Option<u64>) -> Limits {
        let by_files = open_files
            .map(|limit| limit.saturating_sub(RESERVED_FILES).max(8) as usize)
            .unwrap_or(usize::MAX);
        Limits {
            header_read_timeout: config.http_header_read_timeout,
            idle_timeout: config.http_idle_timeout,
            max_connections: config.http_max_connections.min(by_files),
        }
    }
}

/// Raises the open-file soft limit to the hard limit (a 1,024 default cannot hold many
/// agents) and returns the soft limit now in force.
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let Some(soft) = limit.current else {
        return None; // unlimited
    };
    let Some(hard) = limit.maximum.filter(|&hard| hard > soft) else {
        tracing::info!(
            open_files = soft,
            "open-file limit (already at the hard limit)"
        );
        return Some(soft);
    };
    let raised = rustix::process::Rlimit {
        current: Some(hard),
        maximum: Some(hard),
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            tracing::info!(
                from = soft,
                to = hard,
                "raised the open-file limit to the hard limit"
            );
            Some(hard)
        }
        Err(error) => {
            tracing::warn!(%error, open_files = soft, "could not raise the open-file limit");
            Some(soft)
        }
    }
}

/// What the accept loop knows of one connection.
struct Connection {
    /// Requests whose response body has not ended yet.
    in_flight: AtomicUsize,
    timing: Mutex<Timing>,
    /// Wakes the connection's watchdog when `timing` or `in_flight` changes.
    changed: Notify,
    /// Fired to close the connection (the cap needs its slot).
    evict: CancellationToken,
}

#[derive(Clone, Copy)]
struct Timing {
    /// Since when nothing is in flight.
    idle_since: Instant,
    /// When the first byte of a not yet complete request head arrived.
    head_started: Option<Instant>,
}

impl Connection {
    fn new() -> Connection {
        Connection {
            in_flight: AtomicUsize::new(0),
            timing: Mutex::new(Timing {
                idle_since: Instant::now(),
                head_started: None,
            }),
            changed: Notify::new(),
            evict: CancellationToken::new(),
        }
    }

    fn timing(&self) -> std::sync::MutexGuard<'_, Timing> {
        self.timing.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bytes_arrived(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let mut timing = self.timing();
            if timing.head_started.is_none() {
                timing.head_started = Some(Instant::now());
                drop(timing);
                self.changed.notify_one();
            }
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.timing().head_started = None;
        self.changed.notify_one();
    }

    fn request_finished(&self) {
        let mut timing = self.timing();
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            timing.idle_since = Instant::now();
        }
        drop(timing);
        self.changed.notify_one();
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && self.timing().head_started.is_none()
    }

    /// When the connection must close if nothing changes before (`None`: busy).
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let timing = *self.timing();
        Some(match timing.head_started {
            Some(started) => started + limits.header_read_timeout,
            None => timing.idle_since + limits.idle_timeout,
        })
    }
}

/// The open connections of one hub, for the cap.
#[derive(Default)]
pub struct Connections {
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    /// Connections served past the cap (one 503 or /health answer each).
    overflow: AtomicUsize,
}

/// Where a new connection stands.
enum Admission {
    Tracked(u64, Arc<Connection>),
    /// Past the cap with every connection busy: one answer, then close.
    Overflow,
    /// Past the cap and the overflow allowance: closed unanswered.
    Refused,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn open_count(&self) -> usize {
        self.lock().len()
    }

    fn admit(&self, limits: &Limits) -> Admission {
        let mut open = self.lock();
        if open.len() >= limits.max_connections {
            // The oldest idle connection makes room; a client that reconnects loses nothing.
            let oldest_idle = open
                .iter()
                .filter(|(_, c)| c.is_idle() && !c.evict.is_cancelled())
                .min_by_key(|(_, c)| c.timing().idle_since)
                .map(|(id, _)| *id);
            match oldest_idle {
                Some(id) => {
                    if let Some(evicted) = open.remove(&id) {
                        evicted.evict.cancel();
                    }
                }
                None => {
                    let overflow_cap = limits.max_connections / 8 + 8;
                    if self.overflow.fetch_add(1, Ordering::AcqRel) >= overflow_cap {
                        self.overflow.fetch_sub(1, Ordering::AcqRel);
                        return Admission::Refused;
                    }
                    return Admission::Overflow;
                }
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection::new());
        open.insert(id, connection.clone());
        Admission::Tracked(id, connection)
    }

    fn release(&self, id: u64) {
        self.lock().remove(&id);
    }
}

/// Serves `app` on `listener` until `stop` fires, then waits for the connections still
/// open to finish (each ends its requests in flight, then closes), so the store is not
/// closed under a request.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    connections: Arc<Connections>,
    stop: CancellationToken,
) {
    let tracker = tokio_util::task::TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors (or a connection reset before accept): back off
                // so closing connections can free some, instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(20)) => continue,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        match connections.admit(&limits) {
            Admission::Tracked(id, connection) => {
                let (app, connections, stop) = (app.clone(), connections.clone(), stop.clone());
                tracker.spawn(async move {
                    serve_tracked(stream, peer, app, connection, limits, stop).await;
                    connections.release(id);
                });
            }
            Admission::Overflow => {
                let (app, connections, stop) = (app.clone(), connections.clone(), stop.clone());
                tracker.spawn(async move {
                    serve_overflow(stream, peer, app, limits, stop).await;
                    connections.overflow.fetch_sub(1, Ordering::AcqRel);
                });
            }
            Admission::Refused => drop(stream),
        }
    }
    tracker.close();
    tracker.wait().await;
}

fn http1() -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new());
    builder
}

/// A request for the router, with the peer address handlers read.
fn into_app_request(request: Request<Incoming>, peer: SocketAddr) -> Request<Body> {
    let mut request = request.map(Body::new);
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

async fn serve_tracked(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    connection: Arc<Connection>,
    limits: Limits,
    stop: CancellationToken,
) {
    let io = TokioIo::new(Watched {
        inner: stream,
        connection: connection.clone(),
    });
    let tracker = connection.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let app = app.clone();
        let tracker = tracker.clone();
        async move {
            tracker.request_started();
            let response = app
                .oneshot(into_app_request(request, peer))
                .await
                .unwrap_or_else(|never| match never {});
            Ok::<_, std::convert::Infallible>(finish_with_body(response, tracker))
        }
    });
    let mut builder = http1();
    // hyper's own timer would also cut idle keep-alive at the header timeout; ours below
    // keeps the two apart.
    builder.header_read_timeout(None);
    let served = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(served);
    let mut closing = false;
    loop {
        let deadline = connection.deadline(&limits);
        let expired = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, %peer, "connection ended with an error");
                }
                return;
            }
            _ = connection.changed.notified() => continue,
            _ = expired => {
                if connection.deadline(&limits).is_some_and(|at| at <= Instant::now()) {
                    // Idle or stuck in its headers: nothing in flight to lose.
                    return;
                }
            }
            _ = connection.evict.cancelled(), if !closing => {
                closing = true;
                served.as_mut().graceful_shutdown();
            }
            _ = stop.cancelled(), if !closing => {
                closing = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The response, its body reporting when it ends (or is dropped) so the connection knows
/// it is idle again; a streaming body keeps the request in flight while it is open.
fn finish_with_body(response: Response<Body>, connection: Arc<Connection>) -> Response<Body> {
    struct Finished(Arc<Connection>);
    impl Drop for Finished {
        fn drop(&mut self) {
            self.0.request_finished();
        }
    }
    let finished = Finished(connection);
    let (parts, body) = response.into_parts();
    let stream = body.into_data_stream().map(move |chunk| {
        let _alive = &finished;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// Past the cap: `/health` is answered (operators must see the hub under a flood), anything
/// else gets a 503; either way the connection then closes.
async fn serve_overflow(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let app = app.clone();
        async move {
            let mut response = if request.uri().path() == "/health" {
                app.oneshot(into_app_request(request, peer))
                    .await
                    .unwrap_or_else(|never| match never {})
            } else {
                json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"success": false, "error_code": "TOO_MANY_CONNECTIONS",
                            "error": "the hub is at its connection limit; retry shortly",
                            "retry_after_ms": 1000}),
                )
            };
            let headers = response.headers_mut();
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let mut builder = http1();
    builder
        .keep_alive(false)
        .header_read_timeout(limits.header_read_timeout);
    let served = builder.serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = served => {}
        _ = stop.cancelled() => {}
    }
}

/// The TCP stream, telling its connection when bytes arrive (a request head starting).
struct Watched {
    inner: TcpStream,
    connection: Arc<Connection>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.connection.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: max,
        }
    }

    #[test]
    fn past_the_cap_the_oldest_idle_connection_makes_room() {
        let connections = Connections::default();
        let limits = limits(2);
        let Admission::Tracked(_, first) = connections.admit(&limits) else {
            panic!("room")
        };
        let Admission::Tracked(_, second) = connections.admit(&limits) else {
            panic!("room")
        };
        first.request_started(); // busy: never evicted
        let Admission::Tracked(_, third) = connections.admit(&limits) else {
            panic!("an idle one makes room")
        };
        assert!(second.evict.is_cancelled());
        assert!(!first.evict.is_cancelled());
        third.request_started();
        assert!(matches!(connections.admit(&limits), Admission::Overflow));
        first.request_finished();
        assert!(matches!(connections.admit(&limits), Admission::Tracked(..)));
        assert!(first.evict.is_cancelled());
    }

    #[test]
    fn deadlines_follow_the_connection_state() {
        let limits = limits(8);
        let connection = Connection::new();
        let idle = connection.deadline(&limits).unwrap();
        connection.bytes_arrived();
        let head = connection.deadline(&limits).unwrap();
        assert!(head < idle, "a started head has the shorter header timeout");
        connection.request_started();
        assert_eq!(
            connection.deadline(&limits),
            None,
            "in flight: never timed out"
        );
        connection.bytes_arrived();
        assert_eq!(connection.deadline(&limits), None);
        connection.request_finished();
        assert!(connection.deadline(&limits).is_some());
    }

    #[test]
    fn the_cap_is_bounded_by_the_open_file_limit() {
        let mut config = Config::for_data_dir(std::path::Path::new("/tmp"));
        config.http_max_connections = 4096;
        assert_eq!(Limits::new(&config, Some(256)).max_connections, 160);
        assert_eq!(Limits::new(&config, Some(1 << 20)).max_connections, 4096);
        assert_eq!(Limits::new(&config, None).max_connections, 4096);
    }
}
