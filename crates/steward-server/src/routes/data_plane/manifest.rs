//! `GET /v1/workloads/{workload_id}/manifest` (`spec/data-plane.md`): a signed, short-lived document
//! telling the workload's interceptor which outbound calls to send through Steward.
//!
//! One rule per enabled integration of the tenant, from the template version it is bound to (its
//! pinned version, else the owner's latest): hosts, schemes and ports, and every path pattern of every
//! group. The payload is the RFC 8785 (JCS) serialization of the manifest without `signature`,
//! signed as a compact JWS with the protected header exactly
//! `{"alg":"EdDSA","kid":…,"typ":"broker-manifest+jws"}` by the store's active signing key (cached at
//! most 30 s: [`crate::services::keys::ActiveSigningKey`]). Any JOSE library verifies it with the key of that
//! `kid` from `GET /v1/keys/manifest`.
//!
//! Audit: `manifest_issued` allowed, or denied with the reason code for every refusal after the
//! workload was identified.

use axum::Extension;
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use steward_canon::Template;
use steward_store::audit::{AuditEvent, Decision, EventType};
use steward_types::{ErrorCode, Timestamp};

use super::MtlsPrincipal;
use super::session_auth::{ManifestReadScope, SessionPrincipal, SessionRejection, path_param};
use crate::http::{ApiError, LogFields, RequestContext};
use crate::routes::admin::ErrorBody;
use crate::services::AppState;
use crate::services::audit::{is_decision, workload_event};
use crate::services::identity::dpop;
use crate::services::keys::ActiveKeyError;

/// The `typ` of a manifest JWS.
pub const MANIFEST_JWS_TYP: &str = "broker-manifest+jws";
/// The manifest format version.
pub const MANIFEST_VERSION: u32 = 1;

/// The calling workload's signed manifest: one rule per enabled integration of its tenant. Verify the
/// signature with the keyset (`GET /v1/keys/manifest`) before trusting it.
#[utoipa::path(get, path = "/v1/workloads/{workload_id}/manifest", tag = "manifests", operation_id = "workload_manifest",
    security(("mtls" = [], "session" = []), ("mtls" = [], "session" = [], "dpop" = [])),
    params(("workload_id" = String, Path, description = "The caller's own workload id (w_…)")),
    responses(
        (status = 200, body = super::openapi::Manifest),
        (status = 400, body = ErrorBody, description = "path_param_invalid"),
        (status = 401, body = ErrorBody, description = "mtls_*, session_*, dpop_* (with WWW-Authenticate)"),
        (status = 403, body = ErrorBody, description = "workload_ip_denied, session_scope_missing (needs scope manifest.read), manifest_workload_mismatch"),
        (status = 404, body = ErrorBody, description = "manifest_no_rules"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn workload_manifest(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    session: Result<SessionPrincipal<ManifestReadScope>, SessionRejection>,
    workload_id: Result<Path<String>, PathRejection>,
) -> Response {
    let (principal, result) = match session {
        Ok(session) => {
            let result = match path_param(workload_id) {
                Ok(workload_id) => {
                    manifest_for(&state, &session.mtls, &workload_id, session.dpop_required).await
                }
                Err(error) => Err(error),
            };
            (session.mtls, result)
        }
        Err(SessionRejection { error, principal: Some(principal) }) => (principal, Err(error)),
        Err(SessionRejection { error, principal: None }) => return error.into_response(),
    };
    let fields = LogFields {
        tenant_id: Some(principal.tenant_id.to_string()),
        workload_id: Some(principal.workload_id.to_string()),
        ..LogFields::default()
    };
    let outcome = match result {
        Ok(manifest) => {
            let event = event(&state, &context, &principal)
                .with_decision(Decision::Allowed)
                .with_metadata("kid", manifest["signature"]["kid"].clone())
                .with_metadata("expires_at", manifest["expires_at"].clone())
                .with_metadata(
                    "integration_ids",
                    manifest["match_rules"]
                        .as_array()
                        .map(|rules| rules.iter().map(|r| r["integration_id"].clone()).collect())
                        .unwrap_or_default(),
                );
            match state.audit.append(event).await {
                Ok(_) => {
                    metrics::counter!("steward_manifests_issued_total").increment(1);
                    Json(manifest).into_response()
                }
                Err(error) => ApiError::from(error).into_response(),
            }
        }
        Err(error) => {
            let audited = if is_decision(error.code) {
                let event = event(&state, &context, &principal)
                    .with_decision(Decision::Denied)
                    .with_reason_code(error.code.as_str());
                state.audit.append(event).await.map(|_| ()).map_err(ApiError::from)
            } else {
                Ok(())
            };
            match audited {
                Ok(()) => error.into_response(),
                Err(audit_error) => audit_error.into_response(),
            }
        }
    };
    let mut response = outcome;
    response.extensions_mut().insert(fields);
    response
}

fn event(state: &AppState, context: &RequestContext, principal: &MtlsPrincipal) -> AuditEvent {
    workload_event(state, context, principal, EventType::ManifestIssued)
}

async fn manifest_for(
    state: &AppState,
    principal: &MtlsPrincipal,
    workload_id: &str,
    dpop_required: bool,
) -> Result<Value, ApiError> {
    if workload_id != principal.workload_id.as_str() {
        return Err(ApiError::new(
            ErrorCode::ManifestWorkloadMismatch,
            "a workload may read only its own manifest (the workload id of its client certificate)",
        ));
    }
    let rules = match_rules(state, principal).await?;
    if rules.is_empty() {
        return Err(ApiError::new(
            ErrorCode::ManifestNoRules,
            "the tenant has no enabled integration, so there is nothing to route through Steward",
        ));
    }
    // Whole seconds: the manifest says what it means without sub-second noise.
    let now = state.clock.now();
    let issued_at = Timestamp::from_unix_seconds(now.unix_seconds()).unwrap_or(now);
    let expires_at = issued_at.plus_seconds(i64::from(state.config.manifest.ttl_seconds));
    let origin = dpop::expected_htu(state, "")?;
    let manifest = json!({
        "manifest_version": MANIFEST_VERSION,
        "workload_id": principal.workload_id.as_str(),
        "issued_at": issued_at,
        "expires_at": expires_at,
        "broker_execute_url": format!("{origin}/v1/execute"),
        "dpop_required": dpop_required,
        "dpop_ath_required": dpop_required,
        "match_rules": rules,
    });
    sign(state, manifest).await
}

/// Adds `signature: {alg, kid, jws}` over the JCS form of `manifest`.
pub async fn sign(state: &AppState, mut manifest: Value) -> Result<Value, ApiError> {
    let payload = serde_jcs::to_vec(&manifest).map_err(ApiError::internal)?;
    let key = state.signing_key.current(state).await.map_err(|error| match error {
        ActiveKeyError::Store(store) => ApiError::from(store),
        other => ApiError::internal(other),
    })?;
    let kid = key.kid().as_str().to_owned();
    // Members in this order whether or not serde_json preserves insertion order (alg < kid < typ).
    let header = json!({"alg": "EdDSA", "kid": kid, "typ": MANIFEST_JWS_TYP});
    let jws = key.sign_compact_jws(&header, &payload).map_err(ApiError::internal)?;
    if let Some(object) = manifest.as_object_mut() {
        object.insert("signature".to_owned(), json!({"alg": "EdDSA", "kid": kid, "jws": jws}));
    }
    Ok(manifest)
}

/// One rule per enabled integration of the workload's tenant, in creation order. An integration whose
/// template version is gone (it could not execute either) is left out and logged.
async fn match_rules(state: &AppState, principal: &MtlsPrincipal) -> Result<Vec<Value>, ApiError> {
    let integrations =
        state.store.list_integrations(Some(std::slice::from_ref(&principal.tenant_id))).await?;
    let mut rules = Vec::new();
    for integration in integrations.iter().filter(|i| i.enabled && i.deleted_at.is_none()) {
        let record = state
            .store
            .template_version(
                &integration.template_owner,
                &integration.template_id,
                integration.template_version,
            )
            .await?;
        let Some(record) = record else {
            tracing::warn!(integration_id = %integration.integration_id, template_id = %integration.template_id,
                "The integration's template version no longer exists; it is left out of manifests.");
            continue;
        };
        let template = serde_json::from_str::<Value>(&record.body)
            .map_err(|e| e.to_string())
            .and_then(|body| Template::from_json(&body).map_err(|e| e.message().to_owned()));
        let template = match template {
            Ok(template) => template,
            Err(detail) => {
                tracing::error!(integration_id = %integration.integration_id, template_id = %integration.template_id,
                    version = record.version, %detail, "A stored template version does not validate; it is left out of manifests.");
                continue;
            }
        };
        let mut path_groups: Vec<&str> = Vec::new();
        for pattern in template.groups().iter().flat_map(|group| group.patterns()) {
            if !path_groups.contains(&pattern.as_str()) {
                path_groups.push(pattern.as_str());
            }
        }
        let groups: Vec<Value> = template.groups().iter().map(manifest_group).collect();
        rules.push(json!({
            "integration_id": integration.integration_id.as_str(),
            "name": integration.name,
            "provider": integration.provider,
            "groups": groups,
            "match": {
                "hosts": template.hosts(),
                "schemes": template.schemes(),
                "ports": template.ports(),
                "path_groups": path_groups,
            },
            "rewrite": {"mode": "execute", "send_intended_url": true},
        }));
    }
    Ok(rules)
}

/// What a workload-side tool needs to know about one path group (`spec/gateway.md` §2): enough to
/// describe it and to shape a request the group admits, nothing about secrets or policy.
fn manifest_group(group: &steward_canon::PathGroup) -> Value {
    let mut entry = json!({
        "group_id": group.id(),
        "methods": group.methods().iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        "path_patterns": group.patterns().iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "query_allowlist": group.query_allowlist(),
        "header_forward_allowlist": group.header_forward_allowlist(),
        "risk_tier": group.risk_tier(),
        "approval_mode": group.approval_mode(),
    });
    if let (Some(description), Some(object)) = (group.description(), entry.as_object_mut()) {
        object.insert("description".to_owned(), Value::from(description));
    }
    entry
}
