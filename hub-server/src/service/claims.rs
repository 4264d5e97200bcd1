//! Claim operations on the task board (spec §4.5–4.9 with D20–D23, D26, D36 corrected):
//! poll_and_claim, claim_task, renew_task_claim, release_task_claim, list_task_claims.
//!
//! Every op that acts on a claim first runs the opportunistic lease sweep, so an expired
//! lease never blocks anyone; renew and release are fenced by (task, agent, claim id) —
//! a stale, foreign or expired claim changes nothing. Must not contain SQL or render
//! responses; the acting agent is always `ctx.caller`.

use super::tasks::{
    DoneOutcome, TaskRef, acting, claim_view, evidence_or_refuse, failed, governance, load,
    record_quality, run_gate, sweep_if_due, task_not_found, task_view,
};
use super::{Ctx, Refusal};
use crate::domain::done_gate::DoneClaim;
use crate::domain::task::{Consistency, NextStatus, RuntimeMode, StatusSource, TaskStatus};
use crate::domain::task_rules::{self, ClaimFacts, FenceRefusal, iso8601};
use crate::store::agents as agent_store;
use crate::store::claims::{self as claim_store, ClaimListing, ClaimRow};
use crate::store::tasks::{self as task_store, PollQuery, TaskRow, TaskUpdate};
use crate::store::{Db, StoreResult, WriteTx};

fn runtime_mode_of(db: &Db, agent_id: &str) -> StoreResult<RuntimeMode> {
    Ok(agent_store::get(db, agent_id)?
        .map(|agent| RuntimeMode::parse(&agent.runtime_mode))
        .unwrap_or(RuntimeMode::Unknown))
}

fn title_prefix(title: &str) -> &str {
    match title.char_indices().nth(72) {
        Some((end, _)) => &title[..end],
        None => title,
    }
}

/// A task and the claim just taken on it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub task: TaskRow,
    pub claim: ClaimRow,
    pub depends_on: Vec<i64>,
    /// The task's artifacts as the claimer sees them, when `include_artifacts` asked.
    pub artifacts: Option<Vec<crate::store::artifacts::Attached>>,
}

/// `include_artifacts`: every attachment of the claimed task, as its new holder sees it.
fn artifact_hints(
    db: &crate::store::Db,
    include: bool,
    task_id: i64,
    agent_id: &str,
) -> Result<Option<Vec<crate::store::artifacts::Attached>>, Refusal> {
    include
        .then(|| super::artifacts::claim_hints(db, task_id, agent_id))
        .transpose()
}

// ---------------------------------------------------------------------------------------
// poll_and_claim

#[derive(Debug, Clone)]
pub struct PollCommand {
    /// Lease length, already clamped.
    pub lease_ms: i64,
    /// Non-blank namespace filter.
    pub namespace: Option<String>,
    pub include_artifacts: bool,
}

#[derive(Debug, Clone)]
pub enum PollResult {
    Claimed(Box<Claimed>),
    Miss {
        message: String,
        retry_after_ms: i64,
    },
}

#[derive(Debug, Clone)]
pub struct PollOutcome {
    pub result: PollResult,
    pub runtime_mode: RuntimeMode,
    pub warning: Option<String>,
}

pub fn poll(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    command: PollCommand,
) -> Result<PollOutcome, Refusal> {
    let agent_id = acting(ctx);
    let namespace = command.namespace;
    let warning = governance(ctx, "poll_and_claim", namespace.as_deref(), &[&agent_id])?;
    if let Some(warning) = &warning {
        ctx.log("poll_and_claim_namespace_warning", warning.clone());
    }
    sweep_if_due(tx, ctx)?;
    let runtime_mode = runtime_mode_of(tx.db(), &agent_id)?;
    let query = PollQuery {
        agent_id: &agent_id,
        execution_modes: runtime_mode.runnable(),
        namespace: namespace.as_deref(),
        now_ms: ctx.now_ms,
    };
    let candidate = task_store::next_candidate(tx.db(), &query)?
        .map(|id| task_store::get(tx.db(), id))
        .transpose()?
        .flatten();
    let Some(task) = candidate else {
        ctx.skip_idempotency_record();
        let misses = ctx.tasks.record_miss(&agent_id, ctx.now_ms);
        let active = agent_store::count_seen_since(tx.db(), ctx.now_ms - 5 * 60_000)?;
        let retry = task_rules::retry_after_ms(
            active,
            misses,
            claim_store::any_claims(tx.db())?,
            rand::random::<f64>(),
        );
        ctx.log_quiet(
            "poll_and_claim",
            format!(
                "miss ns={} include_artifacts={} retry_after_ms={retry}",
                namespace.as_deref().unwrap_or("*"),
                u8::from(command.include_artifacts)
            ),
        );
        let message = format!(
            "no claimable task for {agent_id} (runtime_mode {}{}); poll again after retry_after_ms",
            runtime_mode.as_str(),
            namespace
                .as_deref()
                .map(|ns| format!(", namespace {ns}"))
                .unwrap_or_default()
        );
        return Ok(PollOutcome {
            result: PollResult::Miss {
                message,
                retry_after_ms: retry,
            },
            runtime_mode,
            warning,
        });
    };
    let (task, claim) = claim_store::claim(
        tx,
        &task,
        &agent_id,
        command.lease_ms,
        StatusSource::PollAndClaim,
    )?;
    ctx.tasks.reset_misses(&agent_id);
    let depends_on = task_store::dependencies(tx.db(), task.id)?;
    ctx.log(
        "poll_and_claim",
        format!(
            "task_id={} title={:?} priority={} ns={} mode={} deps={} include_artifacts={} claim_id={} lease_expires_at={}",
            task.id,
            title_prefix(&task.title),
            task.priority.as_str(),
            task.namespace,
            task.execution_mode.as_str(),
            depends_on.len(),
            u8::from(command.include_artifacts),
            claim.claim_id,
            iso8601(claim.lease_expires_at)
        ),
    );
    let artifacts = artifact_hints(tx.db(), command.include_artifacts, task.id, &agent_id)?;
    Ok(PollOutcome {
        result: PollResult::Claimed(Box::new(Claimed {
            task,
            claim,
            depends_on,
            artifacts,
        })),
        runtime_mode,
        warning,
    })
}

// ---------------------------------------------------------------------------------------
// claim_task

#[derive(Debug, Clone)]
pub struct ClaimCommand {
    pub task: TaskRef,
    pub lease_ms: i64,
    /// The namespace the caller expects the task in (non-blank).
    pub namespace: Option<String>,
    pub include_artifacts: bool,
}

#[derive(Debug, Clone)]
pub struct ClaimOutcome {
    pub claimed: Claimed,
    pub warning: Option<String>,
}

pub fn claim(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    command: ClaimCommand,
) -> Result<ClaimOutcome, Refusal> {
    const TOOL: &str = "claim_task";
    let agent_id = acting(ctx);
    let namespace = command.namespace;
    let warning = governance(ctx, TOOL, namespace.as_deref(), &[&agent_id])?;
    if let Some(warning) = &warning {
        ctx.log("claim_task_namespace_warning", warning.clone());
    }
    sweep_if_due(tx, ctx)?;
    let task = load(tx.db(), command.task, TOOL)?;
    let refuse = |code: &'static str, message: String| {
        failed(TOOL, task.id, code, message).with("task", task_view(&task))
    };
    if task.is_done() {
        return Err(refuse(
            "TASK_ALREADY_DONE",
            format!(
                "claim_task: task {} is already done; poll for another task",
                task.id
            ),
        ));
    }
    if let Some(ns) = namespace.as_deref().filter(|ns| *ns != task.namespace) {
        return Err(refuse(
            "NAMESPACE_MISMATCH",
            format!(
                "claim_task: task {} is in namespace {:?}, not {ns:?}; claim tasks of your own \
                 namespace",
                task.id, task.namespace
            ),
        ));
    }
    let runtime_mode = runtime_mode_of(tx.db(), &agent_id)?;
    if !runtime_mode.can_run(task.execution_mode) {
        return Err(refuse(
            "PROFILE_MISMATCH",
            format!(
                "claim_task: task {} needs a {} worker and your runtime mode is {}; \
                 leave it to a matching worker (or fix your runtime_profile)",
                task.id,
                task.execution_mode.as_str(),
                runtime_mode.as_str()
            ),
        )
        .with("agent_runtime_mode", runtime_mode.as_str())
        .with("task_execution_mode", task.execution_mode.as_str()));
    }
    let unmet = task_store::unmet_dependencies(tx.db(), task.id)?;
    if !unmet.is_empty() {
        return Err(refuse(
            "DEPENDENCIES_NOT_MET",
            format!(
                "claim_task: task {} waits for tasks {unmet:?} to be done; claim it after them",
                task.id
            ),
        )
        .with("unmet_dependencies", serde_json::json!(unmet)));
    }
    let current = claim_store::live(tx.db(), task.id, ctx.now_ms)?;
    if let Some(claim) = current.as_ref().filter(|c| c.agent_id != agent_id) {
        return Err(refuse(
            "ALREADY_CLAIMED",
            format!(
                "claim_task: task {} is already claimed by {} until {}; poll for another task",
                task.id,
                claim.agent_id,
                iso8601(claim.lease_expires_at)
            ),
        )
        .with("current_claim", claim_view(claim, Some(&agent_id))));
    }
    if let Some(assignee) = task_rules::blocking_assignee(
        task.status,
        task.assigned_to.as_deref(),
        &task.created_by,
        current.is_some(),
        &agent_id,
    ) {
        return Err(refuse(
            "TASK_ASSIGNED_TO_OTHER",
            format!(
                "claim_task: task {} is assigned to {assignee}; only that agent or the creator \
                 may claim it",
                task.id
            ),
        )
        .with("assigned_to", assignee.to_string()));
    }
    let rotated = current.is_some();
    let (task, claim) = claim_store::claim(
        tx,
        &task,
        &agent_id,
        command.lease_ms,
        StatusSource::ClaimTask,
    )?;
    let depends_on = task_store::dependencies(tx.db(), task.id)?;
    ctx.log(
        "claim_task",
        format!(
            "task_id={} claim_id={} rotated={} deps={} include_artifacts={} lease_expires_at={}",
            task.id,
            claim.claim_id,
            u8::from(rotated),
            depends_on.len(),
            u8::from(command.include_artifacts),
            iso8601(claim.lease_expires_at)
        ),
    );
    let artifacts = artifact_hints(tx.db(), command.include_artifacts, task.id, &agent_id)?;
    Ok(ClaimOutcome {
        claimed: Claimed {
            task,
            claim,
            depends_on,
            artifacts,
        },
        warning,
    })
}

// ---------------------------------------------------------------------------------------
// renew_task_claim / release_task_claim

/// The fence shared by renew and release: a live claim, owned by the caller, with the given
/// claim id. Returns the claim.
fn owned_live_claim(
    tx: &mut WriteTx<'_>,
    ctx: &Ctx,
    tool: &'static str,
    task_id: i64,
    caller: &str,
    claim_id: Option<&str>,
) -> Result<ClaimRow, Refusal> {
    let claim = claim_store::get(tx.db(), task_id)?;
    let facts = claim.as_ref().map(|c| ClaimFacts {
        holder: &c.agent_id,
        claim_id: &c.claim_id,
        lease_expires_at: c.lease_expires_at,
    });
    let verdict = task_rules::claim_fence(facts, caller, claim_id, ctx.now_ms);
    let refusal =
        |fence: FenceRefusal, message: String| failed(tool, task_id, fence.code(), message);
    match (verdict, claim) {
        (Ok(()), Some(claim)) => Ok(claim),
        (Err(FenceRefusal::NotOwner), Some(claim)) => Err(refusal(
            FenceRefusal::NotOwner,
            format!(
                "{tool}: task {task_id} is claimed by {}, not by you; poll for another task",
                claim.agent_id
            ),
        )
        .with("current_claim", claim_view(&claim, Some(caller)))),
        (Err(FenceRefusal::IdMismatch), Some(claim)) => Err(refusal(
            FenceRefusal::IdMismatch,
            format!(
                "{tool}: claim_id {:?} is not the current claim on task {task_id} (it was \
                 rotated by a newer claim); use the claim_id of your latest claim",
                claim_id.unwrap_or_default()
            ),
        )
        .with("current_claim", claim_view(&claim, Some(caller)))),
        _ => Err(refusal(
            FenceRefusal::Expired,
            format!(
                "{tool}: you hold no live claim on task {task_id} (the lease expired or it was \
                 released); claim it again with claim_task or poll_and_claim"
            ),
        )),
    }
}

fn claim_stolen(tool: &str, task_id: i64, current: Option<&ClaimRow>, caller: &str) -> Refusal {
    let message = format!(
        "{tool}: the claim on task {task_id} changed during this call; re-read it with \
         list_task_claims"
    );
    failed(tool, task_id, "CLAIM_STOLEN", message).with(
        "current_claim",
        current
            .map(|c| claim_view(c, Some(caller)))
            .unwrap_or(serde_json::Value::Null),
    )
}

#[derive(Debug, Clone)]
pub struct RenewCommand {
    pub task: TaskRef,
    pub lease_ms: i64,
    /// The claim id the caller holds (non-blank, trimmed); `None` means the current one.
    pub claim_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RenewOutcome {
    pub task: TaskRow,
    pub claim: ClaimRow,
}

pub fn renew(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    command: RenewCommand,
) -> Result<RenewOutcome, Refusal> {
    const TOOL: &str = "renew_task_claim";
    let caller = acting(ctx);
    sweep_if_due(tx, ctx)?;
    let Some(task_id) = command.task.id() else {
        return Err(task_not_found(
            TOOL,
            command.task,
            "renew_task_claim_failed",
        ));
    };
    let claim = owned_live_claim(tx, ctx, TOOL, task_id, &caller, command.claim_id.as_deref())?;
    let Some(claim) = claim_store::renew(tx, task_id, &caller, &claim.claim_id, command.lease_ms)?
    else {
        let current = claim_store::get(tx.db(), task_id)?;
        return Err(claim_stolen(TOOL, task_id, current.as_ref(), &caller));
    };
    let mut task = task_store::get(tx.db(), task_id)?
        .ok_or_else(|| task_not_found(TOOL, task_id, "renew_task_claim_failed"))?;
    // Only a task still in progress for the caller is touched (D20).
    if task.status == TaskStatus::InProgress && task.assigned_to.as_deref() == Some(caller.as_str())
    {
        task_store::update_fields(tx, task_id, &TaskUpdate::default(), true)?;
        task = task_store::get(tx.db(), task_id)?.unwrap_or(task);
    }
    ctx.log(
        "renew_task_claim",
        format!(
            "task_id={task_id} claim_id={} lease_expires_at={}",
            claim.claim_id,
            iso8601(claim.lease_expires_at)
        ),
    );
    Ok(RenewOutcome { task, claim })
}

#[derive(Debug, Clone)]
pub struct ReleaseCommand {
    pub task: TaskRef,
    pub next_status: NextStatus,
    /// The claim id the caller holds (non-blank, trimmed); `None` means the current one.
    pub claim_id: Option<String>,
    /// Can only raise the task's own mode for this call's gate (D24).
    pub consistency: Option<Consistency>,
    pub done: DoneClaim,
}

pub fn release(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    command: ReleaseCommand,
) -> Result<DoneOutcome, Refusal> {
    const TOOL: &str = "release_task_claim";
    let caller = acting(ctx);
    let task = load(tx.db(), command.task, TOOL)?;
    sweep_if_due(tx, ctx)?;
    // Ownership before the gate (D26).
    let claim = owned_live_claim(tx, ctx, TOOL, task.id, &caller, command.claim_id.as_deref())?;
    let task = task_store::get(tx.db(), task.id)?.unwrap_or(task);
    let refs = evidence_or_refuse(ctx, TOOL, task.id, &command.done.evidence_refs)?;
    let next = command.next_status;
    let mode = task_rules::release_consistency(task.consistency_mode, command.consistency);
    let gate = if next == NextStatus::Done {
        Some(run_gate(
            tx.db(),
            ctx,
            TOOL,
            &task,
            mode.is_strict(),
            &command.done,
            &refs,
        )?)
    } else {
        None
    };
    if !claim_store::delete_matching(tx, task.id, &caller, &claim.claim_id)? {
        let current = claim_store::get(tx.db(), task.id)?;
        return Err(claim_stolen(TOOL, task.id, current.as_ref(), &caller));
    }
    let assignee = (next == NextStatus::Done).then_some(caller.as_str());
    let after = task_store::change_status(
        tx,
        &task,
        next.status(),
        Some(assignee),
        &caller,
        StatusSource::ReleaseTaskClaim,
    )?;
    record_quality(tx, &task, &after, &caller)?;
    let evidence_added = task_store::add_evidence(tx, task.id, &refs, &caller)?;
    let evidence_total = task_store::evidence_count(tx.db(), task.id)?;
    ctx.log(
        "release_task_claim",
        format!(
            "task_id={} claim_id={} status={}{} evidence_added={evidence_added} \
             evidence_total={evidence_total} consistency={}",
            task.id,
            command.claim_id.as_deref().unwrap_or("server-current"),
            after.status.as_str(),
            gate.map(|g| format!(" required_confidence={}", g.required_confidence))
                .unwrap_or_default(),
            mode.as_str(),
        ),
    );
    Ok(DoneOutcome {
        task: after,
        gate,
        evidence_added,
        evidence_total,
    })
}

// ---------------------------------------------------------------------------------------
// list_task_claims

/// Live claims, soonest expiry first, optionally of one owner (non-blank). Who may see which
/// claim id is the view's business (`claim_view` with `ctx.caller`).
pub fn list(db: &Db, ctx: &mut Ctx, owner: Option<&str>) -> Result<Vec<ClaimListing>, Refusal> {
    let claims = claim_store::list_live(db, owner, ctx.now_ms)?;
    ctx.log(
        "list_task_claims",
        format!("count={} agent={}", claims.len(), owner.unwrap_or("*")),
    );
    Ok(claims)
}
