//! `POST /v1/enroll` and `POST /v1/enroll/renew`: the handlers; the checks, the issue and the audit
//! are [`crate::services::identity::enrollment`].

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use crate::http::{ApiError, DeferredBody, LogFields, RequestContext};
use crate::listener::ConnectionInfo;
use crate::routes::admin::ErrorBody;
use crate::services::AppState;
use crate::services::identity::MtlsPrincipal;
use crate::services::identity::enrollment::{self, EnrollRequest, EnrollResponse, RenewRequest};

/// Enrolls a workload: a one-time enrollment token and a CSR give a client certificate. The private
/// key never leaves the workload. A bad CSR never burns the token.
#[utoipa::path(post, path = "/v1/enroll", tag = "enrollment", operation_id = "enroll", security(()),
    request_body = EnrollRequest,
    responses(
        (status = 201, body = EnrollResponse),
        (status = 400, body = ErrorBody, description = "request_body_*, requested_ttl_exceeds_max, csr_invalid, csr_key_unsupported"),
        (status = 401, body = ErrorBody, description = "enrollment_token_invalid, enrollment_token_expired, workload_disabled"),
        (status = 403, body = ErrorBody, description = "workload_ip_denied"),
        (status = 409, body = ErrorBody, description = "enrollment_token_used"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn enroll(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    connection: Option<Extension<Arc<ConnectionInfo>>>,
    body: DeferredBody,
) -> Response {
    let connection = connection.map(|Extension(c)| c);
    let result = enrollment::enroll(&state, &context, connection.as_deref(), body).await;
    respond("enroll", result)
}

/// Renews the calling workload's certificate (mTLS with the current, unexpired certificate). A chain
/// of renewals ends `enrollment.max_identity_lifetime_days` after the first enrollment.
#[utoipa::path(post, path = "/v1/enroll/renew", tag = "enrollment", operation_id = "renew", security(("mtls" = [])),
    request_body = RenewRequest,
    responses(
        (status = 201, body = EnrollResponse),
        (status = 400, body = ErrorBody, description = "request_body_*, requested_ttl_exceeds_max, csr_invalid, csr_key_unsupported"),
        (status = 401, body = ErrorBody, description = "mtls_required, workload_disabled, certificate_revoked, certificate_expired"),
        (status = 403, body = ErrorBody, description = "workload_ip_denied, identity_lifetime_exceeded"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn renew(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    principal: Result<MtlsPrincipal, ApiError>,
    body: DeferredBody,
) -> Response {
    let result = match principal {
        Ok(principal) => enrollment::renew(&state, &context, principal, body).await,
        Err(error) => Err(error),
    };
    respond("renew", result)
}

/// Counts the outcome and renders the answer (with the ids for the request log line).
fn respond(kind: &'static str, result: Result<(EnrollResponse, LogFields), ApiError>) -> Response {
    match result {
        Ok((body, fields)) => {
            metrics::counter!("steward_enrollments_total", "kind" => kind, "outcome" => "issued")
                .increment(1);
            let mut response = (StatusCode::CREATED, Json(body)).into_response();
            response.extensions_mut().insert(fields);
            response
        }
        Err(error) => {
            metrics::counter!("steward_enrollments_total", "kind" => kind, "outcome" => error.code.as_str())
                .increment(1);
            error.into_response()
        }
    }
}
