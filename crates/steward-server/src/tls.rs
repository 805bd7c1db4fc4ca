//! TLS for the listeners: the data plane *requests* a client certificate and fails the handshake for
//! one that does not chain to the workload CA (or is expired, or has an EKU without clientAuth);
//! whether a certificate is *required* is decided per route by the application. The server
//! certificate is reloadable (SIGHUP) without dropping connections.
//!
//! The handshake's expiry check is not enough on its own: a resumed TLS session restores the client
//! certificate of the original handshake without verifying it again, and a keep-alive connection
//! outlives its certificate. So the verified certificate is read once per connection
//! ([`ClientCertificate`]) and its validity period is checked again, against the server's `Clock`, on
//! every request that uses the identity (`routes::data_plane::principal`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use steward_types::Timestamp;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

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

/// A client certificate the handshake verified, read once when the connection is set up so that
/// every request on the connection checks its identity and validity without parsing it again.
#[derive(Debug, Clone)]
pub struct ClientCertificate {
    der: CertificateDer<'static>,
    thumbprint: String,
    fields: Result<CertificateFields, &'static str>,
}

/// What the data plane needs from a client certificate.
#[derive(Debug, Clone)]
pub struct CertificateFields {
    /// The serial, lowercase hex.
    pub serial: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    /// The extended key usage extension is present and contains clientAuth.
    pub client_auth: bool,
    /// The URI subject alternative names, or the reason they could not be read.
    pub uri_sans: Result<Vec<String>, &'static str>,
}

impl ClientCertificate {
    /// Reads `der`. A certificate that cannot be parsed is kept, and every use of it is refused.
    pub fn read(der: CertificateDer<'static>) -> Self {
        let thumbprint = steward_crypto::thumbprint_s256(der.as_ref());
        let fields = CertificateFields::read(der.as_ref());
        Self { der, thumbprint, fields }
    }

    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// `x5t#S256` of the certificate.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The parsed fields, or why the certificate could not be parsed.
    pub fn fields(&self) -> Result<&CertificateFields, &'static str> {
        self.fields.as_ref().map_err(|e| *e)
    }
}

impl CertificateFields {
    fn read(der: &[u8]) -> Result<Self, &'static str> {
        const UNPARSABLE: &str = "the client certificate could not be parsed";
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| UNPARSABLE)?;
        let validity = cert.validity();
        let not_before =
            Timestamp::from_unix_seconds(validity.not_before.timestamp()).map_err(|_| UNPARSABLE)?;
        let not_after =
            Timestamp::from_unix_seconds(validity.not_after.timestamp()).map_err(|_| UNPARSABLE)?;
        let client_auth = matches!(cert.extended_key_usage(), Ok(Some(eku)) if eku.value.client_auth);
        let uri_sans = match cert.subject_alternative_name() {
            Ok(Some(san)) => Ok(san
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::URI(uri) => Some((*uri).to_owned()),
                    _ => None,
                })
                .collect()),
            Ok(None) => Ok(Vec::new()),
            Err(_) => Err("the client certificate's subject alternative names are malformed"),
        };
        let serial = cert.raw_serial().iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self { serial, not_before, not_after, client_auth, uri_sans })
    }

    /// Whether `now` is inside the validity period (both ends included, to the second).
    pub fn valid_at(&self, now: Timestamp) -> bool {
        let now = now.unix_seconds();
        self.not_before.unix_seconds() <= now && now <= self.not_after.unix_seconds()
    }
}
