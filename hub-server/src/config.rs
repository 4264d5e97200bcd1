//! Hub configuration: `MCP_HUB_*` variables from the process environment layered over env
//! files, parsed and validated once at startup into plain data.
//!
//! Layering, highest wins: the process environment; the local overlay
//! (`MCP_HUB_LOCAL_ENV_FILE`); the base profile (`MCP_HUB_ENV_FILE`); built-in defaults.
//! `hubctl` adds the default file locations (`deploy/hub.production.env`,
//! `deploy/hub.local.env`) through [`EnvLayers::resolve`]. Env files are `KEY=VALUE` lines,
//! parsed, never executed. An empty value counts as unset. A value that does not parse, or
//! is outside an enum's allowed values, is an error naming the variable.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::SyncMode;

/// Variables that come from a resolved environment (process env over env files).
#[derive(Debug, Clone, Default)]
pub struct EnvLayers {
    pub vars: BTreeMap<String, String>,
    /// `base:<path>` / `local:<path>` for every file that was loaded, for display.
    pub loaded_files: Vec<String>,
}

/// Parses `KEY=VALUE` lines: `#` comments, blank lines, an optional `export ` prefix and
/// matching surrounding quotes are accepted. Nothing is expanded or executed.
pub fn parse_env_file(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    for (number, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {}: expected KEY=VALUE", number + 1));
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "line {}: invalid variable name {key:?}",
                number + 1
            ));
        }
        let mut value = value.trim();
        // A trailing comment after an unquoted value.
        if !value.starts_with(['"', '\''])
            && let Some(position) = value.find(" #")
        {
            value = value[..position].trim_end();
        }
        for quote in ['"', '\''] {
            if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
                value = &value[1..value.len() - 1];
            }
        }
        vars.insert(key.to_string(), value.to_string());
    }
    Ok(vars)
}

impl EnvLayers {
    /// Resolves the layers from `process_env`. `default_base` / `default_local` are the
    /// file locations used when the variables are unset (hubctl passes its `deploy/` files;
    /// the bare server passes none). Missing explicit files are errors; missing defaults are
    /// skipped.
    pub fn resolve(
        process_env: impl IntoIterator<Item = (String, String)>,
        default_base: Option<&Path>,
        default_local: Option<&Path>,
    ) -> Result<EnvLayers, String> {
        let process: BTreeMap<String, String> = process_env
            .into_iter()
            .filter(|(key, _)| key.starts_with("MCP_HUB_"))
            .collect();
        let explicit = |name: &str| {
            process
                .get(name)
                .filter(|value| !value.trim().is_empty())
                .map(PathBuf::from)
        };
        let mut layers = EnvLayers::default();
        let base = match explicit("MCP_HUB_ENV_FILE") {
            Some(path) if !path.is_file() => {
                return Err(format!("Environment file not found: {}", path.display()));
            }
            Some(path) => Some(path),
            None => default_base.filter(|p| p.is_file()).map(Path::to_path_buf),
        };
        let local = match explicit("MCP_HUB_LOCAL_ENV_FILE") {
            Some(path) if !path.is_file() => {
                return Err(format!(
                    "Local environment file not found: {}",
                    path.display()
                ));
            }
            Some(path) => Some(path),
            None => default_local.filter(|p| p.is_file()).map(Path::to_path_buf),
        };
        let local = local.filter(|local| Some(local) != base.as_ref());
        for (label, path) in [("base", base), ("local", local)] {
            let Some(path) = path else { continue };
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            let vars = parse_env_file(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            layers.vars.extend(vars);
            layers
                .loaded_files
                .push(format!("{label}:{}", path.display()));
        }
        layers.vars.extend(process);
        Ok(layers)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    }
}

/// What to do with a request that names an unknown MCP session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownSessionPolicy {
    Error,
    StatelessFallback,
}

impl UnknownSessionPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            UnknownSessionPolicy::Error => "error",
            UnknownSessionPolicy::StatelessFallback => "stateless_fallback",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Observe,
    Warn,
    Enforce,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Observe => "observe",
            AuthMode::Warn => "warn",
            AuthMode::Enforce => "enforce",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnboardingMode {
    Full,
    Compact,
    None,
}

impl OnboardingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            OnboardingMode::Full => "full",
            OnboardingMode::Compact => "compact",
            OnboardingMode::None => "none",
        }
    }

    pub fn parse(value: &str) -> Option<OnboardingMode> {
        match value {
            "full" => Some(OnboardingMode::Full),
            "compact" => Some(OnboardingMode::Compact),
            "none" => Some(OnboardingMode::None),
            _ => None,
        }
    }
}

/// Namespace governance for task tools (spec §4.15): what happens when a swarm-looking call
/// comes without a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceGovernance {
    Off,
    Warn,
    Require,
}

impl NamespaceGovernance {
    pub fn as_str(self) -> &'static str {
        match self {
            NamespaceGovernance::Off => "off",
            NamespaceGovernance::Warn => "warn",
            NamespaceGovernance::Require => "require",
        }
    }

    /// `off` and `require` as such; anything else (including unknown values) is `warn`, and
    /// reported as `warn` (D37).
    pub fn parse_lenient(value: Option<&str>) -> NamespaceGovernance {
        match value.map(str::to_ascii_lowercase).as_deref() {
            Some("off") => NamespaceGovernance::Off,
            Some("require") => NamespaceGovernance::Require,
            _ => NamespaceGovernance::Warn,
        }
    }
}

/// A configuration error: which variable, and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

/// Response shape of `wait_for_updates` when the call does not name one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitResponseMode {
    Nano,
    Micro,
    Tiny,
    Compact,
    Full,
}

/// Long-poll settings (`MCP_HUB_WAIT_*`).
#[derive(Debug, Clone)]
pub struct WaitConfig {
    pub max_ms: i64,
    pub default_ms: i64,
    pub retry_factor: f64,
    pub retry_cap_ms: i64,
    pub retry_jitter: f64,
    pub default_response_mode: WaitResponseMode,
    pub minimal_timeout_response: bool,
    pub log_hits: bool,
    pub log_timeouts: bool,
}

/// The validated hub configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub extra_bind_hosts: Vec<IpAddr>,
    pub data_dir: PathBuf,
    pub db_path: PathBuf,
    pub artifacts_dir: PathBuf,
    pub db_sync: SyncMode,
    pub public_base_url: String,

    pub session_idle_timeout: Option<Duration>,
    pub session_gc_interval: Duration,
    pub session_max: usize,
    pub unknown_session_policy: UnknownSessionPolicy,

    pub auth_mode: AuthMode,
    /// SHA-256 of `MCP_HUB_ADMIN_TOKEN`: presented at registration, it grants the asked role.
    pub admin_token_sha256: Option<[u8; 32]>,
    /// `MCP_HUB_PRIVILEGED_AGENTS`: agent id → granted role name.
    pub privileged_agents: BTreeMap<String, String>,
    pub rate_limit_rps: f64,
    pub rate_limit_burst: f64,
    pub namespace_quota_mode: String,
    pub namespace_quota_rps: f64,
    pub namespace_token_budget_per_min: f64,

    pub event_stream_interval_ms: i64,
    pub event_stream_heartbeat_ms: i64,
    pub event_stream_max_per_agent: usize,
    pub event_stream_max_total: usize,

    pub wait: WaitConfig,

    pub default_onboarding_mode: OnboardingMode,
    pub ephemeral_default_onboarding_mode: OnboardingMode,
    pub reregister_onboarding_mode: OnboardingMode,

    pub max_message_content_chars: usize,
    pub max_message_metadata_chars: usize,
    pub max_context_value_chars: usize,
    pub disallow_full_in_polling: bool,
    pub done_evidence_min_refs: i64,
    pub strict_done_evidence_min_refs: i64,
    pub strict_done_confidence_min: f64,
    pub max_evidence_refs_per_call: usize,
    pub max_evidence_ref_chars: usize,
    /// `strict` only when set to `strict`; otherwise `cheap`.
    pub consistency_default_strict: bool,
    pub namespace_governance: NamespaceGovernance,
    pub claim_cleanup_throttle_ms: i64,

    pub maintenance_interval: Duration,
    pub idempotency_ttl_ms: Option<i64>,
    pub agent_offline_after_ms: Option<i64>,
    pub ephemeral_offline_after_ms: Option<i64>,
    pub agent_retention_ms: Option<i64>,
    pub ephemeral_agent_retention_ms: Option<i64>,
    pub message_ttl_ms: Option<i64>,
    pub activity_log_ttl_ms: Option<i64>,
    pub auth_events_ttl_ms: Option<i64>,
    pub artifact_ttl_ms: i64,
    pub ephemeral_claim_reap_after_ms: Option<i64>,
    pub done_task_ttl_ms: Option<i64>,
    pub archive_batch_limit: i64,

    // Shared context, protocol blobs, CAEP packing, consensus (tools-more §1.15, §2).
    pub max_protocol_blob_chars: usize,
    pub lossless_auto_min_payload_chars: usize,
    pub lossless_auto_min_gain_pct: f64,
    pub auto_pack_min_payload_chars: usize,
    pub auto_pack_min_gain_pct: f64,
    pub protocol_blob_ttl_ms: Option<i64>,
    pub max_consensus_votes: usize,
    pub consensus_quality_weighting: bool,
}

/// Every variable this build reads, with its meaning; printed by `hub-server --help`.
pub const VARIABLES: &[(&str, &str)] = &[
    (
        "MCP_HUB_HOST",
        "primary listen address (default 127.0.0.1; 0.0.0.0 only inside containers)",
    ),
    ("MCP_HUB_PORT", "listen port, 1-65535 (default 3000)"),
    (
        "MCP_HUB_EXTRA_BIND_HOSTS",
        "comma-separated extra interface addresses to listen on (no wildcards)",
    ),
    (
        "MCP_HUB_DATA",
        "data directory, created on start (default ~/.mcp-hub)",
    ),
    ("MCP_HUB_DB", "SQLite file (default $MCP_HUB_DATA/hub.db)"),
    (
        "MCP_HUB_DB_SYNC",
        "full | normal: commit durability (default full)",
    ),
    (
        "MCP_HUB_ARTIFACTS_DIR",
        "artifact byte store (default $MCP_HUB_DATA/artifacts)",
    ),
    (
        "MCP_HUB_PUBLIC_BASE_URL",
        "URL prefix for artifact tickets (default http://localhost:<port>)",
    ),
    (
        "MCP_HUB_ENV_FILE",
        "base env profile (KEY=VALUE lines; parsed, never executed)",
    ),
    (
        "MCP_HUB_LOCAL_ENV_FILE",
        "local env overlay applied over the base profile",
    ),
    (
        "MCP_HUB_SESSION_IDLE_TIMEOUT_MS",
        "idle MCP session eviction; <=0 disables (default 21600000)",
    ),
    (
        "MCP_HUB_SESSION_GC_INTERVAL_MS",
        "session eviction sweep period (default 60000)",
    ),
    (
        "MCP_HUB_SESSION_MAX",
        "hard cap on live MCP sessions, oldest idle evicted (default 10000)",
    ),
    (
        "MCP_HUB_UNKNOWN_SESSION_POLICY",
        "error | stateless_fallback (default error)",
    ),
    (
        "MCP_HUB_AUTH_MODE",
        "observe | warn | enforce (default observe, or enforce with MCP_HUB_REQUIRE_AUTH=true)",
    ),
    (
        "MCP_HUB_REQUIRE_AUTH",
        "true: default auth mode becomes enforce",
    ),
    (
        "MCP_HUB_RATE_LIMIT_RPS",
        "per-agent refill per second; <=0 disables (default 30)",
    ),
    (
        "MCP_HUB_RATE_LIMIT_BURST",
        "per-agent bucket capacity; <=0 disables (default 60)",
    ),
    (
        "MCP_HUB_DEFAULT_ONBOARDING_MODE",
        "full | compact | none for new persistent agents (default full)",
    ),
    (
        "MCP_HUB_EPHEMERAL_DEFAULT_ONBOARDING_MODE",
        "full | compact | none for new ephemeral agents (default compact)",
    ),
    (
        "MCP_HUB_REREGISTER_ONBOARDING_MODE",
        "full | compact | none for re-registrations (default none)",
    ),
    (
        "MCP_HUB_MAX_MESSAGE_CONTENT_CHARS",
        "stored message content cap (default 1024)",
    ),
    (
        "MCP_HUB_MAX_MESSAGE_METADATA_CHARS",
        "message metadata cap (default 1024)",
    ),
    (
        "MCP_HUB_MAX_CONTEXT_VALUE_CHARS",
        "context value cap (default 2048)",
    ),
    (
        "MCP_HUB_DISALLOW_FULL_IN_POLLING",
        "0 allows response_mode=full in polling reads (default on)",
    ),
    (
        "MCP_HUB_DONE_EVIDENCE_MIN_REFS",
        "evidence refs required to mark a task done (default 1)",
    ),
    (
        "MCP_HUB_STRICT_DONE_EVIDENCE_MIN_REFS",
        "evidence refs required for a strict done, at least DONE_EVIDENCE_MIN_REFS (default max(2, it))",
    ),
    (
        "MCP_HUB_STRICT_DONE_CONFIDENCE_MIN",
        "confidence floor of a strict done, 0.75-1 (default 0.95)",
    ),
    (
        "MCP_HUB_MAX_EVIDENCE_REFS_PER_CALL",
        "evidence refs accepted per call, min 1 (default 16)",
    ),
    (
        "MCP_HUB_MAX_EVIDENCE_REF_CHARS",
        "each evidence ref is cut to this many characters, min 8 (default 256)",
    ),
    (
        "MCP_HUB_CONSISTENCY_DEFAULT",
        "strict | cheap: done-gate mode of new non-critical tasks (default cheap)",
    ),
    (
        "MCP_HUB_NAMESPACE_GOVERNANCE",
        "off | warn | require: swarm-looking task calls without a namespace (default warn)",
    ),
    (
        "MCP_HUB_CLAIM_CLEANUP_THROTTLE_MS",
        "min gap between opportunistic expired-claim sweeps; 0 = every claim call, which costs one index seek (default 0)",
    ),
    (
        "MCP_HUB_EPHEMERAL_CLAIM_REAP_AFTER_MS",
        "claims of offline ephemeral agents released after; <=0 disables (default max(60000, 2x ephemeral offline))",
    ),
    (
        "MCP_HUB_DONE_TASK_TTL_MS",
        "done tasks nothing depends on are archived after; <=0 disables (default 604800000)",
    ),
    (
        "MCP_HUB_ARCHIVE_BATCH_LIMIT",
        "tasks archived per maintenance pass, 1-1000 (default 200)",
    ),
    (
        "MCP_HUB_MAINTENANCE_INTERVAL_MS",
        "maintenance pass period, min 1000 (default 30000)",
    ),
    (
        "MCP_HUB_IDEMPOTENCY_TTL_MS",
        "idempotency record retention; <=0 keeps forever (default 600000)",
    ),
    (
        "MCP_HUB_AGENT_OFFLINE_AFTER_MS",
        "persistent agent marked offline after (default 1800000)",
    ),
    (
        "MCP_HUB_EPHEMERAL_OFFLINE_AFTER_MS",
        "ephemeral agent marked offline after (default 300000)",
    ),
    (
        "MCP_HUB_AGENT_RETENTION_MS",
        "offline persistent agent deleted after (default 604800000)",
    ),
    (
        "MCP_HUB_EPHEMERAL_AGENT_RETENTION_MS",
        "offline ephemeral agent deleted after (default 7200000)",
    ),
    (
        "MCP_HUB_MESSAGE_TTL_MS",
        "messages deleted after (default 86400000)",
    ),
    (
        "MCP_HUB_ACTIVITY_LOG_TTL_MS",
        "activity rows deleted after (default 86400000)",
    ),
    (
        "MCP_HUB_AUTH_EVENTS_TTL_MS",
        "auth events deleted after (default 604800000)",
    ),
    (
        "MCP_HUB_MAX_PROTOCOL_BLOB_CHARS",
        "stored protocol blob cap, after compression (default 32768)",
    ),
    (
        "MCP_HUB_LOSSLESS_AUTO_MIN_PAYLOAD_CHARS",
        "lossless_auto compresses payloads of at least this many chars (default 1024)",
    ),
    (
        "MCP_HUB_LOSSLESS_AUTO_MIN_GAIN_PCT",
        "lossless_auto keeps the zstd envelope only when it saves this %, 0-100 (default 3)",
    ),
    (
        "MCP_HUB_AUTO_PACK_MIN_PAYLOAD_CHARS",
        "pack_protocol_message auto: dictionary only from this payload size (default 2048)",
    ),
    (
        "MCP_HUB_AUTO_PACK_MIN_GAIN_PCT",
        "pack_protocol_message auto: dictionary only when it saves this %, 0-100 (default 3)",
    ),
    (
        "MCP_HUB_PROTOCOL_BLOB_TTL_MS",
        "unreferenced protocol blobs deleted after; <=0 keeps forever (default 604800000)",
    ),
    (
        "MCP_HUB_MAX_CONSENSUS_VOTES",
        "most votes one consensus call evaluates, >=1 (default 1000)",
    ),
    (
        "MCP_HUB_CONSENSUS_QUALITY_WEIGHTING",
        "off disables quality-weighted consensus votes by default; anything else = on",
    ),
    (
        "MCP_HUB_NAMESPACE_QUOTA_MODE",
        "off | warn | enforce (default off)",
    ),
    (
        "MCP_HUB_NAMESPACE_QUOTA_RPS",
        "per-namespace refill per second (default 0 = off)",
    ),
    (
        "MCP_HUB_NAMESPACE_TOKEN_BUDGET_PER_MIN",
        "per-namespace token budget (default 0 = off)",
    ),
    (
        "MCP_HUB_EVENT_STREAM_INTERVAL_MS",
        "/events default interval, 250-10000 (default 1000)",
    ),
    (
        "MCP_HUB_EVENT_STREAM_HEARTBEAT_MS",
        "/events heartbeat, 2000-60000 (default 15000)",
    ),
];

struct Reader<'a> {
    env: &'a EnvLayers,
    errors: Vec<ConfigError>,
}

impl Reader<'_> {
    fn fail(&mut self, variable: &str, problem: String) {
        self.errors.push(ConfigError {
            variable: variable.to_string(),
            problem,
        });
    }

    fn number(&mut self, name: &str) -> Option<f64> {
        let raw = self.env.get(name)?;
        match raw.parse::<f64>() {
            Ok(value) if value.is_finite() => Some(value),
            _ => {
                self.fail(name, format!("{raw:?} is not a number"));
                None
            }
        }
    }

    /// An integer setting, floored and clamped to `[min, max]`.
    fn int(&mut self, name: &str, default: i64, min: i64, max: i64) -> i64 {
        self.number(name)
            .map(|value| (value.floor() as i64).clamp(min, max))
            .unwrap_or(default)
    }

    fn float(&mut self, name: &str, default: f64, min: f64, max: f64) -> f64 {
        self.number(name)
            .map(|value| value.clamp(min, max))
            .unwrap_or(default)
    }

    /// A retention/TTL: `<= 0` disables it (`None`).
    fn ttl(&mut self, name: &str, default: i64) -> Option<i64> {
        let value = self
            .number(name)
            .map(|v| v.floor() as i64)
            .unwrap_or(default);
        (value > 0).then_some(value)
    }

    fn choice<T: Copy>(&mut self, name: &str, default: T, allowed: &[(&str, T)]) -> T {
        let Some(raw) = self.env.get(name) else {
            return default;
        };
        let lowered = raw.to_ascii_lowercase();
        if let Some((_, value)) = allowed.iter().find(|(label, _)| *label == lowered) {
            return *value;
        }
        let names: Vec<&str> = allowed.iter().map(|(label, _)| *label).collect();
        self.fail(name, format!("{raw:?} is not one of {}", names.join(", ")));
        default
    }

    /// An interface address; wildcards only where `allow_wildcard` (an explicit
    /// `MCP_HUB_HOST=0.0.0.0`, e.g. inside a container, never the extra listeners).
    fn address(&mut self, name: &str, raw: &str, allow_wildcard: bool) -> Option<IpAddr> {
        let trimmed = raw.trim().trim_start_matches('[').trim_end_matches(']');
        match trimmed.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() && !allow_wildcard => {
                self.fail(
                    name,
                    format!("{raw:?} is a wildcard; explicit interface addresses are required"),
                );
                None
            }
            Ok(ip) => Some(ip),
            Err(_) => {
                self.fail(name, format!("{raw:?} is not an IP address"));
                None
            }
        }
    }
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Expands a leading `~/`.
fn expand_home(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => home_dir().join(rest),
        None if path == "~" => home_dir(),
        None => PathBuf::from(path),
    }
}

impl Config {
    /// Reads and validates every variable; all problems are reported together.
    pub fn from_env(env: &EnvLayers) -> Result<Config, Vec<ConfigError>> {
        let mut r = Reader {
            env,
            errors: Vec::new(),
        };

        let host = match env.get("MCP_HUB_HOST") {
            Some(raw) => r
                .address("MCP_HUB_HOST", raw, true)
                .unwrap_or(IpAddr::from([127, 0, 0, 1])),
            None => IpAddr::from([127, 0, 0, 1]),
        };
        let port = match r.number("MCP_HUB_PORT") {
            Some(value) if (1.0..=65535.0).contains(&value) && value.fract() == 0.0 => value as u16,
            Some(value) => {
                r.fail("MCP_HUB_PORT", format!("{value} is not a port (1-65535)"));
                3000
            }
            None => 3000,
        };

        let mut extra_raw: Vec<(String, &str)> = Vec::new();
        let plural = env.get("MCP_HUB_EXTRA_BIND_HOSTS");
        let list = plural.or_else(|| env.get("MCP_HUB_EXTRA_BIND_HOST"));
        let list_name = if plural.is_some() {
            "MCP_HUB_EXTRA_BIND_HOSTS"
        } else {
            "MCP_HUB_EXTRA_BIND_HOST"
        };
        if let Some(list) = list {
            extra_raw.extend(list.split(',').map(|item| (item.to_string(), list_name)));
        }
        if let Some(single) = env.get("MCP_HUB_BIND_HOST") {
            extra_raw.push((single.to_string(), "MCP_HUB_BIND_HOST"));
        }
        let mut extra_bind_hosts = Vec::new();
        for (raw, name) in extra_raw {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            if let Some(ip) = r.address(name, raw, false)
                && ip != host
                && !extra_bind_hosts.contains(&ip)
            {
                extra_bind_hosts.push(ip);
            }
        }

        let data_dir = env
            .get("MCP_HUB_DATA")
            .map(expand_home)
            .unwrap_or_else(|| home_dir().join(".mcp-hub"));
        let db_path = env
            .get("MCP_HUB_DB")
            .map(expand_home)
            .unwrap_or_else(|| data_dir.join("hub.db"));
        let artifacts_dir = env
            .get("MCP_HUB_ARTIFACTS_DIR")
            .map(expand_home)
            .unwrap_or_else(|| {
                db_path
                    .parent()
                    .map(|p| p.join("artifacts"))
                    .unwrap_or_else(|| data_dir.join("artifacts"))
            });
        let db_sync = r.choice(
            "MCP_HUB_DB_SYNC",
            SyncMode::Full,
            &[("full", SyncMode::Full), ("normal", SyncMode::Normal)],
        );
        let public_base_url = env
            .get("MCP_HUB_PUBLIC_BASE_URL")
            .map(|url| url.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("http://localhost:{port}"));

        let idle_ms = r
            .number("MCP_HUB_SESSION_IDLE_TIMEOUT_MS")
            .map(|v| v.floor() as i64)
            .unwrap_or(21_600_000);
        let session_idle_timeout =
            (idle_ms > 0).then(|| Duration::from_millis(idle_ms.clamp(60_000, 604_800_000) as u64));
        let session_gc_interval =
            Duration::from_millis(
                r.int("MCP_HUB_SESSION_GC_INTERVAL_MS", 60_000, 1_000, 1_800_000) as u64,
            );
        let session_max = r.int("MCP_HUB_SESSION_MAX", 10_000, 1, 1_000_000) as usize;
        let unknown_session_policy = r.choice(
            "MCP_HUB_UNKNOWN_SESSION_POLICY",
            UnknownSessionPolicy::Error,
            &[
                ("error", UnknownSessionPolicy::Error),
                (
                    "stateless_fallback",
                    UnknownSessionPolicy::StatelessFallback,
                ),
            ],
        );

        let require_auth = env
            .get("MCP_HUB_REQUIRE_AUTH")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let derived_auth = if require_auth {
            AuthMode::Enforce
        } else {
            AuthMode::Observe
        };
        let auth_mode = r.choice(
            "MCP_HUB_AUTH_MODE",
            derived_auth,
            &[
                ("observe", AuthMode::Observe),
                ("warn", AuthMode::Warn),
                ("enforce", AuthMode::Enforce),
            ],
        );
        let admin_token_sha256 = env
            .get("MCP_HUB_ADMIN_TOKEN")
            .map(|token| <sha2::Sha256 as sha2::Digest>::digest(token.trim().as_bytes()).into());
        let mut privileged_agents = BTreeMap::new();
        for entry in env
            .get("MCP_HUB_PRIVILEGED_AGENTS")
            .unwrap_or("")
            .split(',')
        {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            match entry
                .split_once(':')
                .map(|(id, role)| (id.trim(), role.trim()))
            {
                Some((id, role))
                    if !id.is_empty()
                        && ["orchestrator", "reviewer", "assistant", "worker"].contains(&role) =>
                {
                    privileged_agents.insert(id.to_string(), role.to_string());
                }
                _ => r.fail(
                    "MCP_HUB_PRIVILEGED_AGENTS",
                    format!(
                        "{entry:?} is not agent_id:role (orchestrator|reviewer|assistant|worker)"
                    ),
                ),
            }
        }
        let rate_limit_rps = r.float("MCP_HUB_RATE_LIMIT_RPS", 30.0, f64::MIN, f64::MAX);
        let rate_limit_burst = r.float("MCP_HUB_RATE_LIMIT_BURST", 60.0, f64::MIN, f64::MAX);
        let namespace_quota_mode = r
            .choice(
                "MCP_HUB_NAMESPACE_QUOTA_MODE",
                "off",
                &[("off", "off"), ("warn", "warn"), ("enforce", "enforce")],
            )
            .to_string();
        let namespace_quota_rps = r.float("MCP_HUB_NAMESPACE_QUOTA_RPS", 0.0, 0.0, f64::MAX);
        let namespace_token_budget_per_min =
            r.float("MCP_HUB_NAMESPACE_TOKEN_BUDGET_PER_MIN", 0.0, 0.0, f64::MAX);

        let event_stream_interval_ms = r.int("MCP_HUB_EVENT_STREAM_INTERVAL_MS", 1000, 250, 10_000);
        let event_stream_heartbeat_ms =
            r.int("MCP_HUB_EVENT_STREAM_HEARTBEAT_MS", 15_000, 2_000, 60_000);
        let event_stream_max_per_agent =
            r.int("MCP_HUB_EVENT_STREAM_MAX_PER_AGENT", 4, 1, 1_000) as usize;
        let event_stream_max_total =
            r.int("MCP_HUB_EVENT_STREAM_MAX_TOTAL", 1_000, 1, 100_000) as usize;

        let wait_max_ms = r.int("MCP_HUB_WAIT_MAX_MS", 25_000, 1_000, 300_000);
        let wait = WaitConfig {
            max_ms: wait_max_ms,
            default_ms: r.int("MCP_HUB_WAIT_DEFAULT_MS", 10_000, 100, wait_max_ms),
            retry_factor: r.float("MCP_HUB_WAIT_RETRY_FACTOR", 1.5, 1.0, 3.0),
            retry_cap_ms: r.int("MCP_HUB_WAIT_RETRY_CAP_MS", 10_000, 100, 120_000),
            retry_jitter: r.float("MCP_HUB_WAIT_RETRY_JITTER_PCT", 0.2, 0.0, 0.8),
            default_response_mode: r.choice(
                "MCP_HUB_WAIT_DEFAULT_RESPONSE_MODE",
                WaitResponseMode::Compact,
                &[
                    ("nano", WaitResponseMode::Nano),
                    ("micro", WaitResponseMode::Micro),
                    ("tiny", WaitResponseMode::Tiny),
                    ("compact", WaitResponseMode::Compact),
                    ("full", WaitResponseMode::Full),
                ],
            ),
            minimal_timeout_response: r.choice(
                "MCP_HUB_WAIT_DEFAULT_TIMEOUT_RESPONSE",
                false,
                &[("default", false), ("minimal", true)],
            ),
            log_hits: env
                .get("MCP_HUB_WAIT_LOG_HITS")
                .is_none_or(|v| !v.eq_ignore_ascii_case("false")),
            log_timeouts: env
                .get("MCP_HUB_WAIT_LOG_TIMEOUTS")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        };

        let onboarding = [
            ("full", OnboardingMode::Full),
            ("compact", OnboardingMode::Compact),
            ("none", OnboardingMode::None),
        ];
        let default_onboarding_mode = r.choice(
            "MCP_HUB_DEFAULT_ONBOARDING_MODE",
            OnboardingMode::Full,
            &onboarding,
        );
        let ephemeral_default_onboarding_mode = r.choice(
            "MCP_HUB_EPHEMERAL_DEFAULT_ONBOARDING_MODE",
            OnboardingMode::Compact,
            &onboarding,
        );
        let reregister_onboarding_mode = r.choice(
            "MCP_HUB_REREGISTER_ONBOARDING_MODE",
            OnboardingMode::None,
            &onboarding,
        );

        let max_message_content_chars =
            r.int("MCP_HUB_MAX_MESSAGE_CONTENT_CHARS", 1024, 1, 100_000_000) as usize;
        let max_message_metadata_chars =
            r.int("MCP_HUB_MAX_MESSAGE_METADATA_CHARS", 1024, 1, 100_000_000) as usize;
        let max_context_value_chars =
            r.int("MCP_HUB_MAX_CONTEXT_VALUE_CHARS", 2048, 1, 100_000_000) as usize;
        let disallow_full_in_polling = env.get("MCP_HUB_DISALLOW_FULL_IN_POLLING") != Some("0");
        let done_evidence_min_refs = r.int("MCP_HUB_DONE_EVIDENCE_MIN_REFS", 1, 0, 1_000);
        let strict_done_evidence_min_refs = r.int(
            "MCP_HUB_STRICT_DONE_EVIDENCE_MIN_REFS",
            done_evidence_min_refs.max(2),
            done_evidence_min_refs,
            1_000.max(done_evidence_min_refs),
        );
        let strict_done_confidence_min =
            r.float("MCP_HUB_STRICT_DONE_CONFIDENCE_MIN", 0.95, 0.75, 1.0);
        let max_evidence_refs_per_call =
            r.int("MCP_HUB_MAX_EVIDENCE_REFS_PER_CALL", 16, 1, 10_000) as usize;
        let max_evidence_ref_chars =
            r.int("MCP_HUB_MAX_EVIDENCE_REF_CHARS", 256, 8, 100_000) as usize;
        let consistency_default_strict = env
            .get("MCP_HUB_CONSISTENCY_DEFAULT")
            .is_some_and(|v| v.eq_ignore_ascii_case("strict"));
        let namespace_governance =
            NamespaceGovernance::parse_lenient(env.get("MCP_HUB_NAMESPACE_GOVERNANCE"));
        let claim_cleanup_throttle_ms =
            r.int("MCP_HUB_CLAIM_CLEANUP_THROTTLE_MS", 0, 0, 86_400_000);

        let maintenance_interval = Duration::from_millis(r.int(
            "MCP_HUB_MAINTENANCE_INTERVAL_MS",
            30_000,
            1_000,
            86_400_000,
        ) as u64);
        let idempotency_ttl_ms = r.ttl("MCP_HUB_IDEMPOTENCY_TTL_MS", 600_000);
        let agent_offline_after_ms = r.ttl("MCP_HUB_AGENT_OFFLINE_AFTER_MS", 1_800_000);
        let ephemeral_offline_after_ms = r
            .ttl("MCP_HUB_EPHEMERAL_OFFLINE_AFTER_MS", 300_000)
            .map(|v| v.max(1_000));
        let agent_retention_ms = r.ttl("MCP_HUB_AGENT_RETENTION_MS", 604_800_000);
        let ephemeral_agent_retention_ms = r
            .ttl("MCP_HUB_EPHEMERAL_AGENT_RETENTION_MS", 7_200_000)
            .map(|v| v.max(60_000));
        let message_ttl_ms = r.ttl("MCP_HUB_MESSAGE_TTL_MS", 86_400_000);
        let activity_log_ttl_ms = r.ttl("MCP_HUB_ACTIVITY_LOG_TTL_MS", 86_400_000);
        let auth_events_ttl_ms = r.ttl("MCP_HUB_AUTH_EVENTS_TTL_MS", 604_800_000);
        let artifact_ttl_ms = r.int("MCP_HUB_ARTIFACT_TTL_MS", 604_800_000, 1, i64::MAX);
        let ephemeral_claim_reap_after_ms = r
            .ttl(
                "MCP_HUB_EPHEMERAL_CLAIM_REAP_AFTER_MS",
                60_000.max(2 * ephemeral_offline_after_ms.unwrap_or(300_000)),
            )
            .map(|v| v.max(1_000));
        let done_task_ttl_ms = r.ttl("MCP_HUB_DONE_TASK_TTL_MS", 604_800_000);
        let archive_batch_limit = r.int("MCP_HUB_ARCHIVE_BATCH_LIMIT", 200, 1, 1_000);

        let max_protocol_blob_chars =
            r.int("MCP_HUB_MAX_PROTOCOL_BLOB_CHARS", 32_768, 1, 100_000_000) as usize;
        let lossless_auto_min_payload_chars =
            r.int("MCP_HUB_LOSSLESS_AUTO_MIN_PAYLOAD_CHARS", 1024, 0, i64::MAX) as usize;
        let lossless_auto_min_gain_pct =
            r.float("MCP_HUB_LOSSLESS_AUTO_MIN_GAIN_PCT", 3.0, 0.0, 100.0);
        let auto_pack_min_payload_chars =
            r.int("MCP_HUB_AUTO_PACK_MIN_PAYLOAD_CHARS", 2048, 0, i64::MAX) as usize;
        let auto_pack_min_gain_pct = r.float("MCP_HUB_AUTO_PACK_MIN_GAIN_PCT", 3.0, 0.0, 100.0);
        let protocol_blob_ttl_ms = r.ttl("MCP_HUB_PROTOCOL_BLOB_TTL_MS", 604_800_000);
        let max_consensus_votes = r.int("MCP_HUB_MAX_CONSENSUS_VOTES", 1000, 1, 1_000_000) as usize;
        let consensus_quality_weighting = !env
            .get("MCP_HUB_CONSENSUS_QUALITY_WEIGHTING")
            .is_some_and(|v| v.eq_ignore_ascii_case("off"));

        if !r.errors.is_empty() {
            return Err(r.errors);
        }
        Ok(Config {
            host,
            port,
            extra_bind_hosts,
            data_dir,
            db_path,
            artifacts_dir,
            db_sync,
            public_base_url,
            session_idle_timeout,
            session_gc_interval,
            session_max,
            unknown_session_policy,
            auth_mode,
            admin_token_sha256,
            privileged_agents,
            rate_limit_rps,
            rate_limit_burst,
            namespace_quota_mode,
            namespace_quota_rps,
            namespace_token_budget_per_min,
            event_stream_interval_ms,
            event_stream_heartbeat_ms,
            event_stream_max_per_agent,
            event_stream_max_total,
            wait,
            default_onboarding_mode,
            ephemeral_default_onboarding_mode,
            reregister_onboarding_mode,
            max_message_content_chars,
            max_message_metadata_chars,
            max_context_value_chars,
            disallow_full_in_polling,
            done_evidence_min_refs,
            strict_done_evidence_min_refs,
            strict_done_confidence_min,
            max_evidence_refs_per_call,
            max_evidence_ref_chars,
            consistency_default_strict,
            namespace_governance,
            claim_cleanup_throttle_ms,
            maintenance_interval,
            idempotency_ttl_ms,
            agent_offline_after_ms,
            ephemeral_offline_after_ms,
            agent_retention_ms,
            ephemeral_agent_retention_ms,
            message_ttl_ms,
            activity_log_ttl_ms,
            auth_events_ttl_ms,
            artifact_ttl_ms,
            ephemeral_claim_reap_after_ms,
            done_task_ttl_ms,
            archive_batch_limit,
            max_protocol_blob_chars,
            lossless_auto_min_payload_chars,
            lossless_auto_min_gain_pct,
            auto_pack_min_payload_chars,
            auto_pack_min_gain_pct,
            protocol_blob_ttl_ms,
            max_consensus_votes,
            consensus_quality_weighting,
        })
    }

    /// [`Config::from_env`] with every problem formatted as one line per variable.
    pub fn load(env: &EnvLayers) -> Result<Config, String> {
        Config::from_env(env).map_err(|errors| {
            errors
                .iter()
                .map(|e| format!("invalid configuration: {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    /// A configuration for tests and embedding: defaults, with the given data directory.
    pub fn for_data_dir(data_dir: &Path) -> Config {
        let mut env = EnvLayers::default();
        env.vars.insert(
            "MCP_HUB_DATA".into(),
            data_dir.to_string_lossy().into_owned(),
        );
        Config::from_env(&env).expect("defaults are valid")
    }

    /// Every address the hub listens on, primary first.
    pub fn bind_addresses(&self) -> Vec<IpAddr> {
        std::iter::once(self.host)
            .chain(self.extra_bind_hosts.iter().copied())
            .collect()
    }

    pub fn session_idle_timeout_ms(&self) -> u64 {
        self.session_idle_timeout
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> EnvLayers {
        EnvLayers {
            vars: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            loaded_files: vec![],
        }
    }

    #[test]
    fn defaults_are_loopback_3000_under_the_data_dir() {
        let config = Config::from_env(&env(&[("MCP_HUB_DATA", "/tmp/x")])).unwrap();
        assert_eq!(config.host.to_string(), "127.0.0.1");
        assert_eq!(config.port, 3000);
        assert_eq!(config.db_path, PathBuf::from("/tmp/x/hub.db"));
        assert_eq!(config.artifacts_dir, PathBuf::from("/tmp/x/artifacts"));
        assert_eq!(config.db_sync, SyncMode::Full);
        assert_eq!(config.auth_mode, AuthMode::Observe);
    }

    #[test]
    fn bad_values_name_the_variable_and_the_allowed_values() {
        let errors = Config::from_env(&env(&[
            ("MCP_HUB_PORT", "abc"),
            ("MCP_HUB_AUTH_MODE", "enforse"),
            ("MCP_HUB_EXTRA_BIND_HOSTS", "0.0.0.0"),
        ]))
        .unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(text.iter().any(|e| e.starts_with("MCP_HUB_PORT")));
        assert!(
            text.iter()
                .any(|e| e.starts_with("MCP_HUB_AUTH_MODE") && e.contains("observe, warn, enforce"))
        );
        assert!(text.iter().any(|e| e.contains("wildcard")));
    }

    #[test]
    fn empty_values_are_unset_and_ttls_at_zero_disable() {
        let config = Config::from_env(&env(&[
            ("MCP_HUB_DONE_EVIDENCE_MIN_REFS", ""),
            ("MCP_HUB_SESSION_IDLE_TIMEOUT_MS", "0"),
            ("MCP_HUB_MESSAGE_TTL_MS", "-1"),
        ]))
        .unwrap();
        assert_eq!(config.done_evidence_min_refs, 1);
        assert_eq!(config.session_idle_timeout, None);
        assert_eq!(config.message_ttl_ms, None);
    }

    #[test]
    fn task_board_settings_default_clamp_and_validate() {
        let config = Config::from_env(&env(&[])).unwrap();
        assert_eq!(config.strict_done_evidence_min_refs, 2);
        assert_eq!(config.strict_done_confidence_min, 0.95);
        assert_eq!(config.max_evidence_refs_per_call, 16);
        assert_eq!(config.max_evidence_ref_chars, 256);
        assert!(!config.consistency_default_strict);
        assert_eq!(config.namespace_governance, NamespaceGovernance::Warn);
        assert_eq!(config.claim_cleanup_throttle_ms, 0);
        assert_eq!(config.ephemeral_claim_reap_after_ms, Some(600_000));
        assert_eq!(config.done_task_ttl_ms, Some(604_800_000));
        assert_eq!(config.archive_batch_limit, 200);
        let config = Config::from_env(&env(&[
            ("MCP_HUB_DONE_EVIDENCE_MIN_REFS", "3"),
            ("MCP_HUB_STRICT_DONE_EVIDENCE_MIN_REFS", "1"),
            ("MCP_HUB_STRICT_DONE_CONFIDENCE_MIN", "0.5"),
            ("MCP_HUB_MAX_EVIDENCE_REFS_PER_CALL", "0"),
            ("MCP_HUB_MAX_EVIDENCE_REF_CHARS", "2"),
            ("MCP_HUB_CONSISTENCY_DEFAULT", "STRICT"),
            ("MCP_HUB_NAMESPACE_GOVERNANCE", "Require"),
            ("MCP_HUB_EPHEMERAL_OFFLINE_AFTER_MS", "10000"),
            ("MCP_HUB_DONE_TASK_TTL_MS", "0"),
            ("MCP_HUB_ARCHIVE_BATCH_LIMIT", "5000"),
        ]))
        .unwrap();
        assert_eq!(
            config.strict_done_evidence_min_refs, 3,
            "at least the cheap minimum"
        );
        assert_eq!(config.strict_done_confidence_min, 0.75);
        assert_eq!(config.max_evidence_refs_per_call, 1);
        assert_eq!(config.max_evidence_ref_chars, 8);
        assert!(config.consistency_default_strict);
        assert_eq!(config.namespace_governance, NamespaceGovernance::Require);
        assert_eq!(config.ephemeral_claim_reap_after_ms, Some(60_000));
        assert_eq!(config.done_task_ttl_ms, None);
        assert_eq!(config.archive_batch_limit, 1_000);
        let unknown =
            Config::from_env(&env(&[("MCP_HUB_NAMESPACE_GOVERNANCE", "strictest")])).unwrap();
        assert_eq!(unknown.namespace_governance, NamespaceGovernance::Warn);
    }

    #[test]
    fn env_files_are_parsed_not_executed_and_layered() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.env");
        let local = dir.path().join("local.env");
        std::fs::write(
            &base,
            "# profile\nMCP_HUB_PORT=4000\nexport MCP_HUB_AUTH_MODE=\"warn\"\nMCP_HUB_DB_SYNC=$(touch /tmp/pwned)\n",
        )
        .unwrap();
        std::fs::write(&local, "MCP_HUB_PORT=4001 # overlay\n").unwrap();
        let process = vec![
            ("MCP_HUB_ENV_FILE".to_string(), base.display().to_string()),
            (
                "MCP_HUB_LOCAL_ENV_FILE".to_string(),
                local.display().to_string(),
            ),
            ("MCP_HUB_AUTH_MODE".to_string(), "enforce".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let layers = EnvLayers::resolve(process, None, None).unwrap();
        assert_eq!(layers.get("MCP_HUB_PORT"), Some("4001"));
        assert_eq!(layers.get("MCP_HUB_AUTH_MODE"), Some("enforce"));
        assert_eq!(layers.get("MCP_HUB_DB_SYNC"), Some("$(touch /tmp/pwned)"));
        assert!(layers.get("PATH").is_none());
        assert_eq!(layers.loaded_files.len(), 2);
        // The unexecuted command substitution is just an invalid value.
        assert!(Config::from_env(&layers).is_err());
    }

    #[test]
    fn a_missing_explicit_env_file_is_an_error() {
        let process = vec![(
            "MCP_HUB_ENV_FILE".to_string(),
            "/nonexistent/hub.env".to_string(),
        )];
        let error = EnvLayers::resolve(process, None, None).unwrap_err();
        assert!(error.contains("Environment file not found"));
    }
}
