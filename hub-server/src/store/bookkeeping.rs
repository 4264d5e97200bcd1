//! The guard's bookkeeping, written in batches: heartbeats, token last-use, auth events and
//! quiet activity rows gathered in memory by [`crate::bookkeeping`] and applied here in one
//! writer request, so a tool call costs the writer only its own SQL.

use rusqlite::params;

use super::activity::ActivityRow;
use super::{StoreResult, WriteTx};

/// One guarded call's auth check, as recorded in `auth_events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEvent {
    pub agent_id: Option<String>,
    pub tool_name: &'static str,
    pub status: &'static str,
    pub at_ms: i64,
}

/// What accumulated since the last flush. Times are those of the calls, not of the flush.
#[derive(Debug, Default)]
pub struct Batch {
    /// Agent id → latest call time.
    pub heartbeats: Vec<(String, i64)>,
    /// Agent id → latest valid token use.
    pub token_uses: Vec<(String, i64)>,
    pub auth_events: Vec<AuthEvent>,
    /// Quiet rows only (they wake nobody), with the time of their call.
    pub activity: Vec<(ActivityRow, i64)>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.heartbeats.is_empty()
            && self.token_uses.is_empty()
            && self.auth_events.is_empty()
            && self.activity.is_empty()
    }
}

pub fn apply(tx: &mut WriteTx<'_>, batch: &Batch) -> StoreResult<()> {
    {
        // A heartbeat never moves last_seen backwards (a register or an op may have
        // written a later time in between) and is a no-op for unknown ids.
        let mut heartbeat = tx.conn().prepare_cached(
            "UPDATE agents SET last_seen = MAX(last_seen, ?2), status = 'online' WHERE id = ?1",
        )?;
        for (agent_id, at_ms) in &batch.heartbeats {
            heartbeat.execute(params![agent_id, at_ms])?;
        }
        let mut touch = tx.conn().prepare_cached(
            "UPDATE agent_tokens SET last_used_at = MAX(last_used_at, ?2) WHERE agent_id = ?1",
        )?;
        for (agent_id, at_ms) in &batch.token_uses {
            touch.execute(params![agent_id, at_ms])?;
        }
        let mut event = tx.conn().prepare_cached(
            "INSERT INTO auth_events (agent_id, tool_name, status, created_at)
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for e in &batch.auth_events {
            event.execute(params![e.agent_id, e.tool_name, e.status, e.at_ms])?;
        }
    }
    for (row, at_ms) in &batch.activity {
        super::activity::insert_at(tx, row, *at_ms)?;
    }
    Ok(())
}
