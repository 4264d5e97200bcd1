//! The activity log: who did what, as short `key=value` summaries. Never holds secrets or
//! message bodies.

use rusqlite::params;

use super::{StoreResult, Stream, WriteTx};

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

pub fn purge_before(tx: &mut WriteTx<'_>, cutoff_ms: i64) -> StoreResult<usize> {
    Ok(tx.conn().execute(
        "DELETE FROM activity_log WHERE created_at < ?1",
        [cutoff_ms],
    )?)
}
