//! Envelope encryption of every secret in the store.
//!
//! Each object gets a fresh random 256-bit data key (DEK). The content is sealed with AES-256-GCM
//! under the DEK with a random 96-bit nonce; the DEK is sealed with AES-256-GCM under the active KEK
//! with its own random nonce (`wrapped_dek` = nonce ‖ ciphertext ‖ tag). Both seals use the same AAD:
//! the RFC 8785 serialization of the object's context (kind, tenant, row id, version…), so an envelope
//! copied onto another row fails to open. Rotation re-wraps the DEK only; ciphertexts stay untouched.
//!
//! Stored form: `{"v":1,"kek_id":…,"wrapped_dek":…,"nonce":…,"ciphertext":…}`, base64url without
//! padding. Errors say which KEK is missing or that decryption failed, never anything more, so they
//! cannot serve as an oracle.

// This module is where AES-256-GCM is used; `clippy.toml` bans the aws-lc-rs AEAD constructors
// everywhere else.
#![allow(clippy::disallowed_methods)]

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

pub use self::context::EnvelopeContext;
use crate::keyring::Keyring;
use crate::tokens::random_bytes;

const DEK_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// nonce ‖ AES-GCM(DEK) ‖ tag.
const WRAPPED_DEK_LEN: usize = NONCE_LEN + DEK_LEN + TAG_LEN;
const VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the envelope's KEK {0:?} is not in the keyring")]
    UnknownKek(String),
    #[error("the envelope does not decrypt")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
    /// The stored JSON is not an envelope. The message names the problem, never content.
    #[error("not a valid envelope: {0}")]
    Format(String),
}

/// A sealed object. Fields are private and checked at parse time (version, base64url, lengths), so
/// an `Envelope` always has the right shape; whether it decrypts is for [`open`] to say.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawEnvelope", into = "RawEnvelope")]
pub struct Envelope {
    kek_id: String,
    wrapped_dek: Vec<u8>,
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

impl Envelope {
    /// The KEK this envelope's data key is wrapped under (what rotation and `GET /v1/keys/kek` count).
    pub fn kek_id(&self) -> &str {
        &self.kek_id
    }

    pub fn to_json(&self) -> String {
        // Serializing strings and a small integer into a String cannot fail.
        serde_json::to_string(self).expect("an Envelope always serializes")
    }

    pub fn from_json(json: &str) -> Result<Envelope, EnvelopeError> {
        serde_json::from_str(json).map_err(|e| EnvelopeError::Format(e.to_string()))
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("kek_id", &self.kek_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// The RFC 8785 (JCS) serialization of a context given as JSON: what [`rewrap_recorded`] binds to.
/// For a known context it equals [`EnvelopeContext::aad`].
pub fn aad_bytes(context: &serde_json::Value) -> Vec<u8> {
    // serde_jcs only fails on non-finite floats, which a serde_json::Value cannot hold.
    serde_jcs::to_vec(context).expect("a serde_json::Value always has an RFC 8785 serialization")
}

/// Seals `plaintext` under a fresh data key wrapped by the keyring's active KEK.
pub fn seal(
    keyring: &Keyring,
    context: &EnvelopeContext,
    plaintext: &[u8],
) -> Result<Envelope, EnvelopeError> {
    let aad = context.aad();
    let dek = Zeroizing::new(random_bytes::<DEK_LEN>());
    let nonce = random_bytes::<NONCE_LEN>();
    let mut ciphertext = Vec::with_capacity(plaintext.len() + TAG_LEN);
    ciphertext.extend_from_slice(plaintext);
    let content_key = aes_key(&dek).map_err(|()| EnvelopeError::Encrypt)?;
    content_key
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&aad[..]), &mut ciphertext)
        .map_err(|_| EnvelopeError::Encrypt)?;
    let (kek_id, kek) = keyring.active_key();
    let wrapped_dek = wrap_dek(kek, &dek, &aad)?;
    Ok(Envelope { kek_id: kek_id.to_owned(), wrapped_dek, nonce, ciphertext })
}

/// Opens an envelope sealed for exactly this `context`.
pub fn open(
    keyring: &Keyring,
    context: &EnvelopeContext,
    envelope: &Envelope,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let aad = context.aad();
    let dek = unwrap_dek(keyring, envelope, &aad)?;
    open_content(&dek, envelope, &aad)
}

/// Re-wraps the envelope's data key under the keyring's active KEK (with a fresh wrapping nonce),
/// leaving `nonce` and `ciphertext` byte-for-byte unchanged. The content is authenticated first, so
/// rotation never carries a damaged envelope forward under a new key.
pub fn rewrap(
    keyring: &Keyring,
    context: &EnvelopeContext,
    envelope: &Envelope,
) -> Result<Envelope, EnvelopeError> {
    rewrap_aad(keyring, &context.aad(), envelope)
}

/// [`rewrap`] for an envelope known only by the context recorded next to it (KEK rotation walks
/// every stored envelope, whatever its kind, and binds each to its stored `aad` column). The AAD is
/// checked, not trusted: the content must open under it before the data key is re-wrapped.
pub fn rewrap_recorded(
    keyring: &Keyring,
    recorded_context: &serde_json::Value,
    envelope: &Envelope,
) -> Result<Envelope, EnvelopeError> {
    rewrap_aad(keyring, &aad_bytes(recorded_context), envelope)
}

fn rewrap_aad(keyring: &Keyring, aad: &[u8], envelope: &Envelope) -> Result<Envelope, EnvelopeError> {
    let dek = unwrap_dek(keyring, envelope, aad)?;
    drop(open_content(&dek, envelope, aad)?);
    let (kek_id, kek) = keyring.active_key();
    let wrapped_dek = wrap_dek(kek, &dek, aad)?;
    Ok(Envelope {
        kek_id: kek_id.to_owned(),
        wrapped_dek,
        nonce: envelope.nonce,
        ciphertext: envelope.ciphertext.clone(),
    })
}

fn aes_key(key: &[u8; 32]) -> Result<LessSafeKey, ()> {
    UnboundKey::new(&AES_256_GCM, key).map(LessSafeKey::new).map_err(|_| ())
}

fn wrap_dek(kek: &[u8; 32], dek: &[u8; DEK_LEN], aad: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let nonce = random_bytes::<NONCE_LEN>();
    let mut sealed = Zeroizing::new(Vec::with_capacity(DEK_LEN + TAG_LEN));
    sealed.extend_from_slice(dek);
    aes_key(kek)
        .map_err(|()| EnvelopeError::Encrypt)?
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut *sealed)
        .map_err(|_| EnvelopeError::Encrypt)?;
    let mut out = Vec::with_capacity(WRAPPED_DEK_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn unwrap_dek(
    keyring: &Keyring,
    envelope: &Envelope,
    aad: &[u8],
) -> Result<Zeroizing<[u8; DEK_LEN]>, EnvelopeError> {
    let kek =
        keyring.key(&envelope.kek_id).ok_or_else(|| EnvelopeError::UnknownKek(envelope.kek_id.clone()))?;
    // The length was checked when the envelope was parsed or built.
    let (nonce, sealed) = envelope.wrapped_dek.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| EnvelopeError::Decrypt)?;
    let mut buf = Zeroizing::new(sealed.to_vec());
    let opened = aes_key(kek)
        .map_err(|()| EnvelopeError::Decrypt)?
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| EnvelopeError::Decrypt)?;
    if opened.len() != DEK_LEN {
        return Err(EnvelopeError::Decrypt);
    }
    let mut dek = Zeroizing::new([0u8; DEK_LEN]);
    dek.copy_from_slice(opened);
    Ok(dek)
}

fn open_content(
    dek: &[u8; DEK_LEN],
    envelope: &Envelope,
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let mut buf = Zeroizing::new(envelope.ciphertext.clone());
    let plaintext_len = aes_key(dek)
        .map_err(|()| EnvelopeError::Decrypt)?
        .open_in_place(Nonce::assume_unique_for_key(envelope.nonce), Aad::from(aad), &mut buf)
        .map_err(|_| EnvelopeError::Decrypt)?
        .len();
    // Truncating keeps the allocation (and the tag bytes) inside the Zeroizing buffer, wiped on drop.
    buf.truncate(plaintext_len);
    Ok(buf)
}

/// The stored JSON shape; field order here is the serialized order.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvelope {
    v: u8,
    kek_id: String,
    #[serde(with = "b64url")]
    wrapped_dek: Vec<u8>,
    #[serde(with = "b64url")]
    nonce: Vec<u8>,
    #[serde(with = "b64url")]
    ciphertext: Vec<u8>,
}

impl TryFrom<RawEnvelope> for Envelope {
    type Error = String;

    fn try_from(raw: RawEnvelope) -> Result<Self, Self::Error> {
        if raw.v != VERSION {
            return Err(format!("unsupported envelope version {}", raw.v));
        }
        if raw.kek_id.is_empty() || raw.kek_id.len() > 64 {
            return Err("kek_id must be 1-64 characters".to_owned());
        }
        if raw.wrapped_dek.len() != WRAPPED_DEK_LEN {
            return Err(format!("wrapped_dek must be {WRAPPED_DEK_LEN} bytes"));
        }
        let nonce: [u8; NONCE_LEN] =
            raw.nonce.as_slice().try_into().map_err(|_| format!("nonce must be {NONCE_LEN} bytes"))?;
        if raw.ciphertext.len() < TAG_LEN {
            return Err(format!("ciphertext must be at least {TAG_LEN} bytes"));
        }
        Ok(Envelope { kek_id: raw.kek_id, wrapped_dek: raw.wrapped_dek, nonce, ciphertext: raw.ciphertext })
    }
}

impl From<Envelope> for RawEnvelope {
    fn from(e: Envelope) -> Self {
        RawEnvelope {
            v: VERSION,
            kek_id: e.kek_id,
            wrapped_dek: e.wrapped_dek,
            nonce: e.nonce.to_vec(),
            ciphertext: e.ciphertext,
        }
    }
}

mod b64url {
    use super::*;

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        URL_SAFE_NO_PAD.decode(text.as_bytes()).map_err(|_| serde::de::Error::custom("not base64url"))
    }
}

mod context;
#[cfg(test)]
mod tests;
