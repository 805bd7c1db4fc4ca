//! Manifests: fetched with the session, verified against the keyset before anything trusts them.
//! An interceptor must route only what a verified, unexpired manifest for *this* workload says.

use serde::{Deserialize, Serialize};
use steward_types::{Clock, SystemClock, Timestamp};

use crate::{BrokerClient, ClientError};

/// A verified manifest (`spec/data-plane.md`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub workload_id: String,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub broker_execute_url: String,
    pub dpop_required: bool,
    pub dpop_ath_required: bool,
    pub match_rules: Vec<MatchRule>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatchRule {
    pub integration_id: String,
    /// The integration's name (routes of `steward gateway`, tool names of `steward mcp`).
    pub name: String,
    pub provider: String,
    /// The template's path groups this workload may call, as tools see them.
    pub groups: Vec<ManifestGroup>,
    #[serde(rename = "match")]
    pub matcher: serde_json::Value,
    pub rewrite: serde_json::Value,
}

/// One path group of a match rule (`spec/gateway.md` §2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestGroup {
    pub group_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub methods: Vec<String>,
    pub path_patterns: Vec<String>,
    pub query_allowlist: Vec<String>,
    pub header_forward_allowlist: Vec<String>,
    /// `low | medium | high`
    pub risk_tier: String,
    /// `none | required`
    pub approval_mode: String,
}

/// Verifies a manifest document against a keyset document: the JWS is EdDSA with
/// `typ: broker-manifest+jws`, signed by a key of the keyset, its payload is exactly the RFC 8785
/// form of the manifest without `signature`, the manifest is for `workload_id` and not expired.
pub fn verify_manifest(
    document: &serde_json::Value,
    keyset: &serde_json::Value,
    workload_id: &str,
    now: Timestamp,
) -> Result<Manifest, ClientError> {
    let bad = |m: &str| ClientError::Manifest(m.to_owned());
    let signature = document.get("signature").ok_or_else(|| bad("no signature"))?;
    let kid = signature.get("kid").and_then(|v| v.as_str()).ok_or_else(|| bad("signature.kid missing"))?;
    let jws = signature.get("jws").and_then(|v| v.as_str()).ok_or_else(|| bad("signature.jws missing"))?;
    let key = keyset
        .get("keys")
        .and_then(|k| k.as_array())
        .and_then(|keys| keys.iter().find(|k| k.get("kid").and_then(|v| v.as_str()) == Some(kid)))
        .ok_or_else(|| bad("the signing key is not in the keyset"))?;
    if key.get("kty").and_then(|v| v.as_str()) != Some("OKP")
        || key.get("crv").and_then(|v| v.as_str()) != Some("Ed25519")
    {
        return Err(bad("the keyset entry is not an Ed25519 key"));
    }
    use base64::Engine;
    let x = key.get("x").and_then(|v| v.as_str()).ok_or_else(|| bad("key x missing"))?;
    let public = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(x)
        .map_err(|_| bad("key x is not base64url"))?;
    let payload = steward_crypto::verify_compact_jws_ed25519(&public, jws)
        .map_err(|e| ClientError::Manifest(e.to_string()))?;
    let header_b64 = jws.split('.').next().unwrap_or("");
    let header: serde_json::Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header_b64)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or_else(|| bad("the JWS header is not JSON"))?;
    if header.get("typ").and_then(|v| v.as_str()) != Some("broker-manifest+jws")
        || header.get("kid").and_then(|v| v.as_str()) != Some(kid)
    {
        return Err(bad("the JWS header is not a broker manifest header for this kid"));
    }
    let mut unsigned = document.clone();
    if let Some(object) = unsigned.as_object_mut() {
        object.remove("signature");
    }
    let expected = serde_jcs::to_vec(&unsigned).map_err(|e| ClientError::Manifest(e.to_string()))?;
    if payload != expected {
        return Err(bad("the signed payload differs from the manifest"));
    }
    let manifest: Manifest =
        serde_json::from_value(unsigned).map_err(|e| ClientError::Manifest(e.to_string()))?;
    if manifest.workload_id != workload_id {
        return Err(bad("the manifest is for another workload"));
    }
    if manifest.expires_at <= now {
        return Err(bad("the manifest has expired"));
    }
    Ok(manifest)
}

impl BrokerClient {
    /// Fetches this workload's manifest and verifies it against `GET /v1/keys/manifest`.
    pub async fn manifest(&self, workload_id: &str) -> Result<Manifest, ClientError> {
        let document = self.get_json(&format!("/v1/workloads/{workload_id}/manifest")).await?;
        let keyset = self.get_json_unauthenticated("/v1/keys/manifest").await?;
        verify_manifest(&document, &keyset, workload_id, SystemClock.now())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use steward_crypto::SigningKey;
    use steward_types::SigningKeyId;

    use super::*;

    fn signed(key: &SigningKey, manifest: &serde_json::Value) -> serde_json::Value {
        let payload = serde_jcs::to_vec(manifest).unwrap();
        let header = json!({"alg": "EdDSA", "kid": key.kid().as_str(), "typ": "broker-manifest+jws"});
        let jws = key.sign_compact_jws(&header, &payload).unwrap();
        let mut document = manifest.clone();
        document["signature"] = json!({"alg": "EdDSA", "kid": key.kid().as_str(), "jws": jws});
        document
    }

    fn manifest(now: Timestamp) -> serde_json::Value {
        json!({
            "manifest_version": 1, "workload_id": "w_1",
            "issued_at": now, "expires_at": now.plus_seconds(300),
            "broker_execute_url": "https://localhost:8081/v1/execute",
            "dpop_required": false, "dpop_ath_required": false,
            "match_rules": [{"integration_id": "i_1", "name": "openai", "provider": "openai",
                "groups": [{"group_id": "responses", "methods": ["POST"], "path_patterns": ["^/v1/responses$"],
                    "query_allowlist": [], "header_forward_allowlist": ["content-type"],
                    "risk_tier": "low", "approval_mode": "none"}],
                "match": {"hosts": ["api.openai.com"], "schemes": ["https"], "ports": [443], "path_groups": ["^/v1/responses$"]},
                "rewrite": {"mode": "execute", "send_intended_url": true}}]
        })
    }

    #[test]
    fn a_signed_manifest_verifies_and_tampering_does_not() {
        let (key, _) = SigningKey::generate(SigningKeyId::generate()).unwrap();
        let keyset = json!({"keys": [key.public_jwk()]});
        let now = SystemClock.now();
        let document = signed(&key, &manifest(now));
        let verified = verify_manifest(&document, &keyset, "w_1", now).unwrap();
        assert_eq!(verified.match_rules.len(), 1);

        let mut tampered = document.clone();
        tampered["match_rules"][0]["match"]["hosts"] = json!(["evil.example"]);
        assert!(verify_manifest(&tampered, &keyset, "w_1", now).is_err());
        assert!(verify_manifest(&document, &keyset, "w_2", now).is_err(), "another workload's manifest");
        assert!(verify_manifest(&document, &keyset, "w_1", now.plus_seconds(301)).is_err(), "expired");
        let (other, _) = SigningKey::generate(SigningKeyId::generate()).unwrap();
        assert!(verify_manifest(&document, &json!({"keys": [other.public_jwk()]}), "w_1", now).is_err());
    }
}
