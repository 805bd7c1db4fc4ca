//! Policies (`spec/control-plane.md`, `spec/pipeline.md` "Policy"): create (validated by
//! `steward-policy`, then checked against the store: the integration exists in the rule's tenant and
//! its bound template has the action group), list, read, delete (disabled, kept for audit).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use steward_policy::PolicyRule;
use steward_store::AdminRole;
use steward_store::catalog::{PolicyFilter, PolicyRecord};
use steward_types::{ErrorCode, IntegrationId, PolicyId, TenantId};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::integrations::resolve_template;
use super::templates::query_invalid;
use super::{Admin, AdminPrincipal, record_admin_action, roles};
use crate::http::{ApiError, DeferredBody, RequestContext};
use crate::services::AppState;

/// A policy rule as the admin API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    pub policy_id: String,
    /// allow, deny, approval_required or rate_limit.
    pub rule_type: String,
    /// `{tenant_id, integration_id, action_group, method, host, workload_id?, template_id?,
    /// template_version?, query_keys?}`.
    #[schema(value_type = Object)]
    pub scope: Value,
    #[schema(value_type = Option<Object>)]
    pub constraints: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub rate_limit: Option<Value>,
    pub bypass_template_approval: bool,
    pub description: Option<String>,
    /// False once deleted.
    pub enabled: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: steward_types::Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub disabled_at: Option<steward_types::Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyList {
    pub policies: Vec<PolicyView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this tenant's rules (it must be one of the token's tenants).
    tenant_id: Option<String>,
    /// Only this integration's rules.
    integration_id: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_policy, list_policies))
        .routes(routes!(get_policy, delete_policy))
}

/// Creates a rule (`spec/pipeline.md` "Policy"); its tenant is `scope.tenant_id`.
#[utoipa::path(post, path = "/v1/policies", tag = "policies", request_body = Object,
    responses((status = 201, body = PolicyView), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
async fn create_policy(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Extension(context): Extension<RequestContext>,
    body: DeferredBody,
) -> Result<(StatusCode, Json<PolicyView>), ApiError> {
    principal.require(roles::WRITE)?;
    // The tenant is inside the body: read it as JSON, check the tenant, then validate the rule.
    let value: Value = body.json()?;
    if let Some(tenant) = value.pointer("/scope/tenant_id").and_then(Value::as_str) {
        principal.require_tenant(tenant)?;
    }
    let rule = PolicyRule::from_json(&value)
        .map_err(|e| ApiError::new(e.code(), format!("{}: {}", e.field(), e.message())))?;
    let scope = rule.scope();
    let invalid =
        |field: &str, message: String| ApiError::new(ErrorCode::PolicyInvalid, format!("{field}: {message}"));
    let integration = state
        .store
        .integration(&scope.integration_id)
        .await?
        .filter(|i| i.tenant_id == scope.tenant_id && i.deleted_at.is_none())
        .ok_or_else(|| {
            invalid(
                "scope.integration_id",
                format!("tenant {} has no integration {}", scope.tenant_id, scope.integration_id),
            )
        })?;
    let template = resolve_template(
        &state,
        &integration.template_owner,
        &integration.template_id,
        integration.template_version,
    )
    .await?;
    if template.group(&scope.action_group).is_none() {
        return Err(invalid(
            "scope.action_group",
            format!(
                "template {} version {} (bound to {}) has no group {:?}",
                template.id(),
                template.version(),
                integration.integration_id,
                scope.action_group
            ),
        ));
    }
    let record = crate::services::policies::new_record(&rule, state.clock.now());
    state.store.insert_policy(&record).await?;
    let view = view(&record);
    let targets = json!({
        "tenant_id": record.tenant_id.as_str(), "integration_id": record.integration_id.as_str(),
        "policy_id": record.policy_id.as_str(),
    });
    let value = serde_json::to_value(&view).map_err(ApiError::internal)?;
    record_admin_action(
        &state,
        &context,
        &principal,
        "policy.create",
        Some(record.tenant_id.as_str()),
        targets,
        Some(value),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Active rules the token can see, oldest first.
#[utoipa::path(get, path = "/v1/policies", tag = "policies", params(ListQuery),
    responses((status = 200, body = PolicyList), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
async fn list_policies(
    State(state): State<AppState>,
    Admin(principal): Admin,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<PolicyList>, ApiError> {
    principal.require(roles::READ)?;
    let Query(query) = query.map_err(query_invalid)?;
    let tenant_ids = match query.tenant_id {
        Some(tenant) => {
            principal.require_tenant(&tenant)?;
            // An id that does not parse names no tenant: nothing matches it.
            let Ok(tenant) = TenantId::parse(&tenant) else {
                return Ok(Json(PolicyList { policies: vec![] }));
            };
            Some(vec![tenant])
        }
        None if principal.role == AdminRole::Owner => None,
        None => Some(principal.tenant_ids.clone()),
    };
    let integration_id = match query.integration_id.as_deref().map(IntegrationId::parse) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => return Ok(Json(PolicyList { policies: vec![] })),
    };
    let filter = PolicyFilter { tenant_ids, integration_id };
    let records = state.store.list_policies(&filter).await?;
    Ok(Json(PolicyList { policies: records.iter().map(view).collect() }))
}

/// One rule (deleted ones too, with `disabled_at`).
#[utoipa::path(get, path = "/v1/policies/{policy_id}", tag = "policies", params(("policy_id" = String, Path)),
    responses((status = 200, body = PolicyView), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
async fn get_policy(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path(policy_id): Path<String>,
) -> Result<Json<PolicyView>, ApiError> {
    principal.require(roles::READ)?;
    let record = load(&state, &principal, &policy_id).await?;
    Ok(Json(view(&record)))
}

/// Deletes a rule: it stops matching at once and stays stored, disabled, for audit.
#[utoipa::path(delete, path = "/v1/policies/{policy_id}", tag = "policies", params(("policy_id" = String, Path)),
    responses((status = 204), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
async fn delete_policy(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Extension(context): Extension<RequestContext>,
    Path(policy_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(roles::WRITE)?;
    let record = load(&state, &principal, &policy_id).await?;
    if record.disabled_at.is_some()
        || !state.store.disable_policy(&record.policy_id, state.clock.now()).await?
    {
        return Err(ApiError::new(
            ErrorCode::PolicyNotFound,
            format!("policy {policy_id} was already deleted"),
        ));
    }
    let disabled = state.store.policy(&record.policy_id).await?.ok_or_else(|| not_found(&policy_id))?;
    let targets = json!({
        "tenant_id": record.tenant_id.as_str(), "integration_id": record.integration_id.as_str(),
        "policy_id": policy_id,
    });
    let value = serde_json::to_value(view(&disabled)).map_err(ApiError::internal)?;
    record_admin_action(
        &state,
        &context,
        &principal,
        "policy.delete",
        Some(record.tenant_id.as_str()),
        targets,
        Some(value),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn not_found(policy_id: &str) -> ApiError {
    ApiError::new(ErrorCode::PolicyNotFound, format!("policy {policy_id} does not exist"))
}

/// Step 3: the rule, reported as missing when another tenant owns it.
async fn load(
    state: &AppState,
    principal: &AdminPrincipal,
    policy_id: &str,
) -> Result<PolicyRecord, ApiError> {
    let Ok(id) = PolicyId::parse(policy_id) else { return Err(not_found(policy_id)) };
    let record = state.store.policy(&id).await?;
    principal.visible(record, |r| r.tenant_id.as_str(), not_found(policy_id))
}

fn view(record: &PolicyRecord) -> PolicyView {
    let field = |name: &str| record.rule.get(name).filter(|v| !v.is_null()).cloned();
    PolicyView {
        policy_id: record.policy_id.to_string(),
        rule_type: record.rule_type.clone(),
        scope: field("scope").unwrap_or_else(|| json!({})),
        constraints: field("constraints"),
        rate_limit: field("rate_limit"),
        bypass_template_approval: field("bypass_template_approval")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        description: field("description").and_then(|v| v.as_str().map(str::to_owned)),
        enabled: record.disabled_at.is_none(),
        created_at: record.created_at,
        disabled_at: record.disabled_at,
    }
}
