//! `GET /v1/keys/manifest` on the data plane: the manifest keyset (the active signing key and every
//! retired key whose manifests may still be valid), for workloads and interceptors verifying
//! manifests. mTLS is required (`spec/data-plane.md`, route table); the document, its caching headers
//! (`cache-control: public, max-age=60`, a strong `etag`, 304 on a matching `if-none-match`) and its
//! content are the admin listener's, built by the same function.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::MtlsPrincipal;
use crate::http::ApiError;
use crate::routes::admin::keys::{keyset_response, manifest_keyset};
use crate::state::AppState;

/// `GET /v1/keys/manifest`.
pub async fn keyset(
    State(state): State<AppState>,
    _principal: MtlsPrincipal,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    keyset_response(&manifest_keyset(&state).await?, &headers)
}
