//! Content-addressed blobs and the compact protocol over MCP: lossless blob messages and
//! context, resolve_blob_refs on reads (every response mode), dedup and access counters,
//! size limits without orphan blobs, hash_payload, pack/unpack, retention, and the
//! bytes-on-the-wire measurement for 4 KB and 32 KB handoffs.

use serde_json::{Value, json};

use crate::harness::{Client, TestHub};

/// A JSON handoff of about `bytes` bytes: repetitive, like real task summaries.
pub fn handoff(bytes: usize) -> String {
    let mut items = Vec::new();
    let mut i = 0;
    loop {
        items.push(json!({
            "task_id": i,
            "status": if i % 3 == 0 { "done" } else { "in_progress" },
            "summary": format!("Refactored module {i}: moved parsing into its own function and added tests"),
            "evidence": [format!("commit:{:07x}", i * 7919), format!("test:module_{i}")],
            "confidence": 0.9,
        }));
        let text = json!({"handoff": items}).to_string();
        if text.len() >= bytes {
            return text;
        }
        i += 1;
    }
}

async fn blob_count(client: &Client) -> usize {
    client
        .call(
            "list_protocol_blobs",
            json!({"agent_id": "x", "limit": 1000}),
        )
        .await
        .ok()["blobs"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn blob_message_round_trips_byte_exact_through_every_read_mode() {
    let hub = TestHub::start().await;
    // Direct messages go to registered agents only (RECIPIENT_NOT_FOUND).
    hub.register_ids(&["lead"]).await;
    let client = hub.client().await;
    let payload = handoff(3000);
    let sent = client
        .call(
            "send_blob_message",
            json!({"from_agent": "w1", "to_agent": "lead", "payload": payload,
                   "metadata": "{ \"kind\": \"handoff\" }", "trace_id": "tr"}),
        )
        .await;
    let body = sent.ok();
    assert_eq!(body["compression"]["codec"], "zstd-base64");
    assert_eq!(body["compression"]["applied"], true);
    assert_eq!(body["compression"]["lossless"], true);
    assert!(body["compression"]["gain_pct"].as_f64().unwrap() >= 3.0);
    let hash = body["blob_ref"]["hash"].as_str().unwrap().to_string();
    assert_eq!(body["blob_ref"]["short_hash"], &hash[..16]);
    assert_eq!(body["blob_ref"]["created"], true);
    let content = body["message"]["content"].as_str().unwrap();
    assert_eq!(
        content,
        format!(
            "{{\"v\":\"caep-1\",\"k\":\"blob\",\"h\":\"{hash}\",\"c\":{}}}",
            body["compression"]["stored_chars"]
        )
    );
    assert_eq!(body["message"]["metadata"], "{\"kind\":\"handoff\"}");
    assert_eq!(body["transport"]["message_chars"], content.len());
    assert_eq!(
        body["transport"]["saved_chars"],
        payload.len() - content.len()
    );

    let full = client
        .call(
            "read_messages",
            json!({"agent_id": "lead", "resolve_blob_refs": true}),
        )
        .await;
    let item = &full.ok()["messages"][0];
    assert_eq!(item["resolved_content"], payload.as_str());
    assert_eq!(item["content"], content);
    assert_eq!(
        item["blob_ref"],
        json!({"hash": hash, "declared_chars": body["compression"]["stored_chars"],
               "resolved": true, "codec": "zstd-base64", "integrity_ok": true})
    );

    let compact = client
        .call(
            "read_messages",
            json!({"agent_id": "lead", "resolve_blob_refs": true, "response_mode": "compact"}),
        )
        .await;
    let item = &compact.ok()["messages"][0];
    assert_eq!(item["content_chars"], payload.len());
    assert_eq!(item["blob_ref_hash"], hash.as_str());
    assert_eq!(item["blob_resolved"], true);
    assert_eq!(item["content_preview"], &payload[..180]);
    let nano = client
        .call(
            "read_messages",
            json!({"agent_id": "lead", "resolve_blob_refs": true, "response_mode": "nano"}),
        )
        .await;
    let item = &nano.ok()["m"][0];
    assert_eq!(item["b"], &hash[..16]);
    assert_eq!(item["z"], 1);
    assert_eq!(item["c"], payload.len());

    // Without the flag the envelope is ordinary content.
    let plain = client
        .call(
            "read_messages",
            json!({"agent_id": "lead", "response_mode": "nano"}),
        )
        .await;
    let item = &plain.ok()["m"][0];
    assert!(item.get("b").is_none());
    assert_eq!(item["c"], content.len());

    // Three resolving reads counted; the plain read and the listing did not.
    let blob = client
        .call("get_protocol_blob", json!({"agent_id": "x", "hash": hash}))
        .await;
    let blob = &blob.ok()["blob"];
    assert_eq!(blob["access_count"], 4);
    assert_eq!(
        blob["value"],
        payload.as_str(),
        "decoded by default (defect 26)"
    );
    assert_eq!(blob["codec"], "zstd-base64");
    let raw = client
        .call(
            "get_protocol_blob",
            json!({"agent_id": "x", "hash": hash, "raw": true, "response_mode": "compact"}),
        )
        .await;
    assert!(
        raw.ok()["blob"]["value_preview"]
            .as_str()
            .unwrap()
            .starts_with("{\"v\":\"caep-blobz-1\"")
    );
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn blobs_dedupe_and_count_reads() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    let store = |payload: &str, mode: &str| json!({"agent_id": "a", "payload": payload, "compression_mode": mode});
    let first = client
        .call("store_protocol_blob", store("hello blob", "none"))
        .await;
    let second = client
        .call("store_protocol_blob", store("hello blob", "none"))
        .await;
    assert_eq!(first.ok()["created"], true);
    assert_eq!(second.ok()["created"], false);
    assert_eq!(first.ok()["hash"], second.ok()["hash"]);
    assert_eq!(first.ok()["short_hash"].as_str().unwrap().len(), 16);
    assert_eq!(first.ok()["blob"]["access_count"], 0);
    // Default mode is byte-exact, so the hash is hash_payload's.
    let default = client
        .call(
            "store_protocol_blob",
            json!({"agent_id": "a", "payload": "hello blob"}),
        )
        .await;
    assert_eq!(default.ok()["hash"], first.ok()["hash"]);
    let hashed = client
        .call(
            "hash_payload",
            json!({"agent_id": "a", "payload": "hello blob"}),
        )
        .await;
    assert_eq!(hashed.ok()["hash"], first.ok()["hash"]);
    // Lossy modes named explicitly: their stored value decides the hash.
    let collapsed = client
        .call("store_protocol_blob", store(" hello   blob ", "whitespace"))
        .await;
    assert_eq!(collapsed.ok()["hash"], first.ok()["hash"]);
    let canonical_a = client
        .call("store_protocol_blob", store("{\"b\":1,\"a\":2}", "json"))
        .await;
    let canonical_b = client
        .call(
            "store_protocol_blob",
            store("{ \"a\": 2, \"b\": 1 }", "auto"),
        )
        .await;
    assert_eq!(canonical_a.ok()["hash"], canonical_b.ok()["hash"]);

    let hash = first.ok()["hash"].as_str().unwrap().to_string();
    hub.clock.advance_ms(7);
    for expected in 1..=2 {
        let got = client
            .call("get_protocol_blob", json!({"agent_id": "a", "hash": hash}))
            .await;
        assert_eq!(got.ok()["blob"]["access_count"], expected);
        assert_eq!(got.ok()["blob"]["value"], "hello blob");
    }
    let listed = client
        .call("list_protocol_blobs", json!({"agent_id": "a"}))
        .await;
    let body = listed.ok();
    assert_eq!(body["success"], true);
    let blobs = body["blobs"].as_array().unwrap();
    assert_eq!(blobs.len(), 2);
    assert_eq!(blobs[0]["hash"], hash.as_str(), "most recently used first");
    assert_eq!(blobs[0]["access_count"], 2);
    assert_eq!(blobs[0]["value_chars"], 10);
    let missing = client
        .call(
            "get_protocol_blob",
            json!({"agent_id": "a", "hash": "0".repeat(64)}),
        )
        .await;
    assert_eq!(missing.error_code(), "BLOB_NOT_FOUND");
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn lossless_auto_thresholds_and_compression_modes() {
    let hub = TestHub::start().await;
    // Direct messages go to registered agents only (RECIPIENT_NOT_FOUND).
    hub.register_ids(&["b"]).await;
    let client = hub.client().await;
    let short = client
        .call(
            "send_blob_message",
            json!({"from_agent": "a", "payload": "{\"status\":\"done\"}"}),
        )
        .await;
    let body = short.ok();
    assert_eq!(
        (
            &body["compression"]["applied"],
            &body["compression"]["codec"],
            &body["compression"]["gain_pct"]
        ),
        (&json!(false), &json!("raw"), &json!(0.0))
    );
    assert_eq!(body["message"]["to_agent"], Value::Null);
    let none = client
        .call(
            "share_blob_context",
            json!({"agent_id": "a", "key": "k", "payload": " x ", "compression_mode": "none"}),
        )
        .await;
    assert_eq!(none.ok()["compression"]["lossless"], true, "defect 23");
    assert_eq!(none.ok()["compression"]["codec"], "raw");
    let ws = client
        .call(
            "send_blob_message",
            json!({"from_agent": "a", "payload": "{\"a\":1}", "compression_mode": "json"}),
        )
        .await;
    assert_eq!(ws.ok()["compression"]["codec"], "raw", "nothing changed");
    assert_eq!(ws.ok()["compression"]["lossless"], false);
    // Idempotent retries replay the first message instead of sending a second one.
    let args =
        json!({"from_agent": "idem", "to_agent": "b", "payload": "once", "idempotency_key": "k1"});
    let first = client.call("send_blob_message", args.clone()).await;
    let again = client.call("send_blob_message", args).await;
    assert_eq!(first.ok()["message"]["id"], again.ok()["message"]["id"]);
    let ctx_args = json!({"agent_id": "a", "key": "once", "payload": "p", "idempotency_key": "k2"});
    let first = client.call("share_blob_context", ctx_args.clone()).await;
    let again = client.call("share_blob_context", ctx_args).await;
    assert_eq!(first.ok(), again.ok());
    let inbox = client
        .call(
            "read_messages",
            json!({"agent_id": "b", "from": "idem", "response_mode": "nano"}),
        )
        .await;
    assert_eq!(inbox.ok()["m"].as_array().unwrap().len(), 1);
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn size_limits_refuse_cleanly_and_leave_no_orphan_blobs() {
    let hub = TestHub::start_with(&[
        ("MCP_HUB_MAX_MESSAGE_CONTENT_CHARS", "60"),
        ("MCP_HUB_MAX_CONTEXT_VALUE_CHARS", "60"),
    ])
    .await;
    let client = hub.client().await;
    let incompressible: String = {
        let mut state = 88172645463325252_u64;
        (0..40_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                char::from(b'!' + (state % 90) as u8)
            })
            .collect()
    };
    let too_long = client
        .call(
            "store_protocol_blob",
            json!({"agent_id": "a", "payload": incompressible}),
        )
        .await;
    assert_eq!(too_long.error_code(), "BLOB_TOO_LONG");
    assert_eq!(too_long.json["max_chars"], 32768);
    // A large but compressible payload fits: the cap applies to the stored form.
    let big = handoff(100_000);
    let fits = client
        .call(
            "store_protocol_blob",
            json!({"agent_id": "a", "payload": big, "compression_mode": "lossless_auto"}),
        )
        .await;
    assert!(fits.ok()["blob_chars"].as_u64().unwrap() < 32768);
    assert_eq!(blob_count(&client).await, 1);

    // The envelope (~100 chars) is over the 60-char message/context caps: refused before
    // anything is written.
    let message = client
        .call(
            "send_blob_message",
            json!({"from_agent": "a", "payload": "p1"}),
        )
        .await;
    assert_eq!(message.error_code(), "CONTENT_TOO_LONG");
    assert_eq!(message.json["max_chars"], 60);
    let context = client
        .call(
            "share_blob_context",
            json!({"agent_id": "a", "key": "k", "payload": "p2"}),
        )
        .await;
    assert_eq!(context.error_code(), "VALUE_TOO_LONG");
    assert_eq!(blob_count(&client).await, 1, "no orphan blobs");
    client.close().await;
    hub.stop().await;

    let hub = TestHub::start().await;
    let client = hub.client().await;
    let metadata = client
        .call(
            "send_blob_message",
            json!({"from_agent": "a", "payload": "p", "metadata": "m".repeat(1025)}),
        )
        .await;
    assert_eq!(metadata.error_code(), "METADATA_TOO_LONG");
    let blob_too_long = client
        .call(
            "send_blob_message",
            json!({"from_agent": "a", "payload": "y".repeat(40_000), "compression_mode": "none"}),
        )
        .await;
    assert_eq!(blob_too_long.error_code(), "BLOB_TOO_LONG");
    assert_eq!(blob_count(&client).await, 0, "no orphan blobs");
    let inbox = client.call("read_messages", json!({"agent_id": "b"})).await;
    assert!(inbox.ok()["messages"].as_array().unwrap().is_empty());
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn blob_context_resolves_in_every_mode_and_reports_missing_or_broken_blobs() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    let payload = handoff(4096);
    let shared = client
        .call(
            "share_blob_context",
            json!({"agent_id": "w1", "key": "handoff", "payload": payload, "namespace": "exp"}),
        )
        .await;
    let body = shared.ok();
    assert_eq!(body["compression"]["codec"], "zstd-base64");
    assert!(
        body["transport"]["context_value_chars"].as_u64().unwrap() < 110,
        "{}",
        body["transport"]
    );
    let hash = body["blob_ref"]["hash"].as_str().unwrap().to_string();

    // A context value pointing at a blob that does not exist.
    let ghost = format!(
        "{{\"v\":\"caep-1\",\"k\":\"blob\",\"h\":\"{}\",\"c\":5}}",
        "f".repeat(64)
    );
    client
        .call(
            "share_context",
            json!({"agent_id": "w2", "key": "ghost", "value": ghost}),
        )
        .await
        .ok();
    // A stored envelope whose checksum does not match its data.
    let mut tampered: Value = serde_json::from_str(
        client
            .call(
                "get_protocol_blob",
                json!({"agent_id": "x", "hash": hash, "raw": true}),
            )
            .await
            .ok()["blob"]["value"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    tampered["raw_sha256"] = json!("0".repeat(64));
    let stored = client
        .call(
            "store_protocol_blob",
            json!({"agent_id": "w3", "payload": tampered.to_string()}),
        )
        .await;
    let bad_hash = stored.ok()["hash"].as_str().unwrap().to_string();
    let bad_ref = format!("{{\"v\":\"caep-1\",\"k\":\"blob\",\"h\":\"{bad_hash}\",\"c\":1}}");
    client
        .call(
            "share_context",
            json!({"agent_id": "w3", "key": "broken", "value": bad_ref}),
        )
        .await
        .ok();

    let full = client
        .call(
            "get_context",
            json!({"resolve_blob_refs": true, "updated_after": 0}),
        )
        .await;
    let rows = full.ok()["contexts"].as_array().unwrap().clone();
    assert_eq!(rows[0]["resolved_value"], payload.as_str());
    assert_eq!(rows[0]["blob_ref"]["integrity_ok"], true);
    assert_eq!(rows[1]["resolved_value"], Value::Null);
    assert_eq!(
        rows[1]["blob_ref"],
        json!({"hash": "f".repeat(64), "declared_chars": 5, "resolved": false})
    );
    assert_eq!(
        rows[2]["resolved_value"],
        Value::Null,
        "defect 25: never the raw envelope"
    );
    assert_eq!(rows[2]["blob_ref"]["integrity_ok"], false);
    assert_eq!(rows[2]["blob_ref"]["resolved"], true);

    let nano = client
        .call(
            "get_context",
            json!({"resolve_blob_refs": true, "response_mode": "nano", "key": "handoff"}),
        )
        .await;
    let item = &nano.ok()["c"][0];
    assert_eq!(
        (&item["b"], &item["r"], &item["c"]),
        (&json!(&hash[..16]), &json!(1), &json!(payload.len()))
    );
    let compact = client
        .call(
            "get_context",
            json!({"resolve_blob_refs": true, "response_mode": "compact", "key": "ghost"}),
        )
        .await;
    assert_eq!(compact.ok()["contexts"][0]["blob_resolved"], false);
    let summary = client
        .call(
            "get_context",
            json!({"resolve_blob_refs": true, "response_mode": "summary"}),
        )
        .await;
    let summary = &summary.ok()["summary"];
    assert_eq!(
        (&summary["blob_refs_total"], &summary["blob_refs_resolved"]),
        (&json!(3), &json!(2))
    );
    let unresolved = client
        .call("get_context", json!({"response_mode": "summary"}))
        .await;
    assert_eq!(unresolved.ok()["summary"]["blob_refs_total"], 0);
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn hash_payload_is_independent_of_key_order() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    let hash = |payload: &str, extra: Value| {
        let mut args = json!({"agent_id": "a", "payload": payload, "normalize_json": true});
        for (k, v) in extra.as_object().unwrap() {
            args[k] = v.clone();
        }
        args
    };
    let a = client
        .call("hash_payload", hash("{\"b\":1,\"a\":2}", json!({})))
        .await;
    let b = client
        .call(
            "hash_payload",
            hash("{ \"a\" : 2.0, \"b\" : 1 }", json!({})),
        )
        .await;
    assert_eq!(a.ok()["hash"], b.ok()["hash"]);
    assert_eq!(a.ok()["payload_chars"], 13);
    assert_eq!(a.ok()["short_hash"].as_str().unwrap().len(), 16);
    let short = client
        .call("hash_payload", hash("{}", json!({"truncate": 2})))
        .await;
    assert_eq!(short.ok()["short_hash"].as_str().unwrap().len(), 8);
    let long = client
        .call("hash_payload", hash("{}", json!({"truncate": 1000})))
        .await;
    assert_eq!(long.ok()["short_hash"].as_str().unwrap().len(), 64);
    let invalid = client.call("hash_payload", hash("{nope", json!({}))).await;
    assert_eq!(invalid.error_code(), "INVALID_JSON");
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn pack_unpack_round_trips_over_mcp() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    let text = "notes:\n  - keep {\"status\": \"x\"} literally\n";
    let cases = [
        (
            json!({"payload_format": "text", "mode": "dictionary", "payload": text}),
            "dictionary",
        ),
        (
            json!({"payload_format": "text", "mode": "json", "payload": text}),
            "json",
        ),
        (
            json!({"mode": "dictionary", "payload": "{\"status\":\"done\",\"agent_id\":\"w1\",\"n\":1.50}"}),
            "dictionary",
        ),
        (json!({"payload": "[1,2,3]"}), "json"),
    ];
    for (mut args, encoding) in cases {
        args["agent_id"] = json!("a");
        let packed = client.call("pack_protocol_message", args.clone()).await;
        let body = packed.ok().clone();
        assert_eq!(body["packet"]["enc"], encoding);
        let packet_json = body["packet_json"].as_str().unwrap().to_string();
        assert!(packet_json.starts_with("{\"v\":\"caep-1\",\"fmt\":"));
        assert_eq!(body["metrics"]["packed_chars"], packet_json.chars().count());
        let unpacked = client
            .call(
                "unpack_protocol_message",
                json!({"agent_id": "a", "packet_json": packet_json}),
            )
            .await;
        let out = unpacked.ok();
        assert_eq!(out["hash_valid"], true);
        assert_eq!(out["encoding"], encoding);
        if args["payload_format"] == "text" {
            assert_eq!(out["decoded_payload"], text);
        } else {
            let original: Value = serde_json::from_str(args["payload"].as_str().unwrap()).unwrap();
            assert_eq!(out["decoded_payload"], original);
        }
        let tampered = packet_json.replacen("\"ts\":", "\"ts\":1", 1);
        let out = client
            .call(
                "unpack_protocol_message",
                json!({"agent_id": "a", "packet_json": tampered, "response_mode": "compact"}),
            )
            .await;
        assert_eq!(out.ok()["hash_valid"], false);
        assert!(out.ok()["payload_chars"].is_number());
    }
    let auto = client
        .call(
            "pack_protocol_message",
            json!({"agent_id": "a", "payload": "{\"status\":1}"}),
        )
        .await;
    assert_eq!(auto.ok()["policy"]["decision"], "below_min_payload_chars");
    assert_eq!(auto.ok()["policy"]["min_payload_chars"], 2048);
    let codes = [
        (
            "pack_protocol_message",
            json!({"payload": "{bad"}),
            "INVALID_PAYLOAD",
        ),
        (
            "unpack_protocol_message",
            json!({"packet_json": "{bad"}),
            "INVALID_PACKET",
        ),
        (
            "unpack_protocol_message",
            json!({"packet_json": "[1]"}),
            "UNSUPPORTED_PACKET",
        ),
        (
            "unpack_protocol_message",
            json!({"packet_json": "{\"v\":\"caep-1\",\"enc\":\"gz\",\"h\":\"x\"}"}),
            "UNSUPPORTED_ENCODING",
        ),
        (
            "unpack_protocol_message",
            json!({"packet_json": "{\"v\":\"caep-1\",\"fmt\":\"text\",\"enc\":\"json\",\"d\":1,\"h\":\"x\"}"}),
            "INVALID_PACKET",
        ),
    ];
    for (tool, mut args, code) in codes {
        args["agent_id"] = json!("a");
        assert_eq!(client.call(tool, args).await.error_code(), code, "{tool}");
    }
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn maintenance_purges_only_old_unreferenced_blobs() {
    let hub = TestHub::start().await;
    // Direct messages go to registered agents only (RECIPIENT_NOT_FOUND).
    hub.register_ids(&["b"]).await;
    let client = hub.client().await;
    client
        .call(
            "store_protocol_blob",
            json!({"agent_id": "a", "payload": "orphan"}),
        )
        .await
        .ok();
    client
        .call(
            "send_blob_message",
            json!({"from_agent": "a", "to_agent": "b", "payload": "kept by a message"}),
        )
        .await
        .ok();
    client
        .call(
            "share_blob_context",
            json!({"agent_id": "a", "key": "k", "payload": "kept by context"}),
        )
        .await
        .ok();
    hub.clock.advance_ms(604_800_001);
    // Messages expire after 24 h: a fresh message references (and refreshes) one blob.
    client
        .call(
            "send_blob_message",
            json!({"from_agent": "a", "to_agent": "b", "payload": "kept by a message"}),
        )
        .await
        .ok();
    let report = hub_server::maintenance::run_once(&hub.handle.hub)
        .await
        .unwrap();
    assert_eq!(report.protocol_blobs_purged, 1);
    assert_eq!(blob_count(&client).await, 2);
    client.close().await;
    hub.stop().await;
}

/// Bytes on the wire for a handoff sent inline vs as a blob message: what the receiving
/// agent pays to see its inbox. Printed, never asserted on timing.
#[tokio::test]
async fn bytes_on_the_wire_inline_vs_blob() {
    let hub = TestHub::start_with(&[
        ("MCP_HUB_MAX_MESSAGE_CONTENT_CHARS", "100000"),
        ("MCP_HUB_RATE_LIMIT_RPS", "0"),
    ])
    .await;
    // Direct messages go to registered agents only (RECIPIENT_NOT_FOUND).
    hub.register_ids(&["inline-4096", "blob-4096", "inline-32768", "blob-32768"])
        .await;
    let client = hub.client().await;
    for size in [4096, 32768] {
        let payload = handoff(size);
        let inline_to = format!("inline-{size}");
        let blob_to = format!("blob-{size}");
        let send_inline = client
            .call(
                "send_message",
                json!({"from_agent": "w", "to_agent": inline_to, "content": payload}),
            )
            .await;
        let send_blob = client
            .call(
                "send_blob_message",
                json!({"from_agent": "w", "to_agent": blob_to, "payload": payload}),
            )
            .await;
        let measure = |value: &Value| value.to_string().len();
        let read = |agent: &str, mode: &str, resolve: bool| json!({"agent_id": agent, "response_mode": mode, "resolve_blob_refs": resolve});
        let inline_full = client
            .call("read_messages", read(&inline_to, "full", false))
            .await;
        let blob_full = client
            .call("read_messages", read(&blob_to, "full", false))
            .await;
        let blob_nano = client
            .call("read_messages", read(&blob_to, "nano", true))
            .await;
        let blob_resolved = client
            .call("read_messages", read(&blob_to, "full", true))
            .await;
        assert_eq!(
            blob_resolved.ok()["messages"][0]["resolved_content"],
            payload.as_str()
        );
        println!(
            "wire bytes, {size}-byte JSON handoff (payload {} B, stored blob {} chars, codec {}): \
             send response inline {} B vs blob {} B | \
             read_messages full inline {} B vs blob envelope {} B ({:.1}% saved) | \
             blob nano+resolve {} B | blob full+resolve {} B",
            payload.len(),
            send_blob.ok()["compression"]["stored_chars"],
            send_blob.ok()["compression"]["codec"],
            measure(send_inline.ok()),
            measure(send_blob.ok()),
            measure(inline_full.ok()),
            measure(blob_full.ok()),
            100.0 - measure(blob_full.ok()) as f64 * 100.0 / measure(inline_full.ok()) as f64,
            measure(blob_nano.ok()),
            measure(blob_resolved.ok()),
        );
    }
    client.close().await;
    hub.stop().await;
}
