//! The task board's rows: tasks (insert, column updates, status changes, delete and
//! archive) and the maintenance reads over them. Dependencies, the poll queue and listing,
//! evidence and status history have their own files below; claims (leases) live in
//! [`super::claims`] and quality counters in [`super::quality`]. Must not know MCP, render
//! JSON or decide who may do what (that is `domain/` and `service/`).
//!
//! Invariants kept here:
//! - every change of a task row takes a new sequence number on the tasks stream (`seq`);
//!   deletes advance the stream head too (recorded in `hub_meta.tasks_delete_seq`);
//! - `unmet_deps` (dependencies not done) and `unblocks` (not-done dependents) are kept exact
//!   by every path that changes a status, the dependency list, or deletes a task — the poll
//!   queue index depends on them;
//! - every status change goes through [`change_status`], which writes the history row.

mod dependencies;
mod evidence;
mod history;
mod queue;
#[cfg(test)]
mod tests;

use crate::store::sql::types::{
    FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef,
};
use crate::store::sql::{OptionalExtension, Row, params};

use super::{Db, StoreResult, Stream, WriteTx};
pub use crate::domain::task::StatusSource;
use crate::domain::task::{Consistency, ExecutionMode, Priority, TaskStatus};
use dependencies::{adjust_unblocks, adjust_unmet};
pub use dependencies::{
    cycle_through, dependencies, missing_ids, open_dependents, set_dependencies, unmet_dependencies,
};
pub use evidence::{
    EvidenceRow, add_evidence, evidence_count, evidence_total_with, recent_evidence,
};
pub use history::{HistoryRow, history};
pub use queue::{ListPage, ListQuery, PollQuery, list, next_candidate, poll_query_plan};

// The typed states cross the row boundary here: stored as their wire spelling, and a value
// no version of the hub writes is a read error rather than a silent default.
macro_rules! sql_text_enum {
    ($($ty:ty),*) => {$(
        impl ToSql for $ty {
            fn to_sql(&self) -> crate::store::sql::ToSqlResult<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
        impl FromSql for $ty {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                <$ty>::parse(text).ok_or_else(|| {
                    FromSqlError::Other(format!("unknown {} {text:?}", stringify!($ty)).into())
                })
            }
        }
    )*};
}
sql_text_enum!(
    TaskStatus,
    Priority,
    ExecutionMode,
    Consistency,
    StatusSource
);

#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    pub id: i64,
    pub seq: i64,
    pub title: String,
    pub description: String,
    pub namespace: String,
    pub execution_mode: ExecutionMode,
    pub consistency_mode: Consistency,
    pub status: TaskStatus,
    pub assigned_to: Option<String>,
    pub created_by: String,
    pub priority: Priority,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub unmet_deps: i64,
    pub unblocks: i64,
}

impl TaskRow {
    pub fn is_done(&self) -> bool {
        self.status.is_done()
    }
}

const COLUMNS: &str = "id, seq, title, description, namespace, execution_mode, consistency_mode, \
                       status, assigned_to, created_by, priority, trace_id, span_id, created_at, \
                       updated_at, unmet_deps, unblocks";

fn from_row(row: &Row<'_>) -> crate::store::sql::Result<TaskRow> {
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

/// The namespace of task `id`, if it exists (what a task-scoped call is charged to).
pub fn namespace_of(db: &Db, id: i64) -> StoreResult<Option<String>> {
    Ok(db
        .conn
        .prepare_cached("SELECT namespace FROM tasks WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?)
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
    pub execution_mode: ExecutionMode,
    pub consistency_mode: Consistency,
    pub assigned_to: Option<String>,
    pub created_by: String,
    pub priority: Priority,
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?14, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)
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
                task.priority.rank(),
                task.trace_id,
                task.span_id,
                now,
                TaskStatus::Pending
            ],
            |r| r.get(0),
        )?;
    let row = get(tx.db(), id)?.ok_or_else(|| super::StoreError::NotFound("task".into()))?;
    set_dependencies(tx, &row, &task.depends_on)?;
    Ok(get(tx.db(), id)?.unwrap_or(row))
}

/// Column updates of a task; `None` leaves a column alone.
#[derive(Debug, Clone, Default)]
pub struct TaskUpdate {
    pub title: Option<String>,
    pub description: Option<String>,
    pub namespace: Option<String>,
    pub execution_mode: Option<ExecutionMode>,
    pub consistency_mode: Option<Consistency>,
    pub priority: Option<Priority>,
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
            update.priority.map(Priority::rank),
            assign_set,
            assign_value,
            trace_set,
            trace_value,
            span_set,
            span_value
        ])?;
    Ok(())
}

/// Sets a task's status (and optionally its assignee), `updated_at` and `seq`; writes the
/// history row when the status changes and keeps the dependency counters exact when the
/// task enters or leaves `done`. Returns the updated row.
pub fn change_status(
    tx: &mut WriteTx<'_>,
    task: &TaskRow,
    to_status: TaskStatus,
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
                source,
                now
            ])?;
        let was_done = task.is_done();
        let now_done = to_status.is_done();
        if was_done != now_done {
            let delta = if now_done { -1 } else { 1 };
            let dependents: Vec<i64> = {
                let mut stmt = tx.conn().prepare_cached(
                    "SELECT task_id FROM task_dependencies WHERE depends_on_task_id = ?1",
                )?;
                stmt.query_map([task.id], |r| r.get(0))?
                    .collect::<crate::store::sql::Result<Vec<_>>>()?
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
                "INSERT INTO tasks_archive
                     (id, title, description, namespace, execution_mode, consistency_mode,
                      status, assigned_to, created_by, priority, trace_id, span_id, created_at,
                      updated_at, archived_at, archive_reason)
                 SELECT id, title, description, namespace, execution_mode, consistency_mode,
                        status, assigned_to, created_by, priority, trace_id, span_id,
                        created_at, updated_at, ?2, ?3
                 FROM tasks WHERE id = ?1
                 ON CONFLICT (id) DO UPDATE SET
                     title = excluded.title, description = excluded.description,
                     namespace = excluded.namespace, execution_mode = excluded.execution_mode,
                     consistency_mode = excluded.consistency_mode, status = excluded.status,
                     assigned_to = excluded.assigned_to, created_by = excluded.created_by,
                     priority = excluded.priority, trace_id = excluded.trace_id,
                     span_id = excluded.span_id, created_at = excluded.created_at,
                     updated_at = excluded.updated_at, archived_at = excluded.archived_at,
                     archive_reason = excluded.archive_reason",
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
                .collect::<crate::store::sql::Result<Vec<_>>>()?
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
pub fn stream_head(db: &Db) -> crate::store::sql::Result<i64> {
    let (newest, deleted): (i64, i64) = db.conn.query_row(
        "SELECT COALESCE((SELECT MAX(seq) FROM tasks), 0),
                COALESCE((SELECT value FROM hub_meta WHERE key = 'tasks_delete_seq'), 0)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(newest.max(deleted))
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
        .collect::<crate::store::sql::Result<Vec<_>>>()?)
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
        .collect::<crate::store::sql::Result<Vec<_>>>()?)
}

/// Pending and in-progress tasks assigned to `agent_id`.
pub fn open_assigned_to(db: &Db, agent_id: &str) -> StoreResult<Vec<TaskRow>> {
    let mut stmt = db.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM tasks
         WHERE assigned_to = ?1 AND status IN ('pending', 'in_progress')"
    ))?;
    Ok(stmt
        .query_map([agent_id], from_row)?
        .collect::<crate::store::sql::Result<Vec<_>>>()?)
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
        .collect::<crate::store::sql::Result<Vec<CounterMismatch>>>()?;
    Ok(rows
        .into_iter()
        .filter(|(_, unmet, unmet_actual, unblocks, unblocks_actual)| {
            unmet != unmet_actual || unblocks != unblocks_actual
        })
        .collect())
}
