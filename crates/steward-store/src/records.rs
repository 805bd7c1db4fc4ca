//! Plain records that cross the storage boundary. Secrets only ever appear here as sealed
//! [`EnvelopeRecord`]s; token values only as SHA-256 hashes.

use serde::{Deserialize, Serialize};
use steward_types::{SigningKeyId, TenantId, Timestamp, TokenId};

/// One sealed secret. `body` is the envelope JSON (`{"v":1,"kek_id",…}`), `aad` the JCS context it
/// is bound to (kept so the keyring can be rotated by re-wrapping without knowing every owner), and
/// `kek_id` is duplicated from the body so KEK usage can be counted without parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeRecord {
    pub envelope_id: String,
    pub kek_id: String,
    pub aad: String,
    pub body: String,
}

/// The roles of admin tokens (`spec/control-plane.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminRole {
    Owner,
    Admin,
    Operator,
    Auditor,
}

impl AdminRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminRole::Owner => "owner",
            AdminRole::Admin => "admin",
            AdminRole::Operator => "operator",
            AdminRole::Auditor => "auditor",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "owner" => Some(AdminRole::Owner),
            "admin" => Some(AdminRole::Admin),
            "operator" => Some(AdminRole::Operator),
            "auditor" => Some(AdminRole::Auditor),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminTokenRecord {
    pub token_id: TokenId,
    pub name: String,
    pub role: AdminRole,
    /// Empty for owners (all tenants).
    pub tenant_ids: Vec<TenantId>,
    pub token_hash: [u8; 32],
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// A manifest signing key: Ed25519, public key in clear, private key sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: SigningKeyId,
    /// The raw 32-byte Ed25519 public key.
    pub public_key: Vec<u8>,
    pub private_key: EnvelopeRecord,
    pub created_at: Timestamp,
    /// Set when a newer key became active; the key stays published until its manifests expire.
    pub retired_at: Option<Timestamp>,
}

/// The deployment's singletons, created once by `steward init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub ca_cert_pem: String,
    /// The CA's PKCS#8 private key, sealed.
    pub ca_key: EnvelopeRecord,
    /// The 32-byte audit HMAC key, sealed.
    pub audit_key: EnvelopeRecord,
    pub active_signing_key: SigningKeyRecord,
    pub created_at: Timestamp,
}

/// What `steward init` writes into an empty store, all in one transaction.
#[derive(Debug, Clone)]
pub struct NewDeployment {
    pub ca_cert_pem: String,
    pub ca_key: EnvelopeRecord,
    pub audit_key: EnvelopeRecord,
    pub signing_key: SigningKeyRecord,
    pub owner_token: AdminTokenRecord,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitOutcome {
    Created,
    /// The store already held a deployment; nothing was written.
    AlreadyInitialized,
}
