//! Workload-facing routes of the data plane: enrollment and renewal, sessions, manifests, the
//! manifest keyset and approval polling; the mTLS principal extractor ([`MtlsPrincipal`]) every
//! identified route uses, the session extractor ([`SessionPrincipal`]) of the routes that need a
//! session, and DPoP at the edge ([`dpop_check`]).

pub mod approvals;
pub mod dpop_check;
mod enroll;
pub mod execute;
pub mod forward;
pub mod ip_allowlist;
pub mod keyset;
pub mod manifest;
pub mod openapi;
pub mod principal;
pub mod session;
pub mod session_auth;

pub use principal::MtlsPrincipal;
pub use session_auth::{ExecuteScope, ManifestReadScope, SessionPrincipal, SessionRejection};

use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Every data-plane route, and the OpenAPI document describing them: health, enrollment, sessions,
/// manifests, the keyset, execute and approvals. Registering a handler here also documents it.
///
/// `execute_body_limit` is the execute route's own body limit ([`execute::body_limit`]); it overrides
/// the listener's `data_plane.max_body_bytes`.
pub fn api(execute_body_limit: usize) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (schemas, paths, execute) = routes!(execute::execute);
    let execute = execute.route_layer(axum::Extension(crate::http::BodyLimit(execute_body_limit)));
    let (router, mut document) = OpenApiRouter::with_openapi(openapi::DataPlaneDoc::openapi())
        .routes(routes!(crate::health::healthz))
        .routes(routes!(crate::health::readyz))
        .routes(routes!(enroll::enroll))
        .routes(routes!(enroll::renew))
        .routes(routes!(session::create_session))
        .routes(routes!(keyset::keyset))
        .routes(routes!(manifest::workload_manifest))
        .routes((schemas, paths, execute))
        .routes(routes!(approvals::approval))
        .split_for_parts();
    openapi::finish(&mut document);
    (router, document)
}

/// The data plane's OpenAPI document alone (for tests and tooling); the data plane listener serves it
/// at `GET /v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api(0).1
}
