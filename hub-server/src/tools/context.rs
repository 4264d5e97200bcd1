//! Shared-context tools: share_context, share_blob_context, get_context.
//!
//! Corrected behaviour: default compression is `none` (D18, `applied` only when the stored
//! value differs); get_context delta reads (`updated_after` / `cursor`) walk the context
//! change sequence oldest-first with `has_more`/`next_cursor` (D17); `requesting_agent` is
//! the caller and `agent_id` only a filter (D1).

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::blobs::{
    BlobCompression, Resolution, blob_ref_summary, check_blob_size, policy, prepare_blob, refusal,
    resolve_envelope, tokens_est,
};
use super::messages::{parse_row_cursor, row_cursor};
use super::text::optional_text;
use super::text::{char_count, collapse_whitespace, digest, minify_json, prefix};
use super::{
    Activity, Category, OpCtx, ToolDef, ToolError, ToolResult, forbid_full_in_polling, int_arg,
    non_blank,
};
use crate::protocol::codec::{self, Mode};
use crate::protocol::round3;
use crate::store::WriteTx;
use crate::store::blobs as blob_store;
use crate::store::context::{
    self as context_store, ContextPage, ContextQuery, ContextRow, NewContext,
};
use crate::tool_args;

/// Longest key or namespace accepted.
pub const MAX_KEY_CHARS: usize = 512;

pub fn tools() -> Vec<ToolDef> {
    vec![
        super::mutating(
            "share_context",
            Category::Context,
            "Share a value under (your agent_id, key) for every agent to read with get_context; \
             sharing the same key again replaces it. Stored exactly as sent unless a lossy \
             compression_mode is named. For large values use share_blob_context. Supports \
             idempotency_key.",
            Activity::Stream,
            share_context,
        ),
        super::mutating(
            "share_blob_context",
            Category::Context,
            "Share a large value as context: the payload is stored once as a blob (lossless_auto: \
             zstd when it pays) and the context value is a small blob-ref envelope; readers pass \
             resolve_blob_refs:true to get_context. Supports idempotency_key.",
            Activity::Stream,
            share_blob_context,
        ),
        super::mutating(
            "get_context",
            Category::Context,
            "Read shared context (filters agent_id, key, namespace). For change feeds pass the \
             returned next_cursor back as cursor (or updated_after): changes arrive oldest \
             first, each once, with has_more. response_mode full/compact/tiny/nano/summary; \
             full is refused with polling:true. resolve_blob_refs:true inlines blob values.",
            Activity::Quiet,
            get_context,
        ),
    ]
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ContextCompression {
    /// Store exactly what was sent (default).
    #[default]
    None,
    /// Re-serialise JSON without insignificant whitespace (key order and numbers kept).
    Json,
    /// Collapse every whitespace run to one space (lossy).
    Whitespace,
    /// The shortest of original, minified JSON and collapsed whitespace, when it saves at
    /// least 5 % (lossy).
    Auto,
}

impl ContextCompression {
    fn as_str(self) -> &'static str {
        match self {
            ContextCompression::None => "none",
            ContextCompression::Json => "json",
            ContextCompression::Whitespace => "whitespace",
            ContextCompression::Auto => "auto",
        }
    }

    fn apply(self, value: &str) -> String {
        match self {
            ContextCompression::None => value.to_string(),
            ContextCompression::Json => minify_json(value).unwrap_or_else(|| value.to_string()),
            ContextCompression::Whitespace => collapse_whitespace(value),
            ContextCompression::Auto => {
                let original = char_count(value);
                let mut best = value.to_string();
                let mut best_len = original;
                for candidate in [minify_json(value), Some(collapse_whitespace(value))]
                    .into_iter()
                    .flatten()
                {
                    let len = char_count(&candidate);
                    if len < best_len {
                        best_len = len;
                        best = candidate;
                    }
                }
                if best_len <= original * 95 / 100 {
                    best
                } else {
                    value.to_string()
                }
            }
        }
    }
}

/// Refuses a blank or over-long `agent_id`, key or namespace.
fn check_ids(tool: &str, agent_id: &str, key: &str, namespace: &str) -> Result<(), ToolError> {
    if agent_id.is_empty() {
        return Err(ToolError::new(
            "AGENT_ID_REQUIRED",
            format!("{tool}: agent_id is blank; pass your registered agent id"),
        ));
    }
    if key.is_empty() {
        return Err(ToolError::new(
            "KEY_REQUIRED",
            format!("{tool}: key is blank; name the context entry with a non-empty key"),
        ));
    }
    for (field, text) in [("key", key), ("namespace", namespace)] {
        if char_count(text) > MAX_KEY_CHARS {
            return Err(refusal(
                "KEY_TOO_LONG",
                &format!("{tool}_rejected"),
                format!(
                    "{tool}: {field} is {} characters, over the limit of {MAX_KEY_CHARS}; use a \
                     shorter {field}",
                    char_count(text)
                ),
            )
            .with("max_chars", MAX_KEY_CHARS));
        }
    }
    Ok(())
}

fn namespace_of(raw: Option<&str>) -> String {
    non_blank(raw).unwrap_or("default").to_string()
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
    /// The owner of the entry (the caller).
    pub agent_id: String,
    /// The entry's key; one value per (agent_id, key).
    pub key: String,
    /// The value (any text; JSON is kept as sent).
    pub value: String,
    /// Namespace (default "default"); sharing a key again in another namespace moves it.
    pub namespace: Option<String>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    /// none (default: stored exactly), json (minify), whitespace or auto (both lossy).
    pub compression_mode: Option<ContextCompression>,
    /// Retrying with the same key and arguments returns the first response.
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(ShareContextArgs, caller = agent_id, idempotent);

fn share_context(tx: &mut WriteTx<'_>, ctx: &mut OpCtx, args: ShareContextArgs) -> ToolResult {
    let config = ctx.config.clone();
    let agent_id = args.agent_id.trim();
    let namespace = namespace_of(args.namespace.as_deref());
    check_ids("share_context", agent_id, &args.key, &namespace)?;
    let mode = args.compression_mode.unwrap_or_default();
    let value = mode.apply(&args.value);
    let original_chars = char_count(&args.value);
    let stored_chars = char_count(&value);
    if stored_chars > config.max_context_value_chars {
        return Err(refusal(
            "VALUE_TOO_LONG",
            "share_context_rejected",
            format!(
                "share_context: the value is {stored_chars} characters, over the limit of {}; \
                 share large values with share_blob_context",
                config.max_context_value_chars
            ),
        )
        .with("max_chars", config.max_context_value_chars));
    }
    let applied = value != args.value;
    let row = context_store::upsert(
        tx,
        &NewContext {
            agent_id: agent_id.to_string(),
            key: args.key.clone(),
            value,
            namespace,
            trace_id: optional_text(args.trace_id.as_deref()),
            span_id: optional_text(args.span_id.as_deref()),
        },
    )?;
    ctx.log(
        "share_context",
        format!(
            "context_id={} key={} ns={} compressed={applied} saved_chars={}",
            row.id,
            prefix(&row.key, 80),
            prefix(&row.namespace, 80),
            original_chars.saturating_sub(stored_chars)
        ),
    );
    Ok(json!({
        "success": true,
        "context": context_json(&row),
        "compression": {
            "mode": mode.as_str(),
            "applied": applied,
            "original_chars": original_chars,
            "stored_chars": stored_chars,
        },
    }))
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ShareBlobContextArgs {
    /// The owner of the entry (the caller).
    pub agent_id: String,
    /// The entry's key; one value per (agent_id, key).
    pub key: String,
    /// The payload, stored as a blob.
    pub payload: String,
    /// Namespace (default "default").
    pub namespace: Option<String>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    /// lossless_auto (default), none, json, whitespace or auto (the last three are lossy).
    pub compression_mode: Option<BlobCompression>,
    /// Length of short_hash, 8-64 (default 16).
    pub hash_truncate: Option<f64>,
    /// Retrying with the same key and arguments returns the first response.
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(ShareBlobContextArgs, caller = agent_id, idempotent);

fn share_blob_context(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: ShareBlobContextArgs,
) -> ToolResult {
    const TOOL: &str = "share_blob_context";
    let config = ctx.config.clone();
    let agent_id = args.agent_id.trim();
    let namespace = namespace_of(args.namespace.as_deref());
    check_ids(TOOL, agent_id, &args.key, &namespace)?;
    let mode: Mode = args
        .compression_mode
        .unwrap_or(BlobCompression::LosslessAuto)
        .into();
    let truncate = int_arg(args.hash_truncate, 16, 8, 64);
    let compressed = codec::compress(mode, &args.payload, &policy(&config, Some(0.95)));
    check_blob_size(&config, &compressed, TOOL)?;
    let blob = prepare_blob(compressed);
    let envelope_chars = char_count(&blob.envelope);
    if envelope_chars > config.max_context_value_chars {
        return Err(refusal(
            "VALUE_TOO_LONG",
            "share_blob_context_rejected",
            format!(
                "{TOOL}: the blob-ref envelope is {envelope_chars} characters, over the context \
                 limit of {}; raise MCP_HUB_MAX_CONTEXT_VALUE_CHARS",
                config.max_context_value_chars
            ),
        )
        .with("max_chars", config.max_context_value_chars));
    }
    // Every check passed: only now is anything written.
    let (_, created) = blob_store::put(tx, &blob.hash, &blob.compressed.stored)?;
    let row = context_store::upsert(
        tx,
        &NewContext {
            agent_id: agent_id.to_string(),
            key: args.key.clone(),
            value: blob.envelope.clone(),
            namespace,
            trace_id: optional_text(args.trace_id.as_deref()),
            span_id: optional_text(args.span_id.as_deref()),
        },
    )?;
    let original_chars = blob.compressed.original_chars;
    ctx.log(
        TOOL,
        format!(
            "context_id={} key={} ns={} hash={} created={created} original_chars={original_chars} \
             stored_chars={} codec={}",
            row.id,
            prefix(&row.key, 80),
            prefix(&row.namespace, 80),
            &blob.hash[..16],
            blob.compressed.stored_chars,
            blob.compressed.codec
        ),
    );
    Ok(json!({
        "success": true,
        "context": context_json(&row),
        "blob_ref": blob_ref_summary(&blob, created, truncate),
        "transport": {
            "original_chars": original_chars,
            "context_value_chars": envelope_chars,
            "saved_chars": original_chars.saturating_sub(envelope_chars),
            "original_tokens_est": tokens_est(original_chars),
            "context_tokens_est": tokens_est(envelope_chars),
        },
        "compression": blob.compressed.to_json(),
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
    /// The caller (heartbeat, activity, token check).
    pub requesting_agent: Option<String>,
    /// Filter: entries owned by this agent.
    pub agent_id: Option<String>,
    /// Filter: this key.
    pub key: Option<String>,
    /// Filter: this namespace.
    pub namespace: Option<String>,
    /// Page size, 1-500 (default 100).
    pub limit: Option<f64>,
    /// Rows to skip, newest-first reads only.
    pub offset: Option<f64>,
    /// Delta read: entries updated after this time (ms), oldest change first.
    pub updated_after: Option<f64>,
    /// Delta read: the next_cursor of the previous read (opaque; wins over updated_after).
    pub cursor: Option<String>,
    /// full (default), compact, tiny, nano or summary.
    pub response_mode: Option<ContextReadMode>,
    /// Set in polling loops; full mode is then refused.
    pub polling: Option<bool>,
    /// Resolve blob-ref envelopes: adds blob_ref and resolved_value.
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

pub(super) fn get_context(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: GetContextArgs,
) -> ToolResult {
    let mode = args.response_mode.unwrap_or_default();
    if mode == ContextReadMode::Full && args.polling == Some(true) {
        forbid_full_in_polling(
            &ctx.config,
            "get_context",
            &["nano", "tiny", "compact", "summary"],
        )?;
    }
    let limit = int_arg(args.limit, 100, 1, 500);
    let offset = int_arg(args.offset, 0, 0, i64::MAX);
    let cursor = non_blank(args.cursor.as_deref());
    let updated_after = args
        .updated_after
        .filter(|v| v.is_finite())
        .map(|v| v.floor() as i64);
    let page = match (cursor, updated_after) {
        (Some(cursor), _) => match parse_row_cursor(cursor) {
            Some(seq) => ContextPage::AfterSeq(seq),
            None => {
                return Err(ToolError::new(
                    "CURSOR_INVALID",
                    format!(
                        "get_context: cursor {:?} is not a cursor this hub issued; pass back \
                         next_cursor unchanged, or omit it to start over",
                        prefix(cursor, 80)
                    ),
                ));
            }
        },
        (None, Some(ms)) => ContextPage::UpdatedAfter(ms),
        (None, None) => ContextPage::Newest { offset },
    };
    let delta = !matches!(page, ContextPage::Newest { .. });
    let resolve = args.resolve_blob_refs == Some(true);
    let query = ContextQuery {
        agent_id: non_blank(args.agent_id.as_deref()).map(str::to_string),
        key: args.key.clone().filter(|k| !k.is_empty()),
        namespace: non_blank(args.namespace.as_deref()).map(str::to_string),
        limit,
        page,
    };
    let result = context_store::list(tx.db(), &query)?;
    let mut resolutions: Vec<Option<Resolution>> = Vec::with_capacity(result.rows.len());
    for row in &result.rows {
        resolutions.push(if resolve {
            resolve_envelope(tx, &row.value)?
        } else {
            None
        });
    }
    let next_cursor = if delta {
        match result.rows.last() {
            Some(last) => Some(row_cursor(last.seq, last.id)),
            None => cursor.map(str::to_string),
        }
    } else {
        None
    };
    ctx.log(
        "get_context",
        format!(
            "agent_id={} key={} namespace={} limit={limit} offset={} updated_after={} \
             cursor={} resolve_blob_refs={resolve} count={}",
            query
                .agent_id
                .as_deref()
                .map(|v| prefix(v, 80))
                .unwrap_or("*"),
            query.key.as_deref().map(|v| prefix(v, 80)).unwrap_or("*"),
            query
                .namespace
                .as_deref()
                .map(|v| prefix(v, 80))
                .unwrap_or("*"),
            if delta { 0 } else { offset },
            updated_after
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            cursor.map(|c| prefix(c, 40)).unwrap_or("-"),
            result.rows.len(),
        ),
    );

    let rows: Vec<(&ContextRow, Option<&Resolution>)> = result
        .rows
        .iter()
        .zip(resolutions.iter().map(Option::as_ref))
        .collect();
    let mut body = Map::new();
    match mode {
        ContextReadMode::Nano => {
            body.insert(
                "c".into(),
                rows.iter().map(|(r, res)| nano_item(r, *res)).collect(),
            );
            body.insert("h".into(), json!(u8::from(result.has_more)));
            body.insert("n".into(), json!(next_cursor));
            return Ok(Value::Object(body));
        }
        ContextReadMode::Summary => {
            let mut total_chars = 0usize;
            let mut entropies = Vec::with_capacity(rows.len());
            let (mut refs_total, mut refs_resolved) = (0, 0);
            let mut items = Vec::new();
            for (row, resolution) in &rows {
                let text = effective_value(row, *resolution);
                let chars = char_count(text);
                let h = round3(entropy(text));
                total_chars += chars;
                entropies.push(h);
                if let Some(res) = resolution {
                    refs_total += 1;
                    if res.found {
                        refs_resolved += 1;
                    }
                }
                if items.len() < 20 {
                    items.push(json!({
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
            body.insert(
                "summary".into(),
                json!({
                    "count": rows.len(),
                    "total_chars": total_chars,
                    "avg_entropy": avg,
                    "blob_refs_total": refs_total,
                    "blob_refs_resolved": refs_resolved,
                }),
            );
            body.insert("contexts".into(), Value::Array(items));
        }
        _ => {
            body.insert(
                "contexts".into(),
                rows.iter()
                    .map(|(r, res)| context_item(r, *res, mode))
                    .collect(),
            );
        }
    }
    body.insert("has_more".into(), json!(result.has_more));
    body.insert("next_cursor".into(), json!(next_cursor));
    if !delta && result.has_more {
        body.insert("next_offset".into(), json!(offset + limit));
    }
    Ok(Value::Object(body))
}

/// The resolved value when a blob was resolved, else the stored value.
fn effective_value<'a>(row: &'a ContextRow, resolution: Option<&'a Resolution>) -> &'a str {
    resolution
        .and_then(|r| r.value.as_deref())
        .unwrap_or(&row.value)
}

fn context_item(row: &ContextRow, resolution: Option<&Resolution>, mode: ContextReadMode) -> Value {
    if mode == ContextReadMode::Full {
        let mut item = context_json(row);
        if let Some(res) = resolution {
            item["blob_ref"] = res.blob_ref_json();
            item["resolved_value"] = json!(res.value);
        }
        return item;
    }
    let text = effective_value(row, resolution);
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

fn nano_item(row: &ContextRow, resolution: Option<&Resolution>) -> Value {
    let text = effective_value(row, resolution);
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
    fn context_compression_is_lossless_by_default() {
        let code = "fn main() {\n    x();\n}\n";
        assert_eq!(ContextCompression::default().apply(code), code);
        assert_eq!(
            ContextCompression::Json.apply("{ \"b\" : 1, \"a\": 2 }"),
            "{\"b\":1,\"a\":2}"
        );
        assert_eq!(ContextCompression::Whitespace.apply(" a \n b "), "a b");
        assert_eq!(
            ContextCompression::Auto.apply("a b c d e f g h i j k"),
            "a b c d e f g h i j k"
        );
    }

    #[test]
    fn entropy_in_bits_per_char() {
        assert_eq!(entropy(""), 0.0);
        assert_eq!(entropy("aaaa"), 0.0);
        assert_eq!(round3(entropy("abab")), 1.0);
        assert_eq!(round3(entropy("abcd")), 2.0);
    }
}
