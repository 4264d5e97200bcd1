//! Agent Hub server: a network MCP server through which AI coding agents coordinate.
//!
//! Layout (see ARCHITECTURE.md):
//! - [`config`]: `MCP_HUB_*` settings from one table (parsing, defaults, help, unknown-variable
//!   warnings), env-file layering, validation;
//! - [`store`]: the SQLite database — every SQL statement lives there;
//! - [`tools`]: the MCP tools and the call pipeline (auth, rate limit, idempotency);
//! - [`http`]: the axum router — `/mcp`, `/health`, the Host/Origin guard;
//! - [`maintenance`]: the periodic pass (presence, retention);
//! - [`protocol`], [`consensus`]: pure logic of the compact protocol (canonical JSON,
//!   compression, CAEP packets) and of consensus tallying — no SQL, no MCP;
//! - [`auth`], [`rate_limit`], [`clock`]: small shared pieces;
//! - [`pg_cluster`]: a throwaway PostgreSQL cluster for tests and `hubctl bench`.
//!
//! [`start`] binds and serves a hub and returns a handle; `main.rs` and the integration
//! tests both use it.

pub mod agent_files;
pub mod artifact_files;
pub mod auth;
pub mod bookkeeping;
pub mod clock;
pub mod config;
pub mod consensus;
pub mod domain;
pub mod http;
pub mod live;
pub mod maintenance;
pub mod metrics;
pub mod pg_cluster;
pub mod protocol;
pub mod quota;
pub mod rate_limit;
pub mod service;
pub mod store;
pub mod tools;

/// The one version string: `serverInfo.version` of MCP initialize, `/health` and the
/// binaries' `--version` all report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::http::mcp::McpEndpoint;
use crate::store::Store;
use crate::tools::Hub;

/// A running hub.
pub struct HubHandle {
    pub hub: Arc<Hub>,
    /// The bound addresses, primary first.
    pub addresses: Vec<SocketAddr>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl HubHandle {
    /// `http://<primary>/mcp`.
    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addresses[0])
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addresses[0])
    }

    /// Stops accepting requests, ends open streams, finishes queued writes, closes the store.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            // Long-polls and streams end on the token; do not wait forever for stragglers.
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!("a server task did not stop within 5 s");
            }
        }
        let store = self.hub.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    }
}

/// Binds every configured address (primary first) on the configured port.
pub async fn bind(config: &Config) -> anyhow::Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    for address in config.bind_addresses() {
        let socket = SocketAddr::new(address, config.port);
        let listener = TcpListener::bind(socket)
            .await
            .with_context(|| format!("binding {socket}"))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Opens the store and serves the hub on already-bound listeners.
pub async fn start(
    config: Config,
    listeners: Vec<TcpListener>,
    clock: SharedClock,
) -> anyhow::Result<HubHandle> {
    anyhow::ensure!(!listeners.is_empty(), "no listener to serve on");
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let target = match &config.db_url {
        Some(url) => store::Target::Postgres { url: url.clone() },
        None => store::Target::Sqlite {
            path: config.db_path.clone(),
            sync: config.db_sync,
        },
    };
    let described = match &target {
        store::Target::Postgres { url } => config::redact_url(url),
        store::Target::Sqlite { path, .. } => path.display().to_string(),
    };
    let store = tokio::task::spawn_blocking(move || Store::open_target(target, clock))
        .await?
        .with_context(|| format!("opening database {described}"))?;
    // Before serving: interrupted uploads and files no row names are removed, so a hub
    // killed mid-upload leaves nothing behind.
    let referenced = store
        .read(store::artifacts::storage_paths)
        .await
        .context("listing artifact files")?;
    let artifacts_dir = config.artifacts_dir.clone();
    // On PostgreSQL replicas share the directory: spare what another one may be writing.
    let spare_recent = match config.db_url {
        Some(_) => artifact_files::SHARED_DIR_GRACE,
        None => Duration::ZERO,
    };
    let swept = tokio::task::spawn_blocking(move || {
        artifact_files::sweep(&artifacts_dir, &referenced, spare_recent)
    })
    .await?
    .with_context(|| format!("sweeping {}", config.artifacts_dir.display()))?;
    if swept > 0 {
        tracing::info!(swept, "removed orphan artifact files");
    }
    let config = Arc::new(config);
    let hub = Hub::new(config.clone(), store);
    let shutdown = hub.shutdown.clone();
    let endpoint = McpEndpoint::new(hub.clone(), &config, shutdown.child_token());
    let app = http::router(hub.clone(), endpoint.clone());
    let open_files = http::serve::raise_open_file_limit();
    let limits = http::serve::Limits::new(&config, open_files);
    tracing::info!(
        max_connections = limits.max_connections,
        open_files,
        "connection limits"
    );
    let connections = Arc::new(http::serve::Connections::default());

    let mut addresses = Vec::new();
    let mut tasks = Vec::new();
    for listener in listeners {
        addresses.push(listener.local_addr()?);
        tasks.push(tokio::spawn(http::serve::serve(
            listener,
            app.clone(),
            limits,
            connections.clone(),
            shutdown.clone(),
        )));
    }
    let bookkeeper = hub.bookkeeper.clone();
    let stop = shutdown.clone();
    // Joined at shutdown before the store closes, so its final flush lands.
    tasks.push(tokio::spawn(async move { bookkeeper.run(stop).await }));
    tasks.push(tokio::spawn(maintenance::run_periodically(
        hub.clone(),
        shutdown.clone(),
    )));
    let sessions = endpoint.sessions.clone();
    let gc_interval = config.session_gc_interval;
    let stop = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(gc_interval);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => sessions.collect_garbage().await,
            }
        }
    }));
    Ok(HubHandle {
        hub,
        addresses,
        shutdown,
        tasks,
    })
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Runs a hub with the system clock until SIGINT/SIGTERM: binds, prints one line per
/// listener (URL, auth mode, session policy, idle timeout), serves, shuts down cleanly.
/// Shared by `hub-server` and `hubctl start`.
pub async fn run_until_signal(config: Config, env_files: &[String]) -> anyhow::Result<()> {
    let listeners = bind(&config).await?;
    let summary = format!(
        "auth_mode={} unknown_session_policy={} session_idle_timeout_ms={} db={} db_sync={}",
        config.auth_mode.as_str(),
        config.unknown_session_policy.as_str(),
        config
            .session_idle_timeout
            .map(|t| t.as_millis().to_string())
            .unwrap_or_else(|| "disabled".into()),
        config.db_path.display(),
        config.db_sync.as_str(),
    );
    let handle = start(config, listeners, Arc::new(SystemClock)).await?;
    for file in env_files {
        println!("env config {file}");
    }
    for address in &handle.addresses {
        println!("Agent Hub listening on http://{address}/mcp {summary}");
    }
    shutdown_signal().await;
    println!("Agent Hub shutting down");
    handle.shutdown().await;
    Ok(())
}
