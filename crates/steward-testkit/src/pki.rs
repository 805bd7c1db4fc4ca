//! A throwaway PKI for TLS tests: a CA and leaf certificates made with rcgen at test time.

use anyhow::Result;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A CA that is *not* Steward's: its certificates must fail Steward's handshake.
#[derive(Debug)]
pub struct TestCa {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate with its private key, both PEM.
#[derive(Debug, Clone)]
pub struct TestLeaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> Result<Self> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        Ok(Self { cert_pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    /// A client certificate carrying one URI SAN and the clientAuth EKU.
    pub fn client_cert(&self, san_uri: &str) -> Result<TestLeaf> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.subject_alt_names = vec![SanType::URI(san_uri.try_into()?)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(TestLeaf { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server_cert(&self, names: &[&str]) -> Result<TestLeaf> {
        let key = KeyPair::generate()?;
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(TestLeaf { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

impl TestLeaf {
    /// A rustls acceptor serving this certificate (aws-lc-rs, safe default versions, no client
    /// authentication) and offering `alpn` (e.g. `h2`, `http/1.1`; empty: no ALPN).
    pub fn acceptor(&self, alpn: &[&[u8]]) -> Result<tokio_rustls::TlsAcceptor> {
        use anyhow::Context as _;
        use rustls_pki_types::pem::PemObject as _;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .context("server certificate")?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).context("server key")?;
        let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
    }
}

/// A fresh P-256 key for a workload: `(private key PEM, SubjectPublicKeyInfo DER)`, as a workload
/// would make before asking Steward for a certificate.
pub fn workload_key() -> Result<(String, Vec<u8>)> {
    let key = KeyPair::generate()?;
    Ok((key.serialize_pem(), rcgen::PublicKeyData::subject_public_key_info(&key)))
}
