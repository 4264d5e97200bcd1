//! Consensus tools: resolve_consensus, resolve_consensus_from_context,
//! resolve_consensus_from_message, list_consensus_decisions.
//!
//! The tally itself is `crate::consensus` (pure). Here: loading votes (inline, from a blob,
//! a context entry or a message), the voter rules, persisting the decision and emitting the
//! decision blob. Voter rules: every vote must name a registered agent, and in enforce auth
//! mode a vote may name another agent only when it comes from that agent's own context
//! entry or message (warn mode: a warning).

use std::collections::BTreeSet;

use crate::store::Db;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::blobs::{policy, refusal};
use super::text::prefix;
use super::{Activity, Category, OpCtx, ToolDef, ToolError, ToolResult, int_arg, non_blank};
use crate::config::AuthMode;
use crate::consensus::{
    self, Decision, EmitPolicy, Evaluation, ExtractedVotes, Params, Vote, VotesDocError,
};
use crate::protocol::canonical::{canonical, normalize};
use crate::protocol::codec::{self, Mode};
use crate::protocol::{char_len, round3, sha256_hex};
use crate::store::WriteTx;
use crate::store::agents as agent_store;
use crate::store::blobs as blob_store;
use crate::store::consensus::{self as consensus_store, DecisionRow, NewDecision};
use crate::store::context as context_store;
use crate::store::messages as message_store;
use crate::tool_args;

pub fn tools() -> Vec<ToolDef> {
    vec![
        super::mutating(
            "resolve_consensus",
            Category::Consensus,
            "Settle a proposal by weighted votes (inline votes and/or a votes blob by hash or \
             blob-ref). Outcome accept, reject or escalate_verifier (token budget, too few \
             votes, high disagreement — first rule wins). Votes must name registered agents. \
             The decision is persisted; emit_blob_ref_policy can store it as a blob.",
            Activity::Stream,
            resolve_consensus,
        ),
        super::mutating(
            "resolve_consensus_from_context",
            Category::Consensus,
            "resolve_consensus with the votes read from a context entry (context_id, or \
             context_agent_id + context_key): a vote array, {votes:[...]}, \
             {votes_blob_hash}, or a blob-ref envelope.",
            Activity::Stream,
            resolve_consensus_from_context,
        ),
        super::mutating(
            "resolve_consensus_from_message",
            Category::Consensus,
            "resolve_consensus with the votes read from a message addressed to you (or \
             broadcast): its content, else its metadata. from_agent guards the sender.",
            Activity::Stream,
            resolve_consensus_from_message,
        ),
        super::reading(
            "list_consensus_decisions",
            Category::Consensus,
            "List persisted consensus decisions, newest first (filter proposal_id; \
             response_mode full, compact or tiny).",
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
    /// The voting agent (must be registered).
    pub agent_id: String,
    /// accept, reject or abstain.
    pub decision: DecisionArg,
    /// 0-1 (clamped); 0.5 when absent.
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
    /// Escalate when min(WA,WR)/(WA+WR) exceeds this; 0.1-0.9 (default 0.35).
    pub disagreement_threshold: Option<f64>,
    /// Escalate with fewer accept/reject votes than this; >= 1 (default 2).
    pub min_non_abstain_votes: Option<f64>,
    /// Escalate when 40 + 5 x votes exceeds this; >= 20 (default: no cap).
    pub token_budget_cap: Option<f64>,
    /// Keep only each agent's last vote (default true).
    pub dedupe_by_agent: Option<bool>,
    /// on/off: weight votes by the agent's done/rollback record (default from
    /// MCP_HUB_CONSENSUS_QUALITY_WEIGHTING).
    pub quality_weighting: Option<OnOff>,
    /// full (default), compact or tiny.
    pub response_mode: Option<ConsensusMode>,
    /// When to store the decision as a blob: never, always, on_escalate, on_conflict.
    pub emit_blob_ref_policy: Option<EmitPolicyArg>,
    /// Deprecated: true = always, false = never; ignored when emit_blob_ref_policy is given.
    pub emit_blob_ref: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ResolveConsensusArgs {
    /// The caller.
    pub requesting_agent: String,
    /// What is being decided (free text, not unique).
    pub proposal_id: String,
    /// Inline votes.
    pub votes: Option<Vec<VoteArg>>,
    /// SHA-256 of a stored votes blob (a vote array or {votes:[...]}).
    pub votes_blob_hash: Option<String>,
    /// A blob-ref envelope naming the votes blob.
    pub votes_blob_ref: Option<String>,
    #[serde(flatten)]
    pub tuning: Tuning,
    pub auth_token: Option<String>,
}
tool_args!(ResolveConsensusArgs, caller = requesting_agent);

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ResolveFromContextArgs {
    /// The caller.
    pub requesting_agent: String,
    /// What is being decided (free text, not unique).
    pub proposal_id: String,
    /// The context entry holding the votes.
    pub context_id: Option<f64>,
    /// With context_key: the entry's owner (also checked against the entry found by id).
    pub context_agent_id: Option<String>,
    /// With context_agent_id: the entry's key.
    pub context_key: Option<String>,
    #[serde(flatten)]
    pub tuning: Tuning,
    pub auth_token: Option<String>,
}
tool_args!(ResolveFromContextArgs, caller = requesting_agent);

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ResolveFromMessageArgs {
    /// The caller (the message must be addressed to it or broadcast).
    pub requesting_agent: String,
    /// What is being decided (free text, not unique).
    pub proposal_id: String,
    /// The message holding the votes.
    pub message_id: f64,
    /// Refuse unless the message was sent by this agent.
    pub from_agent: Option<String>,
    #[serde(flatten)]
    pub tuning: Tuning,
    pub auth_token: Option<String>,
}
tool_args!(ResolveFromMessageArgs, caller = requesting_agent);

/// The votes of one evaluation before blob loading.
struct VoteInput {
    inline: Vec<Vote>,
    inline_invalid: usize,
    blob_hash: Option<String>,
}

/// Where context/message votes came from; `owner` may cast votes in its own name.
struct Binding {
    json: Value,
    owner: String,
}

fn invalid_blob_ref(tool: &str) -> ToolError {
    refusal(
        "INVALID_VOTES_BLOB_REF",
        &format!("{tool}_rejected"),
        format!(
            "{tool}: votes_blob_hash / votes_blob_ref do not name a blob (a 64-hex SHA-256, or a \
             blob-ref envelope with one; both must agree when both are given)"
        ),
    )
}

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

fn with_binding(error: ToolError, binding: Option<&Binding>) -> ToolError {
    match binding {
        Some(b) => error.with("source_binding", b.json.clone()),
        None => error,
    }
}

fn resolve_consensus(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: ResolveConsensusArgs,
) -> ToolResult {
    const TOOL: &str = "resolve_consensus";
    let blob_hash = consensus::resolve_blob_hash(
        args.votes_blob_hash.as_deref(),
        args.votes_blob_ref.as_deref(),
    )
    .map_err(|_| invalid_blob_ref(TOOL))?;
    let mut inline = Vec::new();
    let mut inline_invalid = 0;
    for vote in args.votes.unwrap_or_default() {
        let agent_id = vote.agent_id.trim();
        if agent_id.is_empty() {
            inline_invalid += 1;
            continue;
        }
        inline.push(Vote {
            agent_id: agent_id.to_string(),
            decision: match vote.decision {
                DecisionArg::Accept => Decision::Accept,
                DecisionArg::Reject => Decision::Reject,
                DecisionArg::Abstain => Decision::Abstain,
            },
            confidence: vote.confidence.filter(|c| c.is_finite()),
        });
    }
    let input = VoteInput {
        inline,
        inline_invalid,
        blob_hash,
    };
    evaluate_and_record(
        tx,
        ctx,
        TOOL,
        args.requesting_agent.trim(),
        &args.proposal_id,
        input,
        &args.tuning,
        None,
    )
}

/// Turns an extracted vote source into evaluation input.
fn input_from_extracted(tool: &str, extracted: ExtractedVotes) -> Result<VoteInput, ToolError> {
    Ok(match extracted {
        ExtractedVotes::BlobRef(hash) | ExtractedVotes::BlobHash(hash) => VoteInput {
            inline: Vec::new(),
            inline_invalid: 0,
            blob_hash: Some(
                consensus::resolve_blob_hash(Some(&hash), None)
                    .ok()
                    .flatten()
                    .ok_or_else(|| invalid_blob_ref(tool))?,
            ),
        },
        ExtractedVotes::InlineVotes { votes, invalid }
        | ExtractedVotes::InlineVotesObject { votes, invalid } => VoteInput {
            inline: votes,
            inline_invalid: invalid,
            blob_hash: None,
        },
    })
}

fn resolve_consensus_from_context(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: ResolveFromContextArgs,
) -> ToolResult {
    const TOOL: &str = "resolve_consensus_from_context";
    let rejected = format!("{TOOL}_rejected");
    let context_id = args
        .context_id
        .filter(|v| v.is_finite())
        .map(|v| v.floor() as i64);
    let agent = non_blank(args.context_agent_id.as_deref());
    let key = non_blank(args.context_key.as_deref());
    let by_id = match context_id {
        Some(id) if id > 0 => context_store::get(tx.db(), id)?,
        _ => None,
    };
    let row = match (by_id, agent, key) {
        (Some(row), _, _) => row,
        (None, Some(agent), Some(key)) => context_store::get_by_key(tx.db(), agent, key)?
            .ok_or_else(|| {
                refusal(
                    "CONTEXT_NOT_FOUND",
                    &rejected,
                    format!(
                        "{TOOL}: no context entry for agent {:?} and key {:?}; check the ids, or \
                         share the votes with share_context first",
                        prefix(agent, 80),
                        prefix(key, 80)
                    ),
                )
            })?,
        (None, _, _) if context_id.is_some() => {
            return Err(refusal(
                "CONTEXT_NOT_FOUND",
                &rejected,
                format!(
                    "{TOOL}: no context entry has id {}; pass an id from get_context, or \
                     context_agent_id + context_key",
                    context_id.unwrap_or_default()
                ),
            ));
        }
        (None, _, _) => {
            return Err(refusal(
                "CONTEXT_SOURCE_REQUIRED",
                &rejected,
                format!(
                    "{TOOL}: name the context entry holding the votes: context_id, or both \
                     context_agent_id and context_key"
                ),
            ));
        }
    };
    if let Some(agent) = agent
        && agent != row.agent_id
    {
        return Err(refusal(
            "CONTEXT_AGENT_MISMATCH",
            &rejected,
            format!(
                "{TOOL}: context {} belongs to {:?}, not context_agent_id {:?}",
                row.id,
                prefix(&row.agent_id, 80),
                prefix(agent, 80)
            ),
        ));
    }
    if let Some(key) = key
        && key != row.key
    {
        return Err(refusal(
            "CONTEXT_KEY_MISMATCH",
            &rejected,
            format!(
                "{TOOL}: context {} has key {:?}, not context_key {:?}",
                row.id,
                prefix(&row.key, 80),
                prefix(key, 80)
            ),
        ));
    }
    let Some(extracted) = consensus::extract_votes(&row.value, true) else {
        return Err(refusal(
            "UNSUPPORTED_CONTEXT_VOTES_SOURCE",
            &rejected,
            format!(
                "{TOOL}: context {} holds no votes; its value must be a vote array, \
                 {{\"votes\":[...]}}, {{\"votes_blob_hash\":\"...\"}} or a blob-ref envelope",
                row.id
            ),
        ));
    };
    let binding = Binding {
        json: json!({
            "kind": "context",
            "context_id": row.id,
            "context_agent_id": row.agent_id,
            "context_key": row.key,
            "source_kind": extracted.kind(),
            "source_format": if matches!(extracted, ExtractedVotes::BlobRef(_)) { "blob_ref" } else { "json" },
        }),
        owner: row.agent_id.clone(),
    };
    let input =
        input_from_extracted(TOOL, extracted).map_err(|e| with_binding(e, Some(&binding)))?;
    evaluate_and_record(
        tx,
        ctx,
        TOOL,
        args.requesting_agent.trim(),
        &args.proposal_id,
        input,
        &args.tuning,
        Some(&binding),
    )
}

fn resolve_consensus_from_message(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: ResolveFromMessageArgs,
) -> ToolResult {
    const TOOL: &str = "resolve_consensus_from_message";
    let rejected = format!("{TOOL}_rejected");
    let requesting_agent = args.requesting_agent.trim().to_string();
    let message_id = if args.message_id.is_finite() {
        args.message_id.floor() as i64
    } else {
        0
    };
    if message_id <= 0 {
        return Err(refusal(
            "INVALID_MESSAGE_ID",
            &rejected,
            format!("{TOOL}: message_id must be a positive message id from read_messages"),
        ));
    }
    let message = message_store::get(tx.db(), message_id)?
        .filter(|m| {
            m.to_agent.is_none() || m.to_agent.as_deref() == Some(requesting_agent.as_str())
        })
        .ok_or_else(|| {
            refusal(
                "MESSAGE_NOT_FOUND_OR_FORBIDDEN",
                &rejected,
                format!(
                    "{TOOL}: message {message_id} does not exist or is not addressed to {:?} \
                     (or broadcast)",
                    prefix(&requesting_agent, 80)
                ),
            )
        })?;
    message_store::mark_read(tx, &requesting_agent, &[message.id])?;
    if let Some(from) = non_blank(args.from_agent.as_deref())
        && from != message.from_agent
    {
        return Err(refusal(
            "MESSAGE_SENDER_MISMATCH",
            &rejected,
            format!(
                "{TOOL}: message {message_id} was sent by {:?}, not from_agent {:?}",
                prefix(&message.from_agent, 80),
                prefix(from, 80)
            ),
        ));
    }
    let (extracted, format) = match consensus::extract_votes(&message.content, true) {
        Some(extracted @ ExtractedVotes::BlobRef(_)) => (extracted, "blob_ref"),
        Some(extracted) => (extracted, "json"),
        None => {
            let metadata = if message.metadata.trim().is_empty() {
                "{}"
            } else {
                message.metadata.as_str()
            };
            match consensus::extract_votes(metadata, false) {
                Some(extracted) => (extracted, "metadata_json"),
                None => {
                    return Err(refusal(
                        "UNSUPPORTED_MESSAGE_VOTES_SOURCE",
                        &rejected,
                        format!(
                            "{TOOL}: message {message_id} holds no votes in its content or \
                             metadata; send a vote array, {{\"votes\":[...]}}, \
                             {{\"votes_blob_hash\":\"...\"}} or a blob-ref envelope"
                        ),
                    ));
                }
            }
        }
    };
    let binding = Binding {
        json: json!({
            "kind": "message",
            "message_id": message.id,
            "from_agent": message.from_agent,
            "to_agent": message.to_agent,
            "created_at": message.created_at,
            "source_kind": extracted.kind(),
            "source_format": format,
        }),
        owner: message.from_agent.clone(),
    };
    let input =
        input_from_extracted(TOOL, extracted).map_err(|e| with_binding(e, Some(&binding)))?;
    evaluate_and_record(
        tx,
        ctx,
        TOOL,
        &requesting_agent,
        &args.proposal_id,
        input,
        &args.tuning,
        Some(&binding),
    )
}

/// Agent ids listed in an error payload (at most 20).
fn listed(ids: &BTreeSet<String>) -> Value {
    json!(ids.iter().take(20).collect::<Vec<_>>())
}

#[allow(clippy::too_many_arguments)]
fn evaluate_and_record(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    tool: &'static str,
    requesting_agent: &str,
    proposal_id: &str,
    input: VoteInput,
    tuning: &Tuning,
    binding: Option<&Binding>,
) -> ToolResult {
    evaluate_inner(
        tx,
        ctx,
        tool,
        requesting_agent,
        proposal_id,
        input,
        tuning,
        binding,
    )
    .map_err(|e| with_binding(e, binding))
}

#[allow(clippy::too_many_arguments)]
fn evaluate_inner(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    tool: &'static str,
    requesting_agent: &str,
    proposal_id: &str,
    input: VoteInput,
    tuning: &Tuning,
    binding: Option<&Binding>,
) -> ToolResult {
    let config = ctx.config.clone();
    let rejected = format!("{tool}_rejected");
    if requesting_agent.is_empty() {
        return Err(ToolError::new(
            "AGENT_ID_REQUIRED",
            format!("{tool}: requesting_agent is blank; pass your registered agent id"),
        ));
    }
    let mut blob_votes: Vec<Vote> = Vec::new();
    let mut blob_invalid = 0;
    let mut blob_codec: Option<String> = None;
    let mut blob_payload_chars: Option<usize> = None;
    if let Some(hash) = &input.blob_hash {
        let Some(row) = blob_store::get_and_touch(tx, hash)? else {
            return Err(refusal(
                "VOTES_BLOB_NOT_FOUND",
                &rejected,
                format!(
                    "{tool}: no blob has hash {hash}; store the votes with store_protocol_blob first"
                ),
            ));
        };
        let decoded = codec::decode(&row.value);
        let Some(text) = decoded.value.filter(|_| decoded.integrity_ok) else {
            return Err(refusal(
                "VOTES_BLOB_INTEGRITY_FAILED",
                &rejected,
                format!(
                    "{tool}: the votes blob {hash} failed its integrity check (codec {}); store \
                     the votes again",
                    decoded.codec
                ),
            ));
        };
        let (votes, invalid) = consensus::parse_votes_document(&text).map_err(|e| match e {
            VotesDocError::InvalidJson => refusal(
                "VOTES_BLOB_INVALID_JSON",
                &rejected,
                format!("{tool}: the votes blob {hash} is not JSON"),
            ),
            VotesDocError::InvalidFormat => refusal(
                "VOTES_BLOB_INVALID_FORMAT",
                &rejected,
                format!(
                    "{tool}: the votes blob {hash} must be a vote array or an object with a \
                     votes array"
                ),
            ),
        })?;
        if votes.is_empty() {
            return Err(refusal(
                "VOTES_EMPTY",
                &rejected,
                format!(
                    "{tool}: the votes blob {hash} holds no valid vote (each needs agent_id and \
                     decision accept|reject|abstain)"
                ),
            ));
        }
        blob_votes = votes;
        blob_invalid = invalid;
        blob_codec = Some(decoded.codec);
        blob_payload_chars = Some(char_len(&text));
    }
    let blob_count = blob_votes.len();
    let inline_count = input.inline.len();
    let mut combined = blob_votes;
    combined.extend(input.inline);
    if combined.is_empty() {
        return Err(refusal(
            "VOTES_EMPTY",
            &rejected,
            format!(
                "{tool}: there is no valid vote to evaluate; pass votes (agent_id, decision \
                 accept|reject|abstain, confidence) or a votes blob"
            ),
        ));
    }
    let max = config.max_consensus_votes;
    if combined.len() > max {
        return Err(refusal(
            "VOTES_TOO_LARGE",
            &rejected,
            format!(
                "{tool}: {} votes is more than the limit of {max}; split the proposal or \
                 raise MCP_HUB_MAX_CONSENSUS_VOTES",
                combined.len()
            ),
        )
        .with("max_votes", max));
    }
    let voters: BTreeSet<String> = combined.iter().map(|v| v.agent_id.clone()).collect();
    let mut unregistered = BTreeSet::new();
    for voter in &voters {
        if agent_store::get(tx.db(), voter)?.is_none() {
            unregistered.insert(voter.clone());
        }
    }
    if !unregistered.is_empty() {
        return Err(refusal(
            "VOTER_NOT_REGISTERED",
            &rejected,
            format!(
                "{tool}: {} voter(s) are not registered agents; register them with \
                 register_agent or remove their votes",
                unregistered.len()
            ),
        )
        .with("agent_ids", listed(&unregistered)));
    }
    let foreign: BTreeSet<String> = voters
        .iter()
        .filter(|v| {
            v.as_str() != requesting_agent && Some(v.as_str()) != binding.map(|b| b.owner.as_str())
        })
        .cloned()
        .collect();
    if !foreign.is_empty() {
        let why = "votes in other agents' names must come from those agents' own messages \
                   (resolve_consensus_from_message) or context entries \
                   (resolve_consensus_from_context)";
        match config.auth_mode {
            AuthMode::Enforce => {
                return Err(refusal(
                    "VOTE_NOT_AUTHORIZED",
                    &rejected,
                    format!(
                        "{tool}: {} vote(s) are cast in the name of agents other than {:?} \
                         without a source they own; {why}",
                        foreign.len(),
                        prefix(requesting_agent, 80)
                    ),
                )
                .with("agent_ids", listed(&foreign)));
            }
            AuthMode::Warn => ctx.warn(format!(
                "[vote_auth_warn] {tool}: {} vote(s) name other agents without a source they \
                 own; this will be refused once MCP_HUB_AUTH_MODE=enforce ({why})",
                foreign.len()
            )),
            AuthMode::Observe => {}
        }
    }

    let quality_weighting = match tuning.quality_weighting {
        Some(OnOff::On) => true,
        Some(OnOff::Off) => false,
        None => config.consensus_quality_weighting,
    };
    let params = Params::from_args(
        tuning.disagreement_threshold,
        tuning.min_non_abstain_votes,
        tuning.token_budget_cap,
        tuning.dedupe_by_agent,
        quality_weighting,
    );
    let mut lookup_error = None;
    let evaluation = {
        let db = tx.db();
        consensus::evaluate(
            &combined,
            input.inline_invalid + blob_invalid,
            &params,
            |agent| match consensus_store::quality_counts(db, agent) {
                Ok((completed, rollbacks)) => consensus::quality_weight(completed, rollbacks),
                Err(error) => {
                    lookup_error = Some(error);
                    1.0
                }
            },
        )
    };
    if let Some(error) = lookup_error {
        return Err(error.into());
    }
    // Normalised like canonical JSON (1.0 → 1), so the response, the persisted row and the
    // decision blob carry identical numbers.
    let stats = normalize(&evaluation.stats_json());
    let reasons = json!(evaluation.reasons);
    let decision = consensus_store::insert_decision(
        tx,
        &NewDecision {
            proposal_id: proposal_id.to_string(),
            requesting_agent: requesting_agent.to_string(),
            outcome: evaluation.outcome.as_str().to_string(),
            stats_json: canonical(&stats),
            reasons_json: reasons.to_string(),
        },
    )?;
    let vote_source = json!({
        "inline_votes": inline_count,
        "blob_votes": blob_count,
        "blob_hash": input.blob_hash,
        "blob_codec": blob_codec,
        "blob_payload_chars": blob_payload_chars,
        "dedupe_by_agent": params.dedupe_by_agent,
        "quality_weighting": if quality_weighting { "on" } else { "off" },
    });
    let policy_choice = emit_policy(tuning);
    let decision_blob_ref = if policy_choice.should_emit(&evaluation) {
        Some(emit_decision_blob(
            tx,
            ctx,
            &decision,
            &evaluation,
            &stats,
            &vote_source,
            policy_choice,
        )?)
    } else {
        None
    };
    ctx.log(
        tool,
        format!(
            "proposal={} outcome={} wa={} wr={} uncertainty={} decision_id={} votes={}",
            prefix(proposal_id, 80),
            evaluation.outcome.as_str(),
            round3(evaluation.weighted_accept),
            round3(evaluation.weighted_reject),
            round3(evaluation.uncertainty),
            decision.id,
            evaluation.evaluated_vote_count
        ),
    );
    let emitted = decision_blob_ref.is_some();
    let mut body = match tuning.response_mode.unwrap_or_default() {
        ConsensusMode::Full | ConsensusMode::Compact => {
            let mut body = json!({
                "success": true,
                "decision_id": decision.id,
                "proposal_id": proposal_id,
                "outcome": evaluation.outcome.as_str(),
                "stats": stats,
                "vote_source": vote_source,
                "emit_blob_ref_policy": policy_choice.as_str(),
                "decision_blob_emitted": emitted,
                "decision_blob_ref": decision_blob_ref,
                "reasons": reasons,
            });
            if tuning.response_mode == Some(ConsensusMode::Compact) {
                body["reasons"] = json!(evaluation.reasons.iter().take(3).collect::<Vec<_>>());
                body["reasons_count"] = json!(evaluation.reasons.len());
            }
            body
        }
        ConsensusMode::Tiny => json!({
            "success": true,
            "decision_id": decision.id,
            "proposal_id": proposal_id,
            "outcome": evaluation.outcome.as_str(),
            "stats": {
                "disagreement_ratio": stats["disagreement_ratio"],
                "uncertainty": stats["uncertainty"],
                "non_abstain_count": stats["non_abstain_count"],
                "estimated_token_cost": stats["estimated_token_cost"],
            },
            "reasons_count": evaluation.reasons.len(),
            "vote_source": {
                "inline_votes": inline_count,
                "blob_votes": blob_count,
                "dedupe_by_agent": params.dedupe_by_agent,
            },
            "emit_blob_ref_policy": policy_choice.as_str(),
            "decision_blob_emitted": emitted,
            "decision_blob_ref": decision_blob_ref,
        }),
    };
    if let Some(binding) = binding {
        body["source_binding"] = binding.json.clone();
    }
    Ok(body)
}

/// Stores the decision as a lossless_auto blob and returns its `decision_blob_ref`.
fn emit_decision_blob(
    tx: &mut WriteTx<'_>,
    ctx: &OpCtx,
    decision: &DecisionRow,
    evaluation: &Evaluation,
    stats: &Value,
    vote_source: &Value,
    policy_choice: EmitPolicy,
) -> Result<Value, ToolError> {
    let payload = canonical(&json!({
        "proposal_id": decision.proposal_id,
        "outcome": decision.outcome,
        "reasons": evaluation.reasons,
        "stats": stats,
        "vote_source": vote_source,
        "created_at": decision.created_at,
        "decision_id": decision.id,
        "emit_blob_ref_policy": policy_choice.as_str(),
        "conflict_detected": evaluation.conflict_detected(),
    }));
    let compressed = codec::compress(Mode::LosslessAuto, &payload, &policy(&ctx.config, None));
    let hash = sha256_hex(&compressed.stored);
    let (_, created) = blob_store::put(tx, &hash, &compressed.stored)?;
    Ok(json!({
        "hash": hash,
        "created": created,
        "payload_chars": compressed.stored_chars,
        "codec": compressed.codec,
        "gain_pct": compressed.gain_pct,
    }))
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListConsensusDecisionsArgs {
    /// The caller (optional; logged when given).
    pub requesting_agent: Option<String>,
    /// Filter: decisions of this proposal.
    pub proposal_id: Option<String>,
    /// Page size, 1-500 (default 100).
    pub limit: Option<f64>,
    /// Rows to skip (default 0).
    pub offset: Option<f64>,
    /// full (default), compact or tiny.
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
    let limit = int_arg(args.limit, 100, 1, 500);
    let offset = int_arg(args.offset, 0, 0, i64::MAX);
    let proposal = args.proposal_id.as_deref().filter(|p| !p.is_empty());
    let rows = consensus_store::list_decisions(db, proposal, limit, offset)?;
    if ctx.caller.agent_id().is_some() {
        ctx.log(
            "list_consensus_decisions",
            format!(
                "proposal={} count={} limit={limit} offset={offset}",
                proposal.map(|p| prefix(p, 80)).unwrap_or("*"),
                rows.len()
            ),
        );
    }
    let mode = args.response_mode.unwrap_or_default();
    let decisions: Vec<Value> = rows
        .iter()
        .map(|row| match mode {
            ConsensusMode::Full => json!({
                "id": row.id,
                "proposal_id": row.proposal_id,
                "requesting_agent": row.requesting_agent,
                "outcome": row.outcome,
                "stats_json": row.stats_json,
                "reasons_json": row.reasons_json,
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
        })
        .collect();
    Ok(json!({"success": true, "decisions": decisions}))
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
