//! The session of a data-plane request (`spec/data-plane.md`, "Session checks"): the mTLS identity
//! first ([`MtlsPrincipal`]), then steps 1–7 in the spec's order, each with its code and its
//! `WWW-Authenticate` challenge, the DPoP replay check last of all.
//!
//! The session, the workload and its tenant come through the read cache ([`crate::read_cache`]): a
//! revocation or a disabled workload takes effect within 1 s on every instance (at once on the one
//! that made it); expiry is checked against the clock on every request. The route's required scope is a type parameter: `SessionPrincipal<ExecuteScope>`,
//! `SessionPrincipal<ManifestReadScope>`.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use steward_crypto::{hash_token, hashes_equal};
use steward_store::SessionRecord;
use steward_types::ErrorCode;

use super::MtlsPrincipal;
use super::dpop_check::{self, ProofFor, bearer_challenge, dpop_challenge};
use crate::http::ApiError;
use crate::services::AppState;

/// The scope `POST /v1/execute` and `GET /v1/approvals/{id}` need.
pub const SCOPE_EXECUTE: &str = "execute";
/// The scope `GET /v1/workloads/{id}/manifest` needs.
pub const SCOPE_MANIFEST_READ: &str = "manifest.read";
/// Every scope a session can carry, in the order responses list them.
pub const ALL_SCOPES: [&str; 2] = [SCOPE_EXECUTE, SCOPE_MANIFEST_READ];
/// The prefix of session tokens.
pub const SESSION_TOKEN_PREFIX: &str = "stw_sess_";

/// A path parameter that could not be decoded (invalid percent-encoding or UTF-8): 400
/// `path_param_invalid` in the standard error body, after the identity checks.
pub fn path_param(
    parameter: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<String, ApiError> {
    parameter.map(|axum::extract::Path(value)| value).map_err(|rejection| {
        ApiError::new(ErrorCode::PathParamInvalid, format!("the path is invalid: {}", rejection.body_text()))
    })
}

/// The scope a route requires, as a type.
pub trait RequiredScope: Send + Sync + 'static {
    const SCOPE: &'static str;
}

/// `execute`.
#[derive(Debug, Clone, Copy)]
pub struct ExecuteScope;

impl RequiredScope for ExecuteScope {
    const SCOPE: &'static str = SCOPE_EXECUTE;
}

/// `manifest.read`.
#[derive(Debug, Clone, Copy)]
pub struct ManifestReadScope;

impl RequiredScope for ManifestReadScope {
    const SCOPE: &'static str = SCOPE_MANIFEST_READ;
}

/// A request with a valid session for the mTLS workload, holding scope `S`, with its DPoP proof
/// (when the session is bound or DPoP is required) verified and its jti recorded.
#[derive(Debug, Clone)]
pub struct SessionPrincipal<S> {
    pub mtls: MtlsPrincipal,
    pub session: SessionRecord,
    /// Whether the workload or its tenant requires DPoP (read for this request).
    pub dpop_required: bool,
    scope: PhantomData<fn() -> S>,
}

/// A refused session check, with the mTLS principal when the workload was identified (so the route
/// can audit the refusal: failures before identification are never audited).
#[derive(Debug)]
pub struct SessionRejection {
    pub error: ApiError,
    pub principal: Option<MtlsPrincipal>,
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        self.error.into_response()
    }
}

impl<S: RequiredScope> FromRequestParts<AppState> for SessionPrincipal<S> {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, SessionRejection> {
        let principal = MtlsPrincipal::from_request_parts(parts, state)
            .await
            .map_err(|error| SessionRejection { error, principal: None })?;
        match check(state, parts, &principal, S::SCOPE).await {
            Ok((session, dpop_required)) => {
                Ok(SessionPrincipal { mtls: principal, session, dpop_required, scope: PhantomData })
            }
            Err(error) => {
                metrics::counter!("steward_session_failures_total", "reason" => error.code.as_str())
                    .increment(1);
                tracing::info!(reason_code = error.code.as_str(), workload_id = %principal.workload_id,
                    detail = %error.message, "Session check refused.");
                Err(SessionRejection { error, principal: Some(principal) })
            }
        }
    }
}

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

/// Steps 1–7.
async fn check(
    state: &AppState,
    parts: &Parts,
    principal: &MtlsPrincipal,
    scope: &str,
) -> Result<(SessionRecord, bool), ApiError> {
    // 1.
    let (scheme, token) = authorization(&parts.headers)?;

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
    let required = dpop_check::dpop_required(state, principal).await?;
    if bound || required {
        if !bound {
            return Err(invalid(
                ErrorCode::SessionDpopRequired,
                true,
                "this workload requires DPoP: create a DPoP-bound session (POST /v1/session with a DPoP proof)",
            ));
        }
        if dpop_check::proof_values(&parts.headers).is_empty() {
            return Err(dpop_check::dpop_failure(
                ErrorCode::DpopMissing,
                "this session is DPoP-bound: every request needs a DPoP proof",
            ));
        }
        let proof = dpop_check::verify(
            state,
            &parts.headers,
            ProofFor {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                access_token: Some(token),
                expected_jkt: session.dpop_jkt.as_deref(),
            },
        )?;
        dpop_check::check_replay(state, &proof).await?;
    }
    Ok((session, required))
}
