//! `POST /v1/enroll` (enrollment token + CSR → client certificate) and `POST /v1/enroll/renew`
//! (mTLS with the current certificate + CSR → a new one), in the spec's order:
//!
//! enroll: body → TTL → CSR → token → workload active → IP allowlist → consume the token and record
//! the certificate in one transaction. renew: mTLS identity → body → TTL → CSR → identity lifetime.
//!
//! A CSR is checked before the token is even looked at, so a bad CSR never burns a token; the token
//! is consumed only in the transaction that records the certificate, so two concurrent uses give
//! one certificate and one 409. Failures before the workload is identified (bad token, bad CSR on
//! enroll) are logged and counted, never audited; every issued certificate writes an `enrollment`
//! audit event.

use serde::{Deserialize, Serialize};
use steward_crypto::{CsrError, IssuedClientCert, WorkloadCa, hash_token, verify_csr_pem};
use steward_store::audit::{Actor, AuditEvent, EventType};
use steward_store::{CertificateRecord, EnrollmentTokenRecord, RecordCertificateOutcome, WorkloadRecord};
use steward_types::{ErrorCode, Timestamp};
use utoipa::ToSchema;

use super::{MtlsPrincipal, ip_allowlist};
use crate::http::{ApiError, DeferredBody, LogFields, RequestContext};
use crate::listener::ConnectionInfo;
use crate::services::AppState;
use crate::services::credentials::envelope::{ca_key_context, open_record};

/// The prefix of enrollment tokens.
pub const ENROLLMENT_TOKEN_PREFIX: &str = "stw_enr_";

/// The shortest certificate we issue; anything shorter is a client bug, not a security feature.
const MIN_TTL_SECONDS: u64 = 60;

/// A one-time enrollment token and a certificate signing request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// `stw_enr_…`, from the admin API (`steward admin workloads create` or `enrollment-token`).
    pub enrollment_token: String,
    /// A PKCS#10 CSR (PEM) for an ECDSA P-256/P-384, Ed25519 or RSA 2048–4096 key. Only its public key
    /// is used; subject, SANs and extensions are ignored.
    pub csr_pem: String,
    /// Default `enrollment.default_cert_ttl_seconds` (7 days); at most
    /// `enrollment.max_cert_ttl_seconds` (30 days).
    pub requested_ttl_seconds: Option<u64>,
}

/// A new CSR, sent with the current certificate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    pub csr_pem: String,
    pub requested_ttl_seconds: Option<u64>,
}

/// The workload's client certificate.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollResponse {
    pub workload_id: String,
    /// The client certificate (PEM), with the workload's SPIFFE URI SAN and clientAuth.
    pub client_cert_pem: String,
    /// The workload CA (PEM): it also issued the data plane's TLS certificate.
    pub ca_pem: String,
    /// Lowercase hex.
    pub serial: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// `POST /v1/enroll`: the ids of the issued certificate come back for the request log line.
pub async fn enroll(
    state: &AppState,
    context: &RequestContext,
    connection: Option<&ConnectionInfo>,
    body: DeferredBody,
) -> Result<(EnrollResponse, LogFields), ApiError> {
    let request: EnrollRequest = body.json()?;
    let ttl = ttl_seconds(state, request.requested_ttl_seconds)?;
    let csr = verify_csr_pem(&request.csr_pem).map_err(csr_error)?;

    let token = usable_token(state, &request.enrollment_token).await?;
    let workload = active_workload(state, &token).await?;
    let peer = connection
        .map(|c| ip_allowlist::canonical(c.peer.ip()))
        .ok_or_else(|| ApiError::internal("the request carries no connection information"))?;
    if !ip_allowlist::allows(&workload.ip_allowlist, peer) {
        return Err(ApiError::new(
            ErrorCode::WorkloadIpDenied,
            format!("workload {} may not enroll from {peer}", workload.workload_id),
        ));
    }

    let now = state.clock.now();
    // The first certificate of an identity cannot outlive the identity either.
    let ttl = ttl.min(lifetime_seconds(state));
    let issued = issue(state, &csr.spki_der, &workload, now, ttl).await?;
    let record = certificate_record(&workload, &issued, now, now);
    match state.store.record_certificate(Some(&token.token_id), &record, now).await? {
        RecordCertificateOutcome::Recorded => {}
        RecordCertificateOutcome::TokenUnusable => {
            // A concurrent enrollment (or a reissue) got there first: say which, as a fresh read would.
            let latest = state.store.enrollment_token_by_hash(&token.token_hash).await?;
            return Err(match latest.map(|t| token_state(&t, now)) {
                Some(Err(error)) => error,
                _ => token_used(),
            });
        }
        RecordCertificateOutcome::WorkloadInactive => return Err(workload_disabled(&workload)),
    }
    audit(state, context, &workload, &issued, "enroll", None).await?;
    tracing::info!(tenant_id = %workload.tenant_id, workload_id = %workload.workload_id, serial = %issued.serial_hex,
        key_type = %csr.key_type.name(), "Workload enrolled.");
    Ok(answer(state, &workload, issued))
}

/// `POST /v1/enroll/renew` for the identified workload.
pub async fn renew(
    state: &AppState,
    context: &RequestContext,
    principal: MtlsPrincipal,
    body: DeferredBody,
) -> Result<(EnrollResponse, LogFields), ApiError> {
    let request: RenewRequest = body.json()?;
    let ttl = ttl_seconds(state, request.requested_ttl_seconds)?;
    let csr = verify_csr_pem(&request.csr_pem).map_err(csr_error)?;

    // The chain of renewals ends `max_identity_lifetime_days` after the original enrollment.
    let now = state.clock.now();
    let started = principal.certificate.identity_started_at;
    let cap = started.plus_seconds(lifetime_seconds(state));
    let remaining = now.seconds_until(cap);
    if remaining <= 0 {
        return Err(ApiError::new(
            ErrorCode::IdentityLifetimeExceeded,
            format!(
                "this identity was enrolled at {} and may not be renewed past {}; enroll again with a new enrollment token",
                started.to_rfc3339(),
                cap.to_rfc3339()
            ),
        ));
    }
    let ttl = ttl.min(remaining);

    let workload = principal.workload;
    let issued = issue(state, &csr.spki_der, &workload, now, ttl).await?;
    let record = certificate_record(&workload, &issued, started, now);
    match state.store.record_certificate(None, &record, now).await? {
        RecordCertificateOutcome::Recorded => {}
        RecordCertificateOutcome::TokenUnusable | RecordCertificateOutcome::WorkloadInactive => {
            return Err(workload_disabled(&workload));
        }
    }
    audit(state, context, &workload, &issued, "renew", Some(&principal.serial)).await?;
    tracing::info!(tenant_id = %workload.tenant_id, workload_id = %workload.workload_id, serial = %issued.serial_hex,
        previous_serial = %principal.serial, "Workload certificate renewed.");
    Ok(answer(state, &workload, issued))
}

/// `enrollment.max_identity_lifetime_days` in seconds.
fn lifetime_seconds(state: &AppState) -> i64 {
    i64::from(state.config.enrollment.max_identity_lifetime_days) * 86_400
}

/// `requested_ttl_seconds`, or the default; above the maximum → 400 `requested_ttl_exceeds_max`.
fn ttl_seconds(state: &AppState, requested: Option<u64>) -> Result<i64, ApiError> {
    let config = &state.config.enrollment;
    let Some(requested) = requested else { return Ok(i64::from(config.default_cert_ttl_seconds)) };
    if requested < MIN_TTL_SECONDS {
        return Err(ApiError::new(
            ErrorCode::RequestBodySchemaInvalid,
            format!("requested_ttl_seconds: must be at least {MIN_TTL_SECONDS}"),
        ));
    }
    if requested > u64::from(config.max_cert_ttl_seconds) {
        return Err(ApiError::new(
            ErrorCode::RequestedTtlExceedsMax,
            format!(
                "requested_ttl_seconds ({requested}) exceeds enrollment.max_cert_ttl_seconds ({})",
                config.max_cert_ttl_seconds
            ),
        ));
    }
    Ok(i64::try_from(requested).unwrap_or(i64::MAX))
}

fn csr_error(error: CsrError) -> ApiError {
    match error {
        CsrError::Invalid(message) => ApiError::new(ErrorCode::CsrInvalid, format!("csr_pem: {message}")),
        CsrError::KeyUnsupported(message) => {
            ApiError::new(ErrorCode::CsrKeyUnsupported, format!("csr_pem: {message}"))
        }
    }
}

fn token_invalid(why: &str) -> ApiError {
    ApiError::new(ErrorCode::EnrollmentTokenInvalid, format!("the enrollment token {why}"))
}

fn token_used() -> ApiError {
    ApiError::new(
        ErrorCode::EnrollmentTokenUsed,
        "the enrollment token was already used; ask an admin for a new one",
    )
}

/// Whether a token may still be used at `now`, and if not, the error that says why.
fn token_state(token: &EnrollmentTokenRecord, now: Timestamp) -> Result<(), ApiError> {
    if token.used_at.is_some() {
        return Err(token_used());
    }
    if token.superseded_at.is_some() {
        return Err(token_invalid(
            "was replaced by a newer one; use the latest token issued for this workload",
        ));
    }
    if token.expires_at <= now {
        return Err(ApiError::new(
            ErrorCode::EnrollmentTokenExpired,
            format!(
                "the enrollment token expired at {}; ask an admin for a new one",
                token.expires_at.to_rfc3339()
            ),
        ));
    }
    Ok(())
}

async fn usable_token(state: &AppState, presented: &str) -> Result<EnrollmentTokenRecord, ApiError> {
    if !presented.starts_with(ENROLLMENT_TOKEN_PREFIX) {
        return Err(token_invalid("is not a stw_enr_ token"));
    }
    let hash = hash_token(presented);
    let token =
        state.store.enrollment_token_by_hash(&hash).await?.ok_or_else(|| token_invalid("is unknown"))?;
    // The store looked the row up by hash; compare in constant time anyway, as for every token.
    if !steward_crypto::hashes_equal(&token.token_hash, &hash) {
        return Err(token_invalid("is unknown"));
    }
    token_state(&token, state.clock.now())?;
    Ok(token)
}

fn workload_disabled(workload: &WorkloadRecord) -> ApiError {
    ApiError::new(ErrorCode::WorkloadDisabled, format!("workload {} is disabled", workload.workload_id))
}

async fn active_workload(
    state: &AppState,
    token: &EnrollmentTokenRecord,
) -> Result<WorkloadRecord, ApiError> {
    let workload = state.store.workload(&token.workload_id).await?.ok_or_else(|| {
        ApiError::internal(format!("enrollment token of unknown workload {}", token.workload_id))
    })?;
    if !workload.is_active() {
        return Err(workload_disabled(&workload));
    }
    Ok(workload)
}

/// Opens the CA from the store (no cache: shared mode has no CA key anywhere but the store) and
/// issues the certificate for the workload's identity only.
async fn issue(
    state: &AppState,
    spki_der: &[u8],
    workload: &WorkloadRecord,
    now: Timestamp,
    ttl_seconds: i64,
) -> Result<IssuedClientCert, ApiError> {
    let deployment =
        state.store.deployment().await?.ok_or_else(|| ApiError::internal("the store holds no deployment"))?;
    let keyring = state.keyring.load();
    let key = open_record(&keyring, &ca_key_context(), &deployment.ca_key).map_err(ApiError::internal)?;
    let ca = WorkloadCa::from_parts(&deployment.ca_cert_pem, &key).map_err(ApiError::internal)?;
    ca.issue_client_cert(spki_der, &workload.san_uri, now, ttl_seconds).map_err(|error| match error {
        // The CSR intake accepts a few keys aws-lc refuses (an EC point off its curve).
        steward_crypto::CaError::UnsupportedPublicKey(why) => {
            ApiError::new(ErrorCode::CsrKeyUnsupported, format!("csr_pem: {why}"))
        }
        other => ApiError::internal(other),
    })
}

fn certificate_record(
    workload: &WorkloadRecord,
    issued: &IssuedClientCert,
    identity_started_at: Timestamp,
    now: Timestamp,
) -> CertificateRecord {
    CertificateRecord {
        serial: issued.serial_hex.clone(),
        workload_id: workload.workload_id.clone(),
        not_before: issued.not_before,
        not_after: issued.not_after,
        thumbprint: issued.thumbprint.clone(),
        identity_started_at,
        issued_at: now,
        revoked_at: None,
    }
}

async fn audit(
    state: &AppState,
    context: &RequestContext,
    workload: &WorkloadRecord,
    issued: &IssuedClientCert,
    kind: &str,
    previous_serial: Option<&str>,
) -> Result<(), ApiError> {
    let mut event = AuditEvent::new(
        EventType::Enrollment,
        Actor::workload(workload.workload_id.as_str()),
        state.clock.now(),
    )
    .with_request_id(context.request_id.to_string())
    .with_correlation_id(context.correlation_id.clone())
    .with_tenant(workload.tenant_id.as_str())
    .with_workload(workload.workload_id.as_str())
    .with_metadata("kind", kind.into())
    .with_metadata("serial", issued.serial_hex.clone().into())
    .with_metadata("thumbprint", issued.thumbprint.clone().into())
    .with_metadata("not_after", issued.not_after.to_rfc3339().into());
    if let Some(previous) = previous_serial {
        event = event.with_metadata("previous_serial", previous.into());
    }
    state.audit.append(event).await?;
    Ok(())
}

fn answer(
    state: &AppState,
    workload: &WorkloadRecord,
    issued: IssuedClientCert,
) -> (EnrollResponse, LogFields) {
    let fields = LogFields {
        tenant_id: Some(workload.tenant_id.to_string()),
        workload_id: Some(workload.workload_id.to_string()),
        ..LogFields::default()
    };
    let body = EnrollResponse {
        workload_id: workload.workload_id.to_string(),
        client_cert_pem: issued.cert_pem,
        ca_pem: state.ca_pem.clone(),
        serial: issued.serial_hex,
        expires_at: issued.not_after.to_rfc3339(),
    };
    (body, fields)
}
