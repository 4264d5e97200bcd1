//! The agent CLIs of `smart-swarm-round` (spec http-config-cli §10.2): locating `claude` /
//! `codex` (CLAUDE_BIN / CODEX_BIN) and `hub-launch`, the preflight that says whether each
//! backend can reach the hub, and the pure rule choosing the backend mode that runs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;
use serde_json::{Value, json};

/// How long one preflight command may take.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Claude,
    Codex,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Claude => "claude",
            Backend::Codex => "codex",
        }
    }

    pub fn other(self) -> Backend {
        match self {
            Backend::Claude => Backend::Codex,
            Backend::Codex => Backend::Claude,
        }
    }
}

/// `WORKER_BACKEND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendMode {
    Claude,
    Codex,
    /// Odd workers on Claude, even on Codex.
    Mixed,
}

impl BackendMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendMode::Claude => "claude",
            BackendMode::Codex => "codex",
            BackendMode::Mixed => "mixed",
        }
    }

    fn single(backend: Backend) -> BackendMode {
        match backend {
            Backend::Claude => BackendMode::Claude,
            Backend::Codex => BackendMode::Codex,
        }
    }

    /// The backend of worker `i` (1-based).
    pub fn backend_of(self, i: usize) -> Backend {
        match self {
            BackendMode::Claude => Backend::Claude,
            BackendMode::Codex => Backend::Codex,
            BackendMode::Mixed if i % 2 == 1 => Backend::Claude,
            BackendMode::Mixed => Backend::Codex,
        }
    }
}

/// Whether each backend passed preflight; `None` reasons mean available. Without a
/// preflight both count as available.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackendHealth {
    pub preflight_executed: bool,
    pub claude_unavailable: Option<String>,
    pub codex_unavailable: Option<String>,
}

impl BackendHealth {
    pub fn available(&self, backend: Backend) -> bool {
        match backend {
            Backend::Claude => self.claude_unavailable.is_none(),
            Backend::Codex => self.codex_unavailable.is_none(),
        }
    }

    /// The report's `backend_health` (all null when preflight was skipped).
    pub fn to_json(&self) -> Value {
        if !self.preflight_executed {
            return json!({"preflight_executed": false, "claude_available": null,
                          "codex_available": null, "claude_unavailable_reason": null,
                          "codex_unavailable_reason": null});
        }
        json!({
            "preflight_executed": true,
            "claude_available": self.available(Backend::Claude),
            "codex_available": self.available(Backend::Codex),
            "claude_unavailable_reason": self.claude_unavailable,
            "codex_unavailable_reason": self.codex_unavailable,
        })
    }
}

/// The mode that runs: a single unavailable backend switches to the other when fallback is
/// allowed and it is available; mixed degrades to the available one; else an error.
pub fn effective_mode(
    requested: BackendMode,
    health: &BackendHealth,
    allow_fallback: bool,
) -> Result<BackendMode, String> {
    let reason = |b: Backend| match b {
        Backend::Claude => health.claude_unavailable.clone().unwrap_or_default(),
        Backend::Codex => health.codex_unavailable.clone().unwrap_or_default(),
    };
    match requested {
        BackendMode::Mixed => match (
            health.available(Backend::Claude),
            health.available(Backend::Codex),
        ) {
            (true, true) => Ok(BackendMode::Mixed),
            (true, false) => Ok(BackendMode::Claude),
            (false, true) => Ok(BackendMode::Codex),
            (false, false) => Err(format!(
                "no backend available: claude {}, codex {}",
                reason(Backend::Claude),
                reason(Backend::Codex)
            )),
        },
        BackendMode::Claude | BackendMode::Codex => {
            let wanted = requested.backend_of(1);
            if health.available(wanted) {
                Ok(requested)
            } else if allow_fallback && health.available(wanted.other()) {
                Ok(BackendMode::single(wanted.other()))
            } else {
                Err(format!(
                    "{} is unavailable ({}){}",
                    wanted.as_str(),
                    reason(wanted),
                    if allow_fallback {
                        format!(" and so is {}", wanted.other().as_str())
                    } else {
                        " and ALLOW_BACKEND_FALLBACK=0".to_string()
                    }
                ))
            }
        }
    }
}

/// `name` as given when it contains a `/`, else the first match on PATH.
pub fn resolve_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return path.is_file().then_some(path);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// hub-launch: `explicit`, else beside this hubctl, else on PATH.
pub fn find_launcher(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        anyhow::ensure!(
            path.is_file(),
            "--launcher {} does not exist",
            path.display()
        );
        return Ok(path.to_path_buf());
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("hub-launch")))
        .filter(|path| path.is_file());
    beside
        .or_else(|| resolve_program("hub-launch"))
        .context("hub-launch not found beside hubctl nor on PATH; pass --launcher PATH")
}

/// A directory whose `claude` and `codex` are the chosen CLAUDE_BIN / CODEX_BIN, put first
/// on the launcher's PATH: hub-launch starts whatever `claude`/`codex` PATH names.
pub fn backend_bin_dir(
    out_dir: &Path,
    claude: Option<&Path>,
    codex: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    let dir = out_dir.join("bin");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, target) in [("claude", claude), ("codex", codex)] {
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link);
        if let Some(target) = target {
            let target = std::fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
            std::os::unix::fs::symlink(&target, &link)
                .with_context(|| format!("linking {} to {}", link.display(), target.display()))?;
        }
    }
    Ok(dir)
}

/// PATH with `first` in front.
pub fn path_with(first: &Path) -> std::ffi::OsString {
    let mut paths = vec![first.to_path_buf()];
    if let Some(current) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&current));
    }
    std::env::join_paths(paths).unwrap_or_default()
}

/// Runs a preflight command; its stdout when it exits 0 in time.
async fn probe(program: &Path, args: &[String]) -> Option<String> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(PREFLIGHT_TIMEOUT, child).await {
        Ok(Ok(output)) if output.status.success() => {
            Some(String::from_utf8_lossy(&output.stdout).into_owned())
        }
        _ => None,
    }
}

/// Claude preflight, reasons checked in the spec's order.
pub async fn preflight_claude(program: Option<&Path>, config: &Path) -> Option<String> {
    let Some(program) = program else {
        return Some("missing_binary".into());
    };
    let Ok(text) = std::fs::read_to_string(config) else {
        return Some("missing_mcp_config".into());
    };
    let url = serde_json::from_str::<Value>(&text).ok().and_then(|c| {
        c["mcpServers"]["agent-hub"]["url"]
            .as_str()
            .map(str::to_string)
    });
    if url.is_none_or(|u| u.trim().is_empty()) {
        return Some("invalid_mcp_config".into());
    }
    let list = [
        "--mcp-config".to_string(),
        config.display().to_string(),
        "--strict-mcp-config".into(),
        "mcp".into(),
        "list".into(),
    ];
    let Some(listed) = probe(program, &list).await else {
        return Some("mcp_preflight_failed".into());
    };
    if !listed.contains("agent-hub:") {
        return Some("agent_hub_not_listed".into());
    }
    let status = probe(program, &["auth".into(), "status".into()]).await;
    let logged_in = status
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .is_some_and(|s| s["loggedIn"] == true);
    (!logged_in).then(|| "not_authenticated".into())
}

/// Codex preflight.
pub async fn preflight_codex(program: Option<&Path>, endpoint: &str) -> Option<String> {
    let Some(program) = program else {
        return Some("missing_binary".into());
    };
    let args = [
        "-c".to_string(),
        format!("mcp_servers.agent-hub.url=\"{endpoint}\""),
        "mcp".into(),
        "list".into(),
    ];
    let Some(listed) = probe(program, &args).await else {
        return Some("mcp_preflight_failed".into());
    };
    let listed = listed.lines().any(|line| line.starts_with("agent-hub"));
    (!listed).then(|| "agent_hub_not_listed".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(claude: Option<&str>, codex: Option<&str>) -> BackendHealth {
        BackendHealth {
            preflight_executed: true,
            claude_unavailable: claude.map(str::to_string),
            codex_unavailable: codex.map(str::to_string),
        }
    }

    #[test]
    fn the_mode_that_runs() {
        use BackendMode::*;
        let both = health(None, None);
        let no_claude = health(Some("not_authenticated"), None);
        let no_codex = health(None, Some("mcp_preflight_failed"));
        let none = health(Some("missing_binary"), Some("missing_binary"));
        for (requested, health, fallback, expected) in [
            (Mixed, &both, true, Ok(Mixed)),
            (Mixed, &no_claude, false, Ok(Codex)),
            (Mixed, &no_codex, false, Ok(Claude)),
            (Claude, &no_claude, true, Ok(Codex)),
            (Codex, &no_codex, true, Ok(Claude)),
            (Codex, &both, false, Ok(Codex)),
        ] {
            assert_eq!(
                effective_mode(requested, health, fallback),
                expected,
                "{requested:?}"
            );
        }
        assert!(effective_mode(Claude, &no_claude, false).is_err());
        assert!(effective_mode(Mixed, &none, true).is_err());
        assert!(effective_mode(Codex, &none, true).is_err());
    }

    #[test]
    fn mixed_alternates_starting_with_claude() {
        let picks: Vec<Backend> = (1..=4).map(|i| BackendMode::Mixed.backend_of(i)).collect();
        assert_eq!(
            picks,
            [
                Backend::Claude,
                Backend::Codex,
                Backend::Claude,
                Backend::Codex
            ]
        );
        assert_eq!(BackendMode::Codex.backend_of(1), Backend::Codex);
    }

    #[test]
    fn skipped_preflight_reports_nulls() {
        let report = BackendHealth::default().to_json();
        assert_eq!(report["preflight_executed"], false);
        assert_eq!(report["claude_available"], Value::Null);
    }
}
