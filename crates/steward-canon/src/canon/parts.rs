//! Steps 6 to 9 of canonicalization: query, headers, body and streaming checks.

use std::collections::HashSet;

use steward_types::ErrorCode;

use super::HeaderField;
use crate::error::CanonError;
use crate::http;
use crate::percent::normalize_percent;
use crate::template::PathGroup;

/// One query pair. `a` (no value) and `a=` (empty value) stay distinct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPair {
    key: String,
    value: Option<String>,
}

impl QueryPair {
    /// The percent-normalized key.
    pub fn key(&self) -> &str {
        &self.key
    }
    /// The percent-normalized value; `None` when the pair had no `=`.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }
}

/// Step 6.
pub(super) fn canonical_query(
    raw: Option<&str>,
    group: &PathGroup,
    reserved_key: Option<&str>,
) -> Result<Vec<QueryPair>, CanonError> {
    let bad_percent =
        |why: String| CanonError::new(ErrorCode::RequestPercentEncodingInvalid, format!("query: {why}"));
    let mut pairs = Vec::new();
    for segment in raw.unwrap_or_default().split('&').filter(|s| !s.is_empty()) {
        let (key, value) = match segment.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (segment, None),
        };
        let key = normalize_percent(key).map_err(bad_percent)?;
        let value = value.map(normalize_percent).transpose().map_err(bad_percent)?;
        pairs.push(QueryPair { key, value });
    }
    for pair in &pairs {
        if pair.key.is_empty() || !group.query_allowlist().contains(&pair.key) {
            return Err(CanonError::new(
                ErrorCode::RequestQueryKeyNotAllowlisted,
                format!("query key {:?} is not allowlisted for group {}", pair.key, group.id()),
            ));
        }
    }
    let mut seen = HashSet::new();
    for pair in &pairs {
        if !seen.insert(pair.key.as_str()) && !group.duplicate_query_keys().allows(&pair.key) {
            return Err(CanonError::new(
                ErrorCode::RequestQueryDuplicateKeyForbidden,
                format!("query key {:?} appears more than once", pair.key),
            ));
        }
    }
    if let Some(reserved) = reserved_key
        && pairs.iter().any(|p| p.key == reserved)
    {
        return Err(CanonError::new(
            ErrorCode::RequestQueryKeyReserved,
            format!("query key {reserved:?} carries the integration's secret and may not be sent"),
        ));
    }
    pairs.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(pairs)
}

/// `k=v&k2&…` in order.
pub(super) fn serialize_query(pairs: &[QueryPair]) -> String {
    let mut out = String::new();
    for (i, pair) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&pair.key);
        if let Some(value) = &pair.value {
            out.push('=');
            out.push_str(value);
        }
    }
    out
}

/// Step 7. `body_len` is `None` when the body is not valid base64 (step 8 reports that).
pub(super) fn canonical_headers(
    headers: &[HeaderField],
    group: &PathGroup,
    body_len: Option<usize>,
    injected_header: Option<&str>,
) -> Result<Vec<(String, String)>, CanonError> {
    if let Some(h) = headers.iter().find(|h| !http::is_token(&h.name)) {
        return Err(CanonError::new(
            ErrorCode::RequestHeaderNameInvalid,
            format!("header name {:?} is not an HTTP token", h.name),
        ));
    }
    if let Some(h) = headers.iter().find(|h| !http::header_value_ok(&h.value)) {
        return Err(CanonError::new(
            ErrorCode::RequestHeaderValueInvalid,
            format!(
                "the value of header {:?} contains CR, LF, NUL, another control character or non-ASCII",
                h.name
            ),
        ));
    }
    check_framing(headers, body_len)?;
    let connection_named: HashSet<String> = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| h.value.split(','))
        .map(|token| http::trim_ows(token).to_ascii_lowercase())
        .collect();
    let mut kept: Vec<(String, String)> = headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), http::trim_ows(&h.value).to_owned()))
        .filter(|(name, _)| {
            group.header_forward_allowlist().allows(name)
                && !http::never_forwarded(name)
                && !connection_named.contains(name)
                && Some(name.as_str()) != injected_header
        })
        .collect();
    kept.sort();
    Ok(kept)
}

fn check_framing(headers: &[HeaderField], body_len: Option<usize>) -> Result<(), CanonError> {
    let ambiguous = |why: String| CanonError::new(ErrorCode::AmbiguousFraming, why);
    if headers.iter().any(|h| h.name.eq_ignore_ascii_case("transfer-encoding")) {
        return Err(ambiguous("transfer-encoding is not accepted; send the whole body".into()));
    }
    let lengths: Vec<&HeaderField> =
        headers.iter().filter(|h| h.name.eq_ignore_ascii_case("content-length")).collect();
    match lengths.as_slice() {
        [] => Ok(()),
        [one] => {
            let text = http::trim_ows(&one.value);
            let declared = (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
                .then(|| text.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| {
                    ambiguous(format!("content-length {:?} is not a decimal number", one.value))
                })?;
            match body_len {
                Some(actual) if u64::try_from(actual).ok() != Some(declared) => Err(ambiguous(format!(
                    "content-length {declared} does not match the body's {actual} bytes"
                ))),
                _ => Ok(()),
            }
        }
        _ => Err(ambiguous("more than one content-length header".into())),
    }
}

/// Step 8, after the body decoded.
pub(super) fn check_body(
    body: &[u8],
    headers: &[HeaderField],
    group: &PathGroup,
    max_request_body_bytes: u64,
) -> Result<(), CanonError> {
    let len = u64::try_from(body.len()).unwrap_or(u64::MAX);
    let limit = group.body_policy().max_bytes().min(max_request_body_bytes);
    if len > limit {
        return Err(CanonError::new(
            ErrorCode::RequestBodyTooLarge,
            format!("the body is {len} bytes; group {} accepts at most {limit}", group.id()),
        ));
    }
    if body.is_empty() {
        return Ok(());
    }
    let content_types: Vec<&HeaderField> =
        headers.iter().filter(|h| h.name.eq_ignore_ascii_case("content-type")).collect();
    let media_type = match content_types.as_slice() {
        [] => {
            return Err(CanonError::new(
                ErrorCode::RequestContentTypeMissing,
                "a request with a body needs a content-type header",
            ));
        }
        [one] => http::media_type(&one.value),
        _ => {
            return Err(CanonError::new(
                ErrorCode::RequestContentTypeNotAllowed,
                "more than one content-type header",
            ));
        }
    };
    if !group.body_policy().allows_content_type(&media_type) {
        return Err(CanonError::new(
            ErrorCode::RequestContentTypeNotAllowed,
            format!("content type {media_type:?} is not allowed for group {}", group.id()),
        ));
    }
    Ok(())
}

/// Step 9.
pub(super) fn check_streaming(headers: &[HeaderField]) -> Result<(), CanonError> {
    let streaming = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("accept") || h.name.eq_ignore_ascii_case("content-type"))
        .flat_map(|h| h.value.split(','))
        .map(http::media_type)
        .find(|t| http::STREAMING_MEDIA_TYPES.contains(&t.as_str()));
    match streaming {
        Some(t) => Err(CanonError::new(
            ErrorCode::RequestStreamingNotSupported,
            format!("{t} responses are not supported; ask for a complete response"),
        )),
        None => Ok(()),
    }
}
