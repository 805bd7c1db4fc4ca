//! Steward's own answers in forward mode (`spec/gateway.md` §1): every refusal, with the status of
//! its code (`spec/errors.md`), in the nested body both SDK families parse —
//! `{"type":"error","error":{"type","code","message","correlation_id"}}` — with `steward-error:
//! <code>` and `x-correlation-id`; and approval-required as 403 `approval_required` (never 2xx, or an
//! SDK would take it for a completion) with `steward-approval-id`.
//!
//! The body is written here, not by the request-context middleware (which renders the flat
//! `{"error",…}` shape of the other routes): the response carries no pending-error marker, only the
//! reason code for the request log line.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use steward_types::ErrorCode;

use crate::http::context::CORRELATION_HEADER;
use crate::http::{ApiError, LogFields};

/// `steward-error: <code>` on every refusal of Steward's own (never on an upstream answer).
pub const STEWARD_ERROR_HEADER: &str = "steward-error";
/// `steward-approval-id: apr_…` on the 403 `approval_required`.
pub const STEWARD_APPROVAL_ID_HEADER: &str = "steward-approval-id";

/// An [`ApiError`] in the forward shape. Its extra headers (`www-authenticate`, `retry-after`,
/// `allow`) are kept.
pub fn refusal(error: ApiError, correlation_id: &str) -> Response {
    let status = error.status();
    let body = nested(error.code, &error.message, correlation_id, None);
    let mut response = respond(status, error.code, &body, correlation_id);
    for (name, value) in error.headers {
        response.headers_mut().append(name, value);
    }
    response
}

/// What an approval-required answer tells the caller.
#[derive(Debug, Clone)]
pub struct PendingApproval<'a, E: Serialize, S: Serialize> {
    pub approval_id: &'a str,
    pub expires_at: &'a E,
    pub summary: &'a S,
}

/// 403 `approval_required` with `steward-approval-id`, and `approval_id`, `expires_at` and `summary`
/// in the error object. Repeating the same request while it is pending gets the same approval; once
/// it is approved (`once`), the same request executes.
pub fn approval_required<E: Serialize, S: Serialize>(
    approval: &PendingApproval<'_, E, S>,
    correlation_id: &str,
) -> Response {
    let code = ErrorCode::ApprovalRequired;
    let message = format!(
        "this request needs a person's approval ({id}); an approver runs `steward admin approvals approve {id} \
         --once` (or uses the console), then send the same request again",
        id = approval.approval_id
    );
    let extra = json!({
        "approval_id": approval.approval_id,
        "expires_at": approval.expires_at,
        "summary": approval.summary,
    });
    let body = nested(code, &message, correlation_id, Some(extra));
    let mut response = respond(StatusCode::FORBIDDEN, code, &body, correlation_id);
    if let Ok(value) = HeaderValue::from_str(approval.approval_id) {
        response.headers_mut().insert(HeaderName::from_static(STEWARD_APPROVAL_ID_HEADER), value);
    }
    response
}

/// `{"type":"error","error":{"type","code","message","correlation_id", …extra}}`.
fn nested(code: ErrorCode, message: &str, correlation_id: &str, extra: Option<Value>) -> Value {
    let mut error = json!({
        "type": code.as_str(),
        "code": code.as_str(),
        "message": message,
        "correlation_id": correlation_id,
    });
    if let (Some(object), Some(Value::Object(extra))) = (error.as_object_mut(), extra) {
        object.extend(extra);
    }
    json!({"type": "error", "error": error})
}

fn respond(status: StatusCode, code: ErrorCode, body: &Value, correlation_id: &str) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(HeaderName::from_static(STEWARD_ERROR_HEADER), HeaderValue::from_static(code.as_str()));
    if let Ok(value) = HeaderValue::from_str(correlation_id) {
        headers.insert(HeaderName::from_static(CORRELATION_HEADER), value);
    }
    response
        .extensions_mut()
        .insert(LogFields { reason_code: Some(code.as_str().to_owned()), ..LogFields::default() });
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn parts(response: Response) -> (StatusCode, axum::http::HeaderMap, Value) {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_refusal_has_the_nested_shape_the_status_and_the_headers() {
        let error = ApiError::new(ErrorCode::PolicyDeny, "denied by rule pol_1");
        let (status, headers, body) = parts(refusal(error, "corr-1")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(
            body,
            json!({"type": "error", "error": {
                "type": "policy_deny", "code": "policy_deny",
                "message": "denied by rule pol_1", "correlation_id": "corr-1",
            }})
        );
        assert_eq!(headers["steward-error"], "policy_deny");
        assert_eq!(headers["x-correlation-id"], "corr-1");
        assert_eq!(headers["content-type"], "application/json");
    }

    #[tokio::test]
    async fn extra_headers_of_the_error_are_kept() {
        let error = ApiError::new(ErrorCode::PolicyRateLimited, "retry after 7 s")
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("7"));
        let (status, headers, _) = parts(refusal(error, "c")).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers["retry-after"], "7");
        let error = ApiError::new(ErrorCode::DpopReplay, "replayed").with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("DPoP error=\"invalid_dpop_proof\""),
        );
        let (status, headers, body) = parts(refusal(error, "c")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers["www-authenticate"], "DPoP error=\"invalid_dpop_proof\"");
        assert_eq!(body["error"]["code"], "dpop_replay");
    }

    #[tokio::test]
    async fn every_code_keeps_its_status() {
        for code in [ErrorCode::RequestBodyTooLarge, ErrorCode::UpstreamTimeout, ErrorCode::InternalError] {
            let (status, headers, body) = parts(refusal(ApiError::new(code, "m"), "c")).await;
            assert_eq!(status.as_u16(), code.status());
            assert_eq!(headers["steward-error"], code.as_str());
            assert_eq!(body["error"]["type"], code.as_str());
        }
    }

    #[tokio::test]
    async fn approval_required_is_a_403_with_the_approval() {
        let summary =
            json!({"integration_id": "i_1", "action_group": "send", "method": "POST", "path": "/x"});
        let expires = "2026-12-06T11:00:00Z";
        let approval = PendingApproval { approval_id: "apr_123", expires_at: &expires, summary: &summary };
        let (status, headers, body) = parts(approval_required(&approval, "corr-2")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(headers["steward-approval-id"], "apr_123");
        assert_eq!(headers["steward-error"], "approval_required");
        let error = &body["error"];
        assert_eq!(
            (error["type"].as_str(), error["code"].as_str()),
            (Some("approval_required"), Some("approval_required"))
        );
        assert_eq!(error["approval_id"], "apr_123");
        assert_eq!(error["expires_at"], expires);
        assert_eq!(error["summary"], summary);
        assert_eq!(error["correlation_id"], "corr-2");
        assert!(
            error["message"].as_str().unwrap().contains("steward admin approvals approve apr_123 --once")
        );
    }

    #[tokio::test]
    async fn the_log_line_gets_the_reason_and_no_pending_marker_is_left() {
        let response = refusal(ApiError::new(ErrorCode::NoMatchingGroup, "m"), "c");
        assert!(response.extensions().get::<crate::http::error::PendingErrorBody>().is_none());
        let fields = response.extensions().get::<LogFields>().unwrap();
        assert_eq!(fields.reason_code.as_deref(), Some("no_matching_group"));
    }
}
