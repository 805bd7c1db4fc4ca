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
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| ClientError::Identity(format!("CA certificate: {e}")))?;
        roots.add(cert).map_err(|e| ClientError::Identity(format!("CA certificate: {e}")))?;
    }
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
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| ClientError::Transport(e.to_string()))
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
