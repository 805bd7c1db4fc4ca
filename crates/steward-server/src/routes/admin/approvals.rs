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
use steward_policy::PolicyRule;
use steward_store::audit::{AuditEvent, Decision, EventType, PolicyRef};
use steward_store::governance::{
    ApprovalDecision, ApprovalFilter, ApprovalMode, ApprovalRecord, ApprovalStatus, DecisionOutcome,
    NewPolicyRow,
};
use steward_types::{ApprovalId, ErrorCode, PolicyId};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Admin, AdminPrincipal, roles};
use crate::http::{ApiError, DeferredBody, RequestContext};
use crate::services::AppState;
use crate::services::credentials::envelope::{open_record, preview_context};

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
    let now = state.clock.now();
    let (outcome, policy, expires_at) = match body.mode {
        ModeBody::Once => {
            if body.constraints.is_some() {
                return Err(ApiError::new(
                    ErrorCode::RequestBodySchemaInvalid,
                    "constraints: only allowed with mode \"rule\"",
                ));
            }
            let ttl = i64::from(state.config.approval.approved_ttl_seconds);
            (DecisionOutcome::Approved(ApprovalMode::Once), None, Some(now.plus_seconds(ttl)))
        }
        ModeBody::Rule => {
            // Creating a standing allow rule is a policy write: owner and admin only.
            principal.require(roles::WRITE)?;
            let rule = exact_rule(&record, "allow", body.constraints)?;
            (DecisionOutcome::Approved(ApprovalMode::Rule), Some(policy_row(&record, rule, now)?), None)
        }
    };
    decide(&state, &context, &principal, &record, now, (outcome, policy, None, expires_at)).await
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
    let now = state.clock.now();
    let rule = exact_rule(&record, "deny", None)?;
    let policy = Some(policy_row(&record, rule, now)?);
    decide(&state, &context, &principal, &record, now, (DecisionOutcome::Denied, policy, body.reason, None))
        .await
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
    let now = state.clock.now();
    let actor = principal.token_id.as_str();
    if !state.store.cancel_approval(&record.approval_id, actor, body.reason.as_deref(), now).await? {
        return Err(not_pending(&record, now, "canceled"));
    }
    record_decision(&state, &context, &principal, &record, "canceled", None, None, body.reason.as_deref())
        .await?;
    Ok(Json(DecisionView {
        approval_id: record.approval_id.to_string(),
        status: ApprovalStatus::Canceled.as_str().to_owned(),
        policy_id: None,
    }))
}

/// The tenants an unfiltered list covers, or the one named in the query (step 2 of the check order).
pub(crate) fn scope(
    principal: &AdminPrincipal,
    tenant_id: Option<&str>,
) -> Result<Option<Vec<String>>, ApiError> {
    match tenant_id {
        Some(tenant_id) => {
            principal.require_tenant(tenant_id)?;
            Ok(Some(vec![tenant_id.to_owned()]))
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

fn not_pending(record: &ApprovalRecord, now: steward_types::Timestamp, verb: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ApprovalNotPending,
        format!(
            "approval {} is {} and can no longer be {verb}",
            record.approval_id,
            record.status_at(now).as_str()
        ),
    )
}

/// The approval as shown to `principal`: previews are decrypted for approvers only.
fn view(
    state: &AppState,
    principal: &AdminPrincipal,
    record: &ApprovalRecord,
) -> Result<ApprovalView, ApiError> {
    let approver = roles::DECIDE.contains(&principal.role);
    let preview = match (&record.preview, approver) {
        (Some(envelope), true) => {
            let keyring = state.keyring.load();
            let context = preview_context(&record.tenant_id, &record.approval_id);
            let plaintext = open_record(&keyring, &context, envelope).map_err(ApiError::internal)?;
            Some(serde_json::from_slice(&plaintext).map_err(ApiError::internal)?)
        }
        _ => None,
    };
    Ok(ApprovalView {
        approval_id: record.approval_id.to_string(),
        tenant_id: record.tenant_id.clone(),
        workload_id: record.workload_id.clone(),
        integration_id: record.integration_id.clone(),
        status: record.status_at(state.clock.now()).as_str().to_owned(),
        mode: record.mode.map(|m| m.as_str().to_owned()),
        descriptor: record.descriptor.clone(),
        preview,
        preview_redacted: record.preview.is_some() && !approver,
        proposed_rule: record.proposed_rule.clone(),
        policy_id: record.policy_id.clone(),
        reason: record.reason.clone(),
        decided_by: record.decided_by.clone(),
        created_at: record.created_at,
        expires_at: record.expires_at,
        decided_at: record.decided_at,
        consumed_at: record.consumed_at,
    })
}

/// The exact rule of the approval's `proposed_rule` as `rule_type`: an allow rule carries
/// `bypass_template_approval: true` (a person approved that class) and any constraints; a deny rule
/// carries neither. Validated like any policy (400 `policy_invalid` naming the field, e.g. bad
/// `constraints`) and normalized, so a decision never stores a rule the execute path cannot load.
fn exact_rule(
    record: &ApprovalRecord,
    rule_type: &str,
    constraints: Option<serde_json::Map<String, Value>>,
) -> Result<Value, ApiError> {
    let mut rule =
        record.proposed_rule.as_object().cloned().ok_or_else(|| {
            ApiError::internal(format!("approval {} has no proposed rule", record.approval_id))
        })?;
    rule.insert("rule_type".into(), rule_type.into());
    rule.remove("rate_limit");
    if rule_type == "allow" {
        rule.insert("bypass_template_approval".into(), true.into());
        if let Some(constraints) = constraints {
            rule.insert("constraints".into(), Value::Object(constraints));
        }
    } else {
        rule.remove("bypass_template_approval");
        rule.remove("constraints");
    }
    rule.insert(
        "description".into(),
        format!("created by the {rule_type} decision on approval {}", record.approval_id).into(),
    );
    let rule = PolicyRule::from_json(&Value::Object(rule))
        .map_err(|e| ApiError::new(e.code(), format!("{}: {}", e.field(), e.message())))?;
    Ok(rule.to_json())
}

/// The policy row of `rule`, its indexed columns taken from `rule.scope`, which must name the
/// approval's own tenant and integration.
fn policy_row(
    record: &ApprovalRecord,
    rule: Value,
    now: steward_types::Timestamp,
) -> Result<NewPolicyRow, ApiError> {
    let bad = |field: &str| {
        ApiError::internal(format!("approval {}: proposed_rule.scope.{field} is missing", record.approval_id))
    };
    let scope = rule.get("scope").and_then(Value::as_object).ok_or_else(|| bad("(scope)"))?;
    let text =
        |field: &str| scope.get(field).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| bad(field));
    let tenant_id = text("tenant_id")?;
    let integration_id = text("integration_id")?;
    if tenant_id != record.tenant_id || integration_id != record.integration_id {
        return Err(ApiError::internal(format!(
            "approval {}: its proposed rule names another tenant or integration",
            record.approval_id
        )));
    }
    Ok(NewPolicyRow {
        policy_id: PolicyId::generate().to_string(),
        tenant_id,
        integration_id,
        action_group: text("action_group")?,
        method: text("method")?,
        host: text("host")?,
        workload_id: scope.get("workload_id").and_then(Value::as_str).map(str::to_owned),
        rule_type: rule.get("rule_type").and_then(Value::as_str).unwrap_or("allow").to_owned(),
        rule,
        created_at: now,
    })
}

/// What a decision does: outcome, the rule it creates, the reason given, the new expiry.
type DecisionParts =
    (DecisionOutcome, Option<NewPolicyRow>, Option<String>, Option<steward_types::Timestamp>);

/// Applies a decision made at `now` (the same moment its expiry was computed from) and records it.
async fn decide(
    state: &AppState,
    context: &RequestContext,
    principal: &AdminPrincipal,
    record: &ApprovalRecord,
    now: steward_types::Timestamp,
    (outcome, policy, reason, expires_at): DecisionParts,
) -> Result<Json<DecisionView>, ApiError> {
    let policy_id = policy.as_ref().map(|p| p.policy_id.clone());
    let decision = ApprovalDecision {
        approval_id: record.approval_id.clone(),
        outcome,
        policy: policy.clone(),
        decided_by: principal.token_id.to_string(),
        reason: reason.clone(),
        decided_at: now,
        expires_at,
    };
    let (verb, status, mode) = match outcome {
        DecisionOutcome::Approved(mode) => ("approved", ApprovalStatus::Approved, Some(mode)),
        DecisionOutcome::Denied => ("denied", ApprovalStatus::Denied, None),
    };
    if !state.store.decide_approval(&decision).await? {
        return Err(not_pending(record, now, verb));
    }
    record_decision(state, context, principal, record, verb, mode, policy.as_ref(), reason.as_deref())
        .await?;
    Ok(Json(DecisionView {
        approval_id: record.approval_id.to_string(),
        status: status.as_str().to_owned(),
        policy_id,
    }))
}

/// Writes `approval_decided` (actor, decision, mode, created policy) and waits for its commit.
#[allow(clippy::too_many_arguments)]
async fn record_decision(
    state: &AppState,
    context: &RequestContext,
    principal: &AdminPrincipal,
    record: &ApprovalRecord,
    decision: &str,
    mode: Option<ApprovalMode>,
    policy: Option<&NewPolicyRow>,
    reason: Option<&str>,
) -> Result<(), ApiError> {
    let mut event = AuditEvent::new(EventType::ApprovalDecided, principal.actor(), state.clock.now())
        .with_request_id(context.request_id.to_string())
        .with_correlation_id(context.correlation_id.clone())
        .with_tenant(record.tenant_id.clone())
        .with_workload(record.workload_id.clone())
        .with_integration(record.integration_id.clone())
        .with_policy(PolicyRef {
            rule_id: policy.map(|p| p.policy_id.clone()),
            rule_type: policy.map(|p| p.rule_type.clone()),
            approval_id: Some(record.approval_id.to_string()),
        })
        .with_metadata("decision", decision.into())
        .with_metadata("mode", mode.map(|m| m.as_str()).into())
        .with_metadata("role", principal.role.as_str().into())
        .with_metadata("policy_id", policy.map(|p| p.policy_id.clone()).into());
    if let Some(group) = record.descriptor.get("action_group").and_then(Value::as_str) {
        event = event.with_action_group(group);
    }
    match decision {
        "approved" => event = event.with_decision(Decision::Allowed),
        "denied" => event = event.with_decision(Decision::Denied),
        _ => {}
    }
    if let Some(reason) = reason {
        event = event.with_metadata("reason", reason.into());
    }
    state.audit.append(event).await?;
    Ok(())
}
