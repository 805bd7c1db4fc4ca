//! `GET /v1/approvals/{approval_id}` (`spec/data-plane.md`): the calling workload polls its own
//! approval, then repeats the original execute. Another workload's approval, or another tenant's, is
//! reported exactly like a missing one (404 `approval_not_found`), so ids cannot be probed.
//!
//! The status is computed at read time from the stored state and the expiry, like the admin API's.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use steward_types::{ApprovalId, ErrorCode, Timestamp};
use utoipa::ToSchema;

use super::session_auth::{ExecuteScope, SessionPrincipal, path_param};
use crate::http::{ApiError, LogFields};
use crate::routes::admin::ErrorBody;
use crate::services::AppState;
use crate::services::approvals::{ApprovalSummary, approval_summary};

/// What a workload learns about its approval.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkloadApprovalView {
    pub approval_id: String,
    /// pending, approved, denied, expired, executed or canceled.
    pub status: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<Timestamp>,
    /// once or rule, once approved.
    pub mode: Option<String>,
    pub summary: ApprovalSummary,
}

/// The calling workload's own approval (another workload's is reported as missing). Poll it after a
/// 202 from execute; once `approved`, send the same execute request again.
#[utoipa::path(get, path = "/v1/approvals/{approval_id}", tag = "execute", operation_id = "get_approval",
    security(("mtls" = [], "session" = []), ("mtls" = [], "session" = [], "dpop" = [])),
    params(("approval_id" = String, Path, description = "apr_…, from the 202 answer of execute")),
    responses(
        (status = 200, body = WorkloadApprovalView),
        (status = 400, body = ErrorBody, description = "path_param_invalid"),
        (status = 401, body = ErrorBody, description = "mtls_*, session_*, dpop_* (with WWW-Authenticate)"),
        (status = 403, body = ErrorBody, description = "workload_ip_denied, session_scope_missing (needs scope execute)"),
        (status = 404, body = ErrorBody, description = "approval_not_found"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn approval(
    State(state): State<AppState>,
    session: SessionPrincipal<ExecuteScope>,
    approval_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let principal = &session.mtls;
    let approval_id = path_param(approval_id)?;
    let not_found =
        || ApiError::new(ErrorCode::ApprovalNotFound, format!("approval {approval_id} does not exist"));
    let id = ApprovalId::parse(&approval_id).map_err(|_| not_found())?;
    let record = state
        .store
        .get_approval(&id)
        .await?
        .filter(|r| r.tenant_id == principal.tenant_id && r.workload_id == principal.workload_id)
        .ok_or_else(not_found)?;
    let view = WorkloadApprovalView {
        approval_id: record.approval_id.to_string(),
        status: record.status_at(state.clock.now()).as_str().to_owned(),
        expires_at: record.expires_at,
        decided_at: record.decided_at,
        mode: record.mode.map(|m| m.as_str().to_owned()),
        summary: approval_summary(&record),
    };
    let mut response = Json(view).into_response();
    response.extensions_mut().insert(LogFields {
        tenant_id: Some(principal.tenant_id.to_string()),
        workload_id: Some(principal.workload_id.to_string()),
        integration_id: Some(record.integration_id.to_string()),
        ..LogFields::default()
    });
    Ok(response)
}
