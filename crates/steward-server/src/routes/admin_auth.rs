//! Admin bearer tokens: `Authorization: Bearer stw_adm_…`, stored as SHA-256 hashes, compared in
//! constant time, refused when unknown, revoked or expired.

use axum::http::{HeaderMap, header};
use steward_crypto::{hash_token, hashes_equal};
use steward_store::{AdminRole, AdminTokenRecord};
use steward_types::{ErrorCode, TokenId};

use crate::http::ApiError;
use crate::state::AppState;

pub const ADMIN_TOKEN_PREFIX: &str = "stw_adm_";

/// The authenticated admin behind a request.
#[derive(Debug, Clone)]
pub struct AdminPrincipal {
    pub token_id: TokenId,
    pub name: String,
    pub role: AdminRole,
    pub tenant_ids: Vec<String>,
}

/// Checks the request's admin token.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<AdminPrincipal, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::new(ErrorCode::AdminAuthMissing, "an admin bearer token is required"))?;
    let invalid =
        || ApiError::new(ErrorCode::AdminAuthInvalid, "the admin token is unknown, revoked or expired");
    let text = value.to_str().map_err(|_| invalid())?;
    let (scheme, token) = text.split_once(' ').ok_or_else(invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::new(ErrorCode::AdminAuthMissing, "use Authorization: Bearer <admin token>"));
    }
    let token = token.trim();
    if !token.starts_with(ADMIN_TOKEN_PREFIX) {
        return Err(invalid());
    }
    let hash = hash_token(token);
    let record: AdminTokenRecord = state.store.admin_token_by_hash(&hash).await?.ok_or_else(invalid)?;
    let now = state.clock.now();
    let usable = hashes_equal(&record.token_hash, &hash)
        && record.revoked_at.is_none()
        && record.expires_at.is_none_or(|expires| expires > now);
    if !usable {
        return Err(invalid());
    }
    Ok(AdminPrincipal {
        token_id: record.token_id,
        name: record.name,
        role: record.role,
        tenant_ids: record.tenant_ids,
    })
}
