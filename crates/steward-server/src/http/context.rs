//! The request-context middleware, outermost on both listeners: correlation and request ids,
//! security headers, the error body, one JSON log line and the request metrics per request.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use steward_types::{ErrorCode, RequestId};

use super::error::PendingErrorBody;

pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// Per-request identifiers, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: RequestId,
    pub correlation_id: String,
}

/// Ids a handler learned (who the caller is, what it touched), picked up by the request log line.
/// Handlers insert it into the *response* extensions.
#[derive(Debug, Clone, Default)]
pub struct LogFields {
    pub tenant_id: Option<String>,
    pub workload_id: Option<String>,
    pub integration_id: Option<String>,
    pub reason_code: Option<String>,
}

/// Which listener a request came in on, for logs and metrics.
#[derive(Debug, Clone, Copy)]
pub struct ListenerName(pub &'static str);

/// The client's correlation id when it is 1–128 visible ASCII characters, else a fresh UUIDv4.
pub fn correlation_id_from(headers: &HeaderMap) -> String {
    headers
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=128).contains(&v.len()) && v.bytes().all(|b| (0x21..=0x7e).contains(&b)))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

pub async fn request_context(listener: ListenerName, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let context = RequestContext {
        request_id: RequestId::generate(),
        correlation_id: correlation_id_from(request.headers()),
    };
    let method = request.method().clone();
    // Header values are logged only for these three (never authorization, cookies, proofs…).
    let [user_agent, content_type, content_length] =
        [header::USER_AGENT, header::CONTENT_TYPE, header::CONTENT_LENGTH].map(|name| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(200).collect::<String>())
        });
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    request.extensions_mut().insert(context.clone());

    let mut response = next.run(request).await;

    // The router answers an unknown method on a known path with a bare 405 (and `allow`); give it
    // the standard error body — unless a route already rendered its own (forward mode's nested
    // shape, marked by `steward-error`).
    if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && response.extensions().get::<PendingErrorBody>().is_none()
        && !response.headers().contains_key("steward-error")
    {
        let allow =
            response.headers().get(header::ALLOW).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        response.extensions_mut().insert(PendingErrorBody {
            code: ErrorCode::MethodNotAllowed,
            message: format!("method {method} is not allowed here; allowed: {allow}"),
        });
    }

    let reason = render_error_body(&mut response, &context.correlation_id);
    set_standard_headers(response.headers_mut(), &context.correlation_id);

    let status = response.status().as_u16();
    let latency = started.elapsed();
    let fields = response.extensions().get::<LogFields>().cloned().unwrap_or_default();
    let reason_code = reason.or(fields.reason_code);
    tracing::info!(
        event = "request",
        listener = listener.0,
        request_id = %context.request_id,
        correlation_id = %context.correlation_id,
        method = %method,
        route = %route,
        status,
        latency_ms = latency.as_secs_f64() * 1000.0,
        reason_code = reason_code.as_deref(),
        tenant_id = fields.tenant_id.as_deref(),
        workload_id = fields.workload_id.as_deref(),
        integration_id = fields.integration_id.as_deref(),
        user_agent = user_agent.as_deref(),
        content_type = content_type.as_deref(),
        content_length = content_length.as_deref(),
        "Request handled."
    );
    let labels = [("listener", listener.0.to_owned()), ("route", route), ("status", status.to_string())];
    metrics::counter!("steward_http_requests_total", &labels).increment(1);
    metrics::histogram!("steward_http_request_duration_seconds", &labels).record(latency.as_secs_f64());
    response
}

/// Replaces the body of an error response with the standard JSON. Returns the error code.
fn render_error_body(response: &mut Response, correlation_id: &str) -> Option<String> {
    let pending = response.extensions_mut().remove::<PendingErrorBody>()?;
    let body = serde_json::json!({
        "error": pending.code.as_str(),
        "message": pending.message,
        "correlation_id": correlation_id,
    });
    *response.body_mut() = Body::from(body.to_string());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.remove(header::CONTENT_LENGTH);
    Some(pending.code.as_str().to_owned())
}

fn set_standard_headers(headers: &mut HeaderMap, correlation_id: &str) {
    if let Ok(value) = HeaderValue::from_str(correlation_id) {
        headers.insert(HeaderName::from_static(CORRELATION_HEADER), value);
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

/// The fallback for unknown paths.
pub async fn route_not_found(request: Request<Body>) -> super::error::ApiError {
    super::error::ApiError::new(
        ErrorCode::RouteNotFound,
        format!(
            "no route for {}; this listener's routes are described by GET /v1/openapi.json (docs/api.md, docs/admin.md)",
            request.uri().path()
        ),
    )
}
