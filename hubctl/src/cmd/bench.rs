//! `hubctl bench`: load a hub with concurrent MCP clients and report calls/s, latency
//! percentiles, the share of the transport's own ceiling (JSON-RPC `ping` on the same
//! sessions) and the hub writer thread's CPU per call. Figures go into BENCHMARKS.md with the
//! command that produced them.
//!
//! This module owns the command line and the hubs under test: by default every run starts a
//! temporary hub in this process (a fresh data dir, rate limiting off) once per requested
//! `synchronous` mode, so runs are repeatable; `--endpoint` measures a running hub instead.
//! Each scenario lives in its own `bench_*` module on top of `bench_runner`.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use hub_server::HubHandle;
use hub_server::clock::SystemClock;
use hub_server::config::{Config, EnvLayers};

use super::bench_cpu::{WriterProbe, writer_threads_of_this_process};
use super::bench_report::RunReport;
use super::bench_runner::HubTarget;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// JSON-RPC `ping` on every session: the MCP transport's own ceiling (no tool, no store).
    Ping(LoadArgs),
    /// A ping phase, then send_message, then read_messages (nano, cursor pages of 20,
    /// polling), on the same sessions; each client is its own agent.
    Messages(ToolArgs),
    /// A ping phase, then poll_and_claim + release_task_claim cycles by concurrent workers
    /// over a queue of --pending tasks (each release puts its task back, so the queue size
    /// stays constant).
    Claims(ClaimsArgs),
    /// The whole table in one go, on the same sessions: ping, send_message, create_task,
    /// read_messages (nano, polling), poll_and_claim + release cycles.
    Suite(LoadArgs),
    /// wait_for_updates: a ping phase on the waiters' sessions, then wake-up latency after a
    /// broadcast; idle CPU with many parked waiters, and response bytes per mode.
    Wake(WakeArgs),
    /// Artifact upload/download MB/s per file size against a raw loopback TCP copy of the
    /// same bytes, and the hub's peak RSS growth during the largest upload.
    Artifacts(super::bench_artifacts::ArtifactsArgs),
    /// Bytes of the MCP surface: tools/list in full and per tool profile, the largest tool,
    /// register_agent per onboarding mode, nano replies (no load; one temporary hub).
    Tokens(super::bench_tokens::TokensArgs),
}

/// Which hub(s) to measure.
#[derive(Debug, Clone, Args)]
pub(crate) struct HubArgs {
    /// Measure this running hub (e.g. http://localhost:3000/mcp) instead of temporary ones.
    /// Its rate limit applies: raise MCP_HUB_RATE_LIMIT_RPS for meaningful figures.
    #[arg(long)]
    pub(crate) endpoint: Option<String>,
    /// Commit durability of the temporary hub(s), comma-separated: one run per mode
    /// (ignored with --endpoint).
    #[arg(long, value_delimiter = ',', default_value = "full,normal")]
    pub(crate) sync: Vec<Sync>,
    /// Process id of the --endpoint hub, to read its writer thread's CPU time from /proc
    /// (Linux). Without it an external hub's writer CPU is reported as n/a; temporary hubs
    /// run in this process and are always measured.
    #[arg(long, requires = "endpoint")]
    pub(crate) hub_pid: Option<u32>,
}

/// Load shape shared by the throughput scenarios.
#[derive(Debug, Clone, Args)]
pub(crate) struct LoadArgs {
    #[command(flatten)]
    pub(crate) hub: HubArgs,
    /// Concurrent clients; each is a separate MCP session and agent, with one request in
    /// flight at a time.
    #[arg(long, default_value_t = 16)]
    pub(crate) clients: usize,
    /// Seconds each measured phase runs.
    #[arg(long, default_value_t = 10)]
    pub(crate) seconds: u64,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// A tool scenario: the load plus the ping phase that sets its 100 %.
#[derive(Debug, Clone, Args)]
pub(crate) struct ToolArgs {
    #[command(flatten)]
    pub(crate) load: LoadArgs,
    /// Seconds of the ping phase run first on the same sessions; tool throughput is reported
    /// as a share of it.
    #[arg(long, default_value_t = 3)]
    pub(crate) ping_seconds: u64,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct ClaimsArgs {
    #[command(flatten)]
    pub(crate) tool: ToolArgs,
    /// Pending tasks to seed before measuring, comma-separated for several runs.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    pub(crate) pending: Vec<usize>,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct WakeArgs {
    /// Measure this running hub instead of a temporary one (idle CPU is measured only for
    /// the temporary, in-process hub).
    #[arg(long)]
    pub(crate) endpoint: Option<String>,
    /// Process id of the --endpoint hub, to read its writer thread's CPU time from /proc
    /// (Linux); without it writer CPU is n/a for an external hub.
    #[arg(long, requires = "endpoint")]
    pub(crate) hub_pid: Option<u32>,
    /// Waiter counts to measure wake-up latency with, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "8,256")]
    pub(crate) waiters: Vec<usize>,
    /// Broadcasts per waiter count; every waiter contributes one sample per broadcast.
    #[arg(long, default_value_t = 30)]
    pub(crate) rounds: usize,
    /// Seconds of the ping phase on the waiters' sessions (as many concurrent clients as
    /// waiters) before each waiter count; 0 skips it.
    #[arg(long, default_value_t = 3)]
    pub(crate) ping_seconds: u64,
    /// Parked waiters for the idle-CPU measurement (0 skips it).
    #[arg(long, default_value_t = 1000)]
    pub(crate) idle_waiters: usize,
    /// Seconds of the idle-CPU measurement.
    #[arg(long, default_value_t = 30)]
    pub(crate) idle_seconds: u64,
    /// Print the report as JSON instead of tables.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Sync {
    Full,
    Normal,
}

impl Sync {
    fn as_str(self) -> &'static str {
        match self {
            Sync::Full => "full",
            Sync::Normal => "normal",
        }
    }
}

impl LoadArgs {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.clients >= 1, "--clients must be at least 1");
        anyhow::ensure!(self.seconds >= 1, "--seconds must be at least 1");
        Ok(())
    }
}

/// A temporary hub for one run, with its writer thread located.
pub(crate) struct TempHub {
    pub(crate) handle: HubHandle,
    pub(crate) writer: WriterProbe,
    _data: tempfile::TempDir,
}

impl TempHub {
    pub(crate) fn target(&self, label: String) -> HubTarget {
        HubTarget {
            url: self.handle.mcp_url(),
            label,
            writer: self.writer.clone(),
        }
    }
}

pub(crate) async fn start_temp_hub(sync: Sync) -> anyhow::Result<TempHub> {
    let data = tempfile::tempdir().context("creating a temporary data dir")?;
    let mut env = EnvLayers::default();
    for (key, value) in [
        ("MCP_HUB_DATA", data.path().display().to_string()),
        ("MCP_HUB_DB_SYNC", sync.as_str().to_string()),
        ("MCP_HUB_RATE_LIMIT_RPS", "0".to_string()),
    ] {
        env.vars.insert(key.to_string(), value);
    }
    // `MCP_HUB_METRICS=off hubctl bench …` measures the hub without its Prometheus counters.
    if let Ok(metrics) = std::env::var("MCP_HUB_METRICS") {
        env.vars.insert("MCP_HUB_METRICS".into(), metrics);
    }
    let config = Config::from_env(&env).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let writers_before: BTreeSet<u32> = writer_threads_of_this_process();
    let handle = hub_server::start(config, vec![listener], Arc::new(SystemClock)).await?;
    Ok(TempHub {
        handle,
        writer: WriterProbe::in_process(&writers_before).await,
        _data: data,
    })
}

/// The target for a hub this process did not start.
pub(crate) fn external_target(endpoint: &str, hub_pid: Option<u32>) -> HubTarget {
    HubTarget {
        url: endpoint.to_string(),
        label: "external".into(),
        writer: match hub_pid {
            Some(pid) => WriterProbe::for_pid(pid),
            None => WriterProbe::Unavailable("external hub; pass --hub-pid".into()),
        },
    }
}

/// Runs `measure` once against the --endpoint hub, or once per --sync mode against a fresh
/// temporary hub (shut down after its run, also on failure).
pub(crate) async fn for_each_hub<F, Fut>(
    hub: &HubArgs,
    mut measure: F,
) -> anyhow::Result<Vec<RunReport>>
where
    F: FnMut(HubTarget) -> Fut,
    Fut: Future<Output = anyhow::Result<RunReport>>,
{
    if let Some(endpoint) = &hub.endpoint {
        return Ok(vec![measure(external_target(endpoint, hub.hub_pid)).await?]);
    }
    let mut runs = Vec::with_capacity(hub.sync.len());
    for sync in &hub.sync {
        let temp = start_temp_hub(*sync).await?;
        let outcome = measure(temp.target(format!("sync={}", sync.as_str()))).await;
        temp.handle.shutdown().await;
        runs.push(outcome?);
    }
    Ok(runs)
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.scenario {
        Scenario::Ping(load) => super::bench_ping::run(load).await,
        Scenario::Messages(tool) => super::bench_messages::run(tool).await,
        Scenario::Claims(claims) => super::bench_claims::run(claims).await,
        Scenario::Suite(tool) => super::bench_suite::run(tool).await,
        Scenario::Wake(wake) => super::bench_wake::run(wake).await,
        Scenario::Artifacts(artifacts) => super::bench_artifacts::run(artifacts).await,
        Scenario::Tokens(tokens) => super::bench_tokens::run(tokens).await,
    }
}
