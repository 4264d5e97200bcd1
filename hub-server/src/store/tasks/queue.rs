//! The poll queue and the board listing: which ready task a worker gets next (one walk of a
//! partial index in claim order) and list_tasks' filtered, paged reads. Read-only; must not
//! change rows or decide routing (the caller passes the execution modes a worker may run).

use crate::store::sql::{OptionalExtension, Row, params, params_from_iter};

use super::{COLUMNS, TaskRow, from_row};
use crate::domain::task::{ExecutionMode, TaskStatus};
use crate::store::{Db, StoreResult};

/// How a candidate is picked for a worker.
#[derive(Debug, Clone)]
pub struct PollQuery<'a> {
    pub agent_id: &'a str,
    /// Execution modes the worker can run (`any`, plus `repo` or `isolated`).
    pub execution_modes: &'a [ExecutionMode],
    pub namespace: Option<&'a str>,
    pub now_ms: i64,
}

/// The sort key of the poll order: priority rank, then more unblocked first, then oldest,
/// then lowest id.
type PollKey = (i64, i64, i64, i64);

/// The best ready, pending task for the worker: unassigned or pre-assigned to it, with a
/// compatible execution mode, in the namespace if one is given, and without a live claim.
///
/// Each branch reads the head of one partial index range (`tasks_poll_queue`,
/// `tasks_poll_queue_ns`, `tasks_poll_assigned`) in claim order, so the cost does not grow
/// with the number of pending tasks.
pub fn next_candidate(db: &Db, query: &PollQuery<'_>) -> StoreResult<Option<i64>> {
    let mut best: Option<(PollKey, i64)> = None;
    let mut consider = |row: Option<(PollKey, i64)>| {
        if let Some((key, id)) = row
            && best.as_ref().is_none_or(|(best_key, _)| key < *best_key)
        {
            best = Some((key, id));
        }
    };
    let read = |r: &Row<'_>| -> crate::store::sql::Result<(PollKey, i64)> {
        let id: i64 = r.get(0)?;
        Ok(((r.get(1)?, -r.get::<_, i64>(2)?, r.get(3)?, id), id))
    };
    const NO_LIVE_CLAIM: &str = "NOT EXISTS (SELECT 1 FROM task_claims c
                                  WHERE c.task_id = tasks.id AND c.lease_expires_at > ?1)";
    const ORDER: &str = "ORDER BY priority_rank, unblocks DESC, created_at, id LIMIT 1";
    for mode in query.execution_modes {
        let row = match query.namespace {
            None => db
                .conn
                .prepare_cached(&format!(
                    "SELECT id, priority_rank, unblocks, created_at FROM tasks
                     INDEXED BY tasks_poll_queue
                     WHERE status = 'pending' AND assigned_to IS NULL AND unmet_deps = 0
                       AND execution_mode = ?2 AND {NO_LIVE_CLAIM}
                     {ORDER}"
                ))?
                .query_row(params![query.now_ms, mode], read)
                .optional()?,
            Some(namespace) => db
                .conn
                .prepare_cached(&format!(
                    "SELECT id, priority_rank, unblocks, created_at FROM tasks
                     INDEXED BY tasks_poll_queue_ns
                     WHERE status = 'pending' AND assigned_to IS NULL AND unmet_deps = 0
                       AND namespace = ?3 AND execution_mode = ?2 AND {NO_LIVE_CLAIM}
                     {ORDER}"
                ))?
                .query_row(params![query.now_ms, mode, namespace], read)
                .optional()?,
        };
        consider(row);
    }
    // Tasks pre-assigned to this worker: few per agent, so filtering while walking is cheap.
    let modes = query.execution_modes;
    let mode_list = (0..modes.len())
        .map(|i| format!("?{}", i + 4))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT id, priority_rank, unblocks, created_at FROM tasks
         INDEXED BY tasks_poll_assigned
         WHERE status = 'pending' AND assigned_to = ?2 AND unmet_deps = 0
           AND (?3 IS NULL OR namespace = ?3) AND execution_mode IN ({mode_list})
           AND {NO_LIVE_CLAIM}
         {ORDER}"
    );
    let mut values: Vec<crate::store::sql::types::Value> = vec![
        query.now_ms.into(),
        query.agent_id.to_string().into(),
        query.namespace.map(str::to_string).into(),
    ];
    values.extend(modes.iter().map(|m| m.as_str().to_string().into()));
    let row = db
        .conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(values), read)
        .optional()?;
    consider(row);
    Ok(best.map(|(_, id)| id))
}

/// Filters and paging of list_tasks.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub status: Option<TaskStatus>,
    pub assigned_to: Option<String>,
    pub namespace: Option<String>,
    pub execution_mode: Option<ExecutionMode>,
    pub ready_only: bool,
    pub limit: i64,
    pub page: ListPage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListPage {
    /// Changes after this sequence number, in change order.
    AfterSeq(i64),
    /// Tasks updated after this time, in change order.
    UpdatedAfter(i64),
    /// Newest first, skipping `offset` rows.
    Newest { offset: i64 },
}

impl Default for ListPage {
    fn default() -> Self {
        ListPage::Newest { offset: 0 }
    }
}

pub fn list(db: &Db, query: &ListQuery) -> StoreResult<(Vec<TaskRow>, bool)> {
    let (bound, order, bound_value, offset) = match query.page {
        ListPage::AfterSeq(seq) => ("AND seq > ?6", "seq ASC, id ASC", seq, 0),
        ListPage::UpdatedAfter(ms) => ("AND updated_at > ?6", "seq ASC, id ASC", ms, 0),
        ListPage::Newest { offset } => ("", "created_at DESC, id DESC", 0, offset.max(0)),
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM tasks
         WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR assigned_to = ?2)
           AND (?3 IS NULL OR namespace = ?3) AND (?4 IS NULL OR execution_mode = ?4)
           AND (?5 = 0 OR unmet_deps = 0) {bound}
         ORDER BY {order} LIMIT ?7 OFFSET ?8"
    );
    let mut rows = db
        .conn
        .prepare_cached(&sql)?
        .query_map(
            params![
                query.status,
                query.assigned_to,
                query.namespace,
                query.execution_mode,
                query.ready_only,
                bound_value,
                query.limit + 1,
                offset
            ],
            from_row,
        )?
        .collect::<crate::store::sql::Result<Vec<_>>>()?;
    let has_more = rows.len() as i64 > query.limit;
    rows.truncate(query.limit.max(0) as usize);
    Ok((rows, has_more))
}

/// `EXPLAIN QUERY PLAN` of the unassigned poll branch, one line per plan row.
pub fn poll_query_plan(db: &Db, namespace: Option<&str>) -> StoreResult<Vec<String>> {
    let sql = match namespace {
        None => {
            "EXPLAIN QUERY PLAN
             SELECT id, priority_rank, unblocks, created_at FROM tasks
             INDEXED BY tasks_poll_queue
             WHERE status = 'pending' AND assigned_to IS NULL AND unmet_deps = 0
               AND execution_mode = ?2
               AND NOT EXISTS (SELECT 1 FROM task_claims c
                               WHERE c.task_id = tasks.id AND c.lease_expires_at > ?1)
             ORDER BY priority_rank, unblocks DESC, created_at, id LIMIT 1"
        }
        Some(_) => {
            "EXPLAIN QUERY PLAN
             SELECT id, priority_rank, unblocks, created_at FROM tasks
             INDEXED BY tasks_poll_queue_ns
             WHERE status = 'pending' AND assigned_to IS NULL AND unmet_deps = 0
               AND namespace = ?3 AND execution_mode = ?2
               AND NOT EXISTS (SELECT 1 FROM task_claims c
                               WHERE c.task_id = tasks.id AND c.lease_expires_at > ?1)
             ORDER BY priority_rank, unblocks DESC, created_at, id LIMIT 1"
        }
    };
    let mut plan_params: Vec<crate::store::sql::types::Value> =
        vec![0.into(), ExecutionMode::Any.as_str().to_string().into()];
    if let Some(namespace) = namespace {
        plan_params.push(namespace.to_string().into());
    }
    let mut stmt = db.conn.prepare(sql)?;
    let rows = stmt
        .query_map(params_from_iter(plan_params), |r| r.get::<_, String>(3))?
        .collect::<crate::store::sql::Result<Vec<_>>>()?;
    Ok(rows)
}
