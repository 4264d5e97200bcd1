//! Messaging tools: send_message, read_messages — their arguments and response modes.
//! What a send or a read does (limits, paging, marking read) is `service::messages`; the
//! inbox renderer here is also read_snapshot's.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::blobs::{Resolution, blob_ref_json};
use super::text::{char_count, digest, prefix};
use super::{Activity, Category, FollowUp, OpCtx, ToolDef, ToolError, int_arg, non_blank_string};
use crate::config::Config;
pub use crate::domain::cursor::{parse_row_cursor, row_cursor};
pub use crate::service::messages::MessageCompression;
use crate::service::messages::{
    self as service, InboxItem, InboxPage, ReadInbox, SendMessage, Sent,
};
use crate::store::messages::MessageRow;
use crate::store::{Db, WriteTx};
use crate::tool_args;

pub fn tools() -> Vec<ToolDef> {
    vec![
        super::mutating_prepared(
            "send_message",
            Category::Messaging,
            "Message one agent, or all when to_agent is omitted.",
            Activity::Stream,
            (prepare_send_message, super::PrepareOn::Request),
            service::send,
            render_sent,
        ),
        super::blobs::send_blob_message_tool(),
        super::reading_marked(
            "read_messages",
            Category::Messaging,
            "Your inbox. Loop: pass next_cursor back as cursor (refuses full mode; include_content:true for whole messages).",
            super::FollowUpOrder::PerCaller,
            read_messages,
        ),
    ]
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SendMessageArgs {
    // The sender (the caller).
    pub from_agent: String,
    /// Omit to broadcast.
    pub to_agent: Option<String>,
    // The message text (may be empty).
    pub content: String,
    // JSON (or any text) metadata; JSON is stored minified with keys and numbers intact.
    pub metadata: Option<String>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    // none (default: stored exactly), whitespace or auto (both collapse whitespace).
    pub compression_mode: Option<MessageCompression>,
    // Retrying with the same key and arguments returns the first response.
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(SendMessageArgs, caller = from_agent, idempotent);

/// The command, compression applied, built before the write (off the writer thread).
fn prepare_send_message(args: SendMessageArgs, _config: &Config) -> SendMessage {
    SendMessage::new(
        non_blank_string(args.to_agent.as_deref()),
        args.content,
        args.metadata,
        args.trace_id,
        args.span_id,
        args.compression_mode.unwrap_or_default(),
    )
}

/// Rendered after the commit, off the writer thread.
fn render_sent(sent: Sent) -> Value {
    json!({
        "success": true,
        "message": sent_message_json(&sent.message),
        "compression": {
            "mode": sent.compression.as_str(),
            "applied": sent.applied,
            "original_chars": sent.original_chars,
            "stored_chars": sent.stored_chars,
        }
    })
}

/// A just-sent message as send_message and send_blob_message return it.
pub fn sent_message_json(row: &MessageRow) -> Value {
    json!({
        "id": row.id,
        "from_agent": row.from_agent,
        "to_agent": row.to_agent,
        "content": row.content,
        "metadata": row.metadata,
        "trace_id": row.trace_id,
        "span_id": row.span_id,
        "created_at": row.created_at,
        "read": 0,
    })
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
    // Whose inbox (the caller).
    pub agent_id: String,
    // Only messages from this sender.
    pub from: Option<String>,
    // Only messages this agent has not read yet.
    pub unread_only: Option<bool>,
    // Page size, 1-200 (default 50).
    #[schemars(with = "Option<i64>")]
    pub limit: Option<f64>,
    // Rows to skip, newest-first reads only.
    #[schemars(with = "Option<i64>")]
    pub offset: Option<f64>,
    // Delta read: messages created after this time (ms).
    pub since_ts: Option<f64>,
    // Delta read: the next_cursor of the previous read (opaque; wins over since_ts).
    pub cursor: Option<String>,
    // full (default), compact, tiny or nano.
    pub response_mode: Option<ReadMode>,
    // Set in polling loops; full mode is then refused.
    pub polling: Option<bool>,
    // Resolve blob-ref envelopes (send_blob_message): adds blob_ref and resolved_content.
    pub resolve_blob_refs: Option<bool>,
    /// Whole content (compact/tiny/nano); pages stop near 64 KB.
    pub include_content: Option<bool>,
    pub auth_token: Option<String>,
}
tool_args!(ReadMessagesArgs, caller = agent_id);

/// Runs on the reader pool; the read marks follow through the writer (`reading_marked`).
fn read_messages(
    db: &Db,
    ctx: &mut OpCtx,
    args: ReadMessagesArgs,
) -> Result<(Value, Option<FollowUp>), ToolError> {
    let mode = args.response_mode.unwrap_or_default();
    let read = ReadInbox {
        subject: None,
        from_agent: non_blank_string(args.from.as_deref()),
        unread_only: args.unread_only == Some(true),
        limit: int_arg(args.limit, 50, 1, 200),
        offset: int_arg(args.offset, 0, 0, i64::MAX),
        since_ms: args
            .since_ts
            .filter(|v| v.is_finite())
            .map(|v| v.floor() as i64),
        cursor: non_blank_string(args.cursor.as_deref()),
        full_mode: mode == ReadMode::Full,
        polling: args.polling == Some(true),
        resolve_blob_refs: args.resolve_blob_refs == Some(true),
        peek: false,
        whole_content: args.include_content == Some(true) && mode != ReadMode::Full,
    };
    let (page, effects) = service::read_inbox_from(db, ctx, read)?;
    let follow_up: Option<FollowUp> = (!effects.is_empty())
        .then(|| Box::new(move |tx: &mut WriteTx<'_>| effects.apply(tx)) as FollowUp);
    Ok((render_inbox(&page, mode), follow_up))
}

/// read_messages' response body for `page` in `mode`; read_snapshot embeds the same body.
pub fn render_inbox(page: &InboxPage, mode: ReadMode) -> Value {
    let mut body = Map::new();
    if mode == ReadMode::Nano {
        body.insert("m".into(), nano_items(page));
        body.insert("h".into(), json!(u8::from(page.has_more)));
        body.insert("n".into(), json!(page.next_cursor));
    } else {
        body.insert(
            "messages".into(),
            page.items
                .iter()
                .map(|item| message_item(item, mode, page.whole_content))
                .collect(),
        );
        body.insert("has_more".into(), json!(page.has_more));
        body.insert("next_cursor".into(), json!(page.next_cursor));
    }
    if let Some(next_offset) = page.next_offset {
        body.insert("next_offset".into(), json!(next_offset));
    }
    Value::Object(body)
}

fn message_item(item: &InboxItem, mode: ReadMode, whole: bool) -> Value {
    let m = &item.row.message;
    let read = u8::from(item.row.was_read);
    let resolution: Option<&Resolution> = item.resolution.as_ref();
    let text = item.effective_content();
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
                item["blob_ref"] = blob_ref_json(res);
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
            if whole {
                item["content"] = json!(text);
            } else if mode == ReadMode::Compact {
                item["content_preview"] = json!(prefix(text, 180));
            }
            item
        }
    }
}

/// The nano rows of a page (`m`), also read_snapshot's nano `s.m`.
pub fn nano_items(page: &InboxPage) -> Value {
    page.items
        .iter()
        .map(|item| nano_item(item, page.whole_content))
        .collect()
}

fn nano_item(item: &InboxItem, whole: bool) -> Value {
    let m = &item.row.message;
    let resolution = item.resolution.as_ref();
    let text = item.effective_content();
    let mut item = json!({
        "i": m.id,
        "f": m.from_agent,
        "t": m.to_agent,
        "u": m.created_at,
        "r": u8::from(item.row.was_read),
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
    if whole {
        item["k"] = json!(text);
    }
    item
}
