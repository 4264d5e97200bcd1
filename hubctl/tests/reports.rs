//! hubctl report and observe over a database seeded through the hub's tools.

mod common;

use common::{free_port, hubctl, hubctl_with, text};

use serde_json::{Value, json};

/// A tiny JSON-RPC client: enough to seed a hub through its tools.
struct Rpc {
    http: reqwest::blocking::Client,
    url: String,
    session: String,
    id: u64,
}

impl Rpc {
    fn connect(url: &str) -> Rpc {
        let http = reqwest::blocking::Client::new();
        let response = http
            .post(url)
            .header("content-type", "application/json")
            .json(
                &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "report-test", "version": "1"}}}),
            )
            .send()
            .unwrap();
        let session = response.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_string();
        http.post(url)
            .header("content-type", "application/json")
            .header("mcp-session-id", &session)
            .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .send()
            .unwrap();
        Rpc {
            http,
            url: url.to_string(),
            session,
            id: 1,
        }
    }

    fn call(&mut self, tool: &str, args: Value) -> Value {
        self.id += 1;
        let body: Value = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("mcp-session-id", &self.session)
            .json(
                &json!({"jsonrpc": "2.0", "id": self.id, "method": "tools/call",
                          "params": {"name": tool, "arguments": args}}),
            )
            .send()
            .unwrap()
            .json()
            .unwrap();
        serde_json::from_str(body["result"]["content"][0]["text"].as_str().unwrap()).unwrap()
    }
}

#[test]
fn report_and_observe_over_a_seeded_database() {
    report_and_observe("# empty test profile\n");
}

/// The same report and observation of a hub on PostgreSQL: they read through the store.
#[test]
fn report_and_observe_over_a_seeded_postgresql_database() {
    let cluster = hub_server::pg_cluster::Cluster::shared()
        .unwrap_or_else(|e| panic!("PostgreSQL for tests: {e}"));
    let url = cluster.create_database("hubctl_report").unwrap();
    report_and_observe(&format!("MCP_HUB_DB_URL={url}\n"));
}

fn report_and_observe(profile: &str) {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let hubctl =
        |data: &std::path::Path, port: u16, args: &[&str]| hubctl_with(data, port, profile, args);
    let started = hubctl(data.path(), port, &["start"]);
    assert!(started.status.success(), "{}", text(&started));

    let mut rpc = Rpc::connect(&format!("http://127.0.0.1:{port}/mcp"));
    let token = |rpc: &mut Rpc, id: &str| {
        rpc.call(
            "register_agent",
            json!({"id": id, "name": id, "type": "test"}),
        )["auth"]["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let alice = token(&mut rpc, "alice");
    let _bob = token(&mut rpc, "bob");
    for n in 0..3 {
        let sent = rpc.call(
            "send_message",
            json!({"from_agent": "alice", "to_agent": "bob", "content": format!("m{n}"), "auth_token": alice}),
        );
        assert_eq!(sent["success"], true);
    }
    // Two calls without a token: recorded as missing (observe mode lets them through).
    for key in ["plan", "status"] {
        let shared = rpc.call(
            "share_context",
            json!({"agent_id": "bob", "key": key, "value": "v"}),
        );
        assert_eq!(shared["success"], true);
    }
    // Task flow in namespace "exp": two tasks, one claimed and completed, one left pending;
    // one refused claim of a done task.
    let mut task_ids = Vec::new();
    for title in ["build", "test"] {
        let created = rpc.call(
            "create_task",
            json!({"title": title, "created_by": "alice", "namespace": "exp", "auth_token": alice}),
        );
        task_ids.push(created["task"]["id"].as_i64().unwrap());
    }
    let claimed = rpc.call(
        "claim_task",
        json!({"task_id": task_ids[0], "agent_id": "alice", "namespace": "exp", "auth_token": alice}),
    );
    let claim_id = claimed["claim"]["claim_id"].as_str().unwrap().to_string();
    let released = rpc.call(
        "release_task_claim",
        json!({"task_id": task_ids[0], "agent_id": "alice", "claim_id": claim_id,
               "next_status": "done", "confidence": 0.95, "verification_passed": true,
               "evidence_refs": ["ci:run-1"], "auth_token": alice}),
    );
    assert_eq!(released["success"], true, "{released}");
    let refused = rpc.call(
        "claim_task",
        json!({"task_id": task_ids[0], "agent_id": "alice", "namespace": "exp", "auth_token": alice}),
    );
    assert_eq!(refused["error_code"], "TASK_ALREADY_DONE");

    let stopped = hubctl(data.path(), port, &["stop"]);
    assert!(stopped.status.success());

    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().to_str().unwrap();
    let report = hubctl(
        data.path(),
        port,
        &[
            "report",
            "--hours",
            "1",
            "--out-dir",
            out_dir,
            "--tag",
            "t1",
        ],
    );
    assert!(report.status.success(), "{}", text(&report));
    assert!(text(&report).contains("Report generated:"));
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("t1.json")).unwrap())
            .unwrap();
    let summary = &json["summary"];
    assert_eq!(summary["current"]["agents_total"], 2);
    assert_eq!(summary["current"]["messages_total"], 3);
    assert_eq!(summary["current"]["context_keys_total"], 2);
    assert_eq!(summary["window_counters"]["messages_sent"], 3);
    assert_eq!(summary["window_counters"]["context_rows_updated"], 2);
    assert_eq!(summary["auth"]["valid"], 8);
    assert_eq!(summary["auth"]["missing"], 2);
    assert_eq!(summary["auth"]["coverage_pct"], 80.0);
    assert_eq!(summary["current"]["tasks_open"], 1);
    assert_eq!(summary["current"]["tasks_pending"], 1);
    assert_eq!(summary["current"]["claims_active"], 0);
    assert_eq!(summary["window_counters"]["tasks_created"], 2);
    assert_eq!(summary["window_counters"]["status_done"], 1);
    assert_eq!(summary["claims"]["claim_ok"], 1);
    assert_eq!(summary["claims"]["claim_failed"], 1);
    assert_eq!(summary["claims"]["release_ok"], 1);
    assert_eq!(
        json["failure_reasons"],
        json!([{"reason": "TASK_ALREADY_DONE", "count": 1}])
    );
    assert_eq!(
        json["namespace_throughput"],
        json!([{"namespace": "exp", "created_window": 2, "done_window": 1, "pending_now": 1}])
    );
    let gaps = json["auth_gaps_by_tool"].as_array().unwrap();
    assert_eq!(gaps[0]["tool"], "share_context");
    assert!(
        json["top_actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "send_message" && a["count"] == 3)
    );
    assert_eq!(json["health"], Value::Null, "the hub is stopped");
    let markdown = std::fs::read_to_string(out.path().join("t1.md")).unwrap();
    assert!(markdown.starts_with("Pool Report"));
    assert!(markdown.contains("**Auth Coverage**"));
    assert!(markdown.contains("- coverage: 80%"));

    let observe = hubctl(
        data.path(),
        port,
        &[
            "observe",
            "--interval-sec",
            "0",
            "--samples",
            "2",
            "--out-dir",
            out_dir,
            "--tag",
            "o1",
        ],
    );
    assert!(observe.status.success(), "{}", text(&observe));
    let raw = std::fs::read_to_string(out.path().join("o1.jsonl")).unwrap();
    let samples: Vec<Value> = raw
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[0]["messages_total"], 3);
    assert_eq!(samples[0]["agents_total"], 2);
    assert_eq!(samples[0]["tasks_total"], 2);
    assert_eq!(samples[0]["tasks_done"], 1);
    assert_eq!(samples[0]["by_namespace"][0]["ns"], "exp");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("o1.summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["samples"], 2);
    assert_eq!(summary["trend"]["messages_delta"], 0);
    let shown = String::from_utf8_lossy(&observe.stdout).to_string();
    assert!(shown.contains("Observation complete."));
    assert!(shown.contains("messages_delta"), "trend table: {shown}");
    assert!(!shown.contains('{'), "no JSON dump without --json: {shown}");

    // The legacy name still works, and --json prints the summary alone, for machines.
    let machine = hubctl(
        data.path(),
        port,
        &[
            "observe-hub",
            "--interval-sec",
            "0",
            "--samples",
            "1",
            "--out-dir",
            out_dir,
            "--tag",
            "o2",
            "--json",
        ],
    );
    assert!(machine.status.success(), "{}", text(&machine));
    let summary: Value = serde_json::from_slice(&machine.stdout).unwrap();
    assert_eq!(summary["tag"], "o2");
    assert_eq!(summary["snapshot"]["messages_total"], 3);
}

#[test]
fn report_refuses_a_missing_database_and_a_bad_window() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let missing = hubctl(data.path(), port, &["report", "--hours", "2"]);
    assert!(!missing.status.success());
    assert!(text(&missing).contains("Database not found at"));
    // Under its legacy name too: the window is refused, not the command.
    let zero = hubctl(data.path(), port, &["pool-report", "--hours", "0"]);
    assert!(!zero.status.success());
    assert!(text(&zero).contains("--hours"), "{}", text(&zero));
    assert!(!text(&zero).contains("unrecognized subcommand"));
}
