//! The forward route: extracts the request (identity, the raw target, the headers, the body) into an
//! [`ExecuteInput`], runs the execute service's steps 2–12 ([`Execution::prepare`]), then sends the
//! call itself with the streaming forwarder and answers with the upstream's status, headers and body
//! as it arrives ([`super::answer`]); every outcome that stops earlier is rendered in the forward
//! error shape ([`super::error`]).

use axum::Extension;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use steward_canon::Method;
use steward_types::ErrorCode;

use super::{answer, body, error, headers, jsonrpc, target};
use crate::http::{ApiError, RequestContext};
use crate::routes::data_plane::openapi::ForwardError;
use crate::routes::data_plane::session_auth::{ExecuteScope, SessionPrincipal, SessionRejection};
use crate::services::AppState;
use crate::services::approvals::approval_summary;
use crate::services::execute::{ClientInfo, ExecuteInput, Execution, Mode, Outcome, RequestBody, Step};

/// The methods execute knows; the route answers 405 `method_not_allowed` (with `allow`) to others.
pub const METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE";

/// Forward mode: makes this very request to the integration's upstream and streams its answer back.
///
/// `{METHOD} /v1/forward/{integration_id}/{host[:port]}/{path…}?{query}` runs the execute pipeline on
/// the request's own method, headers and body, for clients that can only change a base URL (the
/// official SDKs through `steward gateway`). The answer is the upstream's own, streamed as it arrives
/// and scrubbed while streaming; Steward's own refusals use the nested error shape SDKs parse, with
/// `steward-error`, and approval required is 403 `approval_required` with `steward-approval-id`.
#[utoipa::path(
    method(get, head, post, put, patch, delete),
    path = "/v1/forward/{integration_id}/{target}",
    tag = "execute",
    operation_id = "forward",
    security(("mtls" = [], "session" = []), ("mtls" = [], "session" = [], "dpop" = [])),
    params(
        ("integration_id" = String, Path, description = "The integration whose secret the call needs (`i_…`)."),
        ("target" = String, Path, description = "`{host}` or `{host}:{port}`, then `/` and the upstream path, \
            with the query after `?`: the upstream URL is `https://{target}`, taken from the raw request \
            target (never decoded or re-encoded) and canonicalized as an execute URL. Not one path segment: \
            every `/` after the integration id belongs to it."),
    ),
    request_body(content = Option<String>, content_type = "*/*", description = "The upstream request's own body (any \
        bytes, content-length or chunked), up to data_plane.max_forward_body_bytes (32 MiB); the group's \
        body_policy applies."),
    responses(
        (status = 200, description = "The upstream's own answer, whatever its status (4xx and 5xx pass \
            through unchanged, without steward-error): its status, the group's response headers (hop-by-hop \
            and set-cookie removed) and its body streamed as it arrives (SSE and NDJSON event by event), \
            with the secret replaced by [REDACTED]. A stream cut by a limit or an upstream failure ends \
            with the connection closed."),
        (status = 403, body = ForwardError, description = "approval_required (with \
            steward-approval-id, error.approval_id, error.expires_at, error.summary), and every template, \
            policy and SSRF refusal", headers(
            ("steward-error" = String, description = "The refusal's code, on every answer of Steward's own."),
            ("steward-approval-id" = String, description = "apr_…, on approval_required."))),
        (status = 400, body = ForwardError, description = "request_url_*, request_percent_encoding_invalid, request_header_*, path_param_invalid, …"),
        (status = 401, body = ForwardError, description = "mtls_*, session_*, dpop_* (with WWW-Authenticate)"),
        (status = 404, body = ForwardError, description = "integration_not_found, template_not_found"),
        (status = 405, body = ForwardError, description = "method_not_allowed (with allow)"),
        (status = 413, body = ForwardError, description = "request_body_too_large"),
        (status = 429, body = ForwardError, description = "policy_rate_limited, with retry-after"),
        (status = 502, body = ForwardError, description = "dns_resolution_*, upstream_network_error, redirect_denied, upstream_encoding_not_supported, …"),
        (status = 503, body = ForwardError, description = "integration_secret_unavailable, audit_write_failed, storage_unavailable, coordination_unavailable"),
        (status = 504, body = ForwardError, description = "upstream_timeout (no response head within egress.total_timeout_ms)"),
    ))]
pub async fn forward(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    request: Request,
) -> Response {
    let correlation_id = context.correlation_id.clone();
    let (mut parts, request_body) = request.into_parts();
    // 1. Identity, session and DPoP (the proof's htu is this URL without its query). The body is
    // read only after, so an unidentified client cannot make Steward buffer it.
    let principal = match SessionPrincipal::<ExecuteScope>::from_request_parts(&mut parts, &state).await {
        Ok(session) => session.mtls,
        Err(SessionRejection { error, principal: None }) => {
            crate::services::execute::count_unidentified_refusal(&error);
            return error::refusal(error, &correlation_id);
        }
        Err(SessionRejection { error, principal: Some(principal) }) => {
            let outcome = Execution::new(&state, &context, &principal, Mode::Forward).refuse(error).await;
            return crate::routes::data_plane::with_log_fields(
                render(outcome, &correlation_id),
                &principal,
                None,
            );
        }
    };
    let mut execution = Execution::new(&state, &context, &principal, Mode::Forward);
    let input = match extract(&state, &parts, request_body).await {
        Ok((input, call)) => {
            if let Some(call) = call {
                execution.add_metadata(jsonrpc::METHOD_KEY, call.method.into());
                if let Some(tool) = call.tool_name {
                    execution.add_metadata(jsonrpc::TOOL_NAME_KEY, tool.into());
                }
            }
            input
        }
        Err(refusal) => {
            let outcome = execution.refuse(refusal).await;
            return crate::routes::data_plane::with_log_fields(
                render(outcome, &correlation_id),
                &principal,
                None,
            );
        }
    };
    let step = execution.prepare(input).await;
    let integration = execution.integration_id().map(str::to_owned);
    let response = match step {
        Step::Done(outcome) => render(outcome, &correlation_id),
        Step::Ready(prepared) => answer::send(&state, execution, *prepared, &correlation_id).await,
    };
    crate::routes::data_plane::with_log_fields(response, &principal, integration)
}

/// Step 2 for forward mode: the raw target, the method, the headers, the body (bounded), and the
/// JSON-RPC call the body holds, if any.
async fn extract(
    state: &AppState,
    parts: &axum::http::request::Parts,
    request_body: Body,
) -> Result<(ExecuteInput, Option<jsonrpc::JsonRpcCall>), ApiError> {
    let target = target::parse(&parts.uri)?;
    let method =
        Method::parse(parts.method.as_str()).ok_or_else(|| method_not_allowed(parts.method.as_str()))?;
    let limit = state.config.data_plane.max_forward_body_bytes;
    let bytes = body::read(&parts.headers, request_body, limit).await?;
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let call = jsonrpc::sniff(content_type, &bytes);
    let input = ExecuteInput {
        integration_id: target.integration_id,
        method,
        url: target.url,
        headers: headers::forwardable(&parts.headers),
        body: if bytes.is_empty() { RequestBody::Empty } else { RequestBody::Bytes(bytes) },
        client: ClientInfo::default(),
        // Forward mode never stores or replays: an `idempotency-key` header is an ordinary header.
        idempotency_key: None,
        mode: Mode::Forward,
    };
    Ok((input, call))
}

/// 405 `method_not_allowed` with `allow`.
pub fn method_not_allowed(method: &str) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("method {method} cannot be forwarded; allowed: {METHODS}"),
    )
    .with_header(header::ALLOW, HeaderValue::from_static(METHODS))
}

/// The router's answer to a method it does not route (before identity, as on every route).
pub async fn method_fallback(Extension(context): Extension<RequestContext>, request: Request) -> Response {
    error::refusal(method_not_allowed(request.method().as_str()), &context.correlation_id)
}

/// An outcome that stopped before anything was sent, in the forward shape.
pub(super) fn render(outcome: Outcome, correlation_id: &str) -> Response {
    match outcome {
        Outcome::ApprovalRequired { approval, .. } => {
            let summary = approval_summary(&approval);
            let pending = error::PendingApproval {
                approval_id: approval.approval_id.as_str(),
                expires_at: &approval.expires_at,
                summary: &summary,
            };
            error::approval_required(&pending, correlation_id)
        }
        other => {
            let refusal = other
                .error()
                .unwrap_or_else(|| ApiError::internal("forward mode got an outcome it never asks for"));
            error::refusal(refusal, correlation_id)
        }
    }
}
