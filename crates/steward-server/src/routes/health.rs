//! `/healthz` (the process runs) and `/readyz` (the store, and Redis in shared mode, answered within
//! one second). Served on both listeners, without authentication.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::services::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "health", operation_id = "healthz", security(()),
    responses((status = 200, body = crate::routes::data_plane::openapi::Health)))]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// 200 when the store (and Redis in shared mode) answered within one second, else 503.
#[utoipa::path(get, path = "/readyz", tag = "health", operation_id = "readyz", security(()),
    responses(
        (status = 200, body = crate::routes::data_plane::openapi::Readiness),
        (status = 503, body = crate::routes::data_plane::openapi::Readiness),
    ))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let store_ok = matches!(tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()).await, Ok(Ok(())));
    let redis = if state.coord.is_shared() {
        match tokio::time::timeout(CHECK_TIMEOUT, state.coord.ping()).await {
            Ok(Ok(())) => "ok",
            _ => "error",
        }
    } else {
        "absent"
    };
    let store = if store_ok { "ok" } else { "error" };
    let ready = store_ok && redis != "error";
    let checks = json!({"store": store, "redis": redis});
    if ready {
        (StatusCode::OK, Json(json!({"status": "ready", "checks": checks})))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "checks": checks})))
    }
}
