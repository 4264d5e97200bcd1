//! Evaluating one resolution's votes and recording it: the tally (`crate::consensus`), the
//! decision row with each counted vote's source, the quality-weight bookkeeping and the
//! optional decision blob. Callers in `mod.rs` gather the votes; this file only counts them.

use serde_json::{Value, json};

use super::super::blobs::policy;
use super::{
    CountedVote, DecisionBlobRef, Origin, Resolved, SourceBinding, Tally, VoteInput, VoteSource,
    check_voters, load_blob_votes, with_binding,
};
use crate::consensus::{self, EmitPolicy, Evaluation, Params, Vote};
use crate::domain::ballot::{Provenance, Source};
use crate::domain::text::prefix;
use crate::protocol::canonical::canonical;
use crate::protocol::codec::{self, Mode};
use crate::protocol::{round3, sha256_hex};
use crate::service::{Ctx, Refusal};
use crate::store::WriteTx;
use crate::store::blobs as blob_store;
use crate::store::consensus::{self as consensus_store, DecisionRow, NewDecision};

pub(super) fn evaluate_and_record(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    tool: &'static str,
    proposal_id: &str,
    input: VoteInput,
    tally: &Tally,
    binding: Option<SourceBinding>,
) -> Result<Resolved, Refusal> {
    match evaluate_inner(tx, ctx, tool, proposal_id, input, tally) {
        Ok(recorded) => Ok(Resolved {
            decision: recorded.decision,
            evaluation: recorded.evaluation,
            vote_source: recorded.vote_source,
            emit: tally.emit,
            decision_blob: recorded.decision_blob,
            binding,
            votes: recorded.votes,
            missing_voters: None,
        }),
        Err(error) => Err(with_binding(error, binding.as_ref())),
    }
}

struct Recorded {
    decision: DecisionRow,
    evaluation: Evaluation,
    vote_source: VoteSource,
    decision_blob: Option<DecisionBlobRef>,
    votes: Vec<CountedVote>,
}

/// One provenance per vote of `combined` (blob votes, then inline votes).
fn provenance_of(
    origin: Origin,
    caller: &str,
    blob: Option<(&str, usize)>,
    inline: usize,
) -> Vec<Provenance> {
    let own = |source: Source| Provenance {
        source,
        author: caller.to_string(),
    };
    match origin {
        Origin::Call => {
            let mut all = Vec::new();
            if let Some((hash, count)) = blob {
                all.resize(count, own(Source::Blob(hash.to_string())));
            }
            all.resize(all.len() + inline, own(Source::Call));
            all
        }
        Origin::Row(row) => vec![row; blob.map_or(0, |(_, count)| count) + inline],
        Origin::Ballot(each) => each,
    }
}

/// The counted votes (after dedupe) with their weights and sources.
fn counted_votes(
    combined: &[Vote],
    provenance: &[Provenance],
    evaluation: &Evaluation,
) -> Vec<CountedVote> {
    evaluation
        .counted
        .iter()
        .zip(&evaluation.quality_weights)
        .map(|(index, quality)| {
            let (vote, origin) = (&combined[*index], &provenance[*index]);
            CountedVote {
                agent_id: vote.agent_id.clone(),
                decision: vote.decision.as_str(),
                confidence: vote.confidence,
                weight: round3(vote.effective_confidence() * quality),
                source: origin.source.to_string(),
                proven: origin.proves(vote),
            }
        })
        .collect()
}

fn evaluate_inner(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    tool: &'static str,
    proposal_id: &str,
    input: VoteInput,
    tally: &Tally,
) -> Result<Recorded, Refusal> {
    let config = ctx.config.clone();
    let rejected = format!("{tool}_rejected");
    let requesting_agent = ctx.agent().to_string();
    if requesting_agent.is_empty() {
        return Err(Refusal::new(
            "AGENT_ID_REQUIRED",
            format!("{tool}: requesting_agent is blank; pass your registered agent id"),
        ));
    }
    let blob = match &input.blob_hash {
        Some(hash) => Some(load_blob_votes(tx, tool, hash, None)?),
        None => None,
    };
    let inline_count = input.inline.len();
    let (mut combined, blob_invalid) = match &blob {
        Some(blob) => (blob.votes.clone(), blob.invalid),
        None => (Vec::new(), 0),
    };
    let blob_count = combined.len();
    combined.extend(input.inline);
    if combined.is_empty() {
        return Err(Refusal::rejected(
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
        return Err(Refusal::rejected(
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
    let provenance = provenance_of(
        input.origin,
        &requesting_agent,
        input.blob_hash.as_deref().zip(Some(blob_count)),
        inline_count,
    );
    check_voters(tx, ctx, tool, &combined, &provenance)?;

    let quality_weighting = tally
        .quality_weighting
        .unwrap_or(config.consensus_quality_weighting);
    let params = Params::from_args(
        tally.disagreement_threshold,
        tally.min_non_abstain_votes,
        tally.token_budget_cap,
        tally.dedupe_by_agent,
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
    let stats = evaluation.stats();
    let votes = counted_votes(&combined, &provenance, &evaluation);
    let decision = consensus_store::insert_decision(
        tx,
        &NewDecision {
            proposal_id: proposal_id.to_string(),
            requesting_agent: requesting_agent.clone(),
            outcome: evaluation.outcome.as_str().to_string(),
            stats_json: canonical(&stats),
            reasons_json: json!(evaluation.reasons).to_string(),
            votes_json: json!(votes).to_string(),
        },
    )?;
    let vote_source = VoteSource {
        inline_votes: inline_count,
        blob_votes: blob_count,
        blob_hash: input.blob_hash,
        blob_codec: blob.as_ref().map(|b| b.codec.clone()),
        blob_payload_chars: blob.as_ref().map(|b| b.payload_chars),
        dedupe_by_agent: params.dedupe_by_agent,
        quality_weighting: if quality_weighting { "on" } else { "off" },
    };
    let decision_blob = if tally.emit.should_emit(&evaluation) {
        Some(emit_decision_blob(
            tx,
            ctx,
            &decision,
            &evaluation,
            &stats,
            &vote_source,
            tally.emit,
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
    Ok(Recorded {
        decision,
        evaluation,
        vote_source,
        decision_blob,
        votes,
    })
}

/// Stores the decision as a lossless_auto blob.
fn emit_decision_blob(
    tx: &mut WriteTx<'_>,
    ctx: &Ctx,
    decision: &DecisionRow,
    evaluation: &Evaluation,
    stats: &Value,
    vote_source: &VoteSource,
    emit: EmitPolicy,
) -> Result<DecisionBlobRef, Refusal> {
    let payload = canonical(&json!({
        "proposal_id": decision.proposal_id,
        "outcome": decision.outcome,
        "reasons": evaluation.reasons,
        "stats": stats,
        "vote_source": vote_source,
        "created_at": decision.created_at,
        "decision_id": decision.id,
        "emit_blob_ref_policy": emit.as_str(),
        "conflict_detected": evaluation.conflict_detected(),
    }));
    let compressed = codec::compress(Mode::LosslessAuto, &payload, &policy(&ctx.config, None));
    let hash = sha256_hex(&compressed.stored);
    let (_, created) = blob_store::put(tx, &hash, &compressed.stored)?;
    Ok(DecisionBlobRef {
        hash,
        created,
        payload_chars: compressed.stored_chars,
        codec: compressed.codec.to_string(),
        gain_pct: compressed.gain_pct,
    })
}
