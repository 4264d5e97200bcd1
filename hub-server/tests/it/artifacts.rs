//! The artifact side channel: 50 MB round trip through the real HTTP endpoints with hash
//! checks and a Range resume, ticket rules (refused uploads keep their ticket; expired,
//! replayed, foreign tickets), durability across restart and across a killed hub, access
//! and sharing, retention with the manual clock, and the task handoff packet.

use std::sync::Arc;

use futures::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::{ChildHub, Client, TestHub, http, skip_unless_sqlite, spawn_call};
use hub_server::maintenance;

const MB: usize = 1024 * 1024;

/// Deterministic, incompressible-looking bytes.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect()
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The ticket URLs name `localhost:<MCP_HUB_PORT>`; tests reach the hub on its real port.
fn local(hub: &TestHub, url: &str) -> String {
    let path = &url[url.find("/artifacts/").expect("an artifacts URL")..];
    format!("{}{path}", hub.base_url())
}

async fn new_upload(client: &Client, agent: &str, extra: Value) -> (String, String) {
    let mut args = json!({"agent_id": agent, "name": "data.bin"});
    for (key, value) in extra.as_object().cloned().unwrap_or_default() {
        args[key] = value;
    }
    let created = client.call("create_artifact_upload", args).await;
    let body = created.ok();
    assert!(body["artifact"].get("storage_path").is_none(), "D14");
    (
        body["artifact"]["id"].as_str().unwrap().to_string(),
        body["upload"]["url"].as_str().unwrap().to_string(),
    )
}

async fn post(hub: &TestHub, url: &str, bytes: Vec<u8>, mime: &str) -> (u16, Value) {
    let response = http()
        .post(local(hub, url))
        .header("content-type", mime)
        .body(bytes)
        .send()
        .await
        .expect("upload");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn download_url(client: &Client, agent: &str, artifact_id: &str) -> String {
    let outcome = client
        .call(
            "create_artifact_download",
            json!({"agent_id": agent, "artifact_id": artifact_id}),
        )
        .await;
    outcome.ok()["download"]["url"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn uploaded(hub: &TestHub, client: &Client, agent: &str, bytes: &[u8]) -> String {
    let (id, url) = new_upload(client, agent, json!({})).await;
    let (status, body) = post(hub, &url, bytes.to_vec(), "application/octet-stream").await;
    assert_eq!(status, 200, "{body}");
    id
}

fn files_in(hub: &TestHub) -> Vec<String> {
    let dir = hub.data_dir.path().join("artifacts");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn fifty_megabytes_round_trip_with_hash_check_and_range_resume() {
    let hub = TestHub::start().await;
    let (alice, _) = hub.agent("alice").await;
    let (bob, _) = hub.agent("bob").await;
    let bytes = payload(50 * MB, 7);
    let digest = sha(&bytes);

    let (id, url) = new_upload(&alice, "alice", json!({"name": "weights.bin"})).await;
    let (status, body) = post(&hub, &url, bytes.clone(), "application/x-weights").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sha256"], json!(digest));
    assert_eq!(body["size_bytes"], json!(50 * MB));
    assert_eq!(body["name"], "weights.bin");

    // bob cannot get a ticket until alice shares it.
    let denied = bob
        .call(
            "create_artifact_download",
            json!({"agent_id": "bob", "artifact_id": id}),
        )
        .await;
    assert_eq!(denied.error_code(), "ARTIFACT_ACCESS_DENIED");
    alice
        .call(
            "share_artifact",
            json!({"from_agent": "alice", "artifact_id": id, "to_agent": "bob"}),
        )
        .await
        .ok();

    // A transfer that breaks off after ~10 MB ...
    let first = download_url(&bob, "bob", &id).await;
    let response = http().get(local(&hub, &first)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-length"], (50 * MB).to_string().as_str());
    assert_eq!(headers["content-type"], "application/x-weights");
    assert_eq!(headers["etag"], format!("\"{digest}\"").as_str());
    assert_eq!(headers["accept-ranges"], "bytes");
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("filename=\"weights.bin\"")
    );
    let mut received = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        received.extend_from_slice(&chunk.unwrap());
        if received.len() >= 10 * MB {
            break;
        }
    }
    drop(stream);
    // ... the used ticket is spent ...
    let replay = http().get(local(&hub, &first)).send().await.unwrap();
    assert_eq!(replay.status(), 401);
    // ... and resumes with a new ticket and Range.
    let second = download_url(&bob, "bob", &id).await;
    let resumed = http()
        .get(local(&hub, &second))
        .header("range", format!("bytes={}-", received.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 206);
    assert_eq!(
        resumed.headers()["content-range"],
        format!("bytes {}-{}/{}", received.len(), 50 * MB - 1, 50 * MB).as_str()
    );
    received.extend_from_slice(&resumed.bytes().await.unwrap());
    assert_eq!(received.len(), 50 * MB);
    assert_eq!(sha(&received), digest);

    let rows = hub
        .query(&format!(
            "SELECT access_count FROM artifacts WHERE id = '{id}'"
        ))
        .await;
    assert_eq!(rows, vec![vec!["2".to_string()]]);
    let actions = hub
        .query("SELECT action FROM activity_log WHERE action LIKE 'artifact_%_http' ORDER BY id")
        .await;
    assert_eq!(
        actions.concat(),
        vec![
            "artifact_upload_http",
            "artifact_download_http",
            "artifact_download_http"
        ]
    );
    hub.stop().await;
}

#[tokio::test]
async fn refused_uploads_keep_their_ticket_and_spent_or_expired_ones_are_401() {
    let hub = TestHub::start().await;
    let (alice, _) = hub.agent("alice").await;
    let (id, url) = new_upload(&alice, "alice", json!({"max_bytes": 1024})).await;
    let (other_id, other_url) = new_upload(&alice, "alice", json!({})).await;

    let (status, body) = post(&hub, &url, Vec::new(), "text/plain").await;
    assert_eq!((status, body["success"].clone()), (400, json!(false)));
    let too_big = http()
        .post(local(&hub, &url))
        .body(vec![1u8; 2000])
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413);
    assert_eq!(too_big.headers()["connection"], "close");
    assert_eq!(too_big.json::<Value>().await.unwrap()["success"], false);
    // A ticket for another artifact, and a missing token.
    let token = url.split("token=").nth(1).unwrap();
    let foreign = format!("/artifacts/upload/{other_id}?token={token}");
    let (status, _) = post(&hub, &foreign, b"x".to_vec(), "text/plain").await;
    assert_eq!(status, 401);
    let (status, _) = post(&hub, &format!("/artifacts/upload/{id}"), b"x".to_vec(), "").await;
    assert_eq!(status, 400);

    // Still usable: an application/json body is stored as raw bytes with that MIME type.
    let json_body = br#"{"a": [1, 2, 3]}"#.to_vec();
    let (status, body) = post(&hub, &url, json_body.clone(), "application/json").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sha256"], json!(sha(&json_body)));
    let (status, _) = post(&hub, &url, json_body.clone(), "application/json").await;
    assert_eq!(status, 401, "a spent ticket");
    let listed = alice
        .call(
            "list_artifacts",
            json!({"agent_id": "alice", "response_mode": "compact"}),
        )
        .await;
    let rows = listed.ok()["artifacts"].as_array().unwrap().clone();
    let row = rows.iter().find(|r| r["id"] == json!(id)).unwrap();
    assert_eq!(row["mime_type"], "application/json");
    assert_eq!(row["ready"], true);

    // An expired ticket is refused (and the upload can be retried with a new artifact).
    hub.clock.advance_ms(301_000);
    let (status, _) = post(&hub, &other_url, b"late".to_vec(), "text/plain").await;
    assert_eq!(status, 401);
    let download = download_url(&alice, "alice", &id).await;
    hub.clock.advance_ms(181_000);
    let expired = http().get(local(&hub, &download)).send().await.unwrap();
    assert_eq!(expired.status(), 401);
    hub.stop().await;
}

#[tokio::test]
async fn racing_uploads_with_one_ticket_commit_exactly_once() {
    let hub = TestHub::start().await;
    let (alice, _) = hub.agent("alice").await;
    let (id, url) = new_upload(&alice, "alice", json!({})).await;
    let target = local(&hub, &url);
    let racers = (0..8u64).map(|seed| {
        let target = target.clone();
        async move {
            let bytes = payload(256 * 1024, seed);
            let response = http()
                .post(target)
                .body(bytes.clone())
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), sha(&bytes))
        }
    });
    let results = futures::future::join_all(racers).await;
    let winners: Vec<_> = results
        .iter()
        .filter(|(status, _)| *status == 200)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(results.iter().all(|(s, _)| *s == 200 || *s == 401));
    let stored = hub
        .query(&format!("SELECT sha256 FROM artifacts WHERE id = '{id}'"))
        .await;
    assert_eq!(stored[0][0], winners[0].1);
    assert_eq!(files_in(&hub).len(), 1, "losers removed their files");
    hub.stop().await;
}

#[tokio::test]
async fn tickets_are_durable_hashed_and_counted_by_health() {
    let hub = TestHub::start().await;
    let (alice, _) = hub.agent("alice").await;
    let (id, url) = new_upload(&alice, "alice", json!({})).await;
    let token = url.split("token=").nth(1).unwrap().to_string();
    // length() counts a blob's bytes on SQLite and PostgreSQL alike.
    let stored = hub
        .query("SELECT length(token_hash), kind FROM artifact_tickets")
        .await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0][0], "32", "only a SHA-256 of the token is kept");
    assert_ne!(token.len(), 32);
    let health = hub.health().await;
    assert_eq!(health["artifact_tickets"], 1);

    let hub = hub.restart().await;
    let (status, body) = post(&hub, &url, b"after restart".to_vec(), "text/plain").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["artifact_id"], json!(id));
    hub.stop().await;
}

#[tokio::test]
async fn a_foreign_bearer_cannot_use_a_ticket_under_enforce() {
    let hub = TestHub::start_with(&[("MCP_HUB_AUTH_MODE", "enforce")]).await;
    let (alice_session, alice) = hub.agent("alice").await;
    let (_bob_session, bob) = hub.agent("bob").await;
    let alice_client = hub.client_with_bearer(&alice).await;
    drop(alice_session);
    let created = alice_client
        .call(
            "create_artifact_upload",
            json!({"agent_id": "alice", "name": "secret.txt"}),
        )
        .await;
    let url = created.ok()["upload"]["url"].as_str().unwrap().to_string();
    let with_bob = http()
        .post(local(&hub, &url))
        .bearer_auth(&bob)
        .body("stolen")
        .send()
        .await
        .unwrap();
    assert_eq!(with_bob.status(), 403);
    let with_alice = http()
        .post(local(&hub, &url))
        .bearer_auth(&alice)
        .body("mine")
        .send()
        .await
        .unwrap();
    assert_eq!(with_alice.status(), 200, "the refusal kept the ticket");
    hub.stop().await;
}

#[tokio::test]
async fn sharing_attaching_and_task_views_follow_the_access_rule() {
    let hub = TestHub::start().await;
    let (alice, _) = hub.agent("alice").await;
    let (bob, _) = hub.agent("bob").await;
    let (carol, _) = hub.agent("carol").await;
    let id = uploaded(&hub, &alice, "alice", b"report body").await;
    let task = alice
        .call(
            "create_task",
            json!({"created_by": "alice", "title": "review", "assigned_to": "bob"}),
        )
        .await
        .ok()["task"]["id"]
        .as_i64()
        .unwrap();

    // D10: an unknown task refuses and grants nothing.
    let refused = alice
        .call(
            "share_artifact",
            json!({"from_agent": "alice", "artifact_id": id, "to_agent": "carol", "task_id": 999}),
        )
        .await;
    assert_eq!(refused.error_code(), "TASK_NOT_FOUND");
    assert!(hub.query("SELECT * FROM artifact_shares").await.is_empty());
    let stranger = carol
        .call(
            "attach_task_artifact",
            json!({"agent_id": "carol", "task_id": task, "artifact_id": id}),
        )
        .await;
    assert_eq!(stranger.error_code(), "ARTIFACT_ACCESS_DENIED");

    let attached = alice
        .call(
            "attach_task_artifact",
            json!({"agent_id": "alice", "task_id": task, "artifact_id": id}),
        )
        .await;
    let body = attached.ok();
    assert_eq!(body["attached"], true);
    assert_eq!(body["shared_to_assignee"], true);
    assert_eq!(body["assignee"], "bob");
    download_url(&bob, "bob", &id).await;

    // carol sees the link but not what it is.
    let seen = carol
        .call(
            "list_task_artifacts",
            json!({"agent_id": "carol", "task_id": task}),
        )
        .await;
    let row = seen.ok()["artifacts"][0].clone();
    assert_eq!(row["has_access"], false);
    assert!(row.get("name").is_none() && row.get("sha256").is_none());
    let bob_view = bob
        .call(
            "list_task_artifacts",
            json!({"agent_id": "bob", "task_id": task}),
        )
        .await;
    assert_eq!(bob_view.ok()["artifacts"][0]["name"], "data.bin");
    let carol_list = carol
        .call("list_artifacts", json!({"agent_id": "carol"}))
        .await;
    assert_eq!(carol_list.ok()["artifacts"], json!([]));

    // D11: downloads for a task that does not exist.
    let missing = bob
        .call(
            "create_task_artifact_downloads",
            json!({"agent_id": "bob", "task_id": 4242}),
        )
        .await;
    assert_eq!(missing.error_code(), "TASK_NOT_FOUND");
    let issued = carol
        .call(
            "create_task_artifact_downloads",
            json!({"agent_id": "carol", "task_id": task}),
        )
        .await;
    assert_eq!(issued.ok()["summary"]["skipped_no_access"], 1);

    // Sharing to everyone notifies with an artifact_ref message.
    let shared = alice
        .call(
            "share_artifact",
            json!({"from_agent": "alice", "artifact_id": id, "note": "please read"}),
        )
        .await;
    assert_eq!(shared.ok()["shared_to"], "*");
    download_url(&carol, "carol", &id).await;
    let inbox = carol
        .call("read_messages", json!({"agent_id": "carol"}))
        .await;
    let text = inbox.ok().to_string();
    assert!(
        text.contains(&format!("[artifact:{id}] data.bin | please read")),
        "{text}"
    );
    hub.stop().await;
}

#[tokio::test]
async fn handoff_packet_and_claim_hints_of_a_task_with_deps_evidence_and_artifacts() {
    let hub = TestHub::start().await;
    let (lead, _) = hub.agent("lead").await;
    let (worker, _) = hub.agent("worker").await;
    let mut deps = Vec::new();
    for title in ["schema", "fixtures"] {
        let id = lead
            .call("create_task", json!({"created_by": "lead", "title": title}))
            .await
            .ok()["task"]["id"]
            .as_i64()
            .unwrap();
        deps.push(id);
    }
    let task = lead
        .call(
            "create_task",
            json!({"created_by": "lead", "title": "integrate", "assigned_to": "worker",
                   "depends_on": [deps[1], deps[0]]}),
        )
        .await
        .ok()["task"]["id"]
        .as_i64()
        .unwrap();
    lead.call(
        "update_task",
        json!({"id": task, "agent_id": "lead", "evidence_refs": ["ci:run-1", "doc:spec"]}),
    )
    .await
    .ok();
    let ready = uploaded(&hub, &lead, "lead", b"input data").await;
    let (pending, _) = new_upload(&lead, "lead", json!({"name": "later.bin"})).await;
    for artifact in [&ready, &pending] {
        lead.call(
            "attach_task_artifact",
            json!({"agent_id": "lead", "task_id": task, "artifact_id": artifact}),
        )
        .await
        .ok();
    }

    let (outsider, _) = hub.agent("outsider").await;
    let packet = outsider
        .call(
            "get_task_handoff",
            json!({"agent_id": "outsider", "task_id": task, "response_mode": "tiny",
                   "include_downloads": true}),
        )
        .await;
    let body = packet.ok();
    assert_eq!(body["task"]["id"], task);
    assert_eq!(body["task"]["title_preview"], "integrate");
    assert_eq!(body["depends_on"], json!([deps[0], deps[1]]));
    let mut refs: Vec<String> = serde_json::from_value(body["evidence_refs"].clone()).unwrap();
    refs.sort();
    assert_eq!(refs, vec!["ci:run-1", "doc:spec"]);
    assert_eq!(body["artifacts"].as_array().unwrap().len(), 2);
    // Not shared with the outsider: hints, but no downloads.
    assert_eq!(body["artifact_downloads"], json!([]));
    assert_eq!(body["artifact_downloads_summary"]["skipped_not_ready"], 1);
    assert_eq!(body["artifact_downloads_summary"]["skipped_no_access"], 1);

    // Holding a task grants access to its artifacts: a claim's hints say so.
    let free = lead
        .call(
            "create_task",
            json!({"created_by": "lead", "title": "free"}),
        )
        .await
        .ok()["task"]["id"]
        .as_i64()
        .unwrap();
    lead.call(
        "attach_task_artifact",
        json!({"agent_id": "lead", "task_id": free, "artifact_id": pending}),
    )
    .await
    .ok();
    let claimed = outsider
        .call(
            "claim_task",
            json!({"agent_id": "outsider", "task_id": free, "include_artifacts": true}),
        )
        .await;
    let hints = claimed.ok()["task_artifacts"].clone();
    assert_eq!(
        hints,
        json!([{"artifact_id": pending, "ready": false, "has_access": true}])
    );

    // The assignee's packet carries a download for the ready artifact.
    let packet = worker
        .call(
            "get_task_handoff",
            json!({"agent_id": "worker", "task_id": task, "include_downloads": true}),
        )
        .await;
    let body = packet.ok();
    assert_eq!(body["task"]["depends_on"], json!([deps[0], deps[1]]));
    assert_eq!(body["evidence"].as_array().unwrap().len(), 2);
    let downloads = body["artifact_downloads"].as_array().unwrap();
    assert_eq!(downloads.len(), 1);
    assert_eq!(downloads[0]["artifact_id"], json!(ready));
    let url = downloads[0]["download"]["url"].as_str().unwrap();
    let got = http().get(local(&hub, url)).send().await.unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"input data");
    hub.stop().await;
}

#[tokio::test]
async fn retention_removes_rows_and_files_together() {
    let hub = TestHub::start().await;
    let (alice, _) = hub.agent("alice").await;
    let (short, url) = new_upload(&alice, "alice", json!({"retention_sec": 60})).await;
    let (status, _) = post(&hub, &url, b"short-lived".to_vec(), "text/plain").await;
    assert_eq!(status, 200);
    let kept = uploaded(&hub, &alice, "alice", b"kept").await;
    alice
        .call(
            "share_artifact",
            json!({"from_agent": "alice", "artifact_id": short, "notify": false}),
        )
        .await
        .ok();
    download_url(&alice, "alice", &short).await;
    assert_eq!(files_in(&hub).len(), 2);

    hub.clock.advance_ms(61_000);
    let report = maintenance::run_once(&hub.handle.hub).await.unwrap();
    assert_eq!(report.artifacts_purged, 1);
    assert_eq!(files_in(&hub).len(), 1);
    for table in ["artifacts", "artifact_shares", "artifact_tickets"] {
        let rows = hub
            .query(&format!(
                "SELECT COUNT(*) FROM {table} WHERE {} = '{short}'",
                if table == "artifacts" {
                    "id"
                } else {
                    "artifact_id"
                }
            ))
            .await;
        assert_eq!(rows[0][0], "0", "{table}");
    }
    let gone = alice
        .call(
            "create_artifact_download",
            json!({"agent_id": "alice", "artifact_id": short}),
        )
        .await;
    assert_eq!(gone.error_code(), "ARTIFACT_NOT_FOUND");
    download_url(&alice, "alice", &kept).await;
    hub.stop().await;
}

/// A hub killed with SIGKILL in the middle of an upload: after a restart there is no
/// visible artifact and no file left.
#[tokio::test]
async fn a_hub_killed_mid_upload_leaves_nothing_after_restart() {
    if skip_unless_sqlite("restarts on the killed binary's SQLite file") {
        return;
    }
    // The restarted hub's manual clock is ahead of the system clock: keep the row.
    let mut child = ChildHub::spawn(&[("MCP_HUB_ARTIFACT_TTL_MS", "0")]).await;
    let url = child.url.clone();
    let base = url.trim_end_matches("/mcp").to_string();
    let client = Client::connect(&url, None).await;
    client.register("alice", json!({})).await;
    let created = client
        .call(
            "create_artifact_upload",
            json!({"agent_id": "alice", "name": "doomed.bin", "retention_sec": 1e9}),
        )
        .await;
    let body = created.ok();
    let id = body["artifact"]["id"].as_str().unwrap().to_string();
    let upload = body["upload"]["url"].as_str().unwrap();
    let path = &upload[upload.find("/artifacts/").unwrap()..];

    // Send 1 MB of a body that never ends, then kill the hub once the temp file exists.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    sender.send(Ok(vec![7u8; MB])).await.unwrap();
    let body = reqwest::Body::wrap_stream(tokio_stream_of(receiver));
    let request = tokio::spawn(http().post(format!("{base}{path}")).body(body).send());
    let artifacts_dir = child.data_dir.path().join("artifacts");
    let mut waited = 0;
    while !std::fs::read_dir(&artifacts_dir)
        .map(|mut d| d.any(|e| e.is_ok()))
        .unwrap_or(false)
    {
        // Condition polling (no event exists for "the hub opened a file"), bounded.
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        waited += 1;
        assert!(waited < 1000, "the upload never reached the hub");
    }
    child.kill().await;
    drop(sender);
    // The request fails with the hub gone; its outcome is not what this test checks.
    let _ = request.await;
    client.close().await;

    let hub = TestHub::start_with(&[
        ("MCP_HUB_DATA", &child.data_dir.path().display().to_string()),
        ("MCP_HUB_ARTIFACT_TTL_MS", "0"),
    ])
    .await;
    assert!(
        std::fs::read_dir(&artifacts_dir).unwrap().next().is_none(),
        "the startup sweep removed the partial upload"
    );
    let alice = hub.client().await;
    let rows = hub
        .query(&format!(
            "SELECT size_bytes, sha256 IS NULL, storage_path IS NULL FROM artifacts \
             WHERE id = '{id}'"
        ))
        .await;
    assert_eq!(rows, vec![vec!["0", "1", "1"]]);
    let download = alice
        .call(
            "create_artifact_download",
            json!({"agent_id": "alice", "artifact_id": id}),
        )
        .await;
    assert_eq!(download.error_code(), "ARTIFACT_NOT_UPLOADED");
    hub.stop().await;
}

fn tokio_stream_of<T: Send + 'static>(
    mut receiver: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// An upload over HTTP wakes a waiter on the `artifacts` stream and shows in `/events`.
#[tokio::test]
async fn artifact_changes_wake_wait_for_updates_and_events() {
    let hub = TestHub::start().await;
    let (alice, _) = hub.agent("alice").await;
    let (watcher, _) = hub.agent("watcher").await;
    let (id, url) = new_upload(&alice, "alice", json!({})).await;
    let idle = watcher
        .call(
            "wait_for_updates",
            json!({"agent_id": "watcher", "streams": ["artifacts"], "wait_ms": 10,
                   "response_mode": "micro"}),
        )
        .await;
    let cursor = idle.ok()["cursor"].as_str().unwrap().to_string();
    assert_eq!(cursor.split('.').count(), 5);

    let mut events = http()
        .get(format!(
            "{}/events?agent_id=watcher&streams=artifacts&cursor={cursor}",
            hub.base_url()
        ))
        .send()
        .await
        .unwrap();
    let hello = events.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&hello).contains("event: hello"));

    let waiter = spawn_call(
        &Arc::new(watcher),
        "wait_for_updates",
        json!({"agent_id": "watcher", "streams": ["artifacts"], "cursor": cursor,
               "wait_ms": 30_000, "response_mode": "micro"}),
    );
    let (status, _) = post(&hub, &url, b"wake up".to_vec(), "text/plain").await;
    assert_eq!(status, 200);
    let woke = waiter.await.unwrap();
    assert_eq!(woke.ok()["changed"], true);
    assert_eq!(woke.ok()["streams"], json!(["artifacts"]));
    let update = events.chunk().await.unwrap().unwrap();
    let update = String::from_utf8_lossy(&update).to_string();
    assert!(
        update.contains("event: update") && update.contains("artifacts"),
        "{update}"
    );
    let logged = hub
        .query(&format!(
            "SELECT COUNT(*) FROM activity_log WHERE action = 'artifact_upload_http' \
             AND details LIKE '%{id}%'"
        ))
        .await;
    assert_eq!(logged[0][0], "1");
    hub.stop().await;
}
