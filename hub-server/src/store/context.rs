//! Shared context: one value per `(agent_id, key)`, readable by every agent.
//!
//! Every upsert takes the next `seq` on the context stream and stores it on the row, so
//! delta reads ("what changed after cursor S") walk `seq` ascending and never skip a change
//! made in the same millisecond (D8, D17). An updated row moves to the end of the feed.

use crate::store::sql::{OptionalExtension, Row, params};

use super::{Db, StoreResult, Stream, WriteTx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextRow {
    pub id: i64,
    pub seq: i64,
    pub agent_id: String,
    pub key: String,
    pub value: String,
    pub namespace: String,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, seq, agent_id, key, value, namespace, trace_id, span_id, updated_at";

fn from_row(row: &Row<'_>) -> crate::store::sql::Result<ContextRow> {
    Ok(ContextRow {
        id: row.get(0)?,
        seq: row.get(1)?,
        agent_id: row.get(2)?,
        key: row.get(3)?,
        value: row.get(4)?,
        namespace: row.get(5)?,
        trace_id: row.get(6)?,
        span_id: row.get(7)?,
        updated_at: row.get(8)?,
    })
}

#[derive(Debug, Clone)]
pub struct NewContext {
    pub agent_id: String,
    pub key: String,
    pub value: String,
    pub namespace: String,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
}

/// Inserts or replaces the value of `(agent_id, key)`; the namespace is not part of the
/// key, so sharing a key again in another namespace moves the row. The id is kept.
pub fn upsert(tx: &mut WriteTx<'_>, entry: &NewContext) -> StoreResult<ContextRow> {
    let seq = tx.next_seq(Stream::Context);
    let now = tx.now_ms();
    let row = tx
        .conn()
        .prepare_cached(&format!(
            "INSERT INTO context (seq, agent_id, key, value, namespace, trace_id, span_id,
                                  updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (agent_id, key) DO UPDATE SET
                 seq = excluded.seq, value = excluded.value, namespace = excluded.namespace,
                 trace_id = excluded.trace_id, span_id = excluded.span_id,
                 updated_at = excluded.updated_at
             RETURNING {COLUMNS}"
        ))?
        .query_row(
            params![
                seq,
                entry.agent_id,
                entry.key,
                entry.value,
                entry.namespace,
                entry.trace_id,
                entry.span_id,
                now
            ],
            from_row,
        )?;
    Ok(row)
}

pub fn get(db: &Db, id: i64) -> StoreResult<Option<ContextRow>> {
    Ok(db
        .conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM context WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}

pub fn get_by_key(db: &Db, agent_id: &str, key: &str) -> StoreResult<Option<ContextRow>> {
    Ok(db
        .conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM context WHERE agent_id = ?1 AND key = ?2"
        ))?
        .query_row(params![agent_id, key], from_row)
        .optional()?)
}

/// Which slice of the context to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextPage {
    /// Changes after this sequence number, oldest change first (cursor reads).
    AfterSeq(i64),
    /// Rows updated strictly after this time, oldest change first.
    UpdatedAfter(i64),
    /// Most recently updated first, skipping `offset` rows.
    Newest { offset: i64 },
}

#[derive(Debug, Clone)]
pub struct ContextQuery {
    pub agent_id: Option<String>,
    pub key: Option<String>,
    pub namespace: Option<String>,
    pub limit: i64,
    pub page: ContextPage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextPageResult {
    pub rows: Vec<ContextRow>,
    pub has_more: bool,
}

/// One page of context rows plus whether more follow (a `limit + 1` probe).
pub fn list(db: &Db, query: &ContextQuery) -> StoreResult<ContextPageResult> {
    let (bound, order, offset, bound_value) = match query.page {
        ContextPage::AfterSeq(seq) => ("AND seq > ?4", "seq ASC", 0, seq),
        ContextPage::UpdatedAfter(ms) => ("AND updated_at > ?4", "seq ASC", 0, ms),
        ContextPage::Newest { offset } => ("", "updated_at DESC, seq DESC", offset.max(0), 0),
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM context
         WHERE (?1 IS NULL OR agent_id = ?1) AND (?2 IS NULL OR key = ?2)
           AND (?3 IS NULL OR namespace = ?3) {bound}
         ORDER BY {order} LIMIT ?5 OFFSET ?6"
    );
    let mut rows = db
        .conn
        .prepare_cached(&sql)?
        .query_map(
            params![
                query.agent_id,
                query.key,
                query.namespace,
                bound_value,
                query.limit + 1,
                offset
            ],
            from_row,
        )?
        .collect::<crate::store::sql::Result<Vec<_>>>()?;
    let has_more = rows.len() as i64 > query.limit;
    rows.truncate(query.limit.max(0) as usize);
    Ok(ContextPageResult { rows, has_more })
}
