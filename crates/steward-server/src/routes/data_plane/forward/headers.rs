//! The request headers a forward call hands to canonicalization (`spec/gateway.md` §1): the client's
//! own, minus what belongs to the hop to Steward — `authorization` (the session), `dpop`, `host`,
//! `content-length` (the body is re-framed), every `steward-*` and `proxy-*` header, and the hop-by-hop
//! headers (`connection` and every name it lists). What remains then meets the header rules of
//! canonicalization (allowlist, value checks) exactly as an execute request's headers do.

use axum::http::HeaderMap;
use steward_canon::HeaderField;
use steward_canon::http::is_hop_by_hop;

/// The headers to canonicalize, in the request's order, names lowercase. A value that is not UTF-8
/// is passed on lossily (`U+FFFD`), so canonicalization refuses it with
/// `request_header_value_invalid` like any other non-ASCII value.
pub fn forwardable(headers: &HeaderMap) -> Vec<HeaderField> {
    let connection_listed: Vec<String> = headers
        .get_all(axum::http::header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            !removed(name) && !connection_listed.iter().any(|listed| listed == name)
        })
        .map(|(name, value)| HeaderField::new(name.as_str(), String::from_utf8_lossy(value.as_bytes())))
        .collect()
}

/// Whether Steward removes this header (lowercase name, as `HeaderMap` stores it) before
/// canonicalization.
pub fn removed(name: &str) -> bool {
    matches!(name, "authorization" | "dpop" | "host" | "content-length")
        || name.starts_with("steward-")
        || name.starts_with("proxy-")
        || is_hop_by_hop(name)
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderName, HeaderValue};

    use super::*;

    fn map(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        headers
    }

    fn names(fields: &[HeaderField]) -> Vec<&str> {
        fields.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn session_proof_framing_steward_and_proxy_headers_are_removed() {
        let headers = map(&[
            ("authorization", b"Bearer stw_sess_x"),
            ("dpop", b"eyJ.x.y"),
            ("host", b"steward.test"),
            ("content-length", b"12"),
            ("transfer-encoding", b"chunked"),
            ("steward-integration", b"openai"),
            ("Steward-Approval-Wait", b"10"),
            ("proxy-authorization", b"Basic x"),
            ("proxy-anything", b"x"),
            ("keep-alive", b"timeout=5"),
            ("te", b"trailers"),
            ("upgrade", b"h2c"),
            ("trailer", b"x"),
            ("content-type", b"application/json"),
            ("accept", b"text/event-stream"),
            ("openai-beta", b"assistants=v2"),
        ]);
        let kept = forwardable(&headers);
        assert_eq!(names(&kept), ["content-type", "accept", "openai-beta"]);
        assert_eq!(kept[1].value, "text/event-stream");
    }

    #[test]
    fn headers_named_by_connection_are_removed() {
        let headers = map(&[
            ("connection", b"keep-alive, X-Private-Hop"),
            ("connection", b"x-other"),
            ("x-private-hop", b"1"),
            ("x-other", b"2"),
            ("x-kept", b"3"),
        ]);
        assert_eq!(names(&forwardable(&headers)), ["x-kept"]);
    }

    #[test]
    fn duplicates_and_order_are_kept() {
        let headers = map(&[("x-a", b"1"), ("x-b", b"2"), ("x-a", b"3")]);
        let kept = forwardable(&headers);
        let pairs: Vec<(&str, &str)> = kept.iter().map(|f| (f.name.as_str(), f.value.as_str())).collect();
        assert_eq!(pairs, [("x-a", "1"), ("x-a", "3"), ("x-b", "2")]);
    }

    #[test]
    fn non_utf8_values_stay_non_ascii_for_canonicalization_to_refuse() {
        let kept = forwardable(&map(&[("x-bin", b"a\xffb")]));
        assert_eq!(kept[0].value, "a\u{fffd}b");
        assert!(!kept[0].value.is_ascii());
    }

    #[test]
    fn other_headers_are_left_to_the_template_allowlist() {
        // Canonicalization drops what the group does not allowlist and never forwards cookies,
        // x-forwarded-*, accept-encoding: those are its rules, not this module's.
        let kept = forwardable(&map(&[
            ("cookie", b"a=b"),
            ("x-forwarded-for", b"1.2.3.4"),
            ("accept-encoding", b"gzip"),
        ]));
        assert_eq!(names(&kept), ["cookie", "x-forwarded-for", "accept-encoding"]);
    }
}
