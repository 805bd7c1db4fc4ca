//! What an envelope is bound to. Every sealed object names its kind and the row it belongs to; the
//! AAD is the RFC 8785 (JCS) serialization of that object, so the JSON shape of each variant is part
//! of the stored format: envelopes already in databases were sealed with exactly these fields, and
//! changing a name, adding a field or changing a number's type makes them fail to open. The tests pin
//! each variant's JCS string.

use serde::Serialize;

/// The context of one sealed object, serialized as `{"kind": "<snake_case variant>", <fields>}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EnvelopeContext {
    /// The workload CA's private key: `{"kind":"workload_ca_key"}`.
    WorkloadCaKey,
    /// The audit key: `{"kind":"audit_key"}`.
    AuditKey,
    /// A manifest signing key's private half.
    ManifestSigningKey { kid: String },
    /// An integration's secret, one per secret version.
    IntegrationSecret { tenant_id: String, integration_id: String, secret_version: u64 },
    /// The OAuth2 client secret of an integration's secret version.
    #[serde(rename = "integration_oauth2_client_secret")]
    IntegrationOAuth2ClientSecret { tenant_id: String, integration_id: String, secret_version: u64 },
    /// A cached OAuth2 access token, bound to the secret version it was obtained with.
    #[serde(rename = "integration_oauth2_access_token")]
    IntegrationOAuth2AccessToken { tenant_id: String, integration_id: String, secret_version: u64 },
    /// The sealed preview values of an approval.
    ApprovalPreview { tenant_id: String, approval_id: String },
    /// A stored execute result replayed for a repeated idempotency key.
    IdempotentResponse {
        tenant_id: String,
        workload_id: String,
        integration_id: String,
        idempotency_key: String,
    },
}

impl EnvelopeContext {
    /// The AAD both seals are bound to: the RFC 8785 serialization of this context.
    pub fn aad(&self) -> Vec<u8> {
        // Strings and unsigned integers only: always serializable.
        serde_jcs::to_vec(self).expect("an EnvelopeContext always has an RFC 8785 serialization")
    }

    /// [`Self::aad`] as text: what the store records next to the envelope (its `aad` column).
    pub fn to_jcs(&self) -> String {
        serde_jcs::to_string(self).expect("an EnvelopeContext always has an RFC 8785 serialization")
    }
}
