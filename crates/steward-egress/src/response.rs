//! Response rules: redirects, encodings, streaming types, size limits and which headers come back.

use http::HeaderMap;
use http::HeaderName;
use http::header::{CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use steward_canon::http::{STREAMING_MEDIA_TYPES, is_hop_by_hop, media_type};

use crate::error::EgressError;

/// Redirect statuses that are never followed (304 is not a redirect and passes through).
const REDIRECTS: &[u16] = &[301, 302, 303, 307, 308];

/// Which answers a forward accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadRules {
    /// Execute mode: the body is read whole, so streaming media types are refused.
    Buffered,
    /// Forward mode: any media type; the body is streamed.
    Streaming,
}

/// Checks the status and headers before the body is read: redirects, encodings (both modes),
/// streaming media types (buffered only) and a declared length above `max_bytes`.
pub(crate) fn check_head(
    status: u16,
    headers: &HeaderMap,
    max_bytes: u64,
    rules: HeadRules,
) -> Result<(), EgressError> {
    if REDIRECTS.contains(&status) {
        return Err(EgressError::Redirect { status });
    }
    // Steward scrubs answers as bytes: an encoded body would hide the secret. The header values are
    // never put into the error (`pipeline.md`: upstream header values never appear in Steward's own
    // error messages).
    if codings(headers, CONTENT_ENCODING).any(|coding| !coding.eq_ignore_ascii_case("identity")) {
        return Err(EgressError::EncodingNotSupported { header: "content-encoding", allowed: "identity" });
    }
    // Chunked once, or nothing: chunked twice would leave the inner framing (a secret split by chunk
    // sizes) in the body hyper hands over.
    let mut transfer = codings(headers, TRANSFER_ENCODING);
    let chunked_once =
        transfer.next().is_none_or(|c| c.eq_ignore_ascii_case("chunked")) && transfer.next().is_none();
    if !chunked_once {
        return Err(EgressError::EncodingNotSupported { header: "transfer-encoding", allowed: "chunked" });
    }
    if rules == HeadRules::Buffered {
        for value in headers.get_all(CONTENT_TYPE) {
            let media = media_type(&String::from_utf8_lossy(value.as_bytes()));
            if let Some(streaming) = STREAMING_MEDIA_TYPES.iter().find(|t| **t == media) {
                return Err(EgressError::StreamingNotSupported { media_type: streaming });
            }
        }
    }
    for value in headers.get_all(CONTENT_LENGTH) {
        let declared = std::str::from_utf8(value.as_bytes()).ok().and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > max_bytes) {
            return Err(EgressError::ResponseTooLarge { limit: max_bytes });
        }
    }
    Ok(())
}

/// The media type of the answer's first `content-type` (lowercase, without parameters).
pub(crate) fn response_media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?;
    let media = media_type(&String::from_utf8_lossy(value.as_bytes()));
    (!media.is_empty()).then_some(media)
}

/// Whether `media` (lowercase, without parameters) is `text/event-stream` or
/// `application/x-ndjson`.
pub fn is_streaming_media_type(media: &str) -> bool {
    STREAMING_MEDIA_TYPES.contains(&media)
}

/// The non-empty, comma-separated codings of every `name` header, trimmed (a value that is not
/// UTF-8 yields a coding that matches nothing).
fn codings<'h>(headers: &'h HeaderMap, name: HeaderName) -> impl Iterator<Item = &'h str> + 'h {
    headers
        .get_all(name)
        .into_iter()
        .flat_map(|value| std::str::from_utf8(value.as_bytes()).unwrap_or("\u{fffd}").split(','))
        .map(|coding| coding.trim_matches([' ', '\t']))
        .filter(|coding| !coding.is_empty())
}

/// The headers returned to the workload: lowercase names in upstream order with duplicates kept;
/// hop-by-hop headers (and every header `connection` names) and `set-cookie` removed; everything else
/// only when `allowlist` admits it (exact names case-insensitively, `name-*` prefix entries).
pub(crate) fn filter_headers(headers: &HeaderMap, allowlist: &[String]) -> Vec<(String, String)> {
    let named_by_connection: Vec<String> = headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect();
    let mut out = Vec::new();
    // HeaderMap iterates names in insertion order with each name's values together; `iter` yields
    // every (name, value) pair, duplicates included.
    for (name, value) in headers {
        let name = name.as_str();
        if is_hop_by_hop(name)
            || named_by_connection.iter().any(|n| n == name)
            || name == "set-cookie"
            || name == "set-cookie2"
            || !steward_canon::entries_allow(allowlist, name)
        {
            continue;
        }
        out.push((name.to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()));
    }
    out
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use steward_types::ErrorCode;

    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(*n, HeaderValue::from_static(v));
        }
        m
    }

    fn head(status: u16, pairs: &[(&'static str, &'static str)]) -> Option<ErrorCode> {
        check_head(status, &map(pairs), 100, HeadRules::Buffered).err().map(|e| e.code())
    }

    #[test]
    fn statuses() {
        for s in [301, 302, 303, 307, 308] {
            assert_eq!(head(s, &[]), Some(ErrorCode::RedirectDenied));
        }
        for s in [200, 204, 304, 300, 305, 404, 500] {
            assert_eq!(head(s, &[]), None, "{s}");
        }
    }

    #[test]
    fn encodings_types_lengths() {
        assert_eq!(head(200, &[("content-encoding", "gzip")]), Some(ErrorCode::UpstreamEncodingNotSupported));
        assert_eq!(
            head(200, &[("content-encoding", "identity, br")]),
            Some(ErrorCode::UpstreamEncodingNotSupported)
        );
        assert_eq!(head(200, &[("content-encoding", "Identity")]), None);
        for coding in ["gzip, chunked", "chunked, gzip", "identity", "gzip", "chunked, chunked x"] {
            assert_eq!(
                head(200, &[("transfer-encoding", coding)]),
                Some(ErrorCode::UpstreamEncodingNotSupported),
                "{coding}"
            );
        }
        assert_eq!(head(200, &[("transfer-encoding", "Chunked")]), None);
        for pairs in [
            &[("transfer-encoding", "chunked"), ("transfer-encoding", "gzip")][..],
            &[("transfer-encoding", "chunked, chunked")],
            &[("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")],
        ] {
            assert_eq!(head(200, pairs), Some(ErrorCode::UpstreamEncodingNotSupported), "{pairs:?}");
        }
        assert_eq!(
            head(200, &[("content-type", "Text/Event-Stream; charset=utf-8")]),
            Some(ErrorCode::UpstreamStreamingNotSupported)
        );
        assert_eq!(
            head(200, &[("content-type", "application/x-ndjson")]),
            Some(ErrorCode::UpstreamStreamingNotSupported)
        );
        assert_eq!(head(200, &[("content-length", "101")]), Some(ErrorCode::UpstreamResponseTooLarge));
        assert_eq!(head(200, &[("content-length", "100")]), None);
    }

    #[test]
    fn header_filtering() {
        let m = map(&[
            ("content-type", "application/json"),
            ("x-request-id", "a"),
            ("connection", "x-drop-me, keep-alive"),
            ("x-drop-me", "1"),
            ("keep-alive", "timeout=5"),
            ("set-cookie", "a=b"),
            ("x-request-id", "b"),
            ("x-other", "not allowlisted"),
            ("transfer-encoding", "chunked"),
        ]);
        let allow: Vec<String> =
            ["content-type", "X-Request-Id", "x-drop-me", "set-cookie", "keep-alive", "transfer-encoding"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let out = filter_headers(&m, &allow);
        let pairs: Vec<(&str, &str)> = out.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            vec![("content-type", "application/json"), ("x-request-id", "a"), ("x-request-id", "b")]
        );
    }
}
