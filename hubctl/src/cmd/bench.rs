//! `hubctl bench`: load a hub with concurrent MCP clients and report calls/s and latency
//! percentiles per tool. Figures go into BENCHMARKS.md with the command that produced them.
//!
//! By default every run starts a temporary hub in this process (a fresh data dir, rate
//! limiting off) once per requested `synchronous` mode, so runs are repeatable;
//! `--endpoint` measures an already running hub instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use hub_server::HubHandle;
use hub_server::clock::SystemClock;
use hub_server::config::{Config, EnvLayers};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::client::McpClient;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// send_message, then read_messages (nano, cursor pages), each client its own agent.
    Messages(CommonArgs),
    /// wait_for_updates: wake-up latency after a broadcast, idle CPU with many parked
    /// waiters, and response bytes per mode.
    Wake(WakeArgs),
    /// poll_and_claim + release_task_claim cycles by concurrent workers over a queue of
    /// --pending tasks (each release puts its task back, so the queue size stays constant).
    Claims(ClaimsArgs),
}

#[derive(Debug, Clone, Args)]
pub(crate) struct ClaimsArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Pending tasks to seed before measuring, comma-separated for several runs.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    pending: Vec<usize>,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct WakeArgs {
    /// Measure this running hub instead of a temporary one (idle CPU is measured only for
    /// the temporary, in-process hub).
    #[arg(long)]
    pub(crate) endpoint: Option<String>,
    /// Waiter counts to measure wake-up latency with, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "8,256")]
    pub(crate) waiters: Vec<usize>,
    /// Broadcasts per waiter count; every waiter contributes one sample per broadcast.
    #[arg(long, default_value_t = 30)]
    pub(crate) rounds: usize,
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

#[derive(Debug, Clone, Args)]
struct CommonArgs {
    /// Measure this running hub (e.g. http://localhost:3000/mcp) instead of a temporary one.
    /// Its rate limit applies: raise MCP_HUB_RATE_LIMIT_RPS for meaningful figures.
    #[arg(long)]
    endpoint: Option<String>,
    /// Concurrent clients; each is a separate MCP session and agent.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds each measured phase runs.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Commit durability of the temporary hub(s), comma-separated (ignored with --endpoint).
    #[arg(long, value_delimiter = ',', default_value = "full,normal")]
    sync: Vec<Sync>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Latency figures for one tool in one phase.
#[derive(Debug, Clone)]
pub(crate) struct PhaseStats {
    pub(crate) hub: String,
    pub(crate) tool: &'static str,
    pub(crate) clients: usize,
    pub(crate) calls: usize,
    pub(crate) errors: usize,
    pub(crate) seconds: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) mean_ms: f64,
}

impl PhaseStats {
    fn calls_per_sec(&self) -> f64 {
        self.calls as f64 / self.seconds
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "hub": self.hub,
            "tool": self.tool,
            "clients": self.clients,
            "calls": self.calls,
            "errors": self.errors,
            "seconds": round2(self.seconds),
            "calls_per_sec": round2(self.calls_per_sec()),
            "p50_ms": round2(self.p50_ms),
            "p99_ms": round2(self.p99_ms),
            "mean_ms": round2(self.mean_ms),
        })
    }
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

pub(crate) fn percentile(sorted_micros: &[u64], fraction: f64) -> f64 {
    if sorted_micros.is_empty() {
        return 0.0;
    }
    let rank = ((sorted_micros.len() as f64 - 1.0) * fraction).round() as usize;
    sorted_micros[rank] as f64 / 1000.0
}

/// A temporary hub for one run.
pub(crate) struct TempHub {
    pub(crate) handle: HubHandle,
    _data: tempfile::TempDir,
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
    let config = Config::from_env(&env).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let handle = hub_server::start(config, vec![listener], Arc::new(SystemClock)).await?;
    Ok(TempHub {
        handle,
        _data: data,
    })
}

/// One benchmark client: an MCP session acting as one agent.
struct Worker {
    client: McpClient,
    agent: String,
    token: String,
    peer: String,
    cursor: String,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    SendMessage,
    ReadMessagesNano,
    PollClaimRelease,
}

impl Op {
    fn tool(self) -> &'static str {
        match self {
            Op::SendMessage => "send_message",
            Op::ReadMessagesNano => "read_messages (nano)",
            Op::PollClaimRelease => "poll_and_claim + release",
        }
    }
}

const PAYLOAD: &str = "status update: parsed 42 files, 3 warnings, next step is the \
                       integration suite; evidence in context key build-report. ";

/// Registers a benchmark agent (ephemeral, no onboarding); returns its token.
pub(crate) async fn register_agent(client: &mut McpClient, agent: &str) -> anyhow::Result<String> {
    let reply = client
        .call_tool(
            "register_agent",
            json!({"id": agent, "name": agent, "type": "benchmark",
                   "onboarding_mode": "none", "lifecycle": "ephemeral"}),
        )
        .await?;
    if !reply.succeeded() {
        bail!("register_agent failed: {}", reply.json);
    }
    Ok(reply.json["auth"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

async fn connect_workers(url: &str, clients: usize, run: &str) -> anyhow::Result<Vec<Worker>> {
    let mut workers = Vec::with_capacity(clients);
    for index in 0..clients {
        let mut client = McpClient::connect(url, "hubctl-bench").await?;
        let agent = format!("bench-{run}-{index}");
        let token = register_agent(&mut client, &agent).await?;
        workers.push(Worker {
            client,
            agent,
            token,
            peer: format!("bench-{run}-{}", (index + 1) % clients),
            cursor: "0".into(),
        });
    }
    Ok(workers)
}

async fn run_op(worker: &mut Worker, op: Op) -> anyhow::Result<bool> {
    let reply = match op {
        Op::SendMessage => {
            worker
                .client
                .call_tool(
                    "send_message",
                    json!({"from_agent": worker.agent, "to_agent": worker.peer,
                           "content": PAYLOAD, "auth_token": worker.token}),
                )
                .await?
        }
        Op::ReadMessagesNano => {
            let reply = worker
                .client
                .call_tool(
                    "read_messages",
                    json!({"agent_id": worker.agent, "cursor": worker.cursor, "limit": 20,
                           "response_mode": "nano", "polling": true, "auth_token": worker.token}),
                )
                .await?;
            // Page through the inbox; at its end start again from the beginning, so every
            // call returns a page of up to 20 messages.
            worker.cursor = match (reply.json["h"].as_u64(), reply.json["n"].as_str()) {
                (Some(1), Some(next)) => next.to_string(),
                _ => "0".to_string(),
            };
            reply
        }
        Op::PollClaimRelease => {
            let claimed = worker
                .client
                .call_tool(
                    "poll_and_claim",
                    json!({"agent_id": worker.agent, "lease_seconds": 60,
                           "auth_token": worker.token}),
                )
                .await?;
            let (Some(task_id), Some(claim_id)) = (
                claimed.json["task"]["id"].as_i64(),
                claimed.json["claim"]["claim_id"].as_str(),
            ) else {
                return Ok(false);
            };
            worker
                .client
                .call_tool(
                    "release_task_claim",
                    json!({"task_id": task_id, "agent_id": worker.agent, "claim_id": claim_id,
                           "next_status": "pending", "auth_token": worker.token}),
                )
                .await?
        }
    };
    Ok(reply.succeeded())
}

/// Creates `count` pending tasks through create_task (one seeding session).
async fn seed_tasks(url: &str, count: usize, progress: &ProgressBar) -> anyhow::Result<()> {
    let mut client = McpClient::connect(url, "hubctl-bench-seed").await?;
    progress.set_length(count as u64);
    progress.set_position(0);
    progress.set_message(format!("seeding {count} tasks"));
    for index in 0..count {
        let reply = client
            .call_tool(
                "create_task",
                json!({"title": format!("bench task {index}"), "created_by": "bench-seeder"}),
            )
            .await?;
        if !reply.succeeded() {
            bail!("create_task failed: {}", reply.json);
        }
        if index % 500 == 0 {
            progress.set_position(index as u64);
        }
    }
    client.close().await;
    Ok(())
}

async fn bench_claims(
    url: &str,
    hub: &str,
    args: &CommonArgs,
    pending: usize,
) -> anyhow::Result<PhaseStats> {
    let progress = progress_bar(args.seconds);
    seed_tasks(url, pending, &progress).await?;
    progress.set_length(args.seconds);
    let run = format!("{}-c{pending}", std::process::id());
    let workers = connect_workers(url, args.clients, &run).await?;
    let (workers, stats) =
        run_phase(hub, workers, Op::PollClaimRelease, args.seconds, &progress).await?;
    progress.finish_and_clear();
    for worker in workers {
        worker.client.close().await;
    }
    Ok(stats)
}

/// Runs `op` on every worker concurrently for `seconds`; returns the workers and the stats.
async fn run_phase(
    hub: &str,
    workers: Vec<Worker>,
    op: Op,
    seconds: u64,
    progress: &ProgressBar,
) -> anyhow::Result<(Vec<Worker>, PhaseStats)> {
    let clients = workers.len();
    let completed = Arc::new(AtomicU64::new(0));
    progress.set_position(0);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for mut worker in workers {
        let completed = completed.clone();
        tasks.push(tokio::spawn(async move {
            let mut micros = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let call_started = Instant::now();
                match run_op(&mut worker, op).await {
                    Ok(true) => micros.push(call_started.elapsed().as_micros() as u64),
                    Ok(false) | Err(_) => errors += 1,
                }
                completed.fetch_add(1, Ordering::Relaxed);
            }
            (worker, micros, errors)
        }));
    }
    let ticker = {
        let progress = progress.clone();
        let completed = completed.clone();
        let label = format!("{hub}: {}", op.tool());
        tokio::spawn(async move {
            loop {
                progress.set_position(started.elapsed().as_secs().min(seconds));
                let calls = completed.load(Ordering::Relaxed);
                progress.set_message(format!("{label} — {calls} calls"));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let mut workers = Vec::with_capacity(clients);
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (worker, micros, worker_errors) = task.await?;
        workers.push(worker);
        all.extend(micros);
        errors += worker_errors;
    }
    ticker.abort();
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let mean_ms = if all.is_empty() {
        0.0
    } else {
        all.iter().sum::<u64>() as f64 / all.len() as f64 / 1000.0
    };
    let stats = PhaseStats {
        hub: hub.to_string(),
        tool: op.tool(),
        clients,
        calls: all.len(),
        errors,
        seconds: elapsed,
        p50_ms: percentile(&all, 0.50),
        p99_ms: percentile(&all, 0.99),
        mean_ms,
    };
    Ok((workers, stats))
}

pub(crate) fn progress_bar(seconds: u64) -> ProgressBar {
    let progress = ProgressBar::new(seconds);
    progress.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len}s {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    progress.enable_steady_tick(Duration::from_millis(120));
    progress
}

async fn bench_messages(
    url: &str,
    hub: &str,
    args: &CommonArgs,
) -> anyhow::Result<Vec<PhaseStats>> {
    let progress = progress_bar(args.seconds);
    let run = format!("{}", std::process::id());
    let mut workers = connect_workers(url, args.clients, &run).await?;
    let mut results = Vec::new();
    for op in [Op::SendMessage, Op::ReadMessagesNano] {
        let (back, stats) = run_phase(hub, workers, op, args.seconds, &progress).await?;
        workers = back;
        results.push(stats);
    }
    progress.finish_and_clear();
    for worker in workers {
        worker.client.close().await;
    }
    Ok(results)
}

pub(crate) fn print_report(scenario: &str, results: &[PhaseStats], as_json: bool) {
    if as_json {
        let report = json!({
            "scenario": scenario,
            "results": results.iter().map(PhaseStats::to_json).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("serializable")
        );
        return;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "hub", "tool", "clients", "calls", "calls/s", "p50 ms", "p99 ms", "errors",
    ]);
    for stats in results {
        table.add_row(vec![
            stats.hub.clone(),
            stats.tool.to_string(),
            stats.clients.to_string(),
            stats.calls.to_string(),
            format!("{:.0}", stats.calls_per_sec()),
            format!("{:.2}", stats.p50_ms),
            format!("{:.2}", stats.p99_ms),
            stats.errors.to_string(),
        ]);
    }
    println!("{table}");
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.scenario {
        Scenario::Wake(wake) => super::bench_wake::run(wake).await,
        Scenario::Claims(claims) => {
            let common = &claims.common;
            anyhow::ensure!(common.clients >= 1, "--clients must be at least 1");
            let mut results = Vec::new();
            for &pending in &claims.pending {
                match &common.endpoint {
                    Some(endpoint) => {
                        let label = format!("external, {pending} pending");
                        results.push(bench_claims(endpoint, &label, common, pending).await?);
                    }
                    None => {
                        for sync in &common.sync {
                            let hub = start_temp_hub(*sync).await?;
                            let label = format!("sync={}, {pending} pending", sync.as_str());
                            let outcome =
                                bench_claims(&hub.handle.mcp_url(), &label, common, pending).await;
                            hub.handle.shutdown().await;
                            results.push(outcome?);
                        }
                    }
                }
            }
            print_report("claims", &results, common.json);
            Ok(())
        }
        Scenario::Messages(common) => {
            anyhow::ensure!(common.clients >= 1, "--clients must be at least 1");
            anyhow::ensure!(common.seconds >= 1, "--seconds must be at least 1");
            let mut results = Vec::new();
            match &common.endpoint {
                Some(endpoint) => {
                    results.extend(bench_messages(endpoint, "external", &common).await?);
                }
                None => {
                    for sync in &common.sync {
                        let hub = start_temp_hub(*sync).await?;
                        let label = format!("sync={}", sync.as_str());
                        let outcome = bench_messages(&hub.handle.mcp_url(), &label, &common).await;
                        hub.handle.shutdown().await;
                        results.extend(outcome?);
                    }
                }
            }
            print_report("messages", &results, common.json);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks() {
        let samples: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile(&samples, 0.5), 51.0);
        assert_eq!(percentile(&samples, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
