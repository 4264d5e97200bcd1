//! Shared context: sharing a value (inline or as a blob) under the caller's id, and reading
//! context as a typed page. Owns the key/namespace/value limits, context compression and the
//! paging rules (D17: delta reads walk the change sequence oldest-first). Must not render
//! (response modes are `tools::context`) nor touch SQL (`store::context`, `store::blobs`).

use schemars::JsonSchema;
use serde::Deserialize;

use super::blobs::{
    PreparedBlob, Resolution, check_blob_size, policy, prepare_blob, resolve_envelope_from,
};
use super::{Ctx, Refusal, forbid_full_in_polling, row_cursor_seq};
use crate::config::Config;
use crate::domain::cursor::page_end;
use crate::domain::text::{char_count, collapse_whitespace, minify_json, optional_text, prefix};
use crate::protocol::codec::{self, Mode};
use crate::store::blobs as blob_store;
use crate::store::context::{
    self as context_store, ContextPage as ContextPosition, ContextQuery, ContextRow, NewContext,
};
use crate::store::{Db, WriteTx};

/// Longest key or namespace accepted.
pub const MAX_KEY_CHARS: usize = 512;

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
    pub fn as_str(self) -> &'static str {
        match self {
            ContextCompression::None => "none",
            ContextCompression::Json => "json",
            ContextCompression::Whitespace => "whitespace",
            ContextCompression::Auto => "auto",
        }
    }

    pub fn apply(self, value: &str) -> String {
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

/// Refuses a blank owner (a call outside enforce that named no caller), a blank key, or an
/// over-long key or namespace.
fn check_ids(tool: &str, agent_id: &str, key: &str, namespace: &str) -> Result<(), Refusal> {
    if agent_id.is_empty() {
        return Err(Refusal::new(
            "AGENT_ID_REQUIRED",
            format!("{tool}: agent_id is blank; pass your registered agent id"),
        ));
    }
    if key.is_empty() {
        return Err(Refusal::new(
            "KEY_REQUIRED",
            format!("{tool}: key is blank; name the context entry with a non-empty key"),
        ));
    }
    for (field, text) in [("key", key), ("namespace", namespace)] {
        if char_count(text) > MAX_KEY_CHARS {
            return Err(Refusal::rejected(
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

/// What both share ops store besides the value; the owner is the caller.
pub struct Entry {
    pub key: String,
    /// Blank means "default".
    pub namespace: Option<String>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
}

impl Entry {
    fn namespace(&self) -> String {
        self.namespace
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or("default")
            .to_string()
    }

    /// The row to store for the caller, once the ids pass; writes nothing.
    fn checked(&self, ctx: &Ctx, tool: &str, value: String) -> Result<NewContext, Refusal> {
        let namespace = self.namespace();
        check_ids(tool, ctx.agent(), &self.key, &namespace)?;
        Ok(NewContext {
            agent_id: ctx.agent().to_string(),
            key: self.key.clone(),
            value,
            namespace,
            trace_id: optional_text(self.trace_id.as_deref()),
            span_id: optional_text(self.span_id.as_deref()),
        })
    }
}

pub struct ShareContext {
    pub entry: Entry,
    pub value: String,
    /// `value` after `compression`: computed before the write (see [`ShareContext::new`]).
    stored_value: String,
    pub compression: ContextCompression,
}

impl ShareContext {
    /// Applies the compression here, so a caller can build the command off the writer.
    pub fn new(entry: Entry, value: String, compression: ContextCompression) -> ShareContext {
        ShareContext {
            stored_value: compression.apply(&value),
            entry,
            value,
            compression,
        }
    }
}

pub struct Shared {
    pub row: ContextRow,
    pub compression: ContextCompression,
    pub applied: bool,
    pub original_chars: usize,
    pub stored_chars: usize,
}

pub fn share(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    command: ShareContext,
) -> Result<Shared, Refusal> {
    let max = ctx.config.max_context_value_chars;
    let mode = command.compression;
    let new = command
        .entry
        .checked(ctx, "share_context", command.stored_value)?;
    let original_chars = char_count(&command.value);
    let stored_chars = char_count(&new.value);
    if stored_chars > max {
        return Err(Refusal::rejected(
            "VALUE_TOO_LONG",
            "share_context_rejected",
            format!(
                "share_context: the value is {stored_chars} characters, over the limit of {max}; \
                 share large values with share_blob_context"
            ),
        )
        .with("max_chars", max));
    }
    let applied = new.value != command.value;
    let row = context_store::upsert(tx, &new)?;
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
    Ok(Shared {
        row,
        compression: mode,
        applied,
        original_chars,
        stored_chars,
    })
}

pub struct ShareBlobContext {
    pub entry: Entry,
    /// The payload compressed and hashed, before the write (see [`ShareBlobContext::new`]).
    blob: PreparedBlob,
}

impl ShareBlobContext {
    /// Compresses and hashes the payload here, so a caller can do it off the writer.
    pub fn new(entry: Entry, payload: &str, mode: Mode, config: &Config) -> ShareBlobContext {
        let compressed = codec::compress(mode, payload, &policy(config, Some(0.95)));
        ShareBlobContext {
            entry,
            blob: prepare_blob(compressed),
        }
    }
}

pub struct SharedBlob {
    pub row: ContextRow,
    pub blob: PreparedBlob,
    /// The blob was new (not already stored under its hash).
    pub created: bool,
    pub envelope_chars: usize,
}

pub fn share_blob(
    tx: &mut WriteTx<'_>,
    ctx: &mut Ctx,
    command: ShareBlobContext,
) -> Result<SharedBlob, Refusal> {
    const TOOL: &str = "share_blob_context";
    let config = ctx.config.clone();
    let mut new = command.entry.checked(ctx, TOOL, String::new())?;
    let blob = command.blob;
    check_blob_size(&config, &blob.compressed, TOOL)?;
    let envelope_chars = char_count(&blob.envelope);
    if envelope_chars > config.max_context_value_chars {
        return Err(Refusal::rejected(
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
    new.value = blob.envelope.clone();
    // Every check passed: only now is anything written.
    let (_, created) = blob_store::put(tx, &blob.hash, &blob.compressed.stored)?;
    let row = context_store::upsert(tx, &new)?;
    ctx.log(
        TOOL,
        format!(
            "context_id={} key={} ns={} hash={} created={created} original_chars={} \
             stored_chars={} codec={}",
            row.id,
            prefix(&row.key, 80),
            prefix(&row.namespace, 80),
            &blob.hash[..16],
            blob.compressed.original_chars,
            blob.compressed.stored_chars,
            blob.compressed.codec
        ),
    );
    Ok(SharedBlob {
        row,
        blob,
        created,
        envelope_chars,
    })
}

/// One page of a context read. The filters are filters, not the caller (D1).
pub struct GetContext {
    pub agent_id: Option<String>,
    pub key: Option<String>,
    pub namespace: Option<String>,
    /// 1-500.
    pub limit: i64,
    /// Newest-first reads only.
    pub offset: i64,
    /// Delta read by time; a cursor wins over it.
    pub updated_after: Option<i64>,
    /// The previous page's `next_cursor`, verbatim.
    pub cursor: Option<String>,
    /// The caller asked for the full response mode, refused with `polling` when the hub
    /// forbids it.
    pub full_mode: bool,
    pub polling: bool,
    pub resolve_blob_refs: bool,
}

pub struct ContextItem {
    pub row: ContextRow,
    /// Set when blob refs were to be resolved and the value is an envelope.
    pub resolution: Option<Resolution>,
}

impl ContextItem {
    /// The resolved value when a blob was resolved, else the stored value.
    pub fn effective_value(&self) -> &str {
        self.resolution
            .as_ref()
            .and_then(|r| r.value.as_deref())
            .unwrap_or(&self.row.value)
    }
}

pub struct ContextPage {
    pub items: Vec<ContextItem>,
    pub has_more: bool,
    /// Delta reads only: resume after the last row (or where the caller was, on an empty page).
    pub next_cursor: Option<String>,
    /// The sequence of the last row returned, when any.
    pub last_seq: Option<i64>,
    /// Newest-first reads with more rows: the offset of the next page.
    pub next_offset: Option<i64>,
}

/// Reads a page on any connection (the reader pool for get_context and read_snapshot); the
/// hashes of the blobs it resolved come back for the writer to count.
pub fn get_from(
    db: &Db,
    ctx: &mut Ctx,
    read: GetContext,
) -> Result<(ContextPage, Vec<String>), Refusal> {
    if read.full_mode && read.polling {
        forbid_full_in_polling(
            &ctx.config,
            "get_context",
            &["nano", "tiny", "compact", "summary"],
        )?;
    }
    let cursor = read.cursor.as_deref();
    let position = match (cursor, read.updated_after) {
        (Some(cursor), _) => {
            ContextPosition::AfterSeq(row_cursor_seq("get_context", cursor, prefix(cursor, 80))?)
        }
        (None, Some(ms)) => ContextPosition::UpdatedAfter(ms),
        (None, None) => ContextPosition::Newest {
            offset: read.offset,
        },
    };
    let delta = !matches!(position, ContextPosition::Newest { .. });
    let query = ContextQuery {
        agent_id: read.agent_id.clone(),
        key: read.key.clone(),
        namespace: read.namespace.clone(),
        limit: read.limit,
        page: position,
    };
    let result = context_store::list(db, &query)?;
    let mut items = Vec::with_capacity(result.rows.len());
    let mut resolved = Vec::new();
    for row in result.rows {
        let resolution = if read.resolve_blob_refs {
            resolve_envelope_from(db, &row.value)?
        } else {
            None
        };
        if let Some(found) = resolution.as_ref().filter(|r| r.found) {
            resolved.push(found.hash.clone());
        }
        items.push(ContextItem { row, resolution });
    }
    let last = items.last().map(|item| (item.row.seq, item.row.id));
    let filter = |value: Option<&str>| value.map(|v| prefix(v, 80)).unwrap_or("*").to_string();
    ctx.log(
        "get_context",
        format!(
            "agent_id={} key={} namespace={} limit={} offset={} updated_after={} \
             cursor={} resolve_blob_refs={} count={}",
            filter(query.agent_id.as_deref()),
            filter(query.key.as_deref()),
            filter(query.namespace.as_deref()),
            read.limit,
            if delta { 0 } else { read.offset },
            read.updated_after
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            cursor.map(|c| prefix(c, 40)).unwrap_or("-"),
            read.resolve_blob_refs,
            items.len(),
        ),
    );
    let (next_cursor, last_seq, next_offset) = page_end(
        delta,
        last,
        cursor,
        result.has_more,
        read.offset,
        read.limit,
    );
    let page = ContextPage {
        has_more: result.has_more,
        next_cursor,
        last_seq,
        next_offset,
        items,
    };
    Ok((page, resolved))
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
}
