//! Task board: creation and listing (modes, filters, delta cursor, polling guard), atomic
//! claims under races and at scale, fenced leases with a manual clock, dependency and
//! unblock ordering, runtime routing, namespace governance, the done gate as a table,
//! ownership rules, deletes, and the maintenance pass.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use crate::harness::{Client, Outcome, TestHub};
use hub_server::maintenance;

pub(crate) async fn create(client: &Client, by: &str, title: &str, extra: Value) -> i64 {
    let mut args = json!({"created_by": by, "title": title});
    for (key, value) in extra.as_object().cloned().unwrap_or_default() {
        args[key] = value;
    }
    let outcome = client.call("create_task", args).await;
    outcome.ok()["task"]["id"].as_i64().unwrap()
}

pub(crate) async fn poll(client: &Client, agent: &str) -> Value {
    client
        .call("poll_and_claim", json!({"agent_id": agent}))
        .await
        .ok()
        .clone()
}

/// `total` tasks of mixed priorities (cheap consistency) created by 8 concurrent sessions,
/// the n-th on `urls[n % urls.len()]`.
pub(crate) async fn create_concurrently(urls: &[String], total: usize) {
    const CREATORS: usize = 8;
    let creators: Vec<_> = (0..CREATORS)
        .map(|creator| {
            let url = urls[creator % urls.len()].clone();
            tokio::spawn(async move {
                let client = Client::connect(&url, None).await;
                for i in 0..total / CREATORS {
                    let priority = ["low", "medium", "high", "critical"][i % 4];
                    create(
                        &client,
                        "lead",
                        &format!("job {creator}-{i}"),
                        json!({"priority": priority, "consistency_mode": "cheap"}),
                    )
                    .await;
                }
                client.close().await;
            })
        })
        .collect();
    for creator in creators {
        creator.await.unwrap();
    }
}

/// A worker on `url`: polls and finishes tasks as `agent` until the queue is empty;
/// returns the (task, claim id) of every claim it got.
pub(crate) async fn drain_queue(url: String, agent: String) -> Vec<(i64, String)> {
    let client = Client::connect(&url, None).await;
    let mut claims = Vec::new();
    loop {
        let polled = poll(&client, &agent).await;
        if polled["task"].is_null() {
            break;
        }
        let task = polled["task"]["id"].as_i64().unwrap();
        let claim_id = polled["claim"]["claim_id"].as_str().unwrap().to_string();
        let released = client
            .call(
                "release_task_claim",
                done_args(task, &agent, json!({"claim_id": claim_id})),
            )
            .await;
        assert_eq!(released.ok()["task"]["status"], "done", "task {task}");
        claims.push((task, claim_id));
    }
    client.close().await;
    claims
}

pub(crate) fn done_args(task_id: i64, agent: &str, extra: Value) -> Value {
    let mut args = json!({
        "task_id": task_id, "agent_id": agent, "next_status": "done",
        "confidence": 0.95, "verification_passed": true,
        "evidence_refs": [format!("test:task-{task_id}")],
    });
    for (key, value) in extra.as_object().cloned().unwrap_or_default() {
        args[key] = value;
    }
    args
}

async fn register(hub: &TestHub, id: &str, extra: Value) -> Client {
    let client = hub.client().await;
    client.register(id, extra).await;
    client
}

fn ids(tasks: &Value) -> Vec<i64> {
    tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().or(t["i"].as_i64()).unwrap())
        .collect()
}

async fn counters_consistent(hub: &TestHub) {
    let mismatches = hub
        .handle
        .hub
        .store
        .read(hub_server::store::tasks::counter_mismatches)
        .await
        .unwrap();
    assert!(
        mismatches.is_empty(),
        "dependency counters drifted: {mismatches:?}"
    );
}

async fn history_sources(hub: &TestHub, task_id: i64) -> Vec<(String, String, String)> {
    hub.handle
        .hub
        .store
        .read(move |conn| hub_server::store::tasks::history(conn, task_id))
        .await
        .unwrap()
        .into_iter()
        .map(|h| {
            (
                h.from_status.as_str().to_string(),
                h.to_status.as_str().to_string(),
                h.source.as_str().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn create_defaults_list_modes_filters_and_delta_cursor() {
    let hub = TestHub::start().await;
    let c = hub.client().await;
    let created = c
        .call(
            "create_task",
            json!({"created_by": "lead", "title": "Fix bug"}),
        )
        .await;
    let body = created.ok();
    assert_eq!(body["success"], true);
    let task = &body["task"];
    assert_eq!(task["status"], "pending");
    assert_eq!(task["priority"], "medium");
    assert_eq!(task["namespace"], "default");
    assert_eq!(task["execution_mode"], "any");
    assert_eq!(task["consistency_mode"], "cheap");
    assert_eq!(task["assigned_to"], Value::Null);
    assert_eq!(task["description"], "");
    assert!(task.get("depends_on").is_none());
    assert_eq!(body["namespace_policy"]["mode"], "warn");
    let first = task["id"].as_i64().unwrap();
    let critical = create(
        &c,
        "lead",
        "Outage",
        json!({"priority": "critical", "namespace": "ops", "trace_id": "trace-0123456789abcdef"}),
    )
    .await;
    let dependent = create(&c, "lead", "Follow-up", json!({"depends_on": [first, first, 0, "x", 1.5], "assigned_to": "", "execution_mode": "repo"})).await;

    // Full listing: newest first, no success key.
    let all = c.call("list_tasks", json!({"agent_id": "lead"})).await;
    let body = all.ok();
    assert!(body.get("success").is_none());
    assert_eq!(ids(&body["tasks"]), vec![dependent, critical, first]);
    assert_eq!(body["tasks"][1]["consistency_mode"], "strict");
    assert_eq!(
        body["tasks"][0]["assigned_to"],
        Value::Null,
        "empty assignee is null (D32)"
    );
    assert_eq!(body["has_more"], false);
    assert_eq!(body["next_cursor"], Value::Null);

    // Filters and readiness.
    let filtered = c
        .call(
            "list_tasks",
            json!({"namespace": "ops", "response_mode": "compact"}),
        )
        .await;
    assert_eq!(ids(&filtered.ok()["tasks"]), vec![critical]);
    let ready = c
        .call(
            "list_tasks",
            json!({"ready_only": true, "include_dependencies": true, "response_mode": "compact"}),
        )
        .await;
    assert_eq!(ids(&ready.ok()["tasks"]), vec![critical, first]);
    let with_deps = c
        .call(
            "list_tasks",
            json!({"execution_mode": "repo", "include_dependencies": true}),
        )
        .await;
    assert_eq!(with_deps.ok()["tasks"][0]["depends_on"], json!([first]));

    // Shapes of tiny and nano.
    let tiny = c
        .call(
            "list_tasks",
            json!({"response_mode": "tiny", "include_dependencies": true, "namespace": "ops"}),
        )
        .await;
    let item = &tiny.ok()["tasks"][0];
    assert_eq!(item["trace_id"], "trace-012345");
    assert_eq!(item["title_preview"], "Outage");
    assert_eq!(item["title_chars"], 6);
    assert_eq!(item["depends_on_count"], 0);
    let nano = c.call("list_tasks", json!({"response_mode": "nano"})).await;
    let body = nano.ok();
    assert_eq!(body["h"], 0);
    let keys: HashSet<&str> = body["t"][1]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        HashSet::from(["i", "s", "a", "p", "n", "e", "cm", "u", "tc", "t", "x"])
    );
    assert_eq!(body["t"][1]["cm"], "s");
    assert!(body["t"][0].get("dc").is_none());

    // Offset paging reports has_more and next_offset.
    let page = c
        .call(
            "list_tasks",
            json!({"limit": 2, "response_mode": "compact"}),
        )
        .await;
    assert_eq!(page.ok()["has_more"], true);
    assert_eq!(page.ok()["next_offset"], 2);

    // Delta: cursor from 0 returns changes in order; a change re-delivers the row once.
    let delta = c
        .call(
            "list_tasks",
            json!({"cursor": "0", "limit": 2, "response_mode": "compact"}),
        )
        .await;
    let body = delta.ok();
    assert_eq!(ids(&body["tasks"]), vec![first, critical]);
    assert_eq!(body["has_more"], true);
    let cursor = body["next_cursor"].as_str().unwrap().to_string();
    let rest = c
        .call(
            "list_tasks",
            json!({"cursor": cursor, "response_mode": "nano"}),
        )
        .await;
    let body = rest.ok();
    assert_eq!(ids(&body["t"]), vec![dependent]);
    let end = body["n"].as_str().unwrap().to_string();
    c.call(
        "update_task",
        json!({"id": first, "agent_id": "lead", "title": "Fix bug now"}),
    )
    .await
    .ok();
    let changed = c
        .call(
            "list_tasks",
            json!({"cursor": end, "response_mode": "tiny"}),
        )
        .await;
    assert_eq!(ids(&changed.ok()["tasks"]), vec![first]);
    // updated_after is a delta too; both refuse full mode.
    let since = c
        .call(
            "list_tasks",
            json!({"updated_after": 0, "response_mode": "compact"}),
        )
        .await;
    assert_eq!(since.ok()["tasks"].as_array().unwrap().len(), 3);
    for args in [
        json!({"cursor": "0"}),
        json!({"updated_after": 0}),
        json!({"polling": true}),
    ] {
        let refused = c.call("list_tasks", args).await;
        assert_eq!(refused.error_code(), "FULL_MODE_FORBIDDEN_IN_POLLING");
        assert_eq!(
            refused.json["allowed_response_modes"],
            json!(["nano", "tiny", "compact"])
        );
    }
    let bad = c
        .call(
            "list_tasks",
            json!({"cursor": "nope", "response_mode": "nano"}),
        )
        .await;
    assert_eq!(bad.error_code(), "CURSOR_INVALID");

    // Unknown dependency ids: a JSON refusal naming them, nothing written (D28).
    let invalid = c
        .call(
            "create_task",
            json!({"created_by": "lead", "title": "x", "depends_on": [first, 999, 998]}),
        )
        .await;
    assert_eq!(invalid.error_code(), "INVALID_DEPENDENCY");
    assert_eq!(invalid.json["invalid_ids"], json!([998, 999]));
    let count = c.call("list_tasks", json!({"response_mode": "nano"})).await;
    assert_eq!(count.ok()["t"].as_array().unwrap().len(), 3);
    let blank = c
        .call("create_task", json!({"created_by": "lead", "title": "  "}))
        .await;
    assert_eq!(blank.error_code(), "INVALID_ARGUMENT");
    hub.stop().await;
}

#[tokio::test]
async fn two_workers_race_for_one_task_exactly_one_wins() {
    let hub = TestHub::start_with(&[("MCP_HUB_RATE_LIMIT_RPS", "0")]).await;
    let lead = hub.client().await;
    for round in 0..10 {
        let task = create(
            &lead,
            "lead",
            &format!("race {round}"),
            json!({"priority": "high"}),
        )
        .await;
        let a = hub.client().await;
        let b = hub.client().await;
        let (ra, rb) = tokio::join!(poll(&a, "wa"), poll(&b, "wb"));
        let winners: Vec<&Value> = [&ra, &rb]
            .into_iter()
            .filter(|r| !r["task"].is_null())
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {ra} {rb}");
        assert_eq!(winners[0]["task"]["id"], task);
        assert_eq!(winners[0]["task"]["status"], "in_progress");
        let loser = if ra["task"].is_null() { &ra } else { &rb };
        let retry = loser["retry_after_ms"].as_i64().unwrap();
        assert!((200..=12_000).contains(&retry), "{retry}");
        assert_eq!(loser["runtime_mode"], "unknown");
        assert!(loser["message"].is_string());
        // Finish it so the next round races for a fresh task.
        let winner = winners[0]["claim"]["agent_id"]
            .as_str()
            .unwrap()
            .to_string();
        let client = if winner == "wa" { &a } else { &b };
        client
            .call("release_task_claim", done_args(task, &winner, json!({})))
            .await
            .ok();
    }
    // Two tasks, two racers: each gets a different one.
    let t1 = create(&lead, "lead", "one", json!({})).await;
    let t2 = create(&lead, "lead", "two", json!({})).await;
    let (a, b) = (hub.client().await, hub.client().await);
    let (ra, rb) = tokio::join!(poll(&a, "wa"), poll(&b, "wb"));
    let got: HashSet<i64> = [&ra, &rb]
        .iter()
        .map(|r| r["task"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, HashSet::from([t1, t2]));
    hub.stop().await;
}

#[tokio::test]
async fn expired_lease_is_taken_over_and_the_old_holder_is_fenced_off() {
    // Sweeps throttled to one per 5 s: the takeover below happens inside that window, so it
    // relies on expired claims counting as absent in the claim check itself (D21).
    let hub = TestHub::start_with(&[("MCP_HUB_CLAIM_CLEANUP_THROTTLE_MS", "5000")]).await;
    let a = register(&hub, "worker-a", json!({})).await;
    let b = register(&hub, "worker-b", json!({})).await;
    let task = create(&a, "lead", "lease me", json!({})).await;

    let claimed = a
        .call(
            "claim_task",
            json!({"task_id": task, "agent_id": "worker-a", "lease_seconds": 1}),
        )
        .await;
    let body = claimed.ok();
    let claim_a = body["claim"]["claim_id"].as_str().unwrap().to_string();
    assert_eq!(
        body["claim"]["lease_expires_at"].as_i64().unwrap()
            - body["claim"]["claimed_at"].as_i64().unwrap(),
        30_000,
        "leases clamp to at least 30 s"
    );
    // B is refused while the lease is live, with the current claim (without its id).
    hub.clock.advance_ms(29_000);
    let refused = b
        .call(
            "claim_task",
            json!({"task_id": task, "agent_id": "worker-b"}),
        )
        .await;
    assert_eq!(refused.error_code(), "ALREADY_CLAIMED");
    assert!(
        refused.json["error"]
            .as_str()
            .unwrap()
            .contains("already claimed")
    );
    assert_eq!(refused.json["current_claim"]["agent_id"], "worker-a");
    assert!(refused.json["current_claim"].get("claim_id").is_none());
    // Renew by B is refused too, and changes nothing.
    let foreign = b
        .call(
            "renew_task_claim",
            json!({"task_id": task, "agent_id": "worker-b", "claim_id": claim_a}),
        )
        .await;
    assert_eq!(foreign.error_code(), "NOT_CLAIM_OWNER");

    // The lease runs out: A's renewal is refused (D20) and nothing is resurrected.
    hub.clock.advance_ms(1_001);
    let late = a
        .call(
            "renew_task_claim",
            json!({"task_id": task, "agent_id": "worker-a", "claim_id": claim_a}),
        )
        .await;
    assert_eq!(late.error_code(), "CLAIM_EXPIRED");
    // Expired claims never block (D21): B claims at once, even inside the sweep throttle.
    let taken = b
        .call(
            "claim_task",
            json!({"task_id": task, "agent_id": "worker-b"}),
        )
        .await;
    let body = taken.ok();
    let claim_b = body["claim"]["claim_id"].as_str().unwrap().to_string();
    assert_ne!(claim_a, claim_b);
    assert_eq!(body["task"]["assigned_to"], "worker-b");

    // A's renew and release with its stale claim fail and change nothing.
    for tool in ["renew_task_claim", "release_task_claim"] {
        let mut args = json!({"task_id": task, "agent_id": "worker-a", "claim_id": claim_a});
        if tool == "release_task_claim" {
            args["next_status"] = json!("pending");
        }
        let outcome = a.call(tool, args).await;
        assert_eq!(outcome.error_code(), "NOT_CLAIM_OWNER", "{tool}");
        assert!(outcome.json["current_claim"].get("claim_id").is_none());
    }
    let sneaky_done = a
        .call("release_task_claim", done_args(task, "worker-a", json!({})))
        .await;
    assert_eq!(
        sneaky_done.error_code(),
        "NOT_CLAIM_OWNER",
        "ownership before the gate (D26)"
    );

    // B renews with its id; a stale id of its own (after rotation) is refused.
    b.call(
        "renew_task_claim",
        json!({"task_id": task, "agent_id": "worker-b", "claim_id": claim_b, "lease_seconds": 600}),
    )
    .await
    .ok();
    let rotated = b
        .call(
            "claim_task",
            json!({"task_id": task, "agent_id": "worker-b"}),
        )
        .await;
    let claim_b2 = rotated.ok()["claim"]["claim_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(claim_b, claim_b2, "re-claim rotates the claim id");
    let stale = b
        .call(
            "release_task_claim",
            done_args(task, "worker-b", json!({"claim_id": claim_b})),
        )
        .await;
    assert_eq!(stale.error_code(), "CLAIM_ID_MISMATCH");
    assert_eq!(stale.json["current_claim"]["claim_id"], claim_b2.as_str());

    // list_task_claims shows the claim id to its owner only (D36).
    let as_owner = b
        .call("list_task_claims", json!({"requesting_agent": "worker-b"}))
        .await;
    let body = as_owner.ok();
    assert!(body.get("success").is_none());
    assert_eq!(body["claims"][0]["claim_id"], claim_b2.as_str());
    assert_eq!(body["claims"][0]["task_title"], "lease me");
    assert_eq!(body["claims"][0]["task_status"], "in_progress");
    let as_other = a
        .call(
            "list_task_claims",
            json!({"requesting_agent": "worker-a", "agent_id": "worker-b"}),
        )
        .await;
    assert!(as_other.ok()["claims"][0].get("claim_id").is_none());

    // B's completion stands.
    let done = b
        .call(
            "release_task_claim",
            done_args(task, "worker-b", json!({"claim_id": claim_b2})),
        )
        .await;
    let body = done.ok();
    assert_eq!(body["task"]["status"], "done");
    assert_eq!(body["task"]["assigned_to"], "worker-b");
    assert_eq!(body["required_confidence"], 0.9);
    assert_eq!(body["required_evidence_refs"], 1);
    assert_eq!(body["evidence_refs_added"], 1);
    let again = a
        .call(
            "claim_task",
            json!({"task_id": task, "agent_id": "worker-a"}),
        )
        .await;
    assert_eq!(again.error_code(), "TASK_ALREADY_DONE");
    assert_eq!(again.json["task"]["status"], "done");
    assert_eq!(
        history_sources(&hub, task).await,
        vec![
            // B took over inside the sweep throttle: no sweep ran, so no requeue row.
            ("pending".into(), "in_progress".into(), "claim_task".into()),
            (
                "in_progress".into(),
                "done".into(),
                "release_task_claim".into()
            ),
        ]
    );
    let empty = a.call("list_task_claims", json!({})).await;
    assert_eq!(empty.ok()["claims"], json!([]));
    hub.stop().await;
}

#[tokio::test]
async fn an_expired_lease_never_blocks_a_poll() {
    let hub = TestHub::start().await;
    let a = hub.client().await;
    let b = hub.client().await;
    let task = create(&a, "lead", "flaky worker", json!({})).await;
    let first = a
        .call(
            "poll_and_claim",
            json!({"agent_id": "wa", "lease_seconds": 30}),
        )
        .await;
    let claim_a = first.ok()["claim"]["claim_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(poll(&b, "wb").await["task"].is_null());
    hub.clock.advance_ms(30_000);
    let second = poll(&b, "wb").await;
    assert_eq!(
        second["task"]["id"], task,
        "requeued at once and handed to the next poller"
    );
    let release = a
        .call(
            "release_task_claim",
            json!({"task_id": task, "agent_id": "wa", "claim_id": claim_a}),
        )
        .await;
    assert_eq!(release.error_code(), "NOT_CLAIM_OWNER");
    assert_eq!(
        history_sources(&hub, task).await,
        vec![
            (
                "pending".into(),
                "in_progress".into(),
                "poll_and_claim".into()
            ),
            (
                "in_progress".into(),
                "pending".into(),
                "lease_expiry".into()
            ),
            (
                "pending".into(),
                "in_progress".into(),
                "poll_and_claim".into()
            ),
        ]
    );
    hub.stop().await;
}

#[tokio::test]
async fn thirty_two_workers_drain_two_thousand_tasks_exactly_once() {
    const TASKS: usize = 2_000;
    const WORKERS: usize = 32;
    let hub = TestHub::start_with(&[
        ("MCP_HUB_RATE_LIMIT_RPS", "0"),
        ("MCP_HUB_MAINTENANCE_INTERVAL_MS", "86400000"),
    ])
    .await;
    let url = hub.url();
    create_concurrently(std::slice::from_ref(&url), TASKS).await;
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| tokio::spawn(drain_queue(url.clone(), format!("drain-{w}"))))
        .collect();
    let mut claims: Vec<(i64, String)> = Vec::new();
    for (w, worker) in workers.into_iter().enumerate() {
        let got = worker.await.unwrap();
        claims.extend(
            got.into_iter()
                .map(|(task, _)| (task, format!("drain-{w}"))),
        );
    }
    let unique: HashSet<i64> = claims.iter().map(|(id, _)| *id).collect();
    assert_eq!(claims.len(), TASKS, "each task claimed once, none twice");
    assert_eq!(unique.len(), TASKS);
    let per_worker: HashMap<&str, usize> = claims.iter().fold(HashMap::new(), |mut m, (_, a)| {
        *m.entry(a.as_str()).or_default() += 1;
        m
    });
    assert!(per_worker.len() > 1, "work was shared: {per_worker:?}");

    let client = hub.client().await;
    let mut done = 0;
    let mut offset = 0;
    loop {
        let page = client
            .call(
                "list_tasks",
                json!({"status": "done", "limit": 500, "offset": offset, "response_mode": "nano"}),
            )
            .await;
        let body = page.ok();
        done += body["t"].as_array().unwrap().len();
        if body["h"] == 0 {
            break;
        }
        offset += 500;
    }
    assert_eq!(done, TASKS);
    for status in ["pending", "in_progress"] {
        let left = client
            .call(
                "list_tasks",
                json!({"status": status, "response_mode": "nano"}),
            )
            .await;
        assert_eq!(left.ok()["t"], json!([]), "{status}");
    }
    let no_claims = client.call("list_task_claims", json!({})).await;
    assert_eq!(no_claims.ok()["claims"], json!([]));
    hub.stop().await;
}

#[tokio::test]
async fn dependency_and_unblock_ordering_cycles_and_guarded_deletes() {
    let hub = TestHub::start().await;
    let c = hub.client().await;
    let older = create(&c, "lead", "older medium", json!({})).await;
    let hub_task = create(&c, "lead", "unblocks two", json!({})).await;
    let urgent = create(&c, "lead", "urgent", json!({"priority": "high"})).await;
    let child1 = create(&c, "lead", "child 1", json!({"depends_on": [hub_task]})).await;
    let child2 = create(&c, "lead", "child 2", json!({"depends_on": [hub_task]})).await;
    let grandchild = create(
        &c,
        "lead",
        "grandchild",
        json!({"depends_on": [child1, child2]}),
    )
    .await;

    let early = c
        .call(
            "claim_task",
            json!({"task_id": grandchild, "agent_id": "w"}),
        )
        .await;
    assert_eq!(early.error_code(), "DEPENDENCIES_NOT_MET");
    assert_eq!(early.json["unmet_dependencies"], json!([child1, child2]));

    // A cycle is refused (D28), an unknown id too, and nothing changes.
    let cycle = c
        .call(
            "update_task",
            json!({"id": hub_task, "agent_id": "lead", "depends_on": [grandchild]}),
        )
        .await;
    assert_eq!(cycle.error_code(), "DEPENDENCY_CYCLE");
    let unknown = c
        .call(
            "update_task",
            json!({"id": hub_task, "agent_id": "lead", "depends_on": [4242]}),
        )
        .await;
    assert_eq!(unknown.error_code(), "INVALID_DEPENDENCY");
    assert_eq!(unknown.json["invalid_ids"], json!([4242]));

    // Deleting an unfinished prerequisite does not silently unblock dependents (D30).
    let guarded = c
        .call("delete_task", json!({"id": hub_task, "agent_id": "lead"}))
        .await;
    assert_eq!(guarded.error_code(), "TASK_HAS_DEPENDENTS");
    assert_eq!(guarded.json["dependents"], json!([child1, child2]));

    // priority first, then how many it unblocks, then age.
    let mut order = Vec::new();
    for _ in 0..6 {
        let polled = poll(&c, "w").await;
        let id = polled["task"]["id"].as_i64().unwrap();
        order.push(id);
        c.call("release_task_claim", done_args(id, "w", json!({})))
            .await
            .ok();
    }
    // Once hub_task is done its children each unblock the grandchild, so they outrank the
    // older task that unblocks nothing; among equals the older wins.
    assert_eq!(
        order,
        vec![urgent, hub_task, child1, child2, older, grandchild]
    );
    assert!(poll(&c, "w").await["task"].is_null());
    counters_consistent(&hub).await;

    // Forced delete of an unfinished prerequisite is explicit, and the dependent becomes ready.
    let pre = create(&c, "lead", "pre", json!({})).await;
    let post = create(&c, "lead", "post", json!({"depends_on": [pre]})).await;
    let forced = c
        .call(
            "delete_task",
            json!({"id": pre, "agent_id": "lead", "force": true}),
        )
        .await;
    assert_eq!(forced.ok()["archived"], true);
    let ready = c
        .call(
            "list_tasks",
            json!({"ready_only": true, "status": "pending", "response_mode": "nano"}),
        )
        .await;
    assert_eq!(ids(&ready.ok()["t"]), vec![post]);
    counters_consistent(&hub).await;
    hub.stop().await;
}

#[tokio::test]
async fn routing_follows_the_runtime_profile() {
    let hub = TestHub::start().await;
    let repo = register(
        &hub,
        "repo-agent",
        json!({"runtime_profile": {"has_git": true}}),
    )
    .await;
    let isolated = register(
        &hub,
        "iso-agent",
        json!({"runtime_profile": {"empty_dir": true}}),
    )
    .await;
    let unknown = register(&hub, "plain-agent", json!({})).await;
    let repo_task = create(
        &repo,
        "lead",
        "needs repo",
        json!({"execution_mode": "repo", "priority": "critical"}),
    )
    .await;
    let iso_task = create(
        &repo,
        "lead",
        "needs sandbox",
        json!({"execution_mode": "isolated", "priority": "high"}),
    )
    .await;
    let any_task = create(&repo, "lead", "anywhere", json!({"priority": "low"})).await;

    let refused = isolated
        .call(
            "claim_task",
            json!({"task_id": repo_task, "agent_id": "iso-agent"}),
        )
        .await;
    assert_eq!(refused.error_code(), "PROFILE_MISMATCH");
    assert_eq!(refused.json["agent_runtime_mode"], "isolated");
    assert_eq!(refused.json["task_execution_mode"], "repo");

    // Unknown agents only get `any` tasks; isolated never gets `repo`.
    let u = poll(&unknown, "plain-agent").await;
    assert_eq!(u["task"]["id"], any_task);
    assert_eq!(u["runtime_mode"], "unknown");
    let i = poll(&isolated, "iso-agent").await;
    assert_eq!(i["task"]["id"], iso_task);
    assert_eq!(i["runtime_mode"], "isolated");
    assert!(poll(&isolated, "iso-agent").await["task"].is_null());
    let r = poll(&repo, "repo-agent").await;
    assert_eq!(r["task"]["id"], repo_task);
    assert_eq!(r["runtime_mode"], "repo");

    // Namespace filter on poll; pre-assigned tasks go to their assignee only (D23).
    let scoped = create(&repo, "lead", "scoped", json!({"namespace": "team-a"})).await;
    let mine = create(
        &repo,
        "lead",
        "for plain",
        json!({"assigned_to": "plain-agent", "priority": "critical"}),
    )
    .await;
    let other_ns = repo
        .call(
            "poll_and_claim",
            json!({"agent_id": "repo-agent", "namespace": "team-b"}),
        )
        .await;
    assert!(other_ns.ok()["task"].is_null());
    let stolen = repo
        .call(
            "claim_task",
            json!({"task_id": mine, "agent_id": "repo-agent"}),
        )
        .await;
    assert_eq!(stolen.error_code(), "TASK_ASSIGNED_TO_OTHER");
    let mismatch = repo
        .call(
            "claim_task",
            json!({"task_id": scoped, "agent_id": "repo-agent", "namespace": "team-b"}),
        )
        .await;
    assert_eq!(mismatch.error_code(), "NAMESPACE_MISMATCH");
    let in_ns = repo
        .call(
            "poll_and_claim",
            json!({"agent_id": "repo-agent", "namespace": "team-a", "include_artifacts": true}),
        )
        .await;
    let body = in_ns.ok();
    assert_eq!(body["task"]["id"], scoped);
    assert_eq!(body["task_artifacts"], json!([]));
    let assigned = poll(&unknown, "plain-agent").await;
    assert_eq!(assigned["task"]["id"], mine);
    hub.stop().await;
}

#[tokio::test]
async fn namespace_governance_off_warn_require() {
    // warn (default): the call proceeds with the warning.
    let hub = TestHub::start().await;
    let c = hub.client().await;
    let warned = c
        .call(
            "create_task",
            json!({"created_by": "lead", "title": "swarm round 3 task"}),
        )
        .await;
    let body = warned.ok();
    assert_eq!(body["namespace_policy"]["mode"], "warn");
    assert!(
        body["namespace_policy"]["warning"]
            .as_str()
            .unwrap()
            .contains("Namespace is required")
    );
    // Whole tokens only (D37).
    let quiet = c
        .call(
            "create_task",
            json!({"created_by": "networker", "title": "background cleanup"}),
        )
        .await;
    assert!(quiet.ok()["namespace_policy"].get("warning").is_none());
    let polled = c
        .call("poll_and_claim", json!({"agent_id": "worker-7"}))
        .await;
    assert!(
        polled.ok()["warning"]
            .as_str()
            .unwrap()
            .contains("Namespace is required")
    );
    hub.stop().await;

    // require: refused without a namespace, accepted with one.
    let hub = TestHub::start_with(&[("MCP_HUB_NAMESPACE_GOVERNANCE", "require")]).await;
    let c = hub.client().await;
    let refused = c
        .call(
            "create_task",
            json!({"created_by": "orchestrator-1", "title": "t"}),
        )
        .await;
    assert_eq!(refused.error_code(), "NAMESPACE_REQUIRED");
    assert!(
        refused.json["error"]
            .as_str()
            .unwrap()
            .contains("Namespace is required")
    );
    assert!(
        refused.json["error"]
            .as_str()
            .unwrap()
            .contains("create_task")
    );
    let ok = c
        .call(
            "create_task",
            json!({"created_by": "orchestrator-1", "title": "t", "namespace": "exp-1"}),
        )
        .await;
    assert_eq!(ok.ok()["namespace_policy"]["mode"], "require");
    let task = ok.json["task"]["id"].as_i64().unwrap();
    for (tool, args) in [
        ("poll_and_claim", json!({"agent_id": "sw-EXP5-1"})),
        (
            "claim_task",
            json!({"agent_id": "sw-EXP5-1", "task_id": task}),
        ),
    ] {
        let outcome = c.call(tool, args).await;
        assert_eq!(outcome.error_code(), "NAMESPACE_REQUIRED", "{tool}");
    }
    let scoped = c
        .call(
            "poll_and_claim",
            json!({"agent_id": "sw-EXP5-1", "namespace": "exp-1"}),
        )
        .await;
    assert_eq!(scoped.ok()["task"]["id"], task);
    let plain = c
        .call(
            "create_task",
            json!({"created_by": "lead", "title": "ordinary"}),
        )
        .await;
    plain.ok();
    hub.stop().await;

    // off, and unknown values behave (and report) as warn.
    let hub = TestHub::start_with(&[("MCP_HUB_NAMESPACE_GOVERNANCE", "off")]).await;
    let c = hub.client().await;
    let off = c
        .call(
            "create_task",
            json!({"created_by": "worker", "title": "swarm"}),
        )
        .await;
    assert_eq!(off.ok()["namespace_policy"], json!({"mode": "off"}));
    hub.stop().await;
    let hub = TestHub::start_with(&[("MCP_HUB_NAMESPACE_GOVERNANCE", "bogus")]).await;
    let c = hub.client().await;
    let bogus = c
        .call(
            "create_task",
            json!({"created_by": "worker", "title": "swarm"}),
        )
        .await;
    assert_eq!(bogus.ok()["namespace_policy"]["mode"], "warn");
    hub.stop().await;
}

/// The done gate through release_task_claim, as a table: each row the arguments on top of a
/// fresh claim and the expected outcome.
#[tokio::test]
async fn done_gate_table_through_release_task_claim() {
    let hub = TestHub::start().await;
    let worker = register(&hub, "gate-worker", json!({})).await;
    let _reviewer = register(&hub, "reviewer", json!({})).await;
    let too_many: Vec<String> = (0..17).map(|i| format!("ref-{i}")).collect();
    let sixteen: Vec<String> = (0..16).map(|i| format!("ref-{i}")).collect();
    // (task fields, release arguments, expected: Ok(required_confidence) or Err(code))
    let rows: Vec<(Value, Value, Result<f64, &str>)> = vec![
        (json!({}), json!({}), Ok(0.9)),
        (
            json!({}),
            json!({"confidence": null}),
            Err("DONE_GATE_FAILED"),
        ),
        (
            json!({}),
            json!({"confidence": 0.5}),
            Err("DONE_GATE_FAILED"),
        ),
        (
            json!({}),
            json!({"verification_passed": false}),
            Err("DONE_GATE_FAILED"),
        ),
        (
            json!({}),
            json!({"verification_passed": "true"}),
            Err("DONE_GATE_FAILED"),
        ),
        (
            json!({}),
            json!({"confidence": 0.8}),
            Err("VERIFIER_REQUIRED"),
        ),
        (
            json!({}),
            json!({"confidence": 0.8, "verified_by": "gate-worker"}),
            Err("VERIFIER_REQUIRED"),
        ),
        (
            json!({}),
            json!({"confidence": 0.8, "verified_by": "not-registered"}),
            Err("VERIFIER_REQUIRED"),
        ),
        (
            json!({}),
            json!({"confidence": 0.8, "verified_by": "reviewer"}),
            Ok(0.9),
        ),
        (
            json!({}),
            json!({"evidence_refs": []}),
            Err("EVIDENCE_REQUIRED"),
        ),
        (
            json!({}),
            json!({"evidence_refs": ["  ", ""]}),
            Err("EVIDENCE_REQUIRED"),
        ),
        (
            json!({}),
            json!({"evidence_refs": too_many}),
            Err("EVIDENCE_TOO_MANY"),
        ),
        (json!({}), json!({"evidence_refs": sixteen}), Ok(0.9)),
        (
            json!({"consistency_mode": "strict"}),
            json!({}),
            Err("VERIFIER_REQUIRED"),
        ),
        (
            json!({"consistency_mode": "strict"}),
            json!({"verified_by": "reviewer"}),
            Err("EVIDENCE_REQUIRED"),
        ),
        (
            json!({"consistency_mode": "strict"}),
            json!({"verified_by": "reviewer", "evidence_refs": ["a", "b"]}),
            Ok(0.95),
        ),
        (
            json!({"consistency_mode": "strict"}),
            json!({"verified_by": "reviewer", "confidence": 0.94, "evidence_refs": ["a", "b"]}),
            Err("DONE_GATE_FAILED"),
        ),
        // A critical task is strict; a per-call "cheap" cannot lower it (D24).
        (
            json!({"priority": "critical"}),
            json!({"consistency_mode": "cheap", "confidence": 0.91}),
            Err("DONE_GATE_FAILED"),
        ),
        (
            json!({"priority": "critical"}),
            json!({"consistency_mode": "cheap", "confidence": 0.99, "evidence_refs": ["a", "b"]}),
            Err("VERIFIER_REQUIRED"),
        ),
        // A per-call "strict" raises a cheap task's gate.
        (
            json!({}),
            json!({"consistency_mode": "strict"}),
            Err("VERIFIER_REQUIRED"),
        ),
    ];
    for (index, (fields, release, expected)) in rows.into_iter().enumerate() {
        let mut create_args = json!({"created_by": "lead", "title": format!("gate row {index}")});
        for (k, v) in fields.as_object().unwrap() {
            create_args[k] = v.clone();
        }
        let task = worker.call("create_task", create_args).await.ok()["task"]["id"]
            .as_i64()
            .unwrap();
        worker
            .call(
                "claim_task",
                json!({"task_id": task, "agent_id": "gate-worker"}),
            )
            .await
            .ok();
        let mut args = done_args(task, "gate-worker", json!({}));
        for (k, v) in release.as_object().unwrap() {
            if v.is_null() {
                args.as_object_mut().unwrap().remove(k);
            } else {
                args[k] = v.clone();
            }
        }
        let outcome: Outcome = worker.call("release_task_claim", args).await;
        match expected {
            Ok(required) => {
                let body = outcome.ok();
                assert_eq!(body["required_confidence"], required, "row {index}: {body}");
                assert_eq!(body["task"]["status"], "done", "row {index}");
            }
            Err(code) => {
                assert_eq!(outcome.error_code(), code, "row {index}: {}", outcome.json);
                if index >= 17 {
                    assert_eq!(
                        outcome.json["consistency_mode"], "strict",
                        "row {index}: no downgrade"
                    );
                }
                if code == "EVIDENCE_TOO_MANY" {
                    assert_eq!(outcome.json["max_evidence_refs_per_call"], 16);
                } else {
                    assert!(
                        outcome.json["required_confidence"].is_number(),
                        "row {index}"
                    );
                    assert!(outcome.json["consistency_mode"].is_string(), "row {index}");
                }
                if code == "EVIDENCE_REQUIRED" {
                    assert!(outcome.json["required_evidence_refs"].is_number());
                    assert!(outcome.json["evidence_refs_total"].is_number());
                }
                // A refused done leaves the claim in place.
                let claims = worker
                    .call(
                        "list_task_claims",
                        json!({"requesting_agent": "gate-worker"}),
                    )
                    .await;
                assert!(
                    claims.ok()["claims"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|c| c["task_id"] == task),
                    "row {index}"
                );
            }
        }
    }
    // Existing refs count toward the minimum: evidence first via update_task, then done
    // without new refs.
    let task = create(&worker, "lead", "evidence first", json!({})).await;
    let with_ref = worker
        .call(
            "update_task",
            json!({"id": task, "agent_id": "lead", "evidence_refs": ["ci:run-1"]}),
        )
        .await;
    assert_eq!(with_ref.ok()["evidence_refs_total"], 1);
    worker
        .call(
            "claim_task",
            json!({"task_id": task, "agent_id": "gate-worker"}),
        )
        .await
        .ok();
    let done = worker
        .call(
            "release_task_claim",
            done_args(task, "gate-worker", json!({"evidence_refs": []})),
        )
        .await;
    assert_eq!(done.ok()["evidence_refs_total"], 1);
    hub.stop().await;
}

#[tokio::test]
async fn update_task_ownership_status_rules_quality_and_history() {
    let hub = TestHub::start().await;
    let lead = register(&hub, "lead", json!({})).await;
    let worker = register(&hub, "w1", json!({})).await;
    let outsider = register(&hub, "outsider", json!({})).await;
    let boss = register(&hub, "boss", json!({"role": "orchestrator"})).await;
    let task = create(
        &lead,
        "lead",
        "owned",
        json!({"consistency_mode": "strict"}),
    )
    .await;

    let missing = lead
        .call(
            "update_task",
            json!({"id": 9999, "agent_id": "lead", "title": "x"}),
        )
        .await;
    assert_eq!(missing.error_code(), "TASK_NOT_FOUND", "D29");
    let foreign = outsider
        .call(
            "update_task",
            json!({"id": task, "agent_id": "outsider", "title": "mine now"}),
        )
        .await;
    assert_eq!(foreign.error_code(), "NOT_TASK_OWNER");
    let by_boss = boss
        .call(
            "update_task",
            json!({"id": task, "agent_id": "boss", "priority": "high"}),
        )
        .await;
    assert_eq!(by_boss.ok()["task"]["priority"], "high");
    let to_progress = lead
        .call(
            "update_task",
            json!({"id": task, "agent_id": "lead", "status": "in_progress"}),
        )
        .await;
    assert_eq!(to_progress.error_code(), "CLAIM_REQUIRED");
    // Lowering strictness: only the creator, never in a done call (D24).
    let downgrade = boss
        .call(
            "update_task",
            json!({"id": task, "agent_id": "boss", "consistency_mode": "cheap"}),
        )
        .await;
    assert_eq!(downgrade.error_code(), "CONSISTENCY_DOWNGRADE_FORBIDDEN");

    worker
        .call("claim_task", json!({"task_id": task, "agent_id": "w1"}))
        .await
        .ok();
    let reassign = lead
        .call(
            "update_task",
            json!({"id": task, "agent_id": "lead", "assigned_to": "outsider"}),
        )
        .await;
    assert_eq!(reassign.error_code(), "TASK_CLAIMED");
    let back_to_pending = lead
        .call(
            "update_task",
            json!({"id": task, "agent_id": "lead", "status": "pending"}),
        )
        .await;
    assert_eq!(back_to_pending.error_code(), "CLAIM_REQUIRED");
    let done_by_creator = lead
        .call("update_task", json!({"id": task, "agent_id": "lead", "status": "done", "confidence": 0.99, "verification_passed": true, "verified_by": "boss", "evidence_refs": ["a", "b"]}))
        .await;
    assert_eq!(
        done_by_creator.error_code(),
        "NOT_CLAIM_OWNER",
        "done needs the claim (D19)"
    );
    // The claim holder finishes through update_task; the claim goes with it.
    let done = worker
        .call("update_task", json!({"id": task, "agent_id": "w1", "status": "done", "confidence": 0.99, "verification_passed": true, "verified_by": "boss", "evidence_refs": ["a", "b", "a"]}))
        .await;
    let body = done.ok();
    assert_eq!(body["task"]["status"], "done");
    assert_eq!(body["required_confidence"], 0.95);
    assert_eq!(body["required_evidence_refs"], 2);
    assert_eq!(body["evidence_refs_added"], 2);
    let claims = lead.call("list_task_claims", json!({})).await;
    assert_eq!(claims.ok()["claims"], json!([]));

    // Reopen by the creator: a rollback charged to the assignee, whose bar then rises.
    lead.call(
        "update_task",
        json!({"id": task, "agent_id": "lead", "status": "pending", "assigned_to": ""}),
    )
    .await
    .ok();
    let quality = hub
        .handle
        .hub
        .store
        .read(|conn| hub_server::store::quality::counts(conn, "w1"))
        .await
        .unwrap();
    assert_eq!(quality, (1, 1));
    let next = create(&lead, "lead", "second", json!({})).await;
    worker
        .call("claim_task", json!({"task_id": next, "agent_id": "w1"}))
        .await
        .ok();
    let bar = worker
        .call(
            "release_task_claim",
            done_args(next, "w1", json!({"confidence": 0.95})),
        )
        .await;
    assert_eq!(bar.error_code(), "VERIFIER_REQUIRED");
    assert_eq!(bar.json["required_confidence"], 0.97);

    assert_eq!(
        history_sources(&hub, task).await,
        vec![
            ("pending".into(), "in_progress".into(), "claim_task".into()),
            ("in_progress".into(), "done".into(), "update_task".into()),
            ("done".into(), "pending".into(), "update_task".into()),
        ]
    );
    // Field edits: trace cleared by "", namespace blank → default, dependency-only change bumps.
    let edited = lead
        .call(
            "update_task",
            json!({"id": task, "agent_id": "lead", "trace_id": "t1", "namespace": "  "}),
        )
        .await;
    assert_eq!(edited.ok()["task"]["trace_id"], "t1");
    assert_eq!(edited.json["task"]["namespace"], "default");
    hub.clock.advance_ms(5);
    let deps_only = lead
        .call(
            "update_task",
            json!({"id": task, "agent_id": "lead", "depends_on": [next]}),
        )
        .await;
    assert!(
        deps_only.ok()["task"]["updated_at"].as_i64() > edited.json["task"]["updated_at"].as_i64()
    );
    counters_consistent(&hub).await;
    hub.stop().await;
}

#[tokio::test]
async fn delete_task_archives_and_respects_claims_and_ownership() {
    let hub = TestHub::start().await;
    let c = hub.client().await;
    let task = create(&c, "lead", "to delete", json!({})).await;
    let missing = c
        .call("delete_task", json!({"id": 777, "agent_id": "lead"}))
        .await;
    assert_eq!(missing.error_code(), "TASK_NOT_FOUND");
    let foreign = c
        .call("delete_task", json!({"id": task, "agent_id": "someone"}))
        .await;
    assert_eq!(foreign.error_code(), "NOT_TASK_OWNER");
    c.call(
        "claim_task",
        json!({"task_id": task, "agent_id": "w", "lease_seconds": 30}),
    )
    .await
    .ok();
    let claimed = c
        .call("delete_task", json!({"id": task, "agent_id": "lead"}))
        .await;
    assert_eq!(claimed.error_code(), "TASK_CLAIMED");
    // An expired claim does not block (D31).
    hub.clock.advance_ms(30_000);
    let head_before = hub
        .handle
        .hub
        .store
        .subscribe()
        .borrow()
        .get(hub_server::store::Stream::Tasks);
    let deleted = c
        .call(
            "delete_task",
            json!({"id": task, "agent_id": "lead", "idempotency_key": "del-1"}),
        )
        .await;
    assert_eq!(deleted.ok()["archived"], true);
    let head_after = hub
        .handle
        .hub
        .store
        .subscribe()
        .borrow()
        .get(hub_server::store::Stream::Tasks);
    assert!(
        head_after > head_before,
        "a delete advances the task stream (D30)"
    );
    let replay = c
        .call(
            "delete_task",
            json!({"id": task, "agent_id": "lead", "idempotency_key": "del-1"}),
        )
        .await;
    assert_eq!(replay.ok()["archived"], true, "idempotent replay");
    let gone = c
        .call("delete_task", json!({"id": task, "agent_id": "lead"}))
        .await;
    assert_eq!(gone.error_code(), "TASK_NOT_FOUND");
    // Archived tasks do not count as dependencies.
    let dep = c
        .call(
            "create_task",
            json!({"created_by": "lead", "title": "x", "depends_on": [task]}),
        )
        .await;
    assert_eq!(dep.error_code(), "INVALID_DEPENDENCY");
    let kept = create(&c, "lead", "not archived", json!({})).await;
    let plain = c
        .call(
            "delete_task",
            json!({"id": kept, "agent_id": "lead", "archive": false}),
        )
        .await;
    assert_eq!(plain.ok()["archived"], false);
    hub.stop().await;
}

#[tokio::test]
async fn poll_misses_back_off_reset_on_hit_and_idempotent_polls_replay() {
    let hub = TestHub::start().await;
    let c = register(&hub, "poller", json!({})).await;
    let mut retries = Vec::new();
    for _ in 0..8 {
        let miss = poll(&c, "poller").await;
        assert!(miss["task"].is_null());
        assert_eq!(miss["success"], true);
        retries.push(miss["retry_after_ms"].as_i64().unwrap());
    }
    // Misses change nothing, so they do not advance the activity stream.
    let activity = hub_server::store::Stream::Activity;
    let before = hub.handle.hub.store.subscribe().borrow().get(activity);
    poll(&c, "poller").await;
    assert_eq!(
        hub.handle.hub.store.subscribe().borrow().get(activity),
        before
    );
    // ≤ 5 active agents: first miss within 800 ± 30 %, later ones capped at 3000.
    assert!((560..=1040).contains(&retries[0]), "{retries:?}");
    assert!(retries[7] >= 2100 && retries[7] <= 3000, "{retries:?}");
    // A miss under an idempotency key is not replayed once work appears (D27).
    let miss = c
        .call(
            "poll_and_claim",
            json!({"agent_id": "poller", "idempotency_key": "p-1"}),
        )
        .await;
    assert!(miss.ok()["task"].is_null());
    let task = create(&c, "lead", "finally", json!({})).await;
    let first = c
        .call(
            "poll_and_claim",
            json!({"agent_id": "poller", "idempotency_key": "p-1"}),
        )
        .await;
    let replay = c
        .call(
            "poll_and_claim",
            json!({"agent_id": "poller", "idempotency_key": "p-1"}),
        )
        .await;
    assert_eq!(first.ok()["task"]["id"], task);
    assert_eq!(
        replay.ok()["claim"]["claim_id"],
        first.json["claim"]["claim_id"]
    );
    let after_hit = poll(&c, "poller").await;
    assert!(
        (560..=1040).contains(&after_hit["retry_after_ms"].as_i64().unwrap()),
        "streak reset"
    );
    // A task created under an idempotency key is created once.
    for _ in 0..2 {
        c.call(
            "create_task",
            json!({"created_by": "lead", "title": "once", "idempotency_key": "c-1"}),
        )
        .await
        .ok();
    }
    let listed = c.call("list_tasks", json!({"response_mode": "nano"})).await;
    assert_eq!(listed.ok()["t"].as_array().unwrap().len(), 2);
    hub.stop().await;
}

#[tokio::test]
async fn maintenance_requeues_expired_and_vanished_work_and_archives_old_done_tasks() {
    // The periodic pass is pushed out of the way: this test drives every pass itself.
    let hub = TestHub::start_with(&[
        ("MCP_HUB_DONE_TASK_TTL_MS", "3600000"),
        ("MCP_HUB_MAINTENANCE_INTERVAL_MS", "86400000"),
    ])
    .await;
    let hub_ref = hub.handle.hub.clone();
    let lead = register(&hub, "lead", json!({})).await;
    let eph = register(&hub, "eph-1", json!({"lifecycle": "ephemeral"})).await;
    let leased = create(&lead, "lead", "short lease", json!({})).await;
    let long = create(&lead, "lead", "long lease", json!({})).await;
    let preassigned = create(
        &lead,
        "lead",
        "for a future agent",
        json!({"assigned_to": "not-yet-registered"}),
    )
    .await;
    let finished = create(&lead, "lead", "finished", json!({})).await;

    lead.call(
        "claim_task",
        json!({"task_id": leased, "agent_id": "lead", "lease_seconds": 30}),
    )
    .await
    .ok();
    eph.call(
        "claim_task",
        json!({"task_id": long, "agent_id": "eph-1", "lease_seconds": 86400}),
    )
    .await
    .ok();
    lead.call(
        "claim_task",
        json!({"task_id": finished, "agent_id": "lead", "lease_seconds": 86400}),
    )
    .await
    .ok();
    lead.call("release_task_claim", done_args(finished, "lead", json!({})))
        .await
        .ok();

    // Lease expiry: requeued by the maintenance pass (lease + sweep interval).
    hub.clock.advance_ms(31_000);
    let report = maintenance::run_once(&hub_ref).await.unwrap();
    assert_eq!(report.claims_cleaned, 1);
    let task = lead
        .call(
            "list_tasks",
            json!({"status": "pending", "response_mode": "compact"}),
        )
        .await;
    let pending = ids(&task.ok()["tasks"]);
    assert!(pending.contains(&leased));
    assert!(pending.contains(&preassigned), "pre-assignments stay (D33)");
    assert_eq!(
        history_sources(&hub, leased).await.last().unwrap().2,
        "lease_expiry"
    );

    // The ephemeral worker goes silent: offline after 5 min, its claim reaped 10 min after
    // its last renewal.
    hub.clock.advance_ms(5 * 60_000);
    let report = maintenance::run_once(&hub_ref).await.unwrap();
    assert_eq!(report.agents_marked_offline, 1, "only the ephemeral worker");
    assert_eq!(report.ephemeral_claims_reaped, 0, "grace period");
    hub.clock.advance_ms(5 * 60_000);
    let report = maintenance::run_once(&hub_ref).await.unwrap();
    assert_eq!(report.ephemeral_claims_reaped, 1);
    let polled = lead
        .call("claim_task", json!({"task_id": long, "agent_id": "lead"}))
        .await;
    assert_eq!(polled.ok()["task"]["assigned_to"], "lead");
    assert_eq!(history_sources(&hub, long).await[1].2, "maintenance");
    let renew = eph
        .call(
            "renew_task_claim",
            json!({"task_id": long, "agent_id": "eph-1"}),
        )
        .await;
    assert_eq!(renew.error_code(), "NOT_CLAIM_OWNER");

    // Done tasks past the TTL that nothing depends on move to the archive; the ephemeral
    // worker, gone for over 2 h, is purged and its pre-assigned work unassigned.
    let eph_work = create(&lead, "lead", "for eph", json!({"assigned_to": "eph-1"})).await;
    hub.clock.advance_ms(7_200_001);
    let report = maintenance::run_once(&hub_ref).await.unwrap();
    assert_eq!(report.tasks_archived, 1);
    assert_eq!(report.agents_purged, 1);
    assert_eq!(report.stale_agent_tasks_requeued, 1);
    let unassigned = lead
        .call(
            "list_tasks",
            json!({"assigned_to": "eph-1", "response_mode": "nano"}),
        )
        .await;
    assert_eq!(unassigned.ok()["t"], json!([]));
    let _ = eph_work;
    let gone = lead
        .call("delete_task", json!({"id": finished, "agent_id": "lead"}))
        .await;
    assert_eq!(gone.error_code(), "TASK_NOT_FOUND");
    let pre = lead
        .call(
            "list_tasks",
            json!({"assigned_to": "not-yet-registered", "response_mode": "nano"}),
        )
        .await;
    assert_eq!(ids(&pre.ok()["t"]), vec![preassigned]);
    counters_consistent(&hub).await;
    hub.stop().await;
}

#[tokio::test]
async fn board_claims_and_cursors_survive_a_restart() {
    let hub = TestHub::start().await;
    let c = hub.client().await;
    let task = create(&c, "lead", "durable", json!({})).await;
    let gone = create(&c, "lead", "deleted", json!({})).await;
    let claimed = c
        .call(
            "claim_task",
            json!({"task_id": task, "agent_id": "w", "lease_seconds": 600}),
        )
        .await;
    let claim_id = claimed.ok()["claim"]["claim_id"]
        .as_str()
        .unwrap()
        .to_string();
    let page = c
        .call(
            "list_tasks",
            json!({"cursor": "0", "response_mode": "nano"}),
        )
        .await;
    let cursor = page.ok()["n"].as_str().unwrap().to_string();
    c.call("delete_task", json!({"id": gone, "agent_id": "lead"}))
        .await
        .ok();
    let head = hub
        .handle
        .hub
        .store
        .subscribe()
        .borrow()
        .get(hub_server::store::Stream::Tasks);
    c.close().await;

    let hub = hub.restart().await;
    assert_eq!(
        hub.handle
            .hub
            .store
            .subscribe()
            .borrow()
            .get(hub_server::store::Stream::Tasks),
        head,
        "the task stream head (including the delete) is restored"
    );
    let c = hub.client().await;
    let renewed = c
        .call(
            "renew_task_claim",
            json!({"task_id": task, "agent_id": "w", "claim_id": claim_id}),
        )
        .await;
    assert_eq!(renewed.ok()["claim"]["claim_id"], claim_id.as_str());
    let after = c
        .call(
            "list_tasks",
            json!({"cursor": cursor, "response_mode": "nano"}),
        )
        .await;
    assert_eq!(
        ids(&after.ok()["t"]),
        vec![task],
        "the renewal is the only change since"
    );
    hub.stop().await;
}

#[tokio::test]
async fn enforce_mode_checks_the_declared_caller_of_each_task_tool() {
    let hub = TestHub::start_with(&[("MCP_HUB_AUTH_MODE", "enforce")]).await;
    let me = hub.client().await;
    let my_token = me.register("me", json!({})).await;
    let other = hub.client().await;
    let other_token = other.register("other", json!({})).await;
    let task = me
        .call(
            "create_task",
            json!({"created_by": "me", "title": "t", "auth_token": my_token}),
        )
        .await;
    let task = task.ok()["task"]["id"].as_i64().unwrap();
    let without = me.call("poll_and_claim", json!({"agent_id": "me"})).await;
    assert_eq!(without.error_code(), "AUTH_TOKEN_REQUIRED");
    let borrowed = me
        .call(
            "claim_task",
            json!({"task_id": task, "agent_id": "me", "auth_token": other_token}),
        )
        .await;
    assert_eq!(borrowed.error_code(), "AUTH_TOKEN_INVALID");
    other
        .call(
            "claim_task",
            json!({"task_id": task, "agent_id": "other", "auth_token": other_token}),
        )
        .await
        .ok();
    // list_task_claims authenticates requesting_agent; agent_id is only a filter (D1).
    let listed = me
        .call(
            "list_task_claims",
            json!({"requesting_agent": "me", "agent_id": "other", "auth_token": my_token}),
        )
        .await;
    let claims = listed.ok()["claims"].as_array().unwrap().clone();
    assert_eq!(claims.len(), 1);
    assert!(claims[0].get("claim_id").is_none());
    let anonymous = me.call("list_tasks", json!({})).await;
    assert_eq!(anonymous.error_code(), "AUTH_TOKEN_REQUIRED", "D2");
    hub.stop().await;
}

#[tokio::test]
async fn consistency_default_and_evidence_limits_follow_the_configuration() {
    let hub = TestHub::start_with(&[
        ("MCP_HUB_CONSISTENCY_DEFAULT", "strict"),
        ("MCP_HUB_MAX_EVIDENCE_REFS_PER_CALL", "2"),
        ("MCP_HUB_MAX_EVIDENCE_REF_CHARS", "8"),
    ])
    .await;
    let c = register(&hub, "cfg-agent", json!({})).await;
    let strict = c
        .call("create_task", json!({"created_by": "lead", "title": "a"}))
        .await;
    assert_eq!(strict.ok()["task"]["consistency_mode"], "strict");
    let cheap = create(&c, "lead", "b", json!({"consistency_mode": "cheap"})).await;
    c.call(
        "claim_task",
        json!({"task_id": cheap, "agent_id": "cfg-agent"}),
    )
    .await
    .ok();
    let too_many = c
        .call(
            "release_task_claim",
            done_args(
                cheap,
                "cfg-agent",
                json!({"evidence_refs": ["x", "y", "z"]}),
            ),
        )
        .await;
    assert_eq!(too_many.error_code(), "EVIDENCE_TOO_MANY");
    assert_eq!(too_many.json["max_evidence_refs_per_call"], 2);
    // Refs are cut to 8 characters, so these two collapse into one.
    let done = c
        .call(
            "release_task_claim",
            done_args(
                cheap,
                "cfg-agent",
                json!({"evidence_refs": ["commit-abc123", "commit-abc999"]}),
            ),
        )
        .await;
    assert_eq!(done.ok()["evidence_refs_added"], 1);
    hub.stop().await;
}
