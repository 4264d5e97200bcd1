//! Read-only aggregates for operator reports: the N-hour pool report and the live observer
//! sample (spec http-config-cli §10.4–10.5). Plain rows only; hubctl renders them.
//!
//! Call and activity counts come from the per-minute aggregates (`call_minutes`,
//! `activity_minutes`; see [`super::stats`]): a window starts at the minute holding its start.
//!
//! Every query runs on a read-only connection ([`super::inspect::open_read_only`]) and
//! tolerates tables a database does not have yet (e.g. SLO alerts) by counting zero.

use crate::store::sql::params;

use super::{Db, StoreResult};
use crate::domain::observability::minute_of;
use crate::domain::task::TaskStatus;

/// Old databases may lack a newer table; a report counts it as empty.
fn table_exists(db: &Db, table: &str) -> StoreResult<bool> {
    Ok(super::inspect::table_names(db)?
        .iter()
        .any(|name| name == table))
}

fn count(db: &Db, sql: &str, args: impl crate::store::sql::Params) -> StoreResult<i64> {
    Ok(db.conn.query_row(sql, args, |r| r.get(0))?)
}

/// `count` when `table` exists, else 0.
fn count_in(
    db: &Db,
    table: &str,
    sql: &str,
    args: impl crate::store::sql::Params,
) -> StoreResult<i64> {
    if table_exists(db, table)? {
        count(db, sql, args)
    } else {
        Ok(0)
    }
}

fn pairs(
    db: &Db,
    sql: &str,
    args: impl crate::store::sql::Params,
) -> StoreResult<Vec<(String, i64)>> {
    let mut stmt = db.conn.prepare(sql)?;
    let rows = stmt
        .query_map(args, |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<crate::store::sql::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The state right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CurrentSnapshot {
    pub agents_total: i64,
    pub agents_online: i64,
    pub agents_offline: i64,
    pub agents_online_5m: i64,
    pub tasks_total: i64,
    pub tasks_pending: i64,
    pub tasks_in_progress: i64,
    pub tasks_blocked: i64,
    pub tasks_done: i64,
    /// Claims whose lease has not expired (expired leases are not active — D29).
    pub claims_active: i64,
    pub messages_total: i64,
    pub context_keys_total: i64,
    pub protocol_blobs_total: i64,
    pub activity_total: i64,
    pub slo_open: i64,
}

pub fn current(db: &Db, now_ms: i64) -> StoreResult<CurrentSnapshot> {
    let status = |s: &str| {
        count_in(
            db,
            "tasks",
            "SELECT COUNT(*) FROM tasks WHERE status = ?1",
            [s],
        )
    };
    Ok(CurrentSnapshot {
        agents_total: count(db, "SELECT COUNT(*) FROM agents", [])?,
        agents_online: count(
            db,
            "SELECT COUNT(*) FROM agents WHERE status = 'online'",
            [],
        )?,
        agents_offline: count(
            db,
            "SELECT COUNT(*) FROM agents WHERE status <> 'online'",
            [],
        )?,
        agents_online_5m: count(
            db,
            "SELECT COUNT(*) FROM agents WHERE last_seen >= ?1",
            [now_ms - 300_000],
        )?,
        tasks_total: count_in(db, "tasks", "SELECT COUNT(*) FROM tasks", [])?,
        tasks_pending: status(TaskStatus::Pending.as_str())?,
        tasks_in_progress: status(TaskStatus::InProgress.as_str())?,
        tasks_blocked: status(TaskStatus::Blocked.as_str())?,
        tasks_done: status(TaskStatus::Done.as_str())?,
        claims_active: count_in(
            db,
            "task_claims",
            "SELECT COUNT(*) FROM task_claims WHERE lease_expires_at > ?1",
            [now_ms],
        )?,
        messages_total: count(db, "SELECT COUNT(*) FROM messages", [])?,
        context_keys_total: count_in(db, "context", "SELECT COUNT(*) FROM context", [])?,
        protocol_blobs_total: count_in(
            db,
            "protocol_blobs",
            "SELECT COUNT(*) FROM protocol_blobs",
            [],
        )?,
        activity_total: count_in(
            db,
            "activity_minutes",
            "SELECT COALESCE(SUM(events), 0) FROM activity_minutes",
            [],
        )?,
        slo_open: count_in(
            db,
            "slo_alerts",
            "SELECT COUNT(*) FROM slo_alerts WHERE resolved_at IS NULL",
            [],
        )?,
    })
}

/// Counters over `[from_ms, to_ms)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowCounters {
    pub activity_events: i64,
    pub activity_failed: i64,
    pub tasks_created: i64,
    pub tasks_updated: i64,
    pub status_done: i64,
    pub status_pending: i64,
    pub messages_sent: i64,
    pub context_rows_updated: i64,
    pub slo_triggered: i64,
    pub slo_resolved: i64,
}

pub fn window_counters(db: &Db, from_ms: i64, to_ms: i64) -> StoreResult<WindowCounters> {
    let window = params![from_ms, to_ms];
    let minutes = params![minute_of(from_ms), to_ms];
    Ok(WindowCounters {
        activity_events: count_in(
            db,
            "activity_minutes",
            "SELECT COALESCE(SUM(events), 0) FROM activity_minutes
              WHERE minute_ms >= ?1 AND minute_ms < ?2",
            minutes,
        )?,
        activity_failed: count_in(
            db,
            "activity_minutes",
            "SELECT COALESCE(SUM(events), 0) FROM activity_minutes
              WHERE minute_ms >= ?1 AND minute_ms < ?2 AND action LIKE '%failed%'",
            minutes,
        )?,
        tasks_created: count_in(
            db,
            "tasks",
            "SELECT COUNT(*) FROM tasks WHERE created_at >= ?1 AND created_at < ?2",
            window,
        )?,
        tasks_updated: count_in(
            db,
            "tasks",
            "SELECT COUNT(*) FROM tasks WHERE updated_at >= ?1 AND updated_at < ?2",
            window,
        )?,
        status_done: count_in(
            db,
            "task_status_history",
            "SELECT COUNT(*) FROM task_status_history
             WHERE created_at >= ?1 AND created_at < ?2 AND to_status = 'done'",
            window,
        )?,
        status_pending: count_in(
            db,
            "task_status_history",
            "SELECT COUNT(*) FROM task_status_history
             WHERE created_at >= ?1 AND created_at < ?2 AND to_status = 'pending'",
            window,
        )?,
        messages_sent: count(
            db,
            "SELECT COUNT(*) FROM messages WHERE created_at >= ?1 AND created_at < ?2",
            window,
        )?,
        context_rows_updated: count_in(
            db,
            "context",
            "SELECT COUNT(*) FROM context WHERE updated_at >= ?1 AND updated_at < ?2",
            window,
        )?,
        slo_triggered: count_in(
            db,
            "slo_alerts",
            "SELECT COUNT(*) FROM slo_alerts WHERE created_at >= ?1 AND created_at < ?2",
            window,
        )?,
        slo_resolved: count_in(
            db,
            "slo_alerts",
            "SELECT COUNT(*) FROM slo_alerts WHERE resolved_at >= ?1 AND resolved_at < ?2",
            window,
        )?,
    })
}

/// Auth outcomes in the window, overall, per tool and per agent.
pub use super::stats::AuthCounts;

pub fn auth_total(db: &Db, from_ms: i64, to_ms: i64) -> StoreResult<AuthCounts> {
    if !table_exists(db, "call_minutes")? {
        return Ok(AuthCounts::default());
    }
    super::stats::auth_total(db, from_ms, to_ms)
}

/// Tools whose calls arrived without a valid token (missing or invalid), worst first.
pub fn auth_gaps_by_tool(db: &Db, from_ms: i64, to_ms: i64) -> StoreResult<Vec<AuthCounts>> {
    if !table_exists(db, "call_minutes")? {
        return Ok(Vec::new());
    }
    let mut rows = super::stats::auth_by_tool(db, from_ms, to_ms, i64::MAX)?;
    rows.retain(|r| r.missing + r.invalid > 0);
    rows.sort_by(|a, b| {
        (b.missing + b.invalid)
            .cmp(&(a.missing + a.invalid))
            .then_with(|| a.key.cmp(&b.key))
    });
    rows.truncate(20);
    Ok(rows)
}

pub fn auth_by_agent(db: &Db, from_ms: i64, to_ms: i64) -> StoreResult<Vec<AuthCounts>> {
    if !table_exists(db, "call_minutes")? {
        return Ok(Vec::new());
    }
    let mut rows = super::stats::auth_by_agent(db, from_ms, to_ms, 20)?;
    for row in &mut rows {
        if row.key.is_empty() {
            row.key = "<null>".into();
        }
    }
    Ok(rows)
}

/// Activity action counts in the window, most frequent first.
pub fn top_actions(
    db: &Db,
    from_ms: i64,
    to_ms: i64,
    limit: i64,
) -> StoreResult<Vec<(String, i64)>> {
    if !table_exists(db, "activity_minutes")? {
        return Ok(Vec::new());
    }
    pairs(
        db,
        "SELECT action, SUM(events) AS n FROM activity_minutes
          WHERE minute_ms >= ?1 AND minute_ms < ?2
         GROUP BY action ORDER BY n DESC, action LIMIT ?3",
        params![minute_of(from_ms), to_ms, limit],
    )
}

pub fn top_agents(
    db: &Db,
    from_ms: i64,
    to_ms: i64,
    limit: i64,
) -> StoreResult<Vec<(String, i64)>> {
    if !table_exists(db, "activity_minutes")? {
        return Ok(Vec::new());
    }
    pairs(
        db,
        "SELECT agent_id, SUM(events) AS n FROM activity_minutes
          WHERE minute_ms >= ?1 AND minute_ms < ?2
         GROUP BY agent_id ORDER BY n DESC, agent_id LIMIT ?3",
        params![minute_of(from_ms), to_ms, limit],
    )
}

/// Count of each of `actions` in the window.
pub fn action_counts(db: &Db, from_ms: i64, to_ms: i64, actions: &[&str]) -> StoreResult<Vec<i64>> {
    actions
        .iter()
        .map(|action| {
            count_in(
                db,
                "activity_minutes",
                "SELECT COALESCE(SUM(events), 0) FROM activity_minutes
                 WHERE minute_ms >= ?1 AND minute_ms < ?2 AND action = ?3",
                params![minute_of(from_ms), to_ms, action],
            )
        })
        .collect()
}

/// Details of failed claim / release / done-gate rows in the window, for classification.
pub fn failure_details(db: &Db, from_ms: i64, to_ms: i64) -> StoreResult<Vec<String>> {
    let mut stmt = db.conn.prepare(
        "SELECT details FROM activity_log
         WHERE created_at >= ?1 AND created_at < ?2
           AND action IN ('claim_task_failed', 'release_task_claim_failed',
                          'release_task_claim_done_gate_failed', 'update_task_done_gate_failed',
                          'renew_task_claim_failed')",
    )?;
    let rows = stmt
        .query_map(params![from_ms, to_ms], |r| r.get(0))?
        .collect::<crate::store::sql::Result<Vec<String>>>()?;
    Ok(rows)
}

/// Per UTC hour (ms of the hour start): (activity, failed activity).
pub fn hourly_activity(db: &Db, from_ms: i64, to_ms: i64) -> StoreResult<Vec<(i64, i64, i64)>> {
    if !table_exists(db, "activity_minutes")? {
        return Ok(Vec::new());
    }
    let mut stmt = db.conn.prepare(
        "SELECT (minute_ms / 3600000) * 3600000 AS hour, SUM(events),
                COALESCE(SUM(events * (action LIKE '%failed%')), 0)
         FROM activity_minutes WHERE minute_ms >= ?1 AND minute_ms < ?2
         GROUP BY hour ORDER BY hour",
    )?;
    let rows = stmt
        .query_map(params![minute_of(from_ms), to_ms], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<crate::store::sql::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Per UTC hour: (hour start ms, valid, missing, invalid).
pub fn hourly_auth(db: &Db, from_ms: i64, to_ms: i64) -> StoreResult<Vec<(i64, i64, i64, i64)>> {
    if !table_exists(db, "call_minutes")? {
        return Ok(Vec::new());
    }
    let mut stmt = db.conn.prepare(&format!(
        "SELECT (minute_ms / 3600000) * 3600000 AS hour,
                COALESCE(SUM(calls * (auth = 'valid')), 0),
                COALESCE(SUM(calls * (auth = 'missing')), 0),
                COALESCE(SUM(calls * (auth = 'invalid')), 0)
         FROM call_minutes WHERE minute_ms >= ?1 AND minute_ms < ?2 AND {}
         GROUP BY hour ORDER BY hour",
        super::stats::ADMITTED
    ))?;
    let rows = stmt
        .query_map(params![minute_of(from_ms), to_ms], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<crate::store::sql::Result<Vec<_>>>()?;
    Ok(rows)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceThroughput {
    pub namespace: String,
    pub created_window: i64,
    pub done_window: i64,
    pub pending_now: i64,
}

/// Namespaces with tasks created in the window: created, completed in the window (from the
/// status history), pending now. Top 20 by created.
pub fn namespace_throughput(
    db: &Db,
    from_ms: i64,
    to_ms: i64,
) -> StoreResult<Vec<NamespaceThroughput>> {
    if !table_exists(db, "tasks")? {
        return Ok(Vec::new());
    }
    let mut stmt = db.conn.prepare(
        "SELECT t.namespace,
                COUNT(*),
                (SELECT COUNT(*) FROM task_status_history h JOIN tasks d ON d.id = h.task_id
                  WHERE d.namespace = t.namespace AND h.to_status = 'done'
                    AND h.created_at >= ?1 AND h.created_at < ?2),
                (SELECT COUNT(*) FROM tasks p WHERE p.namespace = t.namespace AND p.status = 'pending')
         FROM tasks t WHERE t.created_at >= ?1 AND t.created_at < ?2
         GROUP BY t.namespace ORDER BY COUNT(*) DESC, t.namespace LIMIT 20",
    )?;
    let rows = stmt
        .query_map(params![from_ms, to_ms], |r| {
            Ok(NamespaceThroughput {
                namespace: r.get(0)?,
                created_window: r.get(1)?,
                done_window: r.get(2)?,
                pending_now: r.get(3)?,
            })
        })?
        .collect::<crate::store::sql::Result<Vec<_>>>()?;
    Ok(rows)
}

/// One observer sample's activity-rate and namespace parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObserverRates {
    pub messages_1m: i64,
    pub activity_1m: i64,
    pub top_actions_5m: Vec<(String, i64)>,
    /// (namespace, tasks, pending, in_progress), top 8 by tasks.
    pub by_namespace: Vec<(String, i64, i64, i64)>,
}

pub fn observer_rates(db: &Db, now_ms: i64) -> StoreResult<ObserverRates> {
    let by_namespace = if table_exists(db, "tasks")? {
        let mut stmt = db.conn.prepare(
            "SELECT CASE WHEN namespace = '' THEN 'default' ELSE namespace END AS ns, COUNT(*),
                    COALESCE(SUM(status = 'pending'), 0), COALESCE(SUM(status = 'in_progress'), 0)
             FROM tasks GROUP BY ns ORDER BY COUNT(*) DESC, ns LIMIT 8",
        )?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<crate::store::sql::Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    Ok(ObserverRates {
        messages_1m: count(
            db,
            "SELECT COUNT(*) FROM messages WHERE created_at >= ?1",
            [now_ms - 60_000],
        )?,
        activity_1m: count_in(
            db,
            "activity_minutes",
            "SELECT COALESCE(SUM(events), 0) FROM activity_minutes WHERE minute_ms >= ?1",
            [minute_of(now_ms - 60_000)],
        )?,
        top_actions_5m: top_actions(db, now_ms - 300_000, i64::MAX, 5)?,
        by_namespace,
    })
}
