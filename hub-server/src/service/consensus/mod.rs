//! Consensus: gathering the votes of one resolution (inline, from a votes blob, a context
//! entry, a message, or a ballot — `ballot.rs`), the voter rules, persisting the decision
//! with each counted vote's source, and emitting the decision blob; and listing decisions.
//! The tally itself is `crate::consensus` (pure); response modes are `tools::consensus`.
//! Must not touch SQL, and calls the agent-quality store verb
//! (`store::consensus::quality_counts`) by its name only — that SQL is moving elsewhere.
//!
//! Voter rules: every vote must name a registered agent, and in enforce auth mode a vote may
//! name another agent than the caller only when it comes from that agent's own context entry
//! or message (warn mode: a warning). Ballots refuse such a vote in every mode.

mod ballot;
mod record;

use record::evaluate_and_record;

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Value, json};

use super::{Ctx, Refusal};
use crate::config::AuthMode;
use crate::consensus::{self, EmitPolicy, Evaluation, ExtractedVotes, Vote, VotesDocError};
use crate::domain::ballot::{Provenance, Source, VoteRef};
use crate::domain::text::prefix;
use crate::protocol::char_len;
use crate::protocol::codec;
use crate::store::agents as agent_store;
use crate::store::blobs as blob_store;
use crate::store::consensus::{self as consensus_store, DecisionRow};
use crate::store::context as context_store;
use crate::store::messages as message_store;
use crate::store::{Db, WriteTx};

/// How a resolution is tallied and whether its decision becomes a blob.
#[derive(Debug, Clone, Copy)]
pub struct Tally {
    pub disagreement_threshold: Option<f64>,
    pub min_non_abstain_votes: Option<f64>,
    pub token_budget_cap: Option<f64>,
    pub dedupe_by_agent: Option<bool>,
    /// `None`: the hub's default (MCP_HUB_CONSENSUS_QUALITY_WEIGHTING).
    pub quality_weighting: Option<bool>,
    pub emit: EmitPolicy,
}

/// resolve_consensus: inline votes and/or a votes blob.
pub struct Resolve {
    pub proposal_id: String,
    /// Inline votes that named an agent.
    pub votes: Vec<Vote>,
    /// Inline votes that did not.
    pub invalid_votes: usize,
    pub votes_blob_hash: Option<String>,
    pub votes_blob_ref: Option<String>,
    pub tally: Tally,
}

/// resolve_consensus_from_context: the votes of one context entry, or a ballot when
/// `agent_ids` or `vote_refs` is given.
pub struct ResolveFromContext {
    pub proposal_id: String,
    pub context_id: Option<i64>,
    pub context_agent_id: Option<String>,
    /// One entry's key; in a ballot the key every voter shares its vote under.
    pub context_key: Option<String>,
    /// Ballot: the voters, each voting by its own entry under the ballot key.
    pub agent_ids: Option<Vec<String>>,
    /// Ballot: more votes as `context_id:N` / `message_id:N`, each its row author's.
    pub vote_refs: Option<Vec<String>>,
    /// Ballot: refuse with fewer voters than this.
    pub min_votes: Option<f64>,
    pub tally: Tally,
}

/// resolve_consensus_from_message: the votes of one message addressed to the caller.
pub struct ResolveFromMessage {
    pub proposal_id: String,
    pub message_id: i64,
    /// Refuse unless the message was sent by this agent.
    pub from_agent: Option<String>,
    pub tally: Tally,
}

/// Where context, message or ballot votes came from.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SourceBinding {
    Context {
        context_id: i64,
        context_agent_id: String,
        context_key: String,
        source_kind: &'static str,
        source_format: &'static str,
    },
    Message {
        message_id: i64,
        from_agent: String,
        to_agent: Option<String>,
        created_at: i64,
        source_kind: &'static str,
        source_format: &'static str,
    },
    /// One vote per voter, each proven by a row the voter wrote.
    Ballot {
        /// `None` when only `vote_refs` were given.
        context_key: Option<String>,
        listed_voters: usize,
        vote_refs: usize,
    },
}

impl SourceBinding {
    pub fn to_json(&self) -> Value {
        json!(self)
    }
}

/// Where the evaluated votes came from, as responses and decision blobs show it.
#[derive(Debug, Clone, Serialize)]
pub struct VoteSource {
    pub inline_votes: usize,
    pub blob_votes: usize,
    pub blob_hash: Option<String>,
    pub blob_codec: Option<String>,
    pub blob_payload_chars: Option<usize>,
    pub dedupe_by_agent: bool,
    /// `on` or `off`.
    pub quality_weighting: &'static str,
}

/// The stored decision blob.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionBlobRef {
    pub hash: String,
    pub created: bool,
    pub payload_chars: usize,
    pub codec: String,
    pub gain_pct: f64,
}

/// One counted vote as persisted with its decision (and shown by ballots): the source it
/// was proven by, and whether its voter wrote that source (or is the caller).
#[derive(Debug, Clone, Serialize)]
pub struct CountedVote {
    pub agent_id: String,
    pub decision: &'static str,
    pub confidence: Option<f64>,
    /// Effective confidence × quality weight, round3.
    pub weight: f64,
    /// `call`, `blob:<hash>`, `context_id:N` or `message_id:N`.
    pub source: String,
    pub proven: bool,
}

/// A persisted decision and how it was reached.
pub struct Resolved {
    pub decision: DecisionRow,
    pub evaluation: Evaluation,
    pub vote_source: VoteSource,
    pub emit: EmitPolicy,
    pub decision_blob: Option<DecisionBlobRef>,
    pub binding: Option<SourceBinding>,
    pub votes: Vec<CountedVote>,
    /// Ballots only: listed voters without a vote.
    pub missing_voters: Option<Vec<String>>,
}

/// Who wrote the votes of one evaluation.
enum Origin {
    /// The call's own inline votes and votes blob.
    Call,
    /// Every vote came through one context entry or message.
    Row(Provenance),
    /// A ballot: one provenance per inline vote.
    Ballot(Vec<Provenance>),
}

/// The votes of one evaluation before the blob is loaded.
struct VoteInput {
    inline: Vec<Vote>,
    inline_invalid: usize,
    blob_hash: Option<String>,
    origin: Origin,
}

fn invalid_blob_ref(tool: &str) -> Refusal {
    Refusal::rejected(
        "INVALID_VOTES_BLOB_REF",
        &format!("{tool}_rejected"),
        format!(
            "{tool}: votes_blob_hash / votes_blob_ref do not name a blob (a 64-hex SHA-256, or a \
             blob-ref envelope with one; both must agree when both are given)"
        ),
    )
}

fn with_binding(error: Refusal, binding: Option<&SourceBinding>) -> Refusal {
    match binding {
        Some(b) => error.with("source_binding", b.to_json()),
        None => error,
    }
}

pub fn resolve(tx: &mut WriteTx<'_>, ctx: &mut Ctx, command: Resolve) -> Result<Resolved, Refusal> {
    const TOOL: &str = "resolve_consensus";
    let blob_hash = consensus::resolve_blob_hash(
        command.votes_blob_hash.as_deref(),
        command.votes_blob_ref.as_deref(),
    )
    .map_err(|_| invalid_blob_ref(TOOL))?;
    let input = VoteInput {
        inline: command.votes,
        inline_invalid: command.invalid_votes,
        blob_hash,
        origin: Origin::Call,
    };
    evaluate_and_record(
        tx,
        ctx,
        TOOL,
        &command.proposal_id,
        input,
        &command.tally,
        None,
    )
}

/// Turns the vote source extracted from one row into evaluation input.
fn input_from_extracted(
    tool: &str,
    extracted: ExtractedVotes,
    row: Provenance,
) -> Result<VoteInput, Refusal> {
    let origin = Origin::Row(row);
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
            origin,
        },
        ExtractedVotes::InlineVotes { votes, invalid }
        | ExtractedVotes::InlineVotesObject { votes, invalid } => VoteInput {
            inline: votes,
            inline_invalid: invalid,
            blob_hash: None,
            origin,
        },
    })
}

/// Evaluates the votes of a context entry or message (what it holds, and the row and its
/// author), bound to their source.
fn resolve_bound(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    tool: &'static str,
    proposal_id: &str,
    (extracted, row): (ExtractedVotes, Provenance),
    binding: SourceBinding,
    tally: &Tally,
) -> Result<Resolved, Refusal> {
    let input =
        input_from_extracted(tool, extracted, row).map_err(|e| with_binding(e, Some(&binding)))?;
    evaluate_and_record(tx, ctx, tool, proposal_id, input, tally, Some(binding))
}

pub fn resolve_from_context(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    command: ResolveFromContext,
) -> Result<Resolved, Refusal> {
    const TOOL: &str = "resolve_consensus_from_context";
    if command.agent_ids.is_some() || command.vote_refs.is_some() {
        return ballot::resolve(tx, ctx, command);
    }
    let rejected = format!("{TOOL}_rejected");
    if command.min_votes.is_some() {
        return Err(Refusal::rejected(
            "INVALID_ARGUMENT",
            &rejected,
            format!(
                "{TOOL}: min_votes is a ballot quorum; pass it with agent_ids or vote_refs, \
                 or use min_non_abstain_votes for a single entry"
            ),
        ));
    }
    let context_id = command.context_id;
    let agent = command.context_agent_id.as_deref();
    let key = command.context_key.as_deref();
    let by_id = match context_id {
        Some(id) if id > 0 => context_store::get(tx.db(), id)?,
        _ => None,
    };
    let row = match (by_id, agent, key) {
        (Some(row), _, _) => row,
        (None, Some(agent), Some(key)) => context_store::get_by_key(tx.db(), agent, key)?
            .ok_or_else(|| {
                Refusal::rejected(
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
            return Err(Refusal::rejected(
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
            return Err(Refusal::rejected(
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
        return Err(Refusal::rejected(
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
        return Err(Refusal::rejected(
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
        return Err(Refusal::rejected(
            "UNSUPPORTED_CONTEXT_VOTES_SOURCE",
            &rejected,
            format!(
                "{TOOL}: context {} holds no votes; its value must be a vote array, \
                 {{\"votes\":[...]}}, {{\"votes_blob_hash\":\"...\"}} or a blob-ref envelope",
                row.id
            ),
        ));
    };
    let written_by = Provenance {
        source: Source::Row(VoteRef::Context(row.id)),
        author: row.agent_id.clone(),
    };
    let binding = SourceBinding::Context {
        context_id: row.id,
        context_agent_id: row.agent_id,
        context_key: row.key,
        source_kind: extracted.kind(),
        source_format: if matches!(extracted, ExtractedVotes::BlobRef(_)) {
            "blob_ref"
        } else {
            "json"
        },
    };
    let proposal_id = command.proposal_id;
    resolve_bound(
        tx,
        ctx,
        TOOL,
        &proposal_id,
        (extracted, written_by),
        binding,
        &command.tally,
    )
}

pub fn resolve_from_message(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    command: ResolveFromMessage,
) -> Result<Resolved, Refusal> {
    const TOOL: &str = "resolve_consensus_from_message";
    let rejected = format!("{TOOL}_rejected");
    let reader = ctx.agent().to_string();
    let message_id = command.message_id;
    if message_id <= 0 {
        return Err(Refusal::rejected(
            "INVALID_MESSAGE_ID",
            &rejected,
            format!("{TOOL}: message_id must be a positive message id from read_messages"),
        ));
    }
    let message = message_store::get(tx.db(), message_id)?
        .filter(|m| m.to_agent.is_none() || m.to_agent.as_deref() == Some(reader.as_str()))
        .ok_or_else(|| {
            Refusal::rejected(
                "MESSAGE_NOT_FOUND_OR_FORBIDDEN",
                &rejected,
                format!(
                    "{TOOL}: message {message_id} does not exist or is not addressed to {:?} \
                     (or broadcast)",
                    prefix(&reader, 80)
                ),
            )
        })?;
    message_store::mark_read(tx, &reader, &[message.id])?;
    if let Some(from) = command.from_agent.as_deref()
        && from != message.from_agent
    {
        return Err(Refusal::rejected(
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
                    return Err(Refusal::rejected(
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
    let written_by = Provenance {
        source: Source::Row(VoteRef::Message(message.id)),
        author: message.from_agent.clone(),
    };
    let binding = SourceBinding::Message {
        message_id: message.id,
        from_agent: message.from_agent,
        to_agent: message.to_agent,
        created_at: message.created_at,
        source_kind: extracted.kind(),
        source_format: format,
    };
    let proposal_id = command.proposal_id;
    resolve_bound(
        tx,
        ctx,
        TOOL,
        &proposal_id,
        (extracted, written_by),
        binding,
        &command.tally,
    )
}

/// Agent ids listed in an error payload (at most 20).
fn listed(ids: &BTreeSet<String>) -> Value {
    json!(ids.iter().take(20).collect::<Vec<_>>())
}

/// The votes of a stored votes blob, with the blob's codec and decoded size.
struct BlobVotes {
    votes: Vec<Vote>,
    invalid: usize,
    codec: String,
    payload_chars: usize,
}

/// `lone_vote_author`: the blob was named from that voter's own row, so one decision object
/// counts as its vote.
fn load_blob_votes(
    tx: &mut WriteTx<'_>,
    tool: &str,
    hash: &str,
    lone_vote_author: Option<&str>,
) -> Result<BlobVotes, Refusal> {
    let rejected = format!("{tool}_rejected");
    let Some(row) = blob_store::get_and_touch(tx, hash)? else {
        return Err(Refusal::rejected(
            "VOTES_BLOB_NOT_FOUND",
            &rejected,
            format!(
                "{tool}: no blob has hash {hash}; store the votes with store_protocol_blob first"
            ),
        ));
    };
    let decoded = codec::decode(&row.value);
    let Some(text) = decoded.value.filter(|_| decoded.integrity_ok) else {
        return Err(Refusal::rejected(
            "VOTES_BLOB_INTEGRITY_FAILED",
            &rejected,
            format!(
                "{tool}: the votes blob {hash} failed its integrity check (codec {}); store \
                 the votes again",
                decoded.codec
            ),
        ));
    };
    let (votes, invalid) =
        consensus::parse_votes_document(&text, lone_vote_author).map_err(|e| match e {
            VotesDocError::InvalidJson => Refusal::rejected(
                "VOTES_BLOB_INVALID_JSON",
                &rejected,
                format!("{tool}: the votes blob {hash} is not JSON"),
            ),
            VotesDocError::InvalidFormat => Refusal::rejected(
                "VOTES_BLOB_INVALID_FORMAT",
                &rejected,
                format!(
                    "{tool}: the votes blob {hash} must be a vote array or an object with a \
                 votes array"
                ),
            ),
        })?;
    if votes.is_empty() {
        return Err(Refusal::rejected(
            "VOTES_EMPTY",
            &rejected,
            format!(
                "{tool}: the votes blob {hash} holds no valid vote (each needs agent_id and \
                 decision accept|reject|abstain)"
            ),
        ));
    }
    Ok(BlobVotes {
        votes,
        invalid,
        codec: decoded.codec,
        payload_chars: char_len(&text),
    })
}

/// Every voter is registered, and (enforce) votes in other agents' names come from a
/// source those agents wrote (`provenance`: one per vote).
fn check_voters(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    tool: &str,
    votes: &[Vote],
    provenance: &[Provenance],
) -> Result<(), Refusal> {
    let rejected = format!("{tool}_rejected");
    let requesting_agent = ctx.agent().to_string();
    let voters: BTreeSet<String> = votes.iter().map(|v| v.agent_id.clone()).collect();
    let mut unregistered = BTreeSet::new();
    for voter in &voters {
        if agent_store::get(tx.db(), voter)?.is_none() {
            unregistered.insert(voter.clone());
        }
    }
    if !unregistered.is_empty() {
        return Err(Refusal::rejected(
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
    let foreign: BTreeSet<String> = votes
        .iter()
        .zip(provenance)
        .filter(|(vote, origin)| vote.agent_id != requesting_agent && !origin.proves(vote))
        .map(|(vote, _)| vote.agent_id.clone())
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    let why = "votes in other agents' names must come from those agents' own context \
               entries or messages: resolve_consensus_from_context with agent_ids (a ballot), \
               or resolve_consensus_from_message";
    match ctx.config.auth_mode {
        AuthMode::Enforce => {
            return Err(Refusal::rejected(
                "VOTE_NOT_AUTHORIZED",
                &rejected,
                format!(
                    "{tool}: {} vote(s) are cast in the name of agents other than {:?} \
                     without a source they own; {why}",
                    foreign.len(),
                    prefix(&requesting_agent, 80)
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
    Ok(())
}

/// list_consensus_decisions: newest first.
pub struct ListDecisions {
    pub proposal_id: Option<String>,
    /// 1-500.
    pub limit: i64,
    pub offset: i64,
}

pub fn list(db: &Db, ctx: &mut Ctx, query: ListDecisions) -> Result<Vec<DecisionRow>, Refusal> {
    let proposal = query.proposal_id.as_deref();
    let rows = consensus_store::list_decisions(db, proposal, query.limit, query.offset)?;
    // Anonymous listings (the caller field is optional) leave no activity row.
    if ctx.caller.agent_id().is_some() {
        ctx.log(
            "list_consensus_decisions",
            format!(
                "proposal={} count={} limit={} offset={}",
                proposal.map(|p| prefix(p, 80)).unwrap_or("*"),
                rows.len(),
                query.limit,
                query.offset
            ),
        );
    }
    Ok(rows)
}
