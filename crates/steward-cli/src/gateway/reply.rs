//! The gateway's own answers: the error shape of forward mode (`spec/gateway.md` §1), which both SDK
//! families parse, with `steward-error` and `x-correlation-id` headers; and the body type.

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use steward_types::ErrorCode;

/// The gateway's response body: a full buffer or the broker's stream.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

/// A new correlation id for a refusal of the gateway itself.
pub fn correlation_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `{"type":"error","error":{"type":code,"code":code,"message":…,"correlation_id":…}}` with the
/// code's status and headers `steward-error`, `x-correlation-id`.
pub fn error(code: ErrorCode, message: &str, correlation_id: &str) -> http::Response<Body> {
    let body = serde_json::json!({
        "type": "error",
        "error": {"type": code.as_str(), "code": code.as_str(), "message": message, "correlation_id": correlation_id},
    });
    let mut response = http::Response::new(full(body.to_string()));
    *response.status_mut() =
        http::StatusCode::from_u16(code.status()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    headers.insert("steward-error", http::HeaderValue::from_static(code.as_str()));
    if let Ok(value) = http::HeaderValue::from_str(correlation_id) {
        headers.insert("x-correlation-id", value);
    }
    response
}

/// A 200 with a body of the given content type.
pub fn ok(content_type: &'static str, body: impl Into<Bytes>) -> http::Response<Body> {
    let mut response = http::Response::new(full(body));
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refusals_have_the_nested_shape_and_headers() {
        let response = error(ErrorCode::GatewayTokenInvalid, "no token", "c-1");
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["steward-error"], "gateway_token_invalid");
        assert_eq!(response.headers()["x-correlation-id"], "c-1");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "error", "error": {"type": "gateway_token_invalid",
                "code": "gateway_token_invalid", "message": "no token", "correlation_id": "c-1"}})
        );
    }
}
