//! Integrations (`spec/control-plane.md`, `spec/pipeline.md` "Templates" binding, "Forwarding"):
//! create (template binding, injection, write-only secret), list, read, patch, secret rotation and
//! delete with crypto-shredding.
//!
//! Host binding: every secret version records the hosts its integration's template allowed when it
//! was written (plus the OAuth2 token host) and the injection it was written for (the effective
//! one: the integration's, else the template's default, else bearer). Nothing here ever changes
//! that for an existing version — a PATCH of the pin or injection leaves the secret bound where it
//! was, and executes that would send it to another host or with another injection fail with 403
//! `integration_hosts_changed` — so changing a template or an integration cannot redirect a secret;
//! only writing the secret again rebinds it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use steward_canon::{Injection, Template};
use steward_store::StoreError;
use steward_store::catalog::{CreateIntegrationOutcome, IntegrationPatch, IntegrationRecord};
use steward_types::{ErrorCode, GLOBAL_TENANT, IntegrationId, TenantId};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::catalog_secrets::{Binding, parse_secret, seal_secret};
use super::{Admin, AdminPrincipal, record_admin_action, roles};
use crate::http::{ApiError, DeferredBody, LogFields, RequestContext};
use crate::services::AppState;

/// An integration as the admin API shows it: never a secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrationView {
    pub integration_id: String,
    pub tenant_id: String,
    pub name: String,
    pub provider: String,
    pub template_id: String,
    /// `global` or the tenant: whose template this integration is bound to.
    pub template_owner: String,
    /// The pinned version, or null to follow the owner's latest.
    pub template_version: Option<u64>,
    /// The integration's own injection, or null for the template's default.
    #[schema(value_type = Option<Object>)]
    pub injection: Option<Value>,
    pub enabled: bool,
    pub secret_version: u64,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub secret_updated_at: Option<steward_types::Timestamp>,
    /// The hosts the current secret may be sent to.
    pub bound_hosts: Vec<String>,
    /// The injection the current secret may be sent with (the effective one when it was written).
    /// When the integration's injection or its template's default no longer gives this one,
    /// executes fail with 403 `integration_hosts_changed` until the secret is written again.
    #[schema(value_type = Option<Object>)]
    pub bound_injection: Option<Value>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: steward_types::Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: steward_types::Timestamp,
    /// Set once deleted (disabled for good, secrets destroyed).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deleted_at: Option<steward_types::Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrationList {
    pub integrations: Vec<IntegrationView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIntegration {
    pub name: String,
    pub provider: String,
    pub template_id: String,
    pub template_version: Option<u64>,
    /// `{type, value}`: `api_key`, `oauth2_refresh_token` or `oauth2_client_credentials`.
    #[schema(value_type = Object)]
    pub secret: Value,
    #[schema(value_type = Option<Object>)]
    pub injection: Option<Value>,
    /// `{token_url, client_id, client_secret?, scopes, auth_method}` for OAuth2 secret types.
    #[schema(value_type = Option<Object>)]
    pub oauth2: Option<Value>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchIntegration {
    pub enabled: Option<bool>,
    /// A version to pin, or null to follow the latest.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub template_version: Option<Option<u64>>,
    /// An injection, or null for the template's default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub injection: Option<Option<Value>>,
}

/// Distinguishes a field given as `null` (`Some(None)`) from an absent one (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_integration, list_integrations))
        .routes(routes!(get_integration, patch_integration, delete_integration))
        .routes(routes!(put_secret))
}

/// Creates an integration with its first secret version.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/integrations", tag = "integrations",
    params(("tenant_id" = String, Path)), request_body = CreateIntegration,
    responses((status = 201, body = IntegrationView), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
async fn create_integration(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Extension(context): Extension<RequestContext>,
    Path(tenant_id): Path<String>,
    body: DeferredBody,
) -> Result<(StatusCode, Extension<LogFields>, Json<IntegrationView>), ApiError> {
    principal.require(roles::WRITE)?;
    principal.require_tenant(&tenant_id)?;
    let tenant = existing_tenant(&state, &tenant_id).await?;
    let body: CreateIntegration = body.json()?;
    check_name(&body.name)?;
    // Binding: the tenant's own template of that id wins, else the global one.
    let owner = if state.store.template_version(tenant.as_str(), &body.template_id, None).await?.is_some() {
        tenant.as_str().to_owned()
    } else {
        GLOBAL_TENANT.to_owned()
    };
    let template = resolve_template(&state, &owner, &body.template_id, body.template_version).await?;
    if template.provider() != body.provider {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            format!(
                "provider {:?} does not match template {} (provider {:?})",
                body.provider,
                body.template_id,
                template.provider()
            ),
        ));
    }
    let injection = parse_injection(body.injection.as_ref())?;
    let secret = parse_secret(&body.secret, &[], body.oauth2.as_ref())?;
    let now = state.clock.now();
    let integration_id = IntegrationId::generate();
    let binding = Binding { template: &template, own_injection: injection.as_ref() };
    let sealed = seal_secret(&state, &tenant, &integration_id, 1, &secret, &binding, now)?;
    let record = IntegrationRecord {
        integration_id: integration_id.clone(),
        tenant_id: tenant.clone(),
        name: body.name,
        provider: body.provider,
        template_owner: owner,
        template_id: body.template_id,
        template_version: body.template_version,
        injection,
        enabled: true,
        created_at: now,
        updated_at: now,
        deleted_at: None,
        secret_version: 1,
        secret_updated_at: Some(now),
        bound_hosts: sealed.bound_hosts.clone(),
        bound_injection: Some(sealed.bound_injection.clone()),
    };
    match state.store.create_integration(&record, &sealed).await? {
        CreateIntegrationOutcome::Created => {}
        CreateIntegrationOutcome::NameConflict => {
            return Err(ApiError::new(
                ErrorCode::IntegrationNameConflict,
                format!("tenant {tenant} already has an integration named {:?}", record.name),
            ));
        }
    }
    let targets = json!({
        "tenant_id": tenant.as_str(), "integration_id": integration_id.as_str(), "name": record.name,
        "template_owner": record.template_owner, "template_id": record.template_id, "secret_version": 1,
    });
    record_admin_action(
        &state,
        &context,
        &principal,
        "integration.create",
        Some(tenant.as_str()),
        targets,
        None,
    )
    .await?;
    let stored = load_any(&state, &integration_id).await?;
    Ok((StatusCode::CREATED, Extension(log_fields(&stored)), Json(view(stored))))
}

/// The integrations of a tenant (deleted ones included, with `deleted_at`).
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/integrations", tag = "integrations",
    params(("tenant_id" = String, Path)),
    responses((status = 200, body = IntegrationList), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
async fn list_integrations(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path(tenant_id): Path<String>,
) -> Result<Json<IntegrationList>, ApiError> {
    principal.require(roles::READ)?;
    principal.require_tenant(&tenant_id)?;
    let tenant = existing_tenant(&state, &tenant_id).await?;
    let records = state.store.list_integrations(Some(std::slice::from_ref(&tenant))).await?;
    Ok(Json(IntegrationList { integrations: records.into_iter().map(view).collect() }))
}

/// One integration.
#[utoipa::path(get, path = "/v1/integrations/{integration_id}", tag = "integrations",
    params(("integration_id" = String, Path)),
    responses((status = 200, body = IntegrationView), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
async fn get_integration(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path(integration_id): Path<String>,
) -> Result<(Extension<LogFields>, Json<IntegrationView>), ApiError> {
    principal.require(roles::READ)?;
    let record = load(&state, &principal, &integration_id).await?;
    Ok((Extension(log_fields(&record)), Json(view(record))))
}

/// Enables or disables an integration, changes its version pin or its injection. The secret stays
/// bound to the hosts and the injection it was written for: after a change of either, executes
/// fail with 403 `integration_hosts_changed` until the secret is written again.
#[utoipa::path(patch, path = "/v1/integrations/{integration_id}", tag = "integrations",
    params(("integration_id" = String, Path)), request_body = PatchIntegration,
    responses((status = 200, body = IntegrationView), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody)))]
async fn patch_integration(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Extension(context): Extension<RequestContext>,
    Path(integration_id): Path<String>,
    body: DeferredBody,
) -> Result<(Extension<LogFields>, Json<IntegrationView>), ApiError> {
    principal.require(roles::WRITE)?;
    let record = load_live(&state, &principal, &integration_id).await?;
    let body: PatchIntegration = body.json()?;
    if let Some(Some(version)) = body.template_version {
        resolve_template(&state, &record.template_owner, &record.template_id, Some(version)).await?;
    }
    let injection = match &body.injection {
        Some(value) => Some(parse_injection(value.as_ref())?),
        None => None,
    };
    let patch =
        IntegrationPatch { enabled: body.enabled, template_version: body.template_version, injection };
    let updated = state
        .store
        .update_integration(&record.integration_id, &patch, state.clock.now())
        .await?
        .ok_or_else(|| not_found(&integration_id))?;
    let mut changes = serde_json::Map::new();
    if let Some(enabled) = patch.enabled {
        changes.insert("enabled".into(), enabled.into());
    }
    if let Some(pin) = patch.template_version {
        changes.insert("template_version".into(), json!(pin));
    }
    if let Some(injection) = &patch.injection {
        changes.insert("injection".into(), json!(injection));
    }
    let targets =
        json!({"tenant_id": record.tenant_id.as_str(), "integration_id": record.integration_id.as_str()});
    record_admin_action(
        &state,
        &context,
        &principal,
        "integration.update",
        Some(record.tenant_id.as_str()),
        targets,
        Some(Value::Object(changes)),
    )
    .await?;
    Ok((Extension(log_fields(&updated)), Json(view(updated))))
}

/// Writes a new secret version, bound to the hosts of the integration's current template and to
/// its current effective injection; the next execute uses it.
#[utoipa::path(put, path = "/v1/integrations/{integration_id}/secret", tag = "integrations",
    params(("integration_id" = String, Path)), request_body = Object,
    responses((status = 200, body = IntegrationView), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody)))]
async fn put_secret(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Extension(context): Extension<RequestContext>,
    Path(integration_id): Path<String>,
    body: DeferredBody,
) -> Result<(Extension<LogFields>, Json<IntegrationView>), ApiError> {
    principal.require(roles::WRITE)?;
    let record = load_live(&state, &principal, &integration_id).await?;
    let body: Value = body.json()?;
    let secret = parse_secret(&body, &["oauth2"], body.get("oauth2"))?;
    let template =
        resolve_template(&state, &record.template_owner, &record.template_id, record.template_version)
            .await?;
    let id = &record.integration_id;
    let binding = Binding { template: &template, own_injection: record.injection.as_ref() };
    let mut current = record.secret_version;
    let written = loop {
        let version = current + 1;
        let sealed = seal_secret(
            &state,
            &record.tenant_id,
            &record.integration_id,
            version,
            &secret,
            &binding,
            state.clock.now(),
        )?;
        match state.store.add_secret_version(id, &sealed).await {
            Ok(true) => break version,
            Ok(false) => return Err(not_found(&integration_id)),
            // Another writer took this number; seal again under the next one (the AAD names it).
            Err(StoreError::Conflict(_)) if version < record.secret_version + 5 => current = version,
            Err(other) => return Err(other.into()),
        }
    };
    let targets = json!({
        "tenant_id": record.tenant_id.as_str(), "integration_id": id, "secret_version": written,
        "secret_type": secret.secret_type,
    });
    record_admin_action(
        &state,
        &context,
        &principal,
        "integration.secret_write",
        Some(record.tenant_id.as_str()),
        targets,
        None,
    )
    .await?;
    let stored = load_any(&state, id).await?;
    Ok((Extension(log_fields(&stored)), Json(view(stored))))
}

/// Deletes an integration for good: disabled, and its secret ciphertexts destroyed in the same
/// transaction; the rows stay for audit.
#[utoipa::path(delete, path = "/v1/integrations/{integration_id}", tag = "integrations",
    params(("integration_id" = String, Path)),
    responses((status = 204), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
async fn delete_integration(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Extension(context): Extension<RequestContext>,
    Path(integration_id): Path<String>,
) -> Result<(StatusCode, Extension<LogFields>), ApiError> {
    principal.require(roles::WRITE)?;
    let record = load_live(&state, &principal, &integration_id).await?;
    let id = &record.integration_id;
    if !state.store.delete_integration(id, state.clock.now()).await? {
        return Err(not_found(&integration_id));
    }
    let targets = json!({"tenant_id": record.tenant_id.as_str(), "integration_id": id});
    record_admin_action(
        &state,
        &context,
        &principal,
        "integration.delete",
        Some(record.tenant_id.as_str()),
        targets,
        None,
    )
    .await?;
    Ok((StatusCode::NO_CONTENT, Extension(log_fields(&record))))
}

/// The template an integration binds to: `owner`'s `template_id` at `version` (latest when `None`).
/// Missing → 400 `template_not_found` (this is a write).
pub(crate) async fn resolve_template(
    state: &AppState,
    owner: &str,
    template_id: &str,
    version: Option<u64>,
) -> Result<Template, ApiError> {
    let record = state.store.template_version(owner, template_id, version).await?.ok_or_else(|| {
        let which = version.map(|v| format!(" version {v}")).unwrap_or_default();
        ApiError::new(
            ErrorCode::TemplateNotFoundOnWrite,
            format!("template {template_id}{which} does not exist for this tenant or globally"),
        )
    })?;
    let value: Value = serde_json::from_str(&record.body).map_err(ApiError::internal)?;
    // Stored templates passed this same validation when they were published.
    Template::from_json(&value).map_err(ApiError::internal)
}

fn parse_injection(value: Option<&Value>) -> Result<Option<Value>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            let injection = Injection::from_json(value)
                .map_err(|e| ApiError::new(e.code(), format!("injection: {}", e.message())))?;
            Ok(Some(injection.to_json()))
        }
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            "name: must be 1-128 characters without control characters",
        ));
    }
    // `steward gateway` routes `/{integration_name}/…` and keeps `/_host/…`, `/_steward/…` (and any
    // later `_` route) for itself (spec/gateway.md §2).
    if name.trim_start().starts_with('_') {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            format!(
                "name: {name:?} begins with '_'; names beginning with '_' are reserved for gateway routes"
            ),
        ));
    }
    Ok(())
}

/// Step 3 for a tenant in the path: it must exist (404 `tenant_not_found`).
pub(crate) async fn existing_tenant(state: &AppState, tenant_id: &str) -> Result<TenantId, ApiError> {
    let missing = || ApiError::new(ErrorCode::TenantNotFound, format!("tenant {tenant_id} does not exist"));
    let tenant = TenantId::parse(tenant_id).map_err(|_| missing())?;
    if state.store.catalog_tenant_exists(&tenant).await? { Ok(tenant) } else { Err(missing()) }
}

fn not_found(integration_id: &str) -> ApiError {
    ApiError::new(ErrorCode::IntegrationNotFound, format!("integration {integration_id} does not exist"))
}

/// Step 3: the integration, reported as missing when another tenant owns it.
pub(crate) async fn load(
    state: &AppState,
    principal: &AdminPrincipal,
    integration_id: &str,
) -> Result<IntegrationRecord, ApiError> {
    let Ok(id) = IntegrationId::parse(integration_id) else { return Err(not_found(integration_id)) };
    let record = state.store.integration(&id).await?;
    principal.visible(record, |r| r.tenant_id.as_str(), not_found(integration_id))
}

/// Like [`load`], for writes: a deleted integration is gone for good.
async fn load_live(
    state: &AppState,
    principal: &AdminPrincipal,
    integration_id: &str,
) -> Result<IntegrationRecord, ApiError> {
    let record = load(state, principal, integration_id).await?;
    if record.deleted_at.is_some() {
        return Err(ApiError::new(
            ErrorCode::IntegrationNotFound,
            format!("integration {integration_id} was deleted"),
        ));
    }
    Ok(record)
}

async fn load_any(state: &AppState, integration_id: &IntegrationId) -> Result<IntegrationRecord, ApiError> {
    state.store.integration(integration_id).await?.ok_or_else(|| not_found(integration_id.as_str()))
}

fn log_fields(record: &IntegrationRecord) -> LogFields {
    LogFields {
        tenant_id: Some(record.tenant_id.to_string()),
        integration_id: Some(record.integration_id.to_string()),
        ..LogFields::default()
    }
}

fn view(record: IntegrationRecord) -> IntegrationView {
    IntegrationView {
        integration_id: record.integration_id.to_string(),
        tenant_id: record.tenant_id.to_string(),
        name: record.name,
        provider: record.provider,
        template_id: record.template_id,
        template_owner: record.template_owner,
        template_version: record.template_version,
        injection: record.injection,
        enabled: record.enabled,
        secret_version: record.secret_version,
        secret_updated_at: record.secret_updated_at,
        bound_hosts: record.bound_hosts,
        bound_injection: record.bound_injection,
        created_at: record.created_at,
        updated_at: record.updated_at,
        deleted_at: record.deleted_at,
    }
}
