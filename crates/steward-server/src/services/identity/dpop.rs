//! DPoP for data-plane requests (`spec/data-plane.md`, "DPoP proof verification"): the expected `htu`, the
//! proof verification of `steward-crypto` fed with this request and this process's clock, the replay
//! check through the coordination service (always the caller's last step), the `WWW-Authenticate`
//! challenges and the failure metrics.
//!
//! Verification and the replay check are two calls on purpose: a caller runs every other check of
//! its route between them, so a proof refused for any other reason never burns its jti.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, header};
use steward_crypto::dpop::DPOP_SIGNING_ALGS;
use steward_crypto::{DpopError, DpopExpectations, VerifiedProof, verify_dpop_proof};
use steward_types::ErrorCode;

use super::MtlsPrincipal;
use crate::http::ApiError;
use crate::services::AppState;

/// The request header carrying the proof.
pub const DPOP_HEADER: &str = "dpop";

/// `DPoP error="<error>", algs="ES256 ES384 EdDSA RS256 PS256"`.
pub fn dpop_challenge(error: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(r#"DPoP error="{error}", algs="{DPOP_SIGNING_ALGS}""#))
        .unwrap_or_else(|_| HeaderValue::from_static("DPoP"))
}

/// `Bearer error="<error>"`.
pub fn bearer_challenge(error: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(r#"Bearer error="{error}""#))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

/// A DPoP failure: 401 with its `dpop_*` code and `WWW-Authenticate: DPoP error="invalid_dpop_proof"`,
/// counted in `steward_dpop_failures_total{reason}`.
pub fn dpop_failure(code: ErrorCode, message: impl Into<String>) -> ApiError {
    metrics::counter!("steward_dpop_failures_total", "reason" => code.as_str()).increment(1);
    ApiError::new(code, message).with_header(header::WWW_AUTHENTICATE, dpop_challenge("invalid_dpop_proof"))
}

impl From<DpopError> for ApiError {
    fn from(error: DpopError) -> Self {
        dpop_failure(error.code, error.message)
    }
}

/// `public_base_url`'s origin + `path`: the `htu` a proof for this request must carry.
pub fn expected_htu(state: &AppState, path: &str) -> Result<String, ApiError> {
    let base = state.config.public_base_url().map_err(ApiError::internal)?;
    Ok(format!("{}{path}", base.origin()))
}

/// Every `DPoP` header value of the request (the verifier refuses two or more).
pub fn proof_values(headers: &HeaderMap) -> Vec<&[u8]> {
    headers.get_all(DPOP_HEADER).iter().map(HeaderValue::as_bytes).collect()
}

/// Whether the workload or its tenant requires DPoP, read now (no cache: a change applies at once).
pub async fn dpop_required(state: &AppState, principal: &MtlsPrincipal) -> Result<bool, ApiError> {
    if principal.workload.dpop_required {
        return Ok(true);
    }
    let tenant = state.reads.tenant(&principal.tenant_id).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::WorkloadDisabled,
            format!("the tenant {} of this workload no longer exists", principal.tenant_id),
        )
    })?;
    Ok(tenant.dpop_required)
}

/// What a proof is checked against, besides the request itself.
#[derive(Debug, Clone, Copy)]
pub struct ProofFor<'a> {
    pub method: &'a str,
    /// The request path (no query).
    pub path: &'a str,
    /// The presented session token: `ath` is then required.
    pub access_token: Option<&'a str>,
    /// The bound session's key thumbprint.
    pub expected_jkt: Option<&'a str>,
}

/// Runs every check of the spec's table except the replay check. In embedded mode (jtis in memory
/// only) a proof issued before this process started is refused, so a restart opens no replay window.
pub fn verify(
    state: &AppState,
    headers: &HeaderMap,
    proof_for: ProofFor<'_>,
) -> Result<VerifiedProof, ApiError> {
    let htu = expected_htu(state, proof_for.path)?;
    let values = proof_values(headers);
    let expectations = DpopExpectations {
        method: proof_for.method,
        htu: &htu,
        now_unix: state.clock.now().unix_seconds(),
        max_skew_seconds: i64::from(state.config.dpop.max_skew_seconds),
        not_before_unix: (!state.coord.is_shared()).then(|| state.started_at.unix_seconds()),
        access_token: proof_for.access_token,
        expected_jkt: proof_for.expected_jkt,
    };
    Ok(verify_dpop_proof(&values, &expectations)?)
}

/// The last step: the proof's jti, scoped to its key, must not have been seen in the last
/// 2 × `dpop.max_skew_seconds` (by any instance, in shared mode).
pub async fn check_replay(state: &AppState, proof: &VerifiedProof) -> Result<(), ApiError> {
    // A shared replay cache that lost its contents (Redis restarted empty) forgot the jtis of proofs
    // issued before that moment: refuse those, as embedded mode refuses proofs older than the process.
    if let Some(since) = state.coord.replay_memory_since().await?
        && proof.iat() < since
    {
        return Err(dpop_failure(
            ErrorCode::DpopIatSkew,
            "this DPoP proof was issued before the shared replay cache last started empty; send a fresh proof",
        ));
    }
    let ttl = Duration::from_secs(proof.replay_ttl_seconds().max(1));
    if state.coord.remember_once(&proof.replay_key(), ttl).await? {
        Ok(())
    } else {
        Err(dpop_failure(
            ErrorCode::DpopReplay,
            "this DPoP proof was already used; send a fresh proof with a new jti",
        ))
    }
}
