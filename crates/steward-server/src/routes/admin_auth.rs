//! The admin-plane identity extractor: authentication itself is
//! [`crate::services::identity::admin::authenticate`].

use crate::http::ApiError;
use crate::services::AppState;
use crate::services::identity::admin::{AdminPrincipal, authenticate};

/// Extracts and authenticates the admin behind a request (401 `admin_auth_missing` /
/// `admin_auth_invalid`). Role and tenant checks are explicit calls in each handler, in the spec's
/// order, before the body is parsed.
#[derive(Debug, Clone)]
pub struct Admin(pub AdminPrincipal);

impl axum::extract::FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        authenticate(state, &parts.headers).await.map(Admin)
    }
}
