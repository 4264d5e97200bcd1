//! Artifacts' pure rules (tools-more §3): ticket kinds, the clamps of ticket TTLs, byte caps
//! and retention, name/summary normalisation, the wire form of ids, ticket URLs, HTTP
//! `Range` and `Content-Disposition`. No I/O: the store keeps the rows, `service::artifacts`
//! applies these rules, `http::artifacts` streams the bytes.

use sha2::{Digest, Sha256};

use super::text::prefix;

/// What a ticket lets its holder do, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketKind {
    Upload,
    Download,
}

impl TicketKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketKind::Upload => "upload",
            TicketKind::Download => "download",
        }
    }

    pub fn parse(text: &str) -> Option<TicketKind> {
        match text {
            "upload" => Some(TicketKind::Upload),
            "download" => Some(TicketKind::Download),
            _ => None,
        }
    }

    /// The HTTP method of its URL.
    pub fn method(self) -> &'static str {
        match self {
            TicketKind::Upload => "POST",
            TicketKind::Download => "GET",
        }
    }
}

/// Per-call ticket TTLs clamp to 30 s - 1 day (floored); absent → `default_sec`.
pub const TICKET_TTL_RANGE: (i64, i64) = (30, 86_400);
/// The smallest per-ticket byte cap.
pub const MIN_TICKET_BYTES: i64 = 1024;
/// Retention below a minute would expire an artifact before anyone downloads it.
pub const MIN_RETENTION_SEC: i64 = 60;

fn floored(value: Option<f64>) -> Option<i64> {
    value.filter(|v| v.is_finite()).map(|v| v.floor() as i64)
}

pub fn ticket_ttl_sec(requested: Option<f64>, default_sec: i64) -> i64 {
    let (min, max) = TICKET_TTL_RANGE;
    floored(requested).unwrap_or(default_sec).clamp(min, max)
}

/// An upload ticket's byte cap: 1024 - server max, default the server max.
pub fn ticket_max_bytes(requested: Option<f64>, server_max: i64) -> i64 {
    floored(requested)
        .unwrap_or(server_max)
        .clamp(MIN_TICKET_BYTES, server_max.max(MIN_TICKET_BYTES))
}

/// Retention clamps to [60 s, `MCP_HUB_ARTIFACT_TTL_MS`] for the call's value and the default
/// alike (D12); with the TTL disabled there is no upper bound.
pub fn retention_sec(
    requested: Option<f64>,
    default_sec: i64,
    artifact_ttl_ms: Option<i64>,
) -> i64 {
    let max = artifact_ttl_ms
        .map(|ms| (ms / 1000).max(MIN_RETENTION_SEC))
        .unwrap_or(i64::MAX / 1000);
    floored(requested)
        .unwrap_or(default_sec)
        .clamp(MIN_RETENTION_SEC, max)
}

/// The stored name: `""` → `artifact.bin`, trimmed, cut to `max_chars`; `None` when only
/// whitespace was given (ARTIFACT_NAME_REQUIRED).
pub fn artifact_name(raw: &str, max_chars: usize) -> Option<String> {
    if raw.is_empty() {
        return Some("artifact.bin".into());
    }
    let trimmed = raw.trim();
    (!trimmed.is_empty()).then(|| prefix(trimmed, max_chars).to_string())
}

/// Trimmed, with `fallback` when blank.
pub fn trimmed_or(raw: Option<&str>, fallback: &str) -> String {
    raw.map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(fallback)
        .to_string()
}

/// An artifact id as the HTTP routes accept it: only `[A-Za-z0-9_-]` survives, so a path
/// can never leave the artifacts directory.
pub fn sanitize_id(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

/// Stored instead of the ticket: the database never holds a usable token.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.trim().as_bytes()).to_vec()
}

/// `<base>/artifacts/<kind>/<id>?token=<token>`; tokens are two UUIDs joined by `-`, so
/// they need no percent-encoding.
pub fn ticket_url(base_url: &str, kind: TicketKind, artifact_id: &str, token: &str) -> String {
    format!(
        "{}/artifacts/{}/{}?token={}",
        base_url.trim_end_matches('/'),
        kind.as_str(),
        artifact_id,
        token
    )
}

/// Ready for download: bytes were committed (empty uploads are refused, so size > 0).
pub fn is_ready(sha256: Option<&str>, size_bytes: i64) -> bool {
    sha256.is_some() && size_bytes > 0
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No (usable) range: the whole file, 200.
    Full,
    /// Bytes `start..=end`, 206.
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// One `bytes=` range (`a-b`, `a-`, `-n`). Several ranges or another unit are served whole,
/// as RFC 9110 allows a server to ignore `Range`.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let number = |text: &str| text.trim().parse::<u64>().ok();
    let (start, end) = match (first.trim().is_empty(), last.trim().is_empty()) {
        // Suffix: the last n bytes.
        (true, false) => match number(last) {
            Some(0) | None => return RangeRequest::Unsatisfiable,
            Some(n) => (size.saturating_sub(n), size.saturating_sub(1)),
        },
        (false, true) => match number(first) {
            Some(start) => (start, size.saturating_sub(1)),
            None => return RangeRequest::Full,
        },
        (false, false) => match (number(first), number(last)) {
            (Some(start), Some(end)) if start <= end => (start, end.min(size.saturating_sub(1))),
            _ => return RangeRequest::Full,
        },
        (true, true) => return RangeRequest::Full,
    };
    if size == 0 || start >= size {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Partial { start, end }
}

/// `attachment; filename="<ascii>"; filename*=UTF-8''<pct>` (RFC 6266): an ASCII fallback
/// with quotes and backslashes escaped, plus the exact name percent-encoded (D9).
pub fn content_disposition(name: &str, artifact_id: &str) -> String {
    let name = if name.trim().is_empty() {
        format!("{artifact_id}.bin")
    } else {
        name.to_string()
    };
    let ascii: String = name
        .chars()
        .map(|c| match c {
            '"' | '\\' => format!("\\{c}"),
            ' '..='~' => c.to_string(),
            _ => "_".to_string(),
        })
        .collect();
    let mut encoded = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_ttl_clamps() {
        for (requested, default, expected) in [
            (None, 300, 300),
            (Some(10.0), 300, 30),
            (Some(99.9), 300, 99),
            (Some(1e9), 300, 86_400),
            (Some(f64::NAN), 180, 180),
        ] {
            assert_eq!(
                ticket_ttl_sec(requested, default),
                expected,
                "{requested:?}"
            );
        }
    }

    #[test]
    fn byte_caps_and_retention_clamp() {
        assert_eq!(ticket_max_bytes(None, 5_000), 5_000);
        assert_eq!(ticket_max_bytes(Some(10.0), 5_000), 1024);
        assert_eq!(ticket_max_bytes(Some(1e12), 5_000), 5_000);
        assert_eq!(retention_sec(None, 86_400, Some(604_800_000)), 86_400);
        assert_eq!(retention_sec(Some(1.0), 86_400, Some(604_800_000)), 60);
        // D12: explicit values are capped by MCP_HUB_ARTIFACT_TTL_MS, not by a day.
        assert_eq!(
            retention_sec(Some(200_000.0), 86_400, Some(604_800_000)),
            200_000
        );
        assert_eq!(retention_sec(Some(1e9), 86_400, Some(604_800_000)), 604_800);
        assert_eq!(retention_sec(Some(1e9), 86_400, None), 1_000_000_000);
    }

    #[test]
    fn names() {
        assert_eq!(artifact_name("", 180).as_deref(), Some("artifact.bin"));
        assert_eq!(artifact_name("   ", 180), None);
        assert_eq!(artifact_name(" a.txt ", 180).as_deref(), Some("a.txt"));
        assert_eq!(artifact_name("ééééé", 3).as_deref(), Some("ééé"));
        assert_eq!(trimmed_or(Some("  "), "default"), "default");
        assert_eq!(trimmed_or(Some(" x "), "default"), "x");
        assert_eq!(sanitize_id("../ab-C_9?"), "ab-C_9");
    }

    #[test]
    fn ranges() {
        use RangeRequest::*;
        for (header, size, expected) in [
            (None, 10, Full),
            (Some("bytes=0-4"), 10, Partial { start: 0, end: 4 }),
            (Some("bytes=5-"), 10, Partial { start: 5, end: 9 }),
            (Some("bytes=-3"), 10, Partial { start: 7, end: 9 }),
            (Some("bytes=-30"), 10, Partial { start: 0, end: 9 }),
            (Some("bytes=4-100"), 10, Partial { start: 4, end: 9 }),
            (Some("bytes=10-"), 10, Unsatisfiable),
            (Some("bytes=-0"), 10, Unsatisfiable),
            (Some("bytes=5-2"), 10, Full),
            (Some("bytes=0-1,4-5"), 10, Full),
            (Some("items=0-1"), 10, Full),
            (Some("bytes=x-"), 10, Full),
        ] {
            assert_eq!(parse_range(header, size), expected, "{header:?}");
        }
    }

    #[test]
    fn dispositions() {
        assert_eq!(
            content_disposition("report.txt", "id"),
            "attachment; filename=\"report.txt\"; filename*=UTF-8''report.txt"
        );
        assert_eq!(
            content_disposition("", "abc"),
            "attachment; filename=\"abc.bin\"; filename*=UTF-8''abc.bin"
        );
        assert_eq!(
            content_disposition("a \"b\"\\é.bin", "id"),
            "attachment; filename=\"a \\\"b\\\"\\\\_.bin\"; \
             filename*=UTF-8''a%20%22b%22%5C%C3%A9.bin"
        );
    }

    #[test]
    fn kinds_and_urls() {
        for kind in [TicketKind::Upload, TicketKind::Download] {
            assert_eq!(TicketKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(
            ticket_url("http://h:1/", TicketKind::Upload, "a1", "t-t"),
            "http://h:1/artifacts/upload/a1?token=t-t"
        );
        assert!(is_ready(Some("x"), 1));
        assert!(!is_ready(Some("x"), 0));
        assert!(!is_ready(None, 5));
        assert_eq!(token_hash(" t ").len(), 32);
        assert_eq!(token_hash(" t "), token_hash("t"));
    }
}
