//! Consensus tools: resolve_consensus, resolve_consensus_from_context,
//! resolve_consensus_from_message, list_consensus_decisions — their arguments and response
//! modes. Gathering votes, the voter rules and persistence are `service::consensus`; the
//! tally is `crate::consensus` (pure).

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Activity, Category, OpCtx, ToolDef, ToolResult, int_arg, non_blank};
use crate::consensus::{Decision, EmitPolicy, Vote};
use crate::service::consensus::{
    self as service, ListDecisions, Resolve, ResolveFromContext, ResolveFromMessage, Resolved,
    Tally,
};
use crate::store::consensus::DecisionRow;
use crate::store::{Db, WriteTx};
use crate::tool_args;

pub fn tools() -> Vec<ToolDef> {
    vec![
        super::mutating(
            "resolve_consensus",
            Category::Consensus,
            "Decide a proposal by weighted votes: accept, reject or escalate_verifier; persisted.",
            Activity::Stream,
            resolve_consensus,
        ),
        super::mutating(
            "resolve_consensus_from_context",
            Category::Consensus,
            "resolve_consensus on votes in context: a ballot over agent_ids, or one entry (context_id, or context_agent_id + context_key).",
            Activity::Stream,
            resolve_consensus_from_context,
        ),
        super::mutating(
            "resolve_consensus_from_message",
            Category::Consensus,
            "resolve_consensus on votes in a message to you or broadcast.",
            Activity::Stream,
            resolve_consensus_from_message,
        ),
        super::reading(
            "list_consensus_decisions",
            Category::Consensus,
            "Persisted decisions, newest first.",
            list_consensus_decisions,
        ),
    ]
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DecisionArg {
    Accept,
    Reject,
    Abstain,
}

/// One inline vote.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct VoteArg {
    // The voting agent (must be registered).
    pub agent_id: String,
    // accept, reject or abstain.
    pub decision: DecisionArg,
    // 0-1 (clamped); 0.5 when absent.
    pub confidence: Option<f64>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ConsensusMode {
    #[default]
    Full,
    Compact,
    Tiny,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EmitPolicyArg {
    Never,
    Always,
    OnEscalate,
    OnConflict,
}

/// Tuning shared by the three resolve tools.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct Tuning {
    // Escalate when min(WA,WR)/(WA+WR) exceeds this; 0.1-0.9 (default 0.35).
    pub disagreement_threshold: Option<f64>,
    // Escalate with fewer accept/reject votes than this; >= 1 (default 2).
    #[schemars(with = "Option<i64>")]
    pub min_non_abstain_votes: Option<f64>,
    // Escalate when 40 + 5 x votes exceeds this; >= 20 (default: no cap).
    #[schemars(with = "Option<i64>")]
    pub token_budget_cap: Option<f64>,
    // Keep only each agent's last vote (default true).
    pub dedupe_by_agent: Option<bool>,
    // on/off: weight votes by the agent's done/rollback record (default from
    // MCP_HUB_CONSENSUS_QUALITY_WEIGHTING).
    pub quality_weighting: Option<OnOff>,
    // full (default), compact or tiny.
    pub response_mode: Option<ConsensusMode>,
    // When to store the decision as a blob: never, always, on_escalate, on_conflict.
    pub emit_blob_ref_policy: Option<EmitPolicyArg>,
    // Deprecated: true = always, false = never; ignored when emit_blob_ref_policy is given.
    pub emit_blob_ref: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ResolveConsensusArgs {
    // The caller.
    pub requesting_agent: String,
    // What is being decided (free text, not unique).
    pub proposal_id: String,
    // Inline votes.
    pub votes: Option<Vec<VoteArg>>,
    // SHA-256 of a stored votes blob (a vote array or {votes:[...]}).
    pub votes_blob_hash: Option<String>,
    // A blob-ref envelope naming the votes blob.
    pub votes_blob_ref: Option<String>,
    #[serde(flatten)]
    pub tuning: Tuning,
    pub auth_token: Option<String>,
}
tool_args!(ResolveConsensusArgs, caller = requesting_agent);

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ResolveFromContextArgs {
    // The caller.
    pub requesting_agent: String,
    // What is being decided (free text, not unique).
    pub proposal_id: String,
    // The context entry holding the votes.
    #[schemars(with = "Option<i64>")]
    pub context_id: Option<f64>,
    // With context_key: the entry's owner (also checked against the entry found by id).
    pub context_agent_id: Option<String>,
    // With context_agent_id: the entry's key. Ballot: the key voters share under
    // (default vote:<proposal_id>).
    pub context_key: Option<String>,
    // Ballot: voters; each one's own entry under context_key (default vote:<proposal_id>).
    pub agent_ids: Option<Vec<String>>,
    // Ballot: extra votes as "context_id:N" or "message_id:N" (message to you or broadcast).
    pub vote_refs: Option<Vec<String>>,
    // Ballot quorum: refuse (QUORUM_NOT_MET) when fewer voters voted.
    pub min_votes: Option<f64>,
    #[serde(flatten)]
    pub tuning: Tuning,
    pub auth_token: Option<String>,
}
tool_args!(ResolveFromContextArgs, caller = requesting_agent);

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ResolveFromMessageArgs {
    // The caller (the message must be addressed to it or broadcast).
    pub requesting_agent: String,
    // What is being decided (free text, not unique).
    pub proposal_id: String,
    // The message holding the votes.
    #[schemars(with = "i64")]
    pub message_id: f64,
    // Refuse unless the message was sent by this agent.
    pub from_agent: Option<String>,
    #[serde(flatten)]
    pub tuning: Tuning,
    pub auth_token: Option<String>,
}
tool_args!(ResolveFromMessageArgs, caller = requesting_agent);

fn emit_policy(tuning: &Tuning) -> EmitPolicy {
    match tuning.emit_blob_ref_policy {
        Some(EmitPolicyArg::Never) => EmitPolicy::Never,
        Some(EmitPolicyArg::Always) => EmitPolicy::Always,
        Some(EmitPolicyArg::OnEscalate) => EmitPolicy::OnEscalate,
        Some(EmitPolicyArg::OnConflict) => EmitPolicy::OnConflict,
        None if tuning.emit_blob_ref == Some(true) => EmitPolicy::Always,
        None => EmitPolicy::Never,
    }
}

impl Tuning {
    fn tally(&self) -> Tally {
        Tally {
            disagreement_threshold: self.disagreement_threshold,
            min_non_abstain_votes: self.min_non_abstain_votes,
            token_budget_cap: self.token_budget_cap,
            dedupe_by_agent: self.dedupe_by_agent,
            quality_weighting: self.quality_weighting.map(|q| q == OnOff::On),
            emit: emit_policy(self),
        }
    }
}

/// A finite id argument, floored.
fn id_arg(value: f64) -> Option<i64> {
    value.is_finite().then(|| value.floor() as i64)
}

fn resolve_consensus(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: ResolveConsensusArgs,
) -> ToolResult {
    let mut votes = Vec::new();
    let mut invalid_votes = 0;
    for vote in args.votes.unwrap_or_default() {
        let agent_id = vote.agent_id.trim();
        if agent_id.is_empty() {
            invalid_votes += 1;
            continue;
        }
        votes.push(Vote {
            agent_id: agent_id.to_string(),
            decision: match vote.decision {
                DecisionArg::Accept => Decision::Accept,
                DecisionArg::Reject => Decision::Reject,
                DecisionArg::Abstain => Decision::Abstain,
            },
            confidence: vote.confidence.filter(|c| c.is_finite()),
        });
    }
    let command = Resolve {
        proposal_id: args.proposal_id,
        votes,
        invalid_votes,
        votes_blob_hash: args.votes_blob_hash,
        votes_blob_ref: args.votes_blob_ref,
        tally: args.tuning.tally(),
    };
    let resolved = service::resolve(tx, ctx, command)?;
    Ok(render_resolved(&resolved, args.tuning.response_mode))
}

fn resolve_consensus_from_context(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: ResolveFromContextArgs,
) -> ToolResult {
    let command = ResolveFromContext {
        proposal_id: args.proposal_id,
        context_id: args.context_id.and_then(id_arg),
        context_agent_id: non_blank(args.context_agent_id.as_deref()).map(str::to_string),
        context_key: non_blank(args.context_key.as_deref()).map(str::to_string),
        agent_ids: args.agent_ids,
        vote_refs: args.vote_refs,
        min_votes: args.min_votes,
        tally: args.tuning.tally(),
    };
    let resolved = service::resolve_from_context(tx, ctx, command)?;
    Ok(render_resolved(&resolved, args.tuning.response_mode))
}

fn resolve_consensus_from_message(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: ResolveFromMessageArgs,
) -> ToolResult {
    let command = ResolveFromMessage {
        proposal_id: args.proposal_id,
        message_id: id_arg(args.message_id).unwrap_or(0),
        from_agent: non_blank(args.from_agent.as_deref()).map(str::to_string),
        tally: args.tuning.tally(),
    };
    let resolved = service::resolve_from_message(tx, ctx, command)?;
    Ok(render_resolved(&resolved, args.tuning.response_mode))
}

/// The response of the three resolve tools in `mode` (full when absent).
pub fn render_resolved(resolved: &Resolved, mode: Option<ConsensusMode>) -> Value {
    let Resolved {
        decision,
        evaluation,
        vote_source,
        emit,
        decision_blob,
        binding,
        votes,
        missing_voters,
    } = resolved;
    let stats = evaluation.stats();
    let outcome = evaluation.outcome.as_str();
    let emitted = decision_blob.is_some();
    let mut body = match mode.unwrap_or_default() {
        ConsensusMode::Full | ConsensusMode::Compact => {
            let mut body = json!({
                "success": true,
                "decision_id": decision.id,
                "proposal_id": decision.proposal_id,
                "outcome": outcome,
                "stats": stats,
                "vote_source": vote_source,
                "emit_blob_ref_policy": emit.as_str(),
                "decision_blob_emitted": emitted,
                "decision_blob_ref": decision_blob,
                "reasons": evaluation.reasons,
            });
            if mode == Some(ConsensusMode::Compact) {
                body["reasons"] = json!(evaluation.reasons.iter().take(3).collect::<Vec<_>>());
                body["reasons_count"] = json!(evaluation.reasons.len());
            }
            body
        }
        ConsensusMode::Tiny => json!({
            "success": true,
            "decision_id": decision.id,
            "proposal_id": decision.proposal_id,
            "outcome": outcome,
            "stats": {
                "disagreement_ratio": stats["disagreement_ratio"],
                "uncertainty": stats["uncertainty"],
                "non_abstain_count": stats["non_abstain_count"],
                "estimated_token_cost": stats["estimated_token_cost"],
            },
            "reasons_count": evaluation.reasons.len(),
            "vote_source": {
                "inline_votes": vote_source.inline_votes,
                "blob_votes": vote_source.blob_votes,
                "dedupe_by_agent": vote_source.dedupe_by_agent,
            },
            "emit_blob_ref_policy": emit.as_str(),
            "decision_blob_emitted": emitted,
            "decision_blob_ref": decision_blob,
        }),
    };
    if let Some(binding) = binding {
        body["source_binding"] = binding.to_json();
    }
    // Ballots show who was counted, by which row, and who did not vote.
    if let Some(missing_voters) = missing_voters {
        body["missing_voters"] = json!(missing_voters);
        if mode != Some(ConsensusMode::Tiny) {
            body["votes"] = json!(votes);
        }
    }
    body
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListConsensusDecisionsArgs {
    // The caller (optional; logged when given).
    pub requesting_agent: Option<String>,
    // Filter: decisions of this proposal.
    pub proposal_id: Option<String>,
    // Page size, 1-500 (default 100).
    #[schemars(with = "Option<i64>")]
    pub limit: Option<f64>,
    // Rows to skip (default 0).
    #[schemars(with = "Option<i64>")]
    pub offset: Option<f64>,
    // full (default), compact or tiny.
    pub response_mode: Option<ConsensusMode>,
    pub auth_token: Option<String>,
}
tool_args!(
    ListConsensusDecisionsArgs,
    optional_caller = requesting_agent
);

fn list_consensus_decisions(
    db: &Db,
    ctx: &mut OpCtx,
    args: ListConsensusDecisionsArgs,
) -> ToolResult {
    let query = ListDecisions {
        proposal_id: args.proposal_id.filter(|p| !p.is_empty()),
        limit: int_arg(args.limit, 100, 1, 500),
        offset: int_arg(args.offset, 0, 0, i64::MAX),
    };
    let rows = service::list(db, ctx, query)?;
    let mode = args.response_mode.unwrap_or_default();
    let decisions: Vec<Value> = rows.iter().map(|row| decision_item(row, mode)).collect();
    Ok(json!({"success": true, "decisions": decisions}))
}

fn decision_item(row: &DecisionRow, mode: ConsensusMode) -> Value {
    match mode {
        ConsensusMode::Full => json!({
            "id": row.id,
            "proposal_id": row.proposal_id,
            "requesting_agent": row.requesting_agent,
            "outcome": row.outcome,
            "stats_json": row.stats_json,
            "reasons_json": row.reasons_json,
            "votes_json": row.votes_json,
            "created_at": row.created_at,
        }),
        ConsensusMode::Compact => {
            let stats: Option<Value> = serde_json::from_str(&row.stats_json).ok();
            let stat = |name: &str| {
                stats
                    .as_ref()
                    .and_then(|s| s.get(name))
                    .filter(|v| v.is_number())
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            let reasons_count = serde_json::from_str::<Vec<Value>>(&row.reasons_json)
                .map(|r| r.len())
                .unwrap_or(0);
            json!({
                "id": row.id,
                "proposal_id": row.proposal_id,
                "requesting_agent": row.requesting_agent,
                "outcome": row.outcome,
                "created_at": row.created_at,
                "uncertainty": stat("uncertainty"),
                "disagreement_ratio": stat("disagreement_ratio"),
                "reasons_count": reasons_count,
            })
        }
        ConsensusMode::Tiny => json!({
            "id": row.id,
            "proposal_id": row.proposal_id,
            "outcome": row.outcome,
            "created_at": row.created_at,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_policy_defaults_from_the_deprecated_flag() {
        let mut tuning = Tuning::default();
        assert_eq!(emit_policy(&tuning), EmitPolicy::Never);
        tuning.emit_blob_ref = Some(true);
        assert_eq!(emit_policy(&tuning), EmitPolicy::Always);
        tuning.emit_blob_ref_policy = Some(EmitPolicyArg::OnConflict);
        assert_eq!(emit_policy(&tuning), EmitPolicy::OnConflict);
    }
}
