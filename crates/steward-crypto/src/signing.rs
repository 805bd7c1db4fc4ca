//! Manifest signing keys: Ed25519, signing compact JWS (`alg: EdDSA`, RFC 8037).
//!
//! The private key leaves this module only as PKCS#8 in a `Zeroizing` buffer, for the caller to seal
//! in an envelope. Verification accepts exactly `EdDSA` and rejects `crit` headers, so a token can
//! never talk the verifier into another algorithm or an extension it does not implement.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use steward_types::SigningKeyId;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum JwsError {
    #[error("the signing key is not a valid Ed25519 PKCS#8 key")]
    InvalidKey,
    #[error("generating a signing key failed")]
    KeyGeneration,
    #[error("the JWS protected header must be a JSON object")]
    HeaderNotObject,
    #[error("signing failed")]
    Sign,
    #[error("not a compact JWS")]
    Malformed,
    #[error("the JWS header does not say alg EdDSA, or names critical extensions")]
    UnsupportedHeader,
    #[error("the JWS signature does not verify")]
    BadSignature,
}

/// An Ed25519 manifest signing key with its `kid`. `Debug` shows the kid only.
pub struct SigningKey {
    kid: SigningKeyId,
    pair: Ed25519KeyPair,
}

impl SigningKey {
    /// A new key and its PKCS#8 (v2) encoding, to be sealed in an envelope by the caller.
    pub fn generate(kid: SigningKeyId) -> Result<(SigningKey, Zeroizing<Vec<u8>>), JwsError> {
        let document =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| JwsError::KeyGeneration)?;
        let pkcs8 = Zeroizing::new(document.as_ref().to_vec());
        let key = SigningKey::from_pkcs8(kid, &pkcs8)?;
        Ok((key, pkcs8))
    }

    pub fn from_pkcs8(kid: SigningKeyId, pkcs8: &[u8]) -> Result<SigningKey, JwsError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| JwsError::InvalidKey)?;
        Ok(SigningKey { kid, pair })
    }

    pub fn kid(&self) -> &SigningKeyId {
        &self.kid
    }

    pub fn public_key_raw(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        // An Ed25519 public key is always 32 bytes.
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    /// The public JWK published in the manifest keyset.
    pub fn public_jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.public_key_raw()),
            "kid": self.kid.as_str(),
            "alg": "EdDSA",
            "use": "sig",
        })
    }

    /// `base64url(header).base64url(payload).base64url(signature)`. `alg` and `kid` are set from this
    /// key, overriding whatever the caller put there, so a header can never misdescribe its signature.
    pub fn sign_compact_jws(
        &self,
        protected_header: &serde_json::Value,
        payload: &[u8],
    ) -> Result<String, JwsError> {
        let mut header = protected_header.as_object().cloned().ok_or(JwsError::HeaderNotObject)?;
        header.insert("alg".to_owned(), "EdDSA".into());
        header.insert("kid".to_owned(), self.kid.as_str().into());
        let header_json = serde_json::to_vec(&header).map_err(|_| JwsError::HeaderNotObject)?;
        let mut jws = URL_SAFE_NO_PAD.encode(header_json);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut jws);
        let signature = self.pair.try_sign(jws.as_bytes()).map_err(|_| JwsError::Sign)?;
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut jws);
        Ok(jws)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// Verifies an EdDSA compact JWS under a raw 32-byte Ed25519 public key and returns its payload.
pub fn verify_compact_jws_ed25519(public_key_raw: &[u8], jws: &str) -> Result<Vec<u8>, JwsError> {
    let mut parts = jws.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    let header_json = URL_SAFE_NO_PAD.decode(header_b64).map_err(|_| JwsError::Malformed)?;
    let header: serde_json::Value = serde_json::from_slice(&header_json).map_err(|_| JwsError::Malformed)?;
    let header = header.as_object().ok_or(JwsError::Malformed)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("EdDSA") || header.contains_key("crit") {
        return Err(JwsError::UnsupportedHeader);
    }
    let signature = URL_SAFE_NO_PAD.decode(signature_b64).map_err(|_| JwsError::Malformed)?;
    let signing_input_len = header_b64.len() + 1 + payload_b64.len();
    let signing_input = jws.get(..signing_input_len).ok_or(JwsError::Malformed)?;
    UnparsedPublicKey::new(&ED25519, public_key_raw)
        .verify(signing_input.as_bytes(), &signature)
        .map_err(|_| JwsError::BadSignature)?;
    URL_SAFE_NO_PAD.decode(payload_b64).map_err(|_| JwsError::Malformed)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key() -> SigningKey {
        SigningKey::generate(SigningKeyId::generate()).unwrap().0
    }

    #[test]
    fn jws_round_trip() {
        let key = key();
        let jws = key.sign_compact_jws(&json!({"typ": "steward-manifest+jws"}), b"{\"a\":1}").unwrap();
        assert_eq!(jws.split('.').count(), 3);
        assert_eq!(verify_compact_jws_ed25519(&key.public_key_raw(), &jws).unwrap(), b"{\"a\":1}");

        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jws.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["kid"], key.kid().as_str());
        assert_eq!(header["typ"], "steward-manifest+jws");
    }

    #[test]
    fn a_flipped_byte_fails() {
        let key = key();
        let jws = key.sign_compact_jws(&json!({}), b"payload bytes").unwrap();
        let public = key.public_key_raw();
        for i in 0..jws.len() {
            let mut bytes = jws.clone().into_bytes();
            if bytes[i] == b'.' {
                continue;
            }
            // Swap to another base64url character so the change is in the data, not the encoding.
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            if tampered == jws {
                continue;
            }
            assert!(verify_compact_jws_ed25519(&public, &tampered).is_err(), "byte {i}");
        }
    }

    #[test]
    fn wrong_key_and_bad_shapes_fail() {
        let key = key();
        let jws = key.sign_compact_jws(&json!({}), b"p").unwrap();
        assert!(matches!(
            verify_compact_jws_ed25519(&self::key().public_key_raw(), &jws),
            Err(JwsError::BadSignature)
        ));
        let public = key.public_key_raw();
        for bad in ["", "a.b", "a.b.c.d", "!!.b.c"] {
            assert!(verify_compact_jws_ed25519(&public, bad).is_err(), "{bad}");
        }
        // A header claiming another algorithm is refused before any signature check.
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let rest = jws.split_once('.').unwrap().1;
        assert!(matches!(
            verify_compact_jws_ed25519(&public, &format!("{none_header}.{rest}")),
            Err(JwsError::UnsupportedHeader)
        ));
        assert!(matches!(key.sign_compact_jws(&json!([1]), b"p"), Err(JwsError::HeaderNotObject)));
    }

    #[test]
    fn pkcs8_round_trip_and_jwk() {
        let kid = SigningKeyId::generate();
        let (key, pkcs8) = SigningKey::generate(kid.clone()).unwrap();
        let again = SigningKey::from_pkcs8(kid.clone(), &pkcs8).unwrap();
        assert_eq!(again.public_key_raw(), key.public_key_raw());
        assert!(SigningKey::from_pkcs8(kid.clone(), b"garbage").is_err());

        let jwk = key.public_jwk();
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert_eq!(jwk["alg"], "EdDSA");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], kid.as_str());
        assert_eq!(URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap(), key.public_key_raw());
        assert!(!format!("{key:?}").contains("pair"));
    }
}
