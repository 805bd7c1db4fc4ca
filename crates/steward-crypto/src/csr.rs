//! CSR intake for enrollment: parse a PEM `CERTIFICATE REQUEST`, check that its key is one Steward
//! accepts, and verify its self-signature (proof of possession of the private key).
//!
//! Only the public key comes out of here. The CSR's subject, SANs, attributes and extensions are
//! never looked at — they are not errors, they simply never reach a certificate: the CA builds the
//! certificate from the key and the identity Steward assigns ([`crate::WorkloadCa::issue_client_cert`]).
//! Parsing and signature verification use x509-parser (with aws-lc-rs), not rcgen, whose CSR parser
//! rejects unknown extensions.
//!
//! Every input, however malformed, gives `Ok` or an error; nothing here panics (a proptest checks it).

use x509_parser::prelude::{FromDer, X509CertificationRequest};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// The largest CSR PEM we look at; a real one is a few KiB even with a 4096-bit RSA key.
pub const MAX_CSR_PEM_BYTES: usize = 64 * 1024;

const OID_EC_P256: &str = "1.2.840.10045.3.1.7";
const OID_EC_P384: &str = "1.3.132.0.34";
const OID_SHA1_WITH_RSA: [&str; 2] = ["1.2.840.113549.1.1.5", "1.3.14.3.2.29"];

/// Why a CSR was refused. The two variants are the two spec codes (`csr_invalid`,
/// `csr_key_unsupported`); the message says what exactly was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// Not a PEM certificate request, not DER, or a bad self-signature.
    #[error("{0}")]
    Invalid(String),
    /// A well-formed CSR for a key type or size Steward does not accept.
    #[error("{0}")]
    KeyUnsupported(String),
}

/// The key types a workload may enroll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrKeyType {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    /// RSA with e = 65537 and this many modulus bits (2048–4096).
    Rsa {
        bits: u32,
    },
}

impl CsrKeyType {
    /// A short name for logs and docs (`p256`, `p384`, `ed25519`, `rsa2048`…).
    pub fn name(&self) -> String {
        match self {
            CsrKeyType::EcdsaP256 => "p256".into(),
            CsrKeyType::EcdsaP384 => "p384".into(),
            CsrKeyType::Ed25519 => "ed25519".into(),
            CsrKeyType::Rsa { bits } => format!("rsa{bits}"),
        }
    }
}

/// A CSR that passed every check: its key (SubjectPublicKeyInfo DER) and the key's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCsr {
    pub spki_der: Vec<u8>,
    pub key_type: CsrKeyType,
}

/// Parses and checks a PEM CSR, in this order: PEM and DER structure (→ `Invalid`), key type and
/// size (→ `KeyUnsupported`), self-signature (→ `Invalid`). The key is checked before the signature
/// so that a correctly signed CSR for, say, a P-521 or 1024-bit RSA key is reported as an
/// unsupported key rather than as a signature nobody could verify.
pub fn verify_csr_pem(pem: &str) -> Result<VerifiedCsr, CsrError> {
    if pem.len() > MAX_CSR_PEM_BYTES {
        return Err(CsrError::Invalid(format!("csr_pem is larger than {MAX_CSR_PEM_BYTES} bytes")));
    }
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|_| CsrError::Invalid("csr_pem is not a PEM block".into()))?;
    if block.label != "CERTIFICATE REQUEST" && block.label != "NEW CERTIFICATE REQUEST" {
        return Err(CsrError::Invalid(format!(
            "csr_pem holds a {:?} PEM block, not a CERTIFICATE REQUEST",
            block.label
        )));
    }
    verify_csr_der(&block.contents)
}

/// [`verify_csr_pem`] for DER input.
pub fn verify_csr_der(der: &[u8]) -> Result<VerifiedCsr, CsrError> {
    let (rest, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| CsrError::Invalid(format!("the CSR is not a valid PKCS#10 request: {e}")))?;
    if !rest.is_empty() {
        return Err(CsrError::Invalid("trailing data after the CSR".into()));
    }
    let spki = &csr.certification_request_info.subject_pki;
    let key_type = classify_key(spki)?;
    let signature_oid = csr.signature_algorithm.algorithm.to_id_string();
    if OID_SHA1_WITH_RSA.contains(&signature_oid.as_str()) {
        return Err(CsrError::Invalid("the CSR is signed with SHA-1, which is not accepted".into()));
    }
    csr.verify_signature().map_err(|e| {
        CsrError::Invalid(format!("the CSR's self-signature does not verify with its own key: {e}"))
    })?;
    Ok(VerifiedCsr { spki_der: spki.raw.to_vec(), key_type })
}

fn classify_key(spki: &SubjectPublicKeyInfo<'_>) -> Result<CsrKeyType, CsrError> {
    let unsupported = |what: String| {
        CsrError::KeyUnsupported(format!(
            "{what}; accepted keys are ECDSA P-256 or P-384, Ed25519, or RSA 2048-4096 bits with e = 65537"
        ))
    };
    let parsed = spki.parsed().map_err(|_| CsrError::Invalid("the CSR's public key is malformed".into()))?;
    let algorithm = spki.algorithm.algorithm.to_id_string();
    match parsed {
        PublicKey::EC(point) => {
            let curve =
                spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
            let (key_type, len) = match curve.as_deref() {
                Some(OID_EC_P256) => (CsrKeyType::EcdsaP256, 65),
                Some(OID_EC_P384) => (CsrKeyType::EcdsaP384, 97),
                Some(other) => return Err(unsupported(format!("the EC curve {other} is not accepted"))),
                None => return Err(unsupported("the EC key names no curve".into())),
            };
            // Uncompressed points only (what every TLS stack and rcgen produce).
            if point.data().len() != len || point.data().first() != Some(&0x04) {
                return Err(unsupported(
                    "the EC public key is not an uncompressed point of its curve".into(),
                ));
            }
            Ok(key_type)
        }
        PublicKey::RSA(rsa) => {
            let exponent = strip_leading_zeros(rsa.exponent);
            if exponent != [0x01, 0x00, 0x01] {
                return Err(unsupported("the RSA public exponent is not 65537".into()));
            }
            let bits = bit_length(strip_leading_zeros(rsa.modulus));
            if !(2048..=4096).contains(&bits) {
                return Err(unsupported(format!("the RSA key has {bits} bits")));
            }
            Ok(CsrKeyType::Rsa { bits })
        }
        PublicKey::Unknown(raw) if algorithm == "1.3.101.112" => {
            if raw.len() != 32 || spki.algorithm.parameters.is_some() {
                return Err(CsrError::Invalid("the Ed25519 public key is malformed".into()));
            }
            Ok(CsrKeyType::Ed25519)
        }
        _ => Err(unsupported(format!("the key algorithm {algorithm} is not accepted"))),
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

fn bit_length(bytes: &[u8]) -> u32 {
    match bytes.first() {
        None => 0,
        Some(first) => {
            let whole = u32::try_from(bytes.len() - 1).unwrap_or(u32::MAX / 16).saturating_mul(8);
            whole.saturating_add(8 - first.leading_zeros())
        }
    }
}

#[cfg(test)]
mod tests;
