//! smart-swarm-round end to end: a real hub under enforce, workers started through a
//! launcher, fake `claude` / `codex` executables (Python, standard library) that answer the
//! preflight and act as real MCP workers. Claude is made to fail so every Claude worker falls
//! back to Codex; the report's counts must match what the fakes did.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Running, free_port, hubctl_command, start_configured, text};
use serde_json::Value;

const FAKE_AGENT: &str = include_str!("fixtures/fake_agent.py");
const FAKE_LAUNCHER: &str = include_str!("fixtures/fake_hub_launch.py");

fn install(dir: &Path, name: &str, script: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Fake `claude` and `codex` in `dir` (not on PATH: the round is given them as
/// CLAUDE_BIN / CODEX_BIN).
fn fake_backends(dir: &Path) -> (PathBuf, PathBuf) {
    (
        install(dir, "claude", FAKE_AGENT),
        install(dir, "codex", FAKE_AGENT),
    )
}

fn start_enforced(data: &Path, port: u16) -> Running<'_> {
    let env = [
        ("MCP_HUB_AUTH_MODE", "enforce"),
        ("MCP_HUB_RATE_LIMIT_RPS", "0"),
    ];
    start_configured(data, port, &env)
}

struct Swarm {
    data: tempfile::TempDir,
    fakes: tempfile::TempDir,
    out: tempfile::TempDir,
    port: u16,
}

impl Swarm {
    fn new() -> Swarm {
        Swarm {
            data: tempfile::tempdir().unwrap(),
            fakes: tempfile::tempdir().unwrap(),
            out: tempfile::tempdir().unwrap(),
            port: free_port(),
        }
    }

    /// Runs the round with `launcher`; env adds behaviour switches of the fakes.
    fn run(&self, launcher: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let (claude, codex) = fake_backends(self.fakes.path());
        let endpoint = format!("http://127.0.0.1:{}/mcp", self.port);
        let mut all = vec![
            "smart-swarm-round",
            "--launcher",
            launcher.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        let mut command = hubctl_command(self.data.path(), self.port, &all);
        command
            .env("ENDPOINT", &endpoint)
            .env("OUT_DIR", self.out.path())
            .env("CLAUDE_BIN", &claude)
            .env("CODEX_BIN", &codex)
            .env("WORKER_TIMEOUT_SEC", "120");
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().unwrap()
    }

    fn report(&self, output: &Output) -> Value {
        assert!(output.status.success(), "{}", text(output));
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

/// Mixed backends, Claude failing: every worker ends on Codex, every task done.
fn assert_fallback_round(swarm: &Swarm, launcher: &Path) {
    let output = swarm.run(
        launcher,
        &["--workers", "4", "--json"],
        &[("WORKERS", "9"), ("FAKE_CLAUDE_FAIL", "1")],
    );
    let report = swarm.report(&output);
    let experiment = report["experiment"].as_str().unwrap();
    let written = std::fs::read_to_string(
        swarm
            .out
            .path()
            .join(format!("smart-swarm-{experiment}.json")),
    )
    .unwrap();
    assert_eq!(serde_json::from_str::<Value>(&written).unwrap(), report);

    assert_eq!(report["backend_mode_requested"], "mixed");
    assert_eq!(report["backend_mode_effective"], "mixed");
    assert_eq!(report["workers"], 4, "the flag beats WORKERS");
    let health = &report["backend_health"];
    assert_eq!(health["preflight_executed"], true);
    assert_eq!(health["claude_available"], true, "{health}");
    assert_eq!(health["codex_available"], true, "{health}");
    let result = &report["workers_result"];
    assert_eq!(result["total"], 4);
    assert_eq!(result["ok"], 4, "{report}");
    assert_eq!(result["requested_claude_workers"], 2);
    assert_eq!(result["requested_codex_workers"], 2);
    assert_eq!(result["fallback_used"], 2);
    assert_eq!(result["claude_workers"], 0);
    assert_eq!(result["codex_workers"], 4);
    assert_eq!(result["claude_ok"], 0);
    assert_eq!(report["backend_runtime_health"]["claude_fallback_used"], 2);
    let kpi = &report["kpi"];
    assert_eq!(kpi["done_count"], 4, "{report}");
    assert_eq!(kpi["done_rate_pct"], 100.0);
    assert_eq!(kpi["pending_count"], 0);
    assert_eq!(kpi["inbox_messages"], 4);
    assert_eq!(kpi["context_entries"], 4);
    assert!(kpi["context_chars"].as_u64().unwrap() > 0);
    let snapshots = &report["snapshots"];
    assert_eq!(snapshots["mode_effective"], "nano");
    assert_eq!(snapshots["batch_used"], true);
    let total = snapshots["total_bytes"].as_u64().unwrap();
    assert!(total > 0);
    assert_eq!(snapshots["total_tokens_est"], total / 4);
    assert_eq!(report["namespace"]["used"], true);
    assert_eq!(report["auth"]["server_auth_mode"], "enforce");
    for run in report["worker_runs"].as_array().unwrap() {
        let id = run["worker_id"].as_str().unwrap();
        assert!(swarm.out.path().join(format!("{id}.result.json")).is_file());
        if run["requested_backend"] == "claude" {
            assert_eq!(run["fallback_reason"], "claude_exit_3", "{run}");
            assert_eq!(run["backend"], "codex");
        } else {
            assert_eq!(run["fallback_reason"], Value::Null);
        }
    }
}

#[test]
fn smart_swarm_round_falls_back_from_a_failing_claude() {
    let swarm = Swarm::new();
    let _hub = start_enforced(swarm.data.path(), swarm.port);
    let launcher = install(swarm.fakes.path(), "hub-launch", FAKE_LAUNCHER);
    assert_fallback_round(&swarm, &launcher);
}

/// The same round through the real hub-launch (prompt on stdin, token in AGENT_HUB_TOKEN),
/// built beside hubctl by `cargo test --workspace` (or `cargo build -p hub-launch`).
#[test]
fn smart_swarm_round_through_hub_launch() {
    let swarm = Swarm::new();
    let _hub = start_enforced(swarm.data.path(), swarm.port);
    let launcher = Path::new(env!("CARGO_BIN_EXE_hubctl")).with_file_name("hub-launch");
    assert!(
        launcher.is_file(),
        "build it first: cargo build -p hub-launch"
    );
    assert_fallback_round(&swarm, &launcher);
}

#[test]
fn preflight_failure_degrades_or_stops_and_slow_workers_time_out() {
    let swarm = Swarm::new();
    let _hub = start_enforced(swarm.data.path(), swarm.port);
    let launcher = install(swarm.fakes.path(), "hub-launch", FAKE_LAUNCHER);
    let logged_out = [("FAKE_CLAUDE_LOGGED_OUT", "1")];

    // Claude only, not logged in, no fallback: nothing starts.
    let stopped = swarm.run(
        &launcher,
        &["--worker-backend", "claude"],
        &[logged_out[0], ("ALLOW_BACKEND_FALLBACK", "0")],
    );
    assert!(!stopped.status.success());
    assert!(
        text(&stopped).contains("not_authenticated"),
        "{}",
        text(&stopped)
    );

    // With fallback the round switches to Codex; a hanging worker is stopped at its timeout.
    let output = swarm.run(
        &launcher,
        &[
            "--worker-backend",
            "claude",
            "--workers",
            "1",
            "--worker-timeout-sec",
            "1",
            "--json",
        ],
        &[logged_out[0], ("FAKE_HANG", "1")],
    );
    let report = swarm.report(&output);
    assert_eq!(report["backend_mode_effective"], "codex");
    assert_eq!(
        report["backend_health"]["claude_unavailable_reason"],
        "not_authenticated"
    );
    let run = &report["worker_runs"][0];
    assert_eq!(run["exit_code"], 124, "{run}");
    assert_eq!(run["ok"], false);
    assert_eq!(report["workers_result"]["failed"], 1);
    assert_eq!(report["kpi"]["done_count"], 0);
    assert_eq!(report["kpi"]["pending_count"], 1);
}
