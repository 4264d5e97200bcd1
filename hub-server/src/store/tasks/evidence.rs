//! Evidence refs of a task (the done gate counts them): insert-or-ignore on
//! `(task_id, evidence_ref)` and counts. Must not judge whether the evidence suffices.

use rusqlite::params;

use crate::store::{Db, StoreResult, WriteTx};

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
