//! Hub configuration: the validated [`Config`], its enums, loading and the `--help` text.
//! Every `MCP_HUB_*` variable is one entry of [`VARIABLES`] (`table.rs`: name, default, doc,
//! parser), which drives parsing, defaults, `hub-server --help` and the unknown-variable
//! warning (`unknown.rs`); `field.rs` holds the shared value readers, `env_file.rs` env files
//! and layering.
//!
//! An empty value counts as unset. A value that does not parse, or is outside an enum's
//! allowed values, is an error naming the variable; all such errors are reported together.

mod env_file;
mod field;
mod table;
#[cfg(test)]
mod tests;
mod unknown;

pub use env_file::{EnvLayers, parse_env_file};
pub use field::PRIVILEGED_ROLES;
pub use table::{VARIABLES, Variable};
pub use unknown::unknown_variable_warnings;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::SyncMode;

/// What to do with a request that names an unknown MCP session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownSessionPolicy {
    Error,
    StatelessFallback,
}

impl UnknownSessionPolicy {
    /// Accepted spellings of `MCP_HUB_UNKNOWN_SESSION_POLICY`.
    pub(crate) const CHOICES: &[(&str, UnknownSessionPolicy)] = &[
        ("error", UnknownSessionPolicy::Error),
        (
            "stateless_fallback",
            UnknownSessionPolicy::StatelessFallback,
        ),
    ];

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
    /// Accepted spellings of `MCP_HUB_AUTH_MODE`.
    pub(crate) const CHOICES: &[(&str, AuthMode)] = &[
        ("observe", AuthMode::Observe),
        ("warn", AuthMode::Warn),
        ("enforce", AuthMode::Enforce),
    ];

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
    /// Accepted spellings of the `MCP_HUB_*_ONBOARDING_MODE` variables.
    pub(crate) const CHOICES: &[(&str, OnboardingMode)] = &[
        ("full", OnboardingMode::Full),
        ("compact", OnboardingMode::Compact),
        ("none", OnboardingMode::None),
    ];

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

/// Namespace quotas (spec tools-more §5.2): off, warn (the call proceeds with a warning) or
/// enforce (refused with NAMESPACE_QUOTA_EXCEEDED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaMode {
    Off,
    Warn,
    Enforce,
}

impl QuotaMode {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaMode::Off => "off",
            QuotaMode::Warn => "warn",
            QuotaMode::Enforce => "enforce",
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

impl WaitResponseMode {
    /// Accepted spellings of `MCP_HUB_WAIT_DEFAULT_RESPONSE_MODE`.
    pub(crate) const CHOICES: &[(&str, WaitResponseMode)] = &[
        ("nano", WaitResponseMode::Nano),
        ("micro", WaitResponseMode::Micro),
        ("tiny", WaitResponseMode::Tiny),
        ("compact", WaitResponseMode::Compact),
        ("full", WaitResponseMode::Full),
    ];
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

/// Limits of the artifact side channel (tools-more §3.2-3.3); the per-call values of the
/// artifact tools clamp into these.
#[derive(Debug, Clone, Default)]
pub struct ArtifactLimits {
    /// Server-wide upload cap in bytes; per-ticket caps clamp to it.
    pub max_bytes: i64,
    /// Ticket TTL when neither the call nor the kind's own default gives one (D28).
    pub ticket_ttl_sec: i64,
    pub upload_ttl_sec: i64,
    pub download_ttl_sec: i64,
    /// Default retention of an artifact.
    pub retention_sec: i64,
    pub max_name_chars: usize,
    pub max_summary_chars: usize,
}

/// The validated hub configuration. `Debug` is written by hand so the admin token digest
/// never reaches a log.
#[derive(Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub extra_bind_hosts: Vec<IpAddr>,
    pub data_dir: PathBuf,
    pub db_path: PathBuf,
    /// `MCP_HUB_DB_URL`: PostgreSQL instead of the SQLite file at `db_path`.
    pub db_url: Option<String>,
    pub artifacts_dir: PathBuf,
    pub db_sync: SyncMode,
    pub public_base_url: String,

    pub session_idle_timeout: Option<Duration>,
    pub session_gc_interval: Duration,
    pub session_max: usize,
    pub unknown_session_policy: UnknownSessionPolicy,

    /// A connection waiting for a request must deliver its header block within this.
    pub http_header_read_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this.
    pub http_idle_timeout: Duration,
    /// Open connections beyond this: the oldest idle one is closed, else 503.
    pub http_max_connections: usize,

    pub auth_mode: AuthMode,
    /// SHA-256 of `MCP_HUB_ADMIN_TOKEN`; the token itself is never kept.
    pub admin_token_sha256: Option<[u8; 32]>,
    /// `MCP_HUB_PRIVILEGED_AGENTS`: agent id → role name (one of [`PRIVILEGED_ROLES`]).
    pub privileged_agents: BTreeMap<String, String>,
    pub rate_limit_rps: f64,
    pub rate_limit_burst: f64,
    pub namespace_quota_mode: QuotaMode,
    pub namespace_quota_rps: f64,
    pub namespace_quota_burst: f64,
    pub namespace_token_budget_per_min: f64,
    /// The namespace charged when a call names none (never blank).
    pub namespace_quota_fallback: String,

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
    /// `MCP_HUB_ARTIFACT_TTL_MS`: expiry of artifacts without their own; `None` = never (D13).
    pub artifact_ttl_ms: Option<i64>,
    /// Artifact ticket and size limits (`MCP_HUB_ARTIFACT_*`, tools-more §3).
    pub artifact: ArtifactLimits,
    pub ephemeral_claim_reap_after_ms: Option<i64>,
    pub done_task_ttl_ms: Option<i64>,
    pub archive_batch_limit: i64,
    pub resolved_slo_ttl_ms: Option<i64>,
    /// `GET /metrics` and the counters behind it (`MCP_HUB_METRICS`).
    pub metrics_enabled: bool,
    pub slo: crate::domain::observability::SloThresholds,

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

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured so a new field cannot be left out by accident.
        let Config {
            host,
            port,
            extra_bind_hosts,
            data_dir,
            db_path,
            db_url,
            artifacts_dir,
            db_sync,
            public_base_url,
            session_idle_timeout,
            session_gc_interval,
            session_max,
            unknown_session_policy,
            http_header_read_timeout,
            http_idle_timeout,
            http_max_connections,
            auth_mode,
            admin_token_sha256,
            privileged_agents,
            rate_limit_rps,
            rate_limit_burst,
            namespace_quota_mode,
            namespace_quota_rps,
            namespace_quota_burst,
            namespace_token_budget_per_min,
            namespace_quota_fallback,
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
            artifact,
            ephemeral_claim_reap_after_ms,
            done_task_ttl_ms,
            archive_batch_limit,
            resolved_slo_ttl_ms,
            metrics_enabled,
            slo,
            max_protocol_blob_chars,
            lossless_auto_min_payload_chars,
            lossless_auto_min_gain_pct,
            auto_pack_min_payload_chars,
            auto_pack_min_gain_pct,
            protocol_blob_ttl_ms,
            max_consensus_votes,
            consensus_quality_weighting,
        } = self;
        f.debug_struct("Config")
            .field("host", host)
            .field("port", port)
            .field("extra_bind_hosts", extra_bind_hosts)
            .field("data_dir", data_dir)
            .field("db_path", db_path)
            .field("db_url", &db_url.as_deref().map(redact_url))
            .field("artifacts_dir", artifacts_dir)
            .field("db_sync", db_sync)
            .field("public_base_url", public_base_url)
            .field("session_idle_timeout", session_idle_timeout)
            .field("session_gc_interval", session_gc_interval)
            .field("session_max", session_max)
            .field("unknown_session_policy", unknown_session_policy)
            .field("http_header_read_timeout", http_header_read_timeout)
            .field("http_idle_timeout", http_idle_timeout)
            .field("http_max_connections", http_max_connections)
            .field("auth_mode", auth_mode)
            .field("rate_limit_rps", rate_limit_rps)
            .field("rate_limit_burst", rate_limit_burst)
            .field("namespace_quota_mode", namespace_quota_mode)
            .field("namespace_quota_rps", namespace_quota_rps)
            .field("namespace_quota_burst", namespace_quota_burst)
            .field("namespace_quota_fallback", namespace_quota_fallback)
            .field(
                "namespace_token_budget_per_min",
                namespace_token_budget_per_min,
            )
            .field("event_stream_interval_ms", event_stream_interval_ms)
            .field("event_stream_heartbeat_ms", event_stream_heartbeat_ms)
            .field("event_stream_max_per_agent", event_stream_max_per_agent)
            .field("event_stream_max_total", event_stream_max_total)
            .field("wait", wait)
            .field("default_onboarding_mode", default_onboarding_mode)
            .field(
                "ephemeral_default_onboarding_mode",
                ephemeral_default_onboarding_mode,
            )
            .field("reregister_onboarding_mode", reregister_onboarding_mode)
            .field("max_message_content_chars", max_message_content_chars)
            .field("max_message_metadata_chars", max_message_metadata_chars)
            .field("max_context_value_chars", max_context_value_chars)
            .field("disallow_full_in_polling", disallow_full_in_polling)
            .field("done_evidence_min_refs", done_evidence_min_refs)
            .field(
                "strict_done_evidence_min_refs",
                strict_done_evidence_min_refs,
            )
            .field("strict_done_confidence_min", strict_done_confidence_min)
            .field("max_evidence_refs_per_call", max_evidence_refs_per_call)
            .field("max_evidence_ref_chars", max_evidence_ref_chars)
            .field("consistency_default_strict", consistency_default_strict)
            .field("namespace_governance", namespace_governance)
            .field("claim_cleanup_throttle_ms", claim_cleanup_throttle_ms)
            .field("maintenance_interval", maintenance_interval)
            .field("idempotency_ttl_ms", idempotency_ttl_ms)
            .field("agent_offline_after_ms", agent_offline_after_ms)
            .field("ephemeral_offline_after_ms", ephemeral_offline_after_ms)
            .field("agent_retention_ms", agent_retention_ms)
            .field("ephemeral_agent_retention_ms", ephemeral_agent_retention_ms)
            .field("message_ttl_ms", message_ttl_ms)
            .field("activity_log_ttl_ms", activity_log_ttl_ms)
            .field("auth_events_ttl_ms", auth_events_ttl_ms)
            .field("artifact_ttl_ms", artifact_ttl_ms)
            .field("artifact", artifact)
            .field(
                "ephemeral_claim_reap_after_ms",
                ephemeral_claim_reap_after_ms,
            )
            .field("done_task_ttl_ms", done_task_ttl_ms)
            .field("archive_batch_limit", archive_batch_limit)
            .field("resolved_slo_ttl_ms", resolved_slo_ttl_ms)
            .field("metrics_enabled", metrics_enabled)
            .field("slo", slo)
            .field("max_protocol_blob_chars", max_protocol_blob_chars)
            .field(
                "lossless_auto_min_payload_chars",
                lossless_auto_min_payload_chars,
            )
            .field("lossless_auto_min_gain_pct", lossless_auto_min_gain_pct)
            .field("auto_pack_min_payload_chars", auto_pack_min_payload_chars)
            .field("auto_pack_min_gain_pct", auto_pack_min_gain_pct)
            .field("protocol_blob_ttl_ms", protocol_blob_ttl_ms)
            .field("max_consensus_votes", max_consensus_votes)
            .field("consensus_quality_weighting", consensus_quality_weighting)
            .field(
                "admin_token_sha256",
                &admin_token_sha256.map(|_| "<redacted>"),
            )
            .field("privileged_agents", privileged_agents)
            .finish()
    }
}

impl Config {
    /// Placeholder values, each overwritten by its table entry in [`Config::from_env`].
    fn unset() -> Config {
        Config {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            extra_bind_hosts: Vec::new(),
            data_dir: PathBuf::new(),
            db_path: PathBuf::new(),
            db_url: None,
            artifacts_dir: PathBuf::new(),
            db_sync: SyncMode::Full,
            public_base_url: String::new(),
            session_idle_timeout: None,
            session_gc_interval: Duration::ZERO,
            session_max: 0,
            unknown_session_policy: UnknownSessionPolicy::Error,
            http_header_read_timeout: Duration::ZERO,
            http_idle_timeout: Duration::ZERO,
            http_max_connections: 0,
            auth_mode: AuthMode::Observe,
            admin_token_sha256: None,
            privileged_agents: BTreeMap::new(),
            rate_limit_rps: 0.0,
            rate_limit_burst: 0.0,
            namespace_quota_mode: QuotaMode::Off,
            namespace_quota_rps: 0.0,
            namespace_quota_burst: 0.0,
            namespace_token_budget_per_min: 0.0,
            namespace_quota_fallback: String::new(),
            event_stream_interval_ms: 0,
            event_stream_heartbeat_ms: 0,
            event_stream_max_per_agent: 0,
            event_stream_max_total: 0,
            wait: WaitConfig {
                max_ms: 0,
                default_ms: 0,
                retry_factor: 0.0,
                retry_cap_ms: 0,
                retry_jitter: 0.0,
                default_response_mode: WaitResponseMode::Compact,
                minimal_timeout_response: false,
                log_hits: false,
                log_timeouts: false,
            },
            default_onboarding_mode: OnboardingMode::Full,
            ephemeral_default_onboarding_mode: OnboardingMode::Full,
            reregister_onboarding_mode: OnboardingMode::Full,
            max_message_content_chars: 0,
            max_message_metadata_chars: 0,
            max_context_value_chars: 0,
            disallow_full_in_polling: false,
            done_evidence_min_refs: 0,
            strict_done_evidence_min_refs: 0,
            strict_done_confidence_min: 0.0,
            max_evidence_refs_per_call: 0,
            max_evidence_ref_chars: 0,
            consistency_default_strict: false,
            namespace_governance: NamespaceGovernance::Warn,
            claim_cleanup_throttle_ms: 0,
            maintenance_interval: Duration::ZERO,
            idempotency_ttl_ms: None,
            agent_offline_after_ms: None,
            ephemeral_offline_after_ms: None,
            agent_retention_ms: None,
            ephemeral_agent_retention_ms: None,
            message_ttl_ms: None,
            activity_log_ttl_ms: None,
            auth_events_ttl_ms: None,
            artifact_ttl_ms: None,
            artifact: ArtifactLimits::default(),
            ephemeral_claim_reap_after_ms: None,
            done_task_ttl_ms: None,
            archive_batch_limit: 0,
            resolved_slo_ttl_ms: None,
            metrics_enabled: true,
            slo: crate::domain::observability::SloThresholds {
                pending_age_ms: 0,
                stale_in_progress_ms: 0,
                claim_churn_window_ms: 0,
                claim_churn_threshold: 0,
            },
            max_protocol_blob_chars: 0,
            lossless_auto_min_payload_chars: 0,
            lossless_auto_min_gain_pct: 0.0,
            auto_pack_min_payload_chars: 0,
            auto_pack_min_gain_pct: 0.0,
            protocol_blob_ttl_ms: None,
            max_consensus_votes: 0,
            consensus_quality_weighting: false,
        }
    }

    /// Applies every entry of [`VARIABLES`] in order; all problems are reported together.
    pub fn from_env(env: &EnvLayers) -> Result<Config, Vec<ConfigError>> {
        let mut config = Config::unset();
        let mut errors = Vec::new();
        for variable in VARIABLES {
            let mut field = field::Field {
                name: variable.name,
                env,
                errors: &mut errors,
            };
            (variable.apply)(&mut field, &mut config);
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }

    /// [`Config::from_env`] with every problem formatted as one line per variable, plus one
    /// warning per `MCP_HUB_*` variable in `env` that is not in the table (for the caller
    /// to print).
    pub fn load(env: &EnvLayers) -> Result<(Config, Vec<String>), String> {
        let config = Config::from_env(env).map_err(|errors| {
            errors
                .iter()
                .map(|e| format!("invalid configuration: {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        Ok((config, unknown_variable_warnings(env)))
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

/// The table entry named `name`.
pub fn variable(name: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|v| v.name == name)
}

/// The `--help` text for every variable: name, doc and default.
pub fn help_text() -> String {
    let mut text = String::new();
    for variable in VARIABLES {
        text.push_str(&format!("  {:<44} {}", variable.name, variable.doc));
        if !variable.default.is_empty() {
            text.push_str(&format!(" (default {})", variable.default));
        }
        text.push('\n');
    }
    text
}

/// A database URL with its password replaced, for logs and `Debug`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}
