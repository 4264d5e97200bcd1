//! CAEP-v1 packets (tools-more §1.12–1.14): a payload wrapped with a format tag, an
//! encoding, a timestamp and a SHA-256 over the canonical body, optionally with object keys
//! shortened through a dictionary.
//!
//! Corrected behaviour (defects 1–3): the encoder uses only the 20 reversible alias pairs,
//! never aliases the `text` wrapper, and falls back to `json` (`dictionary_not_reversible`)
//! when an object already holds a key equal to an alias — so pack → unpack is the identity.
//! Unpacking a packet without a string `h`, or a text packet whose `d` is not an object, is
//! `INVALID_PACKET` instead of a crash.

use serde_json::{Map, Value};

use super::canonical::{self, canonical};
use super::{char_len, round2, sha256_hex};

pub const VERSION: &str = "caep-1";

/// Decode table (alias → key): the 20 pairs every peer understands.
pub const ALIASES: [(&str, &str); 20] = [
    ("e", "experiment"),
    ("a", "agent_id"),
    ("t", "task_id"),
    ("s", "status"),
    ("c", "confidence"),
    ("m", "summary"),
    ("md", "metadata"),
    ("ts", "timestamp"),
    ("tu", "updated_at"),
    ("r", "refs"),
    ("d", "depends_on"),
    ("p", "priority"),
    ("o", "outcome"),
    ("u", "uncertainty"),
    ("ev", "evidence"),
    ("v", "verifier"),
    ("recs", "recommendations"),
    ("rec", "recommendation"),
    ("msg", "message"),
    ("x", "content"),
];

fn alias_of(key: &str) -> Option<&'static str> {
    ALIASES
        .iter()
        .find(|(_, full)| *full == key)
        .map(|(alias, _)| *alias)
}

fn expansion_of(alias: &str) -> Option<&'static str> {
    ALIASES
        .iter()
        .find(|(short, _)| *short == alias)
        .map(|(_, full)| *full)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    Json,
    Text,
}

impl PayloadFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadFormat::Json => "json",
            PayloadFormat::Text => "text",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackMode {
    Auto,
    Json,
    Dictionary,
}

impl PackMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PackMode::Auto => "auto",
            PackMode::Json => "json",
            PackMode::Dictionary => "dictionary",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Dictionary,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Json => "json",
            Encoding::Dictionary => "dictionary",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PackOptions {
    pub format: PayloadFormat,
    pub mode: PackMode,
    pub min_payload_chars: usize,
    pub min_gain_pct: f64,
    pub now_ms: i64,
}

/// A packed message and the numbers behind the encoding decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Packed {
    pub packet_json: String,
    pub packet: Value,
    pub hash: String,
    pub encoding: Encoding,
    pub decision: &'static str,
    pub dictionary_gain_pct: f64,
    pub original_chars: usize,
    pub packed_chars: usize,
    pub json_chars: usize,
    pub dictionary_chars: usize,
}

/// Why a payload could not be packed: the JSON parser's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPayload(pub String);

/// Whether any object (at any depth) has a key that the decoder would expand.
fn has_alias_key(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(key, item)| expansion_of(key).is_some() || has_alias_key(item)),
        Value::Array(items) => items.iter().any(has_alias_key),
        _ => false,
    }
}

fn rename_keys(value: &Value, rename: fn(&str) -> Option<&'static str>) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, item) in map {
                let key = rename(key)
                    .map(str::to_string)
                    .unwrap_or_else(|| key.clone());
                out.insert(key, rename_keys(item, rename));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| rename_keys(i, rename)).collect()),
        other => other.clone(),
    }
}

/// The dictionary form of a (text-wrapped or JSON) payload value. The text wrapper key is
/// never aliased (it is not in the table).
fn dictionary_encode(value: &Value) -> Value {
    rename_keys(value, alias_of)
}

fn dictionary_decode(value: &Value) -> Value {
    rename_keys(value, expansion_of)
}

/// The hashed body: the packet's fields except `h`, canonicalised.
fn body_hash(body: &Map<String, Value>) -> String {
    sha256_hex(&canonical(&Value::Object(body.clone())))
}

pub fn pack(payload: &str, options: &PackOptions) -> Result<Packed, InvalidPayload> {
    let value = match options.format {
        PayloadFormat::Json => canonical::parse(payload).map_err(InvalidPayload)?,
        PayloadFormat::Text => {
            let mut wrapper = Map::new();
            wrapper.insert("text".into(), Value::from(payload));
            Value::Object(wrapper)
        }
    };
    let normalized = canonical::normalize(&value);
    let reversible = !has_alias_key(&normalized);
    let dictionary = dictionary_encode(&normalized);
    let json_str = canonical(&normalized);
    let dict_str = canonical(&dictionary);
    let json_chars = char_len(&json_str);
    let dictionary_chars = char_len(&dict_str);
    let dictionary_gain_pct = if json_chars == 0 {
        0.0
    } else {
        round2((json_chars as f64 - dictionary_chars as f64) / json_chars as f64 * 100.0)
    };
    let original_chars = char_len(payload);
    let (encoding, decision) = match options.mode {
        _ if !reversible => (Encoding::Json, "dictionary_not_reversible"),
        PackMode::Json => (Encoding::Json, "forced_json"),
        PackMode::Dictionary => (Encoding::Dictionary, "forced_dictionary"),
        PackMode::Auto if original_chars < options.min_payload_chars => {
            (Encoding::Json, "below_min_payload_chars")
        }
        PackMode::Auto if dictionary_gain_pct < options.min_gain_pct => {
            (Encoding::Json, "below_min_gain_pct")
        }
        PackMode::Auto if dictionary_chars <= json_chars => {
            (Encoding::Dictionary, "gain_threshold_met")
        }
        PackMode::Auto => (Encoding::Json, "dictionary_not_smaller"),
    };
    let (d, d_text) = match encoding {
        Encoding::Json => (normalized, json_str),
        Encoding::Dictionary => (dictionary, dict_str),
    };
    // canonical({v, fmt, enc, ts, d}) with keys in canonical order, reusing d's text
    // instead of serialising it again (property-tested against `body_hash`).
    let hash = sha256_hex(&format!(
        "{{\"d\":{d_text},\"enc\":\"{}\",\"fmt\":\"{}\",\"ts\":{},\"v\":\"{VERSION}\"}}",
        encoding.as_str(),
        options.format.as_str(),
        options.now_ms,
    ));
    // Top-level key order v, fmt, enc, ts, d, h is contractual; `d` is written canonically.
    let packet_json = format!(
        "{{\"v\":\"{VERSION}\",\"fmt\":\"{}\",\"enc\":\"{}\",\"ts\":{},\"d\":{d_text},\"h\":\"{hash}\"}}",
        options.format.as_str(),
        encoding.as_str(),
        options.now_ms,
    );
    let mut body = Map::new();
    body.insert("v".into(), Value::from(VERSION));
    body.insert("fmt".into(), Value::from(options.format.as_str()));
    body.insert("enc".into(), Value::from(encoding.as_str()));
    body.insert("ts".into(), Value::from(options.now_ms));
    body.insert("d".into(), d);
    debug_assert_eq!(body_hash(&body), hash);
    let mut packet = body;
    packet.insert("h".into(), Value::from(hash.clone()));
    Ok(Packed {
        packed_chars: char_len(&packet_json),
        packet_json,
        packet: Value::Object(packet),
        hash,
        encoding,
        decision,
        dictionary_gain_pct,
        original_chars,
        json_chars,
        dictionary_chars,
    })
}

/// An unpacked packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Unpacked {
    pub hash_valid: bool,
    /// The packet's `fmt` (`json`, `text`, or whatever a peer wrote).
    pub format: String,
    pub encoding: Encoding,
    pub hash: String,
    /// The text for `fmt = text`, else the decoded JSON value.
    pub payload: UnpackedPayload,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UnpackedPayload {
    Text(String),
    Json(Value),
}

impl UnpackedPayload {
    /// The payload as text: the text itself, or the canonical JSON.
    pub fn as_text(&self) -> String {
        match self {
            UnpackedPayload::Text(text) => text.clone(),
            UnpackedPayload::Json(value) => canonical(value),
        }
    }
}

/// An unpack refusal: its error code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackError {
    pub code: &'static str,
    pub message: String,
}

fn unpack_error(code: &'static str, message: impl Into<String>) -> UnpackError {
    UnpackError {
        code,
        message: message.into(),
    }
}

pub fn unpack(packet_json: &str) -> Result<Unpacked, UnpackError> {
    let value = canonical::parse(packet_json).map_err(|e| {
        unpack_error(
            "INVALID_PACKET",
            format!("packet_json is not JSON ({e}); pass packet_json from pack_protocol_message unchanged"),
        )
    })?;
    let Value::Object(packet) = value else {
        return Err(unpack_error(
            "UNSUPPORTED_PACKET",
            "packet_json is not a JSON object; only caep-1 packets can be unpacked",
        ));
    };
    if packet.get("v").and_then(Value::as_str) != Some(VERSION) {
        return Err(unpack_error(
            "UNSUPPORTED_PACKET",
            "the packet's v is not \"caep-1\"; only caep-1 packets can be unpacked",
        ));
    }
    let encoding = match packet.get("enc").and_then(Value::as_str) {
        Some("json") => Encoding::Json,
        Some("dictionary") => Encoding::Dictionary,
        _ => {
            return Err(unpack_error(
                "UNSUPPORTED_ENCODING",
                "the packet's enc must be \"json\" or \"dictionary\"",
            ));
        }
    };
    let Some(hash) = packet.get("h").and_then(Value::as_str).map(str::to_string) else {
        return Err(unpack_error(
            "INVALID_PACKET",
            "the packet has no string h (its SHA-256); pass packet_json from pack_protocol_message unchanged",
        ));
    };
    let mut body = Map::new();
    for field in ["v", "fmt", "enc", "ts", "d"] {
        if let Some(item) = packet.get(field) {
            body.insert(field.to_string(), item.clone());
        }
    }
    let hash_valid = body_hash(&body) == hash;
    let d = packet.get("d").cloned().unwrap_or(Value::Null);
    let decoded = match encoding {
        Encoding::Json => d,
        Encoding::Dictionary => dictionary_decode(&d),
    };
    let format = match packet.get("fmt") {
        Some(Value::String(fmt)) => fmt.clone(),
        Some(other) => canonical(other),
        None => String::new(),
    };
    let payload = if format == "text" {
        let Value::Object(wrapper) = &decoded else {
            return Err(unpack_error(
                "INVALID_PACKET",
                "a text packet's d must be an object holding the text; the packet is malformed",
            ));
        };
        UnpackedPayload::Text(match wrapper.get("text") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text.clone(),
            Some(other) => canonical(other),
        })
    } else {
        UnpackedPayload::Json(canonical::normalize(&decoded))
    };
    Ok(Unpacked {
        hash_valid,
        format,
        encoding,
        hash,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn options(format: PayloadFormat, mode: PackMode) -> PackOptions {
        PackOptions {
            format,
            mode,
            min_payload_chars: 2048,
            min_gain_pct: 3.0,
            now_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn packet_layout_and_dictionary() {
        let packed = pack(
            "{\"status\":\"done\",\"agent_id\":\"w1\"}",
            &options(PayloadFormat::Json, PackMode::Dictionary),
        )
        .unwrap();
        assert!(packed.packet_json.starts_with(
            "{\"v\":\"caep-1\",\"fmt\":\"json\",\"enc\":\"dictionary\",\"ts\":1700000000000,\"d\":{\"a\":\"w1\",\"s\":\"done\"},\"h\":\""
        ));
        assert_eq!(packed.decision, "forced_dictionary");
        let back = unpack(&packed.packet_json).unwrap();
        assert!(back.hash_valid);
        assert_eq!(
            back.payload,
            UnpackedPayload::Json(json!({"status": "done", "agent_id": "w1"}))
        );
    }

    #[test]
    fn legacy_irreversible_keys_fall_back_to_json() {
        for payload in ["{\"s\":1}", "{\"a\":{\"x\":2}}", "[{\"e\":null}]"] {
            let packed =
                pack(payload, &options(PayloadFormat::Json, PackMode::Dictionary)).unwrap();
            assert_eq!(packed.encoding, Encoding::Json);
            assert_eq!(packed.decision, "dictionary_not_reversible");
            let back = unpack(&packed.packet_json).unwrap();
            assert_eq!(
                back.payload.as_text(),
                canonical::canonicalize_text(payload).unwrap()
            );
        }
        // Keys the legacy table renamed (agent, task, text, ...) are left alone now.
        let packed = pack(
            "{\"agent\":1,\"agent_id\":2,\"text\":\"t\",\"created_at\":3}",
            &options(PayloadFormat::Json, PackMode::Dictionary),
        )
        .unwrap();
        let back = unpack(&packed.packet_json).unwrap();
        assert_eq!(
            back.payload,
            UnpackedPayload::Json(json!({"agent": 1, "agent_id": 2, "text": "t", "created_at": 3}))
        );
    }

    #[test]
    fn text_with_dictionary_round_trips() {
        let text = "line one\n  line two: {\"status\": 1}";
        let packed = pack(text, &options(PayloadFormat::Text, PackMode::Dictionary)).unwrap();
        assert_eq!(packed.encoding, Encoding::Dictionary);
        let back = unpack(&packed.packet_json).unwrap();
        assert_eq!(back.payload, UnpackedPayload::Text(text.to_string()));
        assert!(back.hash_valid);
    }

    #[test]
    fn auto_policy_decisions() {
        let small = pack(
            "{\"status\":1}",
            &options(PayloadFormat::Json, PackMode::Auto),
        )
        .unwrap();
        assert_eq!(small.decision, "below_min_payload_chars");
        let items: Vec<Value> = (0..60)
            .map(|i| json!({"task_id": i, "status": "done", "confidence": 0.9, "summary": "ok"}))
            .collect();
        let heavy = Value::Array(items).to_string();
        let packed = pack(&heavy, &options(PayloadFormat::Json, PackMode::Auto)).unwrap();
        assert_eq!(packed.decision, "gain_threshold_met");
        assert_eq!(packed.encoding, Encoding::Dictionary);
        let plain = format!("[{}]", vec!["\"zzzzzzzzzz\""; 400].join(","));
        let low = pack(&plain, &options(PayloadFormat::Json, PackMode::Auto)).unwrap();
        assert_eq!(low.decision, "below_min_gain_pct");
        assert!(matches!(
            pack("{nope", &options(PayloadFormat::Json, PackMode::Auto)),
            Err(InvalidPayload(_))
        ));
    }

    #[test]
    fn tampering_and_malformed_packets() {
        let packed = pack(
            "{\"status\":\"done\"}",
            &options(PayloadFormat::Json, PackMode::Json),
        )
        .unwrap();
        let tampered = packed.packet_json.replace("done", "dona");
        assert!(!unpack(&tampered).unwrap().hash_valid);
        let code = |text: &str| unpack(text).unwrap_err().code;
        assert_eq!(code("{not json"), "INVALID_PACKET");
        assert_eq!(code("null"), "UNSUPPORTED_PACKET");
        assert_eq!(code("{\"v\":\"caep-2\"}"), "UNSUPPORTED_PACKET");
        assert_eq!(
            code("{\"v\":\"caep-1\",\"enc\":\"zip\",\"h\":\"x\"}"),
            "UNSUPPORTED_ENCODING"
        );
        assert_eq!(
            code("{\"v\":\"caep-1\",\"enc\":\"json\",\"d\":{}}"),
            "INVALID_PACKET"
        );
        assert_eq!(
            code("{\"v\":\"caep-1\",\"fmt\":\"text\",\"enc\":\"json\",\"d\":[1],\"h\":\"x\"}"),
            "INVALID_PACKET"
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("status".to_string()),
            Just("agent_id".to_string()),
            Just("summary".to_string()),
            Just("text".to_string()),
            Just("agent".to_string()),
            Just("content".to_string()),
            "[a-z_]{0,8}",
            ".{0,4}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 40, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn pack_unpack_is_identity_on_json(value in arb_json(), mode in 0..3u8) {
            let mode = [PackMode::Auto, PackMode::Json, PackMode::Dictionary][mode as usize];
            let mut opts = options(PayloadFormat::Json, mode);
            opts.min_payload_chars = 0;
            opts.min_gain_pct = 0.0;
            let packed = pack(&value.to_string(), &opts).unwrap();
            let back = unpack(&packed.packet_json).unwrap();
            prop_assert!(back.hash_valid);
            prop_assert_eq!(back.payload, UnpackedPayload::Json(canonical::normalize(&value)));
        }

        #[test]
        fn pack_unpack_is_identity_on_text(text in "(.|\n){0,400}", mode in 0..3u8) {
            let mode = [PackMode::Auto, PackMode::Json, PackMode::Dictionary][mode as usize];
            let mut opts = options(PayloadFormat::Text, mode);
            opts.min_payload_chars = 0;
            opts.min_gain_pct = 0.0;
            let packed = pack(&text, &opts).unwrap();
            let back = unpack(&packed.packet_json).unwrap();
            prop_assert!(back.hash_valid);
            prop_assert_eq!(back.payload, UnpackedPayload::Text(text));
        }
    }
}
