//! Agent quality counters (`agent_quality`): completions and rollbacks per agent, kept by the
//! task board and read by the done gate and consensus vote weighting. The only place that
//! touches the table; must not decide who is credited (that is `domain::task_rules`).

use crate::store::sql::{OptionalExtension, params};

use super::{Db, StoreResult, WriteTx};

/// `(completed_count, rollback_count)` of an agent; a missing row reads as zeros.
pub fn counts(db: &Db, agent_id: &str) -> StoreResult<(i64, i64)> {
    Ok(db
        .conn
        .prepare_cached(
            "SELECT completed_count, rollback_count FROM agent_quality WHERE agent_id = ?1",
        )?
        .query_row([agent_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, 0)))
}

/// Adds to an agent's counters (a row is created on first use).
pub fn record(
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
                 completed_count = agent_quality.completed_count + excluded.completed_count,
                 rollback_count = agent_quality.rollback_count + excluded.rollback_count,
                 last_updated = excluded.last_updated",
        )?
        .execute(params![agent_id, completed, rollbacks, now])?;
    Ok(())
}

/// Sets an agent's counters outright (tests and seeding; the task board only adds).
pub fn set(
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
             ON CONFLICT (agent_id) DO UPDATE SET completed_count = excluded.completed_count,
                 rollback_count = excluded.rollback_count, last_updated = excluded.last_updated",
        )?
        .execute(params![agent_id, completed, rollbacks, now])?;
    Ok(())
}
