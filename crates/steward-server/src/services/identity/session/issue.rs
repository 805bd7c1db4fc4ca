//! Issuing a session, `POST /v1/session` (`spec/data-plane.md`): a short-lived session for the mTLS workload, bound to
//! its certificate and, when a DPoP proof is sent, to the proof's key.
//!
//! Order: mTLS identity → the DPoP proof when one is sent (always verified, required or not) →
//! `dpop_missing` when the workload or tenant requires DPoP → the body (TTL, scopes) → the
//! per-workload rate limit → the proof's jti (last, so a refused request never burns it) → the
//! session is written (count and insert in one transaction, so instances together never exceed the
//! limit) → `session_issued`.
//!
//! The rate limit counts the workload's sessions in the store: durable and shared by every
//! instance, with no Redis involved (Redis holds only DPoP jtis, rate-limit rules and idempotency
//! keys). Every refusal after identification writes `session_issued` denied (throttled for the rate
//! limit) with its reason code, except infrastructure failures, which are not decisions.

use http::{HeaderMap, HeaderValue, header};
use serde::{Deserialize, Serialize};
use steward_crypto::generate_token;
use steward_store::audit::{AuditEvent, Decision, EventType};
use steward_store::{RecentSessions, SessionInsertOutcome, SessionRecord};
use steward_types::{ErrorCode, SessionId, Timestamp};
use utoipa::ToSchema;

use super::{ALL_SCOPES, SESSION_TOKEN_PREFIX};
use crate::http::{ApiError, DeferredBody, RequestContext};
use crate::services::AppState;
use crate::services::audit::{is_decision, workload_event};
use crate::services::identity::MtlsPrincipal;
use crate::services::identity::dpop::{self, ProofFor};

/// The session TTL range a request may ask for.
pub const MIN_TTL_SECONDS: u64 = 60;
pub const MAX_TTL_SECONDS: u64 = 3600;
/// The window of `session.max_per_minute`.
const RATE_WINDOW_SECONDS: i64 = 60;

/// Every field is optional; an empty body (any or no content type) means `{}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// 60–3600; default `session.default_ttl_seconds` (900).
    pub requested_ttl_seconds: Option<u64>,
    /// `execute` and/or `manifest.read`; absent or empty means both.
    pub scopes: Option<Vec<String>>,
}

/// A session token, bound to the client certificate (and to the DPoP key when a proof was sent).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    /// `stw_sess_` + 43 base64url characters. Send it as `Authorization: Bearer …` (or `DPoP …` when
    /// bound); only its SHA-256 is stored.
    pub session_token: String,
    pub session_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    pub scopes: Vec<String>,
    /// `x5t#S256` of the client certificate the session is bound to.
    pub bound_cert_thumbprint: String,
    /// The RFC 7638 thumbprint of the DPoP key; present only for a DPoP-bound session.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub dpop_jkt: Option<String>,
}

/// Checks the request and writes the session and its `session_issued` event; a refusal is
/// returned for the caller to audit with [`audit_refusal`].
pub async fn issue(
    state: &AppState,
    context: &RequestContext,
    principal: &MtlsPrincipal,
    headers: &HeaderMap,
    body: DeferredBody,
) -> Result<SessionResponse, ApiError> {
    // A proof that is sent is always verified (everything but its jti, which comes last).
    let proof = if dpop::proof_values(headers).is_empty() {
        None
    } else {
        let proof_for =
            ProofFor { method: "POST", path: "/v1/session", access_token: None, expected_jkt: None };
        Some(dpop::verify(state, headers, proof_for)?)
    };
    if proof.is_none() && dpop::dpop_required(state, principal).await? {
        return Err(dpop::dpop_failure(
            ErrorCode::DpopMissing,
            "this workload requires DPoP: send a DPoP proof (htu <public_base_url>/v1/session) with the request",
        ));
    }

    let request: SessionRequest = body.optional_json()?;
    let ttl = ttl_seconds(state, request.requested_ttl_seconds)?;
    let scopes = scopes(request.scopes)?;

    let now = state.clock.now();
    let window_start = now.plus_seconds(-RATE_WINDOW_SECONDS);
    let max = u64::from(state.config.session.max_per_minute);
    let recent = state.store.recent_sessions(&principal.workload_id, window_start).await?;
    if recent.count >= max {
        return Err(rate_limited(state, now, recent));
    }

    if let Some(proof) = &proof {
        dpop::check_replay(state, proof).await?;
    }

    let token = generate_token(SESSION_TOKEN_PREFIX);
    // (The certificate it is bound to is checked on every request, its validity by the TLS layer.)
    let expires_at = now.plus_seconds(ttl);
    let record = SessionRecord {
        session_id: SessionId::generate(),
        workload_id: principal.workload_id.clone(),
        token_hash: token.hash(),
        scopes: scopes.clone(),
        cert_thumbprint: principal.thumbprint.clone(),
        dpop_jkt: proof.as_ref().map(|p| p.jkt().to_owned()),
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    match state.store.insert_session_limited(&record, window_start, max).await? {
        SessionInsertOutcome::Inserted => {}
        SessionInsertOutcome::LimitReached(recent) => return Err(rate_limited(state, now, recent)),
        SessionInsertOutcome::WorkloadInactive => {
            return Err(ApiError::new(
                ErrorCode::WorkloadDisabled,
                format!("workload {} is disabled", principal.workload_id),
            ));
        }
    }

    let event = base_event(state, context, principal)
        .with_decision(Decision::Allowed)
        .with_metadata("session_id", record.session_id.as_str().into())
        .with_metadata("scopes", scopes.clone().into())
        .with_metadata("dpop_bound", record.dpop_jkt.is_some().into())
        .with_metadata("expires_at", expires_at.to_rfc3339().into())
        .with_metadata("cert_serial", principal.serial.clone().into());
    state.audit.append(event).await?;
    metrics::counter!("steward_sessions_issued_total", "dpop_bound" => if record.dpop_jkt.is_some() { "true" } else { "false" })
        .increment(1);
    tracing::info!(tenant_id = %principal.tenant_id, workload_id = %principal.workload_id,
        session_id = %record.session_id, dpop_bound = record.dpop_jkt.is_some(), "Session issued.");

    Ok(SessionResponse {
        session_token: token.expose().to_owned(),
        session_id: record.session_id.to_string(),
        expires_at,
        scopes,
        bound_cert_thumbprint: record.cert_thumbprint,
        dpop_jkt: record.dpop_jkt,
    })
}

/// `requested_ttl_seconds` in 60..=3600, or `session.default_ttl_seconds`.
fn ttl_seconds(state: &AppState, requested: Option<u64>) -> Result<i64, ApiError> {
    let ttl = requested.unwrap_or_else(|| u64::from(state.config.session.default_ttl_seconds));
    if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl) {
        return Err(ApiError::new(
            ErrorCode::RequestBodySchemaInvalid,
            format!("requested_ttl_seconds: must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS}"),
        ));
    }
    Ok(i64::try_from(ttl).unwrap_or(i64::MAX))
}

/// Absent or `[]`: every scope. Otherwise each must be known; the result is in canonical order.
fn scopes(requested: Option<Vec<String>>) -> Result<Vec<String>, ApiError> {
    let requested = requested.unwrap_or_default();
    if let Some(unknown) = requested.iter().find(|s| !ALL_SCOPES.contains(&s.as_str())) {
        let unknown: String = unknown.chars().take(64).collect();
        return Err(ApiError::new(
            ErrorCode::SessionScopeInvalid,
            format!("scopes: unknown scope {unknown:?}; allowed: {}", ALL_SCOPES.join(", ")),
        ));
    }
    Ok(ALL_SCOPES
        .iter()
        .filter(|scope| requested.is_empty() || requested.iter().any(|r| r == *scope))
        .map(|scope| (*scope).to_owned())
        .collect())
}

/// 429 `session_rate_limited`, `retry-after` = whole seconds until the oldest session of the window
/// leaves it.
fn rate_limited(state: &AppState, now: Timestamp, recent: RecentSessions) -> ApiError {
    let retry_after = recent
        .oldest
        .map(|oldest| {
            let free_at = oldest.plus_seconds(RATE_WINDOW_SECONDS).unix_micros();
            let wait = free_at.saturating_sub(now.unix_micros());
            // Rounded up: a client that waits this long is never refused again for this reason.
            (wait + 999_999).div_euclid(1_000_000)
        })
        .unwrap_or(RATE_WINDOW_SECONDS)
        .clamp(1, RATE_WINDOW_SECONDS);
    ApiError::new(
        ErrorCode::SessionRateLimited,
        format!(
            "this workload created {} sessions in the last minute (session.max_per_minute = {}); reuse a session \
             until it nears expiry",
            recent.count, state.config.session.max_per_minute
        ),
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from(retry_after))
}

fn base_event(state: &AppState, context: &RequestContext, principal: &MtlsPrincipal) -> AuditEvent {
    workload_event(state, context, principal, EventType::SessionIssued)
}

/// `session_issued` denied (throttled for the rate limit) with the reason code.
pub async fn audit_refusal(
    state: &AppState,
    context: &RequestContext,
    principal: &MtlsPrincipal,
    headers: &HeaderMap,
    error: &ApiError,
) -> Result<(), ApiError> {
    if !is_decision(error.code) {
        return Ok(());
    }
    let decision =
        if error.code == ErrorCode::SessionRateLimited { Decision::Throttled } else { Decision::Denied };
    let event = base_event(state, context, principal)
        .with_decision(decision)
        .with_reason_code(error.code.as_str())
        .with_metadata("dpop_proof_sent", (!dpop::proof_values(headers).is_empty()).into());
    state.audit.append(event).await?;
    Ok(())
}
