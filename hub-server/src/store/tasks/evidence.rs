//! Evidence refs of a task (the done gate counts them): insert-or-ignore on
//! `(task_id, evidence_ref)` and counts. Must not judge whether the evidence suffices.

use crate::store::sql::params;

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
        "INSERT INTO task_evidence (task_id, evidence_ref, added_by, created_at)
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
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

/// One evidence ref of a task, as the handoff packet shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceRow {
    pub evidence_ref: String,
    pub added_by: String,
    pub created_at: i64,
}

/// The newest `limit` evidence refs of a task (`created_at DESC, evidence_ref ASC`).
pub fn recent_evidence(db: &Db, task_id: i64, limit: i64) -> StoreResult<Vec<EvidenceRow>> {
    let mut stmt = db.conn.prepare_cached(
        "SELECT evidence_ref, added_by, created_at FROM task_evidence WHERE task_id = ?1
         ORDER BY created_at DESC, evidence_ref ASC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![task_id, limit], |row| {
        Ok(EvidenceRow {
            evidence_ref: row.get(0)?,
            added_by: row.get(1)?,
            created_at: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
