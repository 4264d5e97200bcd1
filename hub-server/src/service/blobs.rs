//! Blob handling the services share: the hub's compression policy, the stored-size cap,
//! preparing a blob (hash and envelope) and resolving blob-ref envelopes found in messages
//! and context values. Owns no tool and renders nothing; the blob tools live in
//! `tools::blobs`, the blob table in `store::blobs`.

use crate::config::Config;
use crate::domain::text::prefix;
use crate::protocol::codec::{self, Compressed, Policy, blob_ref_envelope, parse_blob_ref};
use crate::protocol::sha256_hex;
use crate::store::Db;
use crate::store::blobs as blob_store;

use super::Refusal;

/// The compression thresholds configured for this hub.
pub fn policy(config: &Config, auto_max_ratio: Option<f64>) -> Policy {
    Policy {
        lossless_min_chars: config.lossless_auto_min_payload_chars,
        lossless_min_gain_pct: config.lossless_auto_min_gain_pct,
        auto_max_ratio,
    }
}

/// `BLOB_TOO_LONG` when the stored (compressed) form is over the cap.
pub fn check_blob_size(
    config: &Config,
    compressed: &Compressed,
    tool: &str,
) -> Result<(), Refusal> {
    let max = config.max_protocol_blob_chars;
    if compressed.stored_chars > max {
        return Err(Refusal::rejected(
            "BLOB_TOO_LONG",
            &format!("{tool}_rejected"),
            format!(
                "{tool}: the stored blob would be {} characters (mode {}), over the limit of \
                 {max}; split the payload or use compression_mode lossless_auto",
                compressed.stored_chars,
                compressed.mode.as_str()
            ),
        )
        .with("max_chars", max));
    }
    Ok(())
}

/// A blob-ref envelope found in a message or context value, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub hash: String,
    pub declared_chars: i64,
    /// The blob exists.
    pub found: bool,
    pub codec: Option<String>,
    pub integrity_ok: Option<bool>,
    /// The decoded payload; `None` when the blob is missing or failed its checks.
    pub value: Option<String>,
}

impl Resolution {
    /// First 16 characters of the hash (never splits a character).
    pub fn short_hash(&self) -> &str {
        prefix(&self.hash, 16)
    }
}

/// Resolves a blob-ref envelope in `text` (decoded and integrity-checked), without counting
/// the access: the read counts it afterwards with a follow-up write (`store::blobs::touch`).
pub fn resolve_envelope_from(db: &Db, text: &str) -> Result<Option<Resolution>, Refusal> {
    let Some(blob_ref) = parse_blob_ref(text) else {
        return Ok(None);
    };
    let row = blob_store::get(db, &blob_ref.hash)?;
    let resolution = match row {
        None => Resolution {
            hash: blob_ref.hash,
            declared_chars: blob_ref.declared_chars,
            found: false,
            codec: None,
            integrity_ok: None,
            value: None,
        },
        Some(row) => {
            let decoded = codec::decode(&row.value);
            Resolution {
                hash: blob_ref.hash,
                declared_chars: blob_ref.declared_chars,
                found: true,
                codec: Some(decoded.codec),
                integrity_ok: Some(decoded.integrity_ok),
                value: decoded.value,
            }
        }
    };
    Ok(Some(resolution))
}

/// The stored blob for a compressed payload, ready to be put: its hash and envelope.
pub struct PreparedBlob {
    pub compressed: Compressed,
    pub hash: String,
    pub envelope: String,
}

pub fn prepare_blob(compressed: Compressed) -> PreparedBlob {
    let hash = sha256_hex(&compressed.stored);
    let envelope = blob_ref_envelope(&hash, compressed.stored_chars);
    PreparedBlob {
        compressed,
        hash,
        envelope,
    }
}
