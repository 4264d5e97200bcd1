//! Workers of `smart-swarm-round`: each one's prompt note, its run through hub-launch (log,
//! per-worker timeout, result file) and whether a failed Claude run falls back to Codex.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use super::swarm_backends::Backend;

/// One worker's run, as `<worker>.result.json` and `worker_runs[]` record it.
#[derive(Debug, Clone)]
pub(crate) struct WorkerRun {
    pub(crate) worker_id: String,
    pub(crate) requested_backend: Backend,
    pub(crate) backend: Backend,
    pub(crate) task_id: i64,
    pub(crate) exit_code: i32,
    pub(crate) log_bytes: u64,
    pub(crate) duration_ms: u64,
    pub(crate) log_file: PathBuf,
    pub(crate) fallback_reason: Option<String>,
}

impl WorkerRun {
    pub(crate) fn ok(&self) -> bool {
        self.exit_code == 0 && self.log_bytes > 0
    }

    pub(crate) fn to_json(&self) -> Value {
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
pub(crate) struct Launch {
    pub(crate) launcher: PathBuf,
    pub(crate) endpoint: String,
    pub(crate) namespace: Option<String>,
    pub(crate) experiment: String,
    pub(crate) orchestrator: String,
    pub(crate) path: std::ffi::OsString,
    pub(crate) out_dir: PathBuf,
    pub(crate) timeout: Option<Duration>,
}

/// The tool profile smart-swarm workers connect with: it must cover every tool
/// [`worker_note`] names (tested).
pub(crate) const WORKER_TOOLS: hub_server::tools::surface::Profile =
    hub_server::tools::surface::Profile::Orchestrator;

/// The worker's task as its prompt note: the spec's worker steps, plus one machine-readable
/// line naming its ids.
pub(crate) fn worker_note(launch: &Launch, worker: &str, backend: Backend, task_id: i64) -> String {
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
pub(crate) async fn run_worker(
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
        .args(["--onboarding", "none", "--note", &note])
        // The note asks for claim_task and send_blob_message, beyond the worker profile.
        .args(["--tools", WORKER_TOOLS.as_str()]);
    if let Some(namespace) = &launch.namespace {
        command.args(["--namespace", namespace]);
    }
    // hub-launch reads HUB_* settings and AGENT_HUB_TOKEN (relaunch an existing id) from its
    // environment: the round's own flags must be the only settings a worker gets.
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("HUB_") || key_text == "AGENT_HUB_TOKEN" {
            command.env_remove(&key);
        }
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

pub(crate) fn write_result(out_dir: &Path, run: &WorkerRun) -> anyhow::Result<()> {
    let path = out_dir.join(format!("{}.result.json", run.worker_id));
    std::fs::write(&path, format!("{}\n", run.to_json()))
        .with_context(|| format!("writing {}", path.display()))
}

/// Why a failed Claude run falls back (None: it did not fail).
pub(crate) fn fallback_reason(run: &WorkerRun) -> Option<String> {
    if run.requested_backend != Backend::Claude || run.ok() {
        return None;
    }
    Some(if run.exit_code != 0 {
        format!("claude_exit_{}", run.exit_code)
    } else {
        "claude_empty_output".into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A note that tells a worker to call a tool its connection hides is a bug.
    #[test]
    fn the_worker_profile_covers_every_tool_the_note_names() {
        let launch = Launch {
            launcher: PathBuf::new(),
            endpoint: "http://h:1/mcp".into(),
            namespace: Some("ns".into()),
            experiment: "E".into(),
            orchestrator: "orch".into(),
            path: Default::default(),
            out_dir: PathBuf::new(),
            timeout: None,
        };
        let note = worker_note(&launch, "w1", Backend::Codex, 7);
        let words: Vec<&str> = note
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .collect();
        let named: Vec<&str> = hub_server::tools::registry()
            .tools
            .iter()
            .map(|def| def.name)
            .filter(|name| words.contains(name))
            .collect();
        assert!(
            named.contains(&"claim_task"),
            "the scan finds the tools: {named:?}"
        );
        for tool in named {
            assert!(
                WORKER_TOOLS.allows(tool),
                "{tool} is outside {}",
                WORKER_TOOLS.as_str()
            );
        }
    }
}
