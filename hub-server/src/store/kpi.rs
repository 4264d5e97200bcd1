//! The KPI snapshot's queries over the task board, messages and consensus decisions (spec
//! tools-more §4.2). Each window query is a range scan of a time index; activity and call
//! counts come from [`super::stats`].

use crate::store::sql::{Backend, params};

use super::{Db, StoreResult};

/// Point-in-time queue figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Queue {
    pub tasks_pending: i64,
    pub tasks_in_progress: i64,
    pub tasks_done: i64,
    pub claims_active: i64,
    pub agents_online_5m: i64,
}

fn count(db: &Db, sql: &str, args: impl crate::store::sql::Params) -> StoreResult<i64> {
    Ok(db.conn.prepare_cached(sql)?.query_row(args, |r| r.get(0))?)
}

pub fn queue(db: &Db, now: i64) -> StoreResult<Queue> {
    let status = |s: &str| count(db, "SELECT COUNT(*) FROM tasks WHERE status = ?1", [s]);
    Ok(Queue {
        tasks_pending: status("pending")?,
        tasks_in_progress: status("in_progress")?,
        tasks_done: status("done")?,
        claims_active: count(
            db,
            "SELECT COUNT(*) FROM task_claims WHERE lease_expires_at > ?1",
            [now],
        )?,
        agents_online_5m: count(
            db,
            "SELECT COUNT(*) FROM agents WHERE last_seen >= ?1",
            [now - 300_000],
        )?,
    })
}

/// Figures of one window `[from, now]` from the tables with exact timestamps.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TableWindow {
    pub messages_created: i64,
    pub avg_message_chars: i64,
    pub tasks_updated: i64,
    pub done_tasks_updated: i64,
    pub status_transitions: i64,
    pub done_transitions: i64,
    pub reopen_transitions: i64,
    pub done_with_evidence: i64,
    pub consensus_decisions: i64,
    pub consensus_escalations: i64,
    pub consensus_finalized: i64,
    pub consensus_estimated_tokens_total: f64,
}

pub fn table_window(db: &Db, from: i64) -> StoreResult<TableWindow> {
    let (messages_created, avg_chars): (i64, Option<f64>) = db
        .conn
        .prepare_cached(
            "SELECT COUNT(*), AVG(length(content)) FROM messages WHERE created_at >= ?1",
        )?
        .query_row([from], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let (tasks_updated, done_tasks_updated): (i64, i64) = db
        .conn
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(status = 'done'), 0) FROM tasks WHERE updated_at >= ?1",
        )?
        .query_row([from], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let (status_transitions, done_transitions, reopen_transitions): (i64, i64, i64) = db
        .conn
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(to_status = 'done'), 0),
                    COALESCE(SUM(from_status = 'done' AND to_status <> 'done'), 0)
               FROM task_status_history WHERE created_at >= ?1",
        )?
        .query_row([from], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let done_with_evidence = count(
        db,
        "SELECT COUNT(DISTINCT h.task_id) FROM task_status_history h
          WHERE h.created_at >= ?1 AND h.to_status = 'done'
            AND EXISTS (SELECT 1 FROM task_evidence e WHERE e.task_id = h.task_id)",
        [from],
    )?;
    let (decisions, escalations, finalized, tokens): (i64, i64, i64, f64) = db
        .conn
        .prepare_cached(&format!(
            "SELECT COUNT(*), COALESCE(SUM(outcome = 'escalate_verifier'), 0),
                    COALESCE(SUM(outcome IN ('accept', 'reject')), 0),
                    COALESCE(SUM({token_cost}), 0.0)
               FROM consensus_decisions WHERE created_at >= ?1",
            // The hub writes `stats_json` itself; only its JSON functions differ.
            token_cost = match db.backend() {
                Backend::Sqlite => {
                    "CASE WHEN json_valid(stats_json)
                     THEN json_extract(stats_json, '$.estimated_token_cost') END"
                }
                Backend::Postgres => {
                    "(stats_json::jsonb ->> 'estimated_token_cost')::double precision"
                }
            }
        ))?
        .query_row(params![from], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
    Ok(TableWindow {
        messages_created,
        avg_message_chars: avg_chars.map(|a| a.round() as i64).unwrap_or(0),
        tasks_updated,
        done_tasks_updated,
        status_transitions,
        done_transitions,
        reopen_transitions,
        done_with_evidence,
        consensus_decisions: decisions,
        consensus_escalations: escalations,
        consensus_finalized: finalized,
        consensus_estimated_tokens_total: tokens,
    })
}

/// `{key, total, pending, in_progress}` per value of a task column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    pub key: String,
    pub total: i64,
    pub pending: i64,
    pub in_progress: i64,
}

/// Which task column a backlog groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BacklogBy {
    Namespace,
    ExecutionMode,
}

pub fn backlog(db: &Db, by: BacklogBy, limit: i64) -> StoreResult<Vec<Backlog>> {
    let column = match by {
        BacklogBy::Namespace => "namespace",
        BacklogBy::ExecutionMode => "execution_mode",
    };
    let mut stmt = db.conn.prepare_cached(&format!(
        "SELECT {column}, COUNT(*) AS n, COALESCE(SUM(status = 'pending'), 0),
                COALESCE(SUM(status = 'in_progress'), 0)
           FROM tasks GROUP BY {column} ORDER BY n DESC, {column} LIMIT ?1"
    ))?;
    let rows = stmt
        .query_map([limit], |r| {
            Ok(Backlog {
                key: r.get(0)?,
                total: r.get(1)?,
                pending: r.get(2)?,
                in_progress: r.get(3)?,
            })
        })?
        .collect::<crate::store::sql::Result<Vec<_>>>()?;
    Ok(rows)
}
