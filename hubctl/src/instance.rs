//! Which hub instance a command acts on: name, port, data dir, pidfile and log, resolved
//! with the same env layering as the server (process env > local overlay > base profile >
//! defaults). The default profile files `hub.production.env` / `hub.local.env` are looked up
//! in the `deploy/` of the installation (see [`profile_dir`]), never in the current
//! directory: the same command gives the same hub wherever it is typed.

use hub_server::store::inspect;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use hub_server::config::{Config, EnvLayers};

/// Instance selection, shared by every lifecycle command.
#[derive(Debug, Clone, Default, Args)]
pub struct InstanceArgs {
    /// Port of the instance (MCP_HUB_PORT, default 3000).
    #[arg(long, global = true)]
    pub port: Option<u16>,
    /// Data directory of the instance: hub.db, hub.pid, hub.log (MCP_HUB_DATA, default ~/.mcp-hub).
    #[arg(long, global = true)]
    pub data: Option<PathBuf>,
    /// Instance name shown by status (MCP_HUB_CONTAINER, default mcp-hub).
    #[arg(long, global = true)]
    pub name: Option<String>,
    /// Base profile (KEY=VALUE file) replacing the default one; same as MCP_HUB_ENV_FILE.
    #[arg(long, global = true, value_name = "FILE")]
    pub profile: Option<PathBuf>,
}

pub struct Instance {
    pub name: String,
    pub config: Config,
    pub layers: EnvLayers,
    /// One line per `MCP_HUB_*` variable in the layers that the hub does not know.
    pub warnings: Vec<String>,
}

/// The nearest ancestor of the executable that holds `deploy/` (a source checkout's root
/// for target/*/hubctl, an install prefix for <prefix>/bin/hubctl).
fn exe_root() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .find(|dir| dir.join("deploy").is_dir())
        .map(Path::to_path_buf)
}

/// The source checkout `build` and `test` run cargo in: the executable's, else the current
/// directory (a hubctl installed elsewhere, run from a checkout).
pub fn install_root() -> PathBuf {
    exe_root()
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where the default profiles live: `deploy/` beside the installation, else the instance's
/// data dir (`data` before any profile is read: --data, MCP_HUB_DATA or ~/.mcp-hub). Never
/// the current directory — a profile picked by cwd made `start` enforce auth from the repo
/// root and observe from anywhere else.
pub fn profile_dir(data: &Path) -> PathBuf {
    exe_root()
        .map(|root| root.join("deploy"))
        .unwrap_or_else(|| data.to_path_buf())
}

impl Instance {
    pub fn resolve(args: &InstanceArgs) -> anyhow::Result<Instance> {
        let mut env: Vec<(String, String)> = std::env::vars().collect();
        if let Some(port) = args.port {
            env.push(("MCP_HUB_PORT".into(), port.to_string()));
        }
        if let Some(data) = &args.data {
            env.push(("MCP_HUB_DATA".into(), data.display().to_string()));
        }
        if let Some(name) = &args.name {
            env.push(("MCP_HUB_CONTAINER".into(), name.clone()));
        }
        if let Some(profile) = &args.profile {
            env.push(("MCP_HUB_ENV_FILE".into(), profile.display().to_string()));
        }
        let dir = profile_dir(&data_dir_before_profiles(&env));
        let layers = EnvLayers::resolve(
            env,
            Some(&dir.join("hub.production.env")),
            Some(&dir.join("hub.local.env")),
        )
        .map_err(anyhow::Error::msg)?;
        let (config, warnings) = Config::load(&layers).map_err(anyhow::Error::msg)?;
        let name = layers
            .get("MCP_HUB_CONTAINER")
            .unwrap_or("mcp-hub")
            .to_string();
        Ok(Instance {
            name,
            config,
            layers,
            warnings,
        })
    }

    /// One line naming the profile files and auth mode in force (printed by start/status).
    pub fn profile_line(&self) -> String {
        let files = if self.env_files().is_empty() {
            "none (built-in defaults)".to_string()
        } else {
            self.env_files().join(", ")
        };
        format!(
            "Profile: {files}; auth mode: {}",
            self.config.auth_mode.as_str()
        )
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    pub fn db_path(&self) -> &Path {
        &self.config.db_path
    }

    /// The database to read: `explicit` (a SQLite file), else the instance's PostgreSQL
    /// database (`MCP_HUB_DB_URL`) or SQLite file; `None` (said on stderr) for a file that
    /// does not exist.
    pub fn existing_db(&self, explicit: Option<&Path>) -> Option<inspect::Location> {
        if explicit.is_none()
            && let Some(url) = &self.config.db_url
        {
            return Some(inspect::Location::Postgres(url.clone()));
        }
        let db = explicit.unwrap_or_else(|| self.db_path()).to_path_buf();
        if db.is_file() {
            Some(inspect::Location::File(db))
        } else {
            eprintln!("Database not found at {}", db.display());
            None
        }
    }

    pub fn pidfile(&self) -> PathBuf {
        self.data_dir().join("hub.pid")
    }

    pub fn logfile(&self) -> PathBuf {
        self.data_dir().join("hub.log")
    }

    pub fn port(&self) -> u16 {
        self.config.port
    }

    pub fn base_url(&self) -> String {
        format!("http://localhost:{}", self.port())
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base_url())
    }

    pub fn health_url(&self) -> String {
        format!("http://127.0.0.1:{}/health", self.port())
    }

    /// The unknown-variable warnings on stderr (what `start` shows before launching).
    pub fn print_warnings(&self) {
        for warning in &self.warnings {
            eprintln!("warning: {warning}");
        }
    }

    /// `base:<path>` / `local:<path>` of the env files in effect.
    pub fn env_files(&self) -> &[String] {
        &self.layers.loaded_files
    }

    /// The environment the hub process gets: the resolved `MCP_HUB_*` set plus the paths
    /// this instance pins.
    pub fn child_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .layers
            .vars
            .iter()
            .filter(|(key, value)| key.starts_with("MCP_HUB_") && !value.trim().is_empty())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, value) in [
            ("MCP_HUB_PORT", self.port().to_string()),
            ("MCP_HUB_DATA", self.data_dir().display().to_string()),
            ("MCP_HUB_DB", self.db_path().display().to_string()),
            (
                "MCP_HUB_ARTIFACTS_DIR",
                self.config.artifacts_dir.display().to_string(),
            ),
            (
                "MCP_HUB_PUBLIC_BASE_URL",
                self.config.public_base_url.clone(),
            ),
        ] {
            env.retain(|(k, _)| k != key);
            env.push((key.to_string(), value));
        }
        env
    }

    /// Pid and start time recorded by `start`, if the pidfile exists.
    pub fn recorded(&self) -> anyhow::Result<Option<PidRecord>> {
        let path = self.pidfile();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut lines = text.lines();
        let pid = lines.next().and_then(|l| l.trim().parse().ok());
        let started_ms = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        Ok(pid.map(|pid| PidRecord { pid, started_ms }))
    }

    /// The running hub process of this instance, if any (a stale pidfile is ignored).
    pub fn running(&self) -> anyhow::Result<Option<PidRecord>> {
        Ok(self
            .recorded()?
            .filter(|record| crate::process::is_hub_process(record.pid)))
    }
}

/// The data dir as known before any profile is read (the last MCP_HUB_DATA, else
/// ~/.mcp-hub), used only to find a profile stored there.
fn data_dir_before_profiles(env: &[(String, String)]) -> PathBuf {
    let explicit = env
        .iter()
        .rev()
        .find(|(key, value)| key == "MCP_HUB_DATA" && !value.trim().is_empty())
        .map(|(_, value)| PathBuf::from(value));
    explicit.unwrap_or_else(|| {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".mcp-hub")
    })
}

#[derive(Debug, Clone, Copy)]
pub struct PidRecord {
    pub pid: u32,
    pub started_ms: i64,
}
