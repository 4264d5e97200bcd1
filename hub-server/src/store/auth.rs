//! Agent tokens (stored as SHA-256 digests, never in clear) and the auth-event log.

use crate::store::sql::{OptionalExtension, params};

use super::{Db, StoreResult, WriteTx};

/// SHA-256 of a token; the only form in which a token is kept.
pub type TokenDigest = [u8; 32];

pub fn token_digest(db: &Db, agent_id: &str) -> StoreResult<Option<TokenDigest>> {
    let digest: Option<Vec<u8>> = db
        .conn
        .prepare_cached("SELECT token_sha256 FROM agent_tokens WHERE agent_id = ?1")?
        .query_row([agent_id], |row| row.get(0))
        .optional()?;
    Ok(digest.and_then(|bytes| bytes.try_into().ok()))
}

/// What the pipeline needs to know about a caller: its token digest and its stored role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub token_sha256: Option<TokenDigest>,
    pub role: String,
    pub role_grant: String,
}

/// The credentials of a registered agent (`None` for an unknown id), in one lookup.
pub fn credentials(db: &Db, agent_id: &str) -> StoreResult<Option<Credentials>> {
    let row: Option<(Option<Vec<u8>>, String, String)> = db
        .conn
        .prepare_cached(
            "SELECT t.token_sha256, a.role, a.role_grant
               FROM agents a LEFT JOIN agent_tokens t ON t.agent_id = a.id
              WHERE a.id = ?1",
        )?
        .query_row([agent_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    Ok(row.map(|(digest, role, role_grant)| Credentials {
        token_sha256: digest.and_then(|bytes| bytes.try_into().ok()),
        role,
        role_grant,
    }))
}

/// Stores (or replaces) the token digest of `agent_id`.
pub fn set_token(tx: &mut WriteTx<'_>, agent_id: &str, digest: &TokenDigest) -> StoreResult<()> {
    let now = tx.now_ms();
    tx.conn()
        .prepare_cached(
            "INSERT INTO agent_tokens (agent_id, token_sha256, created_at, last_used_at)
             VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (agent_id) DO UPDATE
               SET token_sha256 = excluded.token_sha256, created_at = excluded.created_at,
                   last_used_at = excluded.last_used_at",
        )?
        .execute(params![agent_id, digest.as_slice(), now])?;
    Ok(())
}

pub fn touch_token(tx: &mut WriteTx<'_>, agent_id: &str) -> StoreResult<()> {
    let now = tx.now_ms();
    tx.conn()
        .prepare_cached("UPDATE agent_tokens SET last_used_at = ?2 WHERE agent_id = ?1")?
        .execute(params![agent_id, now])?;
    Ok(())
}
