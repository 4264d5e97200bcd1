//! Direct and broadcast messages, and per-agent read state.
//!
//! Messages are append-only, so the hub-wide `seq` a message takes at insert orders every
//! inbox exactly as commits happened; cursors resume strictly after a `seq`.

use crate::store::sql::{Row, params};

use super::{Db, StoreResult, Stream, WriteTx};

#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    pub id: i64,
    pub seq: i64,
    pub from_agent: String,
    /// `None` for a broadcast.
    pub to_agent: Option<String>,
    pub content: String,
    pub metadata: String,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub created_at: i64,
}

const COLUMNS: &str =
    "id, seq, from_agent, to_agent, content, metadata, trace_id, span_id, created_at";

fn from_row(row: &Row<'_>) -> crate::store::sql::Result<MessageRow> {
    Ok(MessageRow {
        id: row.get(0)?,
        seq: row.get(1)?,
        from_agent: row.get(2)?,
        to_agent: row.get(3)?,
        content: row.get(4)?,
        metadata: row.get(5)?,
        trace_id: row.get(6)?,
        span_id: row.get(7)?,
        created_at: row.get(8)?,
    })
}

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub from_agent: String,
    pub to_agent: Option<String>,
    pub content: String,
    pub metadata: String,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
}

pub fn insert(tx: &mut WriteTx<'_>, message: &NewMessage) -> StoreResult<MessageRow> {
    let seq = tx.next_seq(Stream::Messages);
    if message.to_agent.is_none() {
        tx.mark_head(Stream::Broadcasts, seq);
    }
    let now = tx.now_ms();
    let id = tx
        .conn()
        .prepare_cached(
            "INSERT INTO messages (seq, from_agent, to_agent, content, metadata, trace_id,
                                   span_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
        )?
        .query_row(
            params![
                seq,
                message.from_agent,
                message.to_agent,
                message.content,
                message.metadata,
                message.trace_id,
                message.span_id,
                now
            ],
            |r| r.get(0),
        )?;
    Ok(MessageRow {
        id,
        seq,
        from_agent: message.from_agent.clone(),
        to_agent: message.to_agent.clone(),
        content: message.content.clone(),
        metadata: message.metadata.clone(),
        trace_id: message.trace_id.clone(),
        span_id: message.span_id.clone(),
        created_at: now,
    })
}

/// Which slice of an inbox to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxPage {
    /// Oldest first, strictly after this sequence number (cursor reads).
    AfterSeq(i64),
    /// Oldest first, created strictly after this time (legacy `since_ts`).
    SinceMs(i64),
    /// Newest first, skipping `offset` rows.
    Newest { offset: i64 },
}

#[derive(Debug, Clone)]
pub struct InboxQuery {
    pub agent_id: String,
    pub from_agent: Option<String>,
    pub unread_only: bool,
    pub limit: i64,
    pub page: InboxPage,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InboxRow {
    pub message: MessageRow,
    /// Whether this agent had read the message before this call.
    pub was_read: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InboxPageResult {
    pub rows: Vec<InboxRow>,
    pub has_more: bool,
}

/// Messages visible to the agent (addressed to it, or broadcast), one page plus whether
/// more follow. Direct and broadcast rows are fetched as two index-ordered range scans and
/// merged, so a page costs O(limit) whatever the size of the table.
pub fn inbox(db: &Db, query: &InboxQuery) -> StoreResult<InboxPageResult> {
    let (bound, order, direction, offset) = match query.page {
        InboxPage::AfterSeq(_) => ("AND seq > ?4", "seq", "ASC", 0),
        InboxPage::SinceMs(_) => ("AND created_at > ?4", "created_at", "ASC", 0),
        InboxPage::Newest { offset } => ("", "seq", "DESC", offset.max(0)),
    };
    let bound_value = match query.page {
        InboxPage::AfterSeq(seq) => seq,
        InboxPage::SinceMs(ms) => ms,
        InboxPage::Newest { .. } => 0,
    };
    // The tie-breaker keeps equal timestamps in insertion order.
    let order_by = format!("{order} {direction}, id {direction}");
    let branch = |target: &str| {
        format!(
            "SELECT {COLUMNS} FROM messages
             WHERE {target} {bound}
               AND (?2 IS NULL OR from_agent = ?2)
               AND (?3 = 0 OR NOT EXISTS (SELECT 1 FROM message_reads r
                                          WHERE r.message_id = messages.id AND r.agent_id = ?1))
             ORDER BY {order_by} LIMIT ?5"
        )
    };
    let sql = format!(
        "SELECT m.*, EXISTS (SELECT 1 FROM message_reads r
                             WHERE r.message_id = m.id AND r.agent_id = ?1)
         FROM (SELECT * FROM ({direct}) AS d UNION ALL SELECT * FROM ({broadcast}) AS b) AS m
         ORDER BY {order_by} LIMIT ?5 OFFSET ?6",
        direct = branch("to_agent = ?1"),
        broadcast = branch("to_agent IS NULL"),
    );
    // Each branch must supply enough rows for the offset, the page and the has_more probe.
    let fetch = query.limit + 1;
    let mut stmt = db.conn.prepare_cached(&sql)?;
    let mut rows = stmt
        .query_map(
            params![
                query.agent_id,
                query.from_agent,
                query.unread_only,
                bound_value,
                fetch + offset,
                offset
            ],
            |row| {
                Ok(InboxRow {
                    message: from_row(row)?,
                    was_read: row.get(9)?,
                })
            },
        )?
        .collect::<crate::store::sql::Result<Vec<_>>>()?;
    let has_more = rows.len() as i64 > query.limit;
    rows.truncate(query.limit as usize);
    Ok(InboxPageResult { rows, has_more })
}

/// Records that `agent_id` has read these messages (already-read ones are left alone).
pub fn mark_read(tx: &mut WriteTx<'_>, agent_id: &str, message_ids: &[i64]) -> StoreResult<()> {
    let now = tx.now_ms();
    let mut stmt = tx.conn().prepare_cached(
        "INSERT INTO message_reads (message_id, agent_id, read_at) VALUES (?1, ?2, ?3)
         ON CONFLICT DO NOTHING",
    )?;
    for id in message_ids {
        stmt.execute(params![id, agent_id, now])?;
    }
    Ok(())
}

/// The newest sequence number among messages visible to `agent_id` (direct or broadcast),
/// 0 when there are none: the watcher's messages watermark. Two index lookups.
pub fn latest_visible_seq(db: &Db, agent_id: &str) -> StoreResult<i64> {
    Ok(db
        .conn
        .prepare_cached(
            "SELECT MAX(COALESCE((SELECT MAX(seq) FROM messages WHERE to_agent = ?1), 0),
                        COALESCE((SELECT MAX(seq) FROM messages WHERE to_agent IS NULL), 0))",
        )?
        .query_row([agent_id], |r| r.get(0))?)
}

pub fn get(db: &Db, id: i64) -> StoreResult<Option<MessageRow>> {
    use crate::store::sql::OptionalExtension;
    Ok(db
        .conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM messages WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}
