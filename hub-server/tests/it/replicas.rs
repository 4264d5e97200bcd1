//! N hub replicas on one PostgreSQL database (always PostgreSQL, whatever
//! `HUB_TEST_BACKEND` says): claims stay exactly-once across replicas, a cursor reader on one
//! replica sees every message written through both exactly once, a waiter on one wakes on a
//! write through the other, a replica killed with SIGKILL under load loses nothing it
//! acknowledged, and a PostgreSQL restart is ridden out by the hub on its own.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hub_server::pg_cluster::{Cluster, ClusterOptions};
use serde_json::json;

use crate::harness::{ChildHub, Client, TestHub, fresh_postgres_database, spawn_call};
use crate::live::current_cursor;
use crate::messages::{send, spawn_senders};
use crate::tasks::{create_concurrently, drain_queue};

/// The failure bound of awaits that must end by an event (a wake, a reconnect).
const PATIENCE: Duration = Duration::from_secs(60);

/// Settings of every replica here: no per-agent rate limit (the load is the point) and no
/// maintenance pass during a test.
const QUIET: &[(&str, &str)] = &[
    ("MCP_HUB_RATE_LIMIT_RPS", "0"),
    ("MCP_HUB_MAINTENANCE_INTERVAL_MS", "86400000"),
];

/// Every message id `agent` can read from `cursor` on, following the cursor to the end;
/// returns them in the order read and the cursor after the last.
async fn read_to_end(client: &Client, agent: &str, cursor: &str) -> (Vec<i64>, String) {
    let mut cursor = cursor.to_string();
    let mut ids = Vec::new();
    loop {
        let page = client
            .call(
                "read_messages",
                json!({"agent_id": agent, "cursor": cursor, "limit": 100, "response_mode": "nano"}),
            )
            .await;
        let body = page.ok().clone();
        ids.extend(
            body["m"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["i"].as_i64().unwrap()),
        );
        cursor = body["n"].as_str().unwrap().to_string();
        if body["h"] == 0 {
            return (ids, cursor);
        }
    }
}

/// The ids of every task with `status`, paging through `list_tasks` on `client`.
async fn task_ids_with_status(client: &Client, status: &str) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut offset = 0;
    loop {
        let page = client
            .call(
                "list_tasks",
                json!({"status": status, "limit": 500, "offset": offset, "response_mode": "nano"}),
            )
            .await;
        let body = page.ok().clone();
        ids.extend(
            body["t"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["i"].as_i64().unwrap()),
        );
        if body["h"] == 0 {
            return ids;
        }
        offset += 500;
    }
}

#[tokio::test]
async fn thirty_two_workers_on_two_replicas_claim_two_thousand_tasks_exactly_once() {
    const TASKS: usize = 2_000;
    const WORKERS: usize = 32;
    let replicas = TestHub::start_replicas(2, QUIET).await;
    let urls: Vec<String> = replicas.iter().map(TestHub::url).collect();

    create_concurrently(&urls, TASKS).await;

    // Workers alternate between the replicas.
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| tokio::spawn(drain_queue(urls[w % 2].clone(), format!("drain-{w}"))))
        .collect();
    // (task, worker, replica, claim id) of every successful claim.
    let mut claims: Vec<(i64, usize, usize, String)> = Vec::new();
    for (w, worker) in workers.into_iter().enumerate() {
        let got = worker.await.unwrap();
        claims.extend(got.into_iter().map(|(task, claim)| (task, w, w % 2, claim)));
    }
    assert_eq!(claims.len(), TASKS, "each task claimed once, none twice");
    let claimed: HashSet<i64> = claims.iter().map(|c| c.0).collect();
    assert_eq!(claimed.len(), TASKS);
    let claim_ids: HashSet<&str> = claims.iter().map(|c| c.3.as_str()).collect();
    assert_eq!(
        claim_ids.len(),
        TASKS,
        "claim ids are unique across replicas"
    );
    let per_replica = claims.iter().fold([0usize; 2], |mut n, c| {
        n[c.2] += 1;
        n
    });
    assert!(
        per_replica.iter().all(|&n| n > 0),
        "both replicas served claims: {per_replica:?}"
    );
    let per_worker: HashMap<usize, usize> = claims.iter().fold(HashMap::new(), |mut m, c| {
        *m.entry(c.1).or_default() += 1;
        m
    });
    assert!(per_worker.len() > 1, "work was shared: {per_worker:?}");

    // Each replica sees the same finished board: every claimed task done, nothing left.
    for hub in &replicas {
        let client = hub.client().await;
        let done: HashSet<i64> = task_ids_with_status(&client, "done")
            .await
            .into_iter()
            .collect();
        assert_eq!(done, claimed, "the done tasks are exactly the claimed ones");
        for status in ["pending", "in_progress"] {
            assert!(
                task_ids_with_status(&client, status).await.is_empty(),
                "{status}"
            );
        }
        let open_claims = client.call("list_task_claims", json!({})).await;
        assert_eq!(open_claims.ok()["claims"], json!([]));
        client.close().await;
    }
    for hub in replicas {
        hub.stop().await;
    }
}

#[tokio::test]
async fn a_cursor_reader_on_one_replica_sees_every_message_from_both_exactly_once() {
    const SENDERS: usize = 16;
    const PER_SENDER: usize = 25;
    let replicas = TestHub::start_replicas(2, QUIET).await;
    // Direct messages go to registered agents only (RECIPIENT_NOT_FOUND).
    replicas[1].register_ids(&["reader"]).await;
    let reader = replicas[0].client().await;

    // Senders on both replicas; their transactions commit in an order that need not follow
    // the order their rows were numbered in — the trap a cursor must not fall into.
    let mut clients = Vec::new();
    for s in 0..SENDERS {
        clients.push(replicas[s % 2].client().await);
    }
    let senders = spawn_senders(clients, "reader", PER_SENDER);
    // Read on replica 0 while both replicas write, then drain what is left.
    let mut cursor = "0".to_string();
    let mut seen: Vec<i64> = Vec::new();
    let mut senders_done = false;
    loop {
        let (page, next) = read_to_end(&reader, "reader", &cursor).await;
        seen.extend(page);
        cursor = next;
        if senders_done {
            break;
        }
        senders_done = senders.iter().all(|s| s.is_finished());
    }
    let mut sent_by_sender = Vec::new();
    for sender in senders {
        sent_by_sender.push(sender.await.unwrap());
    }
    let all_sent: HashSet<i64> = sent_by_sender.iter().flatten().copied().collect();
    assert_eq!(all_sent.len(), SENDERS * PER_SENDER);
    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no message read twice");
    let missed: Vec<&i64> = all_sent.difference(&unique).collect();
    assert!(missed.is_empty(), "skipped by the cursor: {missed:?}");
    assert_eq!(unique, all_sent);
    // Cursor order: one sender's messages (each acknowledged before the next was sent)
    // are read in the order they were sent.
    let position: HashMap<i64, usize> = seen.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    for sent in &sent_by_sender {
        let order: Vec<usize> = sent.iter().map(|id| position[id]).collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "{sent:?} read as {order:?}"
        );
    }
    // At the end the cursor stays put on either replica.
    let other = replicas[1].client().await;
    let (rest, _) = read_to_end(&other, "reader", &cursor).await;
    assert!(rest.is_empty(), "{rest:?}");
    reader.close().await;
    other.close().await;
    for hub in replicas {
        hub.stop().await;
    }
}

#[tokio::test]
async fn a_waiter_on_one_replica_wakes_on_a_write_through_the_other() {
    let replicas = TestHub::start_replicas(2, QUIET).await;
    replicas[0].register_ids(&["w"]).await;
    let watcher = Arc::new(replicas[0].client().await);
    let writer = replicas[1].client().await;

    for round in 0..3 {
        let cursor = current_cursor(&watcher, "w").await;
        let waiting = spawn_call(
            &watcher,
            "wait_for_updates",
            json!({"agent_id": "w", "streams": ["messages"], "cursor": cursor,
                   "wait_ms": 30000, "response_mode": "compact"}),
        );
        // A direct message and a broadcast, each through the other replica.
        let to = if round == 1 { None } else { Some("w") };
        send(&writer, "s", to, &format!("wake up {round}")).await;
        let woke = tokio::time::timeout(PATIENCE, waiting)
            .await
            .expect("the waiter returns")
            .unwrap();
        let body = woke.ok();
        assert_eq!(body["changed"], true, "round {round}: {body}");
        assert_eq!(body["streams"], json!(["messages"]));
        assert!(
            body["elapsed_ms"].as_i64().unwrap() < 30000,
            "woken by the write, not the deadline: {body}"
        );
    }
    writer.close().await;
    for hub in replicas {
        hub.stop().await;
    }
}

/// What a writer got acknowledged before its replica died.
#[derive(Default)]
struct Acked {
    messages: Vec<i64>,
    tasks: Vec<i64>,
}

#[tokio::test]
async fn a_replica_killed_under_load_loses_nothing_it_acknowledged() {
    const WRITERS: usize = 8;
    /// Acknowledged writes before the kill: the kill lands with writes in flight.
    const KILL_AFTER: usize = 200;
    let db_url = fresh_postgres_database();
    let mut env = vec![("MCP_HUB_DB_URL", db_url.as_str())];
    env.extend_from_slice(QUIET);
    let mut doomed = ChildHub::spawn(&env).await;
    let survivor = ChildHub::spawn(&env).await;
    let survivor_client = Client::connect(&survivor.url, None).await;
    survivor_client.register("reader", json!({})).await;

    let acked = Arc::new(Mutex::new(Acked::default()));
    let (count_tx, mut count_rx) = tokio::sync::watch::channel(0usize);
    let count_tx = Arc::new(count_tx);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let url = doomed.url.clone();
        let acked = acked.clone();
        let count_tx = count_tx.clone();
        writers.push(tokio::spawn(async move {
            let client = Client::connect(&url, None).await;
            for n in 0.. {
                let (tool, args) = if n % 2 == 0 {
                    let args = json!({"from_agent": format!("writer-{w}"), "to_agent": "reader",
                                      "content": format!("{w}:{n}")});
                    ("send_message", args)
                } else {
                    let args = json!({"created_by": format!("writer-{w}"),
                                      "title": format!("task {w}:{n}")});
                    ("create_task", args)
                };
                // A call cut off by the kill ends the writer: it was never acknowledged.
                let Ok(Ok(outcome)) =
                    tokio::time::timeout(PATIENCE, client.try_call(tool, args)).await
                else {
                    break;
                };
                if outcome.is_error {
                    break;
                }
                let mut acked = acked.lock().unwrap();
                if tool == "send_message" {
                    acked
                        .messages
                        .push(outcome.json["message"]["id"].as_i64().unwrap());
                } else {
                    acked
                        .tasks
                        .push(outcome.json["task"]["id"].as_i64().unwrap());
                }
                count_tx.send_modify(|c| *c += 1);
            }
        }));
    }
    // Only the writers hold a sender now: if they all stop early, the wait ends at once.
    drop(count_tx);
    tokio::time::timeout(PATIENCE, count_rx.wait_for(|&c| c >= KILL_AFTER))
        .await
        .expect("the writers reach the kill point")
        .expect("every writer stopped (a refused write) before the kill point");
    doomed.kill().await;
    for writer in writers {
        tokio::time::timeout(PATIENCE, writer)
            .await
            .expect("writers stop once their replica is gone")
            .unwrap();
    }

    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(acked.messages.len() + acked.tasks.len() >= KILL_AFTER);
    let (read, _) = read_to_end(&survivor_client, "reader", "0").await;
    let read: HashSet<i64> = read.into_iter().collect();
    let lost: Vec<&i64> = acked
        .messages
        .iter()
        .filter(|id| !read.contains(id))
        .collect();
    assert!(lost.is_empty(), "acknowledged messages lost: {lost:?}");
    let pending: HashSet<i64> = task_ids_with_status(&survivor_client, "pending")
        .await
        .into_iter()
        .collect();
    let lost: Vec<&i64> = acked
        .tasks
        .iter()
        .filter(|id| !pending.contains(id))
        .collect();
    assert!(lost.is_empty(), "acknowledged tasks lost: {lost:?}");
    // The survivor keeps serving writes.
    send(&survivor_client, "after", Some("reader"), "still here").await;
    survivor_client.close().await;
}

#[tokio::test]
async fn the_hub_rides_out_a_postgresql_restart_and_keeps_what_it_acknowledged() {
    // A cluster of its own: restarting the shared one would break every other test.
    let cluster = Cluster::start(ClusterOptions {
        durable: true,
        ..ClusterOptions::default()
    })
    .unwrap_or_else(|e| panic!("PostgreSQL for tests: {e}"));
    let db_url = cluster.create_database("restart_test").unwrap();
    let hub = TestHub::start_on(&db_url, QUIET).await;
    hub.register_ids(&["reader"]).await;
    let client = hub.client().await;
    let mut before = Vec::new();
    for n in 0..20 {
        before.push(send(&client, "writer", Some("reader"), &format!("before {n}")).await);
    }

    // Stopped as by a crash (no checkpoint: the WAL is replayed), then started again.
    let during_client = hub.client().await;
    cluster.kill_server().unwrap();
    // A write while the database is down may be refused or may wait for the reconnect;
    // either way, what it acknowledges must survive.
    let during = {
        let client = during_client;
        tokio::spawn(async move {
            let outcome = client
                .call(
                    "send_message",
                    json!({"from_agent": "writer", "to_agent": "reader", "content": "during"}),
                )
                .await;
            client.close().await;
            (!outcome.is_error).then(|| outcome.json["message"]["id"].as_i64().unwrap())
        })
    };
    cluster.start_again().unwrap();

    // The hub reconnects by itself; no restart of the hub, no new session.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let after = loop {
        let outcome = client
            .call(
                "send_message",
                json!({"from_agent": "writer", "to_agent": "reader", "content": "after"}),
            )
            .await;
        if !outcome.is_error {
            break outcome.json["message"]["id"].as_i64().unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reconnect within {PATIENCE:?}: {}",
            outcome.json
        );
        // Condition polling (no event says "the pool reconnected"), bounded by PATIENCE.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let during = tokio::time::timeout(PATIENCE, during)
        .await
        .expect("the write made during the outage ends")
        .unwrap();
    let (read, _) = read_to_end(&client, "reader", "0").await;
    let mut expected = before.clone();
    expected.push(after);
    expected.extend(during);
    let read_set: HashSet<i64> = read.iter().copied().collect();
    for id in &expected {
        assert!(read_set.contains(id), "message {id} lost: read {read:?}");
    }
    let health = hub.health().await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["database"]["backend"], "postgres", "{health}");
    assert_eq!(health["database"]["connected"], true, "{health}");
    client.close().await;
    hub.stop().await;
}

/// A sessionless (2026-07-28) agent may reach either replica on every call: what one replica
/// registered and wrote, the other authenticates and serves.
#[tokio::test]
async fn a_sessionless_agent_is_served_by_either_replica() {
    let hubs = TestHub::start_replicas(2, QUIET).await;
    let on_a = Client::connect_sessionless(&hubs[0].url()).await;
    let on_b = Client::connect_sessionless(&hubs[1].url()).await;
    let token = on_a.register("roamer", json!({})).await;
    let sent = on_b
        .call(
            "send_message",
            json!({"from_agent": "roamer", "to_agent": "roamer", "content": "via b",
                   "auth_token": token}),
        )
        .await;
    assert_eq!(sent.ok()["message"]["content"], "via b");
    let read = on_a
        .call(
            "read_messages",
            json!({"agent_id": "roamer", "auth_token": token, "response_mode": "full"}),
        )
        .await;
    let messages = read.ok()["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(messages.len(), 1, "{}", read.json);
    assert_eq!(messages[0]["content"], "via b");
    on_a.close().await;
    on_b.close().await;
    for hub in hubs {
        hub.stop().await;
    }
}
