//! Keys (`spec/keys-and-audit.md`, "Manifest signing keys" and "Rotation"): the manifest keyset,
//! manifest key rotation, KEK usage and re-wrapping every envelope under the active KEK.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use steward_crypto::{Envelope, SigningKey};
use steward_store::audit::{AuditEvent, EventType};
use steward_store::{EnvelopeRecord, SigningKeyRecord, StoreError};
use steward_types::{SigningKeyId, Timestamp};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Admin, AdminPrincipal, roles};
use crate::http::{ApiError, DeferredBody, RequestContext};
use crate::services::AppState;
use crate::services::credentials::envelope::{seal_record, signing_key_context};

/// Envelopes read per round trip while re-wrapping.
const REWRAP_PAGE: u32 = 500;

/// One public key of the manifest keyset (an Ed25519 JWK).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicJwk {
    /// `OKP`.
    pub kty: String,
    /// `Ed25519`.
    pub crv: String,
    /// The raw public key, base64url.
    pub x: String,
    pub kid: String,
    /// `EdDSA`.
    pub alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Keyset {
    /// The active key first, then retired keys whose manifests may still be valid.
    pub keys: Vec<PublicJwk>,
}

/// The published keyset: the active manifest signing key and every key retired less than
/// `manifest.ttl_seconds` ago (a manifest it signed may still be valid). The data plane's keyset
/// endpoint serves the same.
pub async fn manifest_keyset(state: &AppState) -> Result<Keyset, ApiError> {
    let ttl = i64::from(state.config.manifest.ttl_seconds);
    // Another instance may sign with a key for up to 30 s after its retirement (the active key is
    // cached that long), so a retired key stays published that much longer than a manifest lives.
    let retired_after =
        state.clock.now().plus_seconds(-ttl - crate::services::keys::SIGNING_KEY_CACHE_SECONDS);
    let records = state.store.published_signing_keys(retired_after).await?;
    let keys = records
        .iter()
        .map(|record| PublicJwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(&record.public_key),
            kid: record.kid.to_string(),
            alg: "EdDSA".into(),
            use_: "sig".into(),
        })
        .collect();
    Ok(Keyset { keys })
}

/// The keyset as a cacheable response: `cache-control: public, max-age=60`, a strong `etag` (quoted
/// hex SHA-256 of the body) and `304 Not Modified` when `if-none-match` names it.
pub fn keyset_response(keyset: &Keyset, request_headers: &HeaderMap) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(keyset).map_err(ApiError::internal)?;
    let etag: String = steward_crypto::sha256(&body).iter().map(|b| format!("{b:02x}")).collect();
    let etag = format!("\"{etag}\"");
    let matches = request_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag);
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = body.into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    headers.insert(header::ETAG, HeaderValue::from_str(&etag).map_err(ApiError::internal)?);
    Ok(response)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyBody {}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedView {
    /// The new active key.
    pub kid: String,
    /// The key it replaced, still published until its manifests expire.
    pub retired_kid: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KekStatus {
    pub active_key_id: String,
    /// How many live envelopes each KEK id still protects; a key can be removed at 0.
    pub envelopes_by_key_id: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RewrapView {
    pub rewrapped: u64,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_keyset))
        .routes(routes!(rotate))
        .routes(routes!(kek_status))
        .routes(routes!(rewrap))
}

/// The manifest signing keyset.
#[utoipa::path(get, path = "/v1/keys/manifest", tag = "keys",
    responses((status = 200, body = Keyset), (status = 304, description = "if-none-match matched"),
        (status = 401, body = super::ErrorBody)))]
async fn get_keyset(
    State(state): State<AppState>,
    Admin(principal): Admin,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    principal.require(roles::READ)?;
    keyset_response(&manifest_keyset(&state).await?, &headers)
}

/// Makes a new Ed25519 manifest signing key active and retires the current one.
#[utoipa::path(post, path = "/v1/keys/manifest/rotate", tag = "keys", request_body(content = Option<EmptyBody>),
    responses((status = 200, body = RotatedView), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody)))]
async fn rotate(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Extension(context): Extension<RequestContext>,
    body: DeferredBody,
) -> Result<Json<RotatedView>, ApiError> {
    principal.require(roles::OWNER)?;
    let _: EmptyBody = body.optional_json()?;
    let now = state.clock.now();
    let kid = SigningKeyId::generate();
    let (key, pkcs8) = SigningKey::generate(kid.clone()).map_err(ApiError::internal)?;
    let sealed =
        seal_record(&state.keyring.load(), &signing_key_context(&kid), &pkcs8).map_err(ApiError::internal)?;
    let record = SigningKeyRecord {
        kid: kid.clone(),
        public_key: key.public_key_raw().to_vec(),
        private_key: sealed,
        created_at: now,
        retired_at: None,
    };
    let retired = match state.store.rotate_signing_key(&record, now).await {
        Ok(retired) => retired,
        // Another rotation won the race for the one active slot: nothing of ours was written.
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(
                steward_types::ErrorCode::StorageUnavailable,
                "another rotation is in progress; retry",
            ));
        }
        Err(other) => return Err(other.into()),
    };
    // This instance signs with the new key at once; the others follow within 30 s.
    state.signing_key.install(key, now);
    let metadata = serde_json::json!({
        "key": "manifest_signing_key",
        "kid": kid.as_str(),
        "retired_kid": retired.as_ref().map(|k| k.as_str()),
    });
    record_key_rotated(&state, &context, &principal, metadata).await?;
    tracing::info!(kid = %kid, "Manifest signing key rotated.");
    Ok(Json(RotatedView {
        kid: kid.to_string(),
        retired_kid: retired.map(|k| k.to_string()),
        created_at: now,
    }))
}

/// The active KEK id and how many envelopes each KEK id protects.
#[utoipa::path(get, path = "/v1/keys/kek", tag = "keys",
    responses((status = 200, body = KekStatus), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody)))]
async fn kek_status(
    State(state): State<AppState>,
    Admin(principal): Admin,
) -> Result<Json<KekStatus>, ApiError> {
    principal.require(roles::OWNER)?;
    let envelopes_by_key_id = state.store.envelope_counts_by_kek().await?;
    Ok(Json(KekStatus { active_key_id: state.keyring.load().active_id().to_owned(), envelopes_by_key_id }))
}

/// Re-wraps every envelope's data key under the active KEK (ciphertexts untouched).
#[utoipa::path(post, path = "/v1/keys/kek/rewrap", tag = "keys", request_body(content = Option<EmptyBody>),
    responses((status = 200, body = RewrapView), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody)))]
async fn rewrap(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Extension(context): Extension<RequestContext>,
    body: DeferredBody,
) -> Result<Json<RewrapView>, ApiError> {
    principal.require(roles::OWNER)?;
    let _: EmptyBody = body.optional_json()?;
    let keyring = state.keyring.load_full();
    let active = keyring.active_id().to_owned();
    let mut rewrapped = 0_u64;
    let mut after: Option<String> = None;
    loop {
        let page = state.store.list_envelopes(after.as_deref(), REWRAP_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.envelope_id.clone());
        for record in page.iter().filter(|r| r.kek_id != active) {
            let new = rewrap_record(&keyring, record)?;
            // Compare and set: an envelope another instance re-wrapped (or replaced) meanwhile is skipped.
            if state.store.replace_envelope(&record.envelope_id, &record.kek_id, &new).await? {
                rewrapped += 1;
            }
        }
    }
    let metadata = serde_json::json!({"key": "kek", "active_key_id": active, "rewrapped": rewrapped});
    record_key_rotated(&state, &context, &principal, metadata).await?;
    tracing::info!(active_key_id = %active, rewrapped, "Envelopes re-wrapped under the active KEK.");
    Ok(Json(RewrapView { rewrapped }))
}

/// Re-wraps one envelope under the active KEK, bound to the AAD stored with it.
fn rewrap_record(
    keyring: &steward_crypto::Keyring,
    record: &EnvelopeRecord,
) -> Result<EnvelopeRecord, ApiError> {
    let fail = |detail: String| ApiError::internal(format!("envelope {}: {detail}", record.envelope_id));
    let context: serde_json::Value = serde_json::from_str(&record.aad).map_err(|e| fail(e.to_string()))?;
    let envelope = Envelope::from_json(&record.body).map_err(|e| fail(e.to_string()))?;
    let new =
        steward_crypto::rewrap_recorded(keyring, &context, &envelope).map_err(|e| fail(e.to_string()))?;
    Ok(EnvelopeRecord {
        envelope_id: record.envelope_id.clone(),
        kek_id: new.kek_id().to_owned(),
        aad: record.aad.clone(),
        body: new.to_json(),
    })
}

async fn record_key_rotated(
    state: &AppState,
    context: &RequestContext,
    principal: &AdminPrincipal,
    metadata: serde_json::Value,
) -> Result<(), ApiError> {
    let mut event = AuditEvent::new(EventType::KeyRotated, principal.actor(), state.clock.now())
        .with_request_id(context.request_id.to_string())
        .with_correlation_id(context.correlation_id.clone())
        .with_metadata("role", principal.role.as_str().into());
    if let serde_json::Value::Object(fields) = metadata {
        for (key, value) in fields {
            event = event.with_metadata(key, value);
        }
    }
    state.audit.append(event).await?;
    Ok(())
}
