//! `/healthz` (the process runs) and `/readyz` (the store, and Redis in shared mode, answered within
//! one second). Served on both listeners, without authentication.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

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
