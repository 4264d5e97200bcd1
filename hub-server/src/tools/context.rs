//! Shared-context tools: share_context, share_blob_context, get_context — their arguments
//! and response modes; what the ops do is `service::context`. The page renderer here is
//! also read_snapshot's.
//!
//! Corrected behaviour: default compression is `none` (D18, `applied` only when the stored
//! value differs); get_context delta reads (`updated_after` / `cursor`) walk the context
//! change sequence oldest-first with `has_more`/`next_cursor` (D17); `requesting_agent` is
//! the caller and `agent_id` only a filter (D1).

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::blobs::{BlobCompression, blob_ref_json, blob_ref_summary, tokens_est};
use super::text::{char_count, digest, prefix};
use super::{
    Activity, Category, FollowUp, OpCtx, ToolDef, ToolError, ToolResult, count_blob_reads, int_arg,
    non_blank_string,
};
use crate::config::Config;
use crate::protocol::round3;
use crate::service::context::{
    self as service, ContextItem, ContextPage, Entry, GetContext, ShareBlobContext, ShareContext,
};
pub use crate::service::context::{ContextCompression, MAX_KEY_CHARS};
use crate::store::context::ContextRow;
use crate::store::{Db, WriteTx};
use crate::tool_args;

pub fn tools() -> Vec<ToolDef> {
    vec![
        super::mutating_prepared(
            "share_context",
            Category::Context,
            "Set a value under (you, key) for all; the same key replaces it.",
            Activity::Stream,
            (prepare_share_context, super::PrepareOn::Request),
            share_context,
            std::convert::identity,
        ),
        super::mutating_prepared(
            "share_blob_context",
            Category::Context,
            "Share a large value as a blob-ref; readers pass resolve_blob_refs:true.",
            Activity::Stream,
            (prepare_share_blob_context, super::PrepareOn::BlockingPool),
            share_blob_context,
            std::convert::identity,
        ),
        super::reading_marked(
            "get_context",
            Category::Context,
            "Shared context. Loop: pass next_cursor back as cursor (refuses full mode).",
            super::FollowUpOrder::Unordered,
            get_context,
        ),
    ]
}

pub fn context_json(row: &ContextRow) -> Value {
    json!({
        "id": row.id,
        "agent_id": row.agent_id,
        "key": row.key,
        "value": row.value,
        "namespace": row.namespace,
        "trace_id": row.trace_id,
        "span_id": row.span_id,
        "updated_at": row.updated_at,
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ShareContextArgs {
    // The owner of the entry (the caller).
    pub agent_id: String,
    // The entry's key; one value per (agent_id, key).
    pub key: String,
    // The value (any text; JSON is kept as sent).
    pub value: String,
    // Namespace (default "default"); sharing a key again in another namespace moves it.
    pub namespace: Option<String>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    /// json, whitespace, auto: lossy.
    pub compression_mode: Option<ContextCompression>,
    // Retrying with the same key and arguments returns the first response.
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(ShareContextArgs, caller = agent_id, idempotent);

/// The command, compression applied, built before the write (off the writer thread).
fn prepare_share_context(args: ShareContextArgs, _config: &Config) -> ShareContext {
    let entry = Entry {
        key: args.key,
        namespace: args.namespace,
        trace_id: args.trace_id,
        span_id: args.span_id,
    };
    ShareContext::new(entry, args.value, args.compression_mode.unwrap_or_default())
}

fn share_context(tx: &mut WriteTx<'_>, ctx: &mut OpCtx, command: ShareContext) -> ToolResult {
    let shared = service::share(tx, ctx, command)?;
    Ok(json!({
        "success": true,
        "context": context_json(&shared.row),
        "compression": {
            "mode": shared.compression.as_str(),
            "applied": shared.applied,
            "original_chars": shared.original_chars,
            "stored_chars": shared.stored_chars,
        },
    }))
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ShareBlobContextArgs {
    // The owner of the entry (the caller).
    pub agent_id: String,
    // The entry's key; one value per (agent_id, key).
    pub key: String,
    // The payload, stored as a blob.
    pub payload: String,
    // Namespace (default "default").
    pub namespace: Option<String>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    // lossless_auto (default), none, json, whitespace or auto (the last three are lossy).
    pub compression_mode: Option<BlobCompression>,
    // Length of short_hash, 8-64 (default 16).
    #[schemars(with = "Option<i64>")]
    pub hash_truncate: Option<f64>,
    // Retrying with the same key and arguments returns the first response.
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(ShareBlobContextArgs, caller = agent_id, idempotent);

/// Compression and hashing of the payload, before the write (off the writer thread).
fn prepare_share_blob_context(
    args: ShareBlobContextArgs,
    config: &Config,
) -> (ShareBlobContext, i64) {
    let truncate = int_arg(args.hash_truncate, 16, 8, 64);
    let entry = Entry {
        key: args.key,
        namespace: args.namespace,
        trace_id: args.trace_id,
        span_id: args.span_id,
    };
    let mode = args
        .compression_mode
        .unwrap_or(BlobCompression::LosslessAuto)
        .into();
    let command = ShareBlobContext::new(entry, &args.payload, mode, config);
    (command, truncate)
}

fn share_blob_context(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    (command, truncate): (ShareBlobContext, i64),
) -> ToolResult {
    let shared = service::share_blob(tx, ctx, command)?;
    let original_chars = shared.blob.compressed.original_chars;
    let envelope_chars = shared.envelope_chars;
    Ok(json!({
        "success": true,
        "context": context_json(&shared.row),
        "blob_ref": blob_ref_summary(&shared.blob, shared.created, truncate),
        "transport": {
            "original_chars": original_chars,
            "context_value_chars": envelope_chars,
            "saved_chars": original_chars.saturating_sub(envelope_chars),
            "original_tokens_est": tokens_est(original_chars),
            "context_tokens_est": tokens_est(envelope_chars),
        },
        "compression": shared.blob.compressed.to_json(),
    }))
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ContextReadMode {
    #[default]
    Full,
    Compact,
    Tiny,
    Nano,
    Summary,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GetContextArgs {
    // The caller (heartbeat, activity, token check).
    pub requesting_agent: Option<String>,
    // Filter: entries owned by this agent.
    pub agent_id: Option<String>,
    // Filter: this key.
    pub key: Option<String>,
    // Filter: this namespace.
    pub namespace: Option<String>,
    // Page size, 1-500 (default 100).
    #[schemars(with = "Option<i64>")]
    pub limit: Option<f64>,
    // Rows to skip, newest-first reads only.
    #[schemars(with = "Option<i64>")]
    pub offset: Option<f64>,
    // Delta read: entries updated after this time (ms), oldest change first.
    pub updated_after: Option<f64>,
    // Delta read: the next_cursor of the previous read (opaque; wins over updated_after).
    pub cursor: Option<String>,
    // full (default), compact, tiny, nano or summary.
    pub response_mode: Option<ContextReadMode>,
    // Set in polling loops; full mode is then refused.
    pub polling: Option<bool>,
    // Resolve blob-ref envelopes: adds blob_ref and resolved_value.
    pub resolve_blob_refs: Option<bool>,
    pub auth_token: Option<String>,
}
tool_args!(GetContextArgs, optional_caller = requesting_agent);

/// Shannon entropy in bits per character.
fn entropy(text: &str) -> f64 {
    let mut counts: HashMap<char, usize> = HashMap::new();
    let mut total = 0usize;
    for c in text.chars() {
        *counts.entry(c).or_default() += 1;
        total += 1;
    }
    if total == 0 {
        return 0.0;
    }
    counts
        .values()
        .map(|&n| {
            let p = n as f64 / total as f64;
            -p * p.log2()
        })
        .sum()
}

/// The key filter of get_context and read_snapshot: matched exactly as given (keys are not
/// trimmed); only an empty key means no filter.
pub(super) fn key_filter(key: Option<&str>) -> Option<String> {
    key.filter(|k| !k.is_empty()).map(str::to_string)
}

/// Runs on the reader pool; the blob access counts follow through the writer.
fn get_context(
    db: &Db,
    ctx: &mut OpCtx,
    args: GetContextArgs,
) -> Result<(Value, Option<FollowUp>), ToolError> {
    let mode = args.response_mode.unwrap_or_default();
    let read = GetContext {
        agent_id: non_blank_string(args.agent_id.as_deref()),
        key: key_filter(args.key.as_deref()),
        namespace: non_blank_string(args.namespace.as_deref()),
        limit: int_arg(args.limit, 100, 1, 500),
        offset: int_arg(args.offset, 0, 0, i64::MAX),
        updated_after: args
            .updated_after
            .filter(|v| v.is_finite())
            .map(|v| v.floor() as i64),
        cursor: non_blank_string(args.cursor.as_deref()),
        full_mode: mode == ContextReadMode::Full,
        polling: args.polling == Some(true),
        resolve_blob_refs: args.resolve_blob_refs == Some(true),
    };
    let (page, resolved) = service::get_from(db, ctx, read)?;
    Ok((render_context(&page, mode), count_blob_reads(resolved)))
}

/// get_context's response body for `page` in `mode`; read_snapshot embeds the same body.
pub fn render_context(page: &ContextPage, mode: ContextReadMode) -> Value {
    let mut body = Map::new();
    match mode {
        ContextReadMode::Nano => {
            body.insert("c".into(), nano_items(page));
            body.insert("h".into(), json!(u8::from(page.has_more)));
            body.insert("n".into(), json!(page.next_cursor));
            return Value::Object(body);
        }
        ContextReadMode::Summary => {
            let (summary, items) = summary(&page.items);
            body.insert("summary".into(), summary);
            body.insert("contexts".into(), Value::Array(items));
        }
        _ => {
            body.insert(
                "contexts".into(),
                page.items
                    .iter()
                    .map(|item| context_item(item, mode))
                    .collect(),
            );
        }
    }
    body.insert("has_more".into(), json!(page.has_more));
    body.insert("next_cursor".into(), json!(page.next_cursor));
    if let Some(next_offset) = page.next_offset {
        body.insert("next_offset".into(), json!(next_offset));
    }
    Value::Object(body)
}

/// The summary mode: aggregate figures over the page and its first 20 entries.
fn summary(items: &[ContextItem]) -> (Value, Vec<Value>) {
    let mut total_chars = 0usize;
    let mut entropies = Vec::with_capacity(items.len());
    let (mut refs_total, mut refs_resolved) = (0, 0);
    let mut listed = Vec::new();
    for item in items {
        let row = &item.row;
        let text = item.effective_value();
        let chars = char_count(text);
        let h = round3(entropy(text));
        total_chars += chars;
        entropies.push(h);
        if let Some(res) = &item.resolution {
            refs_total += 1;
            if res.found {
                refs_resolved += 1;
            }
        }
        if listed.len() < 20 {
            listed.push(json!({
                "agent_id": row.agent_id,
                "key": row.key,
                "namespace": row.namespace,
                "value_chars": chars,
                "entropy": h,
                "value_digest": digest(text, 16),
            }));
        }
    }
    let avg = if entropies.is_empty() {
        0.0
    } else {
        round3(entropies.iter().sum::<f64>() / entropies.len() as f64)
    };
    let summary = json!({
        "count": items.len(),
        "total_chars": total_chars,
        "avg_entropy": avg,
        "blob_refs_total": refs_total,
        "blob_refs_resolved": refs_resolved,
    });
    (summary, listed)
}

fn context_item(entry: &ContextItem, mode: ContextReadMode) -> Value {
    let (row, resolution) = (&entry.row, entry.resolution.as_ref());
    if mode == ContextReadMode::Full {
        let mut item = context_json(row);
        if let Some(res) = resolution {
            item["blob_ref"] = blob_ref_json(res);
            item["resolved_value"] = json!(res.value);
        }
        return item;
    }
    let text = entry.effective_value();
    let mut item = json!({
        "id": row.id,
        "agent_id": row.agent_id,
        "key": row.key,
        "namespace": row.namespace,
        "updated_at": row.updated_at,
        "trace_id": row.trace_id,
        "span_id": row.span_id,
        "value_chars": char_count(text),
        "value_digest": digest(text, 16),
    });
    if let Some(res) = resolution {
        item["blob_ref_hash"] = json!(res.hash);
        item["blob_resolved"] = json!(res.found);
    }
    if mode == ContextReadMode::Compact {
        item["value_preview"] = json!(prefix(text, 180));
    }
    item
}

/// The nano rows of a page (`c`), also read_snapshot's nano `s.c`.
pub fn nano_items(page: &ContextPage) -> Value {
    page.items.iter().map(nano_item).collect()
}

fn nano_item(entry: &ContextItem) -> Value {
    let (row, resolution) = (&entry.row, entry.resolution.as_ref());
    let text = entry.effective_value();
    let mut item = json!({
        "i": row.id,
        "a": row.agent_id,
        "k": row.key,
        "n": row.namespace,
        "u": row.updated_at,
        "c": char_count(text),
        "d": digest(text, 12),
    });
    if let Some(trace) = row.trace_id.as_deref().filter(|t| !t.is_empty()) {
        item["x"] = json!(prefix(trace, 12));
    }
    if let Some(span) = row.span_id.as_deref().filter(|s| !s.is_empty()) {
        item["y"] = json!(prefix(span, 12));
    }
    if let Some(res) = resolution {
        item["b"] = json!(res.short_hash());
        item["r"] = json!(u8::from(res.found));
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_in_bits_per_char() {
        assert_eq!(entropy(""), 0.0);
        assert_eq!(entropy("aaaa"), 0.0);
        assert_eq!(round3(entropy("abab")), 1.0);
        assert_eq!(round3(entropy("abcd")), 2.0);
    }
}
