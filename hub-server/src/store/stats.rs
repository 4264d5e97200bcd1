//! Per-minute aggregates of calls (`call_minutes`: tool, outcome, auth status, namespace,
//! agent) and activity (`activity_minutes`: action, agent, tag). KPIs, SLOs, auth coverage
//! and reports count these instead of one raw row per call, so storage grows with the number
//! of distinct keys a minute, not with the call rate. Windows are whole minutes: the bucket
//! holding the window's start counts whole.

use crate::store::sql::params;

use super::{Db, StoreResult, WriteTx};
use crate::domain::observability::{CallOutcome, minute_of};

/// One key of `call_minutes`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallKey {
    pub minute_ms: i64,
    pub tool: &'static str,
    pub outcome: CallOutcome,
    /// The auth check's status (valid, invalid, missing, skipped).
    pub auth: &'static str,
    pub namespace: String,
    /// Empty when the call named no agent.
    pub agent_id: String,
}

/// One key of `activity_minutes`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActivityKey {
    pub minute_ms: i64,
    pub action: String,
    pub agent_id: String,
    pub tag: String,
}

pub fn add_calls(tx: &mut WriteTx<'_>, counts: &[(CallKey, i64)]) -> StoreResult<()> {
    let mut upsert = tx.conn().prepare_cached(
        "INSERT INTO call_minutes (minute_ms, tool, outcome, auth, namespace, agent_id, calls)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (minute_ms, tool, outcome, auth, namespace, agent_id)
         DO UPDATE SET calls = call_minutes.calls + excluded.calls",
    )?;
    for (key, n) in counts {
        upsert.execute(params![
            key.minute_ms,
            key.tool,
            key.outcome.as_str(),
            key.auth,
            key.namespace,
            key.agent_id,
            n
        ])?;
    }
    Ok(())
}

pub fn add_activity(tx: &mut WriteTx<'_>, counts: &[(ActivityKey, i64)]) -> StoreResult<()> {
    let mut upsert = tx.conn().prepare_cached(
        "INSERT INTO activity_minutes (minute_ms, action, agent_id, tag, events)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (minute_ms, action, agent_id, tag)
         DO UPDATE SET events = activity_minutes.events + excluded.events",
    )?;
    for (key, n) in counts {
        upsert.execute(params![key.minute_ms, key.action, key.agent_id, key.tag, n])?;
    }
    Ok(())
}

/// Activity events in buckets from the one holding `from_ms` on.
pub fn activity_total(db: &Db, from_ms: i64) -> StoreResult<i64> {
    Ok(db
        .conn
        .prepare_cached(
            "SELECT COALESCE(SUM(events), 0) FROM activity_minutes WHERE minute_ms >= ?1",
        )?
        .query_row([minute_of(from_ms)], |r| r.get(0))?)
}

/// Events of `action` (any tag when `tag` is `None`) from the bucket holding `from_ms` on.
pub fn action_count(db: &Db, from_ms: i64, action: &str, tag: Option<&str>) -> StoreResult<i64> {
    Ok(db
        .conn
        .prepare_cached(
            "SELECT COALESCE(SUM(events), 0) FROM activity_minutes
              WHERE action = ?1 AND minute_ms >= ?2 AND (?3 IS NULL OR tag = ?3)",
        )?
        .query_row(params![action, minute_of(from_ms), tag], |r| r.get(0))?)
}

/// Sum of [`action_count`] over `actions`.
pub fn actions_count(db: &Db, from_ms: i64, actions: &[&str]) -> StoreResult<i64> {
    actions
        .iter()
        .map(|action| action_count(db, from_ms, action, None))
        .sum()
}

/// (tag, events) of `action`: e.g. the retry hints of wait timeouts.
pub fn action_tags(db: &Db, from_ms: i64, action: &str) -> StoreResult<Vec<(String, i64)>> {
    let mut stmt = db.conn.prepare_cached(
        "SELECT tag, SUM(events) FROM activity_minutes
          WHERE action = ?1 AND minute_ms >= ?2 GROUP BY tag",
    )?;
    let rows = stmt
        .query_map(params![action, minute_of(from_ms)], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<crate::store::sql::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Top `limit` actions by events, count desc then action asc.
pub fn top_actions(db: &Db, from_ms: i64, limit: i64) -> StoreResult<Vec<(String, i64)>> {
    let mut stmt = db.conn.prepare_cached(
        "SELECT action, SUM(events) AS n FROM activity_minutes WHERE minute_ms >= ?1
          GROUP BY action ORDER BY n DESC, action LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![minute_of(from_ms), limit], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<crate::store::sql::Result<Vec<_>>>()?;
    Ok(rows)
}

/// SQL condition: the call passed the rate-limit and quota checks (only those are auth
/// events, spec §4.5). Kept in step with [`CallOutcome::passed_admission_limits`] by a test.
pub(super) const ADMITTED: &str = "outcome IN ('ok', 'refused')";

/// Auth outcomes of the calls that passed the rate-limit and quota checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthCounts {
    pub key: String,
    pub valid: i64,
    pub missing: i64,
    pub invalid: i64,
    pub skipped: i64,
}

impl AuthCounts {
    pub fn total(&self) -> i64 {
        self.valid + self.missing + self.invalid + self.skipped
    }
}

const AUTH_SUMS: &str = "COALESCE(SUM(calls * (auth = 'valid')), 0),
     COALESCE(SUM(calls * (auth = 'missing')), 0), COALESCE(SUM(calls * (auth = 'invalid')), 0),
     COALESCE(SUM(calls * (auth = 'skipped')), 0)";

/// `group` is `NULL` (overall), `tool` or `agent_id`; `[from, to)` in whole minutes.
fn auth_rows(
    db: &Db,
    group: &str,
    from_ms: i64,
    to_ms: i64,
    limit: i64,
) -> StoreResult<Vec<AuthCounts>> {
    let sql = if group == "NULL" {
        format!(
            "SELECT 'all', {AUTH_SUMS} FROM call_minutes
              WHERE minute_ms >= ?1 AND minute_ms < ?2 AND {ADMITTED} LIMIT ?3"
        )
    } else {
        format!(
            "SELECT {group}, {AUTH_SUMS} FROM call_minutes
              WHERE minute_ms >= ?1 AND minute_ms < ?2 AND {ADMITTED}
              GROUP BY {group} ORDER BY SUM(calls) DESC, {group} LIMIT ?3"
        )
    };
    let mut stmt = db.conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params![minute_of(from_ms), to_ms, limit], |r| {
            Ok(AuthCounts {
                key: r.get(0)?,
                valid: r.get(1)?,
                missing: r.get(2)?,
                invalid: r.get(3)?,
                skipped: r.get(4)?,
            })
        })?
        .collect::<crate::store::sql::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn auth_total(db: &Db, from_ms: i64, to_ms: i64) -> StoreResult<AuthCounts> {
    Ok(auth_rows(db, "NULL", from_ms, to_ms, 1)?
        .pop()
        .unwrap_or_default())
}

/// Per tool, most calls first.
pub fn auth_by_tool(db: &Db, from_ms: i64, to_ms: i64, limit: i64) -> StoreResult<Vec<AuthCounts>> {
    auth_rows(db, "tool", from_ms, to_ms, limit)
}

/// Per agent (empty = no agent named), most calls first.
pub fn auth_by_agent(
    db: &Db,
    from_ms: i64,
    to_ms: i64,
    limit: i64,
) -> StoreResult<Vec<AuthCounts>> {
    auth_rows(db, "agent_id", from_ms, to_ms, limit)
}

/// Calls of `tool` (all outcomes) from the bucket holding `from_ms` on.
pub fn tool_calls(db: &Db, from_ms: i64, tool: &str) -> StoreResult<i64> {
    Ok(db
        .conn
        .prepare_cached(&format!(
            "SELECT COALESCE(SUM(calls), 0) FROM call_minutes
              WHERE minute_ms >= ?1 AND tool = ?2 AND {ADMITTED}"
        ))?
        .query_row(params![minute_of(from_ms), tool], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admitted_matches_the_outcomes_that_passed_the_limits() {
        for outcome in CallOutcome::ALL {
            let quoted = format!("'{}'", outcome.as_str());
            assert_eq!(
                ADMITTED.contains(&quoted),
                outcome.passed_admission_limits(),
                "{outcome:?}"
            );
        }
    }
}
