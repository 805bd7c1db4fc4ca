//! The rule as written (strict serde shapes), before validation.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub rule_type: String,
    /// The sections are parsed one by one so a shape error names its section.
    pub scope: Value,
    pub constraints: Option<Value>,
    pub rate_limit: Option<Value>,
    pub bypass_template_approval: Option<bool>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScope {
    pub tenant_id: String,
    pub integration_id: String,
    pub action_group: String,
    pub method: String,
    pub host: String,
    pub workload_id: Option<String>,
    pub template_id: Option<String>,
    pub template_version: Option<u64>,
    pub query_keys: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConstraints {
    pub max_body_bytes: Option<u64>,
    pub allowed_query_keys: Option<Vec<String>>,
    /// Parsed by hand: each check has `pointer` and exactly one kind.
    pub body_json: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    pub max_requests: u64,
    pub interval_seconds: u64,
    pub per: Option<String>,
}
