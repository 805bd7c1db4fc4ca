//! The HTTP client: rustls with aws-lc-rs, trusting only the workload CA, presenting the workload
//! certificate when there is one.

use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use crate::ClientError;

pub(crate) fn build(ca_pem: &str, client: Option<(&str, &str)>) -> Result<reqwest::Client, ClientError> {
    let roots = add_pem_roots(RootCertStore::empty(), ca_pem, "CA certificate")?;
    with_roots(roots, client, Timeout::Total(Duration::from_secs(60)))
}

/// The client for forward mode: no bound on the whole exchange (a stream may last as long as the
/// broker allows, `egress.max_stream_seconds`), only on the gap between two reads — longer than the
/// broker's own `egress.stream_idle_timeout_ms`, so the broker decides and says why.
pub(crate) fn build_streaming(ca_pem: &str, client: (&str, &str)) -> Result<reqwest::Client, ClientError> {
    let roots = add_pem_roots(RootCertStore::empty(), ca_pem, "CA certificate")?;
    with_roots(roots, Some(client), Timeout::BetweenReads(Duration::from_secs(300)))
}

#[derive(Clone, Copy)]
enum Timeout {
    Total(Duration),
    BetweenReads(Duration),
}

/// The operator's client (`steward admin` towards the admin listener): plain HTTP, or HTTPS trusting
/// the webpki roots plus `extra_roots_pem` (e.g. the private CA of an admin listener with TLS). No
/// client certificate. The workload side and the operator side share this one stack (reqwest over
/// rustls with aws-lc-rs); Steward's own outbound calls never use it (they go through
/// `steward-egress`).
pub fn operator_client(
    extra_roots_pem: Option<&str>,
    timeout: Duration,
) -> Result<reqwest::Client, ClientError> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(pem) = extra_roots_pem {
        roots = add_pem_roots(roots, pem, "--ca-file")?;
    }
    with_roots(roots, None, Timeout::Total(timeout))
}

fn add_pem_roots(mut roots: RootCertStore, pem: &str, what: &str) -> Result<RootCertStore, ClientError> {
    let mut added = 0usize;
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| ClientError::Identity(format!("{what}: {e}")))?;
        roots.add(cert).map_err(|e| ClientError::Identity(format!("{what}: {e}")))?;
        added += 1;
    }
    if added == 0 {
        return Err(ClientError::Identity(format!("{what}: no PEM certificate found")));
    }
    Ok(roots)
}

fn with_roots(
    roots: RootCertStore,
    client: Option<(&str, &str)>,
    timeout: Timeout,
) -> Result<reqwest::Client, ClientError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Identity(e.to_string()))?
        .with_root_certificates(roots);
    let config = match client {
        Some((cert_pem, key_pem)) => {
            let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ClientError::Identity(format!("workload certificate: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .map_err(|e| ClientError::Identity(format!("workload key: {e}")))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| ClientError::Identity(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    let builder =
        reqwest::Client::builder().use_preconfigured_tls(config).connect_timeout(Duration::from_secs(10));
    let builder = match timeout {
        Timeout::Total(limit) => builder.timeout(limit),
        Timeout::BetweenReads(limit) => builder.read_timeout(limit),
    };
    builder.build().map_err(|e| ClientError::Transport(e.to_string()))
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    message: String,
    correlation_id: Option<String>,
}

/// Reads a response: the JSON body on success, Steward's error otherwise.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<(u16, T), ClientError> {
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    if status >= 400 {
        return Err(broker_error(status, &bytes));
    }
    let value = serde_json::from_slice(&bytes)
        .map_err(|e| ClientError::Protocol(format!("status {status}, body is not the expected JSON: {e}")))?;
    Ok((status, value))
}

pub(crate) fn broker_error(status: u16, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => ClientError::Broker {
            status,
            code: body.error,
            message: body.message,
            correlation_id: body.correlation_id,
        },
        Err(_) => ClientError::Protocol(format!("status {status} without an error body")),
    }
}
