//! Task-board operations (spec tools-core §4 with D19–D33, D36–D40 corrected): create,
//! update, delete and list tasks, plus what the claim operations in [`super::claims`] share
//! with them — the in-memory board state, governance, the canonical task and claim views of
//! refusal payloads.
//!
//! Each op runs inside the pipeline's one writer transaction, so checks and writes are
//! atomic. Rules come from `domain::task_rules` / `domain::done_gate`, SQL from
//! `store::tasks` / `store::claims`; this layer must not contain SQL or render responses.
//! The acting agent is always `ctx.caller`.

mod done;
mod list;
mod update;

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::{Value, json};

use super::{Ctx, Refusal};
use crate::config::NamespaceGovernance;
use crate::domain::task::{CreateConsistency, ExecutionMode, Priority};
use crate::domain::task_rules::{self, Actor};
use crate::store::claims::{self as claim_store, ClaimRow};
use crate::store::tasks::{self as task_store, NewTask, TaskRow};
use crate::store::{Db, StoreResult, WriteTx};

pub use done::{DoneOutcome, evidence_or_refuse, record_quality, run_gate};
pub use list::{TaskItem, TaskListQuery, TaskPage, list};
pub use update::{UpdateTaskCommand, update};

// ---------------------------------------------------------------------------------------
// In-memory state: poll miss streaks and the sweep throttle.

/// Miss streaks idle longer than this are forgotten (D39).
const MISS_STREAK_IDLE_MS: i64 = 10 * 60_000;
/// Above this many entries a miss also prunes idle streaks.
const MISS_STREAK_SOFT_CAP: usize = 4_096;

/// Task-board state that lives in memory: per-agent poll miss streaks (for
/// `retry_after_ms`) and when the last opportunistic sweep found nothing to do.
#[derive(Debug)]
pub struct TaskState {
    misses: Mutex<HashMap<String, (u32, i64)>>,
    pub(crate) last_quiet_sweep_ms: AtomicI64,
}

impl Default for TaskState {
    fn default() -> Self {
        Self {
            misses: Mutex::new(HashMap::new()),
            last_quiet_sweep_ms: AtomicI64::new(i64::MIN),
        }
    }
}

impl TaskState {
    /// Counts one more miss for `agent_id`; returns the streak length.
    pub(crate) fn record_miss(&self, agent_id: &str, now_ms: i64) -> u32 {
        let mut misses = self.misses.lock().unwrap_or_else(|p| p.into_inner());
        if misses.len() >= MISS_STREAK_SOFT_CAP {
            misses.retain(|_, (_, last)| now_ms - *last < MISS_STREAK_IDLE_MS);
        }
        let entry = misses.entry(agent_id.to_string()).or_insert((0, now_ms));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now_ms;
        entry.0
    }

    pub(crate) fn reset_misses(&self, agent_id: &str) {
        self.misses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(agent_id);
    }

    /// Drops idle miss streaks; called by maintenance.
    pub fn prune(&self, now_ms: i64) {
        self.misses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (_, last)| now_ms - *last < MISS_STREAK_IDLE_MS);
    }

    pub fn tracked_streaks(&self) -> usize {
        self.misses.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The opportunistic lease sweep at the start of claim tools. A sweep that finds nothing is
/// one index seek, so by default it runs on every call (expired leases are requeued at once,
/// also for polls); `MCP_HUB_CLAIM_CLEANUP_THROTTLE_MS` can space sweeps out. The throttle
/// only starts after a sweep that found nothing, so a sweep rolled back with a refused call
/// is redone by the next call. Expired claims count as absent in every check regardless.
pub(crate) fn sweep_if_due(tx: &mut WriteTx<'_>, ctx: &Ctx) -> StoreResult<()> {
    let now = ctx.now_ms;
    let throttle = ctx.config.claim_cleanup_throttle_ms;
    let last = ctx.tasks.last_quiet_sweep_ms.load(Ordering::Relaxed);
    if throttle > 0 && last != i64::MIN && now >= last && now - last < throttle {
        return Ok(());
    }
    if claim_store::sweep_expired(tx)? == 0 {
        ctx.tasks.last_quiet_sweep_ms.store(now, Ordering::Relaxed);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Shared pieces.

/// A task id as a call gave it: any number; it names a task only when it is finite and ≥ 1
/// (floored). Refusal texts quote it as given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskRef(pub f64);

impl TaskRef {
    pub fn id(self) -> Option<i64> {
        (1.0..9.0e15)
            .contains(&self.0)
            .then(|| self.0.floor() as i64)
    }
}

impl fmt::Display for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The acting agent's id; a blank caller field (allowed outside enforce) acts as "".
pub(crate) fn acting(ctx: &Ctx) -> String {
    ctx.caller.agent_id().unwrap_or_default().to_string()
}

pub(crate) fn actor<'a>(ctx: &'a Ctx, agent_id: &'a str) -> Actor<'a> {
    Actor {
        agent_id,
        lifts_ownership: ctx.caller.lifts_ownership(),
    }
}

/// The canonical task row of responses and refusal payloads (spec §4.1).
pub fn task_view(task: &TaskRow) -> Value {
    json!({
        "id": task.id,
        "title": task.title,
        "description": task.description,
        "namespace": task.namespace,
        "execution_mode": task.execution_mode.as_str(),
        "consistency_mode": task.consistency_mode.as_str(),
        "status": task.status.as_str(),
        "assigned_to": task.assigned_to,
        "created_by": task.created_by,
        "priority": task.priority.as_str(),
        "trace_id": task.trace_id,
        "span_id": task.span_id,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
    })
}

/// A claim as shown to `viewer`: `claim_id` only for its owner (D36).
pub fn claim_view(claim: &ClaimRow, viewer: Option<&str>) -> Value {
    let mut value = json!({
        "task_id": claim.task_id,
        "agent_id": claim.agent_id,
        "claimed_at": claim.claimed_at,
        "lease_expires_at": claim.lease_expires_at,
        "updated_at": claim.updated_at,
    });
    if viewer == Some(claim.agent_id.as_str()) {
        value["claim_id"] = json!(claim.claim_id);
    }
    value
}

pub(crate) fn task_not_found(tool: &str, id: impl fmt::Display, action: &str) -> Refusal {
    Refusal::new(
        "TASK_NOT_FOUND",
        format!("{tool}: task {id} does not exist; check the id with list_tasks"),
    )
    .logged(
        action,
        format!("task_id={id} task not found (TASK_NOT_FOUND)"),
    )
}

/// The task a call names, or `TASK_NOT_FOUND` logged as `<tool>_failed`.
pub(crate) fn load(db: &Db, task: TaskRef, tool: &str) -> Result<TaskRow, Refusal> {
    match task.id().map(|id| task_store::get(db, id)).transpose()? {
        Some(Some(row)) => Ok(row),
        _ => Err(task_not_found(tool, task, &format!("{tool}_failed"))),
    }
}

/// A refusal about `task_id` that leaves `<tool>_failed` behind.
pub(crate) fn failed(tool: &str, task_id: i64, code: &'static str, message: String) -> Refusal {
    Refusal::new(code, message.clone()).logged(
        format!("{tool}_failed"),
        format!("task_id={task_id} {message} ({code})"),
    )
}

/// Namespace governance (§4.15, D37). `Ok(Some(warning))` in warn mode when it triggers.
pub(crate) fn governance(
    ctx: &Ctx,
    action: &str,
    namespace: Option<&str>,
    hints: &[&str],
) -> Result<Option<String>, Refusal> {
    let mode = ctx.config.namespace_governance;
    if mode == NamespaceGovernance::Off
        || namespace.is_some()
        || !hints
            .iter()
            .any(|hint| task_rules::governance_hint_matches(hint))
    {
        return Ok(None);
    }
    let text = format!(
        "Namespace is required for {action}: this looks like swarm/experiment work; pass \
         namespace (e.g. the experiment or swarm id) so it stays isolated"
    );
    if mode == NamespaceGovernance::Require {
        return Err(Refusal::new("NAMESPACE_REQUIRED", text.clone()).logged(
            format!("{action}_namespace_rejected"),
            format!("{text} (NAMESPACE_REQUIRED)"),
        ));
    }
    Ok(Some(text))
}

pub(crate) fn invalid_dependency(tool: &str, ids: &[i64]) -> Refusal {
    let list = ids
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Refusal::new(
        "INVALID_DEPENDENCY",
        format!("{tool}: depends_on names tasks that do not exist ({list}); create them first or drop them"),
    )
    .with("invalid_ids", json!(ids))
    .logged(
        format!("{tool}_failed"),
        format!("invalid_ids={list} (INVALID_DEPENDENCY)"),
    )
}

fn prefix(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

// ---------------------------------------------------------------------------------------
// create_task

/// A new task as the caller describes it; text fields already normalised by the tool
/// (blank namespace/assignee → `None`, empty trace/span → `None`).
#[derive(Debug, Clone)]
pub struct CreateTaskCommand {
    pub title: String,
    pub description: Option<String>,
    pub assigned_to: Option<String>,
    pub priority: Option<Priority>,
    pub namespace: Option<String>,
    pub execution_mode: Option<ExecutionMode>,
    pub consistency: Option<CreateConsistency>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    /// Normalised ids (see `tools::tasks`); unknown ones are refused.
    pub depends_on: Vec<i64>,
}

#[derive(Debug, Clone)]
pub struct CreateTaskOutcome {
    pub task: TaskRow,
    pub governance: NamespaceGovernance,
    pub warning: Option<String>,
}

pub fn create(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    command: CreateTaskCommand,
) -> Result<CreateTaskOutcome, Refusal> {
    let title = command.title.trim().to_string();
    let created_by = acting(ctx);
    if title.is_empty() {
        return Err(Refusal::new(
            "INVALID_ARGUMENT",
            "create_task: title must not be blank",
        ));
    }
    let description = command.description.unwrap_or_default();
    let warning = governance(
        ctx,
        "create_task",
        command.namespace.as_deref(),
        &[&created_by, &title, &description],
    )?;
    let priority = command.priority.unwrap_or(Priority::Medium);
    let consistency_mode = task_rules::create_consistency(
        command.consistency,
        priority,
        ctx.config.consistency_default_strict,
    );
    let missing = task_store::missing_ids(tx.db(), &command.depends_on)?;
    if !missing.is_empty() {
        return Err(invalid_dependency("create_task", &missing));
    }
    let new = NewTask {
        title,
        description,
        namespace: command.namespace.unwrap_or_else(|| "default".into()),
        execution_mode: command.execution_mode.unwrap_or(ExecutionMode::Any),
        consistency_mode,
        assigned_to: command.assigned_to,
        created_by,
        priority,
        trace_id: command.trace_id,
        span_id: command.span_id,
        depends_on: command.depends_on,
    };
    let task = task_store::insert(tx, &new)?;
    if let Some(warning) = &warning {
        ctx.log(
            "create_task_namespace_warning",
            format!("task_id={} ns={} {warning}", task.id, task.namespace),
        );
    }
    ctx.log(
        "create_task",
        format!(
            "task_id={} title={:?} priority={} ns={} mode={}/{} deps={}",
            task.id,
            prefix(&task.title, 72),
            task.priority.as_str(),
            task.namespace,
            task.execution_mode.as_str(),
            task.consistency_mode.as_str(),
            new.depends_on.len()
        ),
    );
    Ok(CreateTaskOutcome {
        task,
        governance: ctx.config.namespace_governance,
        warning,
    })
}

// ---------------------------------------------------------------------------------------
// delete_task

#[derive(Debug, Clone)]
pub struct DeleteTaskCommand {
    pub task: TaskRef,
    pub archive: bool,
    /// Non-blank archive reason (default `manual_delete`).
    pub reason: Option<String>,
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteTaskOutcome {
    pub archived: bool,
}

pub fn delete(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    command: DeleteTaskCommand,
) -> Result<DeleteTaskOutcome, Refusal> {
    const TOOL: &str = "delete_task";
    let caller = acting(ctx);
    let task = load(tx.db(), command.task, TOOL)?;
    if !task_rules::may_delete(actor(ctx, &caller), &task.created_by) {
        return Err(failed(
            TOOL,
            task.id,
            "NOT_TASK_OWNER",
            format!(
                "delete_task: only the creator ({}) or an orchestrator may delete task {}",
                task.created_by, task.id
            ),
        )
        .with("created_by", task.created_by.clone()));
    }
    if let Some(claim) = claim_store::live(tx.db(), task.id, ctx.now_ms)? {
        return Err(failed(
            TOOL,
            task.id,
            "TASK_CLAIMED",
            format!(
                "delete_task: task {} is claimed by {} until {}; wait for its release or lease \
                 expiry",
                task.id,
                claim.agent_id,
                task_rules::iso8601(claim.lease_expires_at)
            ),
        )
        .with("current_claim", claim_view(&claim, Some(&caller))));
    }
    let dependents = if task.is_done() {
        Vec::new()
    } else {
        task_store::open_dependents(tx.db(), task.id)?
    };
    if !dependents.is_empty() && !command.force {
        return Err(failed(
            TOOL,
            task.id,
            "TASK_HAS_DEPENDENTS",
            format!(
                "delete_task: unfinished tasks depend on task {}; deleting it would unblock them \
                 silently. Update their depends_on first, or pass force:true",
                task.id
            ),
        )
        .with("dependents", json!(dependents)));
    }
    let reason = command.reason.as_deref().unwrap_or("manual_delete");
    task_store::delete(tx, &task, command.archive.then_some(reason))?;
    ctx.log(
        "delete_task",
        format!(
            "task_id={} archived={} forced_dependents={}",
            task.id,
            command.archive,
            dependents.len()
        ),
    );
    Ok(DeleteTaskOutcome {
        archived: command.archive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_refs_name_rows_only_when_finite_and_positive() {
        let cases = [
            (0.0, None),
            (-3.0, None),
            (f64::INFINITY, None),
            (f64::NAN, None),
            (3.7, Some(3)),
            (1.0, Some(1)),
        ];
        for (given, expected) in cases {
            assert_eq!(TaskRef(given).id(), expected, "{given}");
        }
        assert_eq!(TaskRef(999.0).to_string(), "999");
    }

    #[test]
    fn miss_streaks_count_reset_and_expire() {
        let state = TaskState::default();
        assert_eq!(state.record_miss("a", 0), 1);
        assert_eq!(state.record_miss("a", 10), 2);
        state.reset_misses("a");
        assert_eq!(state.record_miss("a", 20), 1);
        state.record_miss("b", 20);
        state.prune(20 + MISS_STREAK_IDLE_MS);
        assert_eq!(state.tracked_streaks(), 0);
    }
}
