//! The mTLS identity of a data-plane request (`spec/data-plane.md`, "mTLS identity"), checked in the
//! spec's order: a client certificate → its clientAuth EKU and single SPIFFE URI SAN → an enabled
//! workload of that tenant → a known, unrevoked certificate → the workload's IP allowlist.
//!
//! The TLS handshake already verified the chain to the workload CA, and the validity period at the
//! time of the original handshake; the validity period is checked again here, with the server's
//! clock, because a resumed TLS session or a keep-alive connection can outlive the certificate. The
//! workload and the certificate come through the read cache ([`crate::read_cache`]), so disabling,
//! revocation and allowlist changes take effect within 1 s on every instance (at once on the one
//! that made them).

use std::net::IpAddr;

use steward_store::{CertificateRecord, WorkloadRecord};
use steward_types::{ErrorCode, TenantId, Timestamp, WorkloadId};

use super::ip_allowlist;
use crate::http::ApiError;
use crate::listener::ConnectionInfo;
use crate::services::AppState;
use crate::tls::ClientCertificate;

/// The workload behind a data-plane request.
#[derive(Debug, Clone)]
pub struct MtlsPrincipal {
    pub tenant_id: TenantId,
    pub workload_id: WorkloadId,
    /// `x5t#S256` of the presented leaf certificate.
    pub thumbprint: String,
    /// The certificate's serial, lowercase hex.
    pub serial: String,
    /// The workload as read for this request.
    pub workload: WorkloadRecord,
    /// The store's record of the presented certificate.
    pub certificate: CertificateRecord,
    /// The client address the allowlist was checked against.
    pub peer: IpAddr,
}

fn mtls_required(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::MtlsRequired, message)
}

/// Steps 1–6 of the spec.
pub async fn identify(
    state: &AppState,
    connection: Option<&ConnectionInfo>,
) -> Result<MtlsPrincipal, ApiError> {
    let connection = connection.ok_or_else(|| mtls_required("a client certificate is required"))?;
    let cert = connection.client_cert.as_ref().ok_or_else(|| {
        mtls_required("a client certificate is required (present the workload certificate)")
    })?;
    let (tenant_id, workload_id, serial) = identity_of(cert, &state.config.trust_domain)?;

    let workload = state
        .reads
        .workload(&workload_id)
        .await?
        .filter(|w| w.tenant_id == tenant_id && w.is_active())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::WorkloadDisabled,
                format!("workload {workload_id} is unknown or disabled"),
            )
        })?;

    let thumbprint = cert.thumbprint().to_owned();
    let certificate = state
        .reads
        .certificate_by_thumbprint(&thumbprint)
        .await?
        .filter(|c| c.workload_id == workload_id && c.revoked_at.is_none())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::CertificateRevoked,
                format!(
                    "the client certificate (serial {serial}) is revoked or was not issued by this deployment"
                ),
            )
        })?;
    within_validity(cert, state.clock.now())?;

    let peer = ip_allowlist::canonical(connection.peer.ip());
    if !ip_allowlist::allows(&workload.ip_allowlist, peer) {
        return Err(ApiError::new(
            ErrorCode::WorkloadIpDenied,
            format!("workload {workload_id} may not connect from {peer}"),
        ));
    }
    Ok(MtlsPrincipal { tenant_id, workload_id, thumbprint, serial, workload, certificate, peer })
}

/// Step 4's validity period, at the time of this request: the handshake checked it when the TLS
/// session was made, but a resumed session or a long-lived connection must not extend it.
fn within_validity(cert: &ClientCertificate, now: Timestamp) -> Result<(), ApiError> {
    let fields = cert.fields().map_err(mtls_required)?;
    if fields.valid_at(now) {
        return Ok(());
    }
    let message = if now < fields.not_before {
        format!(
            "the client certificate (serial {}) is not valid before {}; check the clocks of this host and Steward",
            fields.serial,
            fields.not_before.to_rfc3339()
        )
    } else {
        format!(
            "the client certificate (serial {}) expired at {}; renew certificates before they expire, or enroll again with a new enrollment token",
            fields.serial,
            fields.not_after.to_rfc3339()
        )
    };
    Err(ApiError::new(ErrorCode::CertificateExpired, message))
}

/// Reads the identity out of a leaf certificate: a clientAuth EKU and exactly one URI SAN of the
/// form `spiffe://<trust_domain>/tenants/<t>/workloads/<w>`. Returns the ids and the serial (hex).
/// The certificate was parsed once for the connection; only the trust-domain match runs per request.
pub fn identity_of(
    cert: &ClientCertificate,
    trust_domain: &str,
) -> Result<(TenantId, WorkloadId, String), ApiError> {
    let fields = cert.fields().map_err(mtls_required)?;
    if !fields.client_auth {
        return Err(mtls_required("the client certificate has no extended key usage with clientAuth"));
    }
    let uris = fields.uri_sans.as_deref().map_err(|reason| mtls_required(*reason))?;
    let uri = match uris {
        [one] => one.as_str(),
        [] => return Err(mtls_required("the client certificate has no URI SAN; exactly one is required")),
        many => {
            return Err(mtls_required(format!(
                "the client certificate has {} URI SANs; exactly one is required",
                many.len()
            )));
        }
    };
    let bad_form = || {
        mtls_required(format!(
            "the client certificate's URI SAN is not spiffe://{trust_domain}/tenants/<tenant_id>/workloads/<workload_id>"
        ))
    };
    let rest = uri
        .strip_prefix("spiffe://")
        .and_then(|r| r.strip_prefix(trust_domain))
        .and_then(|r| r.strip_prefix("/tenants/"))
        .ok_or_else(bad_form)?;
    let (tenant, workload) = rest.split_once("/workloads/").ok_or_else(bad_form)?;
    let tenant_id = TenantId::parse(tenant).map_err(|_| bad_form())?;
    let workload_id = WorkloadId::parse(workload).map_err(|_| bad_form())?;
    Ok((tenant_id, workload_id, fields.serial.clone()))
}
