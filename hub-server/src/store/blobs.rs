//! Content-addressed protocol blobs: `hash` (SHA-256 of the stored value) → value.
//!
//! Identical stored values dedupe onto one row. Every read through [`get_and_touch`]
//! counts (`access_count`) and extends retention (`updated_at`); listing does not.

use crate::store::sql::{OptionalExtension, Row, params};

use super::{Db, StoreResult, WriteTx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRow {
    pub hash: String,
    pub value: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub access_count: i64,
}

/// A blob without its value, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub hash: String,
    /// Length of the stored value in characters.
    pub value_chars: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub access_count: i64,
}

fn from_row(row: &Row<'_>) -> crate::store::sql::Result<BlobRow> {
    Ok(BlobRow {
        hash: row.get(0)?,
        value: row.get(1)?,
        created_at: row.get(2)?,
        updated_at: row.get(3)?,
        access_count: row.get(4)?,
    })
}

/// Stores `value` under `hash` if absent; otherwise only refreshes `updated_at`.
/// Returns the row and whether it was created.
pub fn put(tx: &mut WriteTx<'_>, hash: &str, value: &str) -> StoreResult<(BlobRow, bool)> {
    let now = tx.now_ms();
    let created = tx
        .conn()
        .prepare_cached(
            "INSERT INTO protocol_blobs (hash, value, created_at, updated_at, access_count)
             VALUES (?1, ?2, ?3, ?3, 0) ON CONFLICT (hash) DO NOTHING",
        )?
        .execute(params![hash, value, now])?
        == 1;
    if !created {
        tx.conn()
            .prepare_cached("UPDATE protocol_blobs SET updated_at = ?2 WHERE hash = ?1")?
            .execute(params![hash, now])?;
    }
    let row = tx
        .conn()
        .prepare_cached(
            "SELECT hash, value, created_at, updated_at, access_count
             FROM protocol_blobs WHERE hash = ?1",
        )?
        .query_row([hash], from_row)?;
    Ok((row, created))
}

/// Reads a blob by exact hash, counting the read: `access_count + 1`, `updated_at = now`.
/// Reads a blob without counting the access (the caller counts it later with [`touch`]).
pub fn get(db: &Db, hash: &str) -> StoreResult<Option<BlobRow>> {
    Ok(db
        .conn
        .prepare_cached(
            "SELECT hash, value, created_at, updated_at, access_count FROM protocol_blobs
             WHERE hash = ?1",
        )?
        .query_row([hash], from_row)
        .optional()?)
}

/// Counts one access of each blob in `hashes` (unknown hashes are skipped).
pub fn touch(tx: &mut WriteTx<'_>, hashes: &[String]) -> StoreResult<()> {
    let now = tx.now_ms();
    let mut stmt = tx.conn().prepare_cached(
        "UPDATE protocol_blobs SET access_count = access_count + 1, updated_at = ?2
         WHERE hash = ?1",
    )?;
    for hash in hashes {
        stmt.execute(params![hash, now])?;
    }
    Ok(())
}

pub fn get_and_touch(tx: &mut WriteTx<'_>, hash: &str) -> StoreResult<Option<BlobRow>> {
    let now = tx.now_ms();
    Ok(tx
        .conn()
        .prepare_cached(
            "UPDATE protocol_blobs SET access_count = access_count + 1, updated_at = ?2
             WHERE hash = ?1
             RETURNING hash, value, created_at, updated_at, access_count",
        )?
        .query_row(params![hash, now], from_row)
        .optional()?)
}

/// Newest-updated first; not a read (counters unchanged).
pub fn list(db: &Db, limit: i64, offset: i64) -> StoreResult<Vec<BlobMeta>> {
    let rows = db
        .conn
        .prepare_cached(
            "SELECT hash, length(value), created_at, updated_at, access_count
             FROM protocol_blobs ORDER BY updated_at DESC, hash ASC LIMIT ?1 OFFSET ?2",
        )?
        .query_map(params![limit, offset], |row| {
            Ok(BlobMeta {
                hash: row.get(0)?,
                value_chars: row.get(1)?,
                created_at: row.get(2)?,
                updated_at: row.get(3)?,
                access_count: row.get(4)?,
            })
        })?
        .collect::<crate::store::sql::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn count(db: &Db) -> StoreResult<i64> {
    Ok(db
        .conn
        .query_row("SELECT COUNT(*) FROM protocol_blobs", [], |r| r.get(0))?)
}

/// Deletes blobs not read or stored since `cutoff_ms` that no message content and no
/// context value references (`"h":"<hash>"`).
pub fn purge_unreferenced_before(tx: &mut WriteTx<'_>, cutoff_ms: i64) -> StoreResult<usize> {
    Ok(tx.conn().execute(
        "DELETE FROM protocol_blobs
         WHERE updated_at < ?1
           AND NOT EXISTS (SELECT 1 FROM messages
                           WHERE instr(content, '\"h\":\"' || protocol_blobs.hash || '\"') > 0)
           AND NOT EXISTS (SELECT 1 FROM context
                           WHERE instr(value, '\"h\":\"' || protocol_blobs.hash || '\"') > 0)",
        [cutoff_ms],
    )?)
}
