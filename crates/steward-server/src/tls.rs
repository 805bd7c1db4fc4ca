//! TLS for the listeners: the data plane *requests* a client certificate and fails the handshake for
//! one that does not chain to the workload CA (or is expired, or has an EKU without clientAuth);
//! whether a certificate is *required* is decided per route by the application. The server
//! certificate is reloadable (SIGHUP) without dropping connections.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("{path} holds no usable {what}")]
    Empty { path: PathBuf, what: &'static str },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The crypto provider: aws-lc-rs, the only backend.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Loads a certificate chain and its key from PEM files.
pub fn load_certified_key(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| TlsError::Read { path: cert_path.to_owned(), detail: e.to_string() })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Read { path: cert_path.to_owned(), detail: e.to_string() })?;
    if chain.is_empty() {
        return Err(TlsError::Empty { path: cert_path.to_owned(), what: "certificate" });
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| TlsError::Read { path: key_path.to_owned(), detail: e.to_string() })?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::Config(e.to_string()))
}

/// A server certificate that can be swapped while the listener runs.
#[derive(Debug)]
pub struct ReloadableCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

impl ReloadableCert {
    pub fn load(cert_path: PathBuf, key_path: PathBuf) -> Result<Arc<Self>, TlsError> {
        let key = load_certified_key(&cert_path, &key_path)?;
        Ok(Arc::new(Self { cert_path, key_path, current: ArcSwap::from_pointee(key) }))
    }

    /// Re-reads the files; on failure the current certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load_certified_key(&self.cert_path, &self.key_path)?;
        self.current.store(Arc::new(key));
        Ok(())
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The data plane's TLS: TLS 1.2+, client certificates requested and verified against the CA.
pub fn data_plane_config(ca_pem: &str, cert: Arc<ReloadableCert>) -> Result<ServerConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let der = der.map_err(|e| TlsError::Config(format!("workload CA: {e}")))?;
        roots.add(der).map_err(|e| TlsError::Config(format!("workload CA: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The admin listener's TLS (no client certificates: admins use bearer tokens).
pub fn admin_config(cert: Arc<ReloadableCert>) -> Result<ServerConfig, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
