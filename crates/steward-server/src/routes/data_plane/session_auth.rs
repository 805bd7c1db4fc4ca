//! The session extractor of the data plane: the mTLS identity first ([`MtlsPrincipal`]), then the
//! session checks of [`crate::services::identity::session::check`]. The route's required scope is a
//! type parameter: `SessionPrincipal<ExecuteScope>`, `SessionPrincipal<ManifestReadScope>`.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use steward_store::SessionRecord;
use steward_types::ErrorCode;

use super::MtlsPrincipal;
use crate::http::ApiError;
use crate::services::AppState;
use crate::services::identity::session::{self, check};

/// A path parameter that could not be decoded (invalid percent-encoding or UTF-8): 400
/// `path_param_invalid` in the standard error body, after the identity checks.
pub fn path_param(
    parameter: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<String, ApiError> {
    parameter.map(|axum::extract::Path(value)| value).map_err(|rejection| {
        ApiError::new(ErrorCode::PathParamInvalid, format!("the path is invalid: {}", rejection.body_text()))
    })
}

/// The scope a route requires, as a type.
pub trait RequiredScope: Send + Sync + 'static {
    const SCOPE: &'static str;
}

/// `execute`.
#[derive(Debug, Clone, Copy)]
pub struct ExecuteScope;

impl RequiredScope for ExecuteScope {
    const SCOPE: &'static str = session::SCOPE_EXECUTE;
}

/// `manifest.read`.
#[derive(Debug, Clone, Copy)]
pub struct ManifestReadScope;

impl RequiredScope for ManifestReadScope {
    const SCOPE: &'static str = session::SCOPE_MANIFEST_READ;
}

/// A request with a valid session for the mTLS workload, holding scope `S`, with its DPoP proof
/// (when the session is bound or DPoP is required) verified and its jti recorded.
#[derive(Debug, Clone)]
pub struct SessionPrincipal<S> {
    pub mtls: MtlsPrincipal,
    pub session: SessionRecord,
    /// Whether the workload or its tenant requires DPoP (read for this request).
    pub dpop_required: bool,
    scope: PhantomData<fn() -> S>,
}

/// A refused session check, with the mTLS principal when the workload was identified (so the route
/// can audit the refusal: failures before identification are never audited).
#[derive(Debug)]
pub struct SessionRejection {
    pub error: ApiError,
    pub principal: Option<MtlsPrincipal>,
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        self.error.into_response()
    }
}

impl<S: RequiredScope> FromRequestParts<AppState> for SessionPrincipal<S> {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, SessionRejection> {
        let principal = MtlsPrincipal::from_request_parts(parts, state)
            .await
            .map_err(|error| SessionRejection { error, principal: None })?;
        match check(state, &parts.headers, parts.method.as_str(), parts.uri.path(), &principal, S::SCOPE)
            .await
        {
            Ok((session, dpop_required)) => {
                Ok(SessionPrincipal { mtls: principal, session, dpop_required, scope: PhantomData })
            }
            Err(error) => {
                metrics::counter!("steward_session_failures_total", "reason" => error.code.as_str())
                    .increment(1);
                tracing::info!(reason_code = error.code.as_str(), workload_id = %principal.workload_id,
                    detail = %error.message, "Session check refused.");
                Err(SessionRejection { error, principal: Some(principal) })
            }
        }
    }
}
