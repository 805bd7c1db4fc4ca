//! A workload's identity on disk: `workload.key` (0600, PKCS#8 PEM), `workload.crt`, `ca.crt`, the
//! `broker_url` it enrolled with, and the optional DPoP key `dpop.key` kept beside them.

use std::path::{Path, PathBuf};

use steward_crypto::{DpopAlg, DpopKey};
use zeroize::Zeroizing;

use crate::ClientError;

/// The key types `steward enroll` can generate. Both are written as PKCS#8 PEM
/// (`-----BEGIN PRIVATE KEY-----`); P-256 is the default because every TLS stack a workload may use
/// (OpenSSL 3, Python's `ssl`, Node's `tls`, Go, Java) loads it for a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyType {
    Ed25519,
    #[default]
    P256,
}

/// A workload's certificate, its key and the CA that verifies Steward.
#[derive(Clone)]
pub struct Identity {
    pub dir: PathBuf,
    pub key_pem: Zeroizing<String>,
    pub cert_pem: String,
    pub ca_pem: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("dir", &self.dir).field("key_pem", &"[REDACTED]").finish()
    }
}

pub(crate) const KEY_FILE: &str = "workload.key";
pub(crate) const CERT_FILE: &str = "workload.crt";
pub(crate) const CA_FILE: &str = "ca.crt";
const DPOP_FILE: &str = "dpop.key";
/// The data plane URL the identity was enrolled with (one line), read when no URL is given.
pub const BROKER_URL_FILE: &str = "broker_url";

fn read(path: &Path) -> Result<String, ClientError> {
    std::fs::read_to_string(path).map_err(|e| ClientError::Identity(format!("{}: {e}", path.display())))
}

impl Identity {
    /// Loads `workload.key`, `workload.crt` and `ca.crt` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, ClientError> {
        Ok(Self {
            dir: dir.to_path_buf(),
            key_pem: Zeroizing::new(read(&dir.join(KEY_FILE))?),
            cert_pem: read(&dir.join(CERT_FILE))?,
            ca_pem: read(&dir.join(CA_FILE))?,
        })
    }

    /// The broker URL `steward enroll` wrote next to the identity (`broker_url`), if any.
    pub fn broker_url(&self) -> Option<String> {
        read_broker_url(&self.dir)
    }

    /// The DPoP key kept beside the identity, created (ES256, mode 0600) on first use.
    pub fn dpop_key(&self) -> Result<DpopKey, ClientError> {
        let path = self.dir.join(DPOP_FILE);
        if path.exists() {
            let bytes = std::fs::read(&path)
                .map_err(|e| ClientError::Identity(format!("{}: {e}", path.display())))?;
            return DpopKey::from_pkcs8(DpopAlg::Es256, &bytes)
                .map_err(|e| ClientError::Identity(e.to_string()));
        }
        let key = DpopKey::generate_es256().map_err(|e| ClientError::Identity(e.to_string()))?;
        let pkcs8 = key.to_pkcs8().map_err(|e| ClientError::Identity(e.to_string()))?;
        write_private(&path, &pkcs8)?;
        Ok(key)
    }
}

/// The first line of `<dir>/broker_url`, without a trailing slash; `None` when the file is absent
/// or empty.
pub fn read_broker_url(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(BROKER_URL_FILE)).ok()?;
    let line = text.lines().next()?.trim().trim_end_matches('/');
    if line.is_empty() { None } else { Some(line.to_owned()) }
}

/// Writes a private file (mode 0600), refusing to replace an existing one.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<(), ClientError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| ClientError::Identity(format!("{}: {e}", path.display())))?;
    file.write_all(contents).map_err(|e| ClientError::Identity(format!("{}: {e}", path.display())))
}

impl Identity {
    /// The workload id from the certificate's URI SAN
    /// (`spiffe://<trust domain>/tenants/<t>/workloads/<w>`).
    pub fn workload_id(&self) -> Result<String, ClientError> {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};
        let der = CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .map_err(|e| ClientError::Identity(format!("workload certificate: {e}")))?;
        let (_, cert) = X509Certificate::from_der(der.as_ref())
            .map_err(|e| ClientError::Identity(format!("workload certificate: {e}")))?;
        for extension in cert.extensions() {
            if let ParsedExtension::SubjectAlternativeName(san) = extension.parsed_extension() {
                for name in &san.general_names {
                    if let GeneralName::URI(uri) = name
                        && let Some((_, workload)) = uri.rsplit_once("/workloads/")
                    {
                        return Ok(workload.to_owned());
                    }
                }
            }
        }
        Err(ClientError::Identity("the workload certificate has no workload URI SAN".into()))
    }

    /// The certificate's validity period, `(not_before, not_after)` in Unix seconds.
    pub fn certificate_validity(&self) -> Result<(i64, i64), ClientError> {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        use x509_parser::prelude::{FromDer, X509Certificate};
        let der = CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .map_err(|e| ClientError::Identity(format!("workload certificate: {e}")))?;
        let (_, cert) = X509Certificate::from_der(der.as_ref())
            .map_err(|e| ClientError::Identity(format!("workload certificate: {e}")))?;
        let validity = cert.validity();
        Ok((validity.not_before.timestamp(), validity.not_after.timestamp()))
    }
}
