//! The proof builder: a workload's DPoP key pair and the proofs it signs. The verifier's own JWK check
//! runs over every public JWK built here, so a builder key is always one the server accepts.

use std::fmt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
    RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey as X509PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;
use zeroize::Zeroizing;

use super::{DPOP_TYP, DpopAlg, RSA_MAX_BITS, RSA_MIN_BITS, access_token_hash, jwk_thumbprint};

/// Failures of the proof *builder* (workload side), not of verification.
#[derive(Debug, thiserror::Error)]
pub enum DpopKeyError {
    #[error("generating a DPoP key failed")]
    KeyGeneration,
    #[error("the PKCS#8 document is not a valid key for the requested algorithm")]
    InvalidKey,
    #[error("encoding the DPoP key failed")]
    Encoding,
    #[error("signing the DPoP proof failed")]
    Sign,
}

/// A workload's DPoP key pair, able to mint proofs. `Debug` shows the algorithm and thumbprint only.
pub struct DpopKey {
    alg: DpopAlg,
    pair: KeyPairKind,
    public_jwk: Value,
    thumbprint: String,
}

impl DpopKey {
    /// A new ECDSA P-256 key (`ES256`), the recommended default.
    pub fn generate_es256() -> Result<DpopKey, DpopKeyError> {
        DpopKey::generate(DpopAlg::Es256)
    }

    /// A new Ed25519 key (`EdDSA`).
    pub fn generate_ed25519() -> Result<DpopKey, DpopKeyError> {
        DpopKey::generate(DpopAlg::EdDsa)
    }

    /// A new key for `alg`; RSA keys are 2048 bits.
    pub fn generate(alg: DpopAlg) -> Result<DpopKey, DpopKeyError> {
        let pair = match alg {
            DpopAlg::Es256 => KeyPairKind::Ecdsa(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| DpopKeyError::KeyGeneration)?,
            ),
            DpopAlg::Es384 => KeyPairKind::Ecdsa(
                EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING)
                    .map_err(|_| DpopKeyError::KeyGeneration)?,
            ),
            DpopAlg::EdDsa => {
                KeyPairKind::Ed25519(Ed25519KeyPair::generate().map_err(|_| DpopKeyError::KeyGeneration)?)
            }
            DpopAlg::Rs256 | DpopAlg::Ps256 => KeyPairKind::Rsa(
                RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| DpopKeyError::KeyGeneration)?,
            ),
        };
        DpopKey::new(alg, pair)
    }

    /// A key from PKCS#8 (as [`DpopKey::to_pkcs8`] writes it). RSA keys must be 2048–4096 bits, the
    /// range the verifier accepts.
    pub fn from_pkcs8(alg: DpopAlg, pkcs8: &[u8]) -> Result<DpopKey, DpopKeyError> {
        let invalid = |_| DpopKeyError::InvalidKey;
        let pair = match alg {
            DpopAlg::Es256 => KeyPairKind::Ecdsa(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map_err(invalid)?,
            ),
            DpopAlg::Es384 => KeyPairKind::Ecdsa(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8).map_err(invalid)?,
            ),
            DpopAlg::EdDsa => KeyPairKind::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(invalid)?),
            DpopAlg::Rs256 | DpopAlg::Ps256 => {
                let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(invalid)?;
                if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&(pair.public_modulus_len() * 8)) {
                    return Err(DpopKeyError::InvalidKey);
                }
                KeyPairKind::Rsa(pair)
            }
        };
        DpopKey::new(alg, pair)
    }

    /// The private key as PKCS#8 (v1 for ECDSA and RSA, v2 for Ed25519), for the caller to store.
    pub fn to_pkcs8(&self) -> Result<Zeroizing<Vec<u8>>, DpopKeyError> {
        let bytes = match &self.pair {
            KeyPairKind::Ecdsa(pair) => {
                pair.to_pkcs8v1().map_err(|_| DpopKeyError::Encoding)?.as_ref().to_vec()
            }
            KeyPairKind::Ed25519(pair) => {
                pair.to_pkcs8().map_err(|_| DpopKeyError::Encoding)?.as_ref().to_vec()
            }
            KeyPairKind::Rsa(pair) => {
                let der: Pkcs8V1Der<'static> = pair.as_der().map_err(|_| DpopKeyError::Encoding)?;
                der.as_ref().to_vec()
            }
        };
        Ok(Zeroizing::new(bytes))
    }

    pub fn alg(&self) -> DpopAlg {
        self.alg
    }

    /// The public JWK placed in every proof header (members required by RFC 7638 only).
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    /// The RFC 7638 thumbprint of [`DpopKey::public_jwk`]: the `dpop_jkt` a session bound to it gets.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// A compact-JWS DPoP proof for one request. `access_token`, when given, adds `ath`.
    pub fn proof(
        &self,
        method: &str,
        htu: &str,
        iat: i64,
        jti: &str,
        access_token: Option<&str>,
    ) -> Result<String, DpopKeyError> {
        let header = serde_json::json!({"typ": DPOP_TYP, "alg": self.alg.as_str(), "jwk": self.public_jwk});
        let mut claims = serde_json::json!({"jti": jti, "htm": method, "htu": htu, "iat": iat});
        if let (Some(token), Some(claims)) = (access_token, claims.as_object_mut()) {
            claims.insert("ath".to_owned(), access_token_hash(token).into());
        }
        let header = serde_json::to_vec(&header).map_err(|_| DpopKeyError::Sign)?;
        let claims = serde_json::to_vec(&claims).map_err(|_| DpopKeyError::Sign)?;
        self.sign_compact(&header, &claims)
    }

    fn new(alg: DpopAlg, pair: KeyPairKind) -> Result<DpopKey, DpopKeyError> {
        let public_jwk = match &pair {
            KeyPairKind::Ecdsa(pair) => {
                // An uncompressed SEC1 point: 0x04 ‖ x ‖ y, coordinates of equal length.
                let point = pair.public_key().as_ref();
                let coordinates = point.get(1..).filter(|c| point.first() == Some(&0x04) && c.len() % 2 == 0);
                let (x, y) = coordinates.ok_or(DpopKeyError::Encoding)?.split_at((point.len() - 1) / 2);
                let crv = if alg == DpopAlg::Es384 { "P-384" } else { "P-256" };
                serde_json::json!({
                    "kty": "EC", "crv": crv, "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
                })
            }
            KeyPairKind::Ed25519(pair) => serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            }),
            KeyPairKind::Rsa(pair) => {
                let (n, e) = rsa_public_components(pair)?;
                serde_json::json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e)})
            }
        };
        // Going through the verifier's own JWK check means a builder key is always one it accepts.
        let thumbprint = jwk_thumbprint(&public_jwk).map_err(|_| DpopKeyError::InvalidKey)?;
        Ok(DpopKey { alg, pair, public_jwk, thumbprint })
    }

    /// Signs `base64url(header).base64url(payload)` with this key. Tests use it to craft proofs with
    /// arbitrary headers and claims.
    pub(super) fn sign_compact(
        &self,
        header_json: &[u8],
        payload_json: &[u8],
    ) -> Result<String, DpopKeyError> {
        let mut jws = URL_SAFE_NO_PAD.encode(header_json);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(payload_json, &mut jws);
        let rng = SystemRandom::new();
        let signature = match &self.pair {
            KeyPairKind::Ecdsa(pair) => {
                pair.sign(&rng, jws.as_bytes()).map_err(|_| DpopKeyError::Sign)?.as_ref().to_vec()
            }
            KeyPairKind::Ed25519(pair) => {
                pair.try_sign(jws.as_bytes()).map_err(|_| DpopKeyError::Sign)?.as_ref().to_vec()
            }
            KeyPairKind::Rsa(pair) => {
                let padding = if self.alg == DpopAlg::Ps256 { &RSA_PSS_SHA256 } else { &RSA_PKCS1_SHA256 };
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(padding, &rng, jws.as_bytes(), &mut signature).map_err(|_| DpopKeyError::Sign)?;
                signature
            }
        };
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jws);
        Ok(jws)
    }
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &self.alg)
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

// ---- helpers ----

enum KeyPairKind {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// `n` and `e` of an RSA key pair, big-endian without leading zeros. aws-lc exposes them only with
/// its `ring-io` feature, so they are read back from the SubjectPublicKeyInfo instead.
fn rsa_public_components(pair: &RsaKeyPair) -> Result<(Vec<u8>, Vec<u8>), DpopKeyError> {
    let spki: PublicKeyX509Der<'static> = pair.public_key().as_der().map_err(|_| DpopKeyError::Encoding)?;
    let (_, spki) = SubjectPublicKeyInfo::from_der(spki.as_ref()).map_err(|_| DpopKeyError::Encoding)?;
    let Ok(X509PublicKey::RSA(rsa)) = spki.parsed() else {
        return Err(DpopKeyError::Encoding);
    };
    let strip = |bytes: &[u8]| bytes.iter().position(|b| *b != 0).map(|start| bytes[start..].to_vec());
    match (strip(rsa.modulus), strip(rsa.exponent)) {
        (Some(n), Some(e)) => Ok((n, e)),
        _ => Err(DpopKeyError::Encoding),
    }
}
