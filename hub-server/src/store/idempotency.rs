//! Stored responses of mutating calls, keyed by (scope agent, tool, idempotency key).
//!
//! Only successful responses are stored; the fingerprint of the original arguments lets a
//! reuse of the key with different arguments be refused instead of replayed silently.

use crate::store::sql::{OptionalExtension, params};

use super::{Db, StoreResult, WriteTx};

#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub fingerprint: String,
    pub response_json: String,
}

/// The live record for the key, ignoring records created before `not_before_ms`.
pub fn lookup(
    db: &Db,
    agent_id: &str,
    tool_name: &str,
    key: &str,
    not_before_ms: Option<i64>,
) -> StoreResult<Option<StoredResponse>> {
    Ok(db
        .conn
        .prepare_cached(
            "SELECT fingerprint, response_json FROM idempotency_keys
             WHERE agent_id = ?1 AND tool_name = ?2 AND idempotency_key = ?3
               AND created_at >= ?4",
        )?
        .query_row(
            params![agent_id, tool_name, key, not_before_ms.unwrap_or(i64::MIN)],
            |row| {
                Ok(StoredResponse {
                    fingerprint: row.get(0)?,
                    response_json: row.get(1)?,
                })
            },
        )
        .optional()?)
}

pub fn save(
    tx: &mut WriteTx<'_>,
    agent_id: &str,
    tool_name: &str,
    key: &str,
    stored: &StoredResponse,
) -> StoreResult<()> {
    let now = tx.now_ms();
    tx.conn()
        .prepare_cached(
            "INSERT INTO idempotency_keys
               (agent_id, tool_name, idempotency_key, fingerprint, response_json, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (agent_id, tool_name, idempotency_key) DO UPDATE SET fingerprint = excluded.fingerprint,
               response_json = excluded.response_json, created_at = excluded.created_at",
        )?
        .execute(params![
            agent_id,
            tool_name,
            key,
            stored.fingerprint,
            stored.response_json,
            now
        ])?;
    Ok(())
}

pub fn delete(tx: &mut WriteTx<'_>, agent_id: &str, tool_name: &str, key: &str) -> StoreResult<()> {
    tx.conn().execute(
        "DELETE FROM idempotency_keys WHERE agent_id = ?1 AND tool_name = ?2 AND idempotency_key = ?3",
        params![agent_id, tool_name, key],
    )?;
    Ok(())
}
