//! Messaging: sending a message as the caller and reading the caller's inbox as a typed
//! page. Owns the content and metadata limits, message compression and the inbox paging
//! rules (cursor, delta reads, marking read). Must not render (response modes are
//! `tools::messages`) nor touch SQL (`store::messages`).

use schemars::JsonSchema;
use serde::Deserialize;

use super::blobs::{Resolution, resolve_envelope_from};
use super::{Ctx, Refusal, forbid_full_in_polling, row_cursor_seq};
use crate::config::Config;
use crate::domain::cursor::{page_end, row_cursor, rows_within_budget};
use crate::domain::text::{char_count, collapse_whitespace, minify_json, optional_text};
use crate::store::blobs as blob_store;
use crate::store::messages::{
    self as message_store, InboxPage as InboxPosition, InboxQuery, InboxRow, MessageRow, NewMessage,
};
use crate::store::{Db, StoreResult, WriteTx};

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MessageCompression {
    /// Store exactly what was sent (default).
    #[default]
    None,
    /// Collapse every whitespace run to one space (lossy).
    Whitespace,
    /// Collapse whitespace only when that saves at least 5 % (lossy).
    Auto,
}

impl MessageCompression {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageCompression::None => "none",
            MessageCompression::Whitespace => "whitespace",
            MessageCompression::Auto => "auto",
        }
    }

    /// The content to store under this mode.
    pub fn apply(self, content: &str) -> String {
        match self {
            MessageCompression::None => content.to_string(),
            MessageCompression::Whitespace => collapse_whitespace(content),
            MessageCompression::Auto => {
                let collapsed = collapse_whitespace(content);
                let budget = char_count(content) * 95 / 100;
                if char_count(&collapsed) <= budget {
                    collapsed
                } else {
                    content.to_string()
                }
            }
        }
    }
}

/// A message's stored metadata: `{}` when absent; JSON is minified (keys, numbers and
/// escapes untouched); anything else is kept verbatim. Over the limit → METADATA_TOO_LONG.
pub fn message_metadata(config: &Config, raw: Option<&str>, tool: &str) -> Result<String, Refusal> {
    let metadata = match raw {
        None | Some("") => "{}".to_string(),
        Some(raw) => minify_json(raw).unwrap_or_else(|| raw.to_string()),
    };
    let metadata_chars = char_count(&metadata);
    if metadata_chars > config.max_message_metadata_chars {
        let error = format!(
            "{tool}: metadata is {metadata_chars} characters, over the limit of {}; shorten it \
             or move it into the message body",
            config.max_message_metadata_chars
        );
        return Err(Refusal::new("METADATA_TOO_LONG", error.clone())
            .with("max_chars", config.max_message_metadata_chars)
            .logged(
                format!("{tool}_rejected"),
                format!("{error} (METADATA_TOO_LONG)"),
            ));
    }
    Ok(metadata)
}

/// A direct message must name an agent that exists: one to a typo'd or never-registered id
/// would wait forever in an inbox nobody reads (no silent loss). `None` broadcasts.
pub fn check_recipient(db: &Db, tool: &str, to_agent: Option<&str>) -> Result<(), Refusal> {
    let Some(to_agent) = to_agent else {
        return Ok(());
    };
    if crate::store::agents::get(db, to_agent)?.is_some() {
        return Ok(());
    }
    let message = format!(
        "{tool}: to_agent {to_agent:?} is not a registered agent; check the id with \
         list_agents, or omit to_agent to broadcast"
    );
    Err(
        Refusal::rejected("RECIPIENT_NOT_FOUND", &format!("{tool}_rejected"), message)
            .with("field", "to_agent"),
    )
}

/// send_message: the sender is the caller.
pub struct SendMessage {
    /// `None` broadcasts.
    pub to_agent: Option<String>,
    pub content: String,
    /// `content` after `compression`: computed before the write (see [`SendMessage::new`]).
    stored_content: String,
    pub metadata: Option<String>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub compression: MessageCompression,
}

pub struct Sent {
    pub message: MessageRow,
    pub compression: MessageCompression,
    /// The stored content differs from what was sent.
    pub applied: bool,
    pub original_chars: usize,
    pub stored_chars: usize,
}

impl SendMessage {
    /// Applies the compression here, so a caller can build the command off the writer.
    pub fn new(
        to_agent: Option<String>,
        content: String,
        metadata: Option<String>,
        trace_id: Option<String>,
        span_id: Option<String>,
        compression: MessageCompression,
    ) -> SendMessage {
        SendMessage {
            stored_content: compression.apply(&content),
            to_agent,
            content,
            metadata,
            trace_id,
            span_id,
            compression,
        }
    }
}

pub fn send(tx: &mut WriteTx<'_>, ctx: &mut Ctx, command: SendMessage) -> Result<Sent, Refusal> {
    let config = ctx.config.clone();
    let mode = command.compression;
    let content = command.stored_content;
    let original_chars = char_count(&command.content);
    let stored_chars = char_count(&content);
    if stored_chars > config.max_message_content_chars {
        let error = format!(
            "send_message: content is {stored_chars} characters, over the limit of {}; send \
             large payloads as a blob",
            config.max_message_content_chars
        );
        return Err(Refusal::new("CONTENT_TOO_LONG", error.clone())
            .with("max_chars", config.max_message_content_chars)
            .logged(
                "send_message_rejected",
                format!("{error} (CONTENT_TOO_LONG)"),
            ));
    }
    let metadata = message_metadata(&config, command.metadata.as_deref(), "send_message")?;
    check_recipient(tx.db(), "send_message", command.to_agent.as_deref())?;
    let message = NewMessage {
        from_agent: ctx.agent().to_string(),
        to_agent: command.to_agent,
        content,
        metadata,
        trace_id: optional_text(command.trace_id.as_deref()),
        span_id: optional_text(command.span_id.as_deref()),
    };
    let row = message_store::insert(tx, &message)?;
    let applied = row.content != command.content;
    ctx.log(
        "send_message",
        format!(
            "message_id={} to={} chars={stored_chars} compressed={applied} saved_chars={}",
            row.id,
            row.to_agent.as_deref().unwrap_or("broadcast"),
            original_chars.saturating_sub(stored_chars)
        ),
    );
    Ok(Sent {
        message: row,
        compression: mode,
        applied,
        original_chars,
        stored_chars,
    })
}

/// One page of an inbox read.
pub struct ReadInbox {
    /// Whose inbox, when a tool names one besides the caller (read_snapshot's `agent_id`):
    /// the pipeline has already refused a foreign one under enforce and warned under warn.
    /// `None` reads the caller's own.
    pub subject: Option<String>,
    pub from_agent: Option<String>,
    pub unread_only: bool,
    /// 1-200.
    pub limit: i64,
    /// Newest-first reads only.
    pub offset: i64,
    /// Delta read by time; a cursor wins over it.
    pub since_ms: Option<i64>,
    /// The previous page's `next_cursor`, verbatim.
    pub cursor: Option<String>,
    /// The caller asked for the full response mode, refused in polling and delta reads
    /// when the hub forbids it.
    pub full_mode: bool,
    /// The caller says it reads in a polling loop.
    pub polling: bool,
    pub resolve_blob_refs: bool,
    /// Leave every message unread (read_snapshot, D12).
    pub peek: bool,
    /// The page carries each message's whole content: it stops once the contents pass
    /// [`WHOLE_CONTENT_PAGE_BYTES`] (the first message always comes, whatever its size).
    pub whole_content: bool,
}

/// The content budget of one whole-content page: large enough for many ordinary messages,
/// small enough that one reply stays a reasonable tool result.
pub const WHOLE_CONTENT_PAGE_BYTES: usize = 64 * 1024;

pub struct InboxItem {
    pub row: InboxRow,
    /// Set when blob refs were to be resolved and the content is an envelope.
    pub resolution: Option<Resolution>,
}

impl InboxItem {
    /// The resolved payload when a blob was resolved, else the stored content.
    pub fn effective_content(&self) -> &str {
        self.resolution
            .as_ref()
            .and_then(|r| r.value.as_deref())
            .unwrap_or(&self.row.message.content)
    }
}

pub struct InboxPage {
    pub items: Vec<InboxItem>,
    pub has_more: bool,
    /// Delta reads only: resume after the last row (or where the caller was, on an empty page).
    pub next_cursor: Option<String>,
    /// The sequence of the last row returned, when any.
    pub last_seq: Option<i64>,
    /// Newest-first reads with more rows: the offset of the next page.
    pub next_offset: Option<i64>,
    /// Items carry their whole content (the read asked for it).
    pub whole_content: bool,
}

/// What an inbox read leaves to write: read marks for the unread rows it returned, and the
/// access counts of the blobs it resolved.
#[derive(Debug, Default)]
pub struct InboxEffects {
    owner: String,
    mark_read: Vec<i64>,
    resolved_blobs: Vec<String>,
}

impl InboxEffects {
    pub fn is_empty(&self) -> bool {
        self.mark_read.is_empty() && self.resolved_blobs.is_empty()
    }

    pub fn apply(self, tx: &mut WriteTx<'_>) -> StoreResult<()> {
        message_store::mark_read(tx, &self.owner, &self.mark_read)?;
        blob_store::touch(tx, &self.resolved_blobs)
    }
}

/// Reads a page on any connection (the reader pool for read_messages); the marks and blob
/// counts it implies come back as [`InboxEffects`] for the writer.
pub fn read_inbox_from(
    db: &Db,
    ctx: &mut Ctx,
    read: ReadInbox,
) -> Result<(InboxPage, InboxEffects), Refusal> {
    let cursor = read.cursor.as_deref();
    let position = match (cursor, read.since_ms) {
        (Some(cursor), _) => {
            InboxPosition::AfterSeq(row_cursor_seq("read_messages", cursor, cursor)?)
        }
        (None, Some(since)) => InboxPosition::SinceMs(since),
        (None, None) => InboxPosition::Newest {
            offset: read.offset,
        },
    };
    let delta = !matches!(position, InboxPosition::Newest { .. });
    if read.full_mode && (read.polling || delta) {
        forbid_full_in_polling(&ctx.config, "read_messages", &["nano", "tiny", "compact"])?;
    }
    let owner = read
        .subject
        .clone()
        .unwrap_or_else(|| ctx.agent().to_string());
    let query = InboxQuery {
        agent_id: owner.clone(),
        from_agent: read.from_agent.clone(),
        unread_only: read.unread_only,
        limit: read.limit,
        page: position,
    };
    let result = message_store::inbox(db, &query)?;
    let mut has_more = result.has_more;
    let mut items = Vec::with_capacity(result.rows.len());
    for row in result.rows {
        let resolution = if read.resolve_blob_refs {
            resolve_envelope_from(db, &row.message.content)?
        } else {
            None
        };
        items.push(InboxItem { row, resolution });
    }
    if read.whole_content {
        let kept = rows_within_budget(
            items.iter().map(|item| item.effective_content().len()),
            WHOLE_CONTENT_PAGE_BYTES,
        );
        has_more |= kept < items.len();
        items.truncate(kept);
    }
    // Marks and blob counts only for what the page returns: a row cut by the budget stays
    // unread for the next page.
    let mut effects = InboxEffects {
        owner,
        ..InboxEffects::default()
    };
    for item in &items {
        if !read.peek && !item.row.was_read {
            effects.mark_read.push(item.row.message.id);
        }
        if let Some(found) = item.resolution.as_ref().filter(|r| r.found) {
            effects.resolved_blobs.push(found.hash.clone());
        }
    }
    let last = items
        .last()
        .map(|item| (item.row.message.seq, item.row.message.id));
    ctx.log(
        "read_messages",
        format!(
            "count={} limit={} offset={} since_ts={} cursor={} resolve_blob_refs={}",
            items.len(),
            read.limit,
            if delta { 0 } else { read.offset },
            read.since_ms
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            cursor.unwrap_or("-"),
            read.resolve_blob_refs,
        ),
    );
    let (next_cursor, last_seq, next_offset) = page_end(
        delta,
        last,
        cursor,
        has_more,
        read.offset,
        items.len() as i64,
    );
    // A plain first read (newest first) hands back where a cursor loop continues: after
    // the newest row, which is the first; on an empty page, after the newest row visible now.
    let next_cursor = match (next_cursor, delta || read.offset > 0, items.first()) {
        (Some(cursor), _, _) => Some(cursor),
        (None, true, _) => None,
        (None, false, Some(newest)) => {
            Some(row_cursor(newest.row.message.seq, newest.row.message.id))
        }
        (None, false, None) => Some(row_cursor(
            message_store::latest_visible_seq(db, &effects.owner)?,
            0,
        )),
    };
    let page = InboxPage {
        has_more,
        next_cursor,
        last_seq,
        next_offset,
        items,
        whole_content: read.whole_content,
    };
    Ok((page, effects))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_is_lossless_unless_asked() {
        let code = "fn main() {\n    println!(\"hi\");\n}\n";
        assert_eq!(MessageCompression::default().apply(code), code);
        assert_eq!(MessageCompression::Whitespace.apply(" a  b "), "a b");
        // auto keeps the original when collapsing saves under 5 %.
        assert_eq!(
            MessageCompression::Auto.apply("a b c d e f g h i j k"),
            "a b c d e f g h i j k"
        );
    }
}
