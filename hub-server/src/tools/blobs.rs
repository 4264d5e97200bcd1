//! Content-addressed blob tools: store_protocol_blob, get_protocol_blob,
//! list_protocol_blobs, send_blob_message, and the blob-ref renderers the read tools share.
//! Blob preparation and blob-ref resolution are `service::blobs`.
//!
//! Every validation runs before the first write, and a refusal rolls the op back, so a
//! refused call never leaves an orphan blob (defect 22).

use crate::store::Db;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::messages::sent_message_json;
use super::text::optional_text;
use super::text::prefix;
use super::{Activity, Category, OpCtx, ToolDef, ToolError, ToolResult, int_arg, non_blank};
use crate::config::Config;
use crate::protocol::char_len;
use crate::protocol::codec::{self, Mode};
pub use crate::service::blobs::{PreparedBlob, Resolution, check_blob_size, policy, prepare_blob};
use crate::service::messages::{check_recipient, message_metadata};
use crate::store::WriteTx;
use crate::store::blobs as blob_store;
use crate::store::messages::{self as message_store, NewMessage};
use crate::tool_args;

pub fn tools() -> Vec<ToolDef> {
    vec![
        super::mutating_prepared(
            "store_protocol_blob",
            Category::CompactProtocol,
            "Store a content-addressed blob; returns its hash (hash_payload's only with compression none).",
            Activity::Stream,
            (prepare_store_protocol_blob, super::PrepareOn::BlockingPool),
            store_protocol_blob,
            std::convert::identity,
        ),
        super::mutating(
            "get_protocol_blob",
            Category::CompactProtocol,
            "A blob by full hash, decoded; raw:true for the stored form.",
            Activity::Quiet,
            get_protocol_blob,
        ),
        super::reading(
            "list_protocol_blobs",
            Category::CompactProtocol,
            "Stored blobs, most recently used first.",
            list_protocol_blobs,
        ),
    ]
}

/// send_blob_message: listed with the messaging tools (catalog order).
pub fn send_blob_message_tool() -> ToolDef {
    super::mutating_prepared(
        "send_blob_message",
        Category::Messaging,
        "Send a large payload as a blob-ref message; readers pass resolve_blob_refs:true.",
        Activity::Stream,
        (prepare_send_blob_message, super::PrepareOn::BlockingPool),
        send_blob_message,
        std::convert::identity,
    )
}

/// Compression modes of the blob tools.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BlobCompression {
    /// Byte-exact.
    None,
    /// Canonical JSON (keys sorted, numbers normalised) when the payload is JSON (lossy).
    Json,
    /// Collapse whitespace runs to one space (lossy).
    Whitespace,
    /// The shortest of original, canonical JSON and collapsed whitespace (lossy).
    Auto,
    /// zstd + base64 envelope when the payload is large and it saves space; byte-exact.
    LosslessAuto,
}

impl From<BlobCompression> for Mode {
    fn from(mode: BlobCompression) -> Mode {
        match mode {
            BlobCompression::None => Mode::None,
            BlobCompression::Json => Mode::Json,
            BlobCompression::Whitespace => Mode::Whitespace,
            BlobCompression::Auto => Mode::Auto,
            BlobCompression::LosslessAuto => Mode::LosslessAuto,
        }
    }
}

/// `ceil(n / 4)`.
pub fn tokens_est(chars: usize) -> usize {
    chars.div_ceil(4)
}

/// A refusal that also leaves an activity row `<action>` naming the code.
pub fn refusal(code: &'static str, action: &str, message: String) -> ToolError {
    ToolError::rejected(code, action, message)
}

/// The `blob_ref` object of a full-mode read.
pub fn blob_ref_json(resolution: &Resolution) -> Value {
    let mut blob_ref = json!({
        "hash": resolution.hash,
        "declared_chars": resolution.declared_chars,
        "resolved": resolution.found,
    });
    if let Some(codec) = &resolution.codec {
        blob_ref["codec"] = json!(codec);
    }
    if let Some(ok) = resolution.integrity_ok {
        blob_ref["integrity_ok"] = json!(ok);
    }
    blob_ref
}

pub fn blob_ref_summary(blob: &PreparedBlob, created: bool, hash_truncate: i64) -> Value {
    json!({
        "hash": blob.hash,
        "short_hash": &blob.hash[..hash_truncate as usize],
        "created": created,
        "payload_chars": blob.compressed.stored_chars,
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct StoreProtocolBlobArgs {
    // The caller.
    pub agent_id: String,
    // The payload to store.
    pub payload: String,
    // none (default, byte-exact), json, whitespace, auto (lossy, only when named) or
    // lossless_auto.
    pub compression_mode: Option<BlobCompression>,
    // Length of short_hash, 8-64 (default 16).
    #[schemars(with = "Option<i64>")]
    pub hash_truncate: Option<f64>,
    pub auth_token: Option<String>,
}
tool_args!(StoreProtocolBlobArgs, caller = agent_id);

/// Compression and hashing, before the write (off the writer thread).
fn prepare_store_protocol_blob(
    args: StoreProtocolBlobArgs,
    config: &Config,
) -> (StoreProtocolBlobArgs, Mode, PreparedBlob) {
    let mode: Mode = args
        .compression_mode
        .unwrap_or(BlobCompression::None)
        .into();
    let blob = prepare_blob(codec::compress(mode, &args.payload, &policy(config, None)));
    (args, mode, blob)
}

fn store_protocol_blob(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    (args, mode, blob): (StoreProtocolBlobArgs, Mode, PreparedBlob),
) -> ToolResult {
    let config = ctx.config.clone();
    let truncate = int_arg(args.hash_truncate, 16, 8, 64);
    check_blob_size(&config, &blob.compressed, "store_protocol_blob")?;
    let (row, created) = blob_store::put(tx, &blob.hash, &blob.compressed.stored)?;
    ctx.log(
        "store_protocol_blob",
        format!(
            "hash={} created={created} chars={} mode={} codec={}",
            &blob.hash[..16],
            blob.compressed.stored_chars,
            mode.as_str(),
            blob.compressed.codec
        ),
    );
    Ok(json!({
        "success": true,
        "created": created,
        "hash": blob.hash,
        "short_hash": &blob.hash[..truncate as usize],
        "blob_chars": blob.compressed.stored_chars,
        "compression_mode": mode.as_str(),
        "compression": blob.compressed.to_json(),
        "blob": {
            "hash": row.hash,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
            "access_count": row.access_count,
        },
    }))
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BlobReadMode {
    #[default]
    Full,
    Compact,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GetProtocolBlobArgs {
    // The caller.
    pub agent_id: String,
    /// Full 64-hex SHA-256.
    pub hash: String,
    // full (default: the value) or compact (a 180-char preview and sizes).
    pub response_mode: Option<BlobReadMode>,
    // true: return the stored form (e.g. the compressed envelope) instead of the decoded value.
    pub raw: Option<bool>,
    pub auth_token: Option<String>,
}
tool_args!(GetProtocolBlobArgs, caller = agent_id);

fn get_protocol_blob(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: GetProtocolBlobArgs,
) -> ToolResult {
    let hash = args.hash.trim();
    let Some(row) = blob_store::get_and_touch(tx, hash)? else {
        return Err(ToolError::new(
            "BLOB_NOT_FOUND",
            format!(
                "get_protocol_blob: no blob has hash {:?}; pass the full 64-hex hash returned \
                 by store_protocol_blob or found in a blob-ref envelope",
                prefix(hash, 80)
            ),
        ));
    };
    let decoded = codec::decode(&row.value);
    let raw = args.raw == Some(true);
    let value = if raw {
        Some(row.value.clone())
    } else {
        decoded.value.clone()
    };
    ctx.log(
        "get_protocol_blob",
        format!(
            "hash={} access_count={} raw={raw} integrity_ok={}",
            prefix(&row.hash, 16),
            row.access_count,
            decoded.integrity_ok
        ),
    );
    let blob = match args.response_mode.unwrap_or_default() {
        BlobReadMode::Full => json!({
            "hash": row.hash,
            "value": value,
            "codec": decoded.codec,
            "integrity_ok": decoded.integrity_ok,
            "raw": raw,
            "stored_chars": char_len(&row.value),
            "created_at": row.created_at,
            "updated_at": row.updated_at,
            "access_count": row.access_count,
        }),
        BlobReadMode::Compact => {
            let text = value.as_deref().unwrap_or("");
            json!({
                "hash": row.hash,
                "value_preview": prefix(text, 180),
                "value_chars": char_len(text),
                "codec": decoded.codec,
                "integrity_ok": decoded.integrity_ok,
                "access_count": row.access_count,
                "updated_at": row.updated_at,
            })
        }
    };
    Ok(json!({"success": true, "blob": blob}))
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListProtocolBlobsArgs {
    // The caller.
    pub agent_id: String,
    // Page size, 1-1000 (default 100).
    #[schemars(with = "Option<i64>")]
    pub limit: Option<f64>,
    // Rows to skip (default 0).
    #[schemars(with = "Option<i64>")]
    pub offset: Option<f64>,
    pub auth_token: Option<String>,
}
tool_args!(ListProtocolBlobsArgs, caller = agent_id);

fn list_protocol_blobs(db: &Db, ctx: &mut OpCtx, args: ListProtocolBlobsArgs) -> ToolResult {
    let limit = int_arg(args.limit, 100, 1, 1000);
    let offset = int_arg(args.offset, 0, 0, i64::MAX);
    let rows = blob_store::list(db, limit, offset)?;
    ctx.log(
        "list_protocol_blobs",
        format!("count={} limit={limit} offset={offset}", rows.len()),
    );
    let blobs: Vec<Value> = rows
        .iter()
        .map(|b| {
            json!({
                "hash": b.hash,
                "value_chars": b.value_chars,
                "created_at": b.created_at,
                "updated_at": b.updated_at,
                "access_count": b.access_count,
            })
        })
        .collect();
    Ok(json!({"success": true, "blobs": blobs}))
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SendBlobMessageArgs {
    // The sender (the caller).
    pub from_agent: String,
    // A registered agent; omit (or "") to broadcast.
    pub to_agent: Option<String>,
    // The payload, stored as a blob.
    pub payload: String,
    // JSON (or any text) metadata of the message; JSON is stored minified.
    pub metadata: Option<String>,
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
tool_args!(SendBlobMessageArgs, caller = from_agent, idempotent);

/// Compression and hashing, before the write (off the writer thread).
fn prepare_send_blob_message(
    args: SendBlobMessageArgs,
    config: &Config,
) -> (SendBlobMessageArgs, PreparedBlob) {
    let mode: Mode = args
        .compression_mode
        .unwrap_or(BlobCompression::LosslessAuto)
        .into();
    let blob = prepare_blob(codec::compress(mode, &args.payload, &policy(config, None)));
    (args, blob)
}

fn send_blob_message(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    (args, blob): (SendBlobMessageArgs, PreparedBlob),
) -> ToolResult {
    const TOOL: &str = "send_blob_message";
    let config = ctx.config.clone();
    let truncate = int_arg(args.hash_truncate, 16, 8, 64);
    check_blob_size(&config, &blob.compressed, TOOL)?;
    let envelope_chars = char_len(&blob.envelope);
    if envelope_chars > config.max_message_content_chars {
        return Err(refusal(
            "CONTENT_TOO_LONG",
            "send_blob_message_rejected",
            format!(
                "{TOOL}: the blob-ref envelope is {envelope_chars} characters, over the message \
                 limit of {}; raise MCP_HUB_MAX_MESSAGE_CONTENT_CHARS",
                config.max_message_content_chars
            ),
        )
        .with("max_chars", config.max_message_content_chars));
    }
    let metadata = message_metadata(&config, args.metadata.as_deref(), TOOL)?;
    let to_agent = non_blank(args.to_agent.as_deref()).map(str::to_string);
    check_recipient(tx.db(), TOOL, to_agent.as_deref())?;
    // Every check passed: only now is anything written.
    let (_, created) = blob_store::put(tx, &blob.hash, &blob.compressed.stored)?;
    let message = NewMessage {
        from_agent: args.from_agent.trim().to_string(),
        to_agent,
        content: blob.envelope.clone(),
        metadata,
        trace_id: optional_text(args.trace_id.as_deref()),
        span_id: optional_text(args.span_id.as_deref()),
    };
    let row = message_store::insert(tx, &message)?;
    let original_chars = blob.compressed.original_chars;
    ctx.log(
        TOOL,
        format!(
            "message_id={} to={} hash={} created={created} original_chars={original_chars} \
             stored_chars={} codec={}",
            row.id,
            row.to_agent.as_deref().unwrap_or("broadcast"),
            &blob.hash[..16],
            blob.compressed.stored_chars,
            blob.compressed.codec
        ),
    );
    Ok(json!({
        "success": true,
        "message": sent_message_json(&row),
        "blob_ref": blob_ref_summary(&blob, created, truncate),
        "transport": {
            "original_chars": original_chars,
            "message_chars": envelope_chars,
            "saved_chars": original_chars.saturating_sub(envelope_chars),
            "original_tokens_est": tokens_est(original_chars),
            "message_tokens_est": tokens_est(envelope_chars),
        },
        "compression": blob.compressed.to_json(),
    }))
}
