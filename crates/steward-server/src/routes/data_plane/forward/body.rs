//! The request body of a forward call: any bytes, framed by `content-length` or chunked (the HTTP
//! layer has already refused ambiguous framing), read whole up to `data_plane.max_forward_body_bytes`
//! (32 MiB, in place of `egress.max_request_body_bytes`) → else 413 `request_body_too_large`. The
//! template's `body_policy` is applied afterwards by canonicalization, as in execute.
//!
//! It is read only after the identity checks passed, so an unidentified client cannot make Steward
//! buffer 32 MiB.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use steward_types::ErrorCode;

use crate::http::ApiError;

/// `data_plane.max_forward_body_bytes` by default.
pub const DEFAULT_MAX_FORWARD_BODY_BYTES: u64 = 32 * 1024 * 1024;

/// Reads the whole body, refusing it as soon as it is known to be larger than `limit`: at once when
/// `content-length` says so, else when the byte past the limit arrives.
pub async fn read(headers: &HeaderMap, body: Body, limit: u64) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::RequestBodyTooLarge,
            format!(
                "the request body is larger than {limit} bytes, the limit of forward mode \
                 (data_plane.max_forward_body_bytes)"
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(body, limit_usize).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(too_large()),
        // A body cut short or badly chunked: the client broke its own framing.
        Err(error) => Err(ApiError::new(
            ErrorCode::AmbiguousFraming,
            format!("the request body could not be read as framed: {error}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use futures::stream;

    use super::*;

    fn declared(n: u64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        headers
    }

    fn chunked(parts: Vec<&'static [u8]>) -> Body {
        Body::from_stream(stream::iter(
            parts.into_iter().map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p))),
        ))
    }

    #[tokio::test]
    async fn any_bytes_up_to_the_limit_are_read_exactly() {
        let bytes = read(&declared(6), Body::from(&b"\x00\xffab\r\n"[..]), 6).await.unwrap();
        assert_eq!(&bytes[..], b"\x00\xffab\r\n");
        let bytes = read(&HeaderMap::new(), chunked(vec![b"ab", b"", b"cd"]), 4).await.unwrap();
        assert_eq!(&bytes[..], b"abcd");
        assert!(read(&HeaderMap::new(), Body::empty(), 0).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        // The body itself would fit: the declaration alone decides.
        let error = read(&declared(11), Body::from("small"), 10).await.unwrap_err();
        assert_eq!(error.code, ErrorCode::RequestBodyTooLarge);
        assert!(error.message.contains("data_plane.max_forward_body_bytes"), "{}", error.message);
    }

    #[tokio::test]
    async fn a_chunked_body_over_the_limit_is_refused() {
        let error = read(&HeaderMap::new(), chunked(vec![b"12345", b"678901"]), 10).await.unwrap_err();
        assert_eq!(error.code, ErrorCode::RequestBodyTooLarge);
    }

    #[tokio::test]
    async fn a_broken_body_is_a_framing_error() {
        let failing = Body::from_stream(stream::iter(vec![
            Ok(Bytes::from_static(b"ab")),
            Err(std::io::Error::other("connection reset")),
        ]));
        let error = read(&HeaderMap::new(), failing, 10).await.unwrap_err();
        assert_eq!(error.code, ErrorCode::AmbiguousFraming);
    }
}
