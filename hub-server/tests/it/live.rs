//! Live updates: wait_for_updates wakes on commit, skips nothing between waits, is not woken
//! by changes the watcher cannot see or by the hub's own bookkeeping, has exact shapes per
//! response mode, and frees its waiter when the client cancels.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Client, TestHub, http, spawn_call};

fn keys(value: &Value) -> HashSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

fn set(names: &[&str]) -> HashSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// A cursor positioned at "now" for `agent`: one quick call (returns at once or times out).
pub(crate) async fn current_cursor(client: &Client, agent: &str) -> String {
    let first = client
        .call(
            "wait_for_updates",
            json!({"agent_id": agent, "wait_ms": 100, "response_mode": "micro"}),
        )
        .await;
    first.ok()["cursor"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_send_wakes_the_waiter_and_nothing_is_skipped_between_waits() {
    let hub = TestHub::start().await;
    // Direct messages go to registered agents only (RECIPIENT_NOT_FOUND).
    hub.register_ids(&["w"]).await;
    let watcher = Arc::new(hub.client().await);
    let sender = hub.client().await;
    let cursor = current_cursor(&watcher, "w").await;

    let waiting = spawn_call(
        &watcher,
        "wait_for_updates",
        json!({"agent_id": "w", "streams": ["messages"], "cursor": cursor,
                           "wait_ms": 20000, "response_mode": "compact"}),
    );
    sender
        .call(
            "send_message",
            json!({"from_agent": "s", "to_agent": "w", "content": "wake up"}),
        )
        .await
        .ok();
    let woke = waiting.await.unwrap();
    let body = woke.ok();
    assert_eq!(body["changed"], true);
    assert_eq!(body["streams"], json!(["messages"]));
    assert!(body["elapsed_ms"].as_i64().unwrap() < 20000);
    let after_first = body["cursor"].as_str().unwrap().to_string();
    assert_ne!(after_first, cursor);

    // A write committed between two waits is reported by the next wait at once.
    sender
        .call(
            "send_message",
            json!({"from_agent": "s", "content": "broadcast in between"}),
        )
        .await
        .ok();
    let next = watcher
        .call(
            "wait_for_updates",
            json!({"agent_id": "w", "streams": ["messages"], "cursor": after_first,
                   "wait_ms": 20000, "response_mode": "nano"}),
        )
        .await;
    let body = next.ok();
    assert_eq!(body["c"], 1);
    assert_eq!(body["s"], json!(["messages"]));
    hub.stop().await;
}

#[tokio::test]
async fn changes_the_watcher_cannot_see_and_bookkeeping_do_not_wake_it() {
    let hub = TestHub::start().await;
    // Direct messages go to registered agents only (RECIPIENT_NOT_FOUND).
    hub.register_ids(&["y", "someone-else"]).await;
    let watcher = Arc::new(hub.client().await);
    let other = hub.client().await;
    other.register("w", json!({})).await;
    let cursor = current_cursor(&watcher, "w").await;

    let waiting = spawn_call(
        &watcher,
        "wait_for_updates",
        json!({"agent_id": "w", "streams": ["messages"], "cursor": cursor,
                           "wait_ms": 1200, "response_mode": "compact"}),
    );
    // A direct message to someone else, reads and onboarding: none of it is visible to w.
    other
        .call(
            "send_message",
            json!({"from_agent": "x", "to_agent": "y", "content": "private"}),
        )
        .await
        .ok();
    other
        .call("read_messages", json!({"agent_id": "w"}))
        .await
        .ok();
    other.call("list_agents", json!({})).await.ok();
    let result = waiting.await.unwrap();
    let body = result.ok();
    assert_eq!(body["changed"], false, "{body}");
    assert!(body["elapsed_ms"].as_i64().unwrap() >= 1100);

    // With every stream watched, an idle hub lets the waiter block until wait_ms, even
    // though waits and reads write (quiet) activity rows (D9). Sync the cursor first: the
    // foreign send above did advance the activity stream.
    let synced = watcher
        .call(
            "wait_for_updates",
            json!({"agent_id": "w", "cursor": body["cursor"], "wait_ms": 100, "response_mode": "micro"}),
        )
        .await;
    let cursor = synced.ok()["cursor"].as_str().unwrap().to_string();
    other
        .call("read_messages", json!({"agent_id": "w"}))
        .await
        .ok();
    other
        .call("get_onboarding", json!({"agent_id": "w", "mode": "none"}))
        .await
        .ok();
    let idle = watcher
        .call(
            "wait_for_updates",
            json!({"agent_id": "w", "cursor": cursor, "wait_ms": 600, "response_mode": "micro"}),
        )
        .await;
    assert_eq!(idle.ok()["changed"], false);
    hub.stop().await;
}

#[tokio::test]
async fn timeout_and_hit_shapes_per_response_mode() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    let cursor = current_cursor(&client, "shape").await;
    let timeout = |mode: &str, extra: Value| {
        let mut args = json!({"agent_id": "shape", "cursor": cursor, "wait_ms": 100,
                              "response_mode": mode});
        for (k, v) in extra.as_object().unwrap() {
            args[k] = v.clone();
        }
        args
    };
    let cases = [
        ("nano", json!({}), set(&["c", "u", "r"])),
        (
            "micro",
            json!({}),
            set(&["changed", "cursor", "retry_after_ms"]),
        ),
        (
            "tiny",
            json!({}),
            set(&["success", "changed", "cursor", "retry_after_ms"]),
        ),
        (
            "compact",
            json!({}),
            set(&[
                "success",
                "changed",
                "elapsed_ms",
                "cursor",
                "retry_after_ms",
            ]),
        ),
        (
            "full",
            json!({}),
            set(&[
                "success",
                "changed",
                "elapsed_ms",
                "cursor",
                "changed_streams",
                "watermark",
                "retry_after_ms",
            ]),
        ),
        ("nano", json!({"timeout_response": "minimal"}), set(&["c"])),
        (
            "micro",
            json!({"timeout_response": "minimal"}),
            set(&["changed"]),
        ),
    ];
    for (mode, extra, expected) in cases {
        let outcome = client
            .call("wait_for_updates", timeout(mode, extra.clone()))
            .await;
        assert_eq!(keys(outcome.ok()), expected, "{mode} {extra}");
    }
    let fixed = client
        .call(
            "wait_for_updates",
            timeout(
                "micro",
                json!({"adaptive_retry": false, "poll_interval_ms": 700}),
            ),
        )
        .await;
    assert_eq!(fixed.ok()["retry_after_ms"], 700);
    let adaptive = client
        .call(
            "wait_for_updates",
            timeout("nano", json!({"poll_interval_ms": 300})),
        )
        .await;
    let hint = adaptive.ok()["r"].as_i64().unwrap();
    assert!((300..=10_000).contains(&hint), "{hint}");

    // Hit shapes: a fresh cursor of zeros sees the registrations' activity at once.
    let hit = |mode: &str| json!({"agent_id": "shape", "cursor": "0.0.0.0", "wait_ms": 100, "response_mode": mode});
    client.register("shape", json!({})).await;
    let expected = [
        ("nano", set(&["c", "s", "u"])),
        ("micro", set(&["changed", "streams", "cursor"])),
        (
            "tiny",
            set(&["success", "changed", "streams", "cursor", "watermark"]),
        ),
        (
            "compact",
            set(&[
                "success",
                "changed",
                "elapsed_ms",
                "streams",
                "cursor",
                "watermark",
            ]),
        ),
        (
            "full",
            set(&[
                "success",
                "changed",
                "elapsed_ms",
                "cursor",
                "changed_streams",
                "watermark",
            ]),
        ),
    ];
    for (mode, expected) in expected {
        let outcome = client.call("wait_for_updates", hit(mode)).await;
        assert_eq!(keys(outcome.ok()), expected, "{mode}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn bad_arguments_are_refused_with_codes() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    for (args, code) in [
        (json!({}), "AGENT_ID_REQUIRED"),
        (
            json!({"agent_id": "a", "streams": ["mail"]}),
            "STREAMS_INVALID",
        ),
        (json!({"agent_id": "a", "cursor": "1:2"}), "CURSOR_INVALID"),
        (
            json!({"agent_id": "a", "cursor": "0.0.0"}),
            "CURSOR_INVALID",
        ),
    ] {
        let outcome = client.call("wait_for_updates", args.clone()).await;
        assert_eq!(outcome.error_code(), code, "{args}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn enforce_mode_checks_the_caller_not_the_watched_scope() {
    let hub = TestHub::start_with(&[("MCP_HUB_AUTH_MODE", "enforce")]).await;
    let (client, token) = hub.agent("me").await;
    // My own token authenticates me (D1: not the watched scope) — and my own scope only:
    // another agent's inbox is refused as private data, not as a bad token.
    let outcome = client
        .call(
            "wait_for_updates",
            json!({"requesting_agent": "me", "agent_id": "someone", "auth_token": token,
                   "wait_ms": 100, "response_mode": "micro"}),
        )
        .await;
    assert_eq!(outcome.error_code(), "FOREIGN_PRIVATE_DATA");
    let outcome = client
        .call(
            "wait_for_updates",
            json!({"requesting_agent": "me", "agent_id": "me", "auth_token": token,
                   "wait_ms": 100, "response_mode": "micro"}),
        )
        .await;
    outcome.ok();
    let refused = client
        .call(
            "wait_for_updates",
            json!({"agent_id": "me", "wait_ms": 100}),
        )
        .await;
    assert_eq!(refused.error_code(), "AUTH_TOKEN_REQUIRED");
    hub.stop().await;
}

#[tokio::test]
async fn a_cancelled_call_frees_its_waiter() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    let cursor = current_cursor(&client, "quitter").await;
    let health_url = format!("{}/health", hub.base_url());
    let waiters = || async {
        let body: Value = http()
            .get(&health_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["waiters"].as_u64().unwrap()
    };
    // Dropping rmcp's call future sends notifications/cancelled for the request.
    let call = client.call(
        "wait_for_updates",
        json!({"agent_id": "quitter", "cursor": cursor, "wait_ms": 25000}),
    );
    let dropped = tokio::time::timeout(Duration::from_millis(300), call).await;
    assert!(dropped.is_err(), "the wait should still have been running");
    // Bounded wait for the hub to observe the cancellation (not a timing assertion).
    let freed = tokio::time::timeout(Duration::from_secs(10), async {
        while waiters().await != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(freed.is_ok(), "the cancelled waiter was not freed");
    hub.stop().await;
}

#[tokio::test]
async fn read_snapshot_nano_shape_and_change_flags() {
    let hub = TestHub::start().await;
    // Direct messages go to registered agents only (RECIPIENT_NOT_FOUND).
    hub.register_ids(&["snap"]).await;
    let client = hub.client().await;
    client
        .call(
            "send_message",
            json!({"from_agent": "s", "to_agent": "snap", "content": "hi"}),
        )
        .await
        .ok();
    client
        .call("create_task", json!({"title": "t", "created_by": "s"}))
        .await
        .ok();
    client
        .call(
            "share_context",
            json!({"agent_id": "s", "key": "k", "value": "v"}),
        )
        .await
        .ok();
    let snapshot = client
        .call(
            "read_snapshot",
            json!({"agent_id": "snap", "cursor": "0.0.0.0", "response_mode": "nano"}),
        )
        .await;
    let body = snapshot.ok();
    assert_eq!(keys(body), set(&["s", "h", "ch", "n", "u"]));
    assert_eq!(keys(&body["s"]), set(&["m", "t", "c"]));
    assert_eq!(keys(&body["h"]), set(&["m", "t"]));
    assert_eq!(keys(&body["ch"]), set(&["m", "t", "c", "a"]));
    assert_eq!(keys(&body["n"]), set(&["m", "t"]));
    assert_eq!(body["ch"]["m"], 1);
    assert_eq!(body["ch"]["t"], 1);
    assert_eq!(body["ch"]["c"], 1);
    assert_eq!(body["s"]["m"].as_array().unwrap().len(), 1);
    assert_eq!(body["s"]["t"].as_array().unwrap().len(), 1);
    assert_eq!(body["s"]["c"].as_array().unwrap().len(), 1);

    // Nothing changed since: the same cursor comes back with all flags clear.
    let cursor = body["u"].as_str().unwrap().to_string();
    let again = client
        .call(
            "read_snapshot",
            json!({"agent_id": "snap", "cursor": cursor, "response_mode": "nano"}),
        )
        .await;
    let body = again.ok();
    assert_eq!(body["ch"], json!({"m": 0, "t": 0, "c": 0, "a": 0}));
    assert_eq!(body["u"], json!(cursor));

    // The snapshot cursor is the wait cursor: a new task wakes a waiter on it.
    client
        .call("create_task", json!({"title": "t2", "created_by": "s"}))
        .await
        .ok();
    let woke = client
        .call(
            "wait_for_updates",
            json!({"agent_id": "snap", "cursor": cursor, "wait_ms": 5000, "response_mode": "nano"}),
        )
        .await;
    // create_task also logs activity; messages and context did not change.
    assert_eq!(woke.ok()["s"], json!(["tasks", "activity"]));
    hub.stop().await;
}

#[tokio::test]
async fn read_snapshot_resumes_truncated_streams_and_marks_nothing_read() {
    let hub = TestHub::start().await;
    // Direct messages go to registered agents only (RECIPIENT_NOT_FOUND).
    hub.register_ids(&["page"]).await;
    let client = hub.client().await;
    let mut sent = Vec::new();
    for n in 0..5 {
        let message = client
            .call(
                "send_message",
                json!({"from_agent": "s", "to_agent": "page", "content": format!("m{n}")}),
            )
            .await;
        sent.push(message.ok()["message"]["id"].as_i64().unwrap());
    }
    let mut cursor = "0.0.0.0".to_string();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let snapshot = client
            .call(
                "read_snapshot",
                json!({"agent_id": "page", "cursor": cursor, "message_limit": 2,
                       "response_mode": "compact"}),
            )
            .await;
        let body = snapshot.ok();
        let messages = body["snapshot"]["messages"]["messages"].as_array().unwrap();
        seen.extend(messages.iter().map(|m| m["id"].as_i64().unwrap()));
        cursor = body["cursor"].as_str().unwrap().to_string();
        if body["snapshot"]["messages"]["has_more"] == false {
            break;
        }
    }
    assert_eq!(
        seen, sent,
        "every message once, in order, across truncated pages (D13)"
    );
    let unread = client
        .call(
            "read_messages",
            json!({"agent_id": "page", "unread_only": true, "response_mode": "tiny", "limit": 10}),
        )
        .await;
    assert_eq!(
        unread.ok()["messages"].as_array().unwrap().len(),
        5,
        "a snapshot marks nothing read (D12)"
    );
    hub.stop().await;
}

#[tokio::test]
async fn read_snapshot_resumes_a_truncated_task_stream_in_nano_and_compact() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    let mut created = Vec::new();
    for n in 0..5 {
        let task = client
            .call(
                "create_task",
                json!({"title": format!("t{n}"), "created_by": "s"}),
            )
            .await;
        created.push(task.ok()["task"]["id"].as_i64().unwrap());
    }
    for mode in ["nano", "compact"] {
        let (rows, more, next) = if mode == "nano" {
            (&["s", "t"][..], &["h", "t"][..], &["n", "t"][..])
        } else {
            (
                &["snapshot", "tasks", "tasks"][..],
                &["snapshot", "tasks", "has_more"][..],
                &["snapshot", "tasks", "next_cursor"][..],
            )
        };
        let at = |body: &Value, path: &[&str]| {
            path.iter()
                .fold(body.clone(), |value, key| value[*key].clone())
        };
        let mut cursor = "0.0.0.0".to_string();
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            pages += 1;
            assert!(pages <= 5, "{mode}: the task stream never ended");
            let snapshot = client
                .call(
                    "read_snapshot",
                    json!({"agent_id": "board", "cursor": cursor, "task_limit": 2,
                           "response_mode": mode}),
                )
                .await;
            let body = snapshot.ok();
            let page = at(body, rows);
            let ids: Vec<i64> = page
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t[if mode == "nano" { "i" } else { "id" }].as_i64().unwrap())
                .collect();
            let truncated =
                matches!(at(body, more), Value::Bool(true)) || at(body, more) == json!(1);
            if !ids.is_empty() {
                assert!(
                    at(body, next).is_string(),
                    "{mode}: a delta page names its end"
                );
            }
            seen.extend(ids);
            cursor = body[if mode == "nano" { "u" } else { "cursor" }]
                .as_str()
                .unwrap()
                .to_string();
            if !truncated {
                break;
            }
        }
        assert_eq!(pages, 3, "{mode}: 5 tasks in pages of 2");
        assert_eq!(seen, created, "{mode}: every task once, in order (D13)");
    }
    hub.stop().await;
}

#[tokio::test]
async fn read_snapshot_refusals_and_compact_shape() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    for (args, code) in [
        (json!({}), "AGENT_ID_REQUIRED"),
        (
            json!({"agent_id": "a", "response_mode": "full"}),
            "FULL_MODE_FORBIDDEN_IN_POLLING",
        ),
        (json!({"agent_id": "a", "cursor": "nope"}), "CURSOR_INVALID"),
    ] {
        let outcome = client.call("read_snapshot", args.clone()).await;
        assert_eq!(outcome.error_code(), code, "{args}");
    }
    let compact = client
        .call(
            "read_snapshot",
            json!({"agent_id": "a", "message_limit": 999}),
        )
        .await;
    let body = compact.ok();
    assert_eq!(
        keys(body),
        set(&[
            "success",
            "response_mode",
            "changed",
            "cursor",
            "snapshot",
            "counts",
            "limits"
        ])
    );
    assert_eq!(body["response_mode"], "compact");
    assert_eq!(
        body["limits"]["messages"], 200,
        "one documented message cap (D14)"
    );
    assert_eq!(
        keys(&body["snapshot"]),
        set(&["messages", "tasks", "context"])
    );
    hub.stop().await;
}
