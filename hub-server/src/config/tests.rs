//! Tests of the config table, loading, env files and the unknown-variable warning.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use sha2::Digest;

use super::*;
use crate::store::SyncMode;

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
    let unknown = Config::from_env(&env(&[("MCP_HUB_NAMESPACE_GOVERNANCE", "strictest")])).unwrap();
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

fn errors_of(pairs: &[(&str, &str)]) -> Vec<String> {
    Config::from_env(&env(pairs))
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn every_variable_has_a_doc_appears_in_help_and_is_listed_once() {
    let help = help_text();
    let mut seen = std::collections::BTreeSet::new();
    for variable in VARIABLES {
        assert!(variable.name.starts_with("MCP_HUB_"), "{}", variable.name);
        assert!(
            !variable.doc.trim().is_empty(),
            "{} has no doc",
            variable.name
        );
        assert!(
            !variable.doc.contains('\n'),
            "{}: one line of doc",
            variable.name
        );
        assert!(seen.insert(variable.name), "{} listed twice", variable.name);
        let line = help
            .lines()
            .find(|line| line.split_whitespace().next() == Some(variable.name))
            .unwrap_or_else(|| panic!("{} missing from help", variable.name));
        assert!(line.contains(variable.doc));
        if !variable.default.is_empty() {
            assert!(line.contains(&format!("(default {})", variable.default)));
        }
    }
}

/// The default shown in help is the one parsing uses: setting a variable to its shown
/// default changes nothing. Defaults that describe a computation are skipped.
#[test]
fn the_shown_default_is_the_parsed_default() {
    let base = format!("{:?}", Config::from_env(&env(&[])).unwrap());
    for variable in VARIABLES {
        let computed = variable.default.contains([' ', '$', '<', '(']);
        if variable.default.is_empty() || computed {
            continue;
        }
        let set = Config::from_env(&env(&[(variable.name, variable.default)]))
            .unwrap_or_else(|e| panic!("{}: {e:?}", variable.name));
        assert_eq!(format!("{set:?}"), base, "{}", variable.name);
    }
}

#[test]
fn every_config_field_has_its_documented_default() {
    let c = Config::from_env(&env(&[("MCP_HUB_DATA", "/d")])).unwrap();
    assert_eq!(c.host, IpAddr::from([127, 0, 0, 1]));
    assert_eq!(c.port, 3000);
    assert!(c.extra_bind_hosts.is_empty());
    assert_eq!(c.data_dir, PathBuf::from("/d"));
    assert_eq!(c.db_path, PathBuf::from("/d/hub.db"));
    assert_eq!(c.artifacts_dir, PathBuf::from("/d/artifacts"));
    assert_eq!(c.db_sync, SyncMode::Full);
    assert_eq!(c.public_base_url, "http://localhost:3000");
    assert_eq!(
        c.session_idle_timeout,
        Some(Duration::from_millis(21_600_000))
    );
    assert_eq!(c.session_gc_interval, Duration::from_millis(60_000));
    assert_eq!(c.session_max, 10_000);
    assert_eq!(c.unknown_session_policy, UnknownSessionPolicy::Error);
    assert_eq!(c.auth_mode, AuthMode::Observe);
    assert_eq!(c.admin_token_sha256, None);
    assert!(c.privileged_agents.is_empty());
    assert_eq!((c.rate_limit_rps, c.rate_limit_burst), (30.0, 60.0));
    assert_eq!(c.namespace_quota_mode, QuotaMode::Off);
    assert_eq!(c.namespace_quota_fallback, "default");
    assert_eq!(c.slo.claim_churn_threshold, 120);
    assert_eq!(c.resolved_slo_ttl_ms, Some(1_209_600_000));
    assert_eq!(c.namespace_quota_rps, 0.0);
    assert_eq!(c.namespace_token_budget_per_min, 0.0);
    assert_eq!(c.event_stream_interval_ms, 1000);
    assert_eq!(c.event_stream_heartbeat_ms, 15_000);
    assert_eq!(c.event_stream_max_per_agent, 4);
    assert_eq!(c.event_stream_max_total, 1000);
    assert_eq!((c.wait.max_ms, c.wait.default_ms), (25_000, 10_000));
    assert_eq!((c.wait.retry_factor, c.wait.retry_cap_ms), (1.5, 10_000));
    assert_eq!(c.wait.retry_jitter, 0.2);
    assert_eq!(c.wait.default_response_mode, WaitResponseMode::Compact);
    assert!(!c.wait.minimal_timeout_response);
    assert!(c.wait.log_hits);
    assert!(!c.wait.log_timeouts);
    assert_eq!(c.default_onboarding_mode, OnboardingMode::Full);
    assert_eq!(c.ephemeral_default_onboarding_mode, OnboardingMode::Compact);
    assert_eq!(c.reregister_onboarding_mode, OnboardingMode::None);
    assert_eq!(c.max_message_content_chars, 1024);
    assert_eq!(c.max_message_metadata_chars, 1024);
    assert_eq!(c.max_context_value_chars, 2048);
    assert!(c.disallow_full_in_polling);
    assert_eq!(c.done_evidence_min_refs, 1);
    assert_eq!(c.strict_done_evidence_min_refs, 2);
    assert_eq!(c.strict_done_confidence_min, 0.95);
    assert_eq!(c.max_evidence_refs_per_call, 16);
    assert_eq!(c.max_evidence_ref_chars, 256);
    assert!(!c.consistency_default_strict);
    assert_eq!(c.namespace_governance, NamespaceGovernance::Warn);
    assert_eq!(c.claim_cleanup_throttle_ms, 0);
    assert_eq!(c.maintenance_interval, Duration::from_millis(30_000));
    assert_eq!(c.idempotency_ttl_ms, Some(600_000));
    assert_eq!(c.agent_offline_after_ms, Some(1_800_000));
    assert_eq!(c.ephemeral_offline_after_ms, Some(300_000));
    assert_eq!(c.agent_retention_ms, Some(604_800_000));
    assert_eq!(c.ephemeral_agent_retention_ms, Some(7_200_000));
    assert_eq!(c.message_ttl_ms, Some(86_400_000));
    assert_eq!(c.activity_log_ttl_ms, Some(86_400_000));
    assert_eq!(c.auth_events_ttl_ms, Some(604_800_000));
    assert_eq!(c.artifact_ttl_ms, Some(604_800_000));
    assert_eq!(c.artifact.max_bytes, 52_428_800);
    assert_eq!(c.artifact.upload_ttl_sec, 300);
    assert_eq!(c.artifact.download_ttl_sec, 180);
    assert_eq!(c.artifact.retention_sec, 86_400);
    assert_eq!(c.ephemeral_claim_reap_after_ms, Some(600_000));
    assert_eq!(c.done_task_ttl_ms, Some(604_800_000));
    assert_eq!(c.archive_batch_limit, 200);
    assert_eq!(c.max_protocol_blob_chars, 32_768);
    assert_eq!(c.lossless_auto_min_payload_chars, 1024);
    assert_eq!(c.lossless_auto_min_gain_pct, 3.0);
    assert_eq!(c.auto_pack_min_payload_chars, 2048);
    assert_eq!(c.auto_pack_min_gain_pct, 3.0);
    assert_eq!(c.protocol_blob_ttl_ms, Some(604_800_000));
    assert_eq!(c.max_consensus_votes, 1000);
    assert!(c.consensus_quality_weighting);
}

/// A valid, non-default value for every variable in the table.
const SAMPLE: &[(&str, &str)] = &[
    ("MCP_HUB_HOST", "127.0.0.2"),
    ("MCP_HUB_PORT", "4100"),
    ("MCP_HUB_EXTRA_BIND_HOSTS", "10.1.0.1,10.1.0.2"),
    ("MCP_HUB_EXTRA_BIND_HOST", "10.1.0.9"),
    ("MCP_HUB_BIND_HOST", "10.1.0.3"),
    ("MCP_HUB_DATA", "/srv/hub"),
    ("MCP_HUB_DB", "/srv/db/hub.sqlite"),
    ("MCP_HUB_ARTIFACTS_DIR", "/srv/blobs"),
    ("MCP_HUB_PG_BIN", "/usr/lib/postgresql/15/bin"),
    ("MCP_HUB_DB_SYNC", "normal"),
    ("MCP_HUB_DB_URL", "postgres://hub:secret@db.internal/hub"),
    ("MCP_HUB_PUBLIC_BASE_URL", "https://hub.example/"),
    ("MCP_HUB_ENV_FILE", "/etc/hub.env"),
    ("MCP_HUB_LOCAL_ENV_FILE", "/etc/hub.local.env"),
    ("MCP_HUB_CONTAINER", "canary"),
    ("MCP_HUB_IMAGE", "hub-image"),
    ("MCP_HUB_SESSION_IDLE_TIMEOUT_MS", "120000"),
    ("MCP_HUB_SESSION_GC_INTERVAL_MS", "5000"),
    ("MCP_HUB_SESSION_MAX", "50"),
    ("MCP_HUB_UNKNOWN_SESSION_POLICY", "stateless_fallback"),
    ("MCP_HUB_HTTP_HEADER_READ_TIMEOUT_MS", "5000"),
    ("MCP_HUB_HTTP_IDLE_TIMEOUT_MS", "30000"),
    ("MCP_HUB_HTTP_MAX_CONNECTIONS", "100"),
    ("MCP_HUB_REQUIRE_AUTH", "true"),
    ("MCP_HUB_AUTH_MODE", "warn"),
    ("MCP_HUB_ADMIN_TOKEN", "s3cret-operator-token"),
    (
        "MCP_HUB_PRIVILEGED_AGENTS",
        "lead:orchestrator,rev-1:reviewer",
    ),
    ("MCP_HUB_RATE_LIMIT_RPS", "5"),
    ("MCP_HUB_RATE_LIMIT_BURST", "10"),
    ("MCP_HUB_NAMESPACE_QUOTA_MODE", "enforce"),
    ("MCP_HUB_NAMESPACE_QUOTA_RPS", "7"),
    ("MCP_HUB_NAMESPACE_QUOTA_BURST", "14"),
    ("MCP_HUB_NAMESPACE_QUOTA_FALLBACK", " shared "),
    ("MCP_HUB_NAMESPACE_TOKEN_BUDGET_PER_MIN", "1000"),
    ("MCP_HUB_NAMESPACE_GOVERNANCE", "require"),
    ("MCP_HUB_EVENT_STREAM_INTERVAL_MS", "500"),
    ("MCP_HUB_EVENT_STREAM_HEARTBEAT_MS", "3000"),
    ("MCP_HUB_EVENT_STREAM_MAX_PER_AGENT", "2"),
    ("MCP_HUB_EVENT_STREAM_MAX_TOTAL", "20"),
    ("MCP_HUB_WAIT_MAX_MS", "20000"),
    ("MCP_HUB_WAIT_DEFAULT_MS", "5000"),
    ("MCP_HUB_WAIT_RETRY_FACTOR", "2"),
    ("MCP_HUB_WAIT_RETRY_CAP_MS", "4000"),
    ("MCP_HUB_WAIT_RETRY_JITTER_PCT", "0.1"),
    ("MCP_HUB_WAIT_DEFAULT_RESPONSE_MODE", "nano"),
    ("MCP_HUB_WAIT_DEFAULT_TIMEOUT_RESPONSE", "minimal"),
    ("MCP_HUB_WAIT_LOG_HITS", "false"),
    ("MCP_HUB_WAIT_LOG_TIMEOUTS", "true"),
    ("MCP_HUB_DEFAULT_ONBOARDING_MODE", "compact"),
    ("MCP_HUB_EPHEMERAL_DEFAULT_ONBOARDING_MODE", "none"),
    ("MCP_HUB_REREGISTER_ONBOARDING_MODE", "full"),
    ("MCP_HUB_MAX_MESSAGE_CONTENT_CHARS", "500"),
    ("MCP_HUB_MAX_MESSAGE_METADATA_CHARS", "600"),
    ("MCP_HUB_MAX_CONTEXT_VALUE_CHARS", "700"),
    ("MCP_HUB_DISALLOW_FULL_IN_POLLING", "0"),
    ("MCP_HUB_MAX_PROTOCOL_BLOB_CHARS", "800"),
    ("MCP_HUB_LOSSLESS_AUTO_MIN_PAYLOAD_CHARS", "900"),
    ("MCP_HUB_LOSSLESS_AUTO_MIN_GAIN_PCT", "4"),
    ("MCP_HUB_AUTO_PACK_MIN_PAYLOAD_CHARS", "1000"),
    ("MCP_HUB_AUTO_PACK_MIN_GAIN_PCT", "5"),
    ("MCP_HUB_DONE_EVIDENCE_MIN_REFS", "2"),
    ("MCP_HUB_STRICT_DONE_EVIDENCE_MIN_REFS", "4"),
    ("MCP_HUB_STRICT_DONE_CONFIDENCE_MIN", "0.8"),
    ("MCP_HUB_MAX_EVIDENCE_REFS_PER_CALL", "8"),
    ("MCP_HUB_MAX_EVIDENCE_REF_CHARS", "64"),
    ("MCP_HUB_CONSISTENCY_DEFAULT", "strict"),
    ("MCP_HUB_CLAIM_CLEANUP_THROTTLE_MS", "5000"),
    ("MCP_HUB_MAX_CONSENSUS_VOTES", "99"),
    ("MCP_HUB_CONSENSUS_QUALITY_WEIGHTING", "off"),
    ("MCP_HUB_MAINTENANCE_INTERVAL_MS", "2000"),
    ("MCP_HUB_IDEMPOTENCY_TTL_MS", "1000"),
    ("MCP_HUB_AGENT_OFFLINE_AFTER_MS", "2000"),
    ("MCP_HUB_EPHEMERAL_OFFLINE_AFTER_MS", "3000"),
    ("MCP_HUB_AGENT_RETENTION_MS", "4000"),
    ("MCP_HUB_EPHEMERAL_AGENT_RETENTION_MS", "70000"),
    ("MCP_HUB_EPHEMERAL_CLAIM_REAP_AFTER_MS", "5000"),
    ("MCP_HUB_MESSAGE_TTL_MS", "6000"),
    ("MCP_HUB_ACTIVITY_LOG_TTL_MS", "7000"),
    ("MCP_HUB_AUTH_EVENTS_TTL_MS", "8000"),
    ("MCP_HUB_ARTIFACT_TTL_MS", "9000000"),
    ("MCP_HUB_ARTIFACT_MAX_BYTES", "2048"),
    ("MCP_HUB_ARTIFACT_TICKET_TTL_SEC", "60"),
    ("MCP_HUB_ARTIFACT_UPLOAD_TTL_SEC", "90"),
    ("MCP_HUB_ARTIFACT_DOWNLOAD_TTL_SEC", "45"),
    ("MCP_HUB_ARTIFACT_RETENTION_SEC", "600"),
    ("MCP_HUB_MAX_ARTIFACT_NAME_CHARS", "64"),
    ("MCP_HUB_MAX_ARTIFACT_SUMMARY_CHARS", "128"),
    ("MCP_HUB_PROTOCOL_BLOB_TTL_MS", "10000"),
    ("MCP_HUB_DONE_TASK_TTL_MS", "11000"),
    ("MCP_HUB_ARCHIVE_BATCH_LIMIT", "50"),
    ("MCP_HUB_RESOLVED_SLO_TTL_MS", "12000"),
    ("MCP_HUB_METRICS", "off"),
    ("MCP_HUB_SLO_PENDING_AGE_MS", "13000"),
    ("MCP_HUB_SLO_STALE_IN_PROGRESS_MS", "14000"),
    ("MCP_HUB_SLO_CLAIM_CHURN_WINDOW_MS", "120000"),
    ("MCP_HUB_SLO_CLAIM_CHURN_THRESHOLD", "7"),
];

#[test]
fn a_sample_with_every_variable_set_parses() {
    let sample_names: std::collections::BTreeSet<&str> =
        SAMPLE.iter().map(|(name, _)| *name).collect();
    let table_names: std::collections::BTreeSet<&str> = VARIABLES.iter().map(|v| v.name).collect();
    assert_eq!(sample_names, table_names, "the sample covers the table");
    let layers = env(SAMPLE);
    let (c, warnings) = Config::load(&layers).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.host, IpAddr::from([127, 0, 0, 2]));
    assert_eq!(c.port, 4100);
    // The older singular name is ignored when the plural is set.
    let extra: Vec<String> = c.extra_bind_hosts.iter().map(ToString::to_string).collect();
    assert_eq!(extra, ["10.1.0.1", "10.1.0.2", "10.1.0.3"]);
    assert_eq!(c.db_path, PathBuf::from("/srv/db/hub.sqlite"));
    assert_eq!(c.artifacts_dir, PathBuf::from("/srv/blobs"));
    assert_eq!(c.db_sync, SyncMode::Normal);
    assert_eq!(c.artifact_ttl_ms, Some(9_000_000));
    assert_eq!(c.artifact.max_bytes, 2048);
    assert_eq!(c.artifact.ticket_ttl_sec, 60);
    assert_eq!(c.artifact.upload_ttl_sec, 90);
    assert_eq!(c.artifact.download_ttl_sec, 45);
    assert_eq!(c.artifact.retention_sec, 600);
    assert_eq!(c.artifact.max_name_chars, 64);
    assert_eq!(c.artifact.max_summary_chars, 128);
    assert_eq!(c.public_base_url, "https://hub.example");
    assert_eq!(c.session_idle_timeout, Some(Duration::from_millis(120_000)));
    assert_eq!(c.http_header_read_timeout, Duration::from_millis(5_000));
    assert_eq!(c.http_idle_timeout, Duration::from_millis(30_000));
    assert_eq!(c.http_max_connections, 100);
    assert_eq!(
        c.unknown_session_policy,
        UnknownSessionPolicy::StatelessFallback
    );
    assert_eq!(c.auth_mode, AuthMode::Warn);
    assert!(c.admin_token_sha256.is_some());
    assert_eq!(c.privileged_agents.len(), 2);
    assert_eq!(c.namespace_quota_mode, QuotaMode::Enforce);
    assert_eq!(c.namespace_quota_burst, 14.0);
    assert_eq!(c.namespace_quota_fallback, "shared");
    assert_eq!(c.resolved_slo_ttl_ms, Some(12_000));
    assert!(!c.metrics_enabled);
    assert_eq!(
        (c.slo.pending_age_ms, c.slo.stale_in_progress_ms),
        (13_000, 14_000)
    );
    assert_eq!(
        (c.slo.claim_churn_window_ms, c.slo.claim_churn_threshold),
        (120_000, 7)
    );
    assert_eq!(c.namespace_governance, NamespaceGovernance::Require);
    assert_eq!(c.wait.default_ms, 5000);
    assert_eq!(c.wait.default_response_mode, WaitResponseMode::Nano);
    assert!(c.wait.minimal_timeout_response && !c.wait.log_hits && c.wait.log_timeouts);
    assert_eq!(c.reregister_onboarding_mode, OnboardingMode::Full);
    assert!(!c.disallow_full_in_polling);
    assert_eq!(c.strict_done_evidence_min_refs, 4);
    assert!(c.consistency_default_strict);
    assert!(!c.consensus_quality_weighting);
    assert_eq!(c.ephemeral_claim_reap_after_ms, Some(5000));
    assert_eq!(c.archive_batch_limit, 50);
}

#[test]
fn each_enum_variable_rejects_a_bad_value_naming_it() {
    for name in [
        "MCP_HUB_DB_SYNC",
        "MCP_HUB_UNKNOWN_SESSION_POLICY",
        "MCP_HUB_AUTH_MODE",
        "MCP_HUB_NAMESPACE_QUOTA_MODE",
        "MCP_HUB_WAIT_DEFAULT_RESPONSE_MODE",
        "MCP_HUB_WAIT_DEFAULT_TIMEOUT_RESPONSE",
        "MCP_HUB_DEFAULT_ONBOARDING_MODE",
        "MCP_HUB_EPHEMERAL_DEFAULT_ONBOARDING_MODE",
        "MCP_HUB_REREGISTER_ONBOARDING_MODE",
    ] {
        let errors = errors_of(&[(name, "bogus")]);
        assert_eq!(errors.len(), 1, "{name}: {errors:?}");
        assert!(
            errors[0].starts_with(&format!("{name}: \"bogus\" is not one of ")),
            "{errors:?}"
        );
    }
    // Documented as lenient: other values fall back rather than fail.
    for name in [
        "MCP_HUB_NAMESPACE_GOVERNANCE",
        "MCP_HUB_CONSISTENCY_DEFAULT",
        "MCP_HUB_CONSENSUS_QUALITY_WEIGHTING",
    ] {
        assert!(Config::from_env(&env(&[(name, "bogus")])).is_ok(), "{name}");
    }
}

#[test]
fn unknown_variables_warn_with_the_closest_known_name() {
    let layers = env(&[
        ("MCP_HUB_AUTH_MOD", "enforce"),
        ("MCP_HUB_WATERMARK_CACHE_MS", "100"),
        ("MCP_HUB_PORT", "3001"),
        ("OTHER_VARIABLE", "x"),
    ]);
    let (config, warnings) = Config::load(&layers).unwrap();
    assert_eq!(
        config.auth_mode,
        AuthMode::Observe,
        "the typo is not applied"
    );
    assert_eq!(
        warnings,
        [
            "MCP_HUB_AUTH_MOD is not a known variable; did you mean MCP_HUB_AUTH_MODE?",
            "MCP_HUB_WATERMARK_CACHE_MS is not a known variable; it is ignored",
        ]
    );
}

#[test]
fn dev_null_is_an_empty_profile() {
    let process = vec![
        ("MCP_HUB_ENV_FILE".to_string(), "/dev/null".to_string()),
        (
            "MCP_HUB_LOCAL_ENV_FILE".to_string(),
            "/dev/null".to_string(),
        ),
        ("MCP_HUB_PORT".to_string(), "4002".to_string()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let default_base = dir.path().join("production.env");
    std::fs::write(&default_base, "MCP_HUB_PORT=4999\nMCP_HUB_DB_SYNC=normal\n").unwrap();
    let layers = EnvLayers::resolve(process, Some(&default_base), None).unwrap();
    assert_eq!(layers.loaded_files, ["base:/dev/null"]);
    assert_eq!(
        layers.get("MCP_HUB_DB_SYNC"),
        None,
        "the default profile is replaced"
    );
    let config = Config::from_env(&layers).unwrap();
    assert_eq!(config.port, 4002);
    assert_eq!(config.db_sync, SyncMode::Full);
    let error = EnvLayers::resolve(
        vec![("MCP_HUB_LOCAL_ENV_FILE".to_string(), "/dev".to_string())],
        None,
        None,
    )
    .unwrap_err();
    assert!(
        error.contains("Local environment file not found: /dev"),
        "{error}"
    );
}

#[test]
fn the_admin_token_is_kept_only_as_its_digest() {
    let token = "s3cret-operator-token";
    let config = Config::from_env(&env(&[("MCP_HUB_ADMIN_TOKEN", token)])).unwrap();
    let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
    assert_eq!(config.admin_token_sha256, Some(digest));
    let debug = format!("{config:?}");
    assert!(!debug.contains(token));
    assert!(!debug.contains(&hex::encode(digest)));
    assert!(debug.contains("admin_token_sha256: Some(\"<redacted>\")"));
    let blank = Config::from_env(&env(&[("MCP_HUB_ADMIN_TOKEN", "  ")])).unwrap();
    assert_eq!(blank.admin_token_sha256, None, "empty counts as unset");
}

#[test]
fn privileged_agents_are_id_role_pairs() {
    let config = Config::from_env(&env(&[(
        "MCP_HUB_PRIVILEGED_AGENTS",
        " lead:orchestrator, ,rev-1:Reviewer,,",
    )]))
    .unwrap();
    let expected: BTreeMap<String, String> = [("lead", "orchestrator"), ("rev-1", "reviewer")]
        .into_iter()
        .map(|(id, role)| (id.to_string(), role.to_string()))
        .collect();
    assert_eq!(config.privileged_agents, expected);

    let errors = errors_of(&[("MCP_HUB_PRIVILEGED_AGENTS", "lead:boss,rev-1:reviewer")]);
    assert_eq!(
        errors,
        [
            "MCP_HUB_PRIVILEGED_AGENTS: entry \"lead:boss\": role \"boss\" is not one of \
          orchestrator, reviewer, assistant, worker"
        ]
    );
    for malformed in ["lead", "lead:", ":worker"] {
        let errors = errors_of(&[("MCP_HUB_PRIVILEGED_AGENTS", malformed)]);
        assert_eq!(
            errors,
            [format!(
                "MCP_HUB_PRIVILEGED_AGENTS: entry {malformed:?} is not agent_id:role"
            )]
        );
    }
    let errors = errors_of(&[("MCP_HUB_PRIVILEGED_AGENTS", "a:worker,a:reviewer")]);
    assert!(errors[0].contains("listed twice"), "{errors:?}");
}

#[test]
fn every_variable_of_the_production_profile_is_read_by_the_hub() {
    let profile = include_str!("../../../deploy/hub.production.env");
    let known: std::collections::BTreeSet<&str> = VARIABLES.iter().map(|v| v.name).collect();
    let unread: Vec<&str> = profile
        .lines()
        .map(|line| line.trim().trim_start_matches('#').trim())
        .filter_map(|line| line.split_once('=').map(|(name, _)| name.trim()))
        .filter(|name| name.starts_with("MCP_HUB_"))
        .filter(|name| !known.contains(name))
        .collect();
    assert!(
        unread.is_empty(),
        "the profile sets variables the hub ignores: {unread:?}"
    );
}
