//! The one table of `MCP_HUB_*` variables: for each, its name, the default shown in help,
//! a one-line doc and how its value is parsed and validated into [`Config`]. Parsing,
//! `hub-server --help` and the unknown-variable warning all read [`VARIABLES`], so a variable
//! cannot be read without being documented.
//!
//! Entries are applied in table order, each exactly once, set or not: an entry whose default
//! depends on another variable (`MCP_HUB_DB` on `MCP_HUB_DATA`, `MCP_HUB_AUTH_MODE` on
//! `MCP_HUB_REQUIRE_AUTH`, …) comes after it and reads the field that one already set.

use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::field::{Field, home_dir};
use super::{
    AuthMode, Config, NamespaceGovernance, OnboardingMode, QuotaMode, UnknownSessionPolicy,
    WaitResponseMode,
};
use crate::store::SyncMode;

/// One `MCP_HUB_*` variable.
pub struct Variable {
    pub name: &'static str,
    /// The default as shown in help; empty when unset simply means "none" (nothing shown).
    pub default: &'static str,
    /// One line: what it does, its allowed values or range.
    pub doc: &'static str,
    /// Reads the variable (unset when empty) into `Config`, default included.
    pub(super) apply: fn(&mut Field<'_>, &mut Config),
}

const fn var(
    name: &'static str,
    default: &'static str,
    doc: &'static str,
    apply: fn(&mut Field<'_>, &mut Config),
) -> Variable {
    Variable {
        name,
        default,
        doc,
        apply,
    }
}

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn millis(ms: i64) -> Duration {
    Duration::from_millis(ms as u64)
}

/// Every `MCP_HUB_*` variable, grouped by topic, in application order.
pub const VARIABLES: &[Variable] = &[
    // Network and storage.
    var(
        "MCP_HUB_HOST",
        "127.0.0.1",
        "primary listen address (0.0.0.0 only inside containers)",
        |f, c| {
            c.host = match f.raw() {
                Some(raw) => f.address(raw, true).unwrap_or(LOOPBACK),
                None => LOOPBACK,
            }
        },
    ),
    var("MCP_HUB_PORT", "3000", "listen port, 1-65535", |f, c| {
        c.port = match f.number() {
            Some(value) if (1.0..=65535.0).contains(&value) && value.fract() == 0.0 => value as u16,
            Some(value) => {
                f.fail(format!("{value} is not a port (1-65535)"));
                3000
            }
            None => 3000,
        }
    }),
    var(
        "MCP_HUB_EXTRA_BIND_HOSTS",
        "",
        "comma-separated extra interface addresses to listen on (no wildcards)",
        |f, c| {
            if let Some(list) = f.raw() {
                f.extra_hosts(list, c);
            }
        },
    ),
    var(
        "MCP_HUB_EXTRA_BIND_HOST",
        "",
        "older name of MCP_HUB_EXTRA_BIND_HOSTS, read only when that is unset",
        |f, c| {
            if let Some(list) = f.raw()
                && f.env.get("MCP_HUB_EXTRA_BIND_HOSTS").is_none()
            {
                f.extra_hosts(list, c);
            }
        },
    ),
    var(
        "MCP_HUB_BIND_HOST",
        "",
        "one more extra interface address to listen on (no wildcards)",
        |f, c| {
            if let Some(single) = f.raw() {
                f.extra_hosts(single, c);
            }
        },
    ),
    var(
        "MCP_HUB_DATA",
        "~/.mcp-hub",
        "data directory, created on start",
        |f, c| c.data_dir = f.path().unwrap_or_else(|| home_dir().join(".mcp-hub")),
    ),
    var(
        "MCP_HUB_DB",
        "$MCP_HUB_DATA/hub.db",
        "SQLite file",
        |f, c| c.db_path = f.path().unwrap_or_else(|| c.data_dir.join("hub.db")),
    ),
    var(
        "MCP_HUB_DB_URL",
        "",
        "postgres://user:pass@host/db selects PostgreSQL (N hub replicas may share it); empty: the SQLite file",
        |f, c| {
            c.db_url = f
                .raw()
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(String::from);
            if let Some(url) = &c.db_url
                && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
            {
                f.fail("must start with postgres:// or postgresql://".into());
            }
        },
    ),
    var(
        "MCP_HUB_ARTIFACTS_DIR",
        "<dir of MCP_HUB_DB>/artifacts",
        "artifact byte store",
        |f, c| {
            c.artifacts_dir = f.path().unwrap_or_else(|| {
                c.db_path
                    .parent()
                    .map(|p| p.join("artifacts"))
                    .unwrap_or_else(|| c.data_dir.join("artifacts"))
            })
        },
    ),
    // Read by `pg_cluster` (tests, `hubctl bench`), not the hub; listed so setting it draws
    // no unknown-variable warning and `--help` documents it.
    var(
        "MCP_HUB_PG_BIN",
        "",
        "PostgreSQL bin dir (initdb, pg_ctl) for the throwaway clusters of tests and hubctl bench; unused by the hub",
        |_, _| {},
    ),
    var(
        "MCP_HUB_DB_SYNC",
        "full",
        "full | normal: commit durability (full survives power loss, normal a crash)",
        |f, c| {
            c.db_sync = f.choice(
                SyncMode::Full,
                &[("full", SyncMode::Full), ("normal", SyncMode::Normal)],
            )
        },
    ),
    var(
        "MCP_HUB_PUBLIC_BASE_URL",
        "http://localhost:<port>",
        "URL prefix for artifact tickets",
        |f, c| {
            c.public_base_url = f
                .raw()
                .map(|url| url.trim_end_matches('/').to_string())
                .unwrap_or_else(|| format!("http://localhost:{}", c.port))
        },
    ),
    // Profiles and hubctl (read by EnvLayers::resolve and hubctl, not into Config).
    var(
        "MCP_HUB_ENV_FILE",
        "",
        "base env profile (KEY=VALUE lines; parsed, never executed); /dev/null for none",
        |_, _| {},
    ),
    var(
        "MCP_HUB_LOCAL_ENV_FILE",
        "",
        "local env overlay applied over the base profile; /dev/null for none",
        |_, _| {},
    ),
    var(
        "MCP_HUB_CONTAINER",
        "mcp-hub",
        "hubctl: instance name shown by status (the container name with --docker)",
        |_, _| {},
    ),
    var(
        "MCP_HUB_IMAGE",
        "mcp-agent-hub",
        "hubctl --docker: image name",
        |_, _| {},
    ),
    // Sessions.
    var(
        "MCP_HUB_SESSION_IDLE_TIMEOUT_MS",
        "21600000",
        "idle MCP session eviction, clamped to 60000-604800000; <=0 disables",
        |f, c| {
            let idle_ms = f.number().map(|v| v.floor() as i64).unwrap_or(21_600_000);
            c.session_idle_timeout =
                (idle_ms > 0).then(|| millis(idle_ms.clamp(60_000, 604_800_000)))
        },
    ),
    var(
        "MCP_HUB_SESSION_GC_INTERVAL_MS",
        "60000",
        "session eviction sweep period, 1000-1800000",
        |f, c| c.session_gc_interval = millis(f.int(60_000, 1_000, 1_800_000)),
    ),
    var(
        "MCP_HUB_SESSION_MAX",
        "10000",
        "hard cap on live MCP sessions, oldest idle evicted, 1-1000000",
        |f, c| c.session_max = f.int(10_000, 1, 1_000_000) as usize,
    ),
    var(
        "MCP_HUB_HTTP_HEADER_READ_TIMEOUT_MS",
        "10000",
        "time a client has to send a request's headers once it starts one, 100-300000",
        |f, c| c.http_header_read_timeout = millis(f.int(10_000, 100, 300_000)),
    ),
    var(
        "MCP_HUB_HTTP_IDLE_TIMEOUT_MS",
        "75000",
        "keep-alive connection with no request in flight closed after, 100-3600000 (SSE and waits exempt)",
        |f, c| c.http_idle_timeout = millis(f.int(75_000, 100, 3_600_000)),
    ),
    var(
        "MCP_HUB_HTTP_MAX_CONNECTIONS",
        "4096",
        "open connections; past it the oldest idle is closed, else 503 (also bounded by the open-file limit), 8-1000000",
        |f, c| c.http_max_connections = f.int(4096, 8, 1_000_000) as usize,
    ),
    var(
        "MCP_HUB_UNKNOWN_SESSION_POLICY",
        "error",
        "error | stateless_fallback: requests naming an unknown MCP session",
        |f, c| {
            c.unknown_session_policy =
                f.choice(UnknownSessionPolicy::Error, UnknownSessionPolicy::CHOICES)
        },
    ),
    // Auth and admission.
    var(
        "MCP_HUB_REQUIRE_AUTH",
        "false",
        "true: the default auth mode becomes enforce",
        |f, c| {
            c.auth_mode = if f.is("true") {
                AuthMode::Enforce
            } else {
                AuthMode::Observe
            }
        },
    ),
    var(
        "MCP_HUB_AUTH_MODE",
        "observe",
        "observe | warn | enforce (enforce when MCP_HUB_REQUIRE_AUTH=true)",
        |f, c| c.auth_mode = f.choice(c.auth_mode, AuthMode::CHOICES),
    ),
    var(
        "MCP_HUB_ADMIN_TOKEN",
        "",
        "operator secret; an agent that presents it to register_agent as admin_token gets the role it asks for (stored hashed)",
        |f, c| c.admin_token_sha256 = f.raw().map(|token| Sha256::digest(token.as_bytes()).into()),
    ),
    var(
        "MCP_HUB_PRIVILEGED_AGENTS",
        "",
        "operator allowlist of granted roles, id:role,… (roles: orchestrator, reviewer, assistant, worker)",
        |f, c| c.privileged_agents = f.privileged_agents(),
    ),
    var(
        "MCP_HUB_RATE_LIMIT_RPS",
        "30",
        "per-agent refill per second; <=0 disables",
        |f, c| c.rate_limit_rps = f.float(30.0, f64::MIN, f64::MAX),
    ),
    var(
        "MCP_HUB_RATE_LIMIT_BURST",
        "60",
        "per-agent bucket capacity; <=0 disables",
        |f, c| c.rate_limit_burst = f.float(60.0, f64::MIN, f64::MAX),
    ),
    var(
        "MCP_HUB_NAMESPACE_QUOTA_MODE",
        "off",
        "off | warn | enforce: per-namespace quotas",
        |f, c| {
            c.namespace_quota_mode = f.choice(
                QuotaMode::Off,
                &[
                    ("off", QuotaMode::Off),
                    ("warn", QuotaMode::Warn),
                    ("enforce", QuotaMode::Enforce),
                ],
            )
        },
    ),
    var(
        "MCP_HUB_NAMESPACE_QUOTA_RPS",
        "0",
        "per-namespace refill per second; the bucket needs RPS and BURST > 0",
        |f, c| c.namespace_quota_rps = f.float(0.0, 0.0, f64::MAX),
    ),
    var(
        "MCP_HUB_NAMESPACE_QUOTA_BURST",
        "0",
        "per-namespace bucket capacity; the bucket needs RPS and BURST > 0",
        |f, c| c.namespace_quota_burst = f.float(0.0, 0.0, f64::MAX),
    ),
    var(
        "MCP_HUB_NAMESPACE_TOKEN_BUDGET_PER_MIN",
        "0",
        "estimated tokens (argument JSON chars / 4) per namespace per fixed minute; 0 = off",
        |f, c| c.namespace_token_budget_per_min = f.float(0.0, 0.0, f64::MAX),
    ),
    var(
        "MCP_HUB_NAMESPACE_QUOTA_FALLBACK",
        "default",
        "namespace charged when a call names none",
        |f, c| {
            c.namespace_quota_fallback = f
                .raw()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .unwrap_or("default")
                .to_string()
        },
    ),
    var(
        "MCP_HUB_NAMESPACE_GOVERNANCE",
        "warn",
        "off | warn | require: swarm-looking task calls without a namespace (other values = warn)",
        |f, c| c.namespace_governance = NamespaceGovernance::parse_lenient(f.raw()),
    ),
    // Event stream (/events).
    var(
        "MCP_HUB_EVENT_STREAM_INTERVAL_MS",
        "1000",
        "/events default poll interval, 250-10000",
        |f, c| c.event_stream_interval_ms = f.int(1000, 250, 10_000),
    ),
    var(
        "MCP_HUB_EVENT_STREAM_HEARTBEAT_MS",
        "15000",
        "/events heartbeat after this much silence, 2000-60000",
        |f, c| c.event_stream_heartbeat_ms = f.int(15_000, 2_000, 60_000),
    ),
    var(
        "MCP_HUB_EVENT_STREAM_MAX_PER_AGENT",
        "4",
        "concurrent /events streams per agent, 1-1000 (503 beyond)",
        |f, c| c.event_stream_max_per_agent = f.int(4, 1, 1_000) as usize,
    ),
    var(
        "MCP_HUB_EVENT_STREAM_MAX_TOTAL",
        "1000",
        "concurrent /events streams in total, 1-100000 (503 beyond)",
        |f, c| c.event_stream_max_total = f.int(1_000, 1, 100_000) as usize,
    ),
    // Long-poll (wait_for_updates).
    var(
        "MCP_HUB_WAIT_MAX_MS",
        "25000",
        "upper bound on wait_ms, 1000-300000",
        |f, c| c.wait.max_ms = f.int(25_000, 1_000, 300_000),
    ),
    var(
        "MCP_HUB_WAIT_DEFAULT_MS",
        "10000",
        "wait_ms when a call omits it, 100-MCP_HUB_WAIT_MAX_MS",
        |f, c| c.wait.default_ms = f.int(10_000, 100, c.wait.max_ms),
    ),
    var(
        "MCP_HUB_WAIT_RETRY_FACTOR",
        "1.5",
        "retry hint multiplier per consecutive timeout, 1-3",
        |f, c| c.wait.retry_factor = f.float(1.5, 1.0, 3.0),
    ),
    var(
        "MCP_HUB_WAIT_RETRY_CAP_MS",
        "10000",
        "largest suggested retry_after_ms, 100-120000",
        |f, c| c.wait.retry_cap_ms = f.int(10_000, 100, 120_000),
    ),
    var(
        "MCP_HUB_WAIT_RETRY_JITTER_PCT",
        "0.2",
        "± jitter on the retry hint, as a fraction 0-0.8",
        |f, c| c.wait.retry_jitter = f.float(0.2, 0.0, 0.8),
    ),
    var(
        "MCP_HUB_WAIT_DEFAULT_RESPONSE_MODE",
        "compact",
        "nano | micro | tiny | compact | full: wait_for_updates mode when a call omits it",
        |f, c| {
            c.wait.default_response_mode =
                f.choice(WaitResponseMode::Compact, WaitResponseMode::CHOICES)
        },
    ),
    var(
        "MCP_HUB_WAIT_DEFAULT_TIMEOUT_RESPONSE",
        "default",
        "default | minimal: timeout payload shape when a call omits it",
        |f, c| {
            c.wait.minimal_timeout_response =
                f.choice(false, &[("default", false), ("minimal", true)])
        },
    ),
    var(
        "MCP_HUB_WAIT_LOG_HITS",
        "true",
        "log activity on wake-ups; only false disables",
        |f, c| c.wait.log_hits = !f.is("false"),
    ),
    var(
        "MCP_HUB_WAIT_LOG_TIMEOUTS",
        "false",
        "log activity on timeouts; only true enables",
        |f, c| c.wait.log_timeouts = f.is("true"),
    ),
    // Onboarding.
    var(
        "MCP_HUB_DEFAULT_ONBOARDING_MODE",
        "full",
        "full | compact | none for new persistent agents",
        |f, c| c.default_onboarding_mode = f.choice(OnboardingMode::Full, OnboardingMode::CHOICES),
    ),
    var(
        "MCP_HUB_EPHEMERAL_DEFAULT_ONBOARDING_MODE",
        "compact",
        "full | compact | none for new ephemeral agents",
        |f, c| {
            c.ephemeral_default_onboarding_mode =
                f.choice(OnboardingMode::Compact, OnboardingMode::CHOICES)
        },
    ),
    var(
        "MCP_HUB_REREGISTER_ONBOARDING_MODE",
        "none",
        "full | compact | none for re-registrations",
        |f, c| {
            c.reregister_onboarding_mode = f.choice(OnboardingMode::None, OnboardingMode::CHOICES)
        },
    ),
    // Payload caps and compression.
    var(
        "MCP_HUB_MAX_MESSAGE_CONTENT_CHARS",
        "1024",
        "stored message content cap",
        |f, c| c.max_message_content_chars = f.int(1024, 1, 100_000_000) as usize,
    ),
    var(
        "MCP_HUB_MAX_MESSAGE_METADATA_CHARS",
        "1024",
        "message metadata cap",
        |f, c| c.max_message_metadata_chars = f.int(1024, 1, 100_000_000) as usize,
    ),
    var(
        "MCP_HUB_MAX_CONTEXT_VALUE_CHARS",
        "2048",
        "context value cap",
        |f, c| c.max_context_value_chars = f.int(2048, 1, 100_000_000) as usize,
    ),
    var(
        "MCP_HUB_DISALLOW_FULL_IN_POLLING",
        "1",
        "0 allows response_mode=full in polling reads; anything else refuses it",
        |f, c| c.disallow_full_in_polling = f.raw() != Some("0"),
    ),
    var(
        "MCP_HUB_MAX_PROTOCOL_BLOB_CHARS",
        "32768",
        "stored protocol blob cap, after compression",
        |f, c| c.max_protocol_blob_chars = f.int(32_768, 1, 100_000_000) as usize,
    ),
    var(
        "MCP_HUB_LOSSLESS_AUTO_MIN_PAYLOAD_CHARS",
        "1024",
        "lossless_auto compresses payloads of at least this many chars",
        |f, c| c.lossless_auto_min_payload_chars = f.int(1024, 0, i64::MAX) as usize,
    ),
    var(
        "MCP_HUB_LOSSLESS_AUTO_MIN_GAIN_PCT",
        "3",
        "lossless_auto keeps the zstd envelope only when it saves this %, 0-100",
        |f, c| c.lossless_auto_min_gain_pct = f.float(3.0, 0.0, 100.0),
    ),
    var(
        "MCP_HUB_AUTO_PACK_MIN_PAYLOAD_CHARS",
        "2048",
        "pack_protocol_message auto: dictionary only from this payload size",
        |f, c| c.auto_pack_min_payload_chars = f.int(2048, 0, i64::MAX) as usize,
    ),
    var(
        "MCP_HUB_AUTO_PACK_MIN_GAIN_PCT",
        "3",
        "pack_protocol_message auto: dictionary only when it saves this %, 0-100",
        |f, c| c.auto_pack_min_gain_pct = f.float(3.0, 0.0, 100.0),
    ),
    // Done gate and task policy.
    var(
        "MCP_HUB_DONE_EVIDENCE_MIN_REFS",
        "1",
        "evidence refs required to mark a task done, 0-1000",
        |f, c| c.done_evidence_min_refs = f.int(1, 0, 1_000),
    ),
    var(
        "MCP_HUB_STRICT_DONE_EVIDENCE_MIN_REFS",
        "max(2, MCP_HUB_DONE_EVIDENCE_MIN_REFS)",
        "evidence refs required for a strict done, at least MCP_HUB_DONE_EVIDENCE_MIN_REFS",
        |f, c| {
            let cheap = c.done_evidence_min_refs;
            c.strict_done_evidence_min_refs = f.int(cheap.max(2), cheap, 1_000.max(cheap))
        },
    ),
    var(
        "MCP_HUB_STRICT_DONE_CONFIDENCE_MIN",
        "0.95",
        "confidence floor of a strict done, 0.75-1",
        |f, c| c.strict_done_confidence_min = f.float(0.95, 0.75, 1.0),
    ),
    var(
        "MCP_HUB_MAX_EVIDENCE_REFS_PER_CALL",
        "16",
        "evidence refs accepted per call, min 1",
        |f, c| c.max_evidence_refs_per_call = f.int(16, 1, 10_000) as usize,
    ),
    var(
        "MCP_HUB_MAX_EVIDENCE_REF_CHARS",
        "256",
        "each evidence ref is cut to this many characters, min 8",
        |f, c| c.max_evidence_ref_chars = f.int(256, 8, 100_000) as usize,
    ),
    var(
        "MCP_HUB_CONSISTENCY_DEFAULT",
        "cheap",
        "strict | cheap: done-gate mode of new non-critical tasks (other values = cheap)",
        |f, c| c.consistency_default_strict = f.is("strict"),
    ),
    var(
        "MCP_HUB_CLAIM_CLEANUP_THROTTLE_MS",
        "0",
        "min gap between opportunistic expired-claim sweeps; 0 = every claim call (one index seek)",
        |f, c| c.claim_cleanup_throttle_ms = f.int(0, 0, 86_400_000),
    ),
    // Consensus.
    var(
        "MCP_HUB_MAX_CONSENSUS_VOTES",
        "1000",
        "most votes one consensus call evaluates, >=1",
        |f, c| c.max_consensus_votes = f.int(1000, 1, 1_000_000) as usize,
    ),
    var(
        "MCP_HUB_CONSENSUS_QUALITY_WEIGHTING",
        "on",
        "off disables quality-weighted consensus votes by default; anything else = on",
        |f, c| c.consensus_quality_weighting = !f.is("off"),
    ),
    // Maintenance and retention (for TTLs, <=0 disables that cleanup).
    var(
        "MCP_HUB_MAINTENANCE_INTERVAL_MS",
        "30000",
        "maintenance pass period, min 1000",
        |f, c| c.maintenance_interval = millis(f.int(30_000, 1_000, 86_400_000)),
    ),
    var(
        "MCP_HUB_IDEMPOTENCY_TTL_MS",
        "600000",
        "idempotency record retention; <=0 keeps forever",
        |f, c| c.idempotency_ttl_ms = f.ttl(600_000),
    ),
    var(
        "MCP_HUB_AGENT_OFFLINE_AFTER_MS",
        "1800000",
        "persistent agent marked offline after this inactivity",
        |f, c| c.agent_offline_after_ms = f.ttl(1_800_000),
    ),
    var(
        "MCP_HUB_EPHEMERAL_OFFLINE_AFTER_MS",
        "300000",
        "ephemeral agent marked offline after this inactivity, min 1000",
        |f, c| c.ephemeral_offline_after_ms = f.ttl(300_000).map(|v| v.max(1_000)),
    ),
    var(
        "MCP_HUB_AGENT_RETENTION_MS",
        "604800000",
        "offline persistent agent deleted after",
        |f, c| c.agent_retention_ms = f.ttl(604_800_000),
    ),
    var(
        "MCP_HUB_EPHEMERAL_AGENT_RETENTION_MS",
        "7200000",
        "offline ephemeral agent deleted after, min 60000",
        |f, c| c.ephemeral_agent_retention_ms = f.ttl(7_200_000).map(|v| v.max(60_000)),
    ),
    var(
        "MCP_HUB_EPHEMERAL_CLAIM_REAP_AFTER_MS",
        "max(60000, 2x MCP_HUB_EPHEMERAL_OFFLINE_AFTER_MS)",
        "claims of offline ephemeral agents released after, min 1000",
        |f, c| {
            let offline = c.ephemeral_offline_after_ms.unwrap_or(300_000);
            c.ephemeral_claim_reap_after_ms = f.ttl(60_000.max(2 * offline)).map(|v| v.max(1_000))
        },
    ),
    var(
        "MCP_HUB_MESSAGE_TTL_MS",
        "86400000",
        "messages deleted after",
        |f, c| c.message_ttl_ms = f.ttl(86_400_000),
    ),
    var(
        "MCP_HUB_ACTIVITY_LOG_TTL_MS",
        "86400000",
        "activity rows deleted after",
        |f, c| c.activity_log_ttl_ms = f.ttl(86_400_000),
    ),
    var(
        "MCP_HUB_AUTH_EVENTS_TTL_MS",
        "604800000",
        "auth events deleted after",
        |f, c| c.auth_events_ttl_ms = f.ttl(604_800_000),
    ),
    var(
        "MCP_HUB_ARTIFACT_TTL_MS",
        "604800000",
        "expiry of artifacts without an explicit one; <=0 never (also caps retention_sec)",
        |f, c| c.artifact_ttl_ms = f.ttl(604_800_000),
    ),
    // Artifact side channel (tools-more §3).
    var(
        "MCP_HUB_ARTIFACT_MAX_BYTES",
        "52428800",
        "largest artifact upload in bytes, >=1024 (413 while streaming above it)",
        |f, c| c.artifact.max_bytes = f.int(52_428_800, 1024, i64::MAX),
    ),
    var(
        "MCP_HUB_ARTIFACT_TICKET_TTL_SEC",
        "300",
        "ticket TTL when the kind's own default is unset, >=30",
        |f, c| c.artifact.ticket_ttl_sec = f.int(300, 30, 86_400),
    ),
    var(
        "MCP_HUB_ARTIFACT_UPLOAD_TTL_SEC",
        "$MCP_HUB_ARTIFACT_TICKET_TTL_SEC",
        "default upload ticket TTL, 30-86400",
        |f, c| c.artifact.upload_ttl_sec = f.int(c.artifact.ticket_ttl_sec, 30, 86_400),
    ),
    var(
        "MCP_HUB_ARTIFACT_DOWNLOAD_TTL_SEC",
        "180",
        "default download ticket TTL, 30-86400",
        |f, c| c.artifact.download_ttl_sec = f.int(180, 30, 86_400),
    ),
    var(
        "MCP_HUB_ARTIFACT_RETENTION_SEC",
        "86400",
        "default artifact retention, >=60 (rows and files removed by maintenance)",
        |f, c| c.artifact.retention_sec = f.int(86_400, 60, i64::MAX / 1000),
    ),
    var(
        "MCP_HUB_MAX_ARTIFACT_NAME_CHARS",
        "180",
        "artifact names are cut to this, >=16",
        |f, c| c.artifact.max_name_chars = f.int(180, 16, 100_000) as usize,
    ),
    var(
        "MCP_HUB_MAX_ARTIFACT_SUMMARY_CHARS",
        "400",
        "artifact summaries are cut to this, >=32",
        |f, c| c.artifact.max_summary_chars = f.int(400, 32, 100_000) as usize,
    ),
    var(
        "MCP_HUB_PROTOCOL_BLOB_TTL_MS",
        "604800000",
        "unreferenced protocol blobs deleted after",
        |f, c| c.protocol_blob_ttl_ms = f.ttl(604_800_000),
    ),
    var(
        "MCP_HUB_DONE_TASK_TTL_MS",
        "604800000",
        "done tasks nothing depends on are archived after",
        |f, c| c.done_task_ttl_ms = f.ttl(604_800_000),
    ),
    var(
        "MCP_HUB_ARCHIVE_BATCH_LIMIT",
        "200",
        "tasks archived per maintenance pass, 1-1000",
        |f, c| c.archive_batch_limit = f.int(200, 1, 1_000),
    ),
    var(
        "MCP_HUB_RESOLVED_SLO_TTL_MS",
        "1209600000",
        "resolved SLO alerts deleted after",
        |f, c| c.resolved_slo_ttl_ms = f.ttl(1_209_600_000),
    ),
    var(
        "MCP_HUB_METRICS",
        "on",
        "off disables GET /metrics and its counters; anything else = on",
        |f, c| c.metrics_enabled = !f.is("off"),
    ),
    // SLO thresholds (evaluated by every maintenance pass and evaluate_slo_alerts).
    var(
        "MCP_HUB_SLO_PENDING_AGE_MS",
        "1800000",
        "alert high_pending_age when the oldest pending task is this old, min 1000",
        |f, c| c.slo.pending_age_ms = f.int(1_800_000, 1_000, i64::MAX),
    ),
    var(
        "MCP_HUB_SLO_STALE_IN_PROGRESS_MS",
        "1200000",
        "alert stale_in_progress on unclaimed in-progress tasks not updated this long, min 1000",
        |f, c| c.slo.stale_in_progress_ms = f.int(1_200_000, 1_000, i64::MAX),
    ),
    var(
        "MCP_HUB_SLO_CLAIM_CHURN_WINDOW_MS",
        "600000",
        "claim_churn window, 60000-86400000 (whole minutes)",
        |f, c| c.slo.claim_churn_window_ms = f.int(600_000, 60_000, 86_400_000),
    ),
    var(
        "MCP_HUB_SLO_CLAIM_CHURN_THRESHOLD",
        "120",
        "claim/renew/release/poll events in the window that open claim_churn, min 1",
        |f, c| c.slo.claim_churn_threshold = f.int(120, 1, i64::MAX),
    ),
];
