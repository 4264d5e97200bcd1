//! hub-launch end to end: a real hub on 127.0.0.1:0 (enforce mode), the launcher binary, and
//! fake `claude` / `codex` executables (fixtures/fake-agent-cli.py) that connect to the hub
//! with whatever the launcher handed them and call a tool as the launched agent.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use hub_server::HubHandle;
use hub_server::clock::SystemClock;
use hub_server::config::{Config, EnvLayers};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

const ADMIN_SECRET: &str = "operator-secret-for-tests";

struct Hub {
    handle: HubHandle,
    _data: tempfile::TempDir,
}

async fn start_hub() -> Hub {
    let data = tempfile::tempdir().expect("temp dir");
    let mut layers = EnvLayers::default();
    for (key, value) in [
        ("MCP_HUB_DATA", data.path().display().to_string()),
        ("MCP_HUB_DB_SYNC", "normal".into()),
        ("MCP_HUB_AUTH_MODE", "enforce".into()),
        ("MCP_HUB_ADMIN_TOKEN", ADMIN_SECRET.into()),
    ] {
        layers.vars.insert(key.into(), value);
    }
    let config = Config::from_env(&layers).expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let handle = hub_server::start(config, vec![listener], std::sync::Arc::new(SystemClock))
        .await
        .expect("hub starts");
    Hub {
        handle,
        _data: data,
    }
}

/// A directory on PATH holding the fake under both CLI names.
fn fake_bin() -> tempfile::TempDir {
    let bin = tempfile::tempdir().expect("temp dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-agent-cli.py");
    for name in ["claude", "codex"] {
        std::os::unix::fs::symlink(&script, bin.path().join(name)).expect("symlink");
    }
    bin
}

/// One launch's surroundings: a working tree, the fakes on PATH, a record file outside both.
struct Scene {
    work: tempfile::TempDir,
    bin: tempfile::TempDir,
    scratch: tempfile::TempDir,
}

impl Scene {
    fn new() -> Scene {
        Scene {
            work: tempfile::tempdir().expect("temp dir"),
            bin: fake_bin(),
            scratch: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn record_path(&self) -> PathBuf {
        self.scratch.path().join("record.json")
    }

    fn record(&self) -> Value {
        let text = std::fs::read_to_string(self.record_path()).expect("the fake CLI ran");
        serde_json::from_str(&text).expect("record JSON")
    }

    fn command(&self, endpoint: &str, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hub-launch"));
        let path = format!(
            "{}:{}",
            self.bin.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        command
            .args(["--endpoint", endpoint])
            .args(args)
            .current_dir(self.work.path())
            .env("PATH", path)
            .env("FAKE_CLI_RECORD", self.record_path())
            .env_remove("MCP_HUB_ADMIN_TOKEN")
            .env_remove("AGENT_HUB_TOKEN")
            .env_remove("HUB_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }
}

/// Every file below `dir` (recursively) that contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path)
            .is_ok_and(|bytes| String::from_utf8_lossy(&bytes).contains(needle))
        {
            found.push(path);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_clis_reach_the_hub_as_the_agent_with_the_token_in_the_environment_only() {
    let hub = start_hub().await;
    for backend in ["codex", "claude"] {
        let scene = Scene::new();
        std::fs::write(scene.work.path().join("main.rs"), "fn main() {}").unwrap();
        let agent_id = format!("assistant-{backend}-e2e");
        let output = scene
            .command(
                &hub.handle.mcp_url(),
                &[
                    "--backend",
                    backend,
                    "--role",
                    "executor",
                    "--agent-id",
                    &agent_id,
                ],
            )
            .env("FAKE_CLI_EXIT", "7")
            .output()
            .await
            .expect("hub-launch runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(7),
            "{backend}: exit status passed through; {stderr}"
        );

        let record = scene.record();
        assert!(record.get("error").is_none(), "{backend}: {record}");
        let result = &record["tool_result"];
        assert_eq!(
            result["success"], true,
            "{backend}: share_context as the agent: {result}"
        );
        assert_eq!(result["context"]["agent_id"], agent_id.as_str());

        let token = record["env"]["AGENT_HUB_TOKEN"]
            .as_str()
            .expect("token in env");
        assert!(token.len() >= 32, "a real token");
        assert_eq!(record["env"]["AGENT_HUB_AGENT_ID"], agent_id.as_str());
        for part in record["cmdline"].as_array().unwrap() {
            assert!(
                !part.as_str().unwrap().contains(token),
                "{backend}: token in argv"
            );
        }
        assert!(
            files_containing(scene.work.path(), token).is_empty(),
            "{backend}: token in a file of the working tree"
        );

        let prompt = record["stdin"].as_str().unwrap();
        assert!(prompt.starts_with("# Agent Hub — onboarding for agents"));
        assert!(prompt.contains("# Role: assistant"));
        assert!(prompt.contains(&format!("id \"{agent_id}\"")));
        assert!(
            prompt.contains(r#""mode":"repo""#),
            "the working tree has a file"
        );

        if backend == "claude" {
            let config = PathBuf::from(record["config_path"].as_str().unwrap());
            assert!(
                !config.starts_with(scene.work.path()),
                "config outside the working tree"
            );
            assert_eq!(record["config_mode"], 0o600);
            assert_eq!(record["config_type"], "http");
            assert!(!config.exists(), "the temp config is removed on exit");
        } else {
            let argv: Vec<&str> = record["argv"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            assert!(
                argv.contains(&"mcp_servers.agent-hub.bearer_token_env_var=\"AGENT_HUB_TOKEN\"")
            );
            assert_eq!(argv.last(), Some(&"-"), "the prompt comes on stdin");
        }
    }
    hub.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orchestrator_role_needs_the_operators_grant_which_the_agent_never_sees() {
    let hub = start_hub().await;
    let scene = Scene::new();
    let refused = scene
        .command(
            &hub.handle.mcp_url(),
            &["--role", "orchestrator", "--agent-id", "lead-1"],
        )
        .output()
        .await
        .expect("hub-launch runs");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("privileged role without grant"), "{stderr}");
    assert!(
        stderr.contains("MCP_HUB_ADMIN_TOKEN"),
        "says how to get the grant: {stderr}"
    );
    assert!(
        !scene.record_path().exists(),
        "no CLI started without the grant"
    );

    let granted = scene
        .command(
            &hub.handle.mcp_url(),
            &["--role", "orchestrator", "--agent-id", "lead-2"],
        )
        .env("MCP_HUB_ADMIN_TOKEN", ADMIN_SECRET)
        .output()
        .await
        .expect("hub-launch runs");
    let stderr = String::from_utf8_lossy(&granted.stderr);
    assert_eq!(granted.status.code(), Some(0), "{stderr}");
    let record = scene.record();
    assert_eq!(record["tool_result"]["success"], true, "{record}");
    assert!(
        record["env"].get("MCP_HUB_ADMIN_TOKEN").is_none(),
        "admin secret not passed on"
    );
    assert!(
        record["stdin"]
            .as_str()
            .unwrap()
            .contains("# Role: orchestrator")
    );
    hub.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_names_a_missing_cli_and_an_unreachable_hub() {
    let hub = start_hub().await;
    let scene = Scene::new();
    let mut missing = scene.command(&hub.handle.mcp_url(), &["--backend", "codex"]);
    missing.env("PATH", "/nonexistent");
    let output = missing.output().await.expect("hub-launch runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("Missing command: codex"), "{stderr}");

    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", closed.local_addr().unwrap());
    drop(closed);
    let output = scene
        .command(&url, &[])
        .output()
        .await
        .expect("hub-launch runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("hub unreachable at"), "{stderr}");
    assert!(!scene.record_path().exists());
    hub.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_to_the_launcher_reaches_the_cli_and_its_status_comes_back() {
    let hub = start_hub().await;
    let scene = Scene::new();
    let mut launcher = scene
        .command(&hub.handle.mcp_url(), &["--backend", "claude"])
        .env("FAKE_CLI_WAIT_SIGNAL", "1")
        .spawn()
        .expect("hub-launch starts");
    // The child shares the launcher's stdout: its ready line means it is waiting for a signal.
    let mut lines = BufReader::new(launcher.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.expect("read stdout") {
        if line == "fake-cli: ready" {
            break;
        }
    }
    let pid = rustix::process::Pid::from_raw(launcher.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
    let status = launcher.wait().await.expect("launcher exits");
    assert_eq!(status.code(), Some(130), "the CLI's status after SIGINT");
    let record = scene.record();
    assert_eq!(record["signal"], "SIGINT");
    assert!(!Path::new(record["config_path"].as_str().unwrap()).exists());
    hub.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_command_environment_names_and_prompt_without_side_effects() {
    let scene = Scene::new();
    // Nothing listens here: a dry run neither registers nor starts anything.
    let output = scene
        .command(
            "http://127.0.0.1:9/mcp",
            &[
                "--backend",
                "codex",
                "--role",
                "reviewer",
                "--namespace",
                "exp-7",
                "--dry-run",
            ],
        )
        .env("AGENT_HUB_TOKEN", "relaunch-token-value")
        .env("MCP_HUB_ADMIN_TOKEN", "admin-value")
        .env("CODEX_MODEL", "o-test")
        .output()
        .await
        .expect("hub-launch runs");
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let expected_command = "codex -c 'mcp_servers.agent-hub.url=\"http://127.0.0.1:9/mcp?tools=orchestrator\"' \
        -c 'mcp_servers.agent-hub.bearer_token_env_var=\"AGENT_HUB_TOKEN\"' \
        -c 'mcp_servers.agent-hub.default_tools_approval_mode=\"approve\"' \
        -c 'approval_policy=\"never\"' exec --skip-git-repo-check --sandbox workspace-write \
        --model o-test -";
    assert!(stdout.contains(expected_command), "{stdout}");
    assert!(stdout.contains(
        "# environment added (names only): AGENT_HUB_TOKEN AGENT_HUB_AGENT_ID AGENT_HUB_ENDPOINT"
    ));
    assert!(stdout.contains(r#""mode":"isolated""#), "empty working dir");
    assert!(stdout.contains("# Role: reviewer"));
    assert!(stdout.contains(r#"use "exp-7" for all task operations"#));
    for secret in ["relaunch-token-value", "admin-value"] {
        assert!(
            !stdout.contains(secret),
            "a dry run prints names, never values"
        );
    }
    assert!(!scene.record_path().exists(), "no CLI started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flag_also_comes_from_its_environment_variable() {
    let scene = Scene::new();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hub-launch"))
        .current_dir(scene.work.path())
        .env_remove("CLAUDE_MODEL")
        .envs([
            ("HUB_ENDPOINT", "http://127.0.0.1:9/env-mcp"),
            ("HUB_ROLE", "helper"),
            ("HUB_BACKEND", "claude"),
            ("HUB_AGENT_ID", "env-agent"),
            ("HUB_AGENT_NAME", "Env Agent"),
            ("HUB_NAMESPACE", "ns-env"),
            ("HUB_ONBOARDING", "none"),
            ("HUB_LIFECYCLE", "ephemeral"),
            ("HUB_RUNTIME_MODE", "unknown"),
            ("HUB_NOTE", "from the environment"),
            ("HUB_DRY_RUN", "1"),
        ])
        .output()
        .await
        .expect("hub-launch runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let registration: Value = stdout
        .lines()
        .skip_while(|line| !line.starts_with("# registration"))
        .nth(1)
        .and_then(|line| serde_json::from_str(line).ok())
        .expect("the registration line");
    assert_eq!(registration["id"], "env-agent");
    assert_eq!(registration["name"], "Env Agent");
    assert_eq!(registration["type"], "claude");
    assert_eq!(registration["role"], "assistant");
    assert_eq!(registration["lifecycle"], "ephemeral");
    assert_eq!(registration["runtime_profile"]["mode"], "unknown");
    assert_eq!(registration["runtime_profile"]["source"], "client_declared");
    assert!(stdout.contains("--mcp-config '<private-temp-dir>/mcp.json'"));
    assert!(stdout.contains("\"url\": \"http://127.0.0.1:9/env-mcp?tools=worker\""));
    assert!(stdout.contains(r#"use "ns-env" for all task operations"#));
    assert!(stdout.contains("- Note: from the environment"));
    assert!(stdout.contains("Skip get_onboarding"));
    assert!(stdout.contains("Unknown runtime"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_agent_is_relaunched_with_its_own_token_only() {
    let hub = start_hub().await;
    let scene = Scene::new();
    let url = hub.handle.mcp_url();
    let args = ["--backend", "codex", "--agent-id", "keeper"];
    let first = scene.command(&url, &args).output().await.expect("runs");
    assert_eq!(first.status.code(), Some(0));
    let token = scene.record()["env"]["AGENT_HUB_TOKEN"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_file(scene.record_path()).unwrap();

    let hijack = scene.command(&url, &args).output().await.expect("runs");
    let stderr = String::from_utf8_lossy(&hijack.stderr);
    assert_eq!(
        hijack.status.code(),
        Some(1),
        "an existing id needs its token"
    );
    assert!(
        stderr.contains("AUTH_TOKEN_REQUIRED") && stderr.contains("AGENT_HUB_TOKEN"),
        "{stderr}"
    );
    assert!(!scene.record_path().exists());

    let relaunch = scene
        .command(&url, &args)
        .env("AGENT_HUB_TOKEN", &token)
        .output()
        .await
        .expect("runs");
    assert_eq!(relaunch.status.code(), Some(0));
    let record = scene.record();
    assert_eq!(record["tool_result"]["success"], true, "{record}");
    assert_eq!(
        record["env"]["AGENT_HUB_TOKEN"],
        token.as_str(),
        "the same token"
    );
    hub.handle.shutdown().await;
}
