//! The task board: tasks, their dependencies, evidence, status history, the archive and
//! per-agent quality counters. Claims (leases) live in [`super::claims`].
//!
//! Invariants kept here:
//! - every change of a task row takes a new sequence number on the tasks stream (`seq`);
//!   deletes advance the stream head too (recorded in `hub_meta.tasks_delete_seq`);
//! - `unmet_deps` (dependencies not done) and `unblocks` (not-done dependents) are kept exact
//!   by every path that changes a status, the dependency list, or deletes a task — the poll
//!   queue index depends on them;
//! - every status change goes through [`change_status`], which writes the history row.

use std::collections::{BTreeSet, HashSet, VecDeque};

use rusqlite::{OptionalExtension, Row, params, params_from_iter};

use super::{Db, StoreResult, Stream, WriteTx};

#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    pub id: i64,
    pub seq: i64,
    pub title: String,
    pub description: String,
    pub namespace: String,
    pub execution_mode: String,
    pub consistency_mode: String,
    pub status: String,
    pub assigned_to: Option<String>,
    pub created_by: String,
    pub priority: String,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub unmet_deps: i64,
    pub unblocks: i64,
}

impl TaskRow {
    pub fn is_done(&self) -> bool {
        self.status == "done"
    }
}

const COLUMNS: &str = "id, seq, title, description, namespace, execution_mode, consistency_mode, \
                       status, assigned_to, created_by, priority, trace_id, span_id, created_at, \
                       updated_at, unmet_deps, unblocks";

fn from_row(row: &Row<'_>) -> rusqlite::Result<TaskRow> {
    Ok(TaskRow {
        id: row.get(0)?,
        seq: row.get(1)?,
        title: row.get(2)?,
        description: row.get(3)?,
        namespace: row.get(4)?,
        execution_mode: row.get(5)?,
        consistency_mode: row.get(6)?,
        status: row.get(7)?,
        assigned_to: row.get(8)?,
        created_by: row.get(9)?,
        priority: row.get(10)?,
        trace_id: row.get(11)?,
        span_id: row.get(12)?,
        created_at: row.get(13)?,
        updated_at: row.get(14)?,
        unmet_deps: row.get(15)?,
        unblocks: row.get(16)?,
    })
}

/// critical 0, high 1, medium 2, low 3 (unknown values sort as medium).
pub fn priority_rank(priority: &str) -> i64 {
    match priority {
        "critical" => 0,
        "high" => 1,
        "low" => 3,
        _ => 2,
    }
}

pub fn get(db: &Db, id: i64) -> StoreResult<Option<TaskRow>> {
    Ok(db
        .conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM tasks WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}

#[derive(Debug, Clone)]
pub struct NewTask {
    pub title: String,
    pub description: String,
    pub namespace: String,
    pub execution_mode: String,
    pub consistency_mode: String,
    pub assigned_to: Option<String>,
    pub created_by: String,
    pub priority: String,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    /// Already validated ([`missing_ids`]) and normalized.
    pub depends_on: Vec<i64>,
}

/// Inserts a pending task and its dependency edges.
pub fn insert(tx: &mut WriteTx<'_>, task: &NewTask) -> StoreResult<TaskRow> {
    let seq = tx.next_seq(Stream::Tasks);
    let now = tx.now_ms();
    let id: i64 = tx
        .conn()
        .prepare_cached(
            "INSERT INTO tasks (seq, title, description, namespace, execution_mode,
                                consistency_mode, status, assigned_to, created_by, priority,
                                priority_rank, trace_id, span_id, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)
             RETURNING id",
        )?
        .query_row(
            params![
                seq,
                task.title,
                task.description,
                task.namespace,
                task.execution_mode,
                task.consistency_mode,
                task.assigned_to,
                task.created_by,
                task.priority,
                priority_rank(&task.priority),
                task.trace_id,
                task.span_id,
                now
            ],
            |r| r.get(0),
        )?;
    let row = get(tx.db(), id)?.ok_or_else(|| super::StoreError::NotFound("task".into()))?;
    set_dependencies(tx, &row, &task.depends_on)?;
    Ok(get(tx.db(), id)?.unwrap_or(row))
}

/// The ids in `ids` that name no task (archived tasks do not count).
pub fn missing_ids(db: &Db, ids: &[i64]) -> StoreResult<Vec<i64>> {
    let mut stmt = db
        .conn
        .prepare_cached("SELECT 1 FROM tasks WHERE id = ?1")?;
    let mut missing = Vec::new();
    for &id in ids {
        if !stmt.exists([id])? {
            missing.push(id);
        }
    }
    Ok(missing)
}

/// Whether making `task_id` depend on `new_deps` closes a cycle: true when `task_id` is
/// reachable from one of them along existing dependency edges. Returns the first such
/// dependency.
pub fn cycle_through(db: &Db, task_id: i64, new_deps: &[i64]) -> StoreResult<Option<i64>> {
    let mut stmt = db
        .conn
        .prepare_cached("SELECT depends_on_task_id FROM task_dependencies WHERE task_id = ?1")?;
    for &start in new_deps {
        let mut seen = HashSet::new();
        let mut queue = VecDeque::from([start]);
        while let Some(node) = queue.pop_front() {
            if node == task_id {
                return Ok(Some(start));
            }
            if !seen.insert(node) {
                continue;
            }
            let next = stmt
                .query_map([node], |r| r.get::<_, i64>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            queue.extend(next);
        }
    }
    Ok(None)
}

/// Dependency ids of a task, ascending.
pub fn dependencies(db: &Db, task_id: i64) -> StoreResult<Vec<i64>> {
    let mut stmt = db.conn.prepare_cached(
        "SELECT depends_on_task_id FROM task_dependencies WHERE task_id = ?1
         ORDER BY depends_on_task_id",
    )?;
    Ok(stmt
        .query_map([task_id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Dependencies of a task that are not done, ascending.
pub fn unmet_dependencies(db: &Db, task_id: i64) -> StoreResult<Vec<i64>> {
    let mut stmt = db.conn.prepare_cached(
        "SELECT d.depends_on_task_id FROM task_dependencies d
         JOIN tasks t ON t.id = d.depends_on_task_id
         WHERE d.task_id = ?1 AND t.status <> 'done'
         ORDER BY d.depends_on_task_id",
    )?;
    Ok(stmt
        .query_map([task_id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Tasks that depend on `task_id` and are not done, ascending.
pub fn open_dependents(db: &Db, task_id: i64) -> StoreResult<Vec<i64>> {
    let mut stmt = db.conn.prepare_cached(
        "SELECT d.task_id FROM task_dependencies d JOIN tasks t ON t.id = d.task_id
         WHERE d.depends_on_task_id = ?1 AND t.status <> 'done' ORDER BY d.task_id",
    )?;
    Ok(stmt
        .query_map([task_id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

fn bump_seq(tx: &mut WriteTx<'_>, task_id: i64) -> StoreResult<()> {
    let seq = tx.next_seq(Stream::Tasks);
    tx.conn()
        .prepare_cached("UPDATE tasks SET seq = ?2 WHERE id = ?1")?
        .execute(params![task_id, seq])?;
    Ok(())
}

/// Adds `delta` to `unmet_deps` of `task_id`; a task whose readiness flips gets a new
/// sequence number so delta readers (e.g. `ready_only`) see it.
fn adjust_unmet(tx: &mut WriteTx<'_>, task_id: i64, delta: i64) -> StoreResult<()> {
    let before: Option<i64> = tx
        .conn()
        .prepare_cached(
            "UPDATE tasks SET unmet_deps = unmet_deps + ?2 WHERE id = ?1 RETURNING unmet_deps - ?2",
        )?
        .query_row(params![task_id, delta], |r| r.get(0))
        .optional()?;
    if let Some(before) = before
        && (before == 0) != (before + delta == 0)
    {
        bump_seq(tx, task_id)?;
    }
    Ok(())
}

fn adjust_unblocks(tx: &mut WriteTx<'_>, task_id: i64, delta: i64) -> StoreResult<()> {
    tx.conn()
        .prepare_cached("UPDATE tasks SET unblocks = unblocks + ?2 WHERE id = ?1")?
        .execute(params![task_id, delta])?;
    Ok(())
}

fn is_done(db: &Db, task_id: i64) -> StoreResult<bool> {
    Ok(db
        .conn
        .prepare_cached("SELECT status = 'done' FROM tasks WHERE id = ?1")?
        .query_row([task_id], |r| r.get::<_, bool>(0))
        .optional()?
        .unwrap_or(true))
}

/// Replaces the dependency list of `task` (ids validated by the caller), keeping the
/// readiness and unblock counters exact. Returns whether the list changed.
pub fn set_dependencies(tx: &mut WriteTx<'_>, task: &TaskRow, deps: &[i64]) -> StoreResult<bool> {
    let old: BTreeSet<i64> = dependencies(tx.db(), task.id)?.into_iter().collect();
    let new: BTreeSet<i64> = deps.iter().copied().filter(|&d| d != task.id).collect();
    if old == new {
        return Ok(false);
    }
    let now = tx.now_ms();
    let task_open = !task.is_done();
    for &removed in old.difference(&new) {
        tx.conn()
            .prepare_cached(
                "DELETE FROM task_dependencies WHERE task_id = ?1 AND depends_on_task_id = ?2",
            )?
            .execute(params![task.id, removed])?;
        if task_open {
            adjust_unblocks(tx, removed, -1)?;
        }
        if !is_done(tx.db(), removed)? {
            adjust_unmet(tx, task.id, -1)?;
        }
    }
    for &added in new.difference(&old) {
        tx.conn()
            .prepare_cached(
                "INSERT INTO task_dependencies (task_id, depends_on_task_id, created_at)
                 VALUES (?1, ?2, ?3)",
            )?
            .execute(params![task.id, added, now])?;
        if task_open {
            adjust_unblocks(tx, added, 1)?;
        }
        if !is_done(tx.db(), added)? {
            adjust_unmet(tx, task.id, 1)?;
        }
    }
    Ok(true)
}

/// Column updates of a task; `None` leaves a column alone.
#[derive(Debug, Clone, Default)]
pub struct TaskUpdate {
    pub title: Option<String>,
    pub description: Option<String>,
    pub namespace: Option<String>,
    pub execution_mode: Option<String>,
    pub consistency_mode: Option<String>,
    pub priority: Option<String>,
    /// `Some(None)` clears the assignee.
    pub assigned_to: Option<Option<String>>,
    pub trace_id: Option<Option<String>>,
    pub span_id: Option<Option<String>>,
}

impl TaskUpdate {
    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.description.is_none()
            && self.namespace.is_none()
            && self.execution_mode.is_none()
            && self.consistency_mode.is_none()
            && self.priority.is_none()
            && self.assigned_to.is_none()
            && self.trace_id.is_none()
            && self.span_id.is_none()
    }
}

/// Applies column updates (not the status: see [`change_status`]), sets `updated_at` and a
/// new sequence number. `touch` forces that even without column updates (a dependency-only
/// change is a change too).
pub fn update_fields(
    tx: &mut WriteTx<'_>,
    task_id: i64,
    update: &TaskUpdate,
    touch: bool,
) -> StoreResult<()> {
    if update.is_empty() && !touch {
        return Ok(());
    }
    let seq = tx.next_seq(Stream::Tasks);
    let now = tx.now_ms();
    let (assign_set, assign_value) = match &update.assigned_to {
        Some(value) => (true, value.clone()),
        None => (false, None),
    };
    let (trace_set, trace_value) = match &update.trace_id {
        Some(value) => (true, value.clone()),
        None => (false, None),
    };
    let (span_set, span_value) = match &update.span_id {
        Some(value) => (true, value.clone()),
        None => (false, None),
    };
    tx.conn()
        .prepare_cached(
            "UPDATE tasks SET
                 seq = ?2, updated_at = ?3,
                 title = COALESCE(?4, title),
                 description = COALESCE(?5, description),
                 namespace = COALESCE(?6, namespace),
                 execution_mode = COALESCE(?7, execution_mode),
                 consistency_mode = COALESCE(?8, consistency_mode),
                 priority = COALESCE(?9, priority),
                 priority_rank = COALESCE(?10, priority_rank),
                 assigned_to = CASE WHEN ?11 THEN ?12 ELSE assigned_to END,
                 trace_id = CASE WHEN ?13 THEN ?14 ELSE trace_id END,
                 span_id = CASE WHEN ?15 THEN ?16 ELSE span_id END
             WHERE id = ?1",
        )?
        .execute(params![
            task_id,
            seq,
            now,
            update.title,
            update.description,
            update.namespace,
            update.execution_mode,
            update.consistency_mode,
            update.priority,
            update.priority.as_deref().map(priority_rank),
            assign_set,
            assign_value,
            trace_set,
            trace_value,
            span_set,
            span_value
        ])?;
    Ok(())
}

/// Where a status change came from; recorded in `task_status_history.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusSource {
    UpdateTask,
    ReleaseTaskClaim,
    ClaimTask,
    PollAndClaim,
    LeaseExpiry,
    Maintenance,
}

impl StatusSource {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusSource::UpdateTask => "update_task",
            StatusSource::ReleaseTaskClaim => "release_task_claim",
            StatusSource::ClaimTask => "claim_task",
            StatusSource::PollAndClaim => "poll_and_claim",
            StatusSource::LeaseExpiry => "lease_expiry",
            StatusSource::Maintenance => "maintenance",
        }
    }
}

/// Sets a task's status (and optionally its assignee), `updated_at` and `seq`; writes the
/// history row when the status changes and keeps the dependency counters exact when the
/// task enters or leaves `done`. Returns the updated row.
pub fn change_status(
    tx: &mut WriteTx<'_>,
    task: &TaskRow,
    to_status: &str,
    assigned_to: Option<Option<&str>>,
    changed_by: &str,
    source: StatusSource,
) -> StoreResult<TaskRow> {
    let seq = tx.next_seq(Stream::Tasks);
    let now = tx.now_ms();
    let (assign_set, assign_value) = match assigned_to {
        Some(value) => (true, value),
        None => (false, None),
    };
    tx.conn()
        .prepare_cached(
            "UPDATE tasks SET status = ?2, seq = ?3, updated_at = ?4,
                 assigned_to = CASE WHEN ?5 THEN ?6 ELSE assigned_to END
             WHERE id = ?1",
        )?
        .execute(params![
            task.id,
            to_status,
            seq,
            now,
            assign_set,
            assign_value
        ])?;
    if task.status != to_status {
        tx.conn()
            .prepare_cached(
                "INSERT INTO task_status_history
                     (task_id, from_status, to_status, changed_by, source, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                task.id,
                task.status,
                to_status,
                changed_by,
                source.as_str(),
                now
            ])?;
        let was_done = task.is_done();
        let now_done = to_status == "done";
        if was_done != now_done {
            let delta = if now_done { -1 } else { 1 };
            let dependents: Vec<i64> = {
                let mut stmt = tx.conn().prepare_cached(
                    "SELECT task_id FROM task_dependencies WHERE depends_on_task_id = ?1",
                )?;
                stmt.query_map([task.id], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            for dependent in dependents {
                adjust_unmet(tx, dependent, delta)?;
            }
            for dependency in dependencies(tx.db(), task.id)? {
                adjust_unblocks(tx, dependency, delta)?;
            }
        }
    }
    get(tx.db(), task.id)?.ok_or_else(|| super::StoreError::NotFound("task".into()))
}

/// How a candidate is picked for a worker.
#[derive(Debug, Clone)]
pub struct PollQuery<'a> {
    pub agent_id: &'a str,
    /// Execution modes the worker can run (`any`, plus `repo` or `isolated`).
    pub execution_modes: &'a [&'a str],
    pub namespace: Option<&'a str>,
    pub now_ms: i64,
}

/// The sort key of the poll order: priority rank, then more unblocked first, then oldest,
/// then lowest id.
type PollKey = (i64, i64, i64, i64);

/// The best ready, pending task for the worker: unassigned or pre-assigned to it, with a
/// compatible execution mode, in the namespace if one is given, and without a live claim.
///
/// Each branch reads the head of one partial index range (`tasks_poll_queue`,
/// `tasks_poll_queue_ns`, `tasks_poll_assigned`) in claim order, so the cost does not grow
/// with the number of pending tasks.
pub fn next_candidate(db: &Db, query: &PollQuery<'_>) -> StoreResult<Option<i64>> {
    let mut best: Option<(PollKey, i64)> = None;
    let mut consider = |row: Option<(PollKey, i64)>| {
        if let Some((key, id)) = row
            && best.as_ref().is_none_or(|(best_key, _)| key < *best_key)
        {
            best = Some((key, id));
        }
    };
    let read = |r: &Row<'_>| -> rusqlite::Result<(PollKey, i64)> {
        let id: i64 = r.get(0)?;
        Ok(((r.get(1)?, -r.get::<_, i64>(2)?, r.get(3)?, id), id))
    };
    const NO_LIVE_CLAIM: &str = "NOT EXISTS (SELECT 1 FROM task_claims c
                                  WHERE c.task_id = tasks.id AND c.lease_expires_at > ?1)";
    const ORDER: &str = "ORDER BY priority_rank, unblocks DESC, created_at, id LIMIT 1";
    for mode in query.execution_modes {
        let row = match query.namespace {
            None => db
                .conn
                .prepare_cached(&format!(
                    "SELECT id, priority_rank, unblocks, created_at FROM tasks
                     INDEXED BY tasks_poll_queue
                     WHERE status = 'pending' AND assigned_to IS NULL AND unmet_deps = 0
                       AND execution_mode = ?2 AND {NO_LIVE_CLAIM}
                     {ORDER}"
                ))?
                .query_row(params![query.now_ms, mode], read)
                .optional()?,
            Some(namespace) => db
                .conn
                .prepare_cached(&format!(
                    "SELECT id, priority_rank, unblocks, created_at FROM tasks
                     INDEXED BY tasks_poll_queue_ns
                     WHERE status = 'pending' AND assigned_to IS NULL AND unmet_deps = 0
                       AND namespace = ?3 AND execution_mode = ?2 AND {NO_LIVE_CLAIM}
                     {ORDER}"
                ))?
                .query_row(params![query.now_ms, mode, namespace], read)
                .optional()?,
        };
        consider(row);
    }
    // Tasks pre-assigned to this worker: few per agent, so filtering while walking is cheap.
    let modes = query.execution_modes;
    let mode_list = (0..modes.len())
        .map(|i| format!("?{}", i + 4))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT id, priority_rank, unblocks, created_at FROM tasks
         INDEXED BY tasks_poll_assigned
         WHERE status = 'pending' AND assigned_to = ?2 AND unmet_deps = 0
           AND (?3 IS NULL OR namespace = ?3) AND execution_mode IN ({mode_list})
           AND {NO_LIVE_CLAIM}
         {ORDER}"
    );
    let mut values: Vec<rusqlite::types::Value> = vec![
        query.now_ms.into(),
        query.agent_id.to_string().into(),
        query.namespace.map(str::to_string).into(),
    ];
    values.extend(modes.iter().map(|m| m.to_string().into()));
    let row = db
        .conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(values), read)
        .optional()?;
    consider(row);
    Ok(best.map(|(_, id)| id))
}

/// Filters and paging of list_tasks.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub status: Option<String>,
    pub assigned_to: Option<String>,
    pub namespace: Option<String>,
    pub execution_mode: Option<String>,
    pub ready_only: bool,
    pub limit: i64,
    pub page: ListPage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListPage {
    /// Changes after this sequence number, in change order.
    AfterSeq(i64),
    /// Tasks updated after this time, in change order.
    UpdatedAfter(i64),
    /// Newest first, skipping `offset` rows.
    Newest { offset: i64 },
}

impl Default for ListPage {
    fn default() -> Self {
        ListPage::Newest { offset: 0 }
    }
}

pub fn list(db: &Db, query: &ListQuery) -> StoreResult<(Vec<TaskRow>, bool)> {
    let (bound, order, bound_value, offset) = match query.page {
        ListPage::AfterSeq(seq) => ("AND seq > ?6", "seq ASC, id ASC", seq, 0),
        ListPage::UpdatedAfter(ms) => ("AND updated_at > ?6", "seq ASC, id ASC", ms, 0),
        ListPage::Newest { offset } => ("", "created_at DESC, id DESC", 0, offset.max(0)),
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM tasks
         WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR assigned_to = ?2)
           AND (?3 IS NULL OR namespace = ?3) AND (?4 IS NULL OR execution_mode = ?4)
           AND (?5 = 0 OR unmet_deps = 0) {bound}
         ORDER BY {order} LIMIT ?7 OFFSET ?8"
    );
    let mut rows = db
        .conn
        .prepare_cached(&sql)?
        .query_map(
            params![
                query.status,
                query.assigned_to,
                query.namespace,
                query.execution_mode,
                query.ready_only,
                bound_value,
                query.limit + 1,
                offset
            ],
            from_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let has_more = rows.len() as i64 > query.limit;
    rows.truncate(query.limit.max(0) as usize);
    Ok((rows, has_more))
}

/// Evidence refs of a task already stored, among `refs`.
pub fn evidence_total_with(db: &Db, task_id: i64, refs: &[String]) -> StoreResult<i64> {
    let existing: i64 = db
        .conn
        .prepare_cached("SELECT COUNT(*) FROM task_evidence WHERE task_id = ?1")?
        .query_row([task_id], |r| r.get(0))?;
    let mut stmt = db
        .conn
        .prepare_cached("SELECT 1 FROM task_evidence WHERE task_id = ?1 AND evidence_ref = ?2")?;
    let mut new = 0;
    for evidence in refs {
        if !stmt.exists(params![task_id, evidence])? {
            new += 1;
        }
    }
    Ok(existing + new)
}

/// Insert-or-ignore each ref; returns how many were new.
pub fn add_evidence(
    tx: &mut WriteTx<'_>,
    task_id: i64,
    refs: &[String],
    added_by: &str,
) -> StoreResult<usize> {
    let now = tx.now_ms();
    let mut stmt = tx.conn().prepare_cached(
        "INSERT OR IGNORE INTO task_evidence (task_id, evidence_ref, added_by, created_at)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut added = 0;
    for evidence in refs {
        added += stmt.execute(params![task_id, evidence, added_by, now])?;
    }
    Ok(added)
}

pub fn evidence_count(db: &Db, task_id: i64) -> StoreResult<i64> {
    Ok(db
        .conn
        .prepare_cached("SELECT COUNT(*) FROM task_evidence WHERE task_id = ?1")?
        .query_row([task_id], |r| r.get(0))?)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub task_id: i64,
    pub from_status: String,
    pub to_status: String,
    pub changed_by: String,
    pub source: String,
    pub created_at: i64,
}

pub fn history(db: &Db, task_id: i64) -> StoreResult<Vec<HistoryRow>> {
    let mut stmt = db.conn.prepare_cached(
        "SELECT task_id, from_status, to_status, changed_by, source, created_at
         FROM task_status_history WHERE task_id = ?1 ORDER BY id",
    )?;
    Ok(stmt
        .query_map([task_id], |r| {
            Ok(HistoryRow {
                task_id: r.get(0)?,
                from_status: r.get(1)?,
                to_status: r.get(2)?,
                changed_by: r.get(3)?,
                source: r.get(4)?,
                created_at: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// `(completed_count, rollback_count)`; zeros for an agent without a row.
pub fn quality(db: &Db, agent_id: &str) -> StoreResult<(i64, i64)> {
    Ok(db
        .conn
        .prepare_cached(
            "SELECT completed_count, rollback_count FROM agent_quality WHERE agent_id = ?1",
        )?
        .query_row([agent_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, 0)))
}

pub fn record_quality(
    tx: &mut WriteTx<'_>,
    agent_id: &str,
    completed: i64,
    rollbacks: i64,
) -> StoreResult<()> {
    let now = tx.now_ms();
    tx.conn()
        .prepare_cached(
            "INSERT INTO agent_quality (agent_id, completed_count, rollback_count, last_updated)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (agent_id) DO UPDATE SET
                 completed_count = completed_count + excluded.completed_count,
                 rollback_count = rollback_count + excluded.rollback_count,
                 last_updated = excluded.last_updated",
        )?
        .execute(params![agent_id, completed, rollbacks, now])?;
    Ok(())
}

/// Deletes a task (claims, evidence, history and dependency edges cascade), archiving a copy
/// first when `archive_reason` is given. Dependents lose the edge: the caller decides
/// beforehand whether that is allowed. Advances the tasks stream.
pub fn delete(
    tx: &mut WriteTx<'_>,
    task: &TaskRow,
    archive_reason: Option<&str>,
) -> StoreResult<()> {
    let now = tx.now_ms();
    if let Some(reason) = archive_reason {
        tx.conn()
            .prepare_cached(
                "INSERT OR REPLACE INTO tasks_archive
                     (id, title, description, namespace, execution_mode, consistency_mode,
                      status, assigned_to, created_by, priority, trace_id, span_id, created_at,
                      updated_at, archived_at, archive_reason)
                 SELECT id, title, description, namespace, execution_mode, consistency_mode,
                        status, assigned_to, created_by, priority, trace_id, span_id,
                        created_at, updated_at, ?2, ?3
                 FROM tasks WHERE id = ?1",
            )?
            .execute(params![task.id, now, reason])?;
    }
    if !task.is_done() {
        for dependency in dependencies(tx.db(), task.id)? {
            adjust_unblocks(tx, dependency, -1)?;
        }
        let dependents: Vec<i64> = {
            let mut stmt = tx.conn().prepare_cached(
                "SELECT task_id FROM task_dependencies WHERE depends_on_task_id = ?1",
            )?;
            stmt.query_map([task.id], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?
        };
        for dependent in dependents {
            adjust_unmet(tx, dependent, -1)?;
        }
    }
    tx.conn()
        .prepare_cached("DELETE FROM tasks WHERE id = ?1")?
        .execute([task.id])?;
    let seq = tx.next_seq(Stream::Tasks);
    tx.conn()
        .prepare_cached("UPDATE hub_meta SET value = ?1 WHERE key = 'tasks_delete_seq'")?
        .execute([seq])?;
    Ok(())
}

/// The head of the tasks stream as stored: the newest task change or delete.
pub fn stream_head(db: &Db) -> rusqlite::Result<i64> {
    db.conn.query_row(
        "SELECT MAX(COALESCE((SELECT MAX(seq) FROM tasks), 0),
                    COALESCE((SELECT value FROM hub_meta WHERE key = 'tasks_delete_seq'), 0))",
        [],
        |r| r.get(0),
    )
}

/// Done tasks last updated before `cutoff_ms` that no task depends on, oldest first.
pub fn archivable_done(db: &Db, cutoff_ms: i64, limit: i64) -> StoreResult<Vec<TaskRow>> {
    let mut stmt = db.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM tasks
         WHERE status = 'done' AND updated_at < ?1
           AND NOT EXISTS (SELECT 1 FROM task_dependencies d WHERE d.depends_on_task_id = tasks.id)
         ORDER BY updated_at, id LIMIT ?2"
    ))?;
    Ok(stmt
        .query_map(params![cutoff_ms, limit], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// In-progress tasks whose assignee is not a registered agent or is an offline ephemeral
/// agent, and which no live claim of that assignee protects. A live lease is a promise the
/// hub keeps: such tasks come back through lease expiry or ephemeral claim reaping instead.
/// Pending pre-assignments are never touched (D33).
pub fn orphaned_in_progress(db: &Db, now_ms: i64) -> StoreResult<Vec<TaskRow>> {
    let mut stmt = db.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM tasks
         WHERE status = 'in_progress' AND assigned_to IS NOT NULL
           AND (NOT EXISTS (SELECT 1 FROM agents a WHERE a.id = tasks.assigned_to)
                OR EXISTS (SELECT 1 FROM agents a WHERE a.id = tasks.assigned_to
                           AND a.lifecycle = 'ephemeral' AND a.status = 'offline'))
           AND NOT EXISTS (SELECT 1 FROM task_claims c WHERE c.task_id = tasks.id
                           AND c.agent_id = tasks.assigned_to AND c.lease_expires_at > ?1)"
    ))?;
    Ok(stmt
        .query_map([now_ms], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Pending and in-progress tasks assigned to `agent_id`.
pub fn open_assigned_to(db: &Db, agent_id: &str) -> StoreResult<Vec<TaskRow>> {
    let mut stmt = db.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM tasks
         WHERE assigned_to = ?1 AND status IN ('pending', 'in_progress')"
    ))?;
    Ok(stmt
        .query_map([agent_id], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Recomputes the dependency counters from the edges and returns every task whose stored
/// value differs, as `(id, unmet_deps stored/actual, unblocks stored/actual)`. Empty when the
/// board is consistent; used by tests and benchmarks.
/// `(task id, unmet_deps stored, unmet_deps actual, unblocks stored, unblocks actual)`.
pub type CounterMismatch = (i64, i64, i64, i64, i64);

pub fn counter_mismatches(db: &Db) -> StoreResult<Vec<CounterMismatch>> {
    let mut stmt = db.conn.prepare(
        "SELECT t.id, t.unmet_deps,
                (SELECT COUNT(*) FROM task_dependencies d JOIN tasks p ON p.id = d.depends_on_task_id
                 WHERE d.task_id = t.id AND p.status <> 'done'),
                t.unblocks,
                (SELECT COUNT(*) FROM task_dependencies d JOIN tasks c ON c.id = d.task_id
                 WHERE d.depends_on_task_id = t.id AND c.status <> 'done')
         FROM tasks t",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<Vec<CounterMismatch>>>()?;
    Ok(rows
        .into_iter()
        .filter(|(_, unmet, unmet_actual, unblocks, unblocks_actual)| {
            unmet != unmet_actual || unblocks != unblocks_actual
        })
        .collect())
}

/// `EXPLAIN QUERY PLAN` of the unassigned poll branch, one line per plan row.
pub fn poll_query_plan(db: &Db, namespace: Option<&str>) -> StoreResult<Vec<String>> {
    let sql = match namespace {
        None => {
            "EXPLAIN QUERY PLAN
             SELECT id, priority_rank, unblocks, created_at FROM tasks
             INDEXED BY tasks_poll_queue
             WHERE status = 'pending' AND assigned_to IS NULL AND unmet_deps = 0
               AND execution_mode = ?2
               AND NOT EXISTS (SELECT 1 FROM task_claims c
                               WHERE c.task_id = tasks.id AND c.lease_expires_at > ?1)
             ORDER BY priority_rank, unblocks DESC, created_at, id LIMIT 1"
        }
        Some(_) => {
            "EXPLAIN QUERY PLAN
             SELECT id, priority_rank, unblocks, created_at FROM tasks
             INDEXED BY tasks_poll_queue_ns
             WHERE status = 'pending' AND assigned_to IS NULL AND unmet_deps = 0
               AND namespace = ?3 AND execution_mode = ?2
               AND NOT EXISTS (SELECT 1 FROM task_claims c
                               WHERE c.task_id = tasks.id AND c.lease_expires_at > ?1)
             ORDER BY priority_rank, unblocks DESC, created_at, id LIMIT 1"
        }
    };
    let mut plan_params: Vec<rusqlite::types::Value> = vec![0.into(), "any".to_string().into()];
    if let Some(namespace) = namespace {
        plan_params.push(namespace.to_string().into());
    }
    let mut stmt = db.conn.prepare(sql)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(plan_params), |r| {
            r.get::<_, String>(3)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::claims;
    use crate::store::{Store, SyncMode};

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("hub.db"),
            SyncMode::Normal,
            ManualClock::new(1_000_000),
        )
        .unwrap();
        (dir, store)
    }

    fn new_task(title: &str, priority: &str, deps: Vec<i64>) -> NewTask {
        NewTask {
            title: title.into(),
            description: String::new(),
            namespace: "default".into(),
            execution_mode: "any".into(),
            consistency_mode: "cheap".into(),
            assigned_to: None,
            created_by: "maker".into(),
            priority: priority.into(),
            trace_id: None,
            span_id: None,
            depends_on: deps,
        }
    }

    fn poll(tx: &mut WriteTx<'_>, agent: &str) -> Option<i64> {
        let now = tx.now_ms();
        next_candidate(
            tx.db(),
            &PollQuery {
                agent_id: agent,
                execution_modes: &["any"],
                namespace: None,
                now_ms: now,
            },
        )
        .unwrap()
    }

    #[tokio::test]
    async fn counters_stay_exact_through_status_changes_dependency_edits_and_deletes() {
        let (_dir, store) = open();
        store
            .write(|tx| {
                let a = insert(tx, &new_task("a", "medium", vec![]))?;
                let b = insert(tx, &new_task("b", "medium", vec![a.id]))?;
                let c = insert(tx, &new_task("c", "medium", vec![a.id, b.id]))?;
                let d = insert(tx, &new_task("d", "low", vec![]))?;
                assert!(counter_mismatches(tx.db())?.is_empty());
                let a_row = get(tx.db(), a.id)?.unwrap();
                assert_eq!((a_row.unblocks, a_row.unmet_deps), (2, 0));
                assert_eq!(get(tx.db(), c.id)?.unwrap().unmet_deps, 2);
                // a unblocks two tasks, d none: a first although both are ready.
                assert_eq!(poll(tx, "w"), Some(a.id));

                let (a_row, _) =
                    claims::claim(tx, &a_row, "w", 60_000, StatusSource::PollAndClaim)?;
                assert_eq!(poll(tx, "w"), Some(d.id), "b and c wait for a");
                claims::delete_for_task(tx, a.id)?;
                let a_row = change_status(
                    tx,
                    &a_row,
                    "done",
                    None,
                    "w",
                    StatusSource::ReleaseTaskClaim,
                )?;
                assert!(counter_mismatches(tx.db())?.is_empty());
                assert_eq!(poll(tx, "w"), Some(b.id), "b unblocks c");
                // Reopen a (still assigned to w): b and c wait again; only w gets a.
                let a_row =
                    change_status(tx, &a_row, "pending", None, "x", StatusSource::UpdateTask)?;
                assert!(counter_mismatches(tx.db())?.is_empty());
                assert_eq!(poll(tx, "w"), Some(a.id));
                assert_eq!(poll(tx, "other"), Some(d.id));
                let sources: Vec<String> = history(tx.db(), a.id)?
                    .into_iter()
                    .map(|h| h.source)
                    .collect();
                assert_eq!(
                    sources,
                    ["poll_and_claim", "release_task_claim", "update_task"]
                );
                // Edit c's dependencies, then delete b (force) and a.
                let c_row = get(tx.db(), c.id)?.unwrap();
                set_dependencies(tx, &c_row, &[d.id])?;
                assert!(counter_mismatches(tx.db())?.is_empty());
                let b_row = get(tx.db(), b.id)?.unwrap();
                delete(tx, &b_row, Some("test"))?;
                assert!(counter_mismatches(tx.db())?.is_empty());
                delete(tx, &a_row, None)?;
                assert!(counter_mismatches(tx.db())?.is_empty());
                assert_eq!(poll(tx, "w"), Some(d.id));
                let history = history(tx.db(), a.id)?;
                assert!(history.is_empty(), "history cascades with the task");
                Ok(())
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn orphan_requeue_takes_unprotected_work_only_and_keeps_pre_assignments() {
        let (_dir, store) = open();
        store
            .write(|tx| {
                let unclaimed = insert(tx, &new_task("no claim", "medium", vec![]))?;
                let unclaimed = change_status(
                    tx,
                    &unclaimed,
                    "in_progress",
                    Some(Some("ghost")),
                    "ghost",
                    StatusSource::UpdateTask,
                )?;
                let leased = insert(tx, &new_task("leased", "medium", vec![]))?;
                claims::claim(tx, &leased, "ghost", 60_000, StatusSource::ClaimTask)?;
                let mut pre = new_task("pre-assigned", "medium", vec![]);
                pre.assigned_to = Some("ghost".into());
                let pre = insert(tx, &pre)?;
                assert_eq!(claims::requeue_orphans(tx)?, 1);
                let unclaimed = get(tx.db(), unclaimed.id)?.unwrap();
                assert_eq!(
                    (unclaimed.status.as_str(), unclaimed.assigned_to),
                    ("pending", None)
                );
                assert_eq!(get(tx.db(), leased.id)?.unwrap().status, "in_progress");
                assert_eq!(
                    get(tx.db(), pre.id)?.unwrap().assigned_to.as_deref(),
                    Some("ghost")
                );
                let last = history(tx.db(), unclaimed.id)?.pop().unwrap();
                assert_eq!(
                    (last.source.as_str(), last.changed_by.as_str()),
                    ("maintenance", "system")
                );
                Ok(())
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_live_claim_on_a_pending_row_is_skipped_not_blocking_the_queue() {
        let (_dir, store) = open();
        store
            .write(|tx| {
                let best = insert(tx, &new_task("best", "critical", vec![]))?;
                let next = insert(tx, &new_task("next", "low", vec![]))?;
                // A leftover claim on a pending task (not produced by the tools, but D22 says it
                // must not stall every poller).
                let (claimed, _) = claims::claim(tx, &best, "w", 60_000, StatusSource::ClaimTask)?;
                change_status(
                    tx,
                    &claimed,
                    "pending",
                    Some(None),
                    "x",
                    StatusSource::UpdateTask,
                )?;
                assert_eq!(poll(tx, "anyone"), Some(next.id));
                Ok(())
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn poll_query_walks_the_partial_index_without_a_scan_or_sort() {
        let (_dir, store) = open();
        let plans = store
            .read(|db| Ok((poll_query_plan(db, None)?, poll_query_plan(db, Some("ns"))?)))
            .await
            .unwrap();
        for (plan, index) in [
            (plans.0, "tasks_poll_queue"),
            (plans.1, "tasks_poll_queue_ns"),
        ] {
            let text = plan.join("\n");
            assert!(
                text.contains(&format!("SEARCH tasks USING INDEX {index}")),
                "{text}"
            );
            assert!(!text.contains("SCAN"), "{text}");
            assert!(!text.contains("TEMP B-TREE"), "{text}");
        }
    }

    #[tokio::test]
    async fn deletes_advance_the_task_stream_and_survive_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        let clock = ManualClock::new(1_000);
        let store = Store::open(&path, SyncMode::Normal, clock.clone()).unwrap();
        let head = store
            .write(|tx| {
                let task = insert(tx, &new_task("x", "high", vec![]))?;
                delete(tx, &task, Some("manual_delete"))?;
                Ok(tx.next_seq_quiet() - 1)
            })
            .await
            .unwrap();
        assert_eq!(store.subscribe().borrow().get(Stream::Tasks), head);
        store.close();
        let store = Store::open(&path, SyncMode::Normal, clock).unwrap();
        assert_eq!(store.subscribe().borrow().get(Stream::Tasks), head);
        store.close();
    }
}
