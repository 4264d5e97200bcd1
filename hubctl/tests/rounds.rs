//! The rounds end to end against a real hub started by `hubctl start` under enforce, with
//! small parameters: every report field of the spec is present and the counts match what
//! the round did. Legacy environment variables still work; a flag of the same meaning wins.

mod common;

use std::path::Path;
use std::process::Output;

use common::{Running, free_port, hubctl_command, start_configured, text};
use serde_json::Value;

/// A hub in `auth_mode` with rate limiting off (the rounds burst), stopped on drop.
fn start_hub<'a>(data: &'a Path, port: u16, auth_mode: &str) -> Running<'a> {
    start_hub_with(data, port, auth_mode, &[])
}

fn start_hub_with<'a>(
    data: &'a Path,
    port: u16,
    auth_mode: &str,
    extra: &[(&str, &str)],
) -> Running<'a> {
    let mut env = vec![
        ("MCP_HUB_AUTH_MODE", auth_mode),
        ("MCP_HUB_RATE_LIMIT_RPS", "0"),
    ];
    env.extend_from_slice(extra);
    start_configured(data, port, &env)
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
    // The production profile's threshold: the ~1000-char handoffs are stored compressed, so
    // the hash checks go through the lossless envelope's integrity check.
    let lossless = [("MCP_HUB_LOSSLESS_AUTO_MIN_PAYLOAD_CHARS", "768")];
    let _hub = start_hub_with(data.path(), port, "enforce", &lossless);
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

#[test]
fn wait_mode_ab_measures_each_mode_under_enforce() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    let _hub = start_hub(data.path(), port, "enforce");
    let endpoint = format!("http://127.0.0.1:{port}/mcp");
    let out_file = out.path().join("ab.json");
    let output = round(
        data.path(),
        port,
        &["wait-mode-ab", "--rounds", "2", "--endpoint", &endpoint],
        &[
            ("ENDPOINT", "http://127.0.0.1:1/mcp"),
            ("ROUNDS", "50"),
            ("WAIT_MODES", "default,NANO,tiny"),
            ("WAIT_MS", "5000"),
            ("OUT_FILE", out_file.to_str().unwrap()),
        ],
    );
    assert!(text(&output).contains("Wrote wait mode A/B report:"));
    let report = read_json(&out_file);
    assert_fields(&report, &["generated_at", "endpoint", "agent_id", "deltas"]);
    assert_eq!(report["rounds"], 2, "the flag beats ROUNDS");
    assert_eq!(
        report["endpoint"],
        endpoint.as_str(),
        "the flag beats ENDPOINT"
    );
    let results = report["results"].as_array().unwrap();
    let modes: Vec<&str> = results
        .iter()
        .map(|r| r["mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["default", "nano", "tiny"]);
    for result in results {
        assert_fields(result, &["total_bytes", "total_ms", "avg_bytes", "avg_ms"]);
        assert_eq!(
            result["changed_hits"], 2,
            "every timed wait saw its message: {result}"
        );
    }
    let bytes = |mode: usize| results[mode]["avg_bytes"].as_f64().unwrap();
    assert!(
        bytes(1) < bytes(2) && bytes(2) < bytes(0),
        "nano < tiny < default: {results:?}"
    );
    let deltas = &report["deltas"];
    assert!(deltas["nano_vs_tiny_avg_bytes_pct"].as_f64().unwrap() < 0.0);
    assert_eq!(
        deltas["micro_vs_tiny_avg_bytes_pct"], 0.0,
        "micro not measured"
    );

    let refused = hubctl_command(data.path(), port, &["wait-mode-ab", "--wait-modes", "huge"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(text(&refused).contains("huge"), "{}", text(&refused));
}

#[test]
fn consensus_ab_round_resolves_inline_and_by_blob_hash_with_tokens() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    let _hub = start_hub(data.path(), port, "warn");
    let endpoint = format!("http://127.0.0.1:{port}/mcp");
    let out_dir = out.path().to_str().unwrap();
    let output = round(
        data.path(),
        port,
        &[
            "consensus-ab-round",
            "--runs",
            "3",
            "--votes",
            "12",
            "--json",
        ],
        &[("ENDPOINT", endpoint.as_str()), ("OUT_DIR", out_dir)],
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let path = out
        .path()
        .join(format!("{}.json", printed["run_tag"].as_str().unwrap()));
    let report = read_json(&path);
    assert_eq!(report, printed, "--json prints the report it wrote");
    assert_eq!(report["config"]["runs"], 3);
    assert_eq!(report["config"]["votes_per_round"], 12);
    assert_eq!(report["config"]["blob_store_strategy"], "per_run");
    assert_eq!(report["config"]["emit_blob_ref_policy"], Value::Null);
    assert_eq!(report["inline"]["success"], 3, "{report}");
    assert_eq!(report["inline"]["failure"], 0);
    let blob = &report["blob"];
    assert_eq!(blob["store"]["calls"], 3);
    assert_eq!(blob["store"]["success"], 3);
    assert_eq!(blob["store"]["created"], 3, "each run's votes differ");
    assert_eq!(blob["resolve"]["success"], 3, "{report}");
    assert_fields(
        &blob["e2e"],
        &[
            "request_chars_total",
            "response_chars_total",
            "chars_total",
            "tokens_est_total",
            "latency_total_ms",
            "request_chars_avg",
            "response_chars_avg",
            "latency_avg_ms",
        ],
    );
    assert_eq!(report["correctness"]["outcome_match"], 3);
    assert_eq!(report["correctness"]["match_pct"], 100.0);
    for key in [
        "blob_e2e_vs_inline_chars",
        "blob_e2e_vs_inline_tokens_est",
        "blob_e2e_vs_inline_latency",
    ] {
        assert!(report["deltas_pct"][key].is_number(), "{key}");
    }
    // preloaded: one blob for every run.
    let output = round(
        data.path(),
        port,
        &[
            "consensus-ab-round",
            "--runs",
            "2",
            "--votes",
            "12",
            "--json",
        ],
        &[
            ("ENDPOINT", endpoint.as_str()),
            ("OUT_DIR", out_dir),
            ("BLOB_STORE_STRATEGY", "preloaded"),
            ("EMIT_BLOB_REF_POLICY", "always"),
        ],
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["blob"]["store"]["calls"], 1);
    assert_eq!(report["blob"]["resolve"]["success"], 2);
    assert_eq!(report["blob"]["resolve"]["emitted_blob_ref"], 2, "{report}");
    assert_eq!(report["config"]["emit_blob_ref_policy"], "always");
}

#[test]
fn consensus_ab_round_sends_its_token_under_enforce() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    let _hub = start_hub(data.path(), port, "enforce");
    let endpoint = format!("http://127.0.0.1:{port}/mcp");
    let output = round(
        data.path(),
        port,
        &[
            "consensus-ab-round",
            "--runs",
            "2",
            "--votes",
            "6",
            "--json",
        ],
        &[
            ("ENDPOINT", endpoint.as_str()),
            ("OUT_DIR", out.path().to_str().unwrap()),
        ],
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    // Storing the votes needs only the runner's own token: it was sent (D21).
    assert_eq!(report["blob"]["store"]["success"], 2, "{report}");
    // Votes in other agents' names are refused under enforce and counted, not fatal.
    assert_eq!(report["inline"]["failure"], 2, "{report}");
    assert_eq!(report["correctness"]["outcome_match"], 0);
}

#[test]
fn invalid_round_settings_exit_1_naming_the_value() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    for (args, env, named) in [
        (vec!["kpi-round"], ("USE_AUTH_TOKEN", "maybe"), "maybe"),
        (vec!["kpi-round"], ("BLOB_COMPRESSION_MODE", "zip"), "zip"),
        (vec!["wait-mode-ab"], ("WAIT_MODES", "tiny,huge"), "huge"),
        (
            vec!["smart-swarm-round"],
            ("WORKER_BACKEND", "gemini"),
            "gemini",
        ),
    ] {
        let output = hubctl_command(data.path(), port, &args)
            .env(env.0, env.1)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{env:?}: {}", text(&output));
        assert!(text(&output).contains(named), "{}", text(&output));
    }
}
