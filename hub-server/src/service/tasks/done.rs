//! What update_task and release_task_claim share around finishing a task: evidence
//! normalisation and its per-call cap, running the done gate with the facts it needs, the
//! quality bookkeeping of a status change, and the outcome both return.
//!
//! The gate's rules are `domain::done_gate`; this file only gathers facts and turns a
//! failure into the wire refusal. Must not change task rows.

use super::Refusal;
use crate::domain::done_gate::{
    self, DoneClaim, GateConfig, GateFailure, GateInput, GatePass, normalize_evidence,
};
use crate::domain::task_rules;
use crate::service::Ctx;
use crate::store::tasks::{self as task_store, TaskRow};
use crate::store::{Db, StoreResult, WriteTx, agents as agent_store, quality};

/// A task after update_task or release_task_claim, with what the gate and the evidence
/// store reported.
#[derive(Debug, Clone)]
pub struct DoneOutcome {
    pub task: TaskRow,
    /// Only when the call marked the task done.
    pub gate: Option<GatePass>,
    pub evidence_added: usize,
    pub evidence_total: i64,
}

/// The normalised evidence refs of a call, or `EVIDENCE_TOO_MANY` logged as
/// `<tool>_evidence_failed`.
pub fn evidence_or_refuse(
    ctx: &Ctx,
    tool: &str,
    task_id: i64,
    refs: &[String],
) -> Result<Vec<String>, Refusal> {
    let refs = normalize_evidence(refs, ctx.config.max_evidence_ref_chars);
    let max = ctx.config.max_evidence_refs_per_call;
    if refs.len() > max {
        let message = format!(
            "{tool}: {} evidence refs in one call, the maximum is {max}; send fewer or \
             summarize them",
            refs.len()
        );
        return Err(Refusal::new("EVIDENCE_TOO_MANY", message.clone())
            .with("max_evidence_refs_per_call", max)
            .logged(
                format!("{tool}_evidence_failed"),
                format!("task_id={task_id} {message} (EVIDENCE_TOO_MANY)"),
            ));
    }
    Ok(refs)
}

fn gate_refusal(tool: &str, task_id: i64, failure: GateFailure) -> Refusal {
    let code = failure.code.as_str();
    let mut refusal = Refusal::new(code, failure.message.clone())
        .with("required_confidence", failure.required_confidence)
        .with("consistency_mode", failure.consistency.as_str());
    if let Some((required, total)) = failure.evidence {
        refusal = refusal
            .with("required_evidence_refs", required)
            .with("evidence_refs_total", total);
    }
    refusal.logged(
        format!("{tool}_done_gate_failed"),
        format!("task_id={task_id} {} ({code})", failure.message),
    )
}

/// Runs the done gate for the caller finishing `task` with `refs` (normalised) added;
/// a failure is logged as `<tool>_done_gate_failed`.
pub fn run_gate(
    db: &Db,
    ctx: &Ctx,
    tool: &str,
    task: &TaskRow,
    strict: bool,
    claim: &DoneClaim,
    refs: &[String],
) -> Result<GatePass, Refusal> {
    let caller = ctx.caller.agent_id().unwrap_or_default();
    let verifier = done_gate::verifier_candidate(
        claim.verified_by.as_deref(),
        caller,
        task.assigned_to.as_deref(),
    );
    let independent_verifier = match verifier {
        Some(verifier) => agent_store::get(db, verifier)?.is_some(),
        None => false,
    };
    let input = GateInput {
        strict,
        confidence: claim.confidence,
        verification_passed: claim.verification_passed,
        independent_verifier,
        quality: quality::counts(db, caller)?,
        evidence_total: task_store::evidence_total_with(db, task.id, refs)?,
    };
    done_gate::done_gate(&input, &GateConfig::from_config(&ctx.config))
        .map_err(|failure| gate_refusal(tool, task.id, failure))
}

/// Quality bookkeeping for a status change made by `caller` (§4.12, D25).
pub fn record_quality(
    tx: &mut WriteTx<'_>,
    before: &TaskRow,
    after: &TaskRow,
    caller: &str,
) -> StoreResult<()> {
    if let Some(charge) = task_rules::quality_charge(
        (before.status, before.assigned_to.as_deref()),
        (after.status, after.assigned_to.as_deref()),
        caller,
    ) {
        quality::record(tx, charge.agent_id, charge.completed, charge.rollbacks)?;
    }
    Ok(())
}
