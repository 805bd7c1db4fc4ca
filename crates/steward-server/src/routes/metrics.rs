//! `GET /metrics` in Prometheus text format: open on a loopback admin listener, any valid admin token
//! otherwise (metrics reveal traffic shape, which is not for anyone who can reach the port).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::authenticate;
use crate::http::ApiError;
use crate::services::AppState;

pub async fn render(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if !state.admin_is_loopback {
        authenticate(&state, &headers).await?;
    }
    let mut response = state.metrics.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(response)
}
