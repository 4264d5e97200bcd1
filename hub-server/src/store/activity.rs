//! The activity log: who did what, as short `key=value` summaries. Never holds secrets or
//! message bodies. Holds every row that advances the activity stream and a bounded sample of
//! quiet rows (see `crate::bookkeeping`); counts come from `super::stats`.

use crate::store::sql::params;

use super::{Db, StoreResult, Stream, WriteTx};

/// One activity row to write.
#[derive(Debug, Clone)]
pub struct ActivityRow {
    pub agent_id: String,
    pub action: String,
    pub details: String,
    /// Bookkeeping of reads and waits: recorded, but it does not advance the activity
    /// stream, so it never wakes a waiter (the hub must not wake itself).
    pub quiet: bool,
}

pub fn insert(tx: &mut WriteTx<'_>, row: &ActivityRow) -> StoreResult<()> {
    let now = tx.now_ms();
    insert_at(tx, row, now)
}

/// Inserts a row dated `at_ms` (the time of its call, for rows written in a later batch).
pub fn insert_at(tx: &mut WriteTx<'_>, row: &ActivityRow, at_ms: i64) -> StoreResult<()> {
    let seq = if row.quiet {
        // Quiet rows still take a sequence number, but leave the stream head alone.
        tx.next_seq_quiet()
    } else {
        tx.next_seq(Stream::Activity)
    };
    tx.conn()
        .prepare_cached(
            "INSERT INTO activity_log (seq, agent_id, action, details, quiet, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            seq,
            row.agent_id,
            row.action,
            row.details,
            row.quiet,
            at_ms
        ])?;
    Ok(())
}

/// A stored activity row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRow {
    pub id: i64,
    pub agent_id: String,
    pub action: String,
    pub details: String,
    pub created_at: i64,
}

/// Newest first (`created_at DESC, id DESC`), optionally one agent's rows.
pub fn list(
    db: &Db,
    agent_id: Option<&str>,
    limit: i64,
    offset: i64,
) -> StoreResult<Vec<LoggedRow>> {
    let mut stmt = db.conn.prepare_cached(
        "SELECT id, agent_id, action, details, created_at FROM activity_log
          WHERE (?1 IS NULL OR agent_id = ?1)
          ORDER BY created_at DESC, id DESC LIMIT ?2 OFFSET ?3",
    )?;
    let rows = stmt
        .query_map(params![agent_id, limit, offset], |r| {
            Ok(LoggedRow {
                id: r.get(0)?,
                agent_id: r.get(1)?,
                action: r.get(2)?,
                details: r.get(3)?,
                created_at: r.get(4)?,
            })
        })?
        .collect::<crate::store::sql::Result<Vec<_>>>()?;
    Ok(rows)
}
