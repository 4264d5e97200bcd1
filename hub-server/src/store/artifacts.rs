//! Artifacts (tools-more §3, §6): the `artifacts` rows, their shares, task links and the
//! durable tickets (only a token's SHA-256 is stored; consuming is one atomic DELETE).
//! Must not decide who may do what beyond the access predicate it is asked to evaluate.

use std::collections::HashSet;

use crate::store::sql::{OptionalExtension, Row, params};

use super::{Db, StoreResult, Stream, WriteTx};
use crate::domain::artifact::TicketKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRow {
    pub id: String,
    pub created_by: String,
    pub name: String,
    pub mime_type: String,
    pub size_bytes: i64,
    pub sha256: Option<String>,
    /// File name inside the artifacts directory; never shown to agents (D14).
    pub storage_path: Option<String>,
    pub namespace: String,
    pub summary: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub access_count: i64,
    pub ttl_expires_at: Option<i64>,
}

impl ArtifactRow {
    /// Bytes committed: downloads and task hints may offer it.
    pub fn is_ready(&self) -> bool {
        crate::domain::artifact::is_ready(self.sha256.as_deref(), self.size_bytes)
            && self.storage_path.is_some()
    }
}

const COLUMNS: &str = "a.id, a.created_by, a.name, a.mime_type, a.size_bytes, a.sha256, \
                       a.storage_path, a.namespace, a.summary, a.created_at, a.updated_at, \
                       a.access_count, a.ttl_expires_at";

fn from_row(row: &Row<'_>) -> crate::store::sql::Result<ArtifactRow> {
    Ok(ArtifactRow {
        id: row.get(0)?,
        created_by: row.get(1)?,
        name: row.get(2)?,
        mime_type: row.get(3)?,
        size_bytes: row.get(4)?,
        sha256: row.get(5)?,
        storage_path: row.get(6)?,
        namespace: row.get(7)?,
        summary: row.get(8)?,
        created_at: row.get(9)?,
        updated_at: row.get(10)?,
        access_count: row.get(11)?,
        ttl_expires_at: row.get(12)?,
    })
}

/// Access(agent, artifact): its creator, an agent it was shared with (or `*`), or the
/// holder of a task it is attached to. Uses `a` (the artifacts row) and `?2` (the agent).
const ACCESS: &str = "(a.created_by = ?2
     OR EXISTS (SELECT 1 FROM artifact_shares s
                WHERE s.artifact_id = a.id AND s.to_agent IN (?2, '*'))
     OR EXISTS (SELECT 1 FROM task_artifacts ta JOIN tasks t ON t.id = ta.task_id
                WHERE ta.artifact_id = a.id AND t.assigned_to = ?2))";

#[derive(Debug, Clone)]
pub struct NewArtifact {
    pub id: String,
    pub created_by: String,
    pub name: String,
    pub mime_type: String,
    pub namespace: String,
    pub summary: String,
    pub ttl_expires_at: i64,
}

pub fn insert(tx: &mut WriteTx<'_>, new: &NewArtifact) -> StoreResult<ArtifactRow> {
    tx.next_seq(Stream::Artifacts);
    let now = tx.now_ms();
    tx.conn()
        .prepare_cached(
            "INSERT INTO artifacts (id, created_by, name, mime_type, namespace, summary,
                                    created_at, updated_at, ttl_expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
        )?
        .execute(params![
            new.id,
            new.created_by,
            new.name,
            new.mime_type,
            new.namespace,
            new.summary,
            now,
            new.ttl_expires_at
        ])?;
    Ok(ArtifactRow {
        id: new.id.clone(),
        created_by: new.created_by.clone(),
        name: new.name.clone(),
        mime_type: new.mime_type.clone(),
        size_bytes: 0,
        sha256: None,
        storage_path: None,
        namespace: new.namespace.clone(),
        summary: new.summary.clone(),
        created_at: now,
        updated_at: now,
        access_count: 0,
        ttl_expires_at: Some(new.ttl_expires_at),
    })
}

pub fn get(db: &Db, id: &str) -> StoreResult<Option<ArtifactRow>> {
    Ok(db
        .conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM artifacts a WHERE a.id = ?1"
        ))?
        .query_row([id], from_row)
        .optional()?)
}

pub fn has_access(db: &Db, artifact_id: &str, agent_id: &str) -> StoreResult<bool> {
    Ok(db
        .conn
        .prepare_cached(&format!(
            "SELECT 1 FROM artifacts a WHERE a.id = ?1 AND {ACCESS}"
        ))?
        .exists(params![artifact_id, agent_id])?)
}

/// Access that does not depend on holding a task: creator, or a share to the agent or `*`.
pub fn explicitly_shared(db: &Db, artifact_id: &str, agent_id: &str) -> StoreResult<bool> {
    Ok(db
        .conn
        .prepare_cached(
            "SELECT 1 FROM artifacts a WHERE a.id = ?1 AND (a.created_by = ?2
                OR EXISTS (SELECT 1 FROM artifact_shares s
                           WHERE s.artifact_id = a.id AND s.to_agent IN (?2, '*')))",
        )?
        .exists(params![artifact_id, agent_id])?)
}

/// Grants (or re-grants) `to_agent` (`*` = everyone) access.
pub fn share(
    tx: &mut WriteTx<'_>,
    artifact_id: &str,
    to_agent: &str,
    granted_by: &str,
) -> StoreResult<()> {
    tx.next_seq(Stream::Artifacts);
    let now = tx.now_ms();
    tx.conn()
        .prepare_cached(
            "INSERT INTO artifact_shares (artifact_id, to_agent, granted_by, created_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (artifact_id, to_agent)
             DO UPDATE SET granted_by = excluded.granted_by, created_at = excluded.created_at",
        )?
        .execute(params![artifact_id, to_agent, granted_by, now])?;
    Ok(())
}

/// Links an artifact to a task; `false` when it already was.
pub fn attach(
    tx: &mut WriteTx<'_>,
    task_id: i64,
    artifact_id: &str,
    added_by: &str,
) -> StoreResult<bool> {
    let now = tx.now_ms();
    let created = tx
        .conn()
        .prepare_cached(
            "INSERT INTO task_artifacts (task_id, artifact_id, added_by, created_at)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        )?
        .execute(params![task_id, artifact_id, added_by, now])?
        == 1;
    if created {
        tx.next_seq(Stream::Artifacts);
    }
    Ok(created)
}

/// One artifact attached to a task, as `viewer` sees it.
#[derive(Debug, Clone)]
pub struct Attached {
    pub artifact: ArtifactRow,
    pub added_by: String,
    pub attached_at: i64,
    pub has_access: bool,
}

/// Attachments of a task, newest link first (`created_at DESC, artifact_id DESC`).
pub fn task_attachments(
    db: &Db,
    task_id: i64,
    viewer: &str,
    limit: i64,
    offset: i64,
) -> StoreResult<Vec<Attached>> {
    let mut stmt = db.conn.prepare_cached(&format!(
        "SELECT {COLUMNS}, ta.added_by, ta.created_at, {ACCESS}
         FROM task_artifacts ta JOIN artifacts a ON a.id = ta.artifact_id
         WHERE ta.task_id = ?1
         ORDER BY ta.created_at DESC, ta.artifact_id DESC
         LIMIT ?3 OFFSET ?4"
    ))?;
    let rows = stmt.query_map(params![task_id, viewer, limit, offset], |row| {
        Ok(Attached {
            artifact: from_row(row)?,
            added_by: row.get(13)?,
            attached_at: row.get(14)?,
            has_access: row.get(15)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn count_task_attachments(db: &Db, task_id: i64) -> StoreResult<i64> {
    Ok(db
        .conn
        .prepare_cached("SELECT COUNT(*) FROM task_artifacts WHERE task_id = ?1")?
        .query_row([task_id], |r| r.get(0))?)
}

/// A page of the artifacts `viewer` may access, newest first.
pub fn list_visible(
    db: &Db,
    viewer: &str,
    created_by: Option<&str>,
    namespace: Option<&str>,
    limit: i64,
    offset: i64,
) -> StoreResult<Vec<ArtifactRow>> {
    let mut stmt = db.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM artifacts a
         WHERE {ACCESS}
           AND (?3 IS NULL OR a.created_by = ?3)
           AND (?4 IS NULL OR a.namespace = ?4)
         ORDER BY a.created_at DESC, a.id DESC
         LIMIT ?5 OFFSET ?6"
    ))?;
    let rows = stmt.query_map(
        params![
            Option::<String>::None,
            viewer,
            created_by,
            namespace,
            limit,
            offset
        ],
        from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub kind: TicketKind,
    pub artifact_id: String,
    /// The agent it was issued to.
    pub agent_id: String,
    pub expires_at: i64,
    pub max_bytes: i64,
}

pub fn insert_ticket(tx: &mut WriteTx<'_>, token_hash: &[u8], ticket: &Ticket) -> StoreResult<()> {
    tx.conn()
        .prepare_cached(
            "INSERT INTO artifact_tickets
                 (token_hash, kind, artifact_id, agent_id, expires_at, max_bytes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            token_hash,
            ticket.kind.as_str(),
            ticket.artifact_id,
            ticket.agent_id,
            ticket.expires_at,
            ticket.max_bytes
        ])?;
    Ok(())
}

fn ticket_from_row(row: &Row<'_>) -> crate::store::sql::Result<Ticket> {
    let kind: String = row.get(0)?;
    Ok(Ticket {
        // Only this module writes the column, with `TicketKind::as_str`.
        kind: TicketKind::parse(&kind).unwrap_or(TicketKind::Download),
        artifact_id: row.get(1)?,
        agent_id: row.get(2)?,
        expires_at: row.get(3)?,
        max_bytes: row.get(4)?,
    })
}

/// Looks a ticket up without consuming it (uploads validate before they consume, D6).
pub fn find_ticket(db: &Db, token_hash: &[u8]) -> StoreResult<Option<Ticket>> {
    Ok(db
        .conn
        .prepare_cached(
            "SELECT kind, artifact_id, agent_id, expires_at, max_bytes
             FROM artifact_tickets WHERE token_hash = ?1",
        )?
        .query_row([token_hash], ticket_from_row)
        .optional()?)
}

/// Consumes a ticket: one DELETE that matches only a live ticket of this kind and artifact,
/// so two racing requests cannot both use it.
pub fn consume_ticket(
    tx: &mut WriteTx<'_>,
    token_hash: &[u8],
    kind: TicketKind,
    artifact_id: &str,
) -> StoreResult<Option<Ticket>> {
    let now = tx.now_ms();
    Ok(tx
        .conn()
        .prepare_cached(
            "DELETE FROM artifact_tickets
             WHERE token_hash = ?1 AND kind = ?2 AND artifact_id = ?3 AND expires_at >= ?4
             RETURNING kind, artifact_id, agent_id, expires_at, max_bytes",
        )?
        .query_row(
            params![token_hash, kind.as_str(), artifact_id, now],
            ticket_from_row,
        )
        .optional()?)
}

/// Deletes a ticket if it has expired; `true` when it did.
pub fn delete_if_expired(tx: &mut WriteTx<'_>, token_hash: &[u8]) -> StoreResult<bool> {
    let now = tx.now_ms();
    Ok(tx
        .conn()
        .prepare_cached("DELETE FROM artifact_tickets WHERE token_hash = ?1 AND expires_at < ?2")?
        .execute(params![token_hash, now])?
        == 1)
}

/// Records committed bytes; `false` if the artifact is gone or already has its bytes (an
/// artifact is uploaded once).
pub fn record_upload(
    tx: &mut WriteTx<'_>,
    artifact_id: &str,
    size_bytes: i64,
    sha256: &str,
    storage_path: &str,
    mime_type: Option<&str>,
) -> StoreResult<Option<ArtifactRow>> {
    let now = tx.now_ms();
    let changed = tx
        .conn()
        .prepare_cached(
            "UPDATE artifacts SET size_bytes = ?2, sha256 = ?3, storage_path = ?4,
                 mime_type = COALESCE(?5, mime_type), updated_at = ?6
             WHERE id = ?1 AND storage_path IS NULL",
        )?
        .execute(params![
            artifact_id,
            size_bytes,
            sha256,
            storage_path,
            mime_type,
            now
        ])?;
    if changed == 0 {
        return Ok(None);
    }
    tx.next_seq(Stream::Artifacts);
    get(tx.db(), artifact_id)
}

/// Counts a download: `access_count + 1`, `updated_at = now` (retention is not extended).
pub fn record_download(tx: &mut WriteTx<'_>, artifact_id: &str) -> StoreResult<()> {
    let now = tx.now_ms();
    tx.conn()
        .prepare_cached(
            "UPDATE artifacts SET access_count = access_count + 1, updated_at = ?2 WHERE id = ?1",
        )?
        .execute(params![artifact_id, now])?;
    Ok(())
}

/// Outstanding tickets (expired ones included until the next maintenance pass).
pub fn ticket_count(db: &Db) -> StoreResult<i64> {
    Ok(db
        .conn
        .prepare_cached("SELECT COUNT(*) FROM artifact_tickets")?
        .query_row([], |r| r.get(0))?)
}

pub fn purge_expired_tickets(tx: &mut WriteTx<'_>) -> StoreResult<usize> {
    let now = tx.now_ms();
    Ok(tx
        .conn()
        .prepare_cached("DELETE FROM artifact_tickets WHERE expires_at < ?1")?
        .execute([now])?)
}

/// Deletes artifacts past their `ttl_expires_at`, and those without one not updated since
/// `untimed_cutoff`; shares, task links and tickets cascade. Returns how many rows went and
/// their storage paths, for the caller to remove after the commit.
pub fn purge_expired(
    tx: &mut WriteTx<'_>,
    untimed_cutoff: Option<i64>,
) -> StoreResult<(usize, Vec<String>)> {
    let now = tx.now_ms();
    let mut stmt = tx.conn().prepare_cached(
        "DELETE FROM artifacts
         WHERE ttl_expires_at < ?1
            OR (ttl_expires_at IS NULL AND updated_at < ?2 AND ?2 IS NOT NULL)
         RETURNING storage_path",
    )?;
    let rows = stmt.query_map(params![now, untimed_cutoff], |row| {
        row.get::<_, Option<String>>(0)
    })?;
    let (mut count, mut paths) = (0, Vec::new());
    for path in rows {
        count += 1;
        paths.extend(path?);
    }
    drop(stmt);
    if count > 0 {
        tx.next_seq(Stream::Artifacts);
    }
    Ok((count, paths))
}

/// Every file name a committed row points at (the startup sweep keeps only these).
pub fn storage_paths(db: &Db) -> StoreResult<HashSet<String>> {
    let mut stmt = db
        .conn
        .prepare_cached("SELECT storage_path FROM artifacts WHERE storage_path IS NOT NULL")?;
    let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
