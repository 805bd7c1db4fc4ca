//! The one error type at the HTTP edge. Handlers return [`ApiError`]; the request-context
//! middleware renders it as `{"error","message","correlation_id"}` with the status of its code, so
//! every error body in Steward has the same shape and carries the request's correlation id.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use steward_coord::CoordError;
use steward_store::StoreError;
use steward_store::audit::AuditError;
use steward_types::ErrorCode;

/// An error answer: a stable code, a message a person can act on (never a secret), and any extra
/// headers the code needs (`www-authenticate`, `retry-after`, `allow`).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), headers: Vec::new() }
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// A bug: the details go to the log with the request id, never to the client.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(detail = %detail, "Internal error while handling a request.");
        Self::new(
            ErrorCode::InternalError,
            "internal error; the request id in the server log has the details",
        )
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// The marker the middleware turns into the JSON body (it knows the correlation id; we do not).
#[derive(Debug, Clone)]
pub(crate) struct PendingErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status().into_response();
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response.extensions_mut().insert(PendingErrorBody { code: self.code, message: self.message });
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "Store unavailable.");
                metrics::counter!("steward_store_errors_total", "kind" => "unavailable").increment(1);
                ApiError::new(ErrorCode::StorageUnavailable, "the store is unavailable; retry later")
            }
            other => {
                metrics::counter!("steward_store_errors_total", "kind" => "other").increment(1);
                ApiError::internal(other)
            }
        }
    }
}

impl From<CoordError> for ApiError {
    fn from(error: CoordError) -> Self {
        tracing::warn!(detail = %error, "Coordination service unavailable.");
        metrics::counter!("steward_redis_errors_total").increment(1);
        ApiError::new(
            ErrorCode::CoordinationUnavailable,
            "the coordination service (Redis) is unavailable; retry later",
        )
    }
}

impl From<AuditError> for ApiError {
    fn from(error: AuditError) -> Self {
        tracing::error!(detail = %error, "Audit write failed; the request was refused.");
        ApiError::new(ErrorCode::AuditWriteFailed, "the audit record could not be written; nothing was done")
    }
}
