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
use crate::routes::admin::ErrorBody;
use crate::routes::admin::keys::{Keyset, keyset_response, manifest_keyset};
use crate::services::AppState;

/// The manifest keyset (JWKs): the active signing key and every retired key whose manifests may still
/// be valid. Cacheable (`cache-control: public, max-age=60`, a strong `etag`, 304 on `if-none-match`).
#[utoipa::path(get, path = "/v1/keys/manifest", tag = "manifests", operation_id = "manifest_keyset",
    security(("mtls" = [])),
    params(("if-none-match" = Option<String>, Header, description = "An etag from an earlier answer.")),
    responses(
        (status = 200, body = Keyset, headers(
            ("cache-control" = String, description = "public, max-age=60"),
            ("etag" = String, description = "A strong etag of the body."))),
        (status = 304, description = "if-none-match matched the current etag"),
        (status = 401, body = ErrorBody, description = "mtls_required, workload_disabled, certificate_revoked, certificate_expired"),
        (status = 403, body = ErrorBody, description = "workload_ip_denied"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn keyset(
    State(state): State<AppState>,
    _principal: MtlsPrincipal,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    keyset_response(&manifest_keyset(&state).await?, &headers)
}
