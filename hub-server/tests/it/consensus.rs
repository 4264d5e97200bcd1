//! Consensus over MCP: the outcome/error table, every vote source (inline, blob hash, blob
//! ref, context, message), dedupe, quality weighting, emit policies, persisted decisions,
//! voter registration and the enforce-mode rule against voting in another agent's name.

use serde_json::{Value, json};

use crate::harness::{Client, TestHub};

fn vote(agent: &str, decision: &str, confidence: f64) -> Value {
    json!({"agent_id": agent, "decision": decision, "confidence": confidence})
}

async fn register_all(client: &Client, ids: &[&str]) {
    for id in ids {
        client.register(id, json!({})).await;
    }
}

async fn resolve(client: &Client, extra: Value) -> crate::harness::Outcome {
    let mut args = json!({"requesting_agent": "lead", "proposal_id": "p1"});
    for (k, v) in extra.as_object().unwrap() {
        args[k] = v.clone();
    }
    client.call("resolve_consensus", args).await
}

async fn store_blob(client: &Client, payload: &str, mode: &str) -> String {
    client
        .call(
            "store_protocol_blob",
            json!({"agent_id": "lead", "payload": payload, "compression_mode": mode}),
        )
        .await
        .ok()["hash"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn decision_count(client: &Client) -> usize {
    client
        .call("list_consensus_decisions", json!({"limit": 500}))
        .await
        .ok()["decisions"]
        .as_array()
        .unwrap()
        .len()
}

/// Inputs and the outcome (with its single reason) or error code each must give.
#[tokio::test]
async fn outcome_and_error_table() {
    let hub = TestHub::start_with(&[("MCP_HUB_MAX_CONSENSUS_VOTES", "4")]).await;
    let client = hub.client().await;
    register_all(&client, &["lead", "a1", "a2", "a3"]).await;
    struct Row {
        args: Value,
        expect: Result<(&'static str, Option<&'static str>), &'static str>,
    }
    let rows = vec![
        Row {
            args: json!({"votes": [vote("a1", "accept", 0.9), vote("a2", "accept", 0.8), vote("a3", "reject", 0.2)]}),
            expect: Ok(("accept", None)),
        },
        Row {
            args: json!({"votes": [vote("a1", "accept", 0.9), vote("a2", "reject", 0.9)], "disagreement_threshold": 0.2}),
            expect: Ok(("escalate_verifier", Some("high_disagreement:0.500>0.200"))),
        },
        Row {
            args: json!({"votes": [vote("a1", "reject", 0.9), vote("a2", "reject", 0.7)]}),
            expect: Ok(("reject", None)),
        },
        Row {
            args: json!({"votes": [vote("a1", "accept", 0.9), vote("a2", "abstain", 0.9)]}),
            expect: Ok((
                "escalate_verifier",
                Some("insufficient_non_abstain_votes:1<2"),
            )),
        },
        Row {
            args: json!({"votes": [vote("a1", "accept", 0.9), vote("a2", "reject", 0.9)], "token_budget_cap": 5}),
            expect: Ok((
                "escalate_verifier",
                Some("estimated_token_cost_exceeds_cap:50>20"),
            )),
        },
        Row {
            args: json!({"votes": [vote("a1", "accept", 0.5), vote("a2", "reject", 0.5)], "disagreement_threshold": 0.9}),
            expect: Ok(("accept", None)),
        },
        Row {
            args: json!({"votes": [vote("a1", "accept", 0.9)], "min_non_abstain_votes": 1}),
            expect: Ok(("accept", None)),
        },
        Row {
            args: json!({"votes": []}),
            expect: Err("VOTES_EMPTY"),
        },
        Row {
            args: json!({}),
            expect: Err("VOTES_EMPTY"),
        },
        Row {
            args: json!({"votes": [{"agent_id": "  ", "decision": "accept"}]}),
            expect: Err("VOTES_EMPTY"),
        },
        Row {
            args: json!({"votes": [vote("a1", "accept", 1.0), vote("a2", "accept", 1.0), vote("a3", "accept", 1.0), vote("a1", "accept", 1.0), vote("a2", "accept", 1.0)]}),
            expect: Err("VOTES_TOO_LARGE"),
        },
        Row {
            args: json!({"votes": [vote("a1", "accept", 0.9), vote("stranger", "accept", 0.9)]}),
            expect: Err("VOTER_NOT_REGISTERED"),
        },
        Row {
            args: json!({"votes_blob_hash": "abc"}),
            expect: Err("INVALID_VOTES_BLOB_REF"),
        },
        Row {
            args: json!({"votes_blob_ref": "not an envelope"}),
            expect: Err("INVALID_VOTES_BLOB_REF"),
        },
        Row {
            args: json!({"votes_blob_hash": "0".repeat(64)}),
            expect: Err("VOTES_BLOB_NOT_FOUND"),
        },
    ];
    let mut successes = 0;
    for (index, row) in rows.into_iter().enumerate() {
        let outcome = resolve(&client, row.args.clone()).await;
        match row.expect {
            Ok((expected, reason)) => {
                let body = outcome.ok();
                successes += 1;
                assert_eq!(body["outcome"], expected, "row {index}: {}", row.args);
                let reasons: Vec<&str> = body["reasons"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap())
                    .collect();
                assert_eq!(
                    reasons,
                    reason.into_iter().collect::<Vec<_>>(),
                    "row {index}"
                );
            }
            Err(code) => {
                assert_eq!(outcome.error_code(), code, "row {index}: {}", row.args);
            }
        }
    }
    let first = resolve(
        &client,
        json!({"votes": [vote("a1", "accept", 0.9), vote("a2", "accept", 0.8), vote("a3", "reject", 0.2)]}),
    )
    .await;
    let stats = &first.ok()["stats"];
    assert_eq!(stats["disagreement_ratio"], 0.105);
    assert_eq!(stats["weighted_accept"], 1.7);
    assert_eq!(stats["weighted_reject"], 0.2);
    assert_eq!(stats["non_abstain_count"], 3);
    assert_eq!(stats["estimated_token_cost"], 55);
    assert_eq!(
        decision_count(&client).await,
        successes + 1,
        "no failure writes a decision row"
    );
    // Malformed inline votes are argument errors naming the vote.
    let malformed = client
        .call(
            "resolve_consensus",
            json!({"requesting_agent": "lead", "proposal_id": "p", "votes": [{"agent_id": "a1", "decision": "maybe"}]}),
        )
        .await;
    assert_eq!(malformed.error_code(), "INVALID_ARGUMENT");
    assert_eq!(malformed.json["field"], "votes[0].decision");
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn blob_votes_by_hash_or_ref_with_dedupe_and_integrity_errors() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    register_all(&client, &["lead", "a1", "a2", "a3"]).await;
    let votes = json!({"votes": [vote("a1", "reject", 0.9), vote("a2", "accept", 0.8), {"agent_id": "", "decision": "accept"}]});
    let hash = store_blob(&client, &votes.to_string(), "none").await;
    let envelope = format!("{{\"v\":\"caep-1\",\"k\":\"blob\",\"h\":\"{hash}\",\"c\":1}}");
    // a1's inline vote overrides its blob vote (blob votes come first).
    let body = resolve(
        &client,
        json!({"votes_blob_ref": envelope, "votes_blob_hash": hash.to_uppercase().to_lowercase(),
               "votes": [vote("a1", "accept", 0.9)], "min_non_abstain_votes": 1}),
    )
    .await;
    let body = body.ok();
    assert_eq!(body["outcome"], "accept");
    assert_eq!(body["stats"]["input_vote_count"], 3);
    assert_eq!(body["stats"]["evaluated_vote_count"], 2);
    assert_eq!(body["stats"]["deduped_vote_count"], 1);
    assert_eq!(body["stats"]["invalid_vote_count"], 1);
    assert_eq!(
        body["vote_source"],
        json!({"inline_votes": 1, "blob_votes": 2, "blob_hash": hash, "blob_codec": "raw",
               "blob_payload_chars": votes.to_string().len(), "dedupe_by_agent": true,
               "quality_weighting": "on"})
    );
    let all = resolve(
        &client,
        json!({"votes_blob_hash": hash.to_uppercase(), "votes": [vote("a1", "accept", 0.9)],
               "dedupe_by_agent": false, "disagreement_threshold": 0.9}),
    )
    .await;
    assert_eq!(all.ok()["stats"]["evaluated_vote_count"], 3);
    assert_eq!(all.ok()["stats"]["deduped_vote_count"], 0);
    let mismatch = resolve(
        &client,
        json!({"votes_blob_hash": "1".repeat(64), "votes_blob_ref": envelope}),
    )
    .await;
    assert_eq!(mismatch.error_code(), "INVALID_VOTES_BLOB_REF");
    // A lossless envelope of votes resolves like a raw one.
    let big_votes: Vec<Value> = (0..60)
        .map(|i| vote(["a1", "a2", "a3"][i % 3], "accept", 0.9))
        .collect();
    let zipped = store_blob(
        &client,
        &Value::Array(big_votes).to_string(),
        "lossless_auto",
    )
    .await;
    let body = resolve(
        &client,
        json!({"votes_blob_hash": zipped, "response_mode": "tiny"}),
    )
    .await;
    assert_eq!(body.ok()["outcome"], "accept");
    assert_eq!(
        body.ok()["vote_source"],
        json!({"inline_votes": 0, "blob_votes": 60, "dedupe_by_agent": true})
    );
    assert_eq!(body.ok()["stats"]["non_abstain_count"], 3);

    for (payload, code) in [
        ("not json", "VOTES_BLOB_INVALID_JSON"),
        ("{\"votes\": 3}", "VOTES_BLOB_INVALID_FORMAT"),
        ("42", "VOTES_BLOB_INVALID_FORMAT"),
        ("[{\"agent_id\":\"a1\"}]", "VOTES_EMPTY"),
    ] {
        let hash = store_blob(&client, payload, "none").await;
        assert_eq!(
            resolve(&client, json!({"votes_blob_hash": hash}))
                .await
                .error_code(),
            code
        );
    }
    let broken = json!({"v": "caep-blobz-1", "alg": "zstd-base64", "raw_chars": 3, "data": "AAAA"});
    let hash = store_blob(&client, &broken.to_string(), "none").await;
    assert_eq!(
        resolve(&client, json!({"votes_blob_hash": hash}))
            .await
            .error_code(),
        "VOTES_BLOB_INTEGRITY_FAILED"
    );
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn quality_weighting_uses_done_and_rollback_counts_on_every_resolve_tool() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    register_all(&client, &["lead", "veteran", "flaky", "fresh"]).await;
    hub.handle
        .hub
        .store
        .write(|tx| {
            hub_server::store::consensus::set_quality_counts(tx, "veteran", 100, 0)?;
            hub_server::store::consensus::set_quality_counts(tx, "flaky", 10, 5)
        })
        .await
        .unwrap();
    let votes = json!([
        vote("veteran", "accept", 0.5),
        vote("flaky", "reject", 0.8),
        vote("fresh", "abstain", 1.0)
    ]);
    let on = resolve(
        &client,
        json!({"votes": votes, "disagreement_threshold": 0.9}),
    )
    .await;
    let stats = &on.ok()["stats"];
    assert_eq!(stats["weighted_accept"], 0.56);
    assert_eq!(stats["weighted_reject"], 0.57);
    assert_eq!(stats["quality_weight_min"], 0.712);
    assert_eq!(stats["quality_weight_max"], 1.12);
    assert_eq!(stats["quality_weight_mean"], 0.944);
    assert_eq!(on.ok()["outcome"], "reject");
    let off = resolve(
        &client,
        json!({"votes": votes, "disagreement_threshold": 0.9, "quality_weighting": "off"}),
    )
    .await;
    assert_eq!(off.ok()["stats"]["weighted_accept"], 0.5);
    assert_eq!(off.ok()["stats"]["quality_weight_mean"], 1.0);

    // Forwarded by the context and message variants too (defect 15).
    client
        .call(
            "share_context",
            json!({"agent_id": "lead", "key": "votes", "value": votes.to_string()}),
        )
        .await
        .ok();
    let ctx_off = client
        .call(
            "resolve_consensus_from_context",
            json!({"requesting_agent": "lead", "proposal_id": "p", "context_agent_id": "lead",
                   "context_key": "votes", "quality_weighting": "off", "disagreement_threshold": 0.9}),
        )
        .await;
    assert_eq!(ctx_off.ok()["stats"]["quality_weighting"], "off");
    assert_eq!(ctx_off.ok()["outcome"], "reject");
    let id = client
        .call(
            "send_message",
            json!({"from_agent": "lead", "to_agent": "lead", "content": votes.to_string()}),
        )
        .await
        .ok()["message"]["id"]
        .clone();
    let msg_off = client
        .call(
            "resolve_consensus_from_message",
            json!({"requesting_agent": "lead", "proposal_id": "p", "message_id": id,
                   "quality_weighting": "off", "disagreement_threshold": 0.9}),
        )
        .await;
    assert_eq!(msg_off.ok()["stats"]["weighted_accept"], 0.5);
    client.close().await;
    hub.stop().await;

    let env_off = TestHub::start_with(&[("MCP_HUB_CONSENSUS_QUALITY_WEIGHTING", "OFF")]).await;
    let client = env_off.client().await;
    register_all(&client, &["lead", "a1", "a2"]).await;
    let body = resolve(
        &client,
        json!({"votes": [vote("a1", "accept", 1.0), vote("a2", "accept", 1.0)]}),
    )
    .await;
    assert_eq!(body.ok()["vote_source"]["quality_weighting"], "off");
    client.close().await;
    env_off.stop().await;
}

#[tokio::test]
async fn emit_policies_and_persisted_decisions() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    register_all(&client, &["lead", "a1", "a2"]).await;
    let split = json!([vote("a1", "accept", 0.9), vote("a2", "reject", 0.9)]);
    let agree = json!([vote("a1", "accept", 0.9), vote("a2", "accept", 0.9)]);
    let cases = [
        (
            json!({"votes": split, "emit_blob_ref_policy": "on_escalate"}),
            true,
        ),
        (
            json!({"votes": agree, "emit_blob_ref_policy": "on_escalate"}),
            false,
        ),
        (
            json!({"votes": split, "emit_blob_ref_policy": "on_conflict", "disagreement_threshold": 0.9}),
            true,
        ),
        (
            json!({"votes": agree, "emit_blob_ref_policy": "on_conflict"}),
            false,
        ),
        (
            json!({"votes": agree, "emit_blob_ref_policy": "never", "emit_blob_ref": true}),
            false,
        ),
        (json!({"votes": agree, "emit_blob_ref": true}), true),
        (json!({"votes": agree}), false),
    ];
    for (args, emitted) in cases {
        let body = resolve(&client, args.clone()).await;
        let body = body.ok();
        assert_eq!(body["decision_blob_emitted"], emitted, "{args}");
        if !emitted {
            assert_eq!(body["decision_blob_ref"], Value::Null);
            continue;
        }
        let blob_ref = &body["decision_blob_ref"];
        let blob = client
            .call(
                "get_protocol_blob",
                json!({"agent_id": "lead", "hash": blob_ref["hash"]}),
            )
            .await;
        let decision: Value =
            serde_json::from_str(blob.ok()["blob"]["value"].as_str().unwrap()).unwrap();
        assert_eq!(decision["proposal_id"], "p1");
        assert_eq!(decision["outcome"], body["outcome"]);
        assert_eq!(decision["decision_id"], body["decision_id"]);
        assert_eq!(
            decision["emit_blob_ref_policy"],
            body["emit_blob_ref_policy"]
        );
        assert_eq!(decision["stats"], body["stats"]);
    }
    let compact = resolve(
        &client,
        json!({"votes": split, "response_mode": "compact", "proposal_id": "p2"}),
    )
    .await;
    assert_eq!(compact.ok()["reasons_count"], 1);

    let listed = client
        .call(
            "list_consensus_decisions",
            json!({"requesting_agent": "lead"}),
        )
        .await;
    let body = listed.ok();
    let rows = body["decisions"].as_array().unwrap();
    assert_eq!(rows.len(), 8);
    assert_eq!(rows[0]["proposal_id"], "p2", "newest first");
    assert!(
        rows[0]["stats_json"]
            .as_str()
            .unwrap()
            .contains("disagreement_ratio")
    );
    assert_eq!(
        rows[0]["reasons_json"],
        "[\"high_disagreement:0.500>0.350\"]"
    );
    // Each counted vote is persisted with its source; inline votes in other agents' names
    // (allowed outside enforce) are recorded as not proven by their voter.
    let votes: Value = serde_json::from_str(rows[0]["votes_json"].as_str().unwrap()).unwrap();
    assert_eq!(
        votes,
        json!([
            {"agent_id": "a1", "decision": "accept", "confidence": 0.9, "weight": 0.9,
             "source": "call", "proven": false},
            {"agent_id": "a2", "decision": "reject", "confidence": 0.9, "weight": 0.9,
             "source": "call", "proven": false}
        ])
    );
    let compact = client
        .call(
            "list_consensus_decisions",
            json!({"proposal_id": "p2", "response_mode": "compact"}),
        )
        .await;
    let row = &compact.ok()["decisions"][0];
    assert_eq!(row["disagreement_ratio"], 0.5);
    assert_eq!(row["reasons_count"], 1);
    let tiny = client
        .call(
            "list_consensus_decisions",
            json!({"response_mode": "tiny", "limit": 2, "offset": 1}),
        )
        .await;
    let rows = tiny.ok()["decisions"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 2);
    let mut keys: Vec<&String> = rows[0].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, vec!["created_at", "id", "outcome", "proposal_id"]);
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn votes_from_context_entries() {
    let hub = TestHub::start().await;
    let client = hub.client().await;
    register_all(&client, &["lead", "a1", "a2"]).await;
    let votes = json!([vote("a1", "accept", 0.9), vote("a2", "accept", 0.7)]);
    let shared = client
        .call(
            "share_context",
            json!({"agent_id": "a1", "key": "votes", "value": votes.to_string()}),
        )
        .await;
    let context_id = shared.ok()["context"]["id"].as_i64().unwrap();
    let call = |extra: Value| {
        let mut args = json!({"requesting_agent": "lead", "proposal_id": "pc"});
        for (k, v) in extra.as_object().unwrap() {
            args[k] = v.clone();
        }
        args
    };
    let by_id = client
        .call(
            "resolve_consensus_from_context",
            call(json!({"context_id": context_id})),
        )
        .await;
    let body = by_id.ok();
    assert_eq!(body["outcome"], "accept");
    assert_eq!(
        body["source_binding"],
        json!({"kind": "context", "context_id": context_id, "context_agent_id": "a1",
               "context_key": "votes", "source_kind": "inline_votes", "source_format": "json"})
    );
    // {votes:[...]}, {votes_blob_hash} and blob-ref envelopes.
    let hash = store_blob(&client, &votes.to_string(), "none").await;
    let sources = [
        (
            json!({"votes": votes}).to_string(),
            "inline_votes_object",
            "json",
        ),
        (
            json!({"votes_blob_hash": hash}).to_string(),
            "blob_hash",
            "json",
        ),
        (
            format!("{{\"v\":\"caep-1\",\"k\":\"blob\",\"h\":\"{hash}\",\"c\":9}}"),
            "blob_ref",
            "blob_ref",
        ),
    ];
    for (value, kind, format) in sources {
        client
            .call(
                "share_context",
                json!({"agent_id": "a2", "key": kind, "value": value}),
            )
            .await
            .ok();
        let body = client
            .call(
                "resolve_consensus_from_context",
                call(json!({"context_agent_id": "a2", "context_key": kind})),
            )
            .await;
        assert_eq!(body.ok()["source_binding"]["source_kind"], kind);
        assert_eq!(body.ok()["source_binding"]["source_format"], format);
        assert_eq!(body.ok()["outcome"], "accept");
    }
    client
        .call(
            "share_context",
            json!({"agent_id": "a2", "key": "prose", "value": "I agree"}),
        )
        .await
        .ok();
    client
        .call(
            "share_context",
            json!({"agent_id": "a2", "key": "ghost", "value": json!({"votes_blob_hash": "e".repeat(64)}).to_string()}),
        )
        .await
        .ok();
    let errors = [
        (json!({}), "CONTEXT_SOURCE_REQUIRED"),
        (json!({"context_agent_id": "a1"}), "CONTEXT_SOURCE_REQUIRED"),
        (json!({"context_id": 9999}), "CONTEXT_NOT_FOUND"),
        (
            json!({"context_agent_id": "a1", "context_key": "nope"}),
            "CONTEXT_NOT_FOUND",
        ),
        (
            json!({"context_id": context_id, "context_agent_id": "a2"}),
            "CONTEXT_AGENT_MISMATCH",
        ),
        (
            json!({"context_id": context_id, "context_key": "other"}),
            "CONTEXT_KEY_MISMATCH",
        ),
        (
            json!({"context_agent_id": "a2", "context_key": "prose"}),
            "UNSUPPORTED_CONTEXT_VOTES_SOURCE",
        ),
        (
            json!({"context_agent_id": "a2", "context_key": "ghost"}),
            "VOTES_BLOB_NOT_FOUND",
        ),
    ];
    for (extra, code) in errors {
        let refused = client
            .call("resolve_consensus_from_context", call(extra.clone()))
            .await;
        assert_eq!(refused.error_code(), code, "{extra}");
    }
    let refused = client
        .call(
            "resolve_consensus_from_context",
            call(json!({"context_agent_id": "a2", "context_key": "ghost"})),
        )
        .await;
    assert_eq!(refused.json["source_binding"]["source_kind"], "blob_hash");
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn votes_from_messages() {
    let hub = TestHub::start().await;
    // Direct messages go to registered agents only (RECIPIENT_NOT_FOUND).
    hub.register_ids(&["lead", "someone-else"]).await;
    let client = hub.client().await;
    register_all(&client, &["lead", "a1", "a2", "outsider"]).await;
    let votes = json!([vote("a1", "reject", 0.9), vote("a2", "reject", 0.6)]);
    let send = |to: Option<&str>, content: &str, metadata: Option<&str>| {
        let mut args = json!({"from_agent": "a1", "content": content});
        if let Some(to) = to {
            args["to_agent"] = json!(to);
        }
        if let Some(metadata) = metadata {
            args["metadata"] = json!(metadata);
        }
        args
    };
    let direct = client
        .call("send_message", send(Some("lead"), &votes.to_string(), None))
        .await
        .ok()["message"]["id"]
        .as_i64()
        .unwrap();
    let in_metadata = client
        .call(
            "send_message",
            send(
                None,
                "see metadata",
                Some(&json!({"votes": votes}).to_string()),
            ),
        )
        .await
        .ok()["message"]["id"]
        .as_i64()
        .unwrap();
    let nothing = client
        .call("send_message", send(Some("lead"), "no votes here", None))
        .await
        .ok()["message"]["id"]
        .as_i64()
        .unwrap();
    let private = client
        .call(
            "send_message",
            send(Some("someone-else"), &votes.to_string(), None),
        )
        .await
        .ok()["message"]["id"]
        .as_i64()
        .unwrap();
    let call = |id: Value, extra: Value| {
        let mut args = json!({"requesting_agent": "lead", "proposal_id": "pm", "message_id": id});
        for (k, v) in extra.as_object().unwrap() {
            args[k] = v.clone();
        }
        args
    };
    let body = client
        .call(
            "resolve_consensus_from_message",
            call(json!(direct), json!({"from_agent": "a1"})),
        )
        .await;
    let body = body.ok();
    assert_eq!(body["outcome"], "reject");
    assert_eq!(body["source_binding"]["kind"], "message");
    assert_eq!(body["source_binding"]["to_agent"], "lead");
    assert_eq!(body["source_binding"]["source_format"], "json");
    // The message is now read for the caller.
    let unread = client
        .call(
            "read_messages",
            json!({"agent_id": "lead", "unread_only": true, "response_mode": "nano"}),
        )
        .await;
    let unread_ids: Vec<i64> = unread.ok()["m"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["i"].as_i64().unwrap())
        .collect();
    assert!(!unread_ids.contains(&direct));
    let body = client
        .call(
            "resolve_consensus_from_message",
            call(json!(in_metadata), json!({})),
        )
        .await;
    assert_eq!(
        body.ok()["source_binding"]["source_format"],
        "metadata_json"
    );
    assert_eq!(
        body.ok()["source_binding"]["source_kind"],
        "inline_votes_object"
    );
    let errors = [
        (json!(0), json!({}), "INVALID_MESSAGE_ID"),
        // Not an integer: refused by the schema before the op.
        (json!(-3.5), json!({}), "INVALID_ARGUMENT"),
        (json!(999_999), json!({}), "MESSAGE_NOT_FOUND_OR_FORBIDDEN"),
        (json!(private), json!({}), "MESSAGE_NOT_FOUND_OR_FORBIDDEN"),
        (
            json!(direct),
            json!({"from_agent": "a2"}),
            "MESSAGE_SENDER_MISMATCH",
        ),
        (
            json!(nothing),
            json!({}),
            "UNSUPPORTED_MESSAGE_VOTES_SOURCE",
        ),
    ];
    for (id, extra, code) in errors {
        let refused = client
            .call("resolve_consensus_from_message", call(id.clone(), extra))
            .await;
        assert_eq!(refused.error_code(), code, "message {id}");
    }
    client.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn enforce_mode_refuses_votes_cast_in_other_agents_names() {
    let hub = TestHub::start_with(&[("MCP_HUB_AUTH_MODE", "enforce")]).await;
    let (lead, lead_token) = hub.agent("lead").await;
    let (a1, a1_token) = hub.agent("a1").await;
    let (_a2, _) = hub.agent("a2").await;
    let with_token = |mut args: Value, token: &str| {
        args["auth_token"] = json!(token);
        args
    };
    // Inline votes naming a1 and a2, cast by lead: refused.
    let forged = lead
        .call(
            "resolve_consensus",
            with_token(
                json!({"requesting_agent": "lead", "proposal_id": "p",
                       "votes": [vote("lead", "accept", 0.9), vote("a1", "accept", 0.9), vote("a2", "accept", 0.9)]}),
                &lead_token,
            ),
        )
        .await;
    assert_eq!(forged.error_code(), "VOTE_NOT_AUTHORIZED");
    assert_eq!(forged.json["agent_ids"], json!(["a1", "a2"]));
    // The caller's own vote is fine.
    let own = lead
        .call(
            "resolve_consensus",
            with_token(
                json!({"requesting_agent": "lead", "proposal_id": "p", "min_non_abstain_votes": 1,
                       "votes": [vote("lead", "accept", 0.9)]}),
                &lead_token,
            ),
        )
        .await;
    assert_eq!(own.ok()["outcome"], "accept");
    // a1's own context entry carries a1's vote into lead's evaluation...
    a1.call(
        "share_context",
        with_token(
            json!({"agent_id": "a1", "key": "vote", "value": json!([vote("a1", "reject", 0.8)]).to_string()}),
            &a1_token,
        ),
    )
    .await
    .ok();
    let from_context = lead
        .call(
            "resolve_consensus_from_context",
            with_token(
                json!({"requesting_agent": "lead", "proposal_id": "p", "context_agent_id": "a1",
                       "context_key": "vote", "min_non_abstain_votes": 1}),
                &lead_token,
            ),
        )
        .await;
    assert_eq!(from_context.ok()["outcome"], "reject");
    // ...and a1's message its vote, but not a vote in a2's name.
    let message = a1
        .call(
            "send_message",
            with_token(
                json!({"from_agent": "a1", "to_agent": "lead",
                       "content": json!([vote("a1", "accept", 0.8), vote("a2", "accept", 0.8)]).to_string()}),
                &a1_token,
            ),
        )
        .await;
    let id = message.ok()["message"]["id"].clone();
    let mixed = lead
        .call(
            "resolve_consensus_from_message",
            with_token(
                json!({"requesting_agent": "lead", "proposal_id": "p", "message_id": id}),
                &lead_token,
            ),
        )
        .await;
    assert_eq!(mixed.error_code(), "VOTE_NOT_AUTHORIZED");
    assert_eq!(mixed.json["agent_ids"], json!(["a2"]));
    assert_eq!(mixed.json["source_binding"]["from_agent"], "a1");
    // Without a token nothing gets in at all.
    let anonymous = lead
        .call(
            "resolve_consensus",
            json!({"requesting_agent": "lead", "proposal_id": "p", "votes": [vote("lead", "accept", 1.0)]}),
        )
        .await;
    assert_eq!(anonymous.error_code(), "AUTH_TOKEN_REQUIRED");
    lead.close().await;
    a1.close().await;
    hub.stop().await;

    // Warn mode lets it through with a warning.
    let hub = TestHub::start_with(&[("MCP_HUB_AUTH_MODE", "warn")]).await;
    let (lead, lead_token) = hub.agent("lead").await;
    hub.agent("a1").await;
    let warned = lead
        .call(
            "resolve_consensus",
            with_token(
                json!({"requesting_agent": "lead", "proposal_id": "p",
                       "votes": [vote("lead", "accept", 0.9), vote("a1", "accept", 0.9)]}),
                &lead_token,
            ),
        )
        .await;
    let body = warned.ok();
    assert!(
        body["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("[vote_auth_warn]"),
        "{body}"
    );
    lead.close().await;
    hub.stop().await;
}
