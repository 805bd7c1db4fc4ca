//! The data-plane identity extractor: the checks themselves are
//! [`crate::services::identity::principal::identify`].

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::http::ApiError;
use crate::listener::ConnectionInfo;
use crate::services::AppState;
use crate::services::identity::{MtlsPrincipal, identify};

impl FromRequestParts<AppState> for MtlsPrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let connection = parts.extensions.get::<Arc<ConnectionInfo>>().cloned();
        let result = identify(state, connection.as_deref()).await;
        if let Err(error) = &result {
            metrics::counter!("steward_mtls_rejections_total", "reason" => error.code.as_str()).increment(1);
            tracing::info!(reason_code = error.code.as_str(), detail = %error.message, "mTLS identity refused.");
        }
        result
    }
}
