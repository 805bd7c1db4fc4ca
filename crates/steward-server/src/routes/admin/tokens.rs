//! Admin tokens (owner only): `POST /v1/admin/tokens` (the token is shown once),
//! `GET /v1/admin/tokens` (never a token or hash), `DELETE /v1/admin/tokens/{id}` (the last active
//! owner token cannot be revoked).

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use steward_crypto::generate_token;
use steward_store::{AdminRole, AdminTokenRecord, RevokeAdminTokenOutcome};
use steward_types::{ErrorCode, TenantId, TokenId};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::identity_common::{rfc3339, validate_name};
use super::{Admin, record_admin_action, roles};
use crate::http::{ApiError, DeferredBody, RequestContext};
use crate::routes::ADMIN_TOKEN_PREFIX;
use crate::services::AppState;

/// Bounds of `ttl_seconds`: one minute to ten years.
const MIN_TTL_SECONDS: u64 = 60;
const MAX_TTL_SECONDS: u64 = 3650 * 86_400;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    pub name: String,
    /// owner, admin, operator or auditor.
    pub role: String,
    /// The tenants the token covers: empty for owners (who cover all), at least one otherwise.
    pub tenant_ids: Vec<String>,
    /// Lifetime in seconds (60 to 315360000); no expiry when absent.
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub token_id: String,
    /// The bearer token itself: shown only in this response, never again.
    pub token: String,
    pub name: String,
    pub role: String,
    pub tenant_ids: Vec<String>,
    pub expires_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub token_id: String,
    pub name: String,
    pub role: String,
    pub tenant_ids: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenView>,
}

impl From<&AdminTokenRecord> for TokenView {
    fn from(t: &AdminTokenRecord) -> Self {
        TokenView {
            token_id: t.token_id.to_string(),
            name: t.name.clone(),
            role: t.role.as_str().to_owned(),
            tenant_ids: t.tenant_ids.iter().map(ToString::to_string).collect(),
            created_at: rfc3339(t.created_at),
            expires_at: t.expires_at.map(rfc3339),
            revoked_at: t.revoked_at.map(rfc3339),
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_token, list_tokens)).routes(routes!(revoke_token))
}

/// Creates an admin token; the response is the only place the token ever appears.
#[utoipa::path(post, path = "/v1/admin/tokens", tag = "tokens", request_body = CreateTokenRequest,
    responses((status = 201, body = CreatedToken), (status = 400, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody)))]
async fn create_token(
    Admin(principal): Admin,
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    body: DeferredBody,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    principal.require(roles::OWNER)?;
    let request: CreateTokenRequest = body.json()?;
    let name = validate_name("name", &request.name)?;
    let role = AdminRole::parse(&request.role).ok_or_else(|| {
        ApiError::new(ErrorCode::ValidationFailed, "role must be one of owner, admin, operator, auditor")
    })?;
    if let Some(ttl) = request.ttl_seconds
        && !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl)
    {
        return Err(ApiError::new(
            ErrorCode::RequestBodySchemaInvalid,
            format!("ttl_seconds: must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS}"),
        ));
    }
    let tenant_ids = check_tenants(&state, role, &request.tenant_ids).await?;

    let now = state.clock.now();
    let expires_at = request.ttl_seconds.map(|ttl| now.plus_seconds(i64::try_from(ttl).unwrap_or(i64::MAX)));
    let token = generate_token(ADMIN_TOKEN_PREFIX);
    let record = AdminTokenRecord {
        token_id: TokenId::generate(),
        name,
        role,
        tenant_ids,
        token_hash: token.hash(),
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    state.store.insert_admin_token(&record).await?;
    let view = TokenView::from(&record);
    record_admin_action(
        &state,
        &context,
        &principal,
        "admin_token.create",
        None,
        serde_json::json!({"token_id": view.token_id}),
        Some(serde_json::json!({"name": view.name, "role": view.role, "tenant_ids": view.tenant_ids,
            "expires_at": view.expires_at})),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token_id: view.token_id,
            token: token.expose().to_owned(),
            name: view.name,
            role: view.role,
            tenant_ids: view.tenant_ids,
            expires_at: view.expires_at,
        }),
    ))
}

/// Owners cover every tenant (an empty list); every other role needs at least one existing tenant.
async fn check_tenants(
    state: &AppState,
    role: AdminRole,
    requested: &[String],
) -> Result<Vec<TenantId>, ApiError> {
    if role == AdminRole::Owner {
        if !requested.is_empty() {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "tenant_ids must be empty for an owner token (owners cover every tenant)",
            ));
        }
        return Ok(Vec::new());
    }
    if requested.is_empty() {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            format!("tenant_ids must name at least one tenant for a {} token", role.as_str()),
        ));
    }
    let mut unique = BTreeSet::new();
    let mut tenant_ids = Vec::new();
    for (i, raw) in requested.iter().enumerate() {
        let missing = || {
            ApiError::new(ErrorCode::ValidationFailed, format!("tenant_ids[{i}]: no tenant {raw:?} exists"))
        };
        // A malformed id is reported exactly like an unknown one.
        let tenant_id = TenantId::parse(raw).map_err(|_| missing())?;
        if state.store.tenant(&tenant_id).await?.is_none() {
            return Err(missing());
        }
        if unique.insert(tenant_id.clone()) {
            tenant_ids.push(tenant_id);
        }
    }
    Ok(tenant_ids)
}

/// Every admin token, without the token values or their hashes.
#[utoipa::path(get, path = "/v1/admin/tokens", tag = "tokens",
    responses((status = 200, body = TokenList), (status = 403, body = super::ErrorBody)))]
async fn list_tokens(
    Admin(principal): Admin,
    State(state): State<AppState>,
) -> Result<Json<TokenList>, ApiError> {
    principal.require(roles::OWNER)?;
    let tokens = state.store.list_admin_tokens().await?;
    Ok(Json(TokenList { tokens: tokens.iter().map(TokenView::from).collect() }))
}

/// Revokes a token. The last active owner token cannot be revoked (409 `last_owner_token`).
#[utoipa::path(delete, path = "/v1/admin/tokens/{token_id}", tag = "tokens",
    params(("token_id" = String, Path, description = "tok_…")),
    responses((status = 204), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
async fn revoke_token(
    Admin(principal): Admin,
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    Path(token_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(roles::OWNER)?;
    // A malformed id names no token: the same answer as an unknown one.
    let outcome = match TokenId::parse(&token_id) {
        Ok(id) => state.store.revoke_admin_token(&id, state.clock.now()).await?,
        Err(_) => RevokeAdminTokenOutcome::NotFound,
    };
    match outcome {
        RevokeAdminTokenOutcome::Revoked => {}
        RevokeAdminTokenOutcome::NotFound => {
            return Err(ApiError::new(ErrorCode::TokenNotFound, format!("no admin token {token_id} exists")));
        }
        RevokeAdminTokenOutcome::LastOwner => {
            return Err(ApiError::new(
                ErrorCode::LastOwnerToken,
                "this is the last active owner token; create another owner token first",
            ));
        }
    }
    record_admin_action(
        &state,
        &context,
        &principal,
        "admin_token.revoke",
        None,
        serde_json::json!({"token_id": token_id}),
        None,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
