//! update_task (spec §4.3 with D19, D24, D25, D29, D30 corrected): who may change a task,
//! which status moves are allowed outside the claim tools, the consistency rules, dependency
//! replacement, the done gate, then one application of every change.
//!
//! Checks run in the documented order and all of them before the first write, so a refusal
//! never leaves half an update behind. Must not render responses.

use serde_json::{Map, Value, json};

use super::done::{DoneOutcome, evidence_or_refuse, record_quality, run_gate};
use super::{TaskRef, acting, actor, claim_view, failed, invalid_dependency, load};
use crate::domain::done_gate::DoneClaim;
use crate::domain::task::{Consistency, StatusSource, TaskStatus};
use crate::domain::task_rules::{self, Owners, TransitionRefusal};
use crate::service::{Ctx, Refusal};
use crate::store::WriteTx;
use crate::store::claims as claim_store;
use crate::store::tasks::{self as task_store, TaskUpdate};

const TOOL: &str = "update_task";

/// The changes one update_task call asks for.
#[derive(Debug, Clone)]
pub struct UpdateTaskCommand {
    pub task: TaskRef,
    pub status: Option<TaskStatus>,
    /// Column changes, already normalised by the tool (namespace blank → `default`,
    /// assignee/trace/span "" → cleared). Consistency is taken from `consistency`.
    pub fields: TaskUpdate,
    pub consistency: Option<Consistency>,
    /// The replacement dependency list, normalised (own id dropped); `None` keeps it.
    pub depends_on: Option<Vec<i64>>,
    pub done: DoneClaim,
}

/// The applied field updates as the activity row reports them (never the token — D5).
fn applied_fields(
    update: &TaskUpdate,
    status: Option<TaskStatus>,
    deps: Option<&Vec<i64>>,
) -> Value {
    let mut applied = Map::new();
    let mut put = |key: &str, value: Value| {
        applied.insert(key.into(), value);
    };
    if let Some(title) = &update.title {
        put("title", json!(title));
    }
    if let Some(description) = &update.description {
        put("description", json!(description));
    }
    if let Some(namespace) = &update.namespace {
        put("namespace", json!(namespace));
    }
    if let Some(mode) = update.execution_mode {
        put("execution_mode", json!(mode.as_str()));
    }
    if let Some(mode) = update.consistency_mode {
        put("consistency_mode", json!(mode.as_str()));
    }
    if let Some(priority) = update.priority {
        put("priority", json!(priority.as_str()));
    }
    if let Some(status) = status {
        put("status", json!(status.as_str()));
    }
    if let Some(assignee) = &update.assigned_to {
        put("assigned_to", json!(assignee));
    }
    if let Some(trace) = &update.trace_id {
        put("trace_id", json!(trace));
    }
    if let Some(span) = &update.span_id {
        put("span_id", json!(span));
    }
    if let Some(deps) = deps {
        put("depends_on", json!(deps));
    }
    Value::Object(applied)
}

pub fn update(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    command: UpdateTaskCommand,
) -> Result<DoneOutcome, Refusal> {
    let caller = acting(ctx);
    let task = load(tx.db(), command.task, TOOL)?;
    let refuse = |code: &'static str, message: String| failed(TOOL, task.id, code, message);
    let now = ctx.now_ms;
    let claim = claim_store::live(tx.db(), task.id, now)?;
    let owners = Owners {
        created_by: &task.created_by,
        assigned_to: task.assigned_to.as_deref(),
        claim_holder: claim.as_ref().map(|c| c.agent_id.as_str()),
    };
    if !task_rules::may_update(actor(ctx, &caller), owners) {
        return Err(refuse(
            "NOT_TASK_OWNER",
            format!(
                "update_task: only the creator ({}), the assignee or claim holder, or an \
                 orchestrator may update task {}",
                task.created_by, task.id
            ),
        )
        .with("created_by", task.created_by.clone())
        .with("assigned_to", json!(task.assigned_to)));
    }

    let to_status = command.status;
    let status_changes = to_status.is_some_and(|s| s != task.status);
    if let Some(to) = to_status
        && let Err(refusal) = task_rules::update_transition(task.status, to)
    {
        let message = match refusal {
            TransitionRefusal::EntersInProgress => format!(
                "update_task: task {} enters in_progress only by being claimed; use \
                 claim_task or poll_and_claim",
                task.id
            ),
            TransitionRefusal::LeavesInProgress => {
                let to = to.as_str();
                format!(
                    "update_task: task {} is in progress; its claim holder moves it to {to} with \
                     release_task_claim next_status={to} (or the lease expires)",
                    task.id
                )
            }
        };
        return Err(refuse("CLAIM_REQUIRED", message));
    }
    let marking_done = to_status == Some(TaskStatus::Done);
    if marking_done && let Some(claim) = claim.as_ref().filter(|c| c.agent_id != caller) {
        return Err(refuse(
            "NOT_CLAIM_OWNER",
            format!(
                "update_task: task {} is claimed by {}; only the claim holder may mark it done",
                task.id, claim.agent_id
            ),
        )
        .with("current_claim", claim_view(claim, Some(&caller))));
    }

    let is_creator = task.created_by == caller;
    let Ok(gate_mode) = task_rules::update_consistency(
        task.consistency_mode,
        command.consistency,
        marking_done,
        is_creator,
    ) else {
        return Err(refuse(
            "CONSISTENCY_DOWNGRADE_FORBIDDEN",
            format!(
                "update_task: task {} is strict; only its creator may lower it to cheap, and not \
                 in the call that marks it done",
                task.id
            ),
        ));
    };

    let refs = evidence_or_refuse(ctx, TOOL, task.id, &command.done.evidence_refs)?;

    if let Some(ids) = &command.depends_on {
        let missing = task_store::missing_ids(tx.db(), ids)?;
        if !missing.is_empty() {
            return Err(invalid_dependency(TOOL, &missing));
        }
        if let Some(via) = task_store::cycle_through(tx.db(), task.id, ids)? {
            let message = format!(
                "update_task: task {} cannot depend on task {via}, which (transitively) \
                 depends on it; that would deadlock both",
                task.id
            );
            return Err(refuse("DEPENDENCY_CYCLE", message).with("cycle_via", via));
        }
    }

    // Assignment of a claimed task follows the claim.
    if let (Some(assignee), Some(claim)) = (&command.fields.assigned_to, &claim)
        && assignee.as_deref() != Some(claim.agent_id.as_str())
    {
        return Err(refuse(
            "TASK_CLAIMED",
            format!(
                "update_task: task {} is claimed by {}; the assignee changes when the claim is \
                 released",
                task.id, claim.agent_id
            ),
        )
        .with("current_claim", claim_view(claim, Some(&caller))));
    }

    let gate = if marking_done {
        Some(run_gate(
            tx.db(),
            ctx,
            TOOL,
            &task,
            gate_mode.strict,
            &command.done,
            &refs,
        )?)
    } else {
        None
    };

    let mut update = command.fields;
    update.consistency_mode = command.consistency;
    let applied = applied_fields(&update, to_status, command.depends_on.as_ref());
    if let Some(deps) = &command.depends_on {
        task_store::set_dependencies(tx, &task, deps)?;
    }
    let touched = command.depends_on.is_some() || to_status.is_some();
    task_store::update_fields(tx, task.id, &update, touched && !status_changes)?;
    let mut current = task_store::get(tx.db(), task.id)?.unwrap_or_else(|| task.clone());
    if let Some(to) = to_status.filter(|_| status_changes) {
        if task.status == TaskStatus::InProgress {
            // Done through update_task ends the (caller's or expired) claim atomically.
            claim_store::delete_for_task(tx, task.id)?;
        }
        current =
            task_store::change_status(tx, &current, to, None, &caller, StatusSource::UpdateTask)?;
        record_quality(tx, &task, &current, &caller)?;
    }
    let evidence_added = task_store::add_evidence(tx, task.id, &refs, &caller)?;
    let evidence_total = task_store::evidence_count(tx.db(), task.id)?;
    ctx.log(
        "update_task",
        format!(
            "task_id={} updates={applied}{} evidence_added={evidence_added} \
             evidence_total={evidence_total} consistency={}",
            task.id,
            gate.map(|g| format!(" required_confidence={}", g.required_confidence))
                .unwrap_or_default(),
            gate_mode.reported.as_str(),
        ),
    );
    Ok(DoneOutcome {
        task: current,
        gate,
        evidence_added,
        evidence_total,
    })
}
