//! The two routers. Each route's handler takes its identity extractors before its body extractor,
//! so the spec's check order (route → identity → body) is the order of the handler's arguments.

pub mod admin;
mod admin_auth;
pub mod data_plane;
pub mod health;
mod metrics;

pub use crate::services::identity::admin::{ADMIN_TOKEN_PREFIX, AdminPrincipal, authenticate, roles};
pub use admin_auth::Admin;

use axum::Router;
use axum::routing::get;

use crate::http::BodyLimit;
use crate::http::context::{ListenerName, request_context, route_not_found};
use crate::routes::health::{healthz, readyz};
use crate::services::AppState;

/// The workload-facing router (HTTPS, mTLS requested).
pub fn data_plane(state: AppState) -> Router {
    let limit = usize::try_from(state.config.data_plane.max_body_bytes).unwrap_or(usize::MAX);
    let execute_limit = data_plane::execute::body_limit(state.config.egress.max_request_body_bytes);
    let (api, document) = data_plane::api(execute_limit);
    let document = std::sync::Arc::new(document);
    api.route("/v1/openapi.json", get(move || async move { axum::Json(document.as_ref().clone()) }))
        .fallback(route_not_found)
        .layer(axum::Extension(BodyLimit(limit)))
        .layer(axum::middleware::from_fn(|r, n| request_context(ListenerName("data_plane"), r, n)))
        .with_state(state)
}

/// The admin router (plain HTTP on loopback, or TLS).
pub fn admin(state: AppState) -> Router {
    let limit = usize::try_from(state.config.data_plane.max_body_bytes).unwrap_or(usize::MAX);
    let console_state = state.clone();
    let (api, document) = admin::api().split_for_parts();
    let document = std::sync::Arc::new(document);
    let api = api
        .route("/v1/openapi.json", get(move || async move { axum::Json(document.as_ref().clone()) }))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::render))
        .fallback(route_not_found)
        .layer(axum::Extension(BodyLimit(limit)))
        .layer(axum::middleware::from_fn_with_state(state.clone(), invalidate_read_cache))
        .layer(axum::middleware::from_fn(|r, n| request_context(ListenerName("admin"), r, n)))
        .with_state(state);
    crate::console::mount(api, console_state)
}

/// After every admin request that may have changed something (any method but GET and HEAD), this
/// instance's read cache is dropped before the answer leaves, so the change is in force at this
/// instance's next request; other instances see it through the change counter within 1 s.
async fn invalidate_read_cache(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let changes = !matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    let response = next.run(request).await;
    if changes {
        state.reads.invalidate();
    }
    response
}
