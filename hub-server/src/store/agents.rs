//! The agent registry: identity, lifecycle, runtime profile and presence.

use crate::store::sql::{OptionalExtension, Row, params};

use super::{Db, StoreResult, WriteTx};

#[derive(Debug, Clone, PartialEq)]
pub struct AgentRow {
    pub id: String,
    pub name: String,
    pub agent_type: String,
    pub capabilities: String,
    pub role: String,
    pub lifecycle: String,
    pub runtime_mode: String,
    pub runtime_profile_json: String,
    pub status: String,
    pub last_seen: i64,
    pub created_at: i64,
}

const COLUMNS: &str = "id, name, type, capabilities, role, lifecycle, runtime_mode, \
                       runtime_profile_json, status, last_seen, created_at";

fn from_row(row: &Row<'_>) -> crate::store::sql::Result<AgentRow> {
    Ok(AgentRow {
        id: row.get(0)?,
        name: row.get(1)?,
        agent_type: row.get(2)?,
        capabilities: row.get(3)?,
        role: row.get(4)?,
        lifecycle: row.get(5)?,
        runtime_mode: row.get(6)?,
        runtime_profile_json: row.get(7)?,
        status: row.get(8)?,
        last_seen: row.get(9)?,
        created_at: row.get(10)?,
    })
}

pub fn get(db: &Db, id: &str) -> StoreResult<Option<AgentRow>> {
    Ok(db
        .conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM agents WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}

/// A registration. `None` fields keep the stored value on re-registration (and take the
/// column default for a new agent).
#[derive(Debug, Clone)]
pub struct Registration {
    pub id: String,
    pub name: String,
    pub agent_type: String,
    pub capabilities: Option<String>,
    pub role: Option<String>,
    /// Who vouched for `role` (`declared`, `admin_token`, `allowlist`); with `role`.
    pub role_grant: Option<&'static str>,
    pub lifecycle: Option<String>,
    /// (runtime_mode, runtime_profile_json)
    pub runtime_profile: Option<(String, String)>,
}

/// Inserts or updates the agent and marks it online. Returns the stored row and whether it
/// is new.
pub fn register(tx: &mut WriteTx<'_>, reg: &Registration) -> StoreResult<(AgentRow, bool)> {
    let now = tx.now_ms();
    let existing = get(tx.db(), &reg.id)?;
    let is_new = existing.is_none();
    let (mode, profile) = match &reg.runtime_profile {
        Some((mode, profile)) => (Some(mode.as_str()), Some(profile.as_str())),
        None => (None, None),
    };
    tx.conn()
        .prepare_cached(
            "INSERT INTO agents (id, name, type, capabilities, role, lifecycle, runtime_mode,
                                 runtime_profile_json, status, last_seen, created_at,
                                 role_grant)
             VALUES (?1, ?2, ?3, COALESCE(?4, ''), COALESCE(?5, 'worker'),
                     COALESCE(?6, 'persistent'), COALESCE(?7, 'unknown'), COALESCE(?8, '{}'),
                     'online', ?9, ?9, COALESCE(?10, 'declared'))
             ON CONFLICT (id) DO UPDATE SET
                 name = excluded.name,
                 type = excluded.type,
                 capabilities = COALESCE(?4, agents.capabilities),
                 role = COALESCE(?5, agents.role),
                 role_grant = COALESCE(?10, agents.role_grant),
                 lifecycle = COALESCE(?6, agents.lifecycle),
                 runtime_mode = COALESCE(?7, agents.runtime_mode),
                 runtime_profile_json = COALESCE(?8, agents.runtime_profile_json),
                 status = 'online',
                 last_seen = ?9",
        )?
        .execute(params![
            reg.id,
            reg.name,
            reg.agent_type,
            reg.capabilities,
            reg.role,
            reg.lifecycle,
            mode,
            profile,
            now,
            reg.role_grant
        ])?;
    let row = get(tx.db(), &reg.id)?.expect("row was just written");
    Ok((row, is_new))
}

/// Marks a known agent online; a no-op for unknown ids (never creates an agent).
pub fn heartbeat(tx: &mut WriteTx<'_>, id: &str) -> StoreResult<()> {
    let now = tx.now_ms();
    tx.conn()
        .prepare_cached("UPDATE agents SET last_seen = ?2, status = 'online' WHERE id = ?1")?
        .execute(params![id, now])?;
    Ok(())
}

/// Replaces the runtime profile; `None` when the agent does not exist.
pub fn set_runtime_profile(
    tx: &mut WriteTx<'_>,
    id: &str,
    runtime_mode: &str,
    profile_json: &str,
) -> StoreResult<Option<AgentRow>> {
    let now = tx.now_ms();
    let changed = tx
        .conn()
        .prepare_cached(
            "UPDATE agents SET runtime_mode = ?2, runtime_profile_json = ?3,
                               status = 'online', last_seen = ?4
             WHERE id = ?1",
        )?
        .execute(params![id, runtime_mode, profile_json, now])?;
    if changed == 0 {
        return Ok(None);
    }
    get(tx.db(), id)
}

/// One page, most recently seen first.
pub fn list(db: &Db, limit: i64, offset: i64) -> StoreResult<Vec<AgentRow>> {
    let mut stmt = db.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM agents ORDER BY last_seen DESC, id ASC LIMIT ?1 OFFSET ?2"
    ))?;
    let rows = stmt
        .query_map(params![limit, offset], from_row)?
        .collect::<crate::store::sql::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Counts over the whole registry (not a page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentSummary {
    pub total: i64,
    pub online: i64,
    pub offline: i64,
    pub online_5m: i64,
    pub persistent: i64,
    pub ephemeral: i64,
    pub runtime_repo: i64,
    pub runtime_isolated: i64,
    pub runtime_unknown: i64,
}

pub fn summary(db: &Db, now_ms: i64) -> StoreResult<AgentSummary> {
    Ok(db
        .conn
        .prepare_cached(
            "SELECT COUNT(*),
                    COALESCE(SUM(status = 'online'), 0),
                    COALESCE(SUM(status <> 'online'), 0),
                    COALESCE(SUM(last_seen >= ?1), 0),
                    COALESCE(SUM(lifecycle = 'persistent'), 0),
                    COALESCE(SUM(lifecycle = 'ephemeral'), 0),
                    COALESCE(SUM(runtime_mode = 'repo'), 0),
                    COALESCE(SUM(runtime_mode = 'isolated'), 0),
                    COALESCE(SUM(runtime_mode NOT IN ('repo', 'isolated')), 0)
             FROM agents",
        )?
        .query_row([now_ms - 5 * 60_000], |r| {
            Ok(AgentSummary {
                total: r.get(0)?,
                online: r.get(1)?,
                offline: r.get(2)?,
                online_5m: r.get(3)?,
                persistent: r.get(4)?,
                ephemeral: r.get(5)?,
                runtime_repo: r.get(6)?,
                runtime_isolated: r.get(7)?,
                runtime_unknown: r.get(8)?,
            })
        })?)
}

/// Marks agents offline whose last heartbeat is older than their lifecycle's threshold
/// (`None` disables that rule). Returns how many changed.
pub fn mark_stale_offline(
    tx: &mut WriteTx<'_>,
    persistent_before_ms: Option<i64>,
    ephemeral_before_ms: Option<i64>,
) -> StoreResult<usize> {
    let mut changed = 0;
    for (lifecycle, cutoff) in [
        ("persistent", persistent_before_ms),
        ("ephemeral", ephemeral_before_ms),
    ] {
        if let Some(cutoff) = cutoff {
            changed += tx.conn().execute(
                "UPDATE agents SET status = 'offline'
                 WHERE status <> 'offline' AND lifecycle = ?1 AND last_seen < ?2",
                params![lifecycle, cutoff],
            )?;
        }
    }
    Ok(changed)
}

/// Ids of the offline agents that [`purge_stale`] would delete with the same cutoffs.
pub fn stale_ids(
    db: &Db,
    persistent_before_ms: Option<i64>,
    ephemeral_before_ms: Option<i64>,
) -> StoreResult<Vec<String>> {
    let mut ids = Vec::new();
    for (lifecycle, cutoff) in [
        ("persistent", persistent_before_ms),
        ("ephemeral", ephemeral_before_ms),
    ] {
        if let Some(cutoff) = cutoff {
            let mut stmt = db.conn.prepare_cached(
                "SELECT id FROM agents WHERE status = 'offline' AND lifecycle = ?1 AND last_seen < ?2",
            )?;
            let rows = stmt
                .query_map(params![lifecycle, cutoff], |r| r.get::<_, String>(0))?
                .collect::<crate::store::sql::Result<Vec<_>>>()?;
            ids.extend(rows);
        }
    }
    Ok(ids)
}

/// Agents with `last_seen >= since_ms` (any status).
pub fn count_seen_since(db: &Db, since_ms: i64) -> StoreResult<i64> {
    Ok(db
        .conn
        .prepare_cached("SELECT COUNT(*) FROM agents WHERE last_seen >= ?1")?
        .query_row([since_ms], |r| r.get(0))?)
}

/// Deletes offline agents (and their tokens) last seen before their lifecycle's retention
/// cutoff. Returns how many were removed.
pub fn purge_stale(
    tx: &mut WriteTx<'_>,
    persistent_before_ms: Option<i64>,
    ephemeral_before_ms: Option<i64>,
) -> StoreResult<usize> {
    let mut removed = 0;
    for (lifecycle, cutoff) in [
        ("persistent", persistent_before_ms),
        ("ephemeral", ephemeral_before_ms),
    ] {
        if let Some(cutoff) = cutoff {
            removed += tx.conn().execute(
                "DELETE FROM agents
                 WHERE status = 'offline' AND lifecycle = ?1 AND last_seen < ?2",
                params![lifecycle, cutoff],
            )?;
        }
    }
    if removed > 0 {
        tx.conn().execute(
            "DELETE FROM agent_tokens WHERE agent_id NOT IN (SELECT id FROM agents)",
            [],
        )?;
    }
    Ok(removed)
}
