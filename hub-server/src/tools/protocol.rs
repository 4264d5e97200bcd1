//! Compact-protocol tools that store nothing: hash_payload, pack_protocol_message,
//! unpack_protocol_message. The logic lives in `crate::protocol`.

use crate::store::Db;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::blobs::{refusal, tokens_est};
use super::{Category, OpCtx, ToolDef, ToolResult, int_arg};
use crate::protocol::caep::{
    self, Encoding, PackMode, PackOptions, PayloadFormat, UnpackedPayload,
};
use crate::protocol::{canonical, char_len, round2, sha256_hex};
use crate::tool_args;

pub fn tools() -> Vec<ToolDef> {
    vec![
        super::reading(
            "pack_protocol_message",
            Category::CompactProtocol,
            "Pack a payload into a hash-verified CAEP-v1 packet.",
            pack_protocol_message,
        ),
        super::reading(
            "unpack_protocol_message",
            Category::CompactProtocol,
            "Unpack a CAEP-v1 packet; check hash_valid.",
            unpack_protocol_message,
        ),
        super::reading(
            "hash_payload",
            Category::CompactProtocol,
            "SHA-256 of a payload; normalize_json:true hashes canonical JSON.",
            hash_payload,
        ),
    ]
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct HashPayloadArgs {
    // The caller.
    pub agent_id: String,
    // The text to hash.
    pub payload: String,
    // true: hash the canonical JSON of the payload (it must be JSON).
    pub normalize_json: Option<bool>,
    // Length of short_hash, 8-64 (default 16).
    #[schemars(with = "Option<i64>")]
    pub truncate: Option<f64>,
    pub auth_token: Option<String>,
}
tool_args!(HashPayloadArgs, caller = agent_id);

fn hash_payload(_db: &Db, ctx: &mut OpCtx, args: HashPayloadArgs) -> ToolResult {
    let truncate = int_arg(args.truncate, 16, 8, 64) as usize;
    let normalize = args.normalize_json == Some(true);
    let hashed = if normalize {
        canonical::canonicalize_text(&args.payload).map_err(|e| {
            refusal(
                "INVALID_JSON",
                "hash_payload_failed",
                format!(
                    "hash_payload: normalize_json is true but the payload is not JSON ({e}); \
                     send valid JSON or set normalize_json:false"
                ),
            )
        })?
    } else {
        args.payload
    };
    let hash = sha256_hex(&hashed);
    let payload_chars = char_len(&hashed);
    ctx.log(
        "hash_payload",
        format!(
            "hash={} chars={payload_chars} normalize_json={normalize}",
            &hash[..16]
        ),
    );
    Ok(json!({
        "success": true,
        "hash": hash,
        "short_hash": &hash[..truncate],
        "payload_chars": payload_chars,
    }))
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormatArg {
    #[default]
    Json,
    Text,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PackModeArg {
    #[default]
    Auto,
    Json,
    Dictionary,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PackProtocolMessageArgs {
    // The caller.
    pub agent_id: String,
    // The payload: JSON text (payload_format json) or any text (payload_format text).
    pub payload: String,
    // json (default) or text.
    pub payload_format: Option<PayloadFormatArg>,
    // auto (default: dictionary when large enough and it saves enough), json or dictionary.
    pub mode: Option<PackModeArg>,
    // auto: payloads shorter than this stay json (default MCP_HUB_AUTO_PACK_MIN_PAYLOAD_CHARS).
    #[schemars(with = "Option<i64>")]
    pub auto_min_payload_chars: Option<f64>,
    // auto: minimum dictionary saving in percent, 0-100 (default MCP_HUB_AUTO_PACK_MIN_GAIN_PCT).
    pub auto_min_gain_pct: Option<f64>,
    pub auth_token: Option<String>,
}
tool_args!(PackProtocolMessageArgs, caller = agent_id);

fn pack_protocol_message(_db: &Db, ctx: &mut OpCtx, args: PackProtocolMessageArgs) -> ToolResult {
    let format = match args.payload_format.unwrap_or_default() {
        PayloadFormatArg::Json => PayloadFormat::Json,
        PayloadFormatArg::Text => PayloadFormat::Text,
    };
    let mode = match args.mode.unwrap_or_default() {
        PackModeArg::Auto => PackMode::Auto,
        PackModeArg::Json => PackMode::Json,
        PackModeArg::Dictionary => PackMode::Dictionary,
    };
    let config = ctx.config.clone();
    let min_payload_chars = int_arg(
        args.auto_min_payload_chars,
        config.auto_pack_min_payload_chars as i64,
        0,
        i64::MAX,
    ) as usize;
    let min_gain_pct = args
        .auto_min_gain_pct
        .filter(|v| v.is_finite())
        .unwrap_or(config.auto_pack_min_gain_pct)
        .clamp(0.0, 100.0);
    let options = PackOptions {
        format,
        mode,
        min_payload_chars,
        min_gain_pct,
        now_ms: ctx.now_ms,
    };
    let packed = caep::pack(&args.payload, &options).map_err(|e| {
        refusal(
            "INVALID_PAYLOAD",
            "pack_protocol_message_failed",
            format!(
                "pack_protocol_message: the payload is not JSON ({}); send valid JSON or use \
                 payload_format text",
                e.0
            ),
        )
    })?;
    let savings = packed.original_chars as i64 - packed.packed_chars as i64;
    let savings_pct = if packed.original_chars == 0 {
        0.0
    } else {
        round2(savings as f64 / packed.original_chars as f64 * 100.0)
    };
    ctx.log(
        "pack_protocol_message",
        format!(
            "mode={}->{} reason={} gain={} original_chars={} packed_chars={} h={}",
            mode.as_str(),
            packed.encoding.as_str(),
            packed.decision,
            packed.dictionary_gain_pct,
            packed.original_chars,
            packed.packed_chars,
            &packed.hash[..12]
        ),
    );
    Ok(json!({
        "success": true,
        "packet_json": packed.packet_json,
        "packet": packed.packet,
        "policy": {
            "mode": mode.as_str(),
            "min_payload_chars": min_payload_chars,
            "min_gain_pct": min_gain_pct,
            "decision": packed.decision,
            "dictionary_candidate_gain_pct": packed.dictionary_gain_pct,
            "dictionary_applied": packed.encoding == Encoding::Dictionary,
        },
        "metrics": {
            "original_chars": packed.original_chars,
            "packed_chars": packed.packed_chars,
            "savings_chars": savings,
            "savings_pct": savings_pct,
            "original_tokens_est": tokens_est(packed.original_chars),
            "packed_tokens_est": tokens_est(packed.packed_chars),
            "payload_json_chars": packed.json_chars,
            "payload_dictionary_chars": packed.dictionary_chars,
            "dictionary_candidate_gain_pct": packed.dictionary_gain_pct,
        },
    }))
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UnpackModeArg {
    #[default]
    Full,
    Compact,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UnpackProtocolMessageArgs {
    // The caller.
    pub agent_id: String,
    // The packet_json returned by pack_protocol_message.
    pub packet_json: String,
    // full (default: the decoded payload) or compact (its size only).
    pub response_mode: Option<UnpackModeArg>,
    pub auth_token: Option<String>,
}
tool_args!(UnpackProtocolMessageArgs, caller = agent_id);

fn unpack_protocol_message(
    _db: &Db,
    ctx: &mut OpCtx,
    args: UnpackProtocolMessageArgs,
) -> ToolResult {
    let unpacked = caep::unpack(&args.packet_json).map_err(|e| {
        refusal(
            e.code,
            "unpack_protocol_message_failed",
            format!("unpack_protocol_message: {}", e.message),
        )
    })?;
    let text = unpacked.payload.as_text();
    ctx.log(
        "unpack_protocol_message",
        format!(
            "format={} encoding={} hash_valid={} chars={}",
            prefix_tag(&unpacked.format),
            unpacked.encoding.as_str(),
            unpacked.hash_valid,
            char_len(&text)
        ),
    );
    let mut body = json!({
        "success": true,
        "hash_valid": unpacked.hash_valid,
        "format": unpacked.format,
        "encoding": unpacked.encoding.as_str(),
        "hash": unpacked.hash,
    });
    match args.response_mode.unwrap_or_default() {
        UnpackModeArg::Full => {
            body["decoded_payload"] = match unpacked.payload {
                UnpackedPayload::Text(text) => Value::String(text),
                UnpackedPayload::Json(value) => value,
            };
        }
        UnpackModeArg::Compact => body["payload_chars"] = json!(char_len(&text)),
    }
    Ok(body)
}

/// A peer-written `fmt` tag, shortened for the activity log.
fn prefix_tag(tag: &str) -> &str {
    super::text::prefix(tag, 16)
}
