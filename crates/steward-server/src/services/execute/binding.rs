//! Steps 3 and 4: the integration, looked up in the caller's tenant, and the template it is bound to
//! (its pinned version, else its owner's latest).

use std::sync::Arc;

use serde_json::Value;
use steward_canon::{Injection, Template};
use steward_store::catalog::IntegrationRecord;
use steward_types::{ErrorCode, IntegrationId};

use crate::http::ApiError;
use crate::services::AppState;
use crate::services::identity::MtlsPrincipal;

/// The integration `integration_id` of the caller's tenant: another tenant's is reported exactly
/// like a missing one (`integration_not_found`); a disabled or deleted one is `integration_disabled`.
pub async fn integration(
    state: &AppState,
    principal: &MtlsPrincipal,
    integration_id: &str,
) -> Result<IntegrationRecord, ApiError> {
    let not_found = || {
        ApiError::new(
            ErrorCode::IntegrationNotFound,
            format!("integration {integration_id} does not exist in tenant {}", principal.tenant_id),
        )
    };
    // A malformed id is answered exactly like an unknown one.
    let Ok(id) = IntegrationId::parse(integration_id) else { return Err(not_found()) };
    let record = state
        .reads
        .integration(&id)
        .await?
        .filter(|record| record.tenant_id == principal.tenant_id)
        .ok_or_else(not_found)?;
    if record.deleted_at.is_some() || !record.enabled {
        return Err(ApiError::new(
            ErrorCode::IntegrationDisabled,
            format!("integration {integration_id} is disabled; an admin can enable it"),
        ));
    }
    Ok(record)
}

/// The template version the integration is bound to: `template_not_found` if it vanished.
pub async fn template(state: &AppState, integration: &IntegrationRecord) -> Result<Arc<Template>, ApiError> {
    let record = state
        .reads
        .template_version(&integration.template_owner, &integration.template_id, integration.template_version)
        .await?
        .ok_or_else(|| {
            let version =
                integration.template_version.map_or_else(|| "latest".to_owned(), |v| format!("version {v}"));
            ApiError::new(
                ErrorCode::TemplateNotFound,
                format!(
                    "the template {} ({version}, owner {}) the integration is bound to no longer exists",
                    integration.template_id, integration.template_owner
                ),
            )
        })?;
    // Published versions are immutable: compile once per (owner, id, version) and body.
    state.templates.get_or_compile(&record.owner, &record.template_id, record.version, &record.body, || {
        let body: Value = serde_json::from_str(&record.body).map_err(ApiError::internal)?;
        Template::from_json(&body).map_err(|e| {
            ApiError::internal(format!(
                "stored template {} version {} does not validate: {}",
                record.template_id,
                record.version,
                e.message()
            ))
        })
    })
}

/// The integration's own injection, if it has one (else the template's default applies).
pub fn injection(integration: &IntegrationRecord) -> Result<Option<Injection>, ApiError> {
    match integration.injection.as_ref().filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(value) => Injection::from_json(value).map(Some).map_err(|e| {
            ApiError::internal(format!(
                "integration {}: stored injection does not validate: {}",
                integration.integration_id,
                e.message()
            ))
        }),
    }
}
