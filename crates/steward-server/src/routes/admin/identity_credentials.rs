//! A workload's credentials: new enrollment tokens, issued certificates (list, revoke) and session
//! revocation. Owner and admin write; every role reads.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use steward_types::ErrorCode;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::identity_common::{CertificateView, rfc3339};
use super::workloads::{deleted, new_enrollment_token, visible_workload};
use super::{Admin, record_admin_action, roles};
use crate::http::{ApiError, DeferredBody, RequestContext};
use crate::services::AppState;

/// The optional body of the credential actions: nothing to say yet (`{}` or empty).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyRequest {}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewEnrollmentToken {
    /// `stw_enr_…`, shown only here; earlier unused tokens of the workload no longer work.
    pub enrollment_token: String,
    pub expires_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateList {
    pub certificates: Vec<CertificateView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedSessions {
    /// How many sessions were revoked now.
    pub revoked: u64,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(issue_enrollment_token))
        .routes(routes!(list_certificates))
        .routes(routes!(revoke_certificate))
        .routes(routes!(revoke_sessions))
}

/// Issues a new enrollment token for a workload; earlier unused ones stop working.
#[utoipa::path(post, path = "/v1/workloads/{workload_id}/enrollment-token", tag = "workloads",
    request_body(content = Option<EmptyRequest>, description = "optional, may be empty"),
    params(("workload_id" = String, Path, description = "w_…")),
    responses((status = 201, body = NewEnrollmentToken), (status = 404, body = super::ErrorBody)))]
async fn issue_enrollment_token(
    Admin(principal): Admin,
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    Path(workload_id): Path<String>,
    body: DeferredBody,
) -> Result<(StatusCode, Json<NewEnrollmentToken>), ApiError> {
    principal.require(roles::WRITE)?;
    let workload = visible_workload(&state, &principal, &workload_id).await?;
    let _: EmptyRequest = body.optional_json()?;
    if workload.deleted_at.is_some() {
        return Err(deleted(&workload));
    }
    let (token, record) = new_enrollment_token(&state, &workload.workload_id, state.clock.now());
    if !state.store.issue_enrollment_token(&record).await? {
        return Err(deleted(&workload));
    }
    record_admin_action(
        &state,
        &context,
        &principal,
        "workload.enrollment_token",
        Some(workload.tenant_id.as_str()),
        serde_json::json!({"workload_id": workload_id}),
        Some(serde_json::json!({"expires_at": rfc3339(record.expires_at)})),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewEnrollmentToken {
            enrollment_token: token.expose().to_owned(),
            expires_at: rfc3339(record.expires_at),
        }),
    ))
}

/// The certificates issued to a workload, oldest first.
#[utoipa::path(get, path = "/v1/workloads/{workload_id}/certificates", tag = "workloads",
    params(("workload_id" = String, Path, description = "w_…")),
    responses((status = 200, body = CertificateList), (status = 404, body = super::ErrorBody)))]
async fn list_certificates(
    Admin(principal): Admin,
    State(state): State<AppState>,
    Path(workload_id): Path<String>,
) -> Result<Json<CertificateList>, ApiError> {
    principal.require(roles::READ)?;
    let workload = visible_workload(&state, &principal, &workload_id).await?;
    let certificates = state.store.list_certificates(&workload.workload_id).await?;
    Ok(Json(CertificateList { certificates: certificates.iter().map(CertificateView::from).collect() }))
}

/// Revokes one certificate of a workload: its next data-plane request gets 401 `certificate_revoked`.
#[utoipa::path(post, path = "/v1/workloads/{workload_id}/certificates/{serial}/revoke", tag = "workloads",
    request_body(content = Option<EmptyRequest>, description = "optional, may be empty"),
    params(("workload_id" = String, Path, description = "w_…"),
        ("serial" = String, Path, description = "lowercase hex")),
    responses((status = 200, body = CertificateView), (status = 404, body = super::ErrorBody)))]
async fn revoke_certificate(
    Admin(principal): Admin,
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    Path((workload_id, serial)): Path<(String, String)>,
    body: DeferredBody,
) -> Result<Json<CertificateView>, ApiError> {
    principal.require(roles::WRITE)?;
    let workload = visible_workload(&state, &principal, &workload_id).await?;
    let serial = serial.to_ascii_lowercase();
    let not_found = || {
        ApiError::new(
            ErrorCode::CertificateNotFound,
            format!("workload {workload_id} has no certificate with serial {serial}"),
        )
    };
    // Existence before the body (the spec's check order).
    if state.store.certificate(&serial).await?.is_none_or(|c| c.workload_id != workload.workload_id) {
        return Err(not_found());
    }
    let _: EmptyRequest = body.optional_json()?;
    let certificate = state
        .store
        .revoke_certificate(&workload.workload_id, &serial, state.clock.now())
        .await?
        .ok_or_else(not_found)?;
    record_admin_action(
        &state,
        &context,
        &principal,
        "certificate.revoke",
        Some(workload.tenant_id.as_str()),
        serde_json::json!({"workload_id": workload_id, "serial": serial}),
        None,
    )
    .await?;
    Ok(Json(CertificateView::from(&certificate)))
}

/// Revokes every session of a workload.
#[utoipa::path(post, path = "/v1/workloads/{workload_id}/sessions/revoke", tag = "workloads",
    request_body(content = Option<EmptyRequest>, description = "optional, may be empty"),
    params(("workload_id" = String, Path, description = "w_…")),
    responses((status = 200, body = RevokedSessions), (status = 404, body = super::ErrorBody)))]
async fn revoke_sessions(
    Admin(principal): Admin,
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    Path(workload_id): Path<String>,
    body: DeferredBody,
) -> Result<Json<RevokedSessions>, ApiError> {
    principal.require(roles::WRITE)?;
    let workload = visible_workload(&state, &principal, &workload_id).await?;
    let _: EmptyRequest = body.optional_json()?;
    let revoked = state.store.revoke_workload_sessions(&workload.workload_id, state.clock.now()).await?;
    record_admin_action(
        &state,
        &context,
        &principal,
        "sessions.revoke",
        Some(workload.tenant_id.as_str()),
        serde_json::json!({"workload_id": workload_id}),
        Some(serde_json::json!({"revoked": revoked})),
    )
    .await?;
    Ok(Json(RevokedSessions { revoked }))
}
