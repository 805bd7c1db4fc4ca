//! Sealing and opening store records under the keyring, the AAD contexts of the deployment's
//! singletons, and the checkpoint signer backed by the active manifest signing key.
//!
//! Opening always uses the context the *caller* expects for that row — never the `aad` column
//! stored beside the envelope — so an envelope copied onto another row fails to decrypt.

use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::{Value, json};
use steward_crypto::{Envelope, Keyring, SigningKey};
use steward_store::EnvelopeRecord;
use steward_store::audit::CheckpointSigner;
use steward_types::SigningKeyId;
use zeroize::Zeroizing;

/// Why a sealed record could not be opened or made.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("envelope {envelope_id}: {detail}")]
    Open { envelope_id: String, detail: String },
    #[error("sealing failed: {0}")]
    Seal(String),
}

pub fn ca_key_context() -> Value {
    json!({"kind": "workload_ca_key"})
}

pub fn audit_key_context() -> Value {
    json!({"kind": "audit_key"})
}

pub fn signing_key_context(kid: &SigningKeyId) -> Value {
    json!({"kind": "manifest_signing_key", "kid": kid.as_str()})
}

/// Seals `plaintext` into a new store record bound to `context`.
pub fn seal_record(
    keyring: &Keyring,
    context: &Value,
    plaintext: &[u8],
) -> Result<EnvelopeRecord, SealError> {
    let envelope =
        steward_crypto::seal(keyring, context, plaintext).map_err(|e| SealError::Seal(e.to_string()))?;
    let aad =
        String::from_utf8(steward_crypto::aad_bytes(context)).map_err(|e| SealError::Seal(e.to_string()))?;
    Ok(EnvelopeRecord {
        envelope_id: format!("env_{}", uuid::Uuid::now_v7().simple()),
        kek_id: envelope.kek_id().to_owned(),
        aad,
        body: envelope.to_json(),
    })
}

/// Opens a store record, expecting it to be bound to `context`.
pub fn open_record(
    keyring: &Keyring,
    context: &Value,
    record: &EnvelopeRecord,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let fail = |detail: String| SealError::Open { envelope_id: record.envelope_id.clone(), detail };
    let envelope = Envelope::from_json(&record.body).map_err(|e| fail(e.to_string()))?;
    steward_crypto::open(keyring, context, &envelope).map_err(|e| fail(e.to_string()))
}

/// Opens the audit key.
pub fn open_audit_key(keyring: &Keyring, record: &EnvelopeRecord) -> Result<Zeroizing<[u8; 32]>, SealError> {
    let bytes = open_record(keyring, &audit_key_context(), record)?;
    let array: [u8; 32] = bytes.as_slice().try_into().map_err(|_| SealError::Open {
        envelope_id: record.envelope_id.clone(),
        detail: "the audit key is not 32 bytes".into(),
    })?;
    Ok(Zeroizing::new(array))
}

/// Signs audit checkpoints with whichever manifest signing key is active now.
#[derive(Debug, Clone)]
pub struct ActiveKeySigner {
    key: Arc<ArcSwap<SigningKey>>,
}

impl ActiveKeySigner {
    pub fn new(key: Arc<ArcSwap<SigningKey>>) -> Self {
        Self { key }
    }
}

impl CheckpointSigner for ActiveKeySigner {
    fn sign(&self, payload: &[u8]) -> Result<(String, String), String> {
        let key = self.key.load();
        let header = json!({"alg": "EdDSA", "kid": key.kid().as_str(), "typ": "steward-checkpoint+jws"});
        let jws = key.sign_compact_jws(&header, payload).map_err(|e| e.to_string())?;
        Ok((key.kid().as_str().to_owned(), jws))
    }
}
