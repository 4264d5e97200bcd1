//! The compact protocol, as pure functions: canonical JSON and hashing ([`canonical`]),
//! payload compression and the lossless blob envelope ([`codec`]), and CAEP-v1 packets
//! ([`caep`]). No SQL, no MCP: the tools call these and the store keeps their output, so
//! every rule here is unit- and property-tested on its own.

pub mod caep;
pub mod canonical;
pub mod codec;

/// Length in UTF-16 code units: what the legacy wire format counts in `raw_chars`.
pub fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// Length in characters (Unicode scalar values): what every `*_chars` field reports.
pub fn char_len(text: &str) -> usize {
    text.chars().count()
}

/// `floor(x·100 + 0.5) / 100`: half rounds toward +∞, also for negative values.
pub fn round2(x: f64) -> f64 {
    (x * 100.0 + 0.5).floor() / 100.0
}

/// `floor(x·1000 + 0.5) / 1000`.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0 + 0.5).floor() / 1000.0
}

/// Lowercase hex SHA-256 of the UTF-8 bytes.
pub fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Whether `text` is a full SHA-256 in hex (either case).
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_up_even_for_negatives() {
        assert_eq!(round2(0.125), 0.13);
        assert_eq!(round2(-0.125), -0.12);
        assert_eq!(round3(0.1055), 0.106);
        assert_eq!(round3(-0.0005), 0.0);
    }

    #[test]
    fn lengths() {
        assert_eq!(utf16_len("a😀"), 3);
        assert_eq!(char_len("a😀"), 2);
        assert!(is_sha256_hex(&sha256_hex("x")));
        assert!(!is_sha256_hex("abc"));
    }
}
