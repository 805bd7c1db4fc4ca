//! Sealing and opening store records under the keyring, and the typed AAD context of every kind of
//! sealed row (`steward_crypto::EnvelopeContext`).
//!
//! Opening always uses the context the *caller* expects for that row — never the `aad` column
//! stored beside the envelope — so an envelope copied onto another row fails to decrypt.

use steward_crypto::{Envelope, EnvelopeContext, Keyring};
use steward_store::EnvelopeRecord;
use steward_types::{ApprovalId, IntegrationId, SigningKeyId, TenantId};
use zeroize::Zeroizing;

/// Why a sealed record could not be opened or made.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("envelope {envelope_id}: {detail}")]
    Open { envelope_id: String, detail: String },
    #[error("sealing failed: {0}")]
    Seal(String),
}

pub fn ca_key_context() -> EnvelopeContext {
    EnvelopeContext::WorkloadCaKey
}

pub fn audit_key_context() -> EnvelopeContext {
    EnvelopeContext::AuditKey
}

pub fn signing_key_context(kid: &SigningKeyId) -> EnvelopeContext {
    EnvelopeContext::ManifestSigningKey { kid: kid.as_str().to_owned() }
}

/// Seals `plaintext` into a new store record bound to `context`.
pub fn seal_record(
    keyring: &Keyring,
    context: &EnvelopeContext,
    plaintext: &[u8],
) -> Result<EnvelopeRecord, SealError> {
    let envelope =
        steward_crypto::seal(keyring, context, plaintext).map_err(|e| SealError::Seal(e.to_string()))?;
    let aad = context.to_jcs();
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
    context: &EnvelopeContext,
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

/// The AAD context of an integration secret version.
pub fn secret_context(tenant_id: &TenantId, integration_id: &IntegrationId, version: u64) -> EnvelopeContext {
    EnvelopeContext::IntegrationSecret {
        tenant_id: tenant_id.as_str().to_owned(),
        integration_id: integration_id.as_str().to_owned(),
        secret_version: version,
    }
}

/// The AAD context of the OAuth2 client secret of a secret version.
pub fn client_secret_context(
    tenant_id: &TenantId,
    integration_id: &IntegrationId,
    version: u64,
) -> EnvelopeContext {
    EnvelopeContext::IntegrationOAuth2ClientSecret {
        tenant_id: tenant_id.as_str().to_owned(),
        integration_id: integration_id.as_str().to_owned(),
        secret_version: version,
    }
}

/// The AAD context of an approval's sealed preview values. The execute pipeline seals with it; this
/// module opens with it (never with the `aad` column), so a preview copied onto another approval
/// fails to decrypt.
pub fn preview_context(tenant_id: &TenantId, approval_id: &ApprovalId) -> EnvelopeContext {
    EnvelopeContext::ApprovalPreview {
        tenant_id: tenant_id.as_str().to_owned(),
        approval_id: approval_id.as_str().to_owned(),
    }
}
