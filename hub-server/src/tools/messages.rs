//! Messaging tools: send_message, read_messages.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::blobs::{Resolution, resolve_envelope};
use super::text::optional_text;
use super::text::{char_count, collapse_whitespace, digest, minify_json, prefix};
use super::{
    Activity, Category, OpCtx, ToolDef, ToolError, ToolResult, forbid_full_in_polling, int_arg,
    non_blank,
};
use crate::store::WriteTx;
use crate::store::messages::{self as message_store, InboxPage, InboxQuery, InboxRow, NewMessage};
use crate::tool_args;

pub fn tools() -> Vec<ToolDef> {
    vec![
        super::mutating(
            "send_message",
            Category::Messaging,
            "Send a message to one agent (to_agent) or to all (omit to_agent). Content is \
             stored exactly as sent unless a compression_mode is asked for. Supports \
             trace_id/span_id and idempotency_key.",
            Activity::Stream,
            send_message,
        ),
        super::blobs::send_blob_message_tool(),
        super::mutating(
            "read_messages",
            Category::Messaging,
            "Read your inbox (direct and broadcast messages). For loops pass the returned \
             next_cursor back as cursor: every message arrives exactly once, in order. \
             response_mode full/compact/tiny/nano; full is refused in polling reads.",
            Activity::Quiet,
            read_messages,
        ),
    ]
}

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
    fn as_str(self) -> &'static str {
        match self {
            MessageCompression::None => "none",
            MessageCompression::Whitespace => "whitespace",
            MessageCompression::Auto => "auto",
        }
    }

    /// The content to store under this mode.
    fn apply(self, content: &str) -> String {
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

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SendMessageArgs {
    /// The sender (the caller).
    pub from_agent: String,
    /// The recipient; omit or leave empty to broadcast to every agent.
    pub to_agent: Option<String>,
    /// The message text (may be empty).
    pub content: String,
    /// JSON (or any text) metadata; JSON is stored minified with keys and numbers intact.
    pub metadata: Option<String>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    /// none (default: stored exactly), whitespace or auto (both collapse whitespace).
    pub compression_mode: Option<MessageCompression>,
    /// Retrying with the same key and arguments returns the first response.
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(SendMessageArgs, caller = from_agent, idempotent);

/// A message's stored metadata: `{}` when absent; JSON is minified (keys, numbers and
/// escapes untouched); anything else is kept verbatim. Over the limit → METADATA_TOO_LONG.
pub(super) fn message_metadata(
    config: &crate::config::Config,
    raw: Option<&str>,
    tool: &str,
) -> Result<String, ToolError> {
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
        return Err(ToolError::new("METADATA_TOO_LONG", error.clone())
            .with("max_chars", config.max_message_metadata_chars)
            .logged(
                format!("{tool}_rejected"),
                format!("{error} (METADATA_TOO_LONG)"),
            ));
    }
    Ok(metadata)
}

fn send_message(tx: &mut WriteTx<'_>, ctx: &mut OpCtx, args: SendMessageArgs) -> ToolResult {
    let config = ctx.config.clone();
    let mode = args.compression_mode.unwrap_or_default();
    let content = mode.apply(&args.content);
    let original_chars = char_count(&args.content);
    let stored_chars = char_count(&content);
    if stored_chars > config.max_message_content_chars {
        let error = format!(
            "send_message: content is {stored_chars} characters, over the limit of {}; send \
             large payloads as a blob",
            config.max_message_content_chars
        );
        return Err(ToolError::new("CONTENT_TOO_LONG", error.clone())
            .with("max_chars", config.max_message_content_chars)
            .logged(
                "send_message_rejected",
                format!("{error} (CONTENT_TOO_LONG)"),
            ));
    }
    let metadata = message_metadata(&config, args.metadata.as_deref(), "send_message")?;
    let message = NewMessage {
        from_agent: args.from_agent.trim().to_string(),
        to_agent: non_blank(args.to_agent.as_deref()).map(str::to_string),
        content,
        metadata,
        trace_id: optional_text(args.trace_id.as_deref()),
        span_id: optional_text(args.span_id.as_deref()),
    };
    let row = message_store::insert(tx, &message)?;
    let applied = row.content != args.content;
    ctx.log(
        "send_message",
        format!(
            "message_id={} to={} chars={stored_chars} compressed={applied} saved_chars={}",
            row.id,
            row.to_agent.as_deref().unwrap_or("broadcast"),
            original_chars.saturating_sub(stored_chars)
        ),
    );
    Ok(json!({
        "success": true,
        "message": {
            "id": row.id,
            "from_agent": row.from_agent,
            "to_agent": row.to_agent,
            "content": row.content,
            "metadata": row.metadata,
            "trace_id": row.trace_id,
            "span_id": row.span_id,
            "created_at": row.created_at,
            "read": 0,
        },
        "compression": {
            "mode": mode.as_str(),
            "applied": applied,
            "original_chars": original_chars,
            "stored_chars": stored_chars,
        }
    }))
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReadMode {
    #[default]
    Full,
    Compact,
    Tiny,
    Nano,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReadMessagesArgs {
    /// Whose inbox (the caller).
    pub agent_id: String,
    /// Only messages from this sender.
    pub from: Option<String>,
    /// Only messages this agent has not read yet.
    pub unread_only: Option<bool>,
    /// Page size, 1-200 (default 50).
    pub limit: Option<f64>,
    /// Rows to skip, newest-first reads only.
    pub offset: Option<f64>,
    /// Delta read: messages created after this time (ms).
    pub since_ts: Option<f64>,
    /// Delta read: the next_cursor of the previous read (opaque; wins over since_ts).
    pub cursor: Option<String>,
    /// full (default), compact, tiny or nano.
    pub response_mode: Option<ReadMode>,
    /// Set in polling loops; full mode is then refused.
    pub polling: Option<bool>,
    /// Resolve blob-ref envelopes (send_blob_message): adds blob_ref and resolved_content.
    pub resolve_blob_refs: Option<bool>,
    pub auth_token: Option<String>,
    /// Not on the wire: read without marking anything read (read_snapshot, D12).
    #[serde(skip)]
    #[schemars(skip)]
    pub peek: bool,
}
tool_args!(ReadMessagesArgs, caller = agent_id);

// Row cursors are shared by every paged read; their format lives in `domain::cursor`.
pub use crate::domain::cursor::{parse_row_cursor, row_cursor};

pub(super) fn read_messages(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: ReadMessagesArgs,
) -> ToolResult {
    let mode = args.response_mode.unwrap_or_default();
    let limit = int_arg(args.limit, 50, 1, 200);
    let offset = int_arg(args.offset, 0, 0, i64::MAX);
    let cursor = non_blank(args.cursor.as_deref());
    let page = match (cursor, args.since_ts) {
        (Some(cursor), _) => match parse_row_cursor(cursor) {
            Some(seq) => InboxPage::AfterSeq(seq),
            None => {
                return Err(ToolError::new(
                    "CURSOR_INVALID",
                    format!(
                        "read_messages: cursor {cursor:?} is not a cursor this hub issued; pass \
                         back next_cursor unchanged, or omit it to start over"
                    ),
                ));
            }
        },
        (None, Some(since)) if since.is_finite() => InboxPage::SinceMs(since.floor() as i64),
        _ => InboxPage::Newest { offset },
    };
    let delta = !matches!(page, InboxPage::Newest { .. });
    if mode == ReadMode::Full && (args.polling == Some(true) || delta) {
        forbid_full_in_polling(&ctx.config, "read_messages", &["nano", "tiny", "compact"])?;
    }
    let agent_id = args.agent_id.trim().to_string();
    let query = InboxQuery {
        agent_id: agent_id.clone(),
        from_agent: non_blank(args.from.as_deref()).map(str::to_string),
        unread_only: args.unread_only == Some(true),
        limit,
        page,
    };
    let result = message_store::inbox(tx.db(), &query)?;
    let unread: Vec<i64> = result
        .rows
        .iter()
        .filter(|row| !row.was_read)
        .map(|row| row.message.id)
        .collect();
    if !args.peek {
        message_store::mark_read(tx, &agent_id, &unread)?;
    }
    let resolve = args.resolve_blob_refs == Some(true);
    let mut resolutions: Vec<Option<Resolution>> = Vec::with_capacity(result.rows.len());
    for row in &result.rows {
        resolutions.push(if resolve {
            resolve_envelope(tx, &row.message.content)?
        } else {
            None
        });
    }

    let next_cursor = if delta {
        match result.rows.last() {
            Some(last) => Some(row_cursor(last.message.seq, last.message.id)),
            None => cursor.map(str::to_string),
        }
    } else {
        None
    };
    ctx.log(
        "read_messages",
        format!(
            "count={} limit={limit} offset={} since_ts={} cursor={} resolve_blob_refs={resolve}",
            result.rows.len(),
            if delta { 0 } else { offset },
            args.since_ts
                .map(|v| (v.floor() as i64).to_string())
                .unwrap_or_else(|| "-".into()),
            cursor.unwrap_or("-"),
        ),
    );
    let mut body = Map::new();
    if mode == ReadMode::Nano {
        body.insert(
            "m".into(),
            Value::Array(
                result
                    .rows
                    .iter()
                    .zip(&resolutions)
                    .map(|(row, res)| nano_item(row, res.as_ref()))
                    .collect(),
            ),
        );
        body.insert("h".into(), json!(u8::from(result.has_more)));
        body.insert("n".into(), json!(next_cursor));
    } else {
        let items = result
            .rows
            .iter()
            .zip(&resolutions)
            .map(|(row, res)| message_item(row, res.as_ref(), mode))
            .collect();
        body.insert("messages".into(), Value::Array(items));
        body.insert("has_more".into(), json!(result.has_more));
        body.insert("next_cursor".into(), json!(next_cursor));
    }
    if !delta && result.has_more {
        body.insert("next_offset".into(), json!(offset + limit));
    }
    Ok(Value::Object(body))
}

/// The resolved payload when a blob was resolved, else the stored content.
fn effective_content<'a>(row: &'a InboxRow, resolution: Option<&'a Resolution>) -> &'a str {
    resolution
        .and_then(|r| r.value.as_deref())
        .unwrap_or(&row.message.content)
}

fn message_item(row: &InboxRow, resolution: Option<&Resolution>, mode: ReadMode) -> Value {
    let m = &row.message;
    let read = u8::from(row.was_read);
    let text = effective_content(row, resolution);
    match mode {
        ReadMode::Full => {
            let mut item = json!({
            "id": m.id,
            "from_agent": m.from_agent,
            "to_agent": m.to_agent,
            "content": m.content,
            "metadata": m.metadata,
            "trace_id": m.trace_id,
            "span_id": m.span_id,
            "created_at": m.created_at,
            "read": read,
            });
            if let Some(res) = resolution {
                item["blob_ref"] = res.blob_ref_json();
                item["resolved_content"] = json!(res.value);
            }
            item
        }
        _ => {
            let mut item = json!({
                "id": m.id,
                "from_agent": m.from_agent,
                "to_agent": m.to_agent,
                "created_at": m.created_at,
                "read": read,
                "trace_id": m.trace_id,
                "span_id": m.span_id,
                "content_chars": char_count(text),
                "content_digest": digest(text, 16),
            });
            if let Some(res) = resolution {
                item["blob_ref_hash"] = json!(res.hash);
                item["blob_resolved"] = json!(res.found);
            }
            if mode == ReadMode::Compact {
                item["content_preview"] = json!(prefix(text, 180));
            }
            item
        }
    }
}

fn nano_item(row: &InboxRow, resolution: Option<&Resolution>) -> Value {
    let m = &row.message;
    let text = effective_content(row, resolution);
    let mut item = json!({
        "i": m.id,
        "f": m.from_agent,
        "t": m.to_agent,
        "u": m.created_at,
        "r": u8::from(row.was_read),
        "c": char_count(text),
        "d": digest(text, 12),
    });
    if let Some(trace) = m.trace_id.as_deref().filter(|t| !t.is_empty()) {
        item["x"] = json!(prefix(trace, 12));
    }
    if let Some(span) = m.span_id.as_deref().filter(|s| !s.is_empty()) {
        item["y"] = json!(prefix(span, 12));
    }
    if let Some(res) = resolution {
        item["b"] = json!(res.short_hash());
        item["z"] = json!(u8::from(res.found));
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_cursors_round_trip_and_reject_garbage() {
        assert_eq!(parse_row_cursor(&row_cursor(17, 4)), Some(17));
        assert_eq!(parse_row_cursor("0"), Some(0));
        assert_eq!(parse_row_cursor("abc"), None);
        assert_eq!(parse_row_cursor("5:x"), None);
        assert_eq!(parse_row_cursor("-1:2"), None);
    }

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
