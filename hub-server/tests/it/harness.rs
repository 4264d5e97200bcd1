//! `TestHub`: a hub on an ephemeral loopback port with a temp data dir and a manual clock,
//! plus `Agent`, an MCP client session that calls tools and parses their JSON results.
//!
//! Backend matrix: `HUB_TEST_BACKEND=postgres` gives every `TestHub` a fresh database on the
//! process's throwaway PostgreSQL cluster (`pg_cluster::Cluster::shared`); `sqlite` (the
//! default) a SQLite file in its data dir. `TestHub::start_replicas` is PostgreSQL always.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hub_server::HubHandle;
use hub_server::clock::ManualClock;
use hub_server::config::{Config, EnvLayers};
use hub_server::pg_cluster::Cluster;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

pub const START_MS: i64 = 1_800_000_000_000;

/// The database behind every `TestHub` of this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `HUB_TEST_BACKEND`: `sqlite` (default) or `postgres`; anything else is a mistake.
    pub fn current() -> Backend {
        match std::env::var("HUB_TEST_BACKEND").as_deref() {
            Err(_) | Ok("") | Ok("sqlite") => Backend::Sqlite,
            Ok("postgres") | Ok("postgresql") => Backend::Postgres,
            Ok(other) => panic!("HUB_TEST_BACKEND={other}: use sqlite or postgres"),
        }
    }
}

/// For a test of the SQLite file itself: under `HUB_TEST_BACKEND=postgres` it says why it
/// is skipped and returns true (the caller returns); the test runs under SQLite.
pub fn skip_unless_sqlite(why: &str) -> bool {
    let skip = Backend::current() == Backend::Postgres;
    if skip {
        eprintln!("skipped under HUB_TEST_BACKEND=postgres: {why}");
    }
    skip
}

/// A new empty database on the shared throwaway cluster; its URL.
pub fn fresh_postgres_database() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let cluster = Cluster::shared().unwrap_or_else(|e| panic!("PostgreSQL for tests: {e}"));
    let name = format!(
        "hub_it_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    cluster
        .create_database(&name)
        .unwrap_or_else(|e| panic!("PostgreSQL for tests: {e}"))
}

pub struct TestHub {
    pub handle: HubHandle,
    pub clock: Arc<ManualClock>,
    pub data_dir: Arc<tempfile::TempDir>,
    /// `Some` on PostgreSQL: the database this hub (and its restarts) use.
    pub db_url: Option<String>,
    /// The artifacts dir replicas share (they must, as in production); kept alive here.
    shared_artifacts: Option<Arc<tempfile::TempDir>>,
    env: Vec<(String, String)>,
}

impl TestHub {
    pub async fn start() -> TestHub {
        Self::start_with(&[]).await
    }

    /// Starts a hub with extra `MCP_HUB_*` settings.
    pub async fn start_with(env: &[(&str, &str)]) -> TestHub {
        let data_dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let db_url = match Backend::current() {
            Backend::Sqlite => None,
            Backend::Postgres => Some(fresh_postgres_database()),
        };
        Self::launch(
            data_dir,
            owned(env),
            ManualClock::new(START_MS),
            db_url,
            None,
        )
        .await
    }

    /// A hub on a given PostgreSQL database (a dedicated cluster's), whatever the backend.
    pub async fn start_on(db_url: &str, env: &[(&str, &str)]) -> TestHub {
        let data_dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let clock = ManualClock::new(START_MS);
        Self::launch(data_dir, owned(env), clock, Some(db_url.into()), None).await
    }

    /// `n` hubs in this process, each with its own store, port and data dir, on ONE fresh
    /// PostgreSQL database (whatever `HUB_TEST_BACKEND` says), sharing one manual clock and
    /// one artifacts dir — replicas of one deployment.
    pub async fn start_replicas(n: usize, env: &[(&str, &str)]) -> Vec<TestHub> {
        let db_url = fresh_postgres_database();
        let clock = ManualClock::new(START_MS);
        let artifacts = Arc::new(tempfile::tempdir().expect("temp dir"));
        let mut env = owned(env);
        env.push((
            "MCP_HUB_ARTIFACTS_DIR".into(),
            artifacts.path().display().to_string(),
        ));
        let mut hubs = Vec::with_capacity(n);
        for _ in 0..n {
            let data_dir = Arc::new(tempfile::tempdir().expect("temp dir"));
            hubs.push(
                Self::launch(
                    data_dir,
                    env.clone(),
                    clock.clone(),
                    Some(db_url.clone()),
                    Some(artifacts.clone()),
                )
                .await,
            );
        }
        hubs
    }

    async fn launch(
        data_dir: Arc<tempfile::TempDir>,
        env: Vec<(String, String)>,
        clock: Arc<ManualClock>,
        db_url: Option<String>,
        shared_artifacts: Option<Arc<tempfile::TempDir>>,
    ) -> TestHub {
        let mut layers = EnvLayers::default();
        layers
            .vars
            .insert("MCP_HUB_DATA".into(), data_dir.path().display().to_string());
        layers
            .vars
            .insert("MCP_HUB_DB_SYNC".into(), "normal".into());
        if let Some(url) = &db_url {
            layers.vars.insert("MCP_HUB_DB_URL".into(), url.clone());
        }
        for (key, value) in &env {
            layers.vars.insert(key.clone(), value.clone());
        }
        let config = Config::from_env(&layers).expect("valid test config");
        // Bind first, then serve: the port is known before any client connects.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let handle = hub_server::start(config, vec![listener], clock.clone())
            .await
            .expect("hub starts");
        TestHub {
            handle,
            clock,
            data_dir,
            db_url,
            shared_artifacts,
            env,
        }
    }

    /// Stops the hub and starts a new one on the same data dir and database (a fresh port).
    pub async fn restart(self) -> TestHub {
        let TestHub {
            handle,
            clock,
            data_dir,
            db_url,
            shared_artifacts,
            env,
        } = self;
        handle.shutdown().await;
        Self::launch(data_dir, env, clock, db_url, shared_artifacts).await
    }

    pub async fn stop(self) {
        self.handle.shutdown().await;
    }

    pub fn url(&self) -> String {
        self.handle.mcp_url()
    }

    pub fn base_url(&self) -> String {
        self.handle.base_url()
    }

    /// `GET /health` as JSON.
    pub async fn health(&self) -> Value {
        http()
            .get(format!("{}/health", self.base_url()))
            .send()
            .await
            .expect("GET /health")
            .json()
            .await
            .expect("/health is JSON")
    }

    /// Writes the coalesced bookkeeping (auth events, heartbeats, quiet activity) now.
    pub async fn flush_bookkeeping(&self) {
        self.handle.hub.bookkeeper.flush().await.expect("flush");
    }

    /// Rows of a read-only query, every value as text.
    pub async fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let sql = sql.to_string();
        self.handle
            .hub
            .store
            .read(move |db| hub_server::store::inspect::query(db, &sql, 100_000))
            .await
            .expect("query")
            .rows
    }

    /// The SQLite file; tests that open it call `skip_unless_sqlite` first.
    pub fn db_path(&self) -> PathBuf {
        assert!(
            self.db_url.is_none(),
            "db_path() on a PostgreSQL hub: guard the test with skip_unless_sqlite"
        );
        self.data_dir.path().join("hub.db")
    }

    /// Registers agents that a test only writes to (direct messages need a recipient).
    pub async fn register_ids(&self, ids: &[&str]) {
        let client = self.client().await;
        for id in ids {
            client.register(id, json!({})).await;
        }
        client.close().await;
    }

    /// A new MCP session.
    pub async fn client(&self) -> Client {
        Client::connect(&self.url(), None).await
    }

    /// A new MCP session that sends `Authorization: Bearer <token>` on every request.
    pub async fn client_with_bearer(&self, token: &str) -> Client {
        Client::connect(&self.url(), Some(token)).await
    }

    /// Registers `id` on a new session; returns the session and the agent's token.
    pub async fn agent(&self, id: &str) -> (Client, String) {
        let client = self.client().await;
        let token = client.register(id, json!({})).await;
        (client, token)
    }
}

/// Runs one call on a task of its own: a long-poll that the test answers meanwhile.
pub fn spawn_call(
    client: &Arc<Client>,
    tool: &'static str,
    args: Value,
) -> tokio::task::JoinHandle<Outcome> {
    let client = client.clone();
    tokio::spawn(async move { client.call(tool, args).await })
}

fn owned(env: &[(&str, &str)]) -> Vec<(String, String)> {
    env.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The real `hub-server` binary as a child process (system clock), for tests that kill it.
pub struct ChildHub {
    pub child: tokio::process::Child,
    /// `http://127.0.0.1:<port>/mcp`.
    pub url: String,
    pub data_dir: tempfile::TempDir,
}

impl ChildHub {
    /// Starts the binary on a borrowed free port (it refuses port 0) with a temp data dir,
    /// no env files and the given settings; returns once it printed its listening line.
    pub async fn spawn(env: &[(&str, &str)]) -> ChildHub {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hub-server"));
        command
            .env("MCP_HUB_DATA", data_dir.path())
            .env("MCP_HUB_PORT", port.to_string())
            .env("MCP_HUB_ENV_FILE", "/dev/null")
            .env("MCP_HUB_LOCAL_ENV_FILE", "/dev/null")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn hub-server");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("hub output") {
                if let Some(rest) = line.strip_prefix("Agent Hub listening on ") {
                    return rest.split_whitespace().next().map(str::to_string);
                }
            }
            None
        })
        .await
        .expect("the hub starts within 60 s")
        .expect("hub-server exited before listening");
        // Keep reading so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        ChildHub {
            child,
            url,
            data_dir,
        }
    }

    /// SIGKILL, and reap it (the data dir stays until the `ChildHub` is dropped).
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("SIGKILL hub-server");
    }
}

pub struct Client {
    pub service: RunningService<RoleClient, ClientConfig>,
}

/// A tool's result: the parsed JSON object plus the MCP `isError` flag.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub json: Value,
    pub is_error: bool,
}

impl Outcome {
    pub fn ok(&self) -> &Value {
        assert!(
            !self.is_error && self.json.get("success") != Some(&Value::Bool(false)),
            "expected success, got {}",
            self.json
        );
        &self.json
    }

    pub fn error_code(&self) -> &str {
        assert!(self.is_error, "refusals set isError: {}", self.json);
        self.json["error_code"].as_str().unwrap_or_else(|| {
            panic!("refusal without error_code: {}", self.json);
        })
    }
}

impl Client {
    pub async fn connect(url: &str, bearer: Option<&str>) -> Client {
        let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_string());
        if let Some(token) = bearer {
            config = config.auth_header(token.to_string());
        }
        Self::connect_with(config).await
    }

    /// A client of the sessionless 2026-07-28 revision: no session, every request stands
    /// alone (so any replica can answer it).
    pub async fn connect_sessionless(url: &str) -> Client {
        use rmcp::model::ProtocolVersion;
        use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
        let transport = StreamableHttpClientTransport::from_uri(url.to_string());
        let service = ClientConfig::default()
            .serve_with_lifecycle(
                transport,
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                },
            )
            .await
            .expect("discover handshake");
        Client { service }
    }

    /// A session over a transport configured by the test (custom headers).
    pub async fn connect_with(config: StreamableHttpClientTransportConfig) -> Client {
        let transport = StreamableHttpClientTransport::from_config(config);
        let service = ClientConfig::default()
            .serve(transport)
            .await
            .expect("MCP handshake");
        Client { service }
    }

    /// Calls a tool; panics on protocol errors (use `try_call` to see them).
    pub async fn call(&self, tool: &str, args: Value) -> Outcome {
        self.try_call(tool, args)
            .await
            .unwrap_or_else(|e| panic!("{tool}: protocol error {e}"))
    }

    pub async fn try_call(&self, tool: &str, args: Value) -> Result<Outcome, rmcp::ServiceError> {
        let arguments = args.as_object().cloned().unwrap_or_default();
        let result = self
            .service
            .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(arguments))
            .await?;
        assert_eq!(result.content.len(), 1, "exactly one content block");
        let text = result.content[0]
            .as_text()
            .map(|t| t.text.clone())
            .expect("a text block");
        let json: Value = serde_json::from_str(&text).expect("the text is one JSON object");
        assert!(json.is_object());
        Ok(Outcome {
            json,
            is_error: result.is_error == Some(true),
        })
    }

    /// register_agent with extra fields; returns the token.
    pub async fn register(&self, id: &str, extra: Value) -> String {
        let mut args = json!({"id": id, "name": id, "type": "test"});
        for (key, value) in extra.as_object().cloned().unwrap_or_default() {
            args[key] = value;
        }
        let outcome = self.call("register_agent", args).await;
        outcome.ok()["auth"]["token"]
            .as_str()
            .expect("a token")
            .to_string()
    }

    pub async fn close(self) {
        let _ = self.service.cancel().await;
    }
}

/// Raw HTTP for tests of the wire itself.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().build().expect("reqwest client")
}

pub fn initialize_body(id: i64) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "raw-test", "version": "1.0.0"}}
    })
}

/// initialize + notifications/initialized over raw HTTP; returns the session id.
pub async fn raw_session(url: &str) -> String {
    let client = http();
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&initialize_body(1))
        .send()
        .await
        .expect("initialize");
    assert_eq!(response.status(), 200);
    let session = response
        .headers()
        .get("mcp-session-id")
        .expect("a session id")
        .to_str()
        .unwrap()
        .to_string();
    let notified = client
        .post(url)
        .header("content-type", "application/json")
        .header("mcp-session-id", &session)
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .expect("initialized");
    assert_eq!(notified.status(), 202);
    session
}
