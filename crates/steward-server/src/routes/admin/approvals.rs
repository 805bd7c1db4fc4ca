//! Approvals (`spec/control-plane.md`, `spec/pipeline.md` "Approvals"): list, read (descriptor,
//! decrypted preview, proposed rule), approve `once` / `rule`, deny, cancel.
//!
//! Decisions are compare-and-set transitions in the store, so two approvers (or two instances) racing
//! on one approval produce one decision and one 409. A `rule` approval and a denial insert their
//! policy row in the same transaction as the decision: there is never a decision without its rule.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use steward_store::governance::{ApprovalFilter, ApprovalRecord, ApprovalStatus};
use steward_types::{ApprovalId, ErrorCode, TenantId};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Admin, AdminPrincipal, roles};
use crate::http::{ApiError, DeferredBody, RequestContext};
use crate::services::AppState;
use crate::services::approvals::{self, Decided, Verdict};

/// Most approvals one list returns (newest first).
const LIST_LIMIT: u32 = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this tenant's approvals (it must be one of the token's tenants).
    tenant_id: Option<String>,
    /// pending, approved, denied, expired, canceled or executed (computed now).
    status: Option<String>,
}

/// An approval as the admin API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalView {
    pub approval_id: String,
    pub tenant_id: String,
    pub workload_id: String,
    pub integration_id: String,
    /// pending, approved, denied, expired, canceled or executed, computed at read time.
    pub status: String,
    /// once or rule, once approved.
    pub mode: Option<String>,
    /// The canonical request descriptor policy saw.
    #[schema(value_type = Object)]
    pub descriptor: Value,
    /// The previewed body values (JSON pointer → value); null without a preview, or for auditors, who
    /// are not approvers (`preview_redacted` is then true).
    #[schema(value_type = Option<Object>)]
    pub preview: Option<Value>,
    pub preview_redacted: bool,
    /// The allow rule `rule` mode creates.
    #[schema(value_type = Object)]
    pub proposed_rule: Value,
    /// The rule the decision created (rule approvals and denials).
    pub policy_id: Option<String>,
    pub reason: Option<String>,
    /// The admin token id that decided or canceled.
    pub decided_by: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: steward_types::Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: steward_types::Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<steward_types::Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub consumed_at: Option<steward_types::Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalList {
    pub approvals: Vec<ApprovalView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModeBody {
    Once,
    Rule,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    pub mode: ModeBody,
    /// Extra constraints of the created rule (`rule` mode only).
    #[schema(value_type = Option<Object>)]
    pub constraints: Option<serde_json::Map<String, Value>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why (kept with the approval and in the audit event).
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionView {
    pub approval_id: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_approvals))
        .routes(routes!(get_approval))
        .routes(routes!(approve))
        .routes(routes!(deny))
        .routes(routes!(cancel))
}

/// Approvals the token may see, newest first (at most 1000).
#[utoipa::path(get, path = "/v1/approvals", tag = "approvals", params(ListQuery),
    responses((status = 200, body = ApprovalList), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
async fn list_approvals(
    State(state): State<AppState>,
    Admin(principal): Admin,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ApprovalList>, ApiError> {
    principal.require(roles::READ)?;
    let Query(query) = query.map_err(query_invalid)?;
    let tenant_ids = scope(&principal, query.tenant_id.as_deref())?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            ApprovalStatus::parse(s).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::QueryInvalid,
                    format!(
                        "status must be one of pending, approved, denied, expired, canceled, executed; got {s:?}"
                    ),
                )
            })
        })
        .transpose()?;
    let now = state.clock.now();
    let records = state.store.list_approvals(&ApprovalFilter { tenant_ids, status, now }, LIST_LIMIT).await?;
    let approvals = records.iter().map(|r| view(&state, &principal, r)).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(ApprovalList { approvals }))
}

/// One approval with its descriptor, decrypted preview and proposed rule.
#[utoipa::path(get, path = "/v1/approvals/{approval_id}", tag = "approvals",
    params(("approval_id" = String, Path)),
    responses((status = 200, body = ApprovalView), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
async fn get_approval(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path(approval_id): Path<String>,
) -> Result<Json<ApprovalView>, ApiError> {
    principal.require(roles::READ)?;
    let record = load(&state, &principal, &approval_id).await?;
    Ok(Json(view(&state, &principal, &record)?))
}

/// Approves a pending approval: `once` (owner, admin, operator) or `rule` (owner, admin), which
/// creates the exact allow rule of `proposed_rule` with `bypass_template_approval`.
#[utoipa::path(post, path = "/v1/approvals/{approval_id}/approve", tag = "approvals",
    params(("approval_id" = String, Path)), request_body = ApproveBody,
    responses((status = 200, body = DecisionView), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
async fn approve(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Extension(context): Extension<RequestContext>,
    Path(approval_id): Path<String>,
    body: DeferredBody,
) -> Result<Json<DecisionView>, ApiError> {
    principal.require(roles::DECIDE)?;
    let record = load(&state, &principal, &approval_id).await?;
    let body: ApproveBody = body.json()?;
    let verdict = match body.mode {
        ModeBody::Once => {
            if body.constraints.is_some() {
                return Err(ApiError::new(
                    ErrorCode::RequestBodySchemaInvalid,
                    "constraints: only allowed with mode \"rule\"",
                ));
            }
            Verdict::Once
        }
        ModeBody::Rule => {
            // Creating a standing allow rule is a policy write: owner and admin only.
            principal.require(roles::WRITE)?;
            Verdict::Rule { constraints: body.constraints }
        }
    };
    let decided = approvals::decide(&state, &context, &principal, &record, verdict, None).await?;
    Ok(Json(decision_view(&record, decided)))
}

/// Denies a pending approval and creates the matching exact deny rule.
#[utoipa::path(post, path = "/v1/approvals/{approval_id}/deny", tag = "approvals",
    params(("approval_id" = String, Path)), request_body(content = Option<ReasonBody>),
    responses((status = 200, body = DecisionView), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody)))]
async fn deny(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Extension(context): Extension<RequestContext>,
    Path(approval_id): Path<String>,
    body: DeferredBody,
) -> Result<Json<DecisionView>, ApiError> {
    principal.require(roles::DECIDE)?;
    let record = load(&state, &principal, &approval_id).await?;
    let body: ReasonBody = body.optional_json()?;
    let decided =
        approvals::decide(&state, &context, &principal, &record, Verdict::Deny, body.reason).await?;
    Ok(Json(decision_view(&record, decided)))
}

/// Cancels a pending approval, or an approved `once` approval that was not used yet.
#[utoipa::path(post, path = "/v1/approvals/{approval_id}/cancel", tag = "approvals",
    params(("approval_id" = String, Path)), request_body(content = Option<ReasonBody>),
    responses((status = 200, body = DecisionView), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody)))]
async fn cancel(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Extension(context): Extension<RequestContext>,
    Path(approval_id): Path<String>,
    body: DeferredBody,
) -> Result<Json<DecisionView>, ApiError> {
    principal.require(roles::DECIDE)?;
    let record = load(&state, &principal, &approval_id).await?;
    let body: ReasonBody = body.optional_json()?;
    let decided =
        approvals::decide(&state, &context, &principal, &record, Verdict::Cancel, body.reason).await?;
    Ok(Json(decision_view(&record, decided)))
}

fn decision_view(record: &ApprovalRecord, decided: Decided) -> DecisionView {
    DecisionView {
        approval_id: record.approval_id.to_string(),
        status: decided.status.as_str().to_owned(),
        policy_id: decided.policy_id,
    }
}

/// The tenants an unfiltered list covers, or the one named in the query (step 2 of the check order).
/// A named id that does not parse names no tenant: the list is empty, so nothing matches.
pub(crate) fn scope(
    principal: &AdminPrincipal,
    tenant_id: Option<&str>,
) -> Result<Option<Vec<TenantId>>, ApiError> {
    match tenant_id {
        Some(tenant_id) => {
            principal.require_tenant(tenant_id)?;
            Ok(Some(TenantId::parse(tenant_id).into_iter().collect()))
        }
        None if principal.role == steward_store::AdminRole::Owner => Ok(None),
        None => Ok(Some(principal.tenant_ids.clone())),
    }
}

pub(crate) fn query_invalid(rejection: QueryRejection) -> ApiError {
    ApiError::new(ErrorCode::QueryInvalid, format!("the query string is invalid: {}", rejection.body_text()))
}

fn not_found(approval_id: &str) -> ApiError {
    ApiError::new(ErrorCode::ApprovalNotFound, format!("approval {approval_id} does not exist"))
}

/// Step 3: the approval, reported as missing when it belongs to a tenant the token does not cover.
async fn load(
    state: &AppState,
    principal: &AdminPrincipal,
    approval_id: &str,
) -> Result<ApprovalRecord, ApiError> {
    let Ok(id) = ApprovalId::parse(approval_id) else {
        return Err(not_found(approval_id));
    };
    let record = state.store.get_approval(&id).await?;
    principal.visible(record, |r| r.tenant_id.as_str(), not_found(approval_id))
}

/// The approval as shown to `principal`: previews are decrypted for approvers only.
fn view(
    state: &AppState,
    principal: &AdminPrincipal,
    record: &ApprovalRecord,
) -> Result<ApprovalView, ApiError> {
    let approver = roles::DECIDE.contains(&principal.role);
    let preview = if approver { approvals::open_preview(state, record)? } else { None };
    Ok(ApprovalView {
        approval_id: record.approval_id.to_string(),
        tenant_id: record.tenant_id.to_string(),
        workload_id: record.workload_id.to_string(),
        integration_id: record.integration_id.to_string(),
        status: record.status_at(state.clock.now()).as_str().to_owned(),
        mode: record.mode.map(|m| m.as_str().to_owned()),
        descriptor: record.descriptor.clone(),
        preview,
        preview_redacted: record.preview.is_some() && !approver,
        proposed_rule: record.proposed_rule.clone(),
        policy_id: record.policy_id.as_ref().map(ToString::to_string),
        reason: record.reason.clone(),
        decided_by: record.decided_by.as_ref().map(ToString::to_string),
        created_at: record.created_at,
        expires_at: record.expires_at,
        decided_at: record.decided_at,
        consumed_at: record.consumed_at,
    })
}
