//! The guard's bookkeeping, written in batches: heartbeats, token last-use, the per-minute
//! call and activity counts, and the sampled quiet activity rows gathered in memory by
//! [`crate::bookkeeping`] and applied here in one writer request, so a tool call costs the
//! writer only its own SQL.

use crate::store::sql::params;

use super::activity::ActivityRow;
use super::stats::{ActivityKey, CallKey};
use super::{StoreResult, WriteTx};

/// What accumulated since the last flush. Times are those of the calls, not of the flush.
#[derive(Debug, Default)]
pub struct Batch {
    /// Agent id → latest call time.
    pub heartbeats: Vec<(String, i64)>,
    /// Agent id → latest valid token use.
    pub token_uses: Vec<(String, i64)>,
    /// Calls per (minute, tool, outcome, auth, namespace, agent).
    pub calls: Vec<(CallKey, i64)>,
    /// Activity rows per (minute, action, agent, tag), stream rows included.
    pub activity_counts: Vec<(ActivityKey, i64)>,
    /// The sampled quiet rows kept raw (they wake nobody), with the time of their call.
    pub activity: Vec<(ActivityRow, i64)>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.heartbeats.is_empty()
            && self.token_uses.is_empty()
            && self.calls.is_empty()
            && self.activity_counts.is_empty()
            && self.activity.is_empty()
    }
}

pub fn apply(tx: &mut WriteTx<'_>, batch: &Batch) -> StoreResult<()> {
    {
        // A heartbeat never moves last_seen backwards (a register or an op may have
        // written a later time in between) and is a no-op for unknown ids.
        let mut heartbeat = tx.conn().prepare_cached(
            "UPDATE agents SET last_seen = CASE WHEN last_seen > ?2 THEN last_seen ELSE ?2 END, status = 'online' WHERE id = ?1",
        )?;
        for (agent_id, at_ms) in &batch.heartbeats {
            heartbeat.execute(params![agent_id, at_ms])?;
        }
        let mut touch = tx.conn().prepare_cached(
            "UPDATE agent_tokens SET last_used_at = CASE WHEN last_used_at > ?2 THEN last_used_at ELSE ?2 END WHERE agent_id = ?1",
        )?;
        for (agent_id, at_ms) in &batch.token_uses {
            touch.execute(params![agent_id, at_ms])?;
        }
    }
    super::stats::add_calls(tx, &batch.calls)?;
    super::stats::add_activity(tx, &batch.activity_counts)?;
    for (row, at_ms) in &batch.activity {
        super::activity::insert_at(tx, row, *at_ms)?;
    }
    Ok(())
}
