//! HTTP vocabulary shared by template validation and canonicalization: token names, the hop-by-hop set,
//! the names that are never forwarded and media-type parsing.

/// Hop-by-hop headers (RFC 9110 §7.6.1 plus the legacy ones the spec names). `connection` also makes
/// every header it names hop-by-hop; that is handled where the request's headers are filtered.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Media types that would need a streaming response, which Steward does not forward.
pub const STREAMING_MEDIA_TYPES: &[&str] = &["text/event-stream", "application/x-ndjson"];

/// True when `name` is an RFC 9110 token (`tchar+`).
pub fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(is_tchar)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// True for a hop-by-hop name (lowercase input).
pub fn is_hop_by_hop(lower: &str) -> bool {
    HOP_BY_HOP.contains(&lower)
}

/// Names a template may never allowlist: these plus [`HOP_BY_HOP`]. A prefix entry admitting any of
/// them is refused too.
const NEVER_ALLOWLISTABLE_OWN: &[&str] = &["authorization", "cookie", "host", "dpop", "accept-encoding"];

/// Every name a template may never allowlist, exact or through a prefix entry.
pub(crate) const NEVER_ALLOWLISTABLE: &[&str] = &[
    "authorization",
    "cookie",
    "host",
    "dpop",
    "accept-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Names a template may never allowlist (lowercase input).
pub(crate) fn never_allowlistable(lower: &str) -> bool {
    NEVER_ALLOWLISTABLE_OWN.contains(&lower) || is_hop_by_hop(lower)
}

/// Names never forwarded upstream even when allowlisted (lowercase input).
pub fn never_forwarded(lower: &str) -> bool {
    matches!(
        lower,
        "authorization"
            | "proxy-authorization"
            | "cookie"
            | "host"
            | "content-length"
            | "dpop"
            | "accept-encoding"
            | "forwarded"
    ) || lower.starts_with("x-forwarded-")
        || lower.starts_with("x-steward-")
        || is_hop_by_hop(lower)
}

/// Header names an injection may not target (lowercase input).
pub(crate) fn never_injectable(lower: &str) -> bool {
    matches!(lower, "host" | "content-length" | "transfer-encoding" | "cookie" | "dpop")
        || lower.starts_with("x-steward-")
        || is_hop_by_hop(lower)
}

/// The media type of a `content-type` (or one `accept` element): before any `;`, trimmed, lowercased.
pub fn media_type(value: &str) -> String {
    let essence = value.split(';').next().unwrap_or_default();
    essence.trim_matches([' ', '\t']).to_ascii_lowercase()
}

/// True when `value` is a syntactically valid `type/subtype` media type (lowercase, no parameters).
pub(crate) fn is_media_type(value: &str) -> bool {
    match value.split_once('/') {
        Some((kind, sub)) => is_token(kind) && is_token(sub),
        None => false,
    }
}

/// Header values may not carry CR, LF, NUL, other control characters except HTAB, or non-ASCII.
pub(crate) fn header_value_ok(value: &str) -> bool {
    value.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// Trim optional whitespace (space and HTAB) from both ends of a header value.
pub(crate) fn trim_ows(value: &str) -> &str {
    value.trim_matches([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_token("x-api-key"));
        assert!(!is_token(""));
        assert!(!is_token("bad name"));
        assert!(!is_token("bad:name"));
    }

    #[test]
    fn media_types() {
        assert_eq!(media_type(" Application/JSON ; charset=utf-8"), "application/json");
        assert!(is_media_type("application/json"));
        assert!(!is_media_type("json"));
    }

    #[test]
    fn forwarding_sets() {
        assert!(never_forwarded("x-forwarded-for"));
        assert!(never_forwarded("x-steward-anything"));
        assert!(never_forwarded("te"));
        assert!(!never_forwarded("content-type"));
        assert!(never_allowlistable("upgrade"));
        assert!(!never_allowlistable("content-length"));
        assert!(never_injectable("x-steward-x"));
        // The full list is exactly the two sets together.
        for name in NEVER_ALLOWLISTABLE {
            assert!(never_allowlistable(name), "{name}");
        }
        assert_eq!(NEVER_ALLOWLISTABLE.len(), NEVER_ALLOWLISTABLE_OWN.len() + HOP_BY_HOP.len());
        assert!(!never_injectable("authorization"));
    }
}
