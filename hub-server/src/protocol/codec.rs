//! Payload compression for blobs and shared context (tools-more §1.3–1.4), and the lossless
//! `caep-blobz-1` envelope.
//!
//! Only `none` and `lossless_auto` are byte-exact; `json`, `whitespace` and `auto` are lossy
//! and run only when a caller names them (D18). The `json` transform is canonical JSON in
//! every tool, so one payload hashes the same wherever it is stored (defect 24). `codec`
//! always names the transformation actually applied, `raw` when none was (defect 23).

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::{canonical, char_len, round2, sha256_hex, utf16_len};

/// The envelope version tag of a lossless-compressed blob.
pub const BLOBZ_VERSION: &str = "caep-blobz-1";
/// The algorithm this hub writes: zstd, then standard base64 with padding.
pub const ZSTD_BASE64: &str = "zstd-base64";
/// zstd level 3: the library default, a good speed/ratio point for text handoffs.
const ZSTD_LEVEL: i32 = 3;
/// Upper bound on what one envelope may decompress to, whatever it declares (bomb guard).
pub const MAX_DECODED_BYTES: usize = 8 * 1024 * 1024;

/// A compression mode a caller can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    None,
    Json,
    Whitespace,
    Auto,
    LosslessAuto,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Json => "json",
            Mode::Whitespace => "whitespace",
            Mode::Auto => "auto",
            Mode::LosslessAuto => "lossless_auto",
        }
    }

    pub fn is_lossless(self) -> bool {
        matches!(self, Mode::None | Mode::LosslessAuto)
    }
}

/// Thresholds of the modes that decide for themselves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// `lossless_auto` leaves payloads shorter than this raw.
    pub lossless_min_chars: usize,
    /// `lossless_auto` keeps the envelope only if it saves at least this percentage.
    pub lossless_min_gain_pct: f64,
    /// `auto` uses its shortest candidate only when it is at most this fraction of the
    /// original (`Some(0.95)` for share_blob_context); `None`: whenever it is shorter.
    pub auto_max_ratio: Option<f64>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            lossless_min_chars: 1024,
            lossless_min_gain_pct: 3.0,
            auto_max_ratio: None,
        }
    }
}

/// What compression produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Compressed {
    pub stored: String,
    pub mode: Mode,
    /// The stored value differs from the input (or an envelope was applied).
    pub applied: bool,
    /// `raw`, `json`, `whitespace` or the envelope's algorithm.
    pub codec: &'static str,
    pub lossless: bool,
    pub gain_pct: f64,
    pub original_chars: usize,
    pub stored_chars: usize,
}

impl Compressed {
    pub fn to_json(&self) -> Value {
        json!({
            "mode": self.mode.as_str(),
            "applied": self.applied,
            "codec": self.codec,
            "lossless": self.lossless,
            "gain_pct": self.gain_pct,
            "original_chars": self.original_chars,
            "stored_chars": self.stored_chars,
        })
    }
}

/// Unicode White_Space plus U+FEFF.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

/// Every whitespace run becomes one space; the ends are trimmed.
pub fn collapse_whitespace(text: &str) -> String {
    text.split(is_space)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn gain(original: usize, stored: usize) -> f64 {
    if original == 0 {
        0.0
    } else {
        round2((original as f64 - stored as f64) / original as f64 * 100.0)
    }
}

/// Applies `mode` to `payload`.
pub fn compress(mode: Mode, payload: &str, policy: &Policy) -> Compressed {
    let original_chars = char_len(payload);
    let finish = |stored: String, codec: &'static str, applied: bool| {
        let stored_chars = char_len(&stored);
        Compressed {
            gain_pct: gain(original_chars, stored_chars),
            stored,
            mode,
            applied,
            codec,
            lossless: mode.is_lossless(),
            original_chars,
            stored_chars,
        }
    };
    match mode {
        Mode::None => finish(payload.to_string(), "raw", false),
        Mode::Json => match canonical::canonicalize_text(payload) {
            Ok(text) if text != payload => finish(text, "json", true),
            _ => finish(payload.to_string(), "raw", false),
        },
        Mode::Whitespace => {
            let collapsed = collapse_whitespace(payload);
            if collapsed != payload {
                finish(collapsed, "whitespace", true)
            } else {
                finish(collapsed, "raw", false)
            }
        }
        Mode::Auto => {
            // Candidates in preference order; ties keep the earlier one.
            let mut best: (String, &'static str) = (payload.to_string(), "raw");
            let mut best_len = original_chars;
            if let Ok(text) = canonical::canonicalize_text(payload) {
                let len = char_len(&text);
                if len < best_len {
                    best_len = len;
                    best = (text, "json");
                }
            }
            let collapsed = collapse_whitespace(payload);
            let len = char_len(&collapsed);
            if len < best_len {
                best_len = len;
                best = (collapsed, "whitespace");
            }
            let allowed = match policy.auto_max_ratio {
                Some(ratio) => best_len <= (original_chars as f64 * ratio).floor() as usize,
                None => true,
            };
            if allowed && best.0 != payload {
                finish(best.0, best.1, true)
            } else {
                finish(payload.to_string(), "raw", false)
            }
        }
        Mode::LosslessAuto => lossless_auto(payload, policy),
    }
}

/// §1.3 encode: the zstd envelope when the payload is large enough and it pays off.
fn lossless_auto(payload: &str, policy: &Policy) -> Compressed {
    let original_chars = char_len(payload);
    let raw = |gain_pct: f64| Compressed {
        stored: payload.to_string(),
        mode: Mode::LosslessAuto,
        applied: false,
        codec: "raw",
        lossless: true,
        gain_pct,
        original_chars,
        stored_chars: original_chars,
    };
    if original_chars < policy.lossless_min_chars {
        return raw(0.0);
    }
    let Some(envelope) = encode_envelope(payload) else {
        return raw(0.0);
    };
    let envelope_chars = char_len(&envelope);
    let gain_pct = gain(original_chars, envelope_chars);
    if envelope_chars < original_chars && gain_pct >= policy.lossless_min_gain_pct {
        Compressed {
            stored: envelope,
            mode: Mode::LosslessAuto,
            applied: true,
            codec: ZSTD_BASE64,
            lossless: true,
            gain_pct,
            original_chars,
            stored_chars: envelope_chars,
        }
    } else {
        raw(gain_pct)
    }
}

/// The `caep-blobz-1` envelope of `payload` (zstd level 3, base64), `None` if zstd fails.
pub fn encode_envelope(payload: &str) -> Option<String> {
    let compressed = zstd::bulk::compress(payload.as_bytes(), ZSTD_LEVEL).ok()?;
    // Built by hand to fix the key order v, alg, raw_chars, raw_sha256, data.
    Some(format!(
        "{{\"v\":\"{BLOBZ_VERSION}\",\"alg\":\"{ZSTD_BASE64}\",\"raw_chars\":{},\"raw_sha256\":\"{}\",\"data\":\"{}\"}}",
        utf16_len(payload),
        sha256_hex(payload),
        STANDARD.encode(compressed)
    ))
}

/// A stored blob value after decoding (§1.3 decode, with defect 25 corrected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The original payload; `None` when an envelope failed its checks.
    pub value: Option<String>,
    /// An envelope was decoded.
    pub decoded: bool,
    /// `raw` or the envelope's algorithm.
    pub codec: String,
    pub integrity_ok: bool,
}

/// Decodes a stored blob value: plain values come back unchanged; a `caep-blobz-1`
/// envelope is decompressed and checked against its declared length and SHA-256.
pub fn decode(stored: &str) -> Decoded {
    let plain = || Decoded {
        value: Some(stored.to_string()),
        decoded: false,
        codec: "raw".into(),
        integrity_ok: true,
    };
    // Cheap pre-check: most stored values are not envelopes.
    if !stored.trim_start().starts_with('{') || !stored.contains(BLOBZ_VERSION) {
        return plain();
    }
    let Ok(Value::Object(envelope)) = serde_json::from_str::<Value>(stored) else {
        return plain();
    };
    if envelope.get("v").and_then(Value::as_str) != Some(BLOBZ_VERSION) {
        return plain();
    }
    let Some(data) = envelope.get("data").and_then(Value::as_str) else {
        return plain();
    };
    let alg = envelope
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let failed = |codec: String| Decoded {
        value: None,
        decoded: false,
        codec,
        integrity_ok: false,
    };
    if alg != ZSTD_BASE64 {
        // Unknown (or legacy brotli) algorithm: we cannot vouch for its content.
        return failed(if alg.is_empty() { "raw".into() } else { alg });
    }
    let declared_chars = envelope.get("raw_chars").and_then(Value::as_f64);
    let Some(text) = inflate(data, declared_chars) else {
        return failed(alg);
    };
    if let Some(declared) = declared_chars
        && utf16_len(&text) as f64 != declared
    {
        return failed(alg);
    }
    if let Some(expected) = envelope
        .get("raw_sha256")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
        && !sha256_hex(&text).eq_ignore_ascii_case(expected)
    {
        return failed(alg);
    }
    Decoded {
        value: Some(text),
        decoded: true,
        codec: alg,
        integrity_ok: true,
    }
}

/// base64 → zstd → UTF-8, never producing more than the declared size allows.
fn inflate(data: &str, declared_chars: Option<f64>) -> Option<String> {
    let bytes = STANDARD.decode(data.trim()).ok()?;
    // A UTF-16 unit is at most 3 UTF-8 bytes.
    let limit = declared_chars
        .filter(|d| d.is_finite() && *d >= 0.0)
        .map(|d| ((d as usize).saturating_mul(3)).min(MAX_DECODED_BYTES))
        .unwrap_or(MAX_DECODED_BYTES);
    let decoder = zstd::stream::read::Decoder::new(bytes.as_slice()).ok()?;
    let mut out = Vec::new();
    decoder.take(limit as u64 + 1).read_to_end(&mut out).ok()?;
    if out.len() > limit {
        return None;
    }
    String::from_utf8(out).ok()
}

/// A blob-ref envelope `{"v":"caep-1","k":"blob","h":…,"c":…}` (tools-more §1.2): what a
/// message or context value holds instead of a large payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// Not format-checked: readers look it up as given.
    pub hash: String,
    /// `c`: the stored blob's length (0 when absent or not a number).
    pub declared_chars: i64,
}

/// The envelope text, keys in the order v, k, h, c, no whitespace.
pub fn blob_ref_envelope(hash: &str, stored_chars: usize) -> String {
    format!(
        "{{\"v\":\"caep-1\",\"k\":\"blob\",\"h\":{},\"c\":{stored_chars}}}",
        Value::from(hash)
    )
}

/// Parses a blob-ref envelope; `None` for anything else.
pub fn parse_blob_ref(text: &str) -> Option<BlobRef> {
    if !text.trim_start().starts_with('{') || !text.contains("caep-1") {
        return None;
    }
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    if map.get("v").and_then(Value::as_str) != Some("caep-1")
        || map.get("k").and_then(Value::as_str) != Some("blob")
    {
        return None;
    }
    let hash = map.get("h").and_then(Value::as_str)?.to_string();
    let declared_chars = map
        .get("c")
        .and_then(Value::as_f64)
        .filter(|c| c.is_finite())
        .map(|c| (c.floor() as i64).max(0))
        .unwrap_or(0);
    Some(BlobRef {
        hash,
        declared_chars,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> Policy {
        Policy::default()
    }

    fn handoff(chars: usize) -> String {
        let mut text = String::from("{\"handoff\":[");
        let mut i = 0;
        while text.len() < chars {
            text.push_str(&format!(
                "{{\"task_id\":{i},\"status\":\"done\",\"summary\":\"step {i} finished\"}},"
            ));
            i += 1;
        }
        text.push_str("{}]}");
        text
    }

    #[test]
    fn lossless_auto_uses_zstd_above_the_threshold_and_round_trips() {
        let payload = handoff(3000);
        let out = compress(Mode::LosslessAuto, &payload, &policy());
        assert!(out.applied);
        assert_eq!(out.codec, "zstd-base64");
        assert!(out.gain_pct >= 3.0);
        assert!(
            out.stored
                .starts_with("{\"v\":\"caep-blobz-1\",\"alg\":\"zstd-base64\"")
        );
        let back = decode(&out.stored);
        assert_eq!(back.value.as_deref(), Some(payload.as_str()));
        assert!(back.decoded && back.integrity_ok);
        assert_eq!(back.codec, "zstd-base64");
    }

    #[test]
    fn lossless_auto_keeps_short_and_incompressible_payloads_raw() {
        let short = compress(Mode::LosslessAuto, "tiny", &policy());
        assert_eq!(
            (short.applied, short.codec, short.gain_pct),
            (false, "raw", 0.0)
        );
        // Random-looking text does not compress: raw, with the (negative) gain reported.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: String = (0..2000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                char::from(b'!' + (state % 90) as u8)
            })
            .collect();
        let out = compress(Mode::LosslessAuto, &noise, &policy());
        assert!(!out.applied);
        assert_eq!(out.stored, noise);
        assert!(out.gain_pct < 3.0);
    }

    #[test]
    fn lossy_modes_and_codec_names() {
        let p = policy();
        let json = compress(Mode::Json, "{ \"b\": 1, \"a\": 2 }", &p);
        assert_eq!(
            (json.stored.as_str(), json.codec, json.applied),
            ("{\"a\":2,\"b\":1}", "json", true)
        );
        assert!(!json.lossless);
        let unchanged = compress(Mode::Json, "{\"a\":1}", &p);
        assert_eq!((unchanged.codec, unchanged.applied), ("raw", false));
        let ws = compress(Mode::Whitespace, " a \n b\u{feff}", &p);
        assert_eq!((ws.stored.as_str(), ws.codec), ("a b", "whitespace"));
        let auto = compress(Mode::Auto, "{ \"k\" : [1, 2] }", &p);
        assert_eq!(
            (auto.stored.as_str(), auto.codec),
            ("{\"k\":[1,2]}", "json")
        );
        let none = compress(Mode::None, " x ", &p);
        assert_eq!(
            (none.stored.as_str(), none.codec, none.lossless),
            (" x ", "raw", true)
        );
        // auto with a 95 % rule keeps a barely-shorter candidate out.
        let strict = Policy {
            auto_max_ratio: Some(0.95),
            ..p
        };
        let nearly = compress(Mode::Auto, "a b c d e f g h i j  k", &strict);
        assert!(!nearly.applied);
        assert_eq!(compress(Mode::Auto, "", &p).gain_pct, 0.0);
    }

    #[test]
    fn tampered_or_unknown_envelopes_fail_integrity_and_resolve_to_nothing() {
        let payload = handoff(2000);
        let stored = compress(Mode::LosslessAuto, &payload, &policy()).stored;
        let mut envelope: Value = serde_json::from_str(&stored).unwrap();
        envelope["raw_sha256"] = json!(sha256_hex("other"));
        let bad = decode(&envelope.to_string());
        assert_eq!((bad.value, bad.integrity_ok), (None, false));
        envelope["raw_sha256"] = json!(sha256_hex(&payload));
        envelope["raw_chars"] = json!(5);
        assert!(!decode(&envelope.to_string()).integrity_ok);
        envelope["data"] = json!("!!!not base64");
        assert!(!decode(&envelope.to_string()).integrity_ok);
        let brotli = json!({"v": "caep-blobz-1", "alg": "brotli-base64", "data": "AAAA"});
        let legacy = decode(&brotli.to_string());
        assert_eq!(
            (legacy.integrity_ok, legacy.codec.as_str()),
            (false, "brotli-base64")
        );
        // Not an envelope: returned as is.
        let plain = decode("{\"v\":\"caep-1\"}");
        assert_eq!(
            (plain.value.as_deref(), plain.decoded),
            (Some("{\"v\":\"caep-1\"}"), false)
        );
    }

    #[test]
    fn blob_ref_envelopes() {
        let hash = sha256_hex("x");
        let text = blob_ref_envelope(&hash, 189);
        assert_eq!(
            text,
            format!("{{\"v\":\"caep-1\",\"k\":\"blob\",\"h\":\"{hash}\",\"c\":189}}")
        );
        assert_eq!(
            parse_blob_ref(&text),
            Some(BlobRef {
                hash: hash.clone(),
                declared_chars: 189
            })
        );
        let odd =
            parse_blob_ref("{\"v\":\"caep-1\",\"k\":\"blob\",\"h\":\"abc\",\"c\":\"9\"}").unwrap();
        assert_eq!((odd.hash.as_str(), odd.declared_chars), ("abc", 0));
        assert_eq!(parse_blob_ref("{\"v\":\"caep-1\",\"k\":\"blob\"}"), None);
        assert_eq!(parse_blob_ref("caep-1 plain text"), None);
    }

    #[test]
    fn a_decompression_bomb_is_refused() {
        let big = "a".repeat(1_000_000);
        let compressed = zstd::bulk::compress(big.as_bytes(), 3).unwrap();
        let envelope = json!({"v": "caep-blobz-1", "alg": "zstd-base64", "raw_chars": 10,
                              "data": STANDARD.encode(compressed)});
        assert!(!decode(&envelope.to_string()).integrity_ok);
    }

    proptest! {
        #[test]
        fn lossless_modes_round_trip_any_text(text in ".{0,3000}", min in 0usize..64) {
            let p = Policy { lossless_min_chars: min, lossless_min_gain_pct: 0.0, auto_max_ratio: None };
            for mode in [Mode::None, Mode::LosslessAuto] {
                let out = compress(mode, &text, &p);
                let back = decode(&out.stored);
                prop_assert!(back.integrity_ok);
                prop_assert_eq!(back.value.as_deref(), Some(text.as_str()));
            }
        }

        #[test]
        fn envelope_round_trips_repetitive_text(unit in ".{1,40}", times in 1usize..200) {
            let text = unit.repeat(times);
            let envelope = encode_envelope(&text).unwrap();
            prop_assert_eq!(decode(&envelope).value, Some(text));
        }
    }
}
