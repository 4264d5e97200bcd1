//! The rounds end to end against a real hub started by `hubctl start` under enforce, with
//! small parameters: every report field of the spec is present and the counts match what
//! the round did. Legacy environment variables still work; a flag of the same meaning wins.

mod common;

use std::path::Path;
use std::process::Output;

use common::{Running, free_port, hubctl_command, text};
use serde_json::Value;

/// A hub under enforce with rate limiting off (the rounds burst), stopped on drop.
fn start_enforced(data: &Path, port: u16) -> Running<'_> {
    let started = hubctl_command(data, port, &["start"])
        .env("MCP_HUB_AUTH_MODE", "enforce")
        .env("MCP_HUB_RATE_LIMIT_RPS", "0")
        .output()
        .unwrap();
    let guard = Running { data, port };
    assert!(started.status.success(), "{}", text(&started));
    guard
}

fn round(data: &Path, port: u16, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = hubctl_command(data, port, args);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    output
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "reports end with a newline");
    serde_json::from_str(&text).unwrap()
}

fn assert_fields(object: &Value, fields: &[&str]) {
    for field in fields {
        assert!(object.get(field).is_some(), "{field} missing in {object}");
    }
}

#[test]
fn kpi_round_compares_baseline_and_blob_under_enforce() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    let _hub = start_enforced(data.path(), port);
    let endpoint = format!("http://127.0.0.1:{port}/mcp");
    let output = round(
        data.path(),
        port,
        &["kpi-round", "--workers", "3", "--use-auth-token", "true"],
        &[
            ("ENDPOINT", endpoint.as_str()),
            ("WORKERS", "40"),
            ("OUT_DIR", out.path().to_str().unwrap()),
        ],
    );
    let shown = text(&output);
    assert!(shown.contains("Wrote KPI report:"), "{shown}");
    assert!(
        shown.contains("accuracy_done_pct"),
        "summary table: {shown}"
    );
    let report = read_json(&out.path().join("exp5-kpi.json"));
    assert_fields(
        &report,
        &["generated_at", "baseline", "optimized", "deltas"],
    );
    for (variant, mode) in [
        (&report["baseline"], "baseline"),
        (&report["optimized"], "blob"),
    ] {
        assert_fields(
            variant,
            &[
                "tag",
                "namespace",
                "auth_token_mode",
                "blob_compression_mode",
                "transport_wait_calls",
                "transport_wait_hits",
                "transport_wait_timeouts",
                "transport_wait_hit_rate_pct",
                "transport_wait_retry_after_avg_ms",
                "transport_wait_retry_after_p95_ms",
                "transport_polling_calls",
                "token_est_effective",
                "onboarding_ok",
                "latency_total_ms",
            ],
        );
        assert_eq!(variant["mode"], mode);
        assert_eq!(variant["workers"], 3, "the flag beats WORKERS");
        assert_eq!(variant["created_tasks"], 3);
        assert_eq!(variant["release_ok"], 3, "{variant}");
        assert_eq!(variant["done_count"], 3);
        assert_eq!(variant["accuracy_done_pct"], 100.0);
        assert_eq!(variant["message_count"], 3);
        assert_eq!(variant["context_count"], 3);
        assert_eq!(variant["auth_token_coverage"]["worker_tokens_present"], 3);
        assert_eq!(
            variant["auth_token_coverage"]["orchestrator_token_present"],
            true
        );
        assert!(variant["tool_calls"].as_u64().unwrap() >= 1 + 3 * 6 + 3);
        let effective = variant["message_chars_effective"].as_u64().unwrap();
        assert!(effective > 3 * 700, "{variant}");
    }
    let (baseline, blob) = (&report["baseline"], &report["optimized"]);
    assert_eq!(baseline["hash_checks_total"], 0);
    assert_eq!(baseline["hash_valid_rate_pct"], Value::Null);
    assert_eq!(blob["hash_checks_total"], 6);
    assert_eq!(blob["hash_checks_ok"], 6, "{blob}");
    assert_eq!(blob["hash_valid_rate_pct"], 100.0);
    // A blob reference travels instead of the payload; the payload itself is the same.
    assert!(
        blob["message_chars_transport"].as_u64() < baseline["message_chars_transport"].as_u64()
    );
    assert_eq!(
        blob["message_chars_effective"],
        baseline["message_chars_effective"]
    );
    assert!(
        report["deltas"]["message_chars_transport_pct"]
            .as_f64()
            .unwrap()
            < 0.0
    );
    assert_eq!(report["deltas"]["accuracy_done_pct_delta"], 0.0);
}
