//! `hubctl smart-swarm-round` (spec http-config-cli §10.2): real `claude` / `codex` workers,
//! each started through `hub-launch` exactly as users start agents, each claiming its own task
//! and completing it through the done gate; then one snapshot as the orchestrator, counted
//! and sized, in `<OUT_DIR>/smart-swarm-<EXP>.json`.
//!
//! A worker is `hub-launch --role assistant --backend B --agent-id sw-<EXP>-<i> --lifecycle
//! ephemeral --onboarding none [--namespace NS] --note <its task>` (the launcher registers it
//! and hands the CLI its token); a Claude worker that fails is re-run on Codex under a new id
//! the orchestrator reassigns the task to (the failed id may be registered already, and
//! re-registering needs its token). `<OUT_DIR>/mcp-workers.json` (FORCE_WORKER_ENDPOINT_CONFIG)
//! is what the Claude preflight lists; the workers themselves get hub-launch's own config,
//! which carries their token.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use super::bench_runner::progress_bar;
use super::round::{
    HttpArgs, RoundAgent, RoundSession, TokenPolicy, cell, generated_at, parse_switch, publish,
    repo_profile, round_to, table, unix_seconds, wait_for_health,
};
use super::swarm_backends::{
    Backend, BackendHealth, BackendMode, backend_bin_dir, effective_mode, find_launcher, path_with,
    preflight_claude, preflight_codex, resolve_program,
};
use super::swarm_snapshot::{
    Snapshot, SnapshotCounts, Support, count_snapshot, support, take_snapshot,
};
use super::swarm_workers::{Launch, WorkerRun, fallback_reason, run_worker, write_result};

#[derive(Debug, Args)]
pub struct SwarmArgs {
    /// The hub's MCP endpoint.
    #[arg(long, env = "ENDPOINT", default_value = "http://localhost:3000/mcp")]
    endpoint: String,
    /// Workers (agent CLIs) to start in parallel.
    #[arg(long, env = "WORKERS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    workers: u32,
    /// claude, codex or mixed (odd workers Claude, even Codex).
    #[arg(long, env = "WORKER_BACKEND", value_enum, default_value = "mixed")]
    worker_backend: BackendMode,
    /// Switch to the other backend when one fails preflight or a Claude worker fails (0/1).
    #[arg(long, env = "ALLOW_BACKEND_FALLBACK", default_value = "1", value_parser = parse_switch)]
    allow_backend_fallback: bool,
    /// Directory of prompts, logs, results and the report.
    #[arg(long, env = "OUT_DIR", default_value = "/tmp/smart-swarm")]
    out_dir: PathBuf,
    /// Seconds a worker may run before it is killed (exit code 124); 0 = no limit.
    #[arg(long, env = "WORKER_TIMEOUT_SEC", default_value_t = 900)]
    worker_timeout_sec: u64,
    /// auto (when the hub supports namespaces), true (required) or false.
    #[arg(long, env = "ENABLE_NAMESPACE", value_enum, default_value = "auto")]
    enable_namespace: Tristate,
    /// Namespace and experiment tag (default SWARM-<unix>).
    #[arg(long, env = "NAMESPACE")]
    namespace: Option<String>,
    #[arg(long, env = "USE_AUTH_TOKEN", value_enum, default_value = "auto")]
    use_auth_token: TokenPolicy,
    /// auto (nano when supported), tiny or nano.
    #[arg(
        long,
        env = "SNAPSHOT_RESPONSE_MODE",
        value_enum,
        default_value = "auto"
    )]
    snapshot_response_mode: SnapshotMode,
    #[arg(long, env = "CLAUDE_BIN", default_value = "claude")]
    claude_bin: String,
    #[arg(long, env = "CODEX_BIN", default_value = "codex")]
    codex_bin: String,
    /// Skip the backends' `mcp list` / auth preflight.
    #[arg(long, env = "SKIP_CLI_PREFLIGHT", default_value = "0", value_parser = parse_switch)]
    skip_cli_preflight: bool,
    /// Preflight Claude against <OUT_DIR>/mcp-workers.json pointing at ENDPOINT (0/1).
    #[arg(long, env = "FORCE_WORKER_ENDPOINT_CONFIG", default_value = "1", value_parser = parse_switch)]
    force_worker_endpoint_config: bool,
    /// Claude MCP config checked by preflight when not forced (default <root>/.mcp.json).
    #[arg(long, env = "MCP_CONFIG_FILE")]
    mcp_config_file: Option<PathBuf>,
    /// The hub-launch binary (default: beside hubctl, else on PATH).
    #[arg(long, env = "HUB_LAUNCH_BIN")]
    launcher: Option<PathBuf>,
    #[command(flatten)]
    http: HttpArgs,
    /// Print the report JSON instead of the summary tables.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Tristate {
    Auto,
    True,
    False,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SnapshotMode {
    Auto,
    Tiny,
    Nano,
}

/// Preflight both backends (or none), then the mode that runs.
async fn check_backends(
    args: &SwarmArgs,
    claude: Option<&Path>,
    codex: Option<&Path>,
) -> anyhow::Result<BackendHealth> {
    if args.skip_cli_preflight {
        return Ok(BackendHealth::default());
    }
    let config = if args.force_worker_endpoint_config {
        let path = args.out_dir.join("mcp-workers.json");
        let config = json!({"mcpServers": {"agent-hub": {"type": "http", "url": args.endpoint}}});
        std::fs::write(&path, format!("{config}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
        path
    } else {
        args.mcp_config_file
            .clone()
            .unwrap_or_else(|| crate::instance::install_root().join(".mcp.json"))
    };
    let progress = progress_bar(2, " backends");
    progress.set_message("preflight");
    let claude_unavailable = preflight_claude(claude, &config).await;
    progress.inc(1);
    let codex_unavailable = preflight_codex(codex, &args.endpoint).await;
    progress.finish_and_clear();
    Ok(BackendHealth {
        preflight_executed: true,
        claude_unavailable,
        codex_unavailable,
    })
}

pub async fn run(args: SwarmArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let launcher = find_launcher(args.launcher.as_deref())?;
    let claude = resolve_program(&args.claude_bin);
    let codex = resolve_program(&args.codex_bin);
    let health = check_backends(&args, claude.as_deref(), codex.as_deref()).await?;
    let mode = match effective_mode(args.worker_backend, &health, args.allow_backend_fallback) {
        Ok(mode) => mode,
        Err(why) => {
            eprintln!("smart-swarm-round: {why}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if mode != args.worker_backend {
        eprintln!(
            "warning: WORKER_BACKEND {} degraded to {} after preflight",
            args.worker_backend.as_str(),
            mode.as_str()
        );
    }
    let health_json = wait_for_health(&args.endpoint, 30).await?;
    let experiment = args
        .namespace
        .clone()
        .unwrap_or_else(|| format!("SWARM-{}", unix_seconds()));
    let options = args.http.client_options("smart-swarm-runner");
    let mut session = RoundSession::connect(&args.endpoint, options, args.use_auth_token).await?;
    let bin_dir = backend_bin_dir(&args.out_dir, claude.as_deref(), codex.as_deref())?;
    let outcome = drive(
        &mut session,
        &args,
        Round {
            experiment: &experiment,
            mode,
            health: &health,
            launcher,
            path: path_with(&bin_dir),
            server_auth_mode: health_json["auth_mode"]
                .as_str()
                .unwrap_or("unknown")
                .to_string(),
        },
    )
    .await;
    session.close().await;
    let report = outcome?;
    let path = args.out_dir.join(format!("smart-swarm-{experiment}.json"));
    let mut summary = table(vec!["section", "field", "value"]);
    for section in [
        "auth",
        "snapshots",
        "backend_health",
        "backend_runtime_health",
        "kpi",
        "workers_result",
        "namespace",
    ] {
        if let Some(fields) = report[section].as_object() {
            for (key, value) in fields {
                summary.add_row(vec![section.to_string(), key.clone(), cell(value)]);
            }
        }
    }
    if !args.json {
        println!("Smart swarm round finished: experiment {experiment}");
    }
    publish(&path, "smart swarm report", &report, summary, args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// The decided facts a round runs with.
struct Round<'a> {
    experiment: &'a str,
    mode: BackendMode,
    health: &'a BackendHealth,
    launcher: PathBuf,
    path: std::ffi::OsString,
    server_auth_mode: String,
}

async fn drive(
    session: &mut RoundSession,
    args: &SwarmArgs,
    round: Round<'_>,
) -> anyhow::Result<Value> {
    let exp = round.experiment;
    let support = support(&session.list_tools().await?);
    let snapshot_mode = match args.snapshot_response_mode {
        SnapshotMode::Auto | SnapshotMode::Nano if support.nano => "nano",
        SnapshotMode::Nano => {
            eprintln!("warning: the hub has no nano mode; snapshots use tiny");
            "tiny"
        }
        _ => "tiny",
    };
    let use_namespace = match args.enable_namespace {
        Tristate::True if !support.namespace => {
            anyhow::bail!("ENABLE_NAMESPACE=true but the hub's tools take no namespace")
        }
        Tristate::True => true,
        Tristate::Auto => support.namespace,
        Tristate::False => false,
    };
    let namespace = use_namespace.then(|| exp.to_string());
    let (orch, _) = session
        .register(json!({
            "id": format!("orch-{exp}"), "name": "Smart Swarm Orchestrator", "type": "codex",
            "capabilities": "orchestration,experiment", "onboarding_mode": "none",
            "lifecycle": "persistent", "runtime_profile": repo_profile(),
        }))
        .await?;
    let launch = Arc::new(Launch {
        launcher: round.launcher.clone(),
        endpoint: args.endpoint.clone(),
        namespace: namespace.clone(),
        experiment: exp.to_string(),
        orchestrator: orch.id.clone(),
        path: round.path.clone(),
        out_dir: args.out_dir.clone(),
        timeout: (args.worker_timeout_sec > 0)
            .then(|| Duration::from_secs(args.worker_timeout_sec)),
    });

    let workers = args.workers as usize;
    let mut plan = Vec::with_capacity(workers);
    for i in 1..=workers {
        let backend = round.mode.backend_of(i);
        let worker = format!("sw-{exp}-{i}");
        let mut task = json!({
            "title": format!("[{exp}] worker-{i} protocol optimization"),
            "description": format!("experiment={exp} backend={} objective=propose three \
                                    protocol optimizations (token economy, latency, accuracy)",
                                   backend.as_str()),
            "created_by": orch.id, "assigned_to": worker, "priority": "high",
        });
        if let Some(ns) = &namespace {
            task["namespace"] = json!(ns);
        }
        let created = session.call_ok("create_task", task, Some(&orch)).await?;
        plan.push((worker, backend, created["task"]["id"].as_i64().unwrap_or(0)));
    }

    let started = Instant::now();
    let progress = progress_bar(workers as u64, " workers");
    progress.set_message(format!("running ({})", round.mode.as_str()));
    let mut handles = Vec::with_capacity(workers);
    for (worker, backend, task_id) in plan {
        let launch = launch.clone();
        let progress = progress.clone();
        handles.push(tokio::spawn(async move {
            let run = run_worker(&launch, &worker, backend, task_id).await;
            progress.inc(1);
            run
        }));
    }
    let mut runs = Vec::with_capacity(workers);
    for handle in handles {
        runs.push(handle.await??);
    }
    progress.finish_and_clear();

    // Failed Claude workers again on Codex, under a new id the task is reassigned to.
    let codex_ok = round.health.available(Backend::Codex);
    for run in &mut runs {
        let Some(reason) = fallback_reason(run) else {
            continue;
        };
        if !(args.allow_backend_fallback && codex_ok) {
            continue;
        }
        let fallback_id = format!("{}-codex", run.worker_id);
        session
            .call_ok(
                "update_task",
                json!({"id": run.task_id, "agent_id": orch.id, "assigned_to": fallback_id}),
                Some(&orch),
            )
            .await?;
        let mut rerun = run_worker(&launch, &fallback_id, Backend::Codex, run.task_id).await?;
        rerun.requested_backend = Backend::Claude;
        rerun.fallback_reason = Some(reason);
        *run = rerun;
    }
    for run in &runs {
        write_result(&args.out_dir, run)?;
    }

    let snapshot =
        take_snapshot(session, &orch, snapshot_mode, support, namespace.as_deref()).await?;
    let duration_ms = started.elapsed().as_millis() as u64;
    let counts = count_snapshot(
        &snapshot.tasks,
        &snapshot.messages,
        &snapshot.contexts,
        &format!("[{exp}]"),
        &format!("sw-{exp}-"),
    );
    let observed = Observed {
        orchestrator: &orch,
        support,
        snapshot_mode,
        namespace,
        snapshot,
        counts,
        duration_ms,
        runs,
    };
    Ok(report(args, &round, &observed))
}

/// What the round saw, for the report.
struct Observed<'a> {
    orchestrator: &'a RoundAgent,
    support: Support,
    snapshot_mode: &'a str,
    namespace: Option<String>,
    snapshot: Snapshot,
    counts: SnapshotCounts,
    duration_ms: u64,
    runs: Vec<WorkerRun>,
}

fn report(args: &SwarmArgs, round: &Round<'_>, seen: &Observed<'_>) -> Value {
    let (snapshot, counts, runs) = (&seen.snapshot, seen.counts, &seen.runs);
    let total_bytes: usize = snapshot.bytes.iter().sum();
    let requested = |b: Backend| runs.iter().filter(|r| r.requested_backend == b).count();
    let ran = |b: Backend| runs.iter().filter(|r| r.backend == b).count();
    let ok_on = |b: Backend| runs.iter().filter(|r| r.backend == b && r.ok()).count();
    let fell_back = |b: Backend| {
        runs.iter()
            .filter(|r| r.requested_backend == b && r.fallback_reason.is_some())
            .count()
    };
    let ok = runs.iter().filter(|r| r.ok()).count();
    let workers = runs.len().max(1) as f64;
    json!({
        "generated_at": generated_at(),
        "experiment": round.experiment,
        "endpoint": args.endpoint,
        "orchestrator": seen.orchestrator.id,
        "backend_mode": round.mode.as_str(),
        "backend_mode_requested": args.worker_backend.as_str(),
        "backend_mode_effective": round.mode.as_str(),
        "workers": runs.len(),
        "snapshots": {
            "mode_requested": format!("{:?}", args.snapshot_response_mode).to_lowercase(),
            "mode_effective": seen.snapshot_mode,
            "nano_supported": seen.support.nano,
            "batch_supported": seen.support.batch,
            "batch_used": snapshot.batch_used,
            "list_tasks_bytes": snapshot.bytes[0],
            "read_messages_bytes": snapshot.bytes[1],
            "get_context_bytes": snapshot.bytes[2],
            "total_bytes": total_bytes,
            "total_tokens_est": total_bytes / 4,
        },
        "backend_health": round.health.to_json(),
        "backend_runtime_health": {
            "claude_requested_workers": requested(Backend::Claude),
            "codex_requested_workers": requested(Backend::Codex),
            "claude_fallback_used": fell_back(Backend::Claude),
            "codex_fallback_used": fell_back(Backend::Codex),
        },
        "namespace": {"supported": seen.support.namespace, "used": seen.namespace.is_some(),
                      "value": seen.namespace},
        "auth": {
            "token_mode": args.use_auth_token.as_str(),
            "server_auth_mode": round.server_auth_mode,
            "orchestrator_token_present": seen.orchestrator.token.is_some(),
        },
        "kpi": {
            "duration_ms": seen.duration_ms,
            "done_count": counts.done,
            "in_progress_count": counts.in_progress,
            "pending_count": counts.pending,
            "done_rate_pct": round_to(counts.done as f64 * 100.0 / workers, 2),
            "inbox_messages": counts.inbox_messages,
            "inbox_chars": counts.inbox_chars,
            "context_entries": counts.context_entries,
            "context_chars": counts.context_chars,
            "token_est_transport": (counts.inbox_chars + counts.context_chars) / 4,
        },
        "workers_result": {
            "total": runs.len(),
            "ok": ok,
            "failed": runs.len() - ok,
            "requested_claude_workers": requested(Backend::Claude),
            "requested_codex_workers": requested(Backend::Codex),
            "claude_workers": ran(Backend::Claude),
            "codex_workers": ran(Backend::Codex),
            "fallback_used": runs.iter().filter(|r| r.fallback_reason.is_some()).count(),
            "claude_ok": ok_on(Backend::Claude),
            "codex_ok": ok_on(Backend::Codex),
        },
        "worker_runs": runs.iter().map(WorkerRun::to_json).collect::<Vec<_>>(),
    })
}
