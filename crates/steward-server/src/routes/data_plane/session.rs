//! `POST /v1/session` (`spec/data-plane.md`): the handler; the checks, the write and the audit are
//! [`crate::services::identity::session::issue`].

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::MtlsPrincipal;
use crate::http::{ApiError, DeferredBody, LogFields, RequestContext};
use crate::routes::admin::ErrorBody;
use crate::services::AppState;
use crate::services::identity::session::{SessionRequest, SessionResponse, audit_refusal, issue};

/// Opens a session for the mTLS workload. A `DPoP` proof (htu `<public_base_url>/v1/session`, no
/// `ath`) is optional unless the workload or its tenant requires DPoP; a valid one binds the session
/// to its key, an invalid one is refused even when DPoP is not required.
#[utoipa::path(post, path = "/v1/session", tag = "sessions", operation_id = "create_session",
    security(("mtls" = []), ("mtls" = [], "dpop" = [])),
    request_body(content = Option<SessionRequest>, description = "Optional: an empty body means {}."),
    responses(
        (status = 200, body = SessionResponse),
        (status = 400, body = ErrorBody, description = "request_body_*, session_scope_invalid"),
        (status = 401, body = ErrorBody, description = "mtls_required, workload_disabled, certificate_revoked, certificate_expired, dpop_missing, dpop_* (with WWW-Authenticate: DPoP)"),
        (status = 403, body = ErrorBody, description = "workload_ip_denied"),
        (status = 429, body = ErrorBody, description = "session_rate_limited (session.max_per_minute), with retry-after",
            headers(("retry-after" = u64, description = "Seconds until a session may be opened again."))),
        (status = 503, body = ErrorBody),
    ))]
pub async fn create_session(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    principal: Result<MtlsPrincipal, ApiError>,
    headers: HeaderMap,
    body: DeferredBody,
) -> Response {
    // Not identified: logged and counted (by the extractor), never audited.
    let principal = match principal {
        Ok(principal) => principal,
        Err(error) => return error.into_response(),
    };
    let fields = LogFields {
        tenant_id: Some(principal.tenant_id.to_string()),
        workload_id: Some(principal.workload_id.to_string()),
        ..LogFields::default()
    };
    let mut response = match issue(&state, &context, &principal, &headers, body).await {
        Ok(session) => (axum::http::StatusCode::OK, Json(session)).into_response(),
        Err(error) => {
            metrics::counter!("steward_session_failures_total", "reason" => error.code.as_str()).increment(1);
            tracing::info!(reason_code = error.code.as_str(), workload_id = %principal.workload_id,
                detail = %error.message, "Session refused.");
            match audit_refusal(&state, &context, &principal, &headers, &error).await {
                Ok(()) => error.into_response(),
                Err(audit_error) => audit_error.into_response(),
            }
        }
    };
    response.extensions_mut().insert(fields);
    response
}
