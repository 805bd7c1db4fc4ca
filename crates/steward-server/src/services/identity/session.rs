//! The session of a data-plane request (`spec/data-plane.md`, "Session checks"), steps 1–7 in the
//! spec's order, each with its code and its `WWW-Authenticate` challenge, the DPoP replay check last
//! of all; and issuing a session (`POST /v1/session`).
//!
//! The session, the workload and its tenant come through the read cache ([`crate::read_cache`]): a
//! revocation or a disabled workload takes effect within 1 s on every instance (at once on the one
//! that made it); expiry is checked against the clock on every request.

use http::{HeaderMap, HeaderValue, header};
use steward_crypto::{hash_token, hashes_equal};
use steward_store::SessionRecord;
use steward_types::ErrorCode;

use super::MtlsPrincipal;
use super::dpop::{self, ProofFor, bearer_challenge, dpop_challenge};
use crate::http::ApiError;
use crate::services::AppState;

mod issue;

pub use issue::{SessionRequest, SessionResponse, audit_refusal, issue};

/// The scope `POST /v1/execute` and `GET /v1/approvals/{id}` need.
pub const SCOPE_EXECUTE: &str = "execute";
/// The scope `GET /v1/workloads/{id}/manifest` needs.
pub const SCOPE_MANIFEST_READ: &str = "manifest.read";
/// Every scope a session can carry, in the order responses list them.
pub const ALL_SCOPES: [&str; 2] = [SCOPE_EXECUTE, SCOPE_MANIFEST_READ];
/// The prefix of session tokens.
pub const SESSION_TOKEN_PREFIX: &str = "stw_sess_";

/// The scheme of the `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
}

/// The challenge of a session failure: `DPoP …` for a bound session (or, when the session is not
/// known, a request that used the DPoP scheme), else `Bearer …`.
fn challenge(dpop: bool, error: &str) -> HeaderValue {
    if dpop { dpop_challenge(error) } else { bearer_challenge(error) }
}

fn invalid(code: ErrorCode, dpop: bool, message: impl Into<String>) -> ApiError {
    ApiError::new(code, message).with_header(header::WWW_AUTHENTICATE, challenge(dpop, "invalid_token"))
}

/// Step 1: `Authorization: Bearer <token>` or `Authorization: DPoP <token>`, scheme case-insensitive.
fn authorization(headers: &HeaderMap) -> Result<(Scheme, &str), ApiError> {
    let missing = |message: &str| invalid(ErrorCode::SessionMissing, false, message);
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(missing("send one Authorization header: Bearer <session token> or DPoP <session token>"));
    };
    let value = value.to_str().map_err(|_| missing("the Authorization header is not visible ASCII"))?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Err(missing("the Authorization scheme must be Bearer or DPoP"));
    };
    let token = token.trim();
    if token.is_empty() {
        return Err(missing("the Authorization header carries no session token"));
    }
    Ok((scheme, token))
}

/// Steps 1–7 for a request `method path` with `headers`, from the workload `principal`, for a route
/// that needs `scope`. Returns the session and whether the workload or its tenant requires DPoP.
pub async fn check(
    state: &AppState,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    principal: &MtlsPrincipal,
    scope: &str,
) -> Result<(SessionRecord, bool), ApiError> {
    // 1.
    let (scheme, token) = authorization(headers)?;

    // 2. Unknown, revoked or expired.
    let presented_dpop = scheme == Scheme::Dpop;
    let unknown = || {
        invalid(ErrorCode::SessionInvalid, presented_dpop, "the session token is unknown, revoked or expired")
    };
    if !token.starts_with(SESSION_TOKEN_PREFIX) {
        return Err(unknown());
    }
    let hash = hash_token(token);
    let session = state.reads.session_by_hash(&hash).await?.ok_or_else(unknown)?;
    let now = state.clock.now();
    if !hashes_equal(&session.token_hash, &hash) || session.revoked_at.is_some() || session.expires_at <= now
    {
        return Err(unknown());
    }

    // 3. The scheme must fit the binding.
    let bound = session.dpop_jkt.is_some();
    match (bound, scheme) {
        (true, Scheme::Bearer) => {
            return Err(invalid(
                ErrorCode::SessionDpopRequired,
                true,
                "this session is DPoP-bound: present it as Authorization: DPoP <token> with a DPoP proof",
            ));
        }
        (false, Scheme::Dpop) => {
            return Err(invalid(
                ErrorCode::SessionInvalid,
                false,
                "this session is not DPoP-bound: present it as Authorization: Bearer <token>",
            ));
        }
        _ => {}
    }

    // 4. The same workload.
    if session.workload_id != principal.workload_id {
        return Err(invalid(
            ErrorCode::SessionWorkloadMismatch,
            bound,
            "the session belongs to another workload than the client certificate",
        ));
    }

    // 5. The same certificate: a stolen token is useless with another one. (Thumbprints are public
    // values; no constant-time comparison needed.)
    if session.cert_thumbprint != principal.thumbprint {
        return Err(invalid(
            ErrorCode::SessionCertMismatch,
            bound,
            "the session was issued to another client certificate; create a session with this one",
        ));
    }

    // 6. The route's scope.
    if !session.scopes.iter().any(|s| s == scope) {
        return Err(ApiError::new(
            ErrorCode::SessionScopeMissing,
            format!("the session lacks the scope {scope}"),
        )
        .with_header(header::WWW_AUTHENTICATE, bearer_challenge("insufficient_scope")));
    }

    // 7. DPoP, when the session is bound or the workload or tenant requires it; replay last.
    let required = dpop::dpop_required(state, principal).await?;
    if bound || required {
        if !bound {
            return Err(invalid(
                ErrorCode::SessionDpopRequired,
                true,
                "this workload requires DPoP: create a DPoP-bound session (POST /v1/session with a DPoP proof)",
            ));
        }
        if dpop::proof_values(headers).is_empty() {
            return Err(dpop::dpop_failure(
                ErrorCode::DpopMissing,
                "this session is DPoP-bound: every request needs a DPoP proof",
            ));
        }
        let proof = dpop::verify(
            state,
            headers,
            ProofFor { method, path, access_token: Some(token), expected_jkt: session.dpop_jkt.as_deref() },
        )?;
        dpop::check_replay(state, &proof).await?;
    }
    Ok((session, required))
}
