//! Upstream TLS: webpki roots plus the operator's extra CAs, aws-lc-rs, HTTP/1.1 ALPN. There is no way
//! to turn verification off.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::error::EgressError;
use crate::guard::ip_literal;

/// A client configuration trusting the webpki roots and every certificate in `extra_ca_pems` (PEM
/// text, one or more certificates each).
pub(crate) fn client_config(extra_ca_pems: &[String]) -> Result<Arc<rustls::ClientConfig>, EgressError> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    for (index, pem) in extra_ca_pems.iter().enumerate() {
        let mut found = 0usize;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert =
                cert.map_err(|e| EgressError::Config(format!("extra CA #{index} is not valid PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| EgressError::Config(format!("extra CA #{index} is not a usable CA: {e}")))?;
            found += 1;
        }
        if found == 0 {
            return Err(EgressError::Config(format!("extra CA #{index} holds no certificate")));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EgressError::Config(format!("TLS protocol versions: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS server name of a canonical host: an IP address for IP literals, else the DNS name.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, EgressError> {
    if let Some(ip) = ip_literal(host) {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_owned()).map_err(|e| {
        EgressError::InvalidRequest(format!("host {host:?} is not a valid TLS server name: {e}"))
    })
}

/// A failed upstream TLS handshake as an [`EgressError::Tls`] whose reason a person can act on: a
/// certificate that failed verification says so, and an unknown issuer names the setting that adds a
/// private CA (`egress.extra_ca_files`). Only the host and the kind of failure are named, never
/// anything the upstream sent.
pub(crate) fn handshake_failure(host: &str, error: &std::io::Error) -> EgressError {
    let certificate =
        error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()).and_then(|tls| match tls {
            rustls::Error::InvalidCertificate(certificate) => Some(certificate),
            _ => None,
        });
    let reason = match certificate {
        Some(certificate) => certificate_reason(host, certificate),
        None => error.to_string(),
    };
    EgressError::Tls { host: host.to_owned(), reason }
}

/// Why the certificate `host` presented was refused, and what fixes it.
fn certificate_reason(host: &str, error: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    match error {
        E::UnknownIssuer | E::BadSignature => format!(
            "the certificate {host} presented was not trusted: no CA Steward trusts issued it (Steward trusts the \
             public web PKI roots and egress.extra_ca_files); if {host} uses a private or development CA, add \
             that CA's certificate (PEM) to egress.extra_ca_files and restart Steward"
        ),
        E::NotValidForName | E::NotValidForNameContext { .. } => format!(
            "the certificate {host} presented was not trusted: it is not valid for the name {host} (the \
             template's host, which Steward verifies whatever address egress.static_hosts gives it); the \
             upstream must present a certificate naming {host}"
        ),
        E::Expired | E::ExpiredContext { .. } => format!(
            "the certificate {host} presented was not trusted: it has expired (or this machine's clock is \
             wrong); the upstream must renew it"
        ),
        E::NotValidYet | E::NotValidYetContext { .. } => format!(
            "the certificate {host} presented was not trusted: it is not valid yet (check this machine's clock)"
        ),
        other => format!("the certificate {host} presented was not trusted: {other:?}"),
    }
}
