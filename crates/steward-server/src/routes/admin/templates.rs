//! Templates (`spec/control-plane.md`, `spec/pipeline.md` "Templates"): publish (validated by
//! `steward-canon`, versions immutable per owner), list the latest versions, read one version, and
//! install the built-ins.
//!
//! The owner of a template is a tenant or `global`. Publishing under `global` is owner-only; a tenant
//! template needs an owner or admin token covering that tenant.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use steward_canon::Template;
use steward_store::StoreError;
use steward_store::catalog::{PublishOutcome, TemplateVersionRecord};
use steward_types::{ErrorCode, GLOBAL_TENANT, TenantId};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Admin, AdminPrincipal, record_admin_action, roles};
use crate::builtin_templates::{BuiltinError, install_builtin_templates, template_record};
use crate::http::{ApiError, DeferredBody, RequestContext};
use crate::services::AppState;

/// `201` answer of a publish.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishedTemplate {
    /// The owner: a tenant id or `global`.
    pub tenant_id: String,
    pub template_id: String,
    pub version: u64,
}

/// One stored template version.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    /// The owner: a tenant id or `global`.
    pub tenant_id: String,
    pub template_id: String,
    pub version: u64,
    pub provider: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: steward_types::Timestamp,
    /// The template as published.
    #[schema(value_type = Object)]
    pub template: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateList {
    pub templates: Vec<TemplateView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstallReport {
    pub installed: Vec<String>,
    pub already_present: Vec<String>,
}

/// The (empty) body of install-builtin.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallBody {}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `global`: only global templates; a tenant id: the templates that tenant can bind (global and
    /// its own); absent: global and every tenant of the token.
    tenant_id: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// The owner (default `global`).
    tenant_id: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(publish_template, list_templates))
        .routes(routes!(install_builtin))
        .routes(routes!(get_template_version))
}

/// Publishes a template version (the template JSON plus an optional `tenant_id`, default `global`).
#[utoipa::path(post, path = "/v1/templates", tag = "templates", request_body = Object,
    responses((status = 201, body = PublishedTemplate), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
async fn publish_template(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Extension(context): Extension<RequestContext>,
    body: DeferredBody,
) -> Result<(StatusCode, Json<PublishedTemplate>), ApiError> {
    principal.require(roles::WRITE)?;
    // The owner is named in the body, so the body is read (as JSON) before the owner checks; the
    // template itself is validated only after them.
    let mut value: Value = body.json()?;
    let Some(object) = value.as_object_mut() else {
        return Err(ApiError::new(ErrorCode::RequestBodySchemaInvalid, "the body must be a template object"));
    };
    let owner = match object.remove("tenant_id") {
        None | Some(Value::Null) => GLOBAL_TENANT.to_owned(),
        Some(Value::String(owner)) => owner,
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::RequestBodySchemaInvalid,
                "tenant_id: must be a tenant id or \"global\"",
            ));
        }
    };
    require_owner_scope(&state, &principal, &owner, true).await?;
    let template = Template::from_json(&value).map_err(|e| ApiError::new(e.code(), e.message()))?;
    let record = template_record(&owner, &template, state.clock.now());
    let outcome = match state.store.publish_template(&record).await {
        // A concurrent publish of the same version committed first: judge against it.
        Err(StoreError::Conflict(_)) => state.store.publish_template(&record).await?,
        other => other?,
    };
    check_outcome(&record, outcome)?;
    let targets = json!({"tenant_id": owner, "template_id": record.template_id, "version": record.version});
    let tenant = (owner != GLOBAL_TENANT).then_some(owner.as_str());
    record_admin_action(
        &state,
        &context,
        &principal,
        "template.publish",
        tenant,
        targets,
        Some(template.to_json().clone()),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(PublishedTemplate {
            tenant_id: owner,
            template_id: record.template_id,
            version: record.version,
        }),
    ))
}

/// The latest version of every template the token can see.
#[utoipa::path(get, path = "/v1/templates", tag = "templates", params(ListQuery),
    responses((status = 200, body = TemplateList), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
async fn list_templates(
    State(state): State<AppState>,
    Admin(principal): Admin,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<TemplateList>, ApiError> {
    principal.require(roles::READ)?;
    let Query(query) = query.map_err(query_invalid)?;
    let owners: Option<Vec<String>> = match query.tenant_id.as_deref() {
        Some(GLOBAL_TENANT) => Some(vec![GLOBAL_TENANT.to_owned()]),
        Some(tenant) => {
            principal.require_tenant(tenant)?;
            Some(vec![GLOBAL_TENANT.to_owned(), tenant.to_owned()])
        }
        None if principal.role == steward_store::AdminRole::Owner => None,
        None => Some(
            std::iter::once(GLOBAL_TENANT.to_owned())
                .chain(principal.tenant_ids.iter().map(ToString::to_string))
                .collect(),
        ),
    };
    let records = state.store.list_latest_templates(owners.as_deref()).await?;
    let templates = records.into_iter().map(view).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(TemplateList { templates }))
}

/// One version of a template.
#[utoipa::path(get, path = "/v1/templates/{template_id}/versions/{version}", tag = "templates",
    params(("template_id" = String, Path), ("version" = u64, Path), VersionQuery),
    responses((status = 200, body = TemplateView), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody)))]
async fn get_template_version(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path((template_id, version)): Path<(String, String)>,
    query: Result<Query<VersionQuery>, QueryRejection>,
) -> Result<Json<TemplateView>, ApiError> {
    principal.require(roles::READ)?;
    let Query(query) = query.map_err(query_invalid)?;
    let owner = query.tenant_id.unwrap_or_else(|| GLOBAL_TENANT.to_owned());
    if owner != GLOBAL_TENANT {
        principal.require_tenant(&owner)?;
    }
    let not_found = || {
        ApiError::new(
            ErrorCode::TemplateVersionNotFound,
            format!("template {template_id} has no version {version} under {owner}"),
        )
    };
    let Ok(number) = version.parse::<u64>() else {
        return Err(ApiError::new(
            ErrorCode::PathParamInvalid,
            format!("version must be a positive integer, got {version:?}"),
        ));
    };
    let record =
        state.store.template_version(&owner, &template_id, Some(number)).await?.ok_or_else(not_found)?;
    Ok(Json(view(record)?))
}

/// Installs the built-in templates under `global` (idempotent).
#[utoipa::path(post, path = "/v1/templates/install-builtin", tag = "templates", request_body = Option<InstallBody>,
    responses((status = 200, body = InstallReport), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody)))]
async fn install_builtin(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Extension(context): Extension<RequestContext>,
    body: DeferredBody,
) -> Result<Json<InstallReport>, ApiError> {
    principal.require(roles::OWNER)?;
    let InstallBody {} = body.optional_json()?;
    let report =
        install_builtin_templates(state.store.as_ref(), state.clock.now()).await.map_err(|e| match e {
            BuiltinError::Store(e) => ApiError::from(e),
            invalid => ApiError::internal(invalid),
        })?;
    record_admin_action(
        &state,
        &context,
        &principal,
        "template.install_builtin",
        None,
        json!({"installed": report.installed, "already_present": report.already_present}),
        None,
    )
    .await?;
    Ok(Json(InstallReport { installed: report.installed, already_present: report.already_present }))
}

/// Steps 1–3 for a template owner: `global` needs the owner role when `writing`; a tenant must be
/// covered by the token and exist.
async fn require_owner_scope(
    state: &AppState,
    principal: &AdminPrincipal,
    owner: &str,
    writing: bool,
) -> Result<(), ApiError> {
    if owner == GLOBAL_TENANT {
        if writing {
            principal.require(roles::OWNER).map_err(|_| {
                ApiError::new(ErrorCode::AdminForbidden, "only owners may publish global templates")
            })?;
        }
        return Ok(());
    }
    let Ok(tenant) = TenantId::parse(owner) else {
        return Err(ApiError::new(
            ErrorCode::RequestBodySchemaInvalid,
            format!("tenant_id: {owner:?} is neither a tenant id (t_…) nor \"global\""),
        ));
    };
    principal.require_tenant(owner)?;
    if !state.store.catalog_tenant_exists(&tenant).await? {
        return Err(ApiError::new(ErrorCode::TenantNotFound, format!("tenant {owner} does not exist")));
    }
    Ok(())
}

fn check_outcome(record: &TemplateVersionRecord, outcome: PublishOutcome) -> Result<(), ApiError> {
    let (id, v, owner) = (&record.template_id, record.version, &record.owner);
    let error = match outcome {
        PublishOutcome::Published => return Ok(()),
        PublishOutcome::VersionExists => ApiError::new(
            ErrorCode::TemplateVersionExists,
            format!("{id} version {v} is already published under {owner} with this exact body"),
        ),
        PublishOutcome::VersionImmutable => ApiError::new(
            ErrorCode::TemplateVersionImmutable,
            format!(
                "{id} version {v} is already published under {owner} with another body; publish a new version"
            ),
        ),
        PublishOutcome::NotIncremented { latest } => ApiError::new(
            ErrorCode::TemplateVersionNotIncremented,
            format!("{id} version {v} is not higher than the latest published version {latest}"),
        ),
        PublishOutcome::ProviderMismatch { provider } => ApiError::new(
            ErrorCode::TemplateProviderMismatch,
            format!("{id}: earlier versions are for provider {provider:?}, not {:?}", record.provider),
        ),
    };
    Err(error)
}

fn view(record: TemplateVersionRecord) -> Result<TemplateView, ApiError> {
    let template = serde_json::from_str(&record.body).map_err(ApiError::internal)?;
    Ok(TemplateView {
        tenant_id: record.owner,
        template_id: record.template_id,
        version: record.version,
        provider: record.provider,
        created_at: record.created_at,
        template,
    })
}

pub(crate) fn query_invalid(rejection: QueryRejection) -> ApiError {
    ApiError::new(ErrorCode::QueryInvalid, format!("the query string is invalid: {}", rejection.body_text()))
}
