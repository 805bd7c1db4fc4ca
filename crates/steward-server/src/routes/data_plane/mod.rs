//! Workload-facing routes of the data plane: enrollment and renewal, sessions, manifests, the
//! manifest keyset and approval polling; the mTLS principal extractor ([`MtlsPrincipal`]) every
//! identified route uses, the session extractor ([`SessionPrincipal`]) of the routes that need a
//! session, and DPoP at the edge ([`dpop_check`]).

pub mod approvals;
pub mod dpop_check;
mod enroll;
pub mod execute;
pub mod ip_allowlist;
pub mod keyset;
pub mod manifest;
pub mod principal;
pub mod session;
pub mod session_auth;

pub use principal::MtlsPrincipal;
pub use session_auth::{ExecuteScope, ManifestReadScope, SessionPrincipal, SessionRejection};

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

/// Enrollment, sessions, manifests, the keyset and approvals.
///
/// `execute_body_limit` is the execute route's own body limit ([`execute::body_limit`]); it overrides
/// the listener's `data_plane.max_body_bytes`.
pub fn router(execute_body_limit: usize) -> Router<AppState> {
    Router::new()
        .route(
            "/v1/execute",
            post(execute::execute).route_layer(axum::Extension(crate::http::BodyLimit(execute_body_limit))),
        )
        .route("/v1/enroll", post(enroll::enroll))
        .route("/v1/enroll/renew", post(enroll::renew))
        .route("/v1/session", post(session::create_session))
        .route("/v1/keys/manifest", get(keyset::keyset))
        .route("/v1/workloads/{workload_id}/manifest", get(manifest::workload_manifest))
        .route("/v1/approvals/{approval_id}", get(approvals::approval))
}
