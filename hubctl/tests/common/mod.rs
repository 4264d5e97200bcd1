//! Helpers shared by the hubctl CLI tests: a free port, running hubctl against an instance
//! isolated from the developer's profile, and reading its output.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Runs hubctl on the instance (`--data`, `--port`). An explicit, empty profile replaces
/// deploy/hub.production.env and, being the same file, disables the local overlay: the tests
/// see built-in defaults only.
pub fn hubctl(data: &Path, port: u16, args: &[&str]) -> Output {
    hubctl_command(data, port, args)
        .output()
        .expect("hubctl runs")
}

/// The command `hubctl` runs, for tests that add stdin, a working directory or variables.
pub fn hubctl_command(data: &Path, port: u16, args: &[&str]) -> Command {
    hubctl_command_with(data, port, "# empty test profile\n", args)
}

/// Runs hubctl with `profile` as the instance's whole profile (e.g. `MCP_HUB_DB_URL=…`).
pub fn hubctl_with(data: &Path, port: u16, profile: &str, args: &[&str]) -> Output {
    hubctl_command_with(data, port, profile, args)
        .output()
        .expect("hubctl runs")
}

fn hubctl_command_with(data: &Path, port: u16, profile_text: &str, args: &[&str]) -> Command {
    let profile = data.with_extension("env");
    std::fs::write(&profile, profile_text).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hubctl"));
    command
        .arg("--data")
        .arg(data)
        .arg("--port")
        .arg(port.to_string())
        .args(args)
        .env("MCP_HUB_ENV_FILE", &profile)
        .env("MCP_HUB_LOCAL_ENV_FILE", &profile);
    command
}

/// Runs `command` with `input` on its stdin.
pub fn with_stdin(mut command: Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("hubctl runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// stdout and stderr together.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Stops the instance even when an assertion fails midway.
pub struct Running<'a> {
    pub data: &'a Path,
    pub port: u16,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let _ = hubctl(self.data, self.port, &["stop"]);
    }
}

/// `hubctl start`, asserted to succeed; the guard stops the instance when dropped.
pub fn start(data: &Path, port: u16) -> (Output, Running<'_>) {
    let started = hubctl(data, port, &["start"]);
    let guard = Running { data, port };
    assert!(started.status.success(), "{}", text(&started));
    (started, guard)
}

/// `hubctl start` with extra `MCP_HUB_*` variables (they beat the empty test profile),
/// asserted to succeed; the guard stops the instance when dropped.
pub fn start_configured<'a>(data: &'a Path, port: u16, env: &[(&str, &str)]) -> Running<'a> {
    let started = hubctl_command(data, port, &["start"])
        .envs(env.iter().copied())
        .output()
        .expect("hubctl runs");
    let guard = Running { data, port };
    assert!(started.status.success(), "{}", text(&started));
    guard
}
