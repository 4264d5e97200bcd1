//! `hubctl smart-swarm-round` (spec http-config-cli §10.2): real `claude` / `codex` workers,
//! each started through `hub-launch` exactly as users start agents, each claiming its own task
//! and completing it through the done gate; then one snapshot as the orchestrator, counted
//! and sized, in `<OUT_DIR>/smart-swarm-<EXP>.json`.
//!
//! A worker is `hub-launch --role assistant --backend B --agent-id sw-<EXP>-<i> --lifecycle
//! ephemeral --onboarding none [--namespace NS] --note <its task>` (the launcher registers it
//! and hands the CLI its token); a Claude worker that fails is re-run on Codex under a new id
//! the orchestrator reassigns the task to (the failed id may be registered already, and
//! re-registering needs its token).

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
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

/// What `tools/list` says the hub supports.
#[derive(Debug, Clone, Copy, Default)]
struct Support {
    namespace: bool,
    nano: bool,
    batch: bool,
}

fn support(tools: &[Value]) -> Support {
    let tool = |name: &str| tools.iter().find(|t| t["name"] == name);
    let has_property = |name: &str, property: &str| {
        tool(name).is_some_and(|t| t["inputSchema"]["properties"].get(property).is_some())
    };
    // The response_mode enum may sit in the schema's $defs: look through the whole schema.
    let nano_mode =
        |name: &str| tool(name).is_some_and(|t| t["inputSchema"].to_string().contains("\"nano\""));
    Support {
        namespace: has_property("create_task", "namespace")
            && has_property("poll_and_claim", "namespace"),
        nano: ["list_tasks", "read_messages", "get_context"]
            .iter()
            .all(|t| nano_mode(t)),
        batch: tool("read_snapshot").is_some(),
    }
}

/// One worker's run, as `<worker>.result.json` and `worker_runs[]` record it.
#[derive(Debug, Clone)]
struct WorkerRun {
    worker_id: String,
    requested_backend: Backend,
    backend: Backend,
    task_id: i64,
    exit_code: i32,
    log_bytes: u64,
    duration_ms: u64,
    log_file: PathBuf,
    fallback_reason: Option<String>,
}

impl WorkerRun {
    fn ok(&self) -> bool {
        self.exit_code == 0 && self.log_bytes > 0
    }

    fn to_json(&self) -> Value {
        json!({
            "worker_id": self.worker_id,
            "requested_backend": self.requested_backend.as_str(),
            "backend": self.backend.as_str(),
            "task_id": self.task_id,
            "exit_code": self.exit_code,
            "ok": self.ok(),
            "fallback_used": self.fallback_reason.is_some(),
            "fallback_reason": self.fallback_reason,
            "log_bytes": self.log_bytes,
            "duration_ms": self.duration_ms,
            "log_file": self.log_file,
        })
    }
}

/// What every worker launch shares.
struct Launch {
    launcher: PathBuf,
    endpoint: String,
    namespace: Option<String>,
    experiment: String,
    orchestrator: String,
    path: std::ffi::OsString,
    out_dir: PathBuf,
    timeout: Option<Duration>,
}

/// The worker's task as its prompt note: the spec's worker steps, plus one machine-readable
/// line naming its ids.
fn worker_note(launch: &Launch, worker: &str, backend: Backend, task_id: i64) -> String {
    let namespace = launch.namespace.as_deref();
    let record = json!({"experiment": launch.experiment, "agent_id": worker, "task_id": task_id,
                        "orchestrator": launch.orchestrator, "namespace": namespace});
    format!(
        "Smart-swarm worker {worker} ({backend}) of experiment {exp}. Use only the agent-hub MCP \
         server: no repository edits, no shell. Steps: (1) you are registered as {worker} \
         (register_agent with onboarding_mode none and lifecycle ephemeral if you are not); \
         (2) keep auth.token and send it on every call; (3) claim_task {task_id} with \
         lease_seconds 600{ns}; (4) write a compact JSON proposal with exactly three hypotheses \
         (token_economy, latency, accuracy), each with idea, expected_kpi and validation, at \
         most 1200 chars; (5) share_context key \"proposal\" with it{ns}; (6) send_blob_message \
         of the same payload to {orch}; (7) release_task_claim next_status done with confidence \
         >= 0.90, verification_passed true and evidence_refs naming the context and message \
         ids. Put an idempotency_key on every mutating call and retry a failed call once with \
         the same key. Finish with a one-line answer.\nSWARM_TASK {record}",
        exp = launch.experiment,
        backend = backend.as_str(),
        orch = launch.orchestrator,
        ns = namespace
            .map(|ns| format!(" and namespace \"{ns}\""))
            .unwrap_or_default(),
    )
}

/// Runs one worker through hub-launch with its log, the per-worker timeout and its result file.
async fn run_worker(
    launch: &Launch,
    worker: &str,
    backend: Backend,
    task_id: i64,
) -> anyhow::Result<WorkerRun> {
    let note = worker_note(launch, worker, backend, task_id);
    let prompt_file = launch.out_dir.join(format!("{worker}.prompt.txt"));
    std::fs::write(&prompt_file, &note)?;
    let log_file = launch.out_dir.join(format!("{worker}.log"));
    let log = std::fs::File::create(&log_file)
        .with_context(|| format!("creating {}", log_file.display()))?;
    let mut command = tokio::process::Command::new(&launch.launcher);
    command
        .args(["--role", "assistant", "--backend", backend.as_str()])
        .args(["--endpoint", &launch.endpoint, "--agent-id", worker])
        .args(["--agent-name", worker, "--lifecycle", "ephemeral"])
        .args(["--onboarding", "none", "--note", &note]);
    if let Some(namespace) = &launch.namespace {
        command.args(["--namespace", namespace]);
    }
    command
        .env("PATH", &launch.path)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group, so a timeout stops the agent CLI the launcher started too.
        .process_group(0)
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", launch.launcher.display()))?;
    let status = match launch.timeout {
        Some(limit) => match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => Some(status?),
            Err(_) => {
                if let Some(pid) = child.id() {
                    crate::process::signal_group(pid, "KILL");
                }
                let _ = child.kill().await;
                None
            }
        },
        None => Some(child.wait().await?),
    };
    // 124 is what timeout(1) reports for a worker it had to stop.
    let exit_code = status.map_or(124, |s| s.code().unwrap_or(128));
    let run = WorkerRun {
        worker_id: worker.to_string(),
        requested_backend: backend,
        backend,
        task_id,
        exit_code,
        log_bytes: std::fs::metadata(&log_file).map(|m| m.len()).unwrap_or(0),
        duration_ms: started.elapsed().as_millis() as u64,
        log_file,
        fallback_reason: None,
    };
    Ok(run)
}

fn write_result(out_dir: &Path, run: &WorkerRun) -> anyhow::Result<()> {
    let path = out_dir.join(format!("{}.result.json", run.worker_id));
    std::fs::write(&path, format!("{}\n", run.to_json()))
        .with_context(|| format!("writing {}", path.display()))
}

/// Why a failed Claude run falls back (None: it did not fail).
fn fallback_reason(run: &WorkerRun) -> Option<String> {
    if run.requested_backend != Backend::Claude || run.ok() {
        return None;
    }
    Some(if run.exit_code != 0 {
        format!("claude_exit_{}", run.exit_code)
    } else {
        "claude_empty_output".into()
    })
}

/// Counts of the orchestrator's snapshot.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct SnapshotCounts {
    done: u64,
    in_progress: u64,
    pending: u64,
    inbox_messages: u64,
    inbox_chars: u64,
    context_entries: u64,
    context_chars: u64,
}

/// The first of `keys` that `row` has as a string / number: the same field is `title` in
/// compact rows, `title_preview` in tiny ones and `t` in nano ones.
fn text_of<'a>(row: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|key| row[*key].as_str())
}

fn number_of(row: &Value, keys: &[&str]) -> u64 {
    keys.iter().find_map(|key| row[*key].as_u64()).unwrap_or(0)
}

/// Counts tasks by title prefix and status, and inbox/context rows of workers with their
/// chars, whatever the response mode (nano keys: tasks t/s, messages f/c, context a/c).
fn count_snapshot(
    tasks: &[Value],
    messages: &[Value],
    contexts: &[Value],
    title_prefix: &str,
    worker_prefix: &str,
) -> SnapshotCounts {
    let mut counts = SnapshotCounts::default();
    for task in tasks {
        if !text_of(task, &["title", "title_preview", "t"])
            .is_some_and(|t| t.starts_with(title_prefix))
        {
            continue;
        }
        match text_of(task, &["status", "s"]) {
            Some("done") => counts.done += 1,
            Some("in_progress") => counts.in_progress += 1,
            Some("pending") => counts.pending += 1,
            _ => {}
        }
    }
    let by_worker = |row: &Value, keys: &[&str]| {
        text_of(row, keys).is_some_and(|o| o.starts_with(worker_prefix))
    };
    for message in messages
        .iter()
        .filter(|m| by_worker(m, &["from_agent", "f"]))
    {
        counts.inbox_messages += 1;
        counts.inbox_chars += number_of(message, &["content_chars", "c"]);
    }
    for context in contexts.iter().filter(|c| by_worker(c, &["agent_id", "a"])) {
        counts.context_entries += 1;
        counts.context_chars += number_of(context, &["value_chars", "c"]);
    }
    counts
}

fn rows<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// Bytes of each section (tasks, messages, context) and the rows to count.
struct Snapshot {
    batch_used: bool,
    bytes: [usize; 3],
    tasks: Vec<Value>,
    messages: Vec<Value>,
    contexts: Vec<Value>,
}

async fn take_snapshot(
    session: &mut RoundSession,
    orch: &RoundAgent,
    mode: &str,
    support: Support,
    namespace: Option<&str>,
) -> anyhow::Result<Snapshot> {
    if support.batch {
        let mut args = json!({"agent_id": orch.id, "response_mode": mode,
                              "message_limit": 200, "task_limit": 500, "context_limit": 500});
        if let Some(ns) = namespace {
            args["task_namespace"] = json!(ns);
            args["context_namespace"] = json!(ns);
        }
        let snap = session.call_ok("read_snapshot", args, Some(orch)).await?;
        let (messages, tasks, contexts) = if mode == "nano" {
            let s = &snap["s"];
            (s["m"].clone(), s["t"].clone(), s["c"].clone())
        } else {
            let s = &snap["snapshot"];
            (
                s["messages"].clone(),
                s["tasks"].clone(),
                s["context"].clone(),
            )
        };
        let size = |v: &Value| v.to_string().len();
        let (task_rows, message_rows, context_rows) = if mode == "nano" {
            (tasks.clone(), messages.clone(), contexts.clone())
        } else {
            (
                tasks["tasks"].clone(),
                messages["messages"].clone(),
                contexts["contexts"].clone(),
            )
        };
        return Ok(Snapshot {
            batch_used: true,
            bytes: [size(&tasks), size(&messages), size(&contexts)],
            tasks: task_rows.as_array().cloned().unwrap_or_default(),
            messages: message_rows.as_array().cloned().unwrap_or_default(),
            contexts: context_rows.as_array().cloned().unwrap_or_default(),
        });
    }
    let mut bytes = [0; 3];
    let mut task_args = json!({"agent_id": orch.id, "limit": 500, "polling": true,
                               "response_mode": mode});
    let mut context_args = json!({"requesting_agent": orch.id, "limit": 500, "polling": true,
                                  "response_mode": mode});
    if let Some(ns) = namespace {
        task_args["namespace"] = json!(ns);
        context_args["namespace"] = json!(ns);
    }
    let message_args = json!({"agent_id": orch.id, "limit": 500, "polling": true,
                              "response_mode": mode});
    let nano = mode == "nano";
    let mut sections = Vec::new();
    for (index, (tool, args, long, short)) in [
        ("list_tasks", task_args, "tasks", "t"),
        ("read_messages", message_args, "messages", "m"),
        ("get_context", context_args, "contexts", "c"),
    ]
    .into_iter()
    .enumerate()
    {
        let measured = session.call(tool, args, Some(orch)).await?;
        anyhow::ensure!(
            measured.reply.succeeded(),
            "{tool} failed: {}",
            measured.reply.json
        );
        bytes[index] = measured.reply.response_bytes;
        sections.push(rows(&measured.reply.json, if nano { short } else { long }).to_vec());
    }
    let contexts = sections.pop().unwrap_or_default();
    let messages = sections.pop().unwrap_or_default();
    let tasks = sections.pop().unwrap_or_default();
    Ok(Snapshot {
        batch_used: false,
        bytes,
        tasks,
        messages,
        contexts,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_counts_in_nano_and_long_keys() {
        let tasks = vec![
            json!({"t": "[X] worker-1", "s": "done"}),
            json!({"t": "[X] worker-2", "s": "in_progress"}),
            json!({"t": "[Y] other", "s": "done"}),
        ];
        let messages = vec![
            json!({"f": "sw-X-1", "c": 40}),
            json!({"f": "orch", "c": 9}),
        ];
        let contexts = vec![json!({"a": "sw-X-2-codex", "c": 30})];
        let nano = count_snapshot(&tasks, &messages, &contexts, "[X]", "sw-X-");
        assert_eq!(
            nano,
            SnapshotCounts {
                done: 1,
                in_progress: 1,
                pending: 0,
                inbox_messages: 1,
                inbox_chars: 40,
                context_entries: 1,
                context_chars: 30
            }
        );
        let long = count_snapshot(
            &[json!({"title_preview": "[X] w", "status": "pending"})],
            &[json!({"from_agent": "sw-X-1", "content_chars": 5})],
            &[],
            "[X]",
            "sw-X-",
        );
        assert_eq!((long.pending, long.inbox_chars), (1, 5));
    }

    #[test]
    fn only_failed_claude_runs_fall_back() {
        let run = |backend, exit_code, log_bytes| WorkerRun {
            worker_id: "w".into(),
            requested_backend: backend,
            backend,
            task_id: 1,
            exit_code,
            log_bytes,
            duration_ms: 0,
            log_file: PathBuf::new(),
            fallback_reason: None,
        };
        assert_eq!(
            fallback_reason(&run(Backend::Claude, 3, 10)).as_deref(),
            Some("claude_exit_3")
        );
        assert_eq!(
            fallback_reason(&run(Backend::Claude, 0, 0)).as_deref(),
            Some("claude_empty_output")
        );
        assert_eq!(fallback_reason(&run(Backend::Claude, 0, 10)), None);
        assert_eq!(fallback_reason(&run(Backend::Codex, 1, 0)), None);
    }
}
