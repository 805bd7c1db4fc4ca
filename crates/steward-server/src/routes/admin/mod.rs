//! The admin API (`spec/control-plane.md`). Each resource is a module that returns an
//! [`OpenApiRouter`]; registering a handler with `routes!` also adds it to the OpenAPI document
//! served at `GET /v1/openapi.json`, so the document is generated from the code and cannot drift.
//!
//! Every handler follows the spec's check order explicitly: authenticate (the [`Admin`] extractor),
//! role (`principal.require`), tenant (`principal.require_tenant`), existence (`principal.visible`),
//! and only then the body ([`crate::http::DeferredBody`]).

pub mod approvals;
pub mod audit;
pub mod catalog_secrets;
mod identity_common;
mod identity_credentials;
pub mod integrations;
pub mod keys;
pub mod policies;
pub mod templates;
pub mod tenants;
pub mod tokens;
mod whoami;
pub mod workloads;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use crate::services::AppState;

#[allow(unused_imports)]
pub(crate) use super::{Admin, AdminPrincipal, roles};

/// The shape of every error body (for the OpenAPI document).
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code from `docs/errors.md`.
    pub error: String,
    pub message: String,
    pub correlation_id: String,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Steward admin API", description = "Tenants, workloads, integrations, templates, policies, approvals, audit and keys."),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody)),
    security(("admin_token" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("stw_adm_…").build(),
            ),
        );
    }
}

/// Writes the `admin_action` audit event of a mutation (actor token id and role, action, target ids,
/// and for templates and policies the new value) and waits for its commit. Call it after the change
/// succeeded and before answering; a failure answers 503 `audit_write_failed` (logged at ERROR: the
/// change is in the store but its audit record is not).
pub(crate) async fn record_admin_action(
    state: &AppState,
    context: &crate::http::RequestContext,
    principal: &AdminPrincipal,
    action: &str,
    tenant_id: Option<&str>,
    targets: serde_json::Value,
    value: Option<serde_json::Value>,
) -> Result<(), crate::http::ApiError> {
    use steward_store::audit::{AuditEvent, EventType};
    let mut event = AuditEvent::new(EventType::AdminAction, principal.actor(), state.clock.now())
        .with_request_id(context.request_id.to_string())
        .with_correlation_id(context.correlation_id.clone())
        .with_metadata("action", action.into())
        .with_metadata("role", principal.role.as_str().into())
        .with_metadata("targets", targets);
    if let Some(tenant_id) = tenant_id {
        event = event.with_tenant(tenant_id);
    }
    if let Some(value) = value {
        event = event.with_metadata("value", value);
    }
    state.audit.append(event).await?;
    Ok(())
}

/// Every admin API route, with its OpenAPI description.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(whoami::router())
        .merge(templates::router())
        .merge(integrations::router())
        .merge(policies::router())
        .merge(approvals::router())
        .merge(audit::router())
        .merge(keys::router())
        .merge(tokens::router())
        .merge(tenants::router())
        .merge(workloads::router())
        .merge(identity_credentials::router())
}

/// The OpenAPI document alone (for tests and tooling).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}
