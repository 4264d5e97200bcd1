//! `hubctl bench`: load a hub with concurrent MCP clients and report calls/s, latency
//! percentiles, the share of the transport's own ceiling (JSON-RPC `ping` on the same
//! sessions) and the hub writer thread's CPU per call. Figures go into BENCHMARKS.md with the
//! command that produced them.
//!
//! This module owns the command line and the hubs under test: by default every run starts
//! temporary hubs in this process (fresh data, rate limiting off) once per requested backend
//! (and, for SQLite, per `synchronous` mode), so runs are repeatable; `--endpoint` measures a
//! running hub instead. PostgreSQL backends live in `bench_pg`. Each scenario lives in its
//! own `bench_*` module on top of `bench_runner`.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use hub_server::HubHandle;
use hub_server::clock::SystemClock;
use hub_server::config::{Config, EnvLayers};

use super::bench_cpu::{WriterProbe, writer_threads_of_this_process};
use super::bench_pg::{DbProbe, PgBench};
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
    /// Stores of the temporary hubs, repeatable or comma-separated, one run each: sqlite (a
    /// file per --sync mode), postgres (one hub on a fresh database of a throwaway durable
    /// cluster), postgres-2 (two hubs on one database; clients split evenly over them).
    #[arg(long, value_delimiter = ',', default_value = "sqlite")]
    pub(crate) backend: Vec<Backend>,
    /// Measure this running hub (e.g. http://localhost:3000/mcp) instead of temporary ones.
    /// Its rate limit applies: raise MCP_HUB_RATE_LIMIT_RPS for meaningful figures.
    #[arg(long)]
    pub(crate) endpoint: Option<String>,
    /// Commit durability of the temporary SQLite hub(s), comma-separated: one run per mode
    /// (ignored with --endpoint and by the PostgreSQL backends).
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
    /// Stores of the temporary hubs, as for the other scenarios (SQLite with
    /// synchronous=full). With postgres-2 the waiters park on replica A and the broadcast is
    /// sent through replica B: the cross-replica wake-up.
    #[arg(long, value_delimiter = ',', default_value = "sqlite")]
    pub(crate) backend: Vec<Backend>,
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
pub(crate) enum Backend {
    Sqlite,
    Postgres,
    #[value(name = "postgres-2")]
    Postgres2,
}

impl Backend {
    /// Hub replicas on one database (PostgreSQL backends).
    fn replicas(self) -> usize {
        match self {
            Backend::Postgres2 => 2,
            Backend::Sqlite | Backend::Postgres => 1,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Postgres2 => "postgres-2 replicas",
        }
    }
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

/// The temporary hub(s) of one run: one, or several replicas on one PostgreSQL database,
/// with their writer threads located.
pub(crate) struct TempHub {
    handles: Vec<HubHandle>,
    writer: WriterProbe,
    /// The database-side counters (PostgreSQL backends).
    pub(crate) db: Option<DbProbe>,
    _data: Vec<tempfile::TempDir>,
}

impl TempHub {
    pub(crate) fn target(&self, label: String) -> HubTarget {
        HubTarget {
            urls: self.handles.iter().map(HubHandle::mcp_url).collect(),
            label,
            writer: self.writer.clone(),
            db: self.db.clone(),
        }
    }

    /// The first replica's MCP URL.
    pub(crate) fn mcp_url(&self) -> String {
        self.handles[0].mcp_url()
    }

    pub(crate) async fn shutdown(self) {
        for handle in self.handles {
            handle.shutdown().await;
        }
    }
}

/// A temporary SQLite hub with the given durability.
pub(crate) async fn start_temp_hub(sync: Sync) -> anyhow::Result<TempHub> {
    start_in_process(&[("MCP_HUB_DB_SYNC", sync.as_str().to_string())], 1).await
}

/// `replicas` hubs in this process, each with a fresh data dir and rate limiting off, plus
/// the `env` given (replicas share a store only through MCP_HUB_DB_URL).
pub(crate) async fn start_in_process(
    env: &[(&str, String)],
    replicas: usize,
) -> anyhow::Result<TempHub> {
    let writers_before: BTreeSet<u32> = writer_threads_of_this_process();
    let mut hubs = TempHub {
        handles: Vec::with_capacity(replicas),
        writer: WriterProbe::Unavailable("not started".into()),
        db: None,
        _data: Vec::with_capacity(replicas),
    };
    for _ in 0..replicas {
        let data = tempfile::tempdir().context("creating a temporary data dir")?;
        let mut layers = EnvLayers::default();
        layers
            .vars
            .insert("MCP_HUB_DATA".into(), data.path().display().to_string());
        layers
            .vars
            .insert("MCP_HUB_RATE_LIMIT_RPS".into(), "0".into());
        for (key, value) in env {
            layers.vars.insert(key.to_string(), value.clone());
        }
        // `MCP_HUB_METRICS=off hubctl bench …` measures the hub without its Prometheus counters.
        if let Ok(metrics) = std::env::var("MCP_HUB_METRICS") {
            layers.vars.insert("MCP_HUB_METRICS".into(), metrics);
        }
        let config = Config::from_env(&layers).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let started = hub_server::start(config, vec![listener], Arc::new(SystemClock)).await;
        hubs._data.push(data);
        match started {
            Ok(handle) => hubs.handles.push(handle),
            Err(error) => {
                hubs.shutdown().await;
                return Err(error);
            }
        }
    }
    hubs.writer = WriterProbe::in_process(&writers_before, replicas).await;
    Ok(hubs)
}

/// The target for a hub this process did not start.
pub(crate) fn external_target(endpoint: &str, hub_pid: Option<u32>) -> HubTarget {
    HubTarget {
        urls: vec![endpoint.to_string()],
        label: "external".into(),
        writer: match hub_pid {
            Some(pid) => WriterProbe::for_pid(pid),
            None => WriterProbe::Unavailable("external hub; pass --hub-pid".into()),
        },
        db: None,
    }
}

/// One run's hubs to start: the backend and, for SQLite, the durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunPlan {
    pub(crate) backend: Backend,
    pub(crate) sync: Sync,
}

impl RunPlan {
    /// The runs of a command: SQLite once per sync mode, each PostgreSQL backend once.
    pub(crate) fn all(backends: &[Backend], syncs: &[Sync]) -> Vec<RunPlan> {
        let mut plans = Vec::new();
        for &backend in backends {
            let syncs = match backend {
                Backend::Sqlite => syncs,
                Backend::Postgres | Backend::Postgres2 => &[Sync::Full][..],
            };
            for &sync in syncs {
                let plan = RunPlan { backend, sync };
                if !plans.contains(&plan) {
                    plans.push(plan);
                }
            }
        }
        plans
    }

    pub(crate) fn label(self) -> String {
        match self.backend {
            Backend::Sqlite => format!("sqlite sync={}", self.sync.as_str()),
            other => other.label().to_string(),
        }
    }
}

/// Runs `measure` once per plan against fresh temporary hubs, shut down after their run —
/// also on failure, and the PostgreSQL cluster (started on first need) after the last run.
pub(crate) async fn for_each_plan<F, Fut, R>(
    plans: &[RunPlan],
    mut measure: F,
) -> anyhow::Result<Vec<R>>
where
    F: FnMut(HubTarget) -> Fut,
    Fut: Future<Output = anyhow::Result<R>>,
{
    let mut cluster: Option<PgBench> = None;
    let mut results = Vec::with_capacity(plans.len());
    let mut failure = None;
    for &plan in plans {
        let hubs = match plan.backend {
            Backend::Sqlite => start_temp_hub(plan.sync).await,
            backend => match &mut cluster {
                Some(cluster) => cluster.start_hubs(backend.replicas()).await,
                None => match PgBench::start().await {
                    Ok(started) => cluster.insert(started).start_hubs(backend.replicas()).await,
                    Err(error) => Err(error),
                },
            },
        };
        let outcome = match hubs {
            Ok(hubs) => {
                let outcome = measure(hubs.target(plan.label())).await;
                hubs.shutdown().await;
                outcome
            }
            Err(error) => Err(error),
        };
        match outcome {
            Ok(result) => results.push(result),
            Err(error) => {
                failure = Some(error.context(format!("run {}", plan.label())));
                break;
            }
        }
    }
    if let Some(cluster) = cluster {
        cluster.stop().await;
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(results),
    }
}

/// Runs `measure` once against the --endpoint hub, or once per backend (and SQLite --sync
/// mode) against fresh temporary hubs.
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
    for_each_plan(&RunPlan::all(&hub.backend, &hub.sync), measure).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_parse_and_plan_one_run_each() {
        let parse = |name: &str| Backend::from_str(name, false);
        assert_eq!(parse("postgres-2"), Ok(Backend::Postgres2));
        assert_eq!(parse("postgres"), Ok(Backend::Postgres));
        assert!(parse("postgres2").is_err());
        let plans = RunPlan::all(
            &[
                Backend::Sqlite,
                Backend::Postgres,
                Backend::Postgres2,
                Backend::Postgres,
            ],
            &[Sync::Full, Sync::Normal],
        );
        let labels: Vec<String> = plans.iter().map(|plan| plan.label()).collect();
        // SQLite once per sync mode; PostgreSQL ignores --sync and runs once per backend.
        assert_eq!(
            labels,
            [
                "sqlite sync=full",
                "sqlite sync=normal",
                "postgres",
                "postgres-2 replicas"
            ]
        );
        assert_eq!(Backend::Postgres2.replicas(), 2);
    }
}
