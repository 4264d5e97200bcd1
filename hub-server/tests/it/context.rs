//! Shared context: lossless sharing, upsert semantics, limits, every get_context response
//! mode, the delta feed (ascending, resumable, nothing skipped in one millisecond — D17),
//! the polling guard, the caller/filter split (D1), idempotency and restart.

use serde_json::{Value, json};

use crate::harness::{Client, TestHub};

async fn share(client: &Client, agent: &str, key: &str, value: &str) -> Value {
    client
        .call(
            "share_context",
            json!({"agent_id": agent, "key": key, "value": value}),
        )
        .await
        .ok()
        .clone()
}

fn keys(rows: &Value) -> Vec<String> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().or(r["k"].as_str()).unwrap().to_string())
        .collect()
}

fn object_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn share_context_stores_values_exactly_and_upserts_by_agent_and_key() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    let code = "fn main() {\n    println!(\"hi\");\n}\n";
    let first = share(&client, "a1", "snippet", code).await;
    assert_eq!(first["success"], true);
    assert_eq!(first["context"]["value"], code);
    assert_eq!(first["context"]["namespace"], "default");
    assert_eq!(first["context"]["trace_id"], Value::Null);
    assert_eq!(
        first["compression"],
        json!({"mode": "none", "applied": false, "original_chars": code.chars().count(),
               "stored_chars": code.chars().count()})
    );
    let id = first["context"]["id"].as_i64().unwrap();

    // Same (agent, key) in another namespace: the row moves, its id stays.
    hub.clock.advance_ms(5);
    let moved = client
        .call(
            "share_context",
            json!({"agent_id": "a1", "key": "snippet", "value": "v2", "namespace": " ns1 ",
                   "trace_id": "t-1"}),
        )
        .await;
    let moved = moved.ok();
    assert_eq!(moved["context"]["id"], id);
    assert_eq!(moved["context"]["namespace"], "ns1");
    assert_eq!(moved["context"]["trace_id"], "t-1");
    assert_eq!(
        moved["context"]["updated_at"].as_i64().unwrap(),
        first["context"]["updated_at"].as_i64().unwrap() + 5
    );
    // Another agent's same key is a different row.
    let other = share(&client, "a2", "snippet", "theirs").await;
    assert_ne!(other["context"]["id"], id);

    // Lossy modes only when named; applied only when the value changed.
    let ws = client
        .call(
            "share_context",
            json!({"agent_id": "a1", "key": "w", "value": " a \n b ", "compression_mode": "whitespace"}),
        )
        .await;
    assert_eq!(ws.ok()["context"]["value"], "a b");
    assert_eq!(ws.ok()["compression"]["applied"], true);
    let json_mode = client
        .call(
            "share_context",
            json!({"agent_id": "a1", "key": "j", "value": "{\"b\":1}", "compression_mode": "json"}),
        )
        .await;
    assert_eq!(json_mode.ok()["compression"]["applied"], false);
    let auto = client
        .call(
            "share_context",
            json!({"agent_id": "a1", "key": "j2", "value": "{ \"b\" : 12345678901234567890123 }",
                   "compression_mode": "auto"}),
        )
        .await;
    // JSON normalisation keeps big integers intact.
    assert_eq!(
        auto.ok()["context"]["value"],
        "{\"b\":12345678901234567890123}"
    );
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn share_context_refuses_bad_input_with_codes() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    let long = "x".repeat(2049);
    let refused = client
        .call(
            "share_context",
            json!({"agent_id": "a1", "key": "k", "value": long}),
        )
        .await;
    assert_eq!(refused.error_code(), "VALUE_TOO_LONG");
    assert_eq!(refused.json["max_chars"], 2048);
    assert_eq!(
        client
            .call(
                "share_context",
                json!({"agent_id": "a1", "key": "", "value": "v"})
            )
            .await
            .error_code(),
        "KEY_REQUIRED"
    );
    assert_eq!(
        client
            .call(
                "share_context",
                json!({"agent_id": "  ", "key": "k", "value": "v"})
            )
            .await
            .error_code(),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        client
            .call(
                "share_context",
                json!({"agent_id": "a1", "key": "k".repeat(513), "value": "v"})
            )
            .await
            .error_code(),
        "KEY_TOO_LONG"
    );
    // Wrong types and unknown enum values are argument errors naming the field.
    for (args, field) in [
        (json!({"agent_id": "a1", "key": "k", "value": 5}), "value"),
        (
            json!({"agent_id": "a1", "key": "k", "value": "v", "compression_mode": "zip"}),
            "compression_mode",
        ),
    ] {
        let refused = client.call("share_context", args).await;
        assert_eq!(refused.error_code(), "INVALID_ARGUMENT");
        assert_eq!(refused.json["field"], field);
    }
    let rows = client.call("get_context", json!({})).await;
    assert!(rows.ok()["contexts"].as_array().unwrap().is_empty());
    // The refusal left an activity row naming its code; nothing else was written.
    let details: Vec<String> = hub
        .handle
        .hub
        .store
        .read(|db| {
            hub_server::store::inspect::query(
                db,
                "SELECT action || ' ' || details FROM activity_log WHERE action LIKE 'share_context%'",
                1_000,
            )
        })
        .await
        .unwrap()
        .rows
        .into_iter()
        .map(|row| row[0].clone())
        .collect();
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("share_context_rejected") && d.contains("(VALUE_TOO_LONG)"))
    );
    assert!(
        details.iter().all(|d| !d.contains("xxxxxxxx")),
        "no payload text in activity"
    );
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn get_context_response_modes_have_the_specified_shapes() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    client
        .call(
            "share_context",
            json!({"agent_id": "a1", "key": "status", "value": "done", "namespace": "n1",
                   "trace_id": "trace-0123456789abcdef", "span_id": "s1"}),
        )
        .await
        .ok();
    hub.clock.advance_ms(1);
    share(&client, "a2", "plan", "abab").await;

    let full = client.call("get_context", json!({})).await;
    let body = full.ok();
    assert!(
        body.get("success").is_none(),
        "read tools carry no success key"
    );
    assert_eq!(
        keys(&body["contexts"]),
        vec!["plan", "status"],
        "newest first"
    );
    assert_eq!(
        object_keys(&body["contexts"][1]),
        vec![
            "agent_id",
            "id",
            "key",
            "namespace",
            "span_id",
            "trace_id",
            "updated_at",
            "value"
        ]
    );
    assert_eq!(body["has_more"], false);

    let compact = client
        .call(
            "get_context",
            json!({"response_mode": "compact", "key": "status"}),
        )
        .await;
    let item = &compact.ok()["contexts"][0];
    assert_eq!(
        object_keys(item),
        vec![
            "agent_id",
            "id",
            "key",
            "namespace",
            "span_id",
            "trace_id",
            "updated_at",
            "value_chars",
            "value_digest",
            "value_preview"
        ]
    );
    assert_eq!(item["value_chars"], 4);
    assert_eq!(item["value_digest"].as_str().unwrap().len(), 16);
    let tiny = client
        .call(
            "get_context",
            json!({"response_mode": "tiny", "agent_id": "a1"}),
        )
        .await;
    assert!(tiny.ok()["contexts"][0].get("value_preview").is_none());

    let nano = client
        .call(
            "get_context",
            json!({"response_mode": "nano", "namespace": "n1"}),
        )
        .await;
    let body = nano.ok();
    let item = &body["c"][0];
    assert_eq!(
        object_keys(item),
        vec!["a", "c", "d", "i", "k", "n", "u", "x", "y"]
    );
    assert_eq!(item["d"].as_str().unwrap().len(), 12);
    assert_eq!(item["x"], "trace-012345");
    assert_eq!(body["h"], 0);

    let summary = client
        .call("get_context", json!({"response_mode": "summary"}))
        .await;
    let body = summary.ok();
    assert_eq!(body["summary"]["count"], 2);
    assert_eq!(body["summary"]["total_chars"], 8);
    // "abab" has 1 bit/char, "done" 2 bits/char.
    assert_eq!(body["summary"]["avg_entropy"], 1.5);
    assert_eq!(body["summary"]["blob_refs_total"], 0);
    assert_eq!(
        object_keys(&body["contexts"][0]),
        vec![
            "agent_id",
            "entropy",
            "key",
            "namespace",
            "value_chars",
            "value_digest"
        ]
    );
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn delta_reads_are_ascending_resumable_and_skip_nothing_in_one_millisecond() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    // All five writes happen in the same millisecond (the clock does not move).
    for i in 0..5 {
        share(&client, "w", &format!("k{i}"), &format!("v{i}")).await;
    }
    let first = client
        .call(
            "get_context",
            json!({"updated_after": 0, "limit": 2, "response_mode": "tiny"}),
        )
        .await;
    let body = first.ok();
    assert_eq!(
        keys(&body["contexts"]),
        vec!["k0", "k1"],
        "oldest change first"
    );
    assert_eq!(body["has_more"], true);
    let cursor = body["next_cursor"].as_str().unwrap().to_string();

    // An older row changes meanwhile: it joins the end of the feed.
    share(&client, "w", "k0", "v0-updated").await;
    let mut seen = Vec::new();
    let mut cursor = cursor;
    loop {
        let page = client
            .call(
                "get_context",
                json!({"cursor": cursor, "limit": 2, "response_mode": "nano"}),
            )
            .await;
        let body = page.ok().clone();
        seen.extend(keys(&body["c"]));
        cursor = body["n"].as_str().unwrap().to_string();
        if body["h"] == 0 {
            break;
        }
    }
    assert_eq!(seen, vec!["k2", "k3", "k4", "k0"]);
    // At the end the cursor stays put and nothing repeats.
    let end = client
        .call(
            "get_context",
            json!({"cursor": cursor, "response_mode": "nano"}),
        )
        .await;
    assert_eq!(end.ok()["c"], json!([]));
    assert_eq!(end.ok()["n"], json!(cursor));

    // updated_after filters by time, still ascending.
    hub.clock.advance_ms(10);
    let later = share(&client, "w", "late", "x").await;
    let since = later["context"]["updated_at"].as_i64().unwrap() - 1;
    let delta = client
        .call(
            "get_context",
            json!({"updated_after": since, "response_mode": "compact"}),
        )
        .await;
    assert_eq!(keys(&delta.ok()["contexts"]), vec!["late"]);

    // Newest-first paging reports has_more and the next offset.
    let paged = client.call("get_context", json!({"limit": 2})).await;
    assert_eq!(paged.ok()["has_more"], true);
    assert_eq!(paged.ok()["next_offset"], 2);
    assert_eq!(paged.ok()["next_cursor"], Value::Null);

    let bad = client
        .call(
            "get_context",
            json!({"cursor": "nope", "response_mode": "nano"}),
        )
        .await;
    assert_eq!(bad.error_code(), "CURSOR_INVALID");
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn polling_guard_refuses_full_only_with_polling_true() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    share(&client, "a", "k", "v").await;
    let refused = client.call("get_context", json!({"polling": true})).await;
    assert_eq!(refused.error_code(), "FULL_MODE_FORBIDDEN_IN_POLLING");
    assert_eq!(
        refused.json["allowed_response_modes"],
        json!(["nano", "tiny", "compact", "summary"])
    );
    // updated_after alone is not polling for get_context.
    let delta_full = client
        .call("get_context", json!({"updated_after": 0}))
        .await;
    assert_eq!(delta_full.ok()["contexts"][0]["value"], "v");
    let polling_nano = client
        .call(
            "get_context",
            json!({"polling": true, "response_mode": "nano"}),
        )
        .await;
    assert_eq!(polling_nano.ok()["c"].as_array().unwrap().len(), 1);
    client.close().await;
    hub.stop().await;

    let relaxed = TestHub::start_with(&[("MCP_HUB_DISALLOW_FULL_IN_POLLING", "0")]).await;
    let client = relaxed.client().await;
    client
        .call("get_context", json!({"polling": true}))
        .await
        .ok();
    client.close().await;
    relaxed.stop().await;
}

#[tokio::test]
async fn requesting_agent_is_the_caller_and_agent_id_only_a_filter() {
    let hub = TestHub::start_with(&[("MCP_HUB_AUTH_MODE", "enforce")]).await;
    let (me, my_token) = hub.agent("me").await;
    let (other, other_token) = hub.agent("other").await;
    other
        .call(
            "share_context",
            json!({"agent_id": "other", "key": "k", "value": "v", "auth_token": other_token}),
        )
        .await
        .ok();
    // Filtering by another agent with my own token works (D1).
    let read = me
        .call(
            "get_context",
            json!({"requesting_agent": "me", "agent_id": "other", "auth_token": my_token}),
        )
        .await;
    assert_eq!(keys(&read.ok()["contexts"]), vec!["k"]);
    // Without a token, enforce refuses; sharing in another agent's name is refused too.
    let anonymous = me.call("get_context", json!({"agent_id": "other"})).await;
    assert_eq!(anonymous.error_code(), "AUTH_TOKEN_REQUIRED");
    let forged = me
        .call(
            "share_context",
            json!({"agent_id": "other", "key": "k", "value": "forged", "auth_token": my_token}),
        )
        .await;
    assert_eq!(forged.error_code(), "AUTH_TOKEN_INVALID");
    me.close().await;
    other.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn idempotent_share_and_restart_keep_the_feed_resumable() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    let args = json!({"agent_id": "a", "key": "k", "value": "v1", "idempotency_key": "op-1"});
    let first = client.call("share_context", args.clone()).await;
    let again = client.call("share_context", args).await;
    assert_eq!(first.ok(), again.ok());
    let reuse = client
        .call(
            "share_context",
            json!({"agent_id": "a", "key": "k", "value": "other", "idempotency_key": "op-1"}),
        )
        .await;
    assert_eq!(reuse.error_code(), "IDEMPOTENCY_KEY_REUSED");
    let page = client
        .call(
            "get_context",
            json!({"updated_after": 0, "response_mode": "nano"}),
        )
        .await;
    let cursor = page.ok()["n"].as_str().unwrap().to_string();
    client.close().await;

    let hub = hub.restart().await;
    let client = hub.client().await;
    share(&client, "a", "after-restart", "v").await;
    let page = client
        .call(
            "get_context",
            json!({"cursor": cursor, "response_mode": "nano"}),
        )
        .await;
    assert_eq!(keys(&page.ok()["c"]), vec!["after-restart"]);
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn onboarding_catalog_lists_the_new_tools_in_spec_order() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    let onboarding = client
        .call("get_onboarding", json!({"agent_id": "a", "mode": "full"}))
        .await;
    let catalog = &onboarding.ok()["onboarding"]["tool_catalog"];
    let names = |category: &str| -> Vec<String> {
        catalog[category]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names("messaging"),
        vec!["send_message", "send_blob_message", "read_messages"]
    );
    assert_eq!(
        names("context"),
        vec!["share_context", "share_blob_context", "get_context"]
    );
    assert_eq!(
        names("consensus"),
        vec![
            "resolve_consensus",
            "resolve_consensus_from_context",
            "resolve_consensus_from_message",
            "list_consensus_decisions"
        ]
    );
    assert_eq!(
        names("compact_protocol"),
        vec![
            "pack_protocol_message",
            "unpack_protocol_message",
            "hash_payload",
            "store_protocol_blob",
            "get_protocol_blob",
            "list_protocol_blobs"
        ]
    );
    client.close().await;
    hub.stop().await;
}
