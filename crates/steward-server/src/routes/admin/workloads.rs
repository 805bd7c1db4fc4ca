//! Workloads: create (with its first enrollment token), list, get, patch, delete. Enrollment tokens,
//! certificates and sessions of a workload are in `identity_credentials`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use steward_crypto::{SecretToken, generate_token};
use steward_store::{EnrollmentTokenRecord, StoreError, WorkloadRecord};
use steward_types::{EnrollmentTokenId, ErrorCode, TenantId, Timestamp, WorkloadId};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::identity_common::{WorkloadView, known_tenant, rfc3339, validate_name, workload_not_found};
use super::{Admin, AdminPrincipal, record_admin_action, roles};
use crate::http::{ApiError, DeferredBody, RequestContext};
use crate::services::AppState;
use crate::services::identity::enrollment::ENROLLMENT_TOKEN_PREFIX;
use crate::services::identity::ip_allowlist;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkloadRequest {
    /// 1–128 characters, unique within the tenant.
    pub name: String,
    /// IPv4/IPv6 addresses and CIDRs the workload may connect from; empty or absent: anywhere.
    #[serde(default)]
    pub ip_allowlist: Vec<String>,
    #[serde(default)]
    pub dpop_required: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWorkload {
    pub workload_id: String,
    pub tenant_id: String,
    pub name: String,
    pub san_uri: String,
    pub enabled: bool,
    pub ip_allowlist: Vec<String>,
    pub dpop_required: bool,
    /// One-time token for `POST /v1/enroll` (`stw_enr_…`), shown only here.
    pub enrollment_token: String,
    pub enrollment_expires_at: String,
    /// The workload CA certificate, to verify the data plane.
    pub ca_pem: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchWorkloadRequest {
    pub enabled: Option<bool>,
    pub ip_allowlist: Option<Vec<String>>,
    pub dpop_required: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkloadList {
    pub workloads: Vec<WorkloadView>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_workload, list_workloads)).routes(routes!(
        get_workload,
        patch_workload,
        delete_workload
    ))
}

/// A fresh enrollment token for a workload: the secret (to show once) and its record (hash only).
pub(super) fn new_enrollment_token(
    state: &AppState,
    workload_id: &WorkloadId,
    now: Timestamp,
) -> (SecretToken, EnrollmentTokenRecord) {
    let token = generate_token(ENROLLMENT_TOKEN_PREFIX);
    let record = EnrollmentTokenRecord {
        token_id: EnrollmentTokenId::generate(),
        workload_id: workload_id.clone(),
        token_hash: token.hash(),
        created_at: now,
        expires_at: now.plus_seconds(i64::from(state.config.enrollment.token_ttl_seconds)),
        used_at: None,
        superseded_at: None,
    };
    (token, record)
}

/// Step 3 for routes addressing a workload by its own id: one of another tenant is reported
/// exactly like a missing one.
pub(super) async fn visible_workload(
    state: &AppState,
    principal: &AdminPrincipal,
    workload_id: &str,
) -> Result<WorkloadRecord, ApiError> {
    // A malformed id is answered exactly like an unknown one.
    let Ok(id) = WorkloadId::parse(workload_id) else { return Err(workload_not_found(workload_id)) };
    let workload = state.store.workload(&id).await?;
    principal.visible(workload, |w| w.tenant_id.as_str(), workload_not_found(workload_id))
}

pub(super) fn deleted(workload: &WorkloadRecord) -> ApiError {
    ApiError::new(
        ErrorCode::WorkloadNotFound,
        format!("workload {} was deleted; create a new workload instead", workload.workload_id),
    )
}

/// Creates a workload and its first enrollment token.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/workloads", tag = "workloads",
    request_body = CreateWorkloadRequest, params(("tenant_id" = String, Path, description = "t_…")),
    responses((status = 201, body = CreatedWorkload), (status = 400, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
async fn create_workload(
    Admin(principal): Admin,
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    Path(tenant_id): Path<String>,
    body: DeferredBody,
) -> Result<(StatusCode, Json<CreatedWorkload>), ApiError> {
    principal.require(roles::WRITE)?;
    principal.require_tenant(&tenant_id)?;
    let tenant = known_tenant(&state, &tenant_id).await?;
    let request: CreateWorkloadRequest = body.json()?;
    let name = validate_name("name", &request.name)?;
    let ip_allowlist = ip_allowlist::validate(&request.ip_allowlist)?;

    let now = state.clock.now();
    let workload_id = WorkloadId::generate();
    let record = WorkloadRecord {
        san_uri: san_uri(&state, &tenant.tenant_id, &workload_id),
        workload_id,
        tenant_id: tenant.tenant_id.clone(),
        name,
        enabled: true,
        ip_allowlist,
        dpop_required: request.dpop_required,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    };
    let (token, token_record) = new_enrollment_token(&state, &record.workload_id, now);
    match state.store.insert_workload(&record, &token_record).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(
                ErrorCode::WorkloadNameConflict,
                format!("tenant {tenant_id} already has a workload named {:?}", record.name),
            ));
        }
        Err(other) => return Err(other.into()),
    }
    let view = WorkloadView::from(&record);
    record_admin_action(
        &state,
        &context,
        &principal,
        "workload.create",
        Some(record.tenant_id.as_str()),
        serde_json::json!({"workload_id": view.workload_id}),
        Some(serde_json::to_value(&view).unwrap_or_default()),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWorkload {
            workload_id: view.workload_id,
            tenant_id: view.tenant_id,
            name: view.name,
            san_uri: view.san_uri,
            enabled: view.enabled,
            ip_allowlist: view.ip_allowlist,
            dpop_required: view.dpop_required,
            enrollment_token: token.expose().to_owned(),
            enrollment_expires_at: rfc3339(token_record.expires_at),
            ca_pem: state.ca_pem.clone(),
        }),
    ))
}

/// `spiffe://<trust domain>/tenants/<t>/workloads/<w>`.
pub fn san_uri(state: &AppState, tenant_id: &TenantId, workload_id: &WorkloadId) -> String {
    format!("spiffe://{}/tenants/{tenant_id}/workloads/{workload_id}", state.config.trust_domain)
}

/// The workloads of a tenant (deleted ones included, with `deleted_at`).
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/workloads", tag = "workloads",
    params(("tenant_id" = String, Path, description = "t_…")),
    responses((status = 200, body = WorkloadList), (status = 403, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody)))]
async fn list_workloads(
    Admin(principal): Admin,
    State(state): State<AppState>,
    Path(tenant_id): Path<String>,
) -> Result<Json<WorkloadList>, ApiError> {
    principal.require(roles::READ)?;
    principal.require_tenant(&tenant_id)?;
    let tenant = known_tenant(&state, &tenant_id).await?;
    let workloads = state.store.list_workloads(&tenant.tenant_id).await?;
    Ok(Json(WorkloadList { workloads: workloads.iter().map(WorkloadView::from).collect() }))
}

/// One workload.
#[utoipa::path(get, path = "/v1/workloads/{workload_id}", tag = "workloads",
    params(("workload_id" = String, Path, description = "w_…")),
    responses((status = 200, body = WorkloadView), (status = 404, body = super::ErrorBody)))]
async fn get_workload(
    Admin(principal): Admin,
    State(state): State<AppState>,
    Path(workload_id): Path<String>,
) -> Result<Json<WorkloadView>, ApiError> {
    principal.require(roles::READ)?;
    let workload = visible_workload(&state, &principal, &workload_id).await?;
    Ok(Json(WorkloadView::from(&workload)))
}

/// Enables or disables a workload, or changes its IP allowlist or DPoP requirement. Takes effect on
/// the workload's next data-plane request.
#[utoipa::path(patch, path = "/v1/workloads/{workload_id}", tag = "workloads",
    request_body = PatchWorkloadRequest, params(("workload_id" = String, Path, description = "w_…")),
    responses((status = 200, body = WorkloadView), (status = 400, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody)))]
async fn patch_workload(
    Admin(principal): Admin,
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    Path(workload_id): Path<String>,
    body: DeferredBody,
) -> Result<Json<WorkloadView>, ApiError> {
    principal.require(roles::WRITE)?;
    let mut workload = visible_workload(&state, &principal, &workload_id).await?;
    let request: PatchWorkloadRequest = body.optional_json()?;
    if workload.deleted_at.is_some() {
        return Err(deleted(&workload));
    }
    if let Some(entries) = &request.ip_allowlist {
        workload.ip_allowlist = ip_allowlist::validate(entries)?;
    }
    if let Some(enabled) = request.enabled {
        workload.enabled = enabled;
    }
    if let Some(dpop_required) = request.dpop_required {
        workload.dpop_required = dpop_required;
    }
    workload.updated_at = state.clock.now();
    if !state.store.update_workload(&workload).await? {
        // Deleted between our read and our write.
        return Err(deleted(&workload));
    }
    let view = WorkloadView::from(&workload);
    record_admin_action(
        &state,
        &context,
        &principal,
        "workload.update",
        Some(workload.tenant_id.as_str()),
        serde_json::json!({"workload_id": view.workload_id}),
        Some(serde_json::to_value(&view).unwrap_or_default()),
    )
    .await?;
    Ok(Json(view))
}

/// Deletes a workload for good: disabled, its sessions and certificates revoked, its unused
/// enrollment tokens void; the rows stay for audit.
#[utoipa::path(delete, path = "/v1/workloads/{workload_id}", tag = "workloads",
    params(("workload_id" = String, Path, description = "w_…")),
    responses((status = 204), (status = 404, body = super::ErrorBody)))]
async fn delete_workload(
    Admin(principal): Admin,
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    Path(workload_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(roles::WRITE)?;
    let workload = visible_workload(&state, &principal, &workload_id).await?;
    if !state.store.delete_workload(&workload.workload_id, state.clock.now()).await? {
        return Err(workload_not_found(&workload_id));
    }
    record_admin_action(
        &state,
        &context,
        &principal,
        "workload.delete",
        Some(workload.tenant_id.as_str()),
        serde_json::json!({"workload_id": workload_id}),
        None,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
