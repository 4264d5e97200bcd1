//! Observability and governance: KPI and transport figures over a seeded workload (manual
//! clock), SLO alerts opening and resolving, auth coverage, namespace quota modes as a table,
//! and guidance that names only served tools.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::harness::{Client, TestHub};

/// Argument and field names guidance mentions in prose that look like tool names.
const NOT_TOOLS: [&str; 5] = [
    "resolve_blob_refs",
    "claim_id",
    "claim_churn",
    "hash_valid",
    "wait_ms",
];

const TOOL_VERBS: [&str; 22] = [
    "get_",
    "list_",
    "create_",
    "send_",
    "read_",
    "update_",
    "delete_",
    "claim_",
    "poll_",
    "release_",
    "renew_",
    "share_",
    "resolve_",
    "evaluate_",
    "run_",
    "register_",
    "wait_",
    "store_",
    "pack_",
    "unpack_",
    "hash_",
    "attach_",
];

fn collect_words(value: &Value, words: &mut BTreeSet<String>) {
    match value {
        Value::String(text) => {
            for word in text.split(|c: char| !(c.is_ascii_lowercase() || c == '_')) {
                if TOOL_VERBS.iter().any(|verb| word.starts_with(verb)) && word.len() > 5 {
                    words.insert(word.to_string());
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_words(item, words)),
        // Keys are field names; only values mention tools.
        Value::Object(map) => map.values().for_each(|item| collect_words(item, words)),
        _ => {}
    }
}

#[tokio::test]
async fn guidance_names_only_tools_that_tools_list_serves() {
    let hub = TestHub::start().await;
    let (client, token) = hub.agent("reader").await;
    let served: BTreeSet<String> = client
        .service
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|tool| tool.name.to_string())
        .collect();
    let mut mentioned = BTreeSet::new();
    for role in ["orchestrator", "reviewer", "assistant", "worker"] {
        for runtime_mode in ["repo", "isolated", "unknown"] {
            let body = client
                .call(
                    "get_onboarding",
                    json!({"agent_id": "reader", "auth_token": token, "mode": "full",
                           "role": role, "runtime_mode": runtime_mode, "empty_dir": true}),
                )
                .await;
            collect_words(body.ok(), &mut mentioned);
        }
    }
    let health = reqwest::get(format!("{}/health", hub.base_url()))
        .await
        .unwrap();
    let header = health.headers()["x-mcp-hub-capabilities"]
        .to_str()
        .unwrap()
        .to_string();
    collect_words(&Value::String(header), &mut mentioned);
    assert!(
        mentioned.contains("get_kpi_snapshot") && mentioned.contains("read_snapshot"),
        "the scan sees the guidance: {mentioned:?}"
    );
    let unknown: Vec<&String> = mentioned
        .iter()
        .filter(|name| !served.contains(*name))
        .filter(|name| !NOT_TOOLS.contains(&name.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "guidance names unknown tools: {unknown:?}"
    );
    client.close().await;
    hub.stop().await;
}

async fn create(client: &Client, title: &str, namespace: &str) -> i64 {
    let outcome = client
        .call(
            "create_task",
            json!({"created_by": "lead", "title": title, "namespace": namespace}),
        )
        .await;
    outcome.ok()["task"]["id"].as_i64().unwrap()
}

fn window(body: &Value, index: usize) -> &Value {
    &body["windows"][index]
}

#[tokio::test]
async fn kpi_and_transport_figures_match_a_seeded_workload() {
    let hub = TestHub::start().await;
    let lead = hub.client().await;
    lead.register("lead", json!({})).await;
    let worker = hub.client().await;
    worker.register("w1", json!({})).await;
    hub.clock.advance_ms(1_000);

    let first = create(&lead, "one", "alpha").await;
    create(&lead, "two", "alpha").await;
    create(&lead, "three", "beta").await;
    for content in ["hello", "hello world"] {
        lead.call(
            "send_message",
            json!({"from_agent": "lead", "to_agent": "w1", "content": content}),
        )
        .await
        .ok();
    }
    for _ in 0..2 {
        worker
            .call("read_messages", json!({"agent_id": "w1"}))
            .await
            .ok();
    }
    let claimed = worker
        .call("poll_and_claim", json!({"agent_id": "w1"}))
        .await;
    assert_eq!(claimed.ok()["task"]["id"].as_i64(), Some(first));
    worker
        .call(
            "release_task_claim",
            json!({"task_id": first, "agent_id": "w1", "next_status": "done",
                   "confidence": 0.95, "verification_passed": true,
                   "evidence_refs": ["test:evidence"]}),
        )
        .await
        .ok();
    worker
        .call(
            "wait_for_updates",
            json!({"agent_id": "w1", "wait_ms": 100, "response_mode": "micro"}),
        )
        .await
        .ok();
    hub.flush_bookkeeping().await;

    let snapshot = lead
        .call(
            "get_kpi_snapshot",
            json!({"windows_sec": [60, 3600, 60, -5]}),
        )
        .await;
    let body = snapshot.ok();
    assert_eq!(body["windows_sec"], json!([60, 3600]));
    assert_eq!(
        body["queue"],
        json!({"tasks_pending": 2, "tasks_in_progress": 0, "tasks_done": 1,
               "claims_active": 0, "agents_online_5m": 2})
    );
    let minute = window(body, 0);
    assert_eq!(minute["window_ms"], 60_000);
    assert_eq!(minute["messages_created"], 2);
    // (5 + 11) / 2
    assert_eq!(minute["avg_message_chars"], 8);
    // read_messages ×2 + poll_and_claim ×1
    assert_eq!(minute["polling_calls"], 3);
    assert_eq!(minute["done_transitions"], 1);
    assert_eq!(minute["done_with_evidence"], 1);
    assert_eq!(minute["done_with_evidence_rate_pct"], 100.0);
    assert_eq!(minute["reopen_rate_pct"], 0.0);
    assert_eq!(minute["done_tasks_updated"], 1);
    assert_eq!(minute["tasks_updated"], 3);
    assert_eq!(minute["wait_calls"], 1);
    let (hits, timeouts) = (
        minute["wait_hits"].as_i64().unwrap(),
        minute["wait_timeouts"].as_i64().unwrap(),
    );
    assert_eq!(hits + timeouts, 1, "one wait, a hit or a timeout");
    assert_eq!(minute["wait_hit_rate_pct"], json!(hits as f64 * 100.0));
    assert_eq!(minute["consensus_decisions"], 0);
    assert_eq!(
        minute["consensus_estimated_tokens_per_decision"],
        Value::Null
    );
    assert_eq!(minute["artifact_uploads"], 0);
    assert_eq!(
        body["collective_accuracy"],
        json!({"window_ms": 3_600_000, "reopen_rate_pct": 0.0,
               "done_with_evidence_rate_pct": 100.0, "consensus_escalation_pct": 0.0,
               "consensus_estimated_tokens_per_finalized_decision": null})
    );
    assert_eq!(
        body["namespace_backlog"],
        json!([{"namespace": "alpha", "total": 2, "pending": 1, "in_progress": 0},
               {"namespace": "beta", "total": 1, "pending": 1, "in_progress": 0}])
    );
    assert_eq!(
        body["execution_backlog"],
        json!([{"execution_mode": "any", "total": 3, "pending": 2, "in_progress": 0}])
    );
    let top: Vec<&str> = body["top_actions_5m"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert!(
        top.contains(&"read_messages") && top.contains(&"create_task"),
        "{top:?}"
    );

    let transport = lead
        .call("get_transport_snapshot", json!({"window_sec": 5}))
        .await;
    let transport = transport.ok();
    assert_eq!(transport["window_sec"], 30, "clamped to 30");
    assert_eq!(transport["transport"]["polling_calls"], 3);
    assert_eq!(transport["transport"]["wait_calls"], 1);
    assert!(transport.get("queue").is_none(), "tiny by default");

    // Ten minutes on: the one-minute window is empty, the hour still holds everything.
    hub.clock.advance_ms(600_000);
    let later = lead
        .call(
            "get_kpi_snapshot",
            json!({"windows_sec": [60, 3600], "response_mode": "tiny"}),
        )
        .await;
    let later = later.ok();
    assert_eq!(later["latest_window"]["messages_created"], 0);
    assert_eq!(later["latest_window"]["polling_calls"], 0);
    assert!(later.get("windows").is_none() && later.get("namespace_backlog").is_none());
    assert_eq!(later["collective_accuracy"]["window_ms"], 3_600_000);
    let full = lead
        .call(
            "get_transport_snapshot",
            json!({"window_sec": 3600, "response_mode": "full"}),
        )
        .await;
    let full = full.ok();
    assert_eq!(full["transport"]["polling_calls"], 3);
    assert_eq!(full["latest_window"]["messages_created"], 2);
    assert_eq!(full["queue"]["tasks_done"], 1);

    let log = lead
        .call(
            "get_activity_log",
            json!({"agent_id": "w1", "response_mode": "summary", "limit": 1000}),
        )
        .await;
    let log = log.ok();
    assert!(log["summary"]["count"].as_i64().unwrap() >= 4);
    assert_eq!(log["summary"]["unique_agents"], 1, "agent_id is a filter");
    lead.close().await;
    worker.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn slo_alerts_open_update_and_resolve() {
    let hub = TestHub::start_with(&[
        ("MCP_HUB_SLO_PENDING_AGE_MS", "60000"),
        ("MCP_HUB_SLO_CLAIM_CHURN_THRESHOLD", "3"),
    ])
    .await;
    let lead = hub.client().await;
    lead.register("lead", json!({})).await;
    create(&lead, "waits", "alpha").await;
    let evaluate = || lead.call("evaluate_slo_alerts", json!({"requesting_agent": "lead"}));

    let quiet = evaluate().await;
    assert_eq!(quiet.ok()["evaluation"]["triggered"], 0);

    hub.clock.advance_ms(61_000);
    let fired = evaluate().await;
    let evaluation = &fired.ok()["evaluation"];
    assert_eq!(evaluation["triggered"], 1);
    assert_eq!(
        evaluation["events"][0],
        json!({"code": "high_pending_age", "state": "triggered", "severity": "high",
               "message": evaluation["events"][0]["message"]})
    );
    let details: Value = serde_json::from_str(
        evaluation["open_alerts"][0]["details_json"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        details,
        json!({"pending_count": 1, "oldest_pending_age_ms": 61_000, "threshold_ms": 60_000})
    );

    let again = evaluate().await;
    assert_eq!(again.ok()["evaluation"]["events"][0]["state"], "updated");
    assert_eq!(again.ok()["evaluation"]["triggered"], 0);

    // Claiming the task (three polls: one claim, two empty) clears the age and makes churn.
    for _ in 0..3 {
        lead.call("poll_and_claim", json!({"agent_id": "lead"}))
            .await
            .ok();
    }
    // The background pass evaluates too; it sees the calls counted so far.
    let pass = lead
        .call("run_maintenance", json!({"requesting_agent": "lead"}))
        .await;
    let slo = &pass.ok()["maintenance"]["slo"];
    assert_eq!(
        (slo["triggered"].as_i64(), slo["resolved"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(slo["open_alerts"], 1);

    let open = lead
        .call("list_slo_alerts", json!({"open_only": true}))
        .await;
    let codes: Vec<&str> = open.ok()["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["claim_churn"]);
    let resolved = lead
        .call("list_slo_alerts", json!({"code": "high_pending_age"}))
        .await;
    let row = &resolved.ok()["alerts"][0];
    assert!(row["resolved_at"].is_i64(), "{row}");

    let dry = lead.call("run_maintenance", json!({"dry_run": true})).await;
    assert_eq!(dry.ok()["maintenance"]["dry_run"], true);
    lead.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn auth_coverage_counts_valid_missing_invalid_and_skipped() {
    let hub = TestHub::start_with(&[("MCP_HUB_AUTH_MODE", "enforce")]).await;
    let (client, token) = hub.agent("a1").await;
    for _ in 0..2 {
        client
            .call("list_tasks", json!({"agent_id": "a1", "auth_token": token}))
            .await
            .ok();
    }
    let missing = client.call("list_tasks", json!({"agent_id": "a1"})).await;
    assert_eq!(missing.error_code(), "AUTH_TOKEN_REQUIRED");
    let invalid = client
        .call(
            "list_tasks",
            json!({"agent_id": "a1", "auth_token": "nope"}),
        )
        .await;
    assert_eq!(invalid.error_code(), "AUTH_TOKEN_INVALID");
    hub.flush_bookkeeping().await;
    let coverage = client
        .call(
            "get_auth_coverage",
            json!({"requesting_agent": "a1", "auth_token": token, "window_sec": 1}),
        )
        .await;
    let coverage = &coverage.ok()["coverage"];
    assert_eq!(coverage["window_ms"], 60_000, "clamped to 60 s");
    assert_eq!(coverage["valid_events"], 2);
    assert_eq!(coverage["missing_events"], 1);
    assert_eq!(coverage["invalid_events"], 1);
    assert_eq!(coverage["skipped_events"], 1, "the registration");
    assert_eq!(coverage["valid_coverage_pct"], 50.0);
    let list_tasks = coverage["by_tool"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["tool_name"] == "list_tasks")
        .unwrap();
    assert_eq!(
        list_tasks,
        &json!({"tool_name": "list_tasks", "total": 4, "valid": 2, "missing": 1,
                "invalid": 1, "skipped": 0, "valid_coverage_pct": 50.0})
    );
    // Under enforce the pass is an orchestrator's: a worker's own valid token is not enough.
    let refused = client
        .call(
            "run_maintenance",
            json!({"requesting_agent": "a1", "auth_token": token}),
        )
        .await;
    assert_eq!(refused.error_code(), "ROLE_NOT_GRANTED");
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn namespace_quota_modes() {
    // (mode, third call's error code, whether it carries a quota warning)
    let cases = [
        ("off", None, false),
        ("warn", None, true),
        ("enforce", Some("NAMESPACE_QUOTA_EXCEEDED"), false),
    ];
    for (mode, refused, warned) in cases {
        let hub = TestHub::start_with(&[
            ("MCP_HUB_NAMESPACE_QUOTA_MODE", mode),
            ("MCP_HUB_NAMESPACE_QUOTA_RPS", "0.001"),
            ("MCP_HUB_NAMESPACE_QUOTA_BURST", "2"),
        ])
        .await;
        let client = hub.client().await;
        for _ in 0..2 {
            client
                .call("list_tasks", json!({"agent_id": "q", "namespace": "Team"}))
                .await
                .ok();
        }
        let third = client
            .call("list_tasks", json!({"agent_id": "q", "namespace": "Team"}))
            .await;
        match refused {
            Some(code) => {
                assert_eq!(third.error_code(), code, "{mode}");
                assert_eq!(third.json["namespace"], "Team");
                assert_eq!(third.json["quota_mode"], "enforce");
                assert_eq!(third.json["retry_after_ms"], 1000);
            }
            None => {
                third.ok();
            }
        }
        let warnings = third.json["warnings"].to_string();
        assert_eq!(
            warnings.contains("[namespace_quota_warn]"),
            warned,
            "{mode}: {warnings}"
        );
        if warned {
            assert!(warnings.contains("Team"), "the warning names the namespace");
        }
        // Another namespace has its own bucket; case folds ("team" is "Team").
        let other = client
            .call("list_tasks", json!({"agent_id": "q", "namespace": "other"}))
            .await;
        other.ok();
        let folded = client
            .call("list_tasks", json!({"agent_id": "q", "namespace": "team"}))
            .await;
        assert_eq!(folded.is_error, refused.is_some(), "{mode}");
        hub.flush_bookkeeping().await;
        let counted = hub
            .query(
                "SELECT COALESCE(SUM(calls), 0) FROM call_minutes WHERE outcome = 'quota_exceeded'",
            )
            .await;
        let expected = if refused.is_some() { "2" } else { "0" };
        assert_eq!(counted[0][0], expected, "{mode}");
        client.close().await;
        hub.stop().await;
    }
}

/// `name{labels} value` lines of a text exposition, by series.
fn series(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn metrics_expose_counters_that_move_with_the_calls() {
    let hub = TestHub::start().await;
    let (client, token) = hub.agent("m1").await;
    let scrape = || async {
        let response = reqwest::get(format!("{}/metrics", hub.base_url()))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        series(&response.text().await.unwrap())
    };
    let ok_calls = r#"hub_tool_calls_total{tool="list_tasks",outcome="ok"}"#;
    let before = scrape().await;
    for _ in 0..3 {
        client
            .call("list_tasks", json!({"agent_id": "m1", "auth_token": token}))
            .await
            .ok();
    }
    client
        .call(
            "create_task",
            json!({"created_by": "m1", "title": "t", "namespace": "ns-a", "auth_token": token}),
        )
        .await
        .ok();
    let after = scrape().await;
    assert_eq!(
        after[ok_calls] - before.get(ok_calls).copied().unwrap_or(0.0),
        3.0
    );
    assert_eq!(
        after[r#"hub_tool_call_seconds_count{tool="list_tasks"}"#],
        3.0
    );
    assert!(after[r#"hub_auth_checks_total{status="valid"}"#] >= 4.0);
    assert_eq!(after[r#"hub_tasks_pending{namespace="ns-a"}"#], 1.0);
    assert!(after["hub_writer_group_size_count"] >= 1.0);
    assert_eq!(
        after["hub_database_up"], 1.0,
        "the database connection is reported up"
    );
    assert_eq!(after["hub_sessions"], 1.0);
    assert!(
        after.keys().all(|key| !key.contains("m1")),
        "agent ids are never label values"
    );
    client.close().await;
    hub.stop().await;
}
