//! The wire shape of a template, deserialized strictly (unknown fields refused) before validation.

use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTemplate {
    pub(super) template_id: String,
    pub(super) version: u64,
    pub(super) provider: String,
    #[serde(default)]
    pub(super) description: Option<String>,
    pub(super) allowed_schemes: Vec<String>,
    pub(super) allowed_ports: Vec<u64>,
    pub(super) allowed_hosts: Vec<String>,
    pub(super) redirect_policy: RawRedirectPolicy,
    #[serde(default)]
    pub(super) default_injection: Option<Value>,
    pub(super) path_groups: Vec<RawGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedirectPolicy {
    pub(super) mode: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroup {
    pub(super) group_id: String,
    #[serde(default)]
    pub(super) description: Option<String>,
    pub(super) risk_tier: String,
    pub(super) approval_mode: String,
    pub(super) methods: Vec<String>,
    pub(super) path_patterns: Vec<String>,
    #[serde(default)]
    pub(super) query_allowlist: Vec<String>,
    #[serde(default)]
    pub(super) header_forward_allowlist: Vec<String>,
    #[serde(default)]
    pub(super) response_header_allowlist: Option<Vec<String>>,
    #[serde(default)]
    pub(super) body_policy: Option<RawBodyPolicy>,
    #[serde(default)]
    pub(super) approval_preview: Vec<String>,
    #[serde(default)]
    pub(super) constraints: Option<RawConstraints>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBodyPolicy {
    pub(super) max_bytes: u64,
    pub(super) content_types: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConstraints {
    #[serde(default)]
    pub(super) allow_duplicate_query_keys: Option<RawDuplicateKeys>,
    #[serde(default)]
    pub(super) allow_encoded_slashes: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawDuplicateKeys {
    All(bool),
    Keys(Vec<String>),
}
