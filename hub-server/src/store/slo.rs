//! SLO alerts (`slo_alerts`: at most one open row per code) and the measurements the SLO
//! rules read from the task board.

use crate::store::sql::{OptionalExtension, params};

use super::{Db, StoreResult, WriteTx};
use crate::domain::observability::SloInputs;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    pub id: i64,
    pub code: String,
    pub severity: String,
    pub message: String,
    pub details_json: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub resolved_at: Option<i64>,
}

const COLUMNS: &str =
    "id, code, severity, message, details_json, created_at, updated_at, resolved_at";

fn row(r: &crate::store::sql::Row<'_>) -> crate::store::sql::Result<AlertRow> {
    Ok(AlertRow {
        id: r.get(0)?,
        code: r.get(1)?,
        severity: r.get(2)?,
        message: r.get(3)?,
        details_json: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
        resolved_at: r.get(7)?,
    })
}

/// Task-board measurements at `now` (claim churn comes from the activity aggregates).
pub fn task_inputs(db: &Db, now: i64, stale_in_progress_ms: i64) -> StoreResult<SloInputs> {
    let (pending_count, oldest_pending_created_at) = db
        .conn
        .prepare_cached("SELECT COUNT(*), MIN(created_at) FROM tasks WHERE status = 'pending'")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let (stale_count, oldest_stale_updated_at) = db
        .conn
        .prepare_cached(
            "SELECT COUNT(*), MIN(t.updated_at) FROM tasks t
              WHERE t.status = 'in_progress' AND t.updated_at < ?1
                AND NOT EXISTS (SELECT 1 FROM task_claims c
                                 WHERE c.task_id = t.id AND c.lease_expires_at > ?2)",
        )?
        .query_row(params![now - stale_in_progress_ms, now], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok(SloInputs {
        pending_count,
        oldest_pending_created_at,
        stale_count,
        oldest_stale_updated_at,
        claim_events: 0,
    })
}

pub fn open_alert(db: &Db, code: &str) -> StoreResult<Option<AlertRow>> {
    Ok(db
        .conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM slo_alerts WHERE code = ?1 AND resolved_at IS NULL"
        ))?
        .query_row([code], row)
        .optional()?)
}

pub fn open(
    tx: &mut WriteTx<'_>,
    code: &str,
    severity: &str,
    message: &str,
    details_json: &str,
) -> StoreResult<()> {
    let now = tx.now_ms();
    tx.conn()
        .prepare_cached(
            "INSERT INTO slo_alerts (code, severity, message, details_json, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        )?
        .execute(params![code, severity, message, details_json, now])?;
    Ok(())
}

pub fn update(
    tx: &mut WriteTx<'_>,
    id: i64,
    severity: &str,
    message: &str,
    details_json: &str,
) -> StoreResult<()> {
    let now = tx.now_ms();
    tx.conn()
        .prepare_cached(
            "UPDATE slo_alerts SET severity = ?2, message = ?3, details_json = ?4, updated_at = ?5
              WHERE id = ?1",
        )?
        .execute(params![id, severity, message, details_json, now])?;
    Ok(())
}

pub fn resolve(tx: &mut WriteTx<'_>, id: i64) -> StoreResult<()> {
    let now = tx.now_ms();
    tx.conn()
        .prepare_cached("UPDATE slo_alerts SET resolved_at = ?2, updated_at = ?2 WHERE id = ?1")?
        .execute(params![id, now])?;
    Ok(())
}

/// Alerts newest update first; `open_only` keeps unresolved ones, `code` filters.
pub fn list(
    db: &Db,
    open_only: bool,
    code: Option<&str>,
    limit: i64,
    offset: i64,
) -> StoreResult<Vec<AlertRow>> {
    let mut stmt = db.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM slo_alerts
          WHERE (?1 = 0 OR resolved_at IS NULL) AND (?2 IS NULL OR code = ?2)
          ORDER BY updated_at DESC, id DESC LIMIT ?3 OFFSET ?4"
    ))?;
    let rows = stmt
        .query_map(params![open_only, code, limit, offset], row)?
        .collect::<crate::store::sql::Result<Vec<_>>>()?;
    Ok(rows)
}
