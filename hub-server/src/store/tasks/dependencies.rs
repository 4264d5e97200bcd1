//! Dependency edges and the denormalised counters that make the poll queue one index walk:
//! `unmet_deps` (dependencies not done) and `unblocks` (not-done dependents). Every edge
//! change here keeps both exact; status changes and deletes in the parent module call
//! [`adjust_unmet`] / [`adjust_unblocks`]. Must not change statuses.

use std::collections::{BTreeSet, HashSet, VecDeque};

use crate::store::sql::{OptionalExtension, params};

use super::TaskRow;
use crate::store::{Db, StoreResult, Stream, WriteTx};

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
                .collect::<crate::store::sql::Result<Vec<_>>>()?;
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
        .collect::<crate::store::sql::Result<Vec<_>>>()?)
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
        .collect::<crate::store::sql::Result<Vec<_>>>()?)
}

/// Tasks that depend on `task_id` and are not done, ascending.
pub fn open_dependents(db: &Db, task_id: i64) -> StoreResult<Vec<i64>> {
    let mut stmt = db.conn.prepare_cached(
        "SELECT d.task_id FROM task_dependencies d JOIN tasks t ON t.id = d.task_id
         WHERE d.depends_on_task_id = ?1 AND t.status <> 'done' ORDER BY d.task_id",
    )?;
    Ok(stmt
        .query_map([task_id], |r| r.get(0))?
        .collect::<crate::store::sql::Result<Vec<_>>>()?)
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
pub(super) fn adjust_unmet(tx: &mut WriteTx<'_>, task_id: i64, delta: i64) -> StoreResult<()> {
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

pub(super) fn adjust_unblocks(tx: &mut WriteTx<'_>, task_id: i64, delta: i64) -> StoreResult<()> {
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
