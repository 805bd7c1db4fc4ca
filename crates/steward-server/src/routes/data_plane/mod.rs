//! Workload-facing routes of the data plane: enrollment and renewal, sessions, manifests, the
//! manifest keyset and approval polling; the mTLS principal extractor ([`MtlsPrincipal`]) every
//! identified route uses, the session extractor ([`SessionPrincipal`]) of the routes that need a
//! session. The checks themselves are [`crate::services::identity`].

pub mod approvals;
mod enroll;
pub mod execute;
pub mod forward;
pub mod keyset;
pub mod manifest;
pub mod openapi;
mod principal;
pub mod session;
pub mod session_auth;

pub use crate::services::identity::MtlsPrincipal;
pub use session_auth::{ExecuteScope, ManifestReadScope, SessionPrincipal, SessionRejection};

use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::LogFields;
use crate::services::AppState;

/// Every data-plane route, and the OpenAPI document describing them: health, enrollment, sessions,
/// manifests, the keyset, execute and approvals. Registering a handler here also documents it.
///
/// `execute_body_limit` is the execute route's own body limit ([`execute::body_limit`]); it overrides
/// the listener's `data_plane.max_body_bytes`.
pub fn api(execute_body_limit: usize) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (schemas, paths, execute) = routes!(execute::execute);
    let execute = execute.route_layer(axum::Extension(crate::http::BodyLimit(execute_body_limit)));
    let (router, mut document) = OpenApiRouter::with_openapi(openapi::DataPlaneDoc::openapi())
        .routes(routes!(crate::routes::health::healthz))
        .routes(routes!(crate::routes::health::readyz))
        .routes(routes!(enroll::enroll))
        .routes(routes!(enroll::renew))
        .routes(routes!(session::create_session))
        .routes(routes!(keyset::keyset))
        .routes(routes!(manifest::workload_manifest))
        .routes((schemas, paths, execute))
        .routes(routes!(approvals::approval))
        .split_for_parts();
    let router =
        forward::target::ROUTES.iter().fold(router, |router, path| router.route(path, forward_route()));
    forward_document(&mut document);
    openapi::finish(&mut document);
    (router, document)
}

/// Forward mode (`/v1/forward/{*target}`, and the bare prefix): every execute method to one handler, anything else 405 in
/// the forward shape. Registered by hand: the wildcard route is not the documented path (whose
/// `{target}` spans several segments).
fn forward_route() -> axum::routing::MethodRouter<AppState> {
    use axum::routing::get;
    use forward::route::{forward, method_fallback};
    get(forward)
        .head(forward)
        .post(forward)
        .put(forward)
        .patch(forward)
        .delete(forward)
        .fallback(method_fallback)
}

/// Adds forward mode's operation and its error schemas to the document.
fn forward_document(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::{PartialSchema, Path, ToSchema};
    type Doc = forward::route::__path_forward;
    document.paths.add_path_operation(Doc::path(), Doc::methods(), Doc::operation());
    let components = document.components.get_or_insert_with(Default::default);
    components.schemas.insert(openapi::ForwardError::name().into_owned(), openapi::ForwardError::schema());
    components
        .schemas
        .insert(openapi::ForwardErrorDetail::name().into_owned(), openapi::ForwardErrorDetail::schema());
}

/// The data plane's OpenAPI document alone (for tests and tooling); the data plane listener serves it
/// at `GET /v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api(0).1
}

/// The request log line's workload ids for a data-plane answer (the reason code an error response already carries is kept).
pub(crate) fn with_log_fields(
    mut response: axum::response::Response,
    principal: &MtlsPrincipal,
    integration_id: Option<String>,
) -> axum::response::Response {
    let reason_code = response.extensions().get::<LogFields>().and_then(|f| f.reason_code.clone());
    response.extensions_mut().insert(LogFields {
        tenant_id: Some(principal.tenant_id.to_string()),
        workload_id: Some(principal.workload_id.to_string()),
        integration_id,
        reason_code,
    });
    response
}
