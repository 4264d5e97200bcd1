//! Ballots (resolve_consensus_from_context with agent_ids / vote_refs): each voter's own
//! context entry or message is its vote, proven by the hub's record of who wrote it. The
//! same flow must hold under enforce and observe.

use futures::future::join_all;
use serde_json::{Value, json};

use crate::harness::{Client, Outcome, TestHub};

/// A registered agent with its session and token; every call carries the token, which
/// observe mode accepts as well.
struct Agent {
    id: String,
    client: Client,
    token: String,
}

impl Agent {
    async fn new(hub: &TestHub, id: &str) -> Agent {
        let (client, token) = hub.agent(id).await;
        Agent {
            id: id.to_string(),
            client,
            token,
        }
    }

    async fn call(&self, tool: &str, mut args: Value) -> Outcome {
        args["auth_token"] = json!(self.token);
        self.client.call(tool, args).await
    }

    /// Shares `value` under `key` as this agent; returns the entry's id.
    async fn share(&self, key: &str, value: Value) -> i64 {
        let shared = self
            .call(
                "share_context",
                json!({"agent_id": self.id, "key": key, "value": value.to_string()}),
            )
            .await;
        shared.ok()["context"]["id"].as_i64().unwrap()
    }

    async fn resolve(&self, args: Value) -> Outcome {
        let mut full = json!({"requesting_agent": self.id});
        for (key, value) in args.as_object().unwrap() {
            full[key] = value.clone();
        }
        self.call("resolve_consensus_from_context", full).await
    }
}

async fn decision_rows(reviewer: &Agent) -> Vec<Value> {
    let listed = reviewer
        .call(
            "list_consensus_decisions",
            json!({"requesting_agent": reviewer.id, "limit": 500}),
        )
        .await;
    listed.ok()["decisions"].as_array().unwrap().clone()
}

#[tokio::test]
async fn five_workers_vote_and_a_reviewer_resolves_in_one_call_in_every_auth_mode() {
    for mode in ["enforce", "observe"] {
        five_worker_ballot(mode).await;
    }
}

async fn five_worker_ballot(mode: &str) {
    let hub = TestHub::start_with(&[("MCP_HUB_AUTH_MODE", mode)]).await;
    let reviewer = Agent::new(&hub, "reviewer").await;
    let mut workers = Vec::new();
    for id in ["w1", "w2", "w3", "w4", "w5", "w6"] {
        workers.push(Agent::new(&hub, id).await);
    }
    hub.handle
        .hub
        .store
        .write(|tx| {
            hub_server::store::consensus::set_quality_counts(tx, "w1", 100, 0)?;
            hub_server::store::consensus::set_quality_counts(tx, "w3", 10, 5)
        })
        .await
        .unwrap();

    // w2 changes its mind: its latest entry is its vote.
    workers[1]
        .share("vote:p1", json!({"decision": "reject", "confidence": 1.0}))
        .await;
    // Five workers vote at once, each in a form the ballot accepts: a bare decision object,
    // one naming its author, a one-vote array, and a blob ref to a decision object.
    let blob_vote = json!({"decision": "accept", "confidence": 0.6}).to_string();
    let shares = [
        json!({"decision": "accept", "confidence": 0.9}),
        json!({"agent_id": "w2", "decision": "accept", "confidence": 0.8}),
        json!({"decision": "reject", "confidence": 0.5}),
        json!([{"agent_id": "w4", "decision": "abstain", "confidence": 1.0}]),
    ];
    let context_ids: Vec<i64> = join_all(
        workers[..4]
            .iter()
            .zip(shares)
            .map(|(worker, value)| worker.share("vote:p1", value)),
    )
    .await;
    let w5 = workers[4]
        .call(
            "share_blob_context",
            json!({"agent_id": "w5", "key": "vote:p1", "payload": blob_vote}),
        )
        .await;
    let w5_context = w5.ok()["context"]["id"].as_i64().unwrap();

    // w6 is listed but has not voted.
    let voters = json!(["w1", "w2", "w3", "w4", "w5", "w6"]);
    let resolved = reviewer
        .resolve(json!({"proposal_id": "p1", "agent_ids": voters, "min_votes": 5}))
        .await;
    let body = resolved.ok();
    assert_eq!(body["outcome"], "accept", "{mode}: {body}");
    assert_eq!(body["missing_voters"], json!(["w6"]), "{mode}");
    let stats = &body["stats"];
    // accept: 0.9 x 1.12 (w1) + 0.8 (w2) + 0.6 (w5); reject: 0.5 x 0.712 (w3); w4 abstains.
    assert_eq!(stats["weighted_accept"], 2.408, "{mode}");
    assert_eq!(stats["weighted_reject"], 0.356, "{mode}");
    assert_eq!(stats["non_abstain_count"], 4, "{mode}");
    assert_eq!(stats["abstain_count"], 1, "{mode}");
    assert_eq!(stats["disagreement_ratio"], 0.129, "{mode}");
    assert_eq!(stats["quality_weight_mean"], 0.966, "{mode}");
    assert_eq!(
        body["source_binding"],
        json!({"kind": "ballot", "context_key": "vote:p1", "listed_voters": 6, "vote_refs": 0}),
        "{mode}"
    );
    let mut sources: Vec<String> = context_ids
        .iter()
        .chain([&w5_context])
        .map(|id| format!("context_id:{id}"))
        .collect();
    let expected_votes = json!([
        {"agent_id": "w1", "decision": "accept", "confidence": 0.9, "weight": 1.008,
         "source": sources[0], "proven": true},
        {"agent_id": "w2", "decision": "accept", "confidence": 0.8, "weight": 0.8,
         "source": sources[1], "proven": true},
        {"agent_id": "w3", "decision": "reject", "confidence": 0.5, "weight": 0.356,
         "source": sources[2], "proven": true},
        {"agent_id": "w4", "decision": "abstain", "confidence": 1.0, "weight": 1.0,
         "source": sources[3], "proven": true},
        {"agent_id": "w5", "decision": "accept", "confidence": 0.6, "weight": 0.6,
         "source": sources[4], "proven": true},
    ]);
    assert_eq!(body["votes"], expected_votes, "{mode}");

    // The decision records each vote with the row that proved it.
    let rows = decision_rows(&reviewer).await;
    assert_eq!(rows.len(), 1, "{mode}");
    let persisted: Value = serde_json::from_str(rows[0]["votes_json"].as_str().unwrap()).unwrap();
    assert_eq!(persisted, expected_votes, "{mode}");

    // Quorum: six voters required, five voted.
    let short = reviewer
        .resolve(json!({"proposal_id": "p1", "agent_ids": voters, "min_votes": 6}))
        .await;
    assert_eq!(short.error_code(), "QUORUM_NOT_MET", "{mode}");
    assert_eq!(short.json["missing_voters"], json!(["w6"]));
    assert_eq!(short.json["vote_count"], 5);

    // A forged entry: w6 writes, in its own entry, a vote in w1's name.
    let w6 = &workers[5];
    let forged_id = w6
        .share(
            "vote:p1",
            json!({"agent_id": "w1", "decision": "reject", "confidence": 1.0}),
        )
        .await;
    let forged = reviewer
        .resolve(json!({"proposal_id": "p1", "agent_ids": voters}))
        .await;
    assert_eq!(forged.error_code(), "VOTE_AUTHOR_MISMATCH", "{mode}");
    assert_eq!(
        forged.json["entries"],
        json!([{"source": format!("context_id:{forged_id}"), "author": "w6",
                "claimed_voter": "w1"}]),
        "{mode}"
    );
    // The same through a referenced message: its sender is the voter, not the name inside.
    let message = w6
        .call(
            "send_message",
            json!({"from_agent": "w6", "to_agent": "reviewer",
                   "content": json!({"agent_id": "w2", "decision": "reject"}).to_string()}),
        )
        .await;
    let message_id = message.ok()["message"]["id"].as_i64().unwrap();
    let forged = reviewer
        .resolve(json!({"proposal_id": "p1", "vote_refs": [format!("message_id:{message_id}")]}))
        .await;
    assert_eq!(forged.error_code(), "VOTE_AUTHOR_MISMATCH", "{mode}");
    assert_eq!(
        forged.json["entries"][0]["source"],
        format!("message_id:{message_id}")
    );
    // w6 votes honestly by message instead; the reference overrides nothing else and w6 is
    // no longer missing.
    w6.share("vote:p1", json!("withdrawn")).await;
    let honest = w6
        .call(
            "send_message",
            json!({"from_agent": "w6", "to_agent": "reviewer",
                   "content": json!({"decision": "reject", "confidence": 0.2}).to_string()}),
        )
        .await;
    let honest_id = honest.ok()["message"]["id"].as_i64().unwrap();
    let withdrawn = reviewer
        .resolve(json!({"proposal_id": "p1", "agent_ids": voters}))
        .await;
    assert_eq!(
        withdrawn.error_code(),
        "UNSUPPORTED_CONTEXT_VOTES_SOURCE",
        "{mode}"
    );
    assert_eq!(withdrawn.json["entries"][0]["author"], "w6");
    let with_ref = reviewer
        .resolve(json!({"proposal_id": "p1", "context_key": "vote:p1",
                        "agent_ids": ["w1", "w2", "w3", "w4", "w5"],
                        "vote_refs": [format!("message_id:{honest_id}")], "min_votes": 6}))
        .await;
    let body = with_ref.ok();
    assert_eq!(body["missing_voters"], json!([]), "{mode}");
    assert_eq!(body["stats"]["weighted_reject"], 0.556, "{mode}");
    sources.push(format!("message_id:{honest_id}"));
    assert_eq!(body["votes"][5]["source"], sources[5]);
    assert_eq!(
        decision_rows(&reviewer).await.len(),
        2,
        "{mode}: refusals write no decision"
    );
    reviewer.client.close().await;
    for worker in workers {
        worker.client.close().await;
    }
    hub.stop().await;
}

/// Bad ballot arguments and unreadable references: a code and a sentence naming the field.
#[tokio::test]
async fn ballot_arguments_and_references_are_checked() {
    let hub = TestHub::start_with(&[
        ("MCP_HUB_AUTH_MODE", "enforce"),
        ("MCP_HUB_MAX_CONSENSUS_VOTES", "3"),
    ])
    .await;
    let reviewer = Agent::new(&hub, "reviewer").await;
    let w1 = Agent::new(&hub, "w1").await;
    let other = Agent::new(&hub, "other").await;
    let entry = w1
        .share("vote:p", json!({"decision": "accept", "confidence": 0.9}))
        .await;
    let private = w1
        .call(
            "send_message",
            json!({"from_agent": "w1", "to_agent": "other",
                   "content": json!({"decision": "accept"}).to_string()}),
        )
        .await;
    let private = private.ok()["message"]["id"].as_i64().unwrap();
    let cases = [
        (
            json!({"agent_ids": ["w1", " "]}),
            "INVALID_ARGUMENT",
            "agent_ids[1]",
        ),
        (
            json!({"agent_ids": []}),
            "CONTEXT_SOURCE_REQUIRED",
            "agent_ids",
        ),
        (
            json!({"vote_refs": ["ctx:1"]}),
            "INVALID_VOTE_REF",
            "vote_refs[0]",
        ),
        (
            json!({"agent_ids": ["w1"], "min_votes": 0}),
            "INVALID_ARGUMENT",
            "min_votes",
        ),
        (
            json!({"min_votes": 1, "context_id": entry}),
            "INVALID_ARGUMENT",
            "min_votes",
        ),
        (
            json!({"agent_ids": ["w1"], "context_id": entry}),
            "INVALID_ARGUMENT",
            "agent_ids",
        ),
        (
            json!({"agent_ids": ["a", "b", "c"], "vote_refs": [format!("context_id:{entry}")]}),
            "VOTES_TOO_LARGE",
            "MCP_HUB_MAX_CONSENSUS_VOTES",
        ),
        (
            json!({"vote_refs": [format!("message_id:{private}"), "context_id:999"]}),
            "VOTE_REF_NOT_FOUND",
            "vote_refs",
        ),
        (
            json!({"agent_ids": ["nobody"]}),
            "VOTES_EMPTY",
            "listed voters",
        ),
    ];
    for (args, code, named) in cases {
        let mut args = args;
        args["proposal_id"] = json!("p");
        let refused = reviewer.resolve(args.clone()).await;
        assert_eq!(refused.error_code(), code, "{args}");
        let text = refused.json["error"].as_str().unwrap();
        assert!(text.contains(named), "{args}: {text}");
    }
    let refused = reviewer
        .resolve(json!({"proposal_id": "p", "vote_refs": [format!("message_id:{private}"), "context_id:999"]}))
        .await;
    assert_eq!(
        refused.json["vote_refs"],
        json!([format!("message_id:{private}"), "context_id:999"])
    );
    // The addressee may use it; a duplicate reference to a listed voter's entry counts once.
    let resolved = other
        .resolve(json!({"proposal_id": "p", "agent_ids": ["w1"], "min_non_abstain_votes": 1,
                        "vote_refs": [format!("context_id:{entry}"), format!("message_id:{private}")]}))
        .await;
    let body = resolved.ok();
    assert_eq!(body["outcome"], "accept");
    assert_eq!(body["stats"]["input_vote_count"], 2);
    assert_eq!(body["stats"]["evaluated_vote_count"], 1, "deduped by agent");
    assert_eq!(body["votes"][0]["source"], format!("message_id:{private}"));
    // Tiny keeps missing_voters and drops the per-vote list.
    let tiny = other
        .resolve(json!({"proposal_id": "p", "agent_ids": ["w1", "reviewer"],
                        "min_non_abstain_votes": 1, "response_mode": "tiny"}))
        .await;
    assert_eq!(tiny.ok()["missing_voters"], json!(["reviewer"]));
    assert!(tiny.ok().get("votes").is_none());
    for agent in [reviewer, w1, other] {
        agent.client.close().await;
    }
    hub.stop().await;
}
