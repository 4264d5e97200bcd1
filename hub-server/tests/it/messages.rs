//! Messaging: direct and broadcast delivery, read state, cursor reads (exactly once, in
//! order, also under concurrent senders), response modes, idempotency, bad input, restart.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::harness::{Client, TestHub, http};

pub(crate) async fn send(client: &Client, from: &str, to: Option<&str>, content: &str) -> i64 {
    let mut args = json!({"from_agent": from, "content": content});
    if let Some(to) = to {
        args["to_agent"] = json!(to);
    }
    client.call("send_message", args).await.ok()["message"]["id"]
        .as_i64()
        .unwrap()
}

/// One task per client, each sending `per_sender` messages one after another as
/// `sender-<n>`: four of five direct to `to`, every fifth a broadcast. Each task returns the
/// ids it got acknowledged, in order.
pub(crate) fn spawn_senders(
    clients: Vec<Client>,
    to: &str,
    per_sender: usize,
) -> Vec<JoinHandle<Vec<i64>>> {
    clients
        .into_iter()
        .enumerate()
        .map(|(s, client)| {
            let to = to.to_string();
            tokio::spawn(async move {
                let mut sent = Vec::new();
                for n in 0..per_sender {
                    let to = (n % 5 != 4).then_some(to.as_str());
                    sent.push(send(&client, &format!("sender-{s}"), to, &format!("{s}:{n}")).await);
                }
                client.close().await;
                sent
            })
        })
        .collect()
}

fn ids(messages: &Value) -> Vec<i64> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().or(m["i"].as_i64()).unwrap())
        .collect()
}

#[tokio::test]
async fn direct_and_broadcast_visibility_and_read_state() {
    let hub = TestHub::start().await;
    // Direct messages go to registered agents only (RECIPIENT_NOT_FOUND).
    hub.register_ids(&["b"]).await;
    let client = hub.client().await;
    let direct = send(&client, "a", Some("b"), "for b only").await;
    let broadcast = send(&client, "c", None, "for everyone").await;

    let b = client.call("read_messages", json!({"agent_id": "b"})).await;
    let body = b.ok();
    assert!(body.get("success").is_none());
    assert_eq!(
        ids(&body["messages"]),
        vec![broadcast, direct],
        "newest first"
    );
    assert_eq!(body["messages"][1]["to_agent"], "b");
    assert_eq!(body["messages"][0]["to_agent"], Value::Null);
    assert_eq!(body["messages"][0]["read"], 0);
    assert_eq!(body["has_more"], false);
    // A plain read hands back the cursor a loop continues from: after the newest row.
    let resume = body["next_cursor"].as_str().expect("a cursor").to_string();
    let after = client
        .call(
            "read_messages",
            json!({"agent_id": "b", "cursor": resume, "response_mode": "tiny"}),
        )
        .await;
    assert!(after.ok()["messages"].as_array().unwrap().is_empty());

    // The sender of a broadcast sees it; a third party does not see a direct message.
    let c = client.call("read_messages", json!({"agent_id": "c"})).await;
    assert_eq!(ids(&c.ok()["messages"]), vec![broadcast]);

    // `read` reflects the state before the call; unread_only then returns nothing.
    let again = client.call("read_messages", json!({"agent_id": "b"})).await;
    assert_eq!(again.ok()["messages"][0]["read"], 1);
    let unread = client
        .call(
            "read_messages",
            json!({"agent_id": "b", "unread_only": true}),
        )
        .await;
    assert!(unread.ok()["messages"].as_array().unwrap().is_empty());

    let from_filter = client
        .call("read_messages", json!({"agent_id": "b", "from": "a"}))
        .await;
    assert_eq!(ids(&from_filter.ok()["messages"]), vec![direct]);
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn cursor_pages_resume_exactly_and_mark_only_returned_rows() {
    let hub = TestHub::start().await;
    // Direct messages go to registered agents only (RECIPIENT_NOT_FOUND).
    hub.register_ids(&["r"]).await;
    let client = hub.client().await;
    let sent = [
        send(&client, "s", Some("r"), "one").await,
        send(&client, "s", Some("r"), "two").await,
        send(&client, "s", Some("r"), "three").await,
    ];
    let first = client
        .call(
            "read_messages",
            json!({"agent_id": "r", "cursor": "0", "limit": 2, "response_mode": "compact"}),
        )
        .await;
    let body = first.ok();
    assert_eq!(ids(&body["messages"]), sent[..2].to_vec());
    assert_eq!(body["has_more"], true);
    let cursor = body["next_cursor"].as_str().unwrap().to_string();

    // The probe row beyond the page stays unread (D11).
    let unread = client
        .call(
            "read_messages",
            json!({"agent_id": "r", "unread_only": true, "response_mode": "tiny"}),
        )
        .await;
    assert_eq!(ids(&unread.ok()["messages"]), vec![sent[2]]);

    let second = client
        .call(
            "read_messages",
            json!({"agent_id": "r", "cursor": cursor, "limit": 2, "response_mode": "compact"}),
        )
        .await;
    let body = second.ok();
    assert_eq!(ids(&body["messages"]), vec![sent[2]]);
    assert_eq!(body["has_more"], false);
    let end = body["next_cursor"].as_str().unwrap().to_string();

    // At the end the cursor stays put and nothing repeats.
    let empty = client
        .call(
            "read_messages",
            json!({"agent_id": "r", "cursor": end, "response_mode": "nano"}),
        )
        .await;
    let body = empty.ok();
    assert_eq!(body["m"], json!([]));
    assert_eq!(body["n"], json!(end));

    let bad = client
        .call(
            "read_messages",
            json!({"agent_id": "r", "cursor": "garbage", "response_mode": "nano"}),
        )
        .await;
    assert_eq!(bad.error_code(), "CURSOR_INVALID");
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn twenty_concurrent_senders_every_message_seen_once_in_order() {
    const SENDERS: usize = 20;
    const PER_SENDER: usize = 15;
    let hub = TestHub::start_with(&[("MCP_HUB_RATE_LIMIT_RPS", "0")]).await;
    // Direct messages go to registered agents only (RECIPIENT_NOT_FOUND).
    hub.register_ids(&["reader"]).await;
    let reader = hub.client().await;
    let mut clients = Vec::new();
    for _ in 0..SENDERS {
        clients.push(hub.client().await);
    }
    let senders = spawn_senders(clients, "reader", PER_SENDER);
    // Read concurrently with the senders, then drain what is left.
    let mut cursor = "0".to_string();
    let mut seen: Vec<(i64, String)> = Vec::new();
    let mut senders_done = false;
    loop {
        let page = reader
            .call(
                "read_messages",
                json!({"agent_id": "reader", "cursor": cursor, "limit": 7, "response_mode": "nano"}),
            )
            .await;
        let body = page.ok().clone();
        for item in body["m"].as_array().unwrap() {
            seen.push((
                item["i"].as_i64().unwrap(),
                item["f"].as_str().unwrap().to_string(),
            ));
        }
        cursor = body["n"].as_str().unwrap().to_string();
        let drained = body["h"] == 0;
        if senders_done && drained {
            break;
        }
        if !senders_done && senders.iter().all(|s| s.is_finished()) {
            senders_done = true;
        }
    }
    let mut all_sent = Vec::new();
    for sender in senders {
        all_sent.extend(sender.await.unwrap());
    }
    let seen_ids: Vec<i64> = seen.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        seen_ids.len(),
        SENDERS * PER_SENDER,
        "every message exactly once"
    );
    assert!(
        seen_ids.windows(2).all(|w| w[0] < w[1]),
        "in commit order, no duplicates"
    );
    let seen_set: HashSet<i64> = seen_ids.iter().copied().collect();
    let sent_set: HashSet<i64> = all_sent.iter().copied().collect();
    assert_eq!(seen_set, sent_set, "no gaps");
    reader.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn response_modes_have_the_specified_shapes() {
    let hub = TestHub::start().await;
    // Direct messages go to registered agents only (RECIPIENT_NOT_FOUND).
    hub.register_ids(&["t"]).await;
    let client = hub.client().await;
    let long = "x".repeat(300);
    client
        .call(
            "send_message",
            json!({"from_agent": "f", "to_agent": "t", "content": long, "trace_id": "trace-abcdefghijklmnop", "metadata": "{ \"k\": 1 }"}),
        )
        .await
        .ok();
    let full = client.call("read_messages", json!({"agent_id": "t"})).await;
    let message = &full.ok()["messages"][0];
    assert_eq!(message["metadata"], "{\"k\":1}");
    assert_eq!(message["trace_id"], "trace-abcdefghijklmnop");

    let compact = client
        .call(
            "read_messages",
            json!({"agent_id": "t", "response_mode": "compact"}),
        )
        .await;
    let item = &compact.ok()["messages"][0];
    assert_eq!(item["content_chars"], 300);
    assert_eq!(item["content_digest"].as_str().unwrap().len(), 16);
    assert_eq!(item["content_preview"].as_str().unwrap().len(), 180);
    assert!(item.get("content").is_none() && item.get("metadata").is_none());

    let tiny = client
        .call(
            "read_messages",
            json!({"agent_id": "t", "response_mode": "tiny"}),
        )
        .await;
    assert!(tiny.ok()["messages"][0].get("content_preview").is_none());

    let nano = client
        .call(
            "read_messages",
            json!({"agent_id": "t", "response_mode": "nano"}),
        )
        .await;
    let body = nano.ok();
    let keys: HashSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, HashSet::from(["m", "h", "n"]));
    let item = body["m"][0].as_object().unwrap();
    let keys: HashSet<&str> = item.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        HashSet::from(["i", "f", "t", "u", "r", "c", "d", "x"])
    );
    assert_eq!(item["d"].as_str().unwrap().len(), 12);
    assert_eq!(item["x"], "trace-abcdef");
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn polling_reads_refuse_full_mode() {
    let hub = TestHub::start().await;
    // Direct messages go to registered agents only (RECIPIENT_NOT_FOUND).
    hub.register_ids(&["p"]).await;
    let client = hub.client().await;
    send(&client, "a", Some("p"), "m").await;
    for args in [
        json!({"agent_id": "p", "polling": true}),
        json!({"agent_id": "p", "cursor": "0"}),
        json!({"agent_id": "p", "since_ts": 0}),
    ] {
        let refused = client.call("read_messages", args.clone()).await;
        assert_eq!(
            refused.error_code(),
            "FULL_MODE_FORBIDDEN_IN_POLLING",
            "{args}"
        );
        assert_eq!(
            refused.json["allowed_response_modes"],
            json!(["nano", "tiny", "compact"])
        );
    }
    // The refusal did not mark the message read.
    let unread = client
        .call(
            "read_messages",
            json!({"agent_id": "p", "unread_only": true}),
        )
        .await;
    assert_eq!(unread.ok()["messages"].as_array().unwrap().len(), 1);
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn content_is_lossless_by_default_and_limits_are_enforced() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    let code = "fn main() {\n    println!(\"hi\");\n}\n";
    let sent = client
        .call("send_message", json!({"from_agent": "a", "content": code}))
        .await;
    let body = sent.ok();
    assert_eq!(body["message"]["content"], code);
    assert_eq!(body["compression"]["applied"], false);
    assert_eq!(body["compression"]["mode"], "none");

    let collapsed = client
        .call(
            "send_message",
            json!({"from_agent": "a", "content": "a   b\n\nc", "compression_mode": "whitespace"}),
        )
        .await;
    assert_eq!(collapsed.ok()["message"]["content"], "a b c");

    let empty = client
        .call(
            "send_message",
            json!({"from_agent": "a", "content": "", "compression_mode": "auto"}),
        )
        .await;
    assert_eq!(empty.ok()["compression"]["applied"], false);

    let too_long = client
        .call(
            "send_message",
            json!({"from_agent": "a", "content": "y".repeat(1025)}),
        )
        .await;
    assert_eq!(too_long.error_code(), "CONTENT_TOO_LONG");
    assert_eq!(too_long.json["max_chars"], 1024);
    let metadata = client
        .call(
            "send_message",
            json!({"from_agent": "a", "content": "ok", "metadata": "m".repeat(1025)}),
        )
        .await;
    assert_eq!(metadata.error_code(), "METADATA_TOO_LONG");
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn idempotent_retry_replays_and_refusals_are_not_cached() {
    let hub = TestHub::start().await;
    // Direct messages go to registered agents only (RECIPIENT_NOT_FOUND).
    hub.register_ids(&["j", "race"]).await;
    let client = hub.client().await;
    let args =
        json!({"from_agent": "i", "to_agent": "j", "content": "once", "idempotency_key": "k1"});
    let first = client.call("send_message", args.clone()).await;
    let second = client.call("send_message", args.clone()).await;
    assert_eq!(first.ok()["message"]["id"], second.ok()["message"]["id"]);
    let inbox = client.call("read_messages", json!({"agent_id": "j"})).await;
    assert_eq!(
        inbox.ok()["messages"].as_array().unwrap().len(),
        1,
        "executed once"
    );

    let reused = client
        .call(
            "send_message",
            json!({"from_agent": "i", "to_agent": "j", "content": "different", "idempotency_key": "k1"}),
        )
        .await;
    assert_eq!(reused.error_code(), "IDEMPOTENCY_KEY_REUSED");

    // A refusal under a key is not stored: fixing the cause and retrying works (D27).
    let refused = client
        .call(
            "send_message",
            json!({"from_agent": "i", "content": "z".repeat(2000), "idempotency_key": "k2"}),
        )
        .await;
    assert_eq!(refused.error_code(), "CONTENT_TOO_LONG");
    let fixed = client
        .call(
            "send_message",
            json!({"from_agent": "i", "content": "short now", "idempotency_key": "k2"}),
        )
        .await;
    assert_eq!(fixed.ok()["message"]["content"], "short now");

    // Concurrent calls with one key execute once.
    let client = Arc::new(client);
    let mut racers = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        racers.push(tokio::spawn(async move {
            client
                .call(
                    "send_message",
                    json!({"from_agent": "i", "to_agent": "race", "content": "r", "idempotency_key": "race"}),
                )
                .await
                .ok()["message"]["id"]
                .as_i64()
                .unwrap()
        }));
    }
    let mut raced = HashSet::new();
    for racer in racers {
        raced.insert(racer.await.unwrap());
    }
    assert_eq!(raced.len(), 1);
    hub.stop().await;
}

#[tokio::test]
async fn malformed_arguments_are_tool_errors_without_side_effects() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    // Through the hub's store, so the check runs on either backend.
    let count = async |sql: &str| -> i64 { hub.query(sql).await[0][0].parse().unwrap() };
    let calls_before = count("SELECT COALESCE(SUM(calls), 0) FROM call_minutes").await;
    // SEP-1303: the model sees what to fix, as a tool result, not a protocol exception.
    for (tool, args, field) in [
        ("send_message", json!({"from_agent": "a"}), "content"),
        (
            "send_message",
            json!({"from_agent": 5, "content": "x"}),
            "from_agent",
        ),
        (
            "read_messages",
            json!({"agent_id": "a", "limit": "ten"}),
            "limit",
        ),
        (
            "read_messages",
            json!({"agent_id": "a", "response_mode": "huge"}),
            "response_mode",
        ),
        ("register_agent", json!({"id": "x"}), "name"),
        (
            "send_message",
            json!({"from_agent": "a", "content": "ok", "extra": {"x": 1}}),
            "extra",
        ),
    ] {
        let outcome = client.call(tool, args.clone()).await;
        assert_eq!(outcome.error_code(), "INVALID_ARGUMENT", "{tool} {args}");
        assert_eq!(outcome.json["field"], field, "{tool} {args}");
    }
    // An unknown tool stays a protocol error (-32602): there is no tool to answer.
    let error = client.try_call("no_such_tool", json!({})).await;
    assert!(
        error
            .expect_err("unknown tool")
            .to_string()
            .contains("-32602")
    );
    assert_eq!(count("SELECT COUNT(*) FROM messages").await, 0);
    assert_eq!(count("SELECT COUNT(*) FROM agents").await, 0);
    hub.flush_bookkeeping().await;
    assert_eq!(
        count("SELECT COALESCE(SUM(calls), 0) FROM call_minutes").await,
        calls_before,
        "a schema error is not a guarded call"
    );

    let health = http()
        .get(format!("{}/health", hub.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn restart_keeps_agents_tokens_messages_and_cursors() {
    let hub = TestHub::start_with(&[("MCP_HUB_AUTH_MODE", "enforce")]).await;
    let (client, token) = hub.agent("durable").await;
    let (sender, sender_token) = hub.agent("sender").await;
    let message = |content: &str| json!({"from_agent": "sender", "to_agent": "durable", "content": content, "auth_token": sender_token});
    sender
        .call("send_message", message("before restart"))
        .await
        .ok();
    let page = client
        .call(
            "read_messages",
            json!({"agent_id": "durable", "cursor": "0", "response_mode": "compact", "auth_token": token}),
        )
        .await;
    let cursor = page.ok()["next_cursor"].as_str().unwrap().to_string();
    let hub = hub.restart().await;
    // Old sessions are gone: a raw request with an old-style session id gets the contract.
    let stale = http()
        .post(hub.url())
        .header("content-type", "application/json")
        .header("mcp-session-id", "session-from-before")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 404);

    let client = hub.client().await;
    let sender = hub.client().await;
    sender
        .call(
            "send_message",
            json!({"from_agent": "sender", "to_agent": "durable", "content": "after restart", "auth_token": sender_token}),
        )
        .await
        .ok();
    let page = client
        .call(
            "read_messages",
            json!({"agent_id": "durable", "cursor": cursor, "response_mode": "compact", "auth_token": token}),
        )
        .await;
    let body = page.ok();
    let previews: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content_preview"].as_str().unwrap())
        .collect();
    assert_eq!(
        previews,
        vec!["after restart"],
        "the old cursor resumes exactly"
    );
    let agents = client
        .call(
            "list_agents",
            json!({"agent_id": "durable", "auth_token": token, "response_mode": "summary"}),
        )
        .await;
    assert_eq!(agents.ok()["summary"]["total"], 2);
    hub.stop().await;
}

/// read_messages runs on the reader pool and its read marks follow through the writer:
/// concurrent unread-only reads of one inbox (several sessions of the same agent) still hand
/// out every message exactly once, and a restart keeps the marks.
#[tokio::test]
async fn concurrent_unread_reads_of_one_inbox_never_repeat_a_message() {
    let hub = TestHub::start_with(&[("MCP_HUB_RATE_LIMIT_RPS", "0")]).await;
    // Direct messages go to registered agents only (RECIPIENT_NOT_FOUND).
    hub.register_ids(&["reader"]).await;
    let sender = hub.client().await;
    for i in 0..120 {
        send(&sender, "s", Some("reader"), &format!("m{i}")).await;
    }
    let mut sessions = Vec::new();
    for _ in 0..6 {
        sessions.push(hub.client().await);
    }
    let mut readers = Vec::new();
    for session in sessions {
        readers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let page = session
                    .call(
                        "read_messages",
                        json!({"agent_id": "reader", "unread_only": true, "limit": 7,
                               "response_mode": "nano"}),
                    )
                    .await;
                let rows = page.ok()["m"].as_array().unwrap().clone();
                if rows.is_empty() {
                    break;
                }
                seen.extend(rows.iter().map(|row| row["i"].as_i64().unwrap()));
            }
            session.close().await;
            seen
        }));
    }
    let mut all = Vec::new();
    for reader in readers {
        all.extend(reader.await.unwrap());
    }
    all.sort();
    let unique: std::collections::BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 120, "every message once: {all:?}");
    assert_eq!(unique.len(), 120);
    let hub = hub.restart().await;
    let client = hub.client().await;
    let after = client
        .call(
            "read_messages",
            json!({"agent_id": "reader", "unread_only": true}),
        )
        .await;
    assert!(
        after.ok()["messages"].as_array().unwrap().is_empty(),
        "marks survived"
    );
    sender.close().await;
    client.close().await;
    hub.stop().await;
}

/// The documented loop (plain first read, then cursor reads in a polling mode with
/// include_content) delivers every message whole, once, in order — a 10 KB one included —
/// and a page cut by the content budget leaves the rest unread for the next page.
#[tokio::test]
async fn cursor_loop_with_include_content_carries_whole_messages() {
    let hub = TestHub::start_with(&[("MCP_HUB_MAX_MESSAGE_CONTENT_CHARS", "100000")]).await;
    hub.register_ids(&["a", "b"]).await;
    let client = hub.client().await;
    let first = client
        .call(
            "read_messages",
            json!({"agent_id": "b", "response_mode": "compact"}),
        )
        .await;
    let cursor = first.ok()["next_cursor"]
        .as_str()
        .expect("a plain first read hands back a cursor")
        .to_string();

    let ten_kb: String = (0..10_240)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let large = "x".repeat(30_000);
    let sent = [
        "short".to_string(),
        ten_kb.clone(),
        large.clone(),
        large.clone(),
        format!("{large}!"),
    ];
    for content in &sent {
        send(&client, "a", Some("b"), content).await;
    }

    for mode in ["nano", "compact"] {
        let mut received = Vec::new();
        let mut pages = 0;
        let mut loop_cursor = cursor.clone();
        loop {
            let page = client
                .call(
                    "read_messages",
                    json!({"agent_id": "b", "cursor": loop_cursor, "response_mode": mode,
                           "include_content": true, "polling": true}),
                )
                .await;
            let body = page.ok().clone();
            pages += 1;
            let (items, more, next, key) = if mode == "nano" {
                (&body["m"], body["h"] == 1, &body["n"], "k")
            } else {
                (
                    &body["messages"],
                    body["has_more"] == true,
                    &body["next_cursor"],
                    "content",
                )
            };
            for item in items.as_array().unwrap() {
                received.push(item[key].as_str().expect("whole content").to_string());
            }
            loop_cursor = next.as_str().unwrap().to_string();
            if !more {
                break;
            }
        }
        assert_eq!(
            received, sent,
            "{mode}: every message whole, once, in order"
        );
        assert!(
            pages >= 2,
            "{mode}: the 64 KB budget splits the pages ({pages})"
        );
        if mode == "nano" {
            // The marks followed the pages: nothing is left unread.
            hub.flush_bookkeeping().await;
            let unread = client
                .call(
                    "read_messages",
                    json!({"agent_id": "b", "unread_only": true, "response_mode": "tiny"}),
                )
                .await;
            assert_eq!(unread.ok()["messages"].as_array().unwrap().len(), 0);
        }
    }

    // read_snapshot carries the whole message too.
    let snapshot = client
        .call(
            "read_snapshot",
            json!({"agent_id": "b", "response_mode": "compact", "include_content": true,
                   "message_limit": 2}),
        )
        .await;
    let messages = snapshot.ok()["snapshot"]["messages"]["messages"].clone();
    let contents: Vec<&str> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert!(contents.contains(&format!("{large}!").as_str()));
    client.close().await;
    hub.stop().await;
}
