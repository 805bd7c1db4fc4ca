//! `POST /v1/execute` (`spec/data-plane.md`, `spec/pipeline.md`): the envelope surface of the execute
//! service. It extracts (identity, the JSON envelope → [`ExecuteInput`]), calls
//! [`Execution::run`], and renders the [`Outcome`]: 200 with the upstream answer in base64, 202 for an
//! approval, the stored answer with `idempotent-replayed: true`, or the error body.
//!
//! Failures before the workload is identified are never audited (and never reach the service);
//! every later refusal goes through the service, which audits it when it is a decision.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use steward_canon::ExecuteRequest;
use steward_types::ErrorCode;
use utoipa::ToSchema;

use super::session_auth::{ExecuteScope, SessionPrincipal, SessionRejection};
use crate::http::{ApiError, DeferredBody, RequestContext};
use crate::routes::admin::ErrorBody;
use crate::services::AppState;
use crate::services::approvals::approval_summary;
use crate::services::execute::idempotency::StoredResponse;
use crate::services::execute::{ClientInfo, ExecuteInput, Execution, Mode, Outcome, RequestBody};

/// The response header of a replayed result.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The execute body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteBody {
    /// The integration whose secret the call needs (`i_…`).
    pub integration_id: String,
    #[schema(value_type = super::openapi::ExecuteRequestSchema)]
    pub request: ExecuteRequest,
    #[serde(default)]
    pub client_context: Option<ClientContext>,
}

/// `client_context`: every field optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientContext {
    /// The workload's own request id (kept in the audit event).
    #[serde(default)]
    pub request_id: Option<String>,
    /// `^[A-Za-z0-9._:-]{1,128}$`: a repeated request with the same key and body gets the stored
    /// answer (header `idempotent-replayed: true`) instead of a second call.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Free text: what made the call (kept in the audit event).
    #[serde(default)]
    pub source: Option<String>,
}

/// The route's body limit: `ceil(egress.max_request_body_bytes × 4 / 3) + 64 KiB`, so the largest
/// allowed decoded body fits in base64.
pub fn body_limit(max_request_body_bytes: u64) -> usize {
    let limit = max_request_body_bytes.saturating_mul(4).div_ceil(3).saturating_add(64 * 1024);
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// Makes a protected call: the template and policy check it, the SSRF guard checks where it goes,
/// the secret is injected, the answer scrubbed. 200 when the call was made (whatever the provider
/// answered), 202 when a person must approve it first, an error otherwise.
#[utoipa::path(post, path = "/v1/execute", tag = "execute", operation_id = "execute",
    security(("mtls" = [], "session" = []), ("mtls" = [], "session" = [], "dpop" = [])),
    request_body = ExecuteBody,
    responses(
        (status = 200, body = super::openapi::ExecutedResponse, headers(
            ("idempotent-replayed" = String, description = "`true` when this is the stored answer of an earlier request with the same idempotency key."))),
        (status = 202, body = super::openapi::ApprovalRequiredResponse),
        (status = 400, body = ErrorBody, description = "request_body_*, request_url_*, request_header_*, request_body_base64_invalid, idempotency_key_invalid, …"),
        (status = 401, body = ErrorBody, description = "mtls_*, session_*, dpop_* (with WWW-Authenticate)"),
        (status = 403, body = ErrorBody, description = "template, policy and SSRF refusals: request_host_not_allowed, no_matching_group, policy_default_deny, resolved_ip_denied_*, …"),
        (status = 404, body = ErrorBody, description = "integration_not_found, template_not_found"),
        (status = 409, body = ErrorBody, description = "idempotency_key_conflict, idempotency_request_in_progress"),
        (status = 413, body = ErrorBody, description = "request_body_too_large"),
        (status = 415, body = ErrorBody, description = "content_type_invalid"),
        (status = 429, body = ErrorBody, description = "policy_rate_limited, with retry-after",
            headers(("retry-after" = u64, description = "Seconds to wait."))),
        (status = 502, body = ErrorBody, description = "dns_resolution_*, upstream_network_error, redirect_denied, upstream_response_too_large, …"),
        (status = 503, body = ErrorBody, description = "integration_secret_unavailable, audit_write_failed, storage_unavailable, coordination_unavailable"),
        (status = 504, body = ErrorBody, description = "upstream_timeout"),
    ))]
pub async fn execute(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    session: Result<SessionPrincipal<ExecuteScope>, SessionRejection>,
    body: DeferredBody,
) -> Response {
    let (principal, refused) = match session {
        Ok(session) => (session.mtls, None),
        Err(SessionRejection { error, principal: Some(principal) }) => (principal, Some(error)),
        Err(SessionRejection { error, principal: None }) => {
            crate::services::execute::count_unidentified_refusal(&error);
            return error.into_response();
        }
    };
    let mut execution = Execution::new(&state, &context, &principal, Mode::Execute);
    let outcome = match refused {
        Some(error) => execution.refuse(error).await,
        // 2. Body.
        None => match body.json::<ExecuteBody>() {
            Ok(body) => execution.run(body.into_input()).await,
            Err(error) => execution.refuse(error).await,
        },
    };
    let integration_id = execution.integration_id().map(str::to_owned);
    super::with_log_fields(render(outcome, &context.correlation_id), &principal, integration_id)
}

impl ExecuteBody {
    /// The service's input: the envelope's fields as plain values.
    fn into_input(self) -> ExecuteInput {
        let ExecuteRequest { method, url, headers, body_base64 } = self.request;
        let context = self.client_context.unwrap_or_default();
        ExecuteInput {
            integration_id: self.integration_id,
            method,
            url,
            headers,
            body: body_base64.map_or(RequestBody::Empty, RequestBody::Base64),
            client: ClientInfo { request_id: context.request_id, source: context.source },
            idempotency_key: context.idempotency_key,
            mode: Mode::Execute,
        }
    }
}

/// The envelope's rendering of an outcome.
fn render(outcome: Outcome, correlation_id: &str) -> Response {
    match outcome {
        Outcome::Executed(executed) => Json(executed.envelope_json(correlation_id)).into_response(),
        Outcome::Replayed(stored) => replay(&stored, correlation_id),
        Outcome::ApprovalRequired { approval, .. } => {
            let body = json!({
                "status": "approval_required",
                "approval_id": approval.approval_id.as_str(),
                "expires_at": approval.expires_at,
                "correlation_id": correlation_id,
                "summary": approval_summary(&approval),
            });
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        refusal => match refusal.error() {
            Some(error) => error.into_response(),
            None => ApiError::internal("an execute outcome without an answer").into_response(),
        },
    }
}

/// The answer to a replay: the stored status and body with the *current* correlation id, and
/// `idempotent-replayed: true`.
fn replay(stored: &StoredResponse, correlation_id: &str) -> Response {
    let replayed = (HeaderName::from_static(REPLAYED_HEADER), HeaderValue::from_static("true"));
    if let Some(error) = &stored.error {
        let code = ErrorCode::from_code(&error.code).unwrap_or(ErrorCode::InternalError);
        return ApiError::new(code, error.message.clone())
            .with_header(replayed.0, replayed.1)
            .into_response();
    }
    let mut body = stored.body.clone().unwrap_or_else(|| json!({}));
    if let Some(object) = body.as_object_mut() {
        object.insert("correlation_id".into(), correlation_id.into());
    }
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(replayed.0, replayed.1);
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::body::to_bytes;
    use axum::http::header;
    use serde_json::Value;
    use steward_store::governance::{ApprovalRecord, StoredApprovalState};
    use steward_types::{ApprovalId, Timestamp};

    use super::*;
    use crate::http::error::PendingErrorBody;
    use crate::services::execute::idempotency::StoredError;

    /// The error code the edge middleware will render into the body.
    fn code(response: &Response) -> ErrorCode {
        response.extensions().get::<PendingErrorBody>().unwrap().code
    }

    async fn body(response: Response) -> Value {
        serde_json::from_slice(&to_bytes(response.into_body(), 1 << 20).await.unwrap()).unwrap()
    }

    fn approval() -> ApprovalRecord {
        let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
        ApprovalRecord {
            approval_id: ApprovalId::parse("apr_unit").unwrap(),
            tenant_id: steward_types::TenantId::parse("t_unit").unwrap(),
            workload_id: steward_types::WorkloadId::parse("w_unit").unwrap(),
            integration_id: steward_types::IntegrationId::parse("i_unit").unwrap(),
            digest: "d".into(),
            descriptor: json!({"action_group": "send", "risk_tier": "high", "method": "POST",
                "canonical_url": "https://api.example.com/v1/send?x=1"}),
            preview: None,
            proposed_rule: json!({}),
            state: StoredApprovalState::Pending,
            mode: None,
            policy_id: None,
            reason: None,
            decided_by: None,
            created_at: now,
            expires_at: now.plus_seconds(300),
            decided_at: None,
            consumed_at: None,
        }
    }

    #[tokio::test]
    async fn an_approval_is_202_with_the_summary_and_the_current_correlation_id() {
        let response =
            render(Outcome::ApprovalRequired { approval: Box::new(approval()), created: true }, "corr-1");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body = body(response).await;
        assert_eq!(body["status"], "approval_required");
        assert_eq!(body["approval_id"], "apr_unit");
        assert_eq!(body["correlation_id"], "corr-1");
        assert_eq!(body["summary"]["destination_host"], "api.example.com");
        assert_eq!(body["summary"]["path"], "/v1/send");
    }

    #[tokio::test]
    async fn throttled_is_429_with_retry_after() {
        let response = render(Outcome::Throttled { retry_after_seconds: 7 }, "corr-1");
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        assert_eq!(code(&response), ErrorCode::PolicyRateLimited);
    }

    #[tokio::test]
    async fn a_replay_keeps_the_stored_status_and_takes_the_current_correlation_id() {
        let stored = StoredResponse {
            status: 200,
            correlation_id: "corr-original".into(),
            body: Some(json!({"status": "executed", "correlation_id": "corr-original"})),
            error: None,
        };
        let response = render(Outcome::Replayed(stored), "corr-now");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[REPLAYED_HEADER], "true");
        assert_eq!(body(response).await["correlation_id"], "corr-now");

        let failed = StoredResponse {
            status: 504,
            correlation_id: "corr-original".into(),
            body: None,
            error: Some(StoredError { code: "upstream_timeout".into(), message: "slow".into() }),
        };
        let response = render(Outcome::Replayed(failed), "corr-now");
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(response.headers()[REPLAYED_HEADER], "true");
        assert_eq!(code(&response), ErrorCode::UpstreamTimeout);
    }

    #[tokio::test]
    async fn refusals_render_their_own_status_and_code() {
        let denied = ApiError::new(ErrorCode::PolicyDefaultDeny, "no rule allows this");
        let response = render(Outcome::Denied(denied), "corr-1");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(code(&response), ErrorCode::PolicyDefaultDeny);
        let refused = ApiError::new(ErrorCode::IntegrationNotFound, "no such integration");
        let response = render(Outcome::Refused(refused), "corr-1");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(code(&response), ErrorCode::IntegrationNotFound);
    }
}
