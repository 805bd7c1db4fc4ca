//! The workload CA: ECDSA P-256, self-signed, created once by `steward init`. It issues the data
//! plane's server certificate and workloads' client certificates.
//!
//! Client certificates are built only from the workload's public key and the identity Steward
//! assigns (a URI SAN): nothing else a workload sent (CSR subject, extensions) reaches a certificate.
//! CSR parsing and proof-of-possession checks happen before this, with x509-parser.

use std::fmt;
use std::net::IpAddr;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519, PKCS_RSA_SHA256,
    PKCS_RSA_SHA384, PKCS_RSA_SHA512, PublicKeyData, SanType, SerialNumber, SubjectPublicKeyInfo,
};
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use steward_types::Timestamp;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::RSAPublicKey;
use zeroize::Zeroizing;

use crate::tokens::random_bytes;

/// Ten years, in seconds (3650 days; leap days do not matter at this scale).
const CA_VALIDITY_SECONDS: i64 = 3650 * 86_400;
/// Backdating of every issued certificate, so a verifier whose clock is slightly behind accepts it.
const BACKDATE_SECONDS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("invalid trust domain {0:?}")]
    InvalidTrustDomain(String),
    #[error("invalid subject alternative name {0:?}")]
    InvalidSan(String),
    #[error("a server certificate needs at least one DNS name or IP address")]
    NoSans,
    #[error("the validity must be positive")]
    InvalidValidity,
    #[error("the certificate would outlive the CA (which expires at {ca_not_after})")]
    BeyondCaValidity { ca_not_after: Timestamp },
    #[error("unsupported public key: {0}")]
    UnsupportedPublicKey(&'static str),
    #[error("the CA certificate is invalid: {0}")]
    InvalidCaCertificate(&'static str),
    #[error("the CA private key is invalid or does not match the CA certificate")]
    InvalidCaKey,
    #[error("a time is out of range")]
    TimeOutOfRange,
    #[error("building the certificate failed: {0}")]
    Build(#[from] rcgen::Error),
}

/// The CA: its certificate and the key that signs with it. `Debug` never shows the key.
pub struct WorkloadCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    not_after: Timestamp,
    issuer: Issuer<'static, KeyPair>,
}

/// The data plane's TLS certificate and its private key (PKCS#8 PEM).
#[derive(Clone)]
pub struct IssuedServerCert {
    pub cert_pem: String,
    pub key_pem: Zeroizing<String>,
}

/// A workload's client certificate and what the store records about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedClientCert {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    /// Lowercase hex of the (positive, 16-byte) serial number.
    pub serial_hex: String,
    /// Whole seconds, exactly as in the certificate.
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    /// `x5t#S256`: base64url (no padding) of SHA-256 of the DER certificate.
    pub thumbprint: String,
}

impl WorkloadCa {
    /// A new CA: P-256 key, CN `Steward workload CA (<trust domain>)`, CA:TRUE with pathlen 0,
    /// keyCertSign and cRLSign, valid for ten years from `now` (backdated five minutes).
    pub fn generate(trust_domain: &str, now: Timestamp) -> Result<WorkloadCa, CaError> {
        if trust_domain.is_empty() || trust_domain.len() > 255 || trust_domain.chars().any(char::is_control) {
            return Err(CaError::InvalidTrustDomain(trust_domain.to_owned()));
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let (not_before, not_after) = validity(now, CA_VALIDITY_SECONDS)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "Steward");
        name.push(DnType::CommonName, format!("Steward workload CA ({trust_domain})"));
        params.distinguished_name = name;
        // pathlen 0: this CA signs leaves only, never another CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial());
        params.not_before = not_before.to_offset_date_time();
        params.not_after = not_after.to_offset_date_time();
        let cert = params.self_signed(&key)?;
        Ok(WorkloadCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            not_after,
            issuer: Issuer::new(params, key),
        })
    }

    /// Rebuilds the CA from its stored certificate (PEM) and its private key (PKCS#8 DER, as opened
    /// from its envelope). The key must match the certificate, and the certificate must be a CA.
    pub fn from_parts(cert_pem: &str, key_pkcs8_der: &[u8]) -> Result<WorkloadCa, CaError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|_| CaError::InvalidCaCertificate("not PEM"))?;
        if pem.label != "CERTIFICATE" {
            return Err(CaError::InvalidCaCertificate("the PEM block is not a CERTIFICATE"));
        }
        let (rest, cert) = X509Certificate::from_der(&pem.contents)
            .map_err(|_| CaError::InvalidCaCertificate("not an X.509 certificate"))?;
        if !rest.is_empty() {
            return Err(CaError::InvalidCaCertificate("trailing data after the certificate"));
        }
        let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
        if !is_ca {
            return Err(CaError::InvalidCaCertificate("not a CA certificate"));
        }
        let not_after = Timestamp::from_unix_seconds(cert.validity().not_after.timestamp())
            .map_err(|_| CaError::TimeOutOfRange)?;
        let key = KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(key_pkcs8_der),
            &PKCS_ECDSA_P256_SHA256,
        )
        .map_err(|_| CaError::InvalidCaKey)?;
        // A key that does not match would sign certificates nobody can verify against ca.crt.
        if key.subject_public_key_info() != cert.public_key().raw {
            return Err(CaError::InvalidCaKey);
        }
        let cert_der = CertificateDer::from(pem.contents.clone());
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(|_| CaError::InvalidCaCertificate("rcgen cannot use it as an issuer"))?;
        Ok(WorkloadCa { cert_pem: cert_pem.to_owned(), cert_der, not_after, issuer })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    pub fn not_after(&self) -> Timestamp {
        self.not_after
    }

    /// The CA's private key as PKCS#8 DER, for the caller to seal in an envelope. (rcgen's `KeyPair`
    /// keeps its own copy, which it does not zeroize; that copy lives as long as this CA.)
    pub fn private_key_pkcs8(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.issuer.key().serialize_der())
    }

    /// The data plane's certificate: a fresh P-256 key; each entry of `dns_names_and_ips` becomes an
    /// IP SAN when it parses as an IP address (brackets around IPv6 allowed) and a DNS SAN otherwise;
    /// serverAuth; valid from `now` − 5 min for `validity_days`.
    pub fn issue_server_cert(
        &self,
        dns_names_and_ips: &[String],
        now: Timestamp,
        validity_days: u32,
    ) -> Result<IssuedServerCert, CaError> {
        if dns_names_and_ips.is_empty() {
            return Err(CaError::NoSans);
        }
        if validity_days == 0 {
            return Err(CaError::InvalidValidity);
        }
        let sans = dns_names_and_ips.iter().map(|s| server_san(s)).collect::<Result<Vec<_>, _>>()?;
        let (not_before, not_after) = validity(now, i64::from(validity_days) * 86_400)?;
        self.check_within_ca(not_after)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "Steward data plane");
        params.distinguished_name = name;
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        params.not_before = not_before.to_offset_date_time();
        params.not_after = not_after.to_offset_date_time();
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedServerCert { cert_pem: cert.pem(), key_pem: Zeroizing::new(key.serialize_pem()) })
    }

    /// A workload's client certificate for `subject_public_key_der` (SPKI DER of a P-256, P-384,
    /// Ed25519 or RSA 2048–4096 (e = 65537) key) and the identity `san_uri`: that URI SAN only (empty subject, so the SAN is
    /// critical), clientAuth, CA:FALSE, valid from `now` − 5 min to `now` + `ttl_seconds`.
    pub fn issue_client_cert(
        &self,
        subject_public_key_der: &[u8],
        san_uri: &str,
        now: Timestamp,
        ttl_seconds: i64,
    ) -> Result<IssuedClientCert, CaError> {
        if ttl_seconds <= 0 {
            return Err(CaError::InvalidValidity);
        }
        let public_key = client_public_key(subject_public_key_der)?;
        let uri = client_san_uri(san_uri)?;
        let not_before = Timestamp::from_unix_seconds(now.unix_seconds() - BACKDATE_SECONDS)
            .map_err(|_| CaError::TimeOutOfRange)?;
        let not_after = Timestamp::from_unix_seconds(now.unix_seconds().saturating_add(ttl_seconds))
            .map_err(|_| CaError::TimeOutOfRange)?;
        self.check_within_ca(not_after)?;
        let serial = random_serial();
        let serial_hex = hex::encode(serial.to_bytes());
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![uri];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(serial);
        params.not_before = not_before.to_offset_date_time();
        params.not_after = not_after.to_offset_date_time();
        let cert = params.signed_by(&public_key, &self.issuer)?;
        let cert_der = cert.der().to_vec();
        Ok(IssuedClientCert {
            cert_pem: cert.pem(),
            thumbprint: thumbprint_s256(&cert_der),
            cert_der,
            serial_hex,
            not_before,
            not_after,
        })
    }

    fn check_within_ca(&self, not_after: Timestamp) -> Result<(), CaError> {
        if not_after > self.not_after {
            return Err(CaError::BeyondCaValidity { ca_not_after: self.not_after });
        }
        Ok(())
    }
}

impl fmt::Debug for WorkloadCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkloadCa")
            .field("thumbprint", &thumbprint_s256(&self.cert_der))
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for IssuedServerCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedServerCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[REDACTED]")
            .finish()
    }
}

/// `x5t#S256` of a DER certificate: base64url (no padding) of its SHA-256.
pub fn thumbprint_s256(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(crate::hash::sha256(der))
}

/// `now` − 5 min .. `now` + `seconds`, truncated to whole seconds as X.509 stores them.
fn validity(now: Timestamp, seconds: i64) -> Result<(Timestamp, Timestamp), CaError> {
    let start = now.unix_seconds();
    let not_before =
        Timestamp::from_unix_seconds(start - BACKDATE_SECONDS).map_err(|_| CaError::TimeOutOfRange)?;
    let not_after =
        Timestamp::from_unix_seconds(start.saturating_add(seconds)).map_err(|_| CaError::TimeOutOfRange)?;
    Ok((not_before, not_after))
}

/// 16 random bytes, made positive (top bit clear) and exactly 16 bytes long in DER (second-highest
/// bit set, so no leading zero byte is stripped): 126 random bits, and `serial_hex` always matches
/// the certificate's own encoding.
fn random_serial() -> SerialNumber {
    let mut bytes = random_bytes::<16>();
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn server_san(value: &str) -> Result<SanType, CaError> {
    let unbracketed = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(value);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let valid_dns = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid_dns {
        return Err(CaError::InvalidSan(value.to_owned()));
    }
    let name = value.try_into().map_err(|_| CaError::InvalidSan(value.to_owned()))?;
    Ok(SanType::DnsName(name))
}

fn client_san_uri(value: &str) -> Result<SanType, CaError> {
    // An absolute URI (`spiffe://…`); printable ASCII only, nothing a relying party could misparse.
    let has_scheme = value.split_once(':').is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            && !rest.is_empty()
    });
    if !has_scheme || value.len() > 2048 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CaError::InvalidSan(value.to_owned()));
    }
    let uri = value.try_into().map_err(|_| CaError::InvalidSan(value.to_owned()))?;
    Ok(SanType::URI(uri))
}

/// Parses an SPKI and accepts only the key types workloads may use, with well-formed key lengths.
fn client_public_key(spki_der: &[u8]) -> Result<SubjectPublicKeyInfo, CaError> {
    let key = SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|_| CaError::UnsupportedPublicKey("not a SubjectPublicKeyInfo of a known algorithm"))?;
    let alg = key.algorithm();
    // Uncompressed EC points (0x04 ‖ X ‖ Y) and raw Ed25519 keys; aws-lc then checks that the point
    // is on the curve, so a certificate is never issued for a key nobody can hold.
    if alg == &PKCS_RSA_SHA256 || alg == &PKCS_RSA_SHA384 || alg == &PKCS_RSA_SHA512 {
        check_rsa_public_key(key.der_bytes())?;
        return Ok(key);
    }
    let (expected_len, verify_alg): (usize, &'static dyn VerificationAlgorithm) =
        if alg == &PKCS_ECDSA_P256_SHA256 {
            (65, &ECDSA_P256_SHA256_ASN1)
        } else if alg == &PKCS_ECDSA_P384_SHA384 {
            (97, &ECDSA_P384_SHA384_ASN1)
        } else if alg == &PKCS_ED25519 {
            (32, &ED25519)
        } else {
            return Err(CaError::UnsupportedPublicKey(
                "only P-256, P-384, Ed25519 and RSA 2048-4096 (e = 65537) keys are accepted",
            ));
        };
    let raw = key.der_bytes();
    let well_formed = raw.len() == expected_len
        && (expected_len == 32 || raw.first() == Some(&0x04))
        && ParsedPublicKey::new(verify_alg, raw).is_ok();
    if !well_formed {
        return Err(CaError::UnsupportedPublicKey("malformed public key"));
    }
    Ok(key)
}

/// An RSAPublicKey (PKCS#1 DER) with a 2048–4096-bit modulus and e = 65537, which aws-lc also
/// accepts as a verification key.
fn check_rsa_public_key(pkcs1_der: &[u8]) -> Result<(), CaError> {
    let (rest, rsa) = RSAPublicKey::from_der(pkcs1_der)
        .map_err(|_| CaError::UnsupportedPublicKey("malformed RSA public key"))?;
    let strip = |bytes: &'_ [u8]| -> Vec<u8> { bytes.iter().copied().skip_while(|b| *b == 0).collect() };
    let modulus = strip(rsa.modulus);
    let bits = match modulus.first() {
        Some(first) => (modulus.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    };
    if !rest.is_empty() || strip(rsa.exponent) != [0x01, 0x00, 0x01] || !(2048..=4096).contains(&bits) {
        return Err(CaError::UnsupportedPublicKey("RSA keys must have 2048-4096 bits and e = 65537"));
    }
    ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pkcs1_der)
        .map_err(|_| CaError::UnsupportedPublicKey("malformed RSA public key"))?;
    Ok(())
}

#[cfg(test)]
mod tests;
