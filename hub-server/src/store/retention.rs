//! Retention purges in small batches: each call deletes at most `limit` of the oldest expired
//! rows of one table, so one writer request stays short (a day of activity is many thousand
//! batches, each a few milliseconds) and other writes interleave between batches instead of
//! waiting behind one multi-second DELETE.

use crate::store::sql::params;

use super::{StoreResult, WriteTx};

/// The tables retention trims by age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purge {
    Messages,
    ActivityLog,
    /// Raw auth events of databases written before the aggregates (no longer written).
    AuthEvents,
    CallMinutes,
    ActivityMinutes,
    IdempotencyKeys,
    ResolvedSloAlerts,
}

impl Purge {
    pub fn as_str(self) -> &'static str {
        match self {
            Purge::Messages => "messages",
            Purge::ActivityLog => "activity_log",
            Purge::AuthEvents => "auth_events",
            Purge::CallMinutes => "call_minutes",
            Purge::ActivityMinutes => "activity_minutes",
            Purge::IdempotencyKeys => "idempotency_keys",
            Purge::ResolvedSloAlerts => "slo_alerts",
        }
    }

    /// The batch statement: `?1` the cutoff, `?2` the batch size. Each walks an index on
    /// its time column oldest first.
    fn sql(self) -> &'static str {
        match self {
            Purge::Messages => {
                "DELETE FROM messages WHERE id IN
                   (SELECT id FROM messages WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)"
            }
            Purge::ActivityLog => {
                "DELETE FROM activity_log WHERE id IN
                   (SELECT id FROM activity_log WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)"
            }
            Purge::AuthEvents => {
                "DELETE FROM auth_events WHERE id IN
                   (SELECT id FROM auth_events WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)"
            }
            Purge::CallMinutes => {
                "DELETE FROM call_minutes
                  WHERE (minute_ms, tool, outcome, auth, namespace, agent_id) IN
                   (SELECT minute_ms, tool, outcome, auth, namespace, agent_id FROM call_minutes
                     WHERE minute_ms < ?1 LIMIT ?2)"
            }
            Purge::ActivityMinutes => {
                "DELETE FROM activity_minutes WHERE (minute_ms, action, agent_id, tag) IN
                   (SELECT minute_ms, action, agent_id, tag FROM activity_minutes
                     WHERE minute_ms < ?1 LIMIT ?2)"
            }
            Purge::IdempotencyKeys => {
                "DELETE FROM idempotency_keys WHERE (agent_id, tool_name, idempotency_key) IN
                   (SELECT agent_id, tool_name, idempotency_key FROM idempotency_keys
                    WHERE created_at < ?1 LIMIT ?2)"
            }
            Purge::ResolvedSloAlerts => {
                "DELETE FROM slo_alerts WHERE id IN
                   (SELECT id FROM slo_alerts WHERE resolved_at IS NOT NULL
                      AND resolved_at < ?1 ORDER BY resolved_at LIMIT ?2)"
            }
        }
    }
}

/// Deletes up to `limit` rows of `table` older than `cutoff_ms`; returns how many went.
pub fn purge_batch(
    tx: &mut WriteTx<'_>,
    table: Purge,
    cutoff_ms: i64,
    limit: i64,
) -> StoreResult<usize> {
    Ok(tx
        .conn()
        .prepare_cached(table.sql())?
        .execute(params![cutoff_ms, limit])?)
}
