//! `steward enroll`: generate a key locally, send a CSR with the one-time enrollment token, write the
//! certificate and the CA. The private key never leaves this machine.

use std::path::Path;

use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ED25519};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::identity::{BROKER_URL_FILE, CA_FILE, CERT_FILE, Identity, KEY_FILE, KeyType, write_private};
use crate::{ClientError, http};

#[derive(Serialize)]
struct EnrollBody<'a> {
    enrollment_token: &'a str,
    csr_pem: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    requested_ttl_seconds: Option<u32>,
}

/// Steward's answer to an enrollment or renewal.
#[derive(Debug, Clone, Deserialize)]
pub struct Enrolled {
    pub workload_id: String,
    pub client_cert_pem: String,
    pub ca_pem: String,
    pub serial: String,
    pub expires_at: String,
}

/// A fresh key and a CSR for it (subject and extensions are irrelevant: Steward ignores them).
pub fn key_and_csr(key_type: KeyType) -> Result<(Zeroizing<String>, String), ClientError> {
    let algorithm = match key_type {
        KeyType::Ed25519 => &PKCS_ED25519,
        KeyType::P256 => &PKCS_ECDSA_P256_SHA256,
    };
    let key = KeyPair::generate_for(algorithm).map_err(|e| ClientError::Identity(e.to_string()))?;
    let params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| ClientError::Identity(e.to_string()))?;
    let csr = params.serialize_request(&key).map_err(|e| ClientError::Identity(e.to_string()))?;
    let csr_pem = csr.pem().map_err(|e| ClientError::Identity(e.to_string()))?;
    Ok((Zeroizing::new(key.serialize_pem()), csr_pem))
}

/// Enrolls and writes `workload.key` (0600, PKCS#8 PEM), `workload.crt`, `ca.crt` and `broker_url`
/// (the URL and a newline, so later commands need only the directory) into `out_dir`.
/// `ca_pem` is the workload CA that verifies Steward's data plane certificate.
pub async fn enroll(
    broker_url: &str,
    ca_pem: &str,
    enrollment_token: &str,
    key_type: KeyType,
    requested_ttl_seconds: Option<u32>,
    out_dir: &Path,
) -> Result<(Identity, Enrolled), ClientError> {
    if out_dir.join(KEY_FILE).exists() {
        return Err(ClientError::Identity(format!(
            "{} already holds a workload key; choose an empty directory",
            out_dir.display()
        )));
    }
    let (key_pem, csr_pem) = key_and_csr(key_type)?;
    let client = http::build(ca_pem, None)?;
    let body = EnrollBody { enrollment_token, csr_pem: &csr_pem, requested_ttl_seconds };
    let broker_url = broker_url.trim().trim_end_matches('/');
    let response = client.post(format!("{broker_url}/v1/enroll")).json(&body).send().await?;
    let (_, enrolled): (u16, Enrolled) = http::read_json(response).await?;

    std::fs::create_dir_all(out_dir)
        .map_err(|e| ClientError::Identity(format!("{}: {e}", out_dir.display())))?;
    write_private(&out_dir.join(KEY_FILE), key_pem.as_bytes())?;
    let write = |name: &str, text: &str| {
        std::fs::write(out_dir.join(name), text).map_err(|e| ClientError::Identity(format!("{name}: {e}")))
    };
    write(CERT_FILE, &enrolled.client_cert_pem)?;
    write(CA_FILE, &enrolled.ca_pem)?;
    write(BROKER_URL_FILE, &format!("{broker_url}\n"))?;
    let identity = Identity {
        dir: out_dir.to_path_buf(),
        key_pem,
        cert_pem: enrolled.client_cert_pem.clone(),
        ca_pem: enrolled.ca_pem.clone(),
    };
    Ok((identity, enrolled))
}

#[derive(Serialize)]
struct RenewBody<'a> {
    csr_pem: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    requested_ttl_seconds: Option<u64>,
}

/// `POST /v1/enroll/renew` with the current certificate, then writes the new `workload.crt` (and
/// `ca.crt` when it changed) into the identity directory atomically (a temporary file renamed over
/// the old one), so a process reading the directory sees the old certificate or the new one, never
/// half of one. The key is kept: the CSR is made with the current key, so the key and certificate
/// never change in two steps. Returns the reloaded identity and Steward's answer.
pub async fn renew(
    client: &crate::BrokerClient,
    identity: &Identity,
    requested_ttl_seconds: Option<u64>,
) -> Result<(Identity, Enrolled), ClientError> {
    let key = KeyPair::from_pem(&identity.key_pem)
        .map_err(|e| ClientError::Identity(format!("{KEY_FILE}: {e}")))?;
    let params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| ClientError::Identity(e.to_string()))?;
    let csr = params.serialize_request(&key).map_err(|e| ClientError::Identity(e.to_string()))?;
    let csr_pem = csr.pem().map_err(|e| ClientError::Identity(e.to_string()))?;
    let body = RenewBody { csr_pem: &csr_pem, requested_ttl_seconds };
    let (_, enrolled): (u16, Enrolled) = client.post_json_mtls("/v1/enroll/renew", &body).await?;
    write_atomically(&identity.dir.join(CERT_FILE), &enrolled.client_cert_pem)?;
    if enrolled.ca_pem != identity.ca_pem {
        write_atomically(&identity.dir.join(CA_FILE), &enrolled.ca_pem)?;
    }
    Ok((Identity::load(&identity.dir)?, enrolled))
}

fn write_atomically(path: &Path, text: &str) -> Result<(), ClientError> {
    let error = |e: std::io::Error| ClientError::Identity(format!("{}: {e}", path.display()));
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    let temporary = std::path::PathBuf::from(temporary);
    std::fs::write(&temporary, text).map_err(error)?;
    std::fs::rename(&temporary, path).map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        error(e)
    })
}
