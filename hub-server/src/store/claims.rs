//! Task claims: fenced leases. At most one row per task; every claim gets a fresh
//! `claim_id`, and renew/release match on (task, agent, claim id) so a stale or foreign
//! claim id changes nothing.
//!
//! Invariant kept with [`super::tasks`]: a task is `in_progress` exactly when it has a claim
//! row. Whoever deletes a claim also moves its task out of `in_progress` (sweep, release,
//! reaping), in the same transaction.

use crate::store::sql::{OptionalExtension, Row, params};

use super::tasks::{self, TaskRow};
use super::{Db, StoreResult, WriteTx};
use crate::domain::task::{Priority, StatusSource, TaskStatus};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRow {
    pub task_id: i64,
    pub agent_id: String,
    pub claim_id: String,
    pub claimed_at: i64,
    pub lease_expires_at: i64,
    pub updated_at: i64,
}

impl ClaimRow {
    /// A claim whose lease has run out counts as absent everywhere.
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.lease_expires_at > now_ms
    }
}

const COLUMNS: &str = "task_id, agent_id, claim_id, claimed_at, lease_expires_at, updated_at";

fn from_row(row: &Row<'_>) -> crate::store::sql::Result<ClaimRow> {
    Ok(ClaimRow {
        task_id: row.get(0)?,
        agent_id: row.get(1)?,
        claim_id: row.get(2)?,
        claimed_at: row.get(3)?,
        lease_expires_at: row.get(4)?,
        updated_at: row.get(5)?,
    })
}

/// The claim row of a task, live or not.
pub fn get(db: &Db, task_id: i64) -> StoreResult<Option<ClaimRow>> {
    Ok(db
        .conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM task_claims WHERE task_id = ?1"
        ))?
        .query_row([task_id], from_row)
        .optional()?)
}

/// The live claim of a task, if any.
pub fn live(db: &Db, task_id: i64, now_ms: i64) -> StoreResult<Option<ClaimRow>> {
    Ok(get(db, task_id)?.filter(|claim| claim.is_live(now_ms)))
}

/// Gives `task` to `agent_id` under a new claim id: replaces any claim row (the caller has
/// checked that none is live for another agent), sets the task `in_progress` and assigned,
/// and records the status change. Returns the task and the claim.
pub fn claim(
    tx: &mut WriteTx<'_>,
    task: &TaskRow,
    agent_id: &str,
    lease_ms: i64,
    source: StatusSource,
) -> StoreResult<(TaskRow, ClaimRow)> {
    let now = tx.now_ms();
    let claim = ClaimRow {
        task_id: task.id,
        agent_id: agent_id.to_string(),
        claim_id: uuid::Uuid::new_v4().to_string(),
        claimed_at: now,
        lease_expires_at: now.saturating_add(lease_ms),
        updated_at: now,
    };
    tx.conn()
        .prepare_cached(
            "INSERT INTO task_claims
                 (task_id, agent_id, claim_id, claimed_at, lease_expires_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (task_id) DO UPDATE SET
                 agent_id = excluded.agent_id, claim_id = excluded.claim_id,
                 claimed_at = excluded.claimed_at, lease_expires_at = excluded.lease_expires_at,
                 updated_at = excluded.updated_at",
        )?
        .execute(params![
            claim.task_id,
            claim.agent_id,
            claim.claim_id,
            claim.claimed_at,
            claim.lease_expires_at,
            claim.updated_at
        ])?;
    let task = tasks::change_status(
        tx,
        task,
        TaskStatus::InProgress,
        Some(Some(agent_id)),
        agent_id,
        source,
    )?;
    Ok((task, claim))
}

/// Extends the lease of the claim matching (task, agent, claim id). `None` when no row
/// matched (the claim was taken over or released meanwhile).
pub fn renew(
    tx: &mut WriteTx<'_>,
    task_id: i64,
    agent_id: &str,
    claim_id: &str,
    lease_ms: i64,
) -> StoreResult<Option<ClaimRow>> {
    let now = tx.now_ms();
    Ok(tx
        .conn()
        .prepare_cached(&format!(
            "UPDATE task_claims SET lease_expires_at = ?4, updated_at = ?5
             WHERE task_id = ?1 AND agent_id = ?2 AND claim_id = ?3
             RETURNING {COLUMNS}"
        ))?
        .query_row(
            params![
                task_id,
                agent_id,
                claim_id,
                now.saturating_add(lease_ms),
                now
            ],
            from_row,
        )
        .optional()?)
}

/// Deletes the claim matching (task, agent, claim id); false when none matched.
pub fn delete_matching(
    tx: &mut WriteTx<'_>,
    task_id: i64,
    agent_id: &str,
    claim_id: &str,
) -> StoreResult<bool> {
    Ok(tx
        .conn()
        .prepare_cached(
            "DELETE FROM task_claims WHERE task_id = ?1 AND agent_id = ?2 AND claim_id = ?3",
        )?
        .execute(params![task_id, agent_id, claim_id])?
        > 0)
}

/// Deletes whatever claim row a task has.
pub fn delete_for_task(tx: &mut WriteTx<'_>, task_id: i64) -> StoreResult<()> {
    tx.conn()
        .prepare_cached("DELETE FROM task_claims WHERE task_id = ?1")?
        .execute([task_id])?;
    Ok(())
}

/// Deletes `claims` and puts each task back to `pending`, unassigned — only if it is still
/// `in_progress` for the claim owner. Returns how many tasks were requeued.
fn drop_claims_and_requeue(
    tx: &mut WriteTx<'_>,
    claims: &[ClaimRow],
    source: StatusSource,
) -> StoreResult<usize> {
    let mut requeued = 0;
    for claim in claims {
        delete_for_task(tx, claim.task_id)?;
        if let Some(task) = tasks::get(tx.db(), claim.task_id)?
            && task.status == TaskStatus::InProgress
            && task.assigned_to.as_deref() == Some(claim.agent_id.as_str())
        {
            tasks::change_status(tx, &task, TaskStatus::Pending, Some(None), "system", source)?;
            requeued += 1;
        }
    }
    Ok(requeued)
}

/// Lease expiry: every claim with `lease_expires_at <= now` is deleted and its task requeued.
/// An index range read on `task_claims_expiry`, so a sweep that finds nothing costs one seek.
/// Returns how many claims were removed.
pub fn sweep_expired(tx: &mut WriteTx<'_>) -> StoreResult<usize> {
    let now = tx.now_ms();
    let expired = {
        let mut stmt = tx.conn().prepare_cached(&format!(
            "SELECT {COLUMNS} FROM task_claims WHERE lease_expires_at <= ?1"
        ))?;
        stmt.query_map([now], from_row)?
            .collect::<crate::store::sql::Result<Vec<_>>>()?
    };
    drop_claims_and_requeue(tx, &expired, StatusSource::LeaseExpiry)?;
    Ok(expired.len())
}

/// Claims held by offline ephemeral agents and not renewed since `updated_before_ms`:
/// deleted, their tasks requeued. Returns how many tasks were affected.
pub fn reap_ephemeral(tx: &mut WriteTx<'_>, updated_before_ms: i64) -> StoreResult<usize> {
    let stale = {
        let mut stmt = tx.conn().prepare_cached(&format!(
            "SELECT {COLUMNS} FROM task_claims c
             WHERE c.updated_at < ?1
               AND EXISTS (SELECT 1 FROM agents a WHERE a.id = c.agent_id
                           AND a.lifecycle = 'ephemeral' AND a.status = 'offline')"
        ))?;
        stmt.query_map([updated_before_ms], from_row)?
            .collect::<crate::store::sql::Result<Vec<_>>>()?
    };
    drop_claims_and_requeue(tx, &stale, StatusSource::Maintenance)?;
    Ok(stale.len())
}

/// Before an agent is purged: its claims are deleted and its pending/in-progress tasks are
/// unassigned (`in_progress` → `pending`). Returns how many tasks changed.
pub fn release_agent(tx: &mut WriteTx<'_>, agent_id: &str) -> StoreResult<usize> {
    tx.conn()
        .prepare_cached("DELETE FROM task_claims WHERE agent_id = ?1")?
        .execute([agent_id])?;
    let mut changed = 0;
    for task in tasks::open_assigned_to(tx.db(), agent_id)? {
        tasks::change_status(
            tx,
            &task,
            TaskStatus::Pending,
            Some(None),
            "system",
            StatusSource::Maintenance,
        )?;
        changed += 1;
    }
    Ok(changed)
}

/// In-progress tasks of agents that are gone (see [`tasks::orphaned_in_progress`]) go back to
/// `pending`, unassigned, and lose any claim row. Returns how many.
pub fn requeue_orphans(tx: &mut WriteTx<'_>) -> StoreResult<usize> {
    let now = tx.now_ms();
    let orphans = tasks::orphaned_in_progress(tx.db(), now)?;
    for task in &orphans {
        delete_for_task(tx, task.id)?;
        tasks::change_status(
            tx,
            task,
            TaskStatus::Pending,
            Some(None),
            "system",
            StatusSource::Maintenance,
        )?;
    }
    Ok(orphans.len())
}

/// A live claim joined with its task, for list_task_claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimListing {
    pub claim: ClaimRow,
    pub task_title: String,
    pub task_status: TaskStatus,
    pub task_priority: Priority,
}

/// Live claims (optionally of one agent), soonest expiry first.
pub fn list_live(db: &Db, agent_id: Option<&str>, now_ms: i64) -> StoreResult<Vec<ClaimListing>> {
    let mut stmt = db.conn.prepare_cached(
        "SELECT c.task_id, c.agent_id, c.claim_id, c.claimed_at, c.lease_expires_at,
                c.updated_at, t.title, t.status, t.priority
         FROM task_claims c JOIN tasks t ON t.id = c.task_id
         WHERE c.lease_expires_at > ?1 AND (?2 IS NULL OR c.agent_id = ?2)
         ORDER BY c.lease_expires_at, c.task_id",
    )?;
    Ok(stmt
        .query_map(params![now_ms, agent_id], |r| {
            Ok(ClaimListing {
                claim: from_row(r)?,
                task_title: r.get(6)?,
                task_status: r.get(7)?,
                task_priority: r.get(8)?,
            })
        })?
        .collect::<crate::store::sql::Result<Vec<_>>>()?)
}

/// Whether any claim row exists in the hub (shapes the poll back-off cap).
pub fn any_claims(db: &Db) -> StoreResult<bool> {
    Ok(db
        .conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM task_claims)")?
        .query_row([], |r| r.get(0))?)
}
