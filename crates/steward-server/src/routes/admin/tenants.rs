//! Tenants: create and patch (owner), list and get (every role, limited to the token's tenants).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use steward_store::{StoreError, TenantRecord};
use steward_types::{ErrorCode, TenantId};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::identity_common::{
    TenantView, double_option, known_tenant, tenant_not_found, validate_name, validate_webhook_url,
};
use super::{Admin, record_admin_action, roles};
use crate::http::{ApiError, DeferredBody, RequestContext};
use crate::services::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// 1–128 characters, unique.
    pub name: String,
    #[serde(default)]
    pub dpop_required: bool,
    /// An https URL notified of new approvals, or null.
    pub approval_webhook_url: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTenantRequest {
    pub name: Option<String>,
    pub dpop_required: Option<bool>,
    /// An https URL, or null to remove it; absent leaves it unchanged.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub approval_webhook_url: Option<Option<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    pub tenants: Vec<TenantView>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_tenant, list_tenants))
        .routes(routes!(get_tenant, patch_tenant))
}

fn name_conflict(name: &str) -> ApiError {
    ApiError::new(ErrorCode::TenantNameConflict, format!("a tenant named {name:?} already exists"))
}

/// Creates a tenant.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenantRequest,
    responses((status = 201, body = TenantView), (status = 400, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody)))]
async fn create_tenant(
    Admin(principal): Admin,
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    body: DeferredBody,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    principal.require(roles::OWNER)?;
    let request: CreateTenantRequest = body.json()?;
    let name = validate_name("name", &request.name)?;
    let approval_webhook_url =
        request.approval_webhook_url.as_deref().map(validate_webhook_url).transpose()?;
    let now = state.clock.now();
    let record = TenantRecord {
        tenant_id: TenantId::generate(),
        name,
        dpop_required: request.dpop_required,
        approval_webhook_url,
        created_at: now,
        updated_at: now,
    };
    match state.store.insert_tenant(&record).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return Err(name_conflict(&record.name)),
        Err(other) => return Err(other.into()),
    }
    let view = TenantView::from(&record);
    record_admin_action(
        &state,
        &context,
        &principal,
        "tenant.create",
        Some(record.tenant_id.as_str()),
        serde_json::json!({"tenant_id": view.tenant_id}),
        Some(serde_json::to_value(&view).unwrap_or_default()),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// The tenants this token covers.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants",
    responses((status = 200, body = TenantList), (status = 401, body = super::ErrorBody)))]
async fn list_tenants(
    Admin(principal): Admin,
    State(state): State<AppState>,
) -> Result<Json<TenantList>, ApiError> {
    principal.require(roles::READ)?;
    let tenants = state.store.list_tenants().await?;
    let visible =
        tenants.iter().filter(|t| principal.covers(t.tenant_id.as_str())).map(TenantView::from).collect();
    Ok(Json(TenantList { tenants: visible }))
}

/// One tenant.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}", tag = "tenants",
    params(("tenant_id" = String, Path, description = "t_…")),
    responses((status = 200, body = TenantView), (status = 403, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody)))]
async fn get_tenant(
    Admin(principal): Admin,
    State(state): State<AppState>,
    Path(tenant_id): Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    principal.require(roles::READ)?;
    principal.require_tenant(&tenant_id)?;
    let tenant = known_tenant(&state, &tenant_id).await?;
    Ok(Json(TenantView::from(&tenant)))
}

/// Renames a tenant or changes its DPoP requirement or approval webhook.
#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}", tag = "tenants", request_body = PatchTenantRequest,
    params(("tenant_id" = String, Path, description = "t_…")),
    responses((status = 200, body = TenantView), (status = 404, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody)))]
async fn patch_tenant(
    Admin(principal): Admin,
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    Path(tenant_id): Path<String>,
    body: DeferredBody,
) -> Result<Json<TenantView>, ApiError> {
    principal.require(roles::OWNER)?;
    principal.require_tenant(&tenant_id)?;
    let mut tenant = known_tenant(&state, &tenant_id).await?;
    let request: PatchTenantRequest = body.optional_json()?;
    if let Some(name) = &request.name {
        tenant.name = validate_name("name", name)?;
    }
    if let Some(dpop_required) = request.dpop_required {
        tenant.dpop_required = dpop_required;
    }
    if let Some(url) = &request.approval_webhook_url {
        tenant.approval_webhook_url = url.as_deref().map(validate_webhook_url).transpose()?;
    }
    tenant.updated_at = state.clock.now();
    match state.store.update_tenant(&tenant).await {
        Ok(true) => {}
        Ok(false) => return Err(tenant_not_found(&tenant_id)),
        Err(StoreError::Conflict(_)) => return Err(name_conflict(&tenant.name)),
        Err(other) => return Err(other.into()),
    }
    let view = TenantView::from(&tenant);
    record_admin_action(
        &state,
        &context,
        &principal,
        "tenant.update",
        Some(tenant.tenant_id.as_str()),
        serde_json::json!({"tenant_id": view.tenant_id}),
        Some(serde_json::to_value(&view).unwrap_or_default()),
    )
    .await?;
    Ok(Json(view))
}
