//! Templates for tests that need "a template" rather than test one: a small builder for the JSON the
//! admin API (`POST /v1/templates`) and `Template::from_json` take, so a test states only what it
//! relies on (ids, hosts, ports, groups with their methods, path patterns and allowlists).
//!
//! Tests of template *validation* keep their literals: there the JSON itself is what is checked.
//!
//! ```
//! use steward_testkit::templates::{group, template};
//! let body = template("tpl_items", "items")
//!     .tenant("t_1")
//!     .ports(&[8443])
//!     .group(group("items_read", &["GET"], &["^/v1/items$"]).query(&["q"]).headers(&["accept"]))
//!     .build();
//! assert_eq!(body["path_groups"][0]["risk_tier"], "low");
//! ```

use serde_json::{Value, json};

/// The host every test upstream answers for (see [`crate::upstream::UPSTREAM_HOSTS`]).
pub const API_HOST: &str = "api.example.test";

/// A template: `template_id`, `provider`; version 1, `https` only, port 443, [`API_HOST`], redirects
/// denied and no groups until told otherwise. No `tenant_id` unless [`TemplateBuilder::tenant`].
pub fn template(template_id: &str, provider: &str) -> TemplateBuilder {
    TemplateBuilder {
        fields: json!({
            "template_id": template_id,
            "version": 1,
            "provider": provider,
            "allowed_schemes": ["https"],
            "allowed_ports": [443],
            "allowed_hosts": [API_HOST],
            "redirect_policy": {"mode": "deny"},
        }),
        groups: Vec::new(),
    }
}

/// A group: risk tier `low`, approval `none`, no query keys and no forwarded headers until told
/// otherwise; no response header allowlist, body policy, preview or constraints unless set.
pub fn group(group_id: &str, methods: &[&str], path_patterns: &[&str]) -> Group {
    Group {
        fields: json!({
            "group_id": group_id,
            "risk_tier": "low",
            "approval_mode": "none",
            "methods": methods,
            "path_patterns": path_patterns,
            "query_allowlist": [],
            "header_forward_allowlist": [],
        }),
    }
}

/// `items_read`: `GET /v1/items`.
pub fn items_read() -> Group {
    group("items_read", &["GET"], &["^/v1/items$"])
}

/// `items_write`: `POST /v1/items`, risk `high`, approval required, `content-type` forwarded, a JSON
/// body of at most 4096 bytes.
pub fn items_write() -> Group {
    group("items_write", &["POST"], &["^/v1/items$"])
        .risk("high")
        .approval_required()
        .headers(&["content-type"])
        .json_body(4096)
}

/// See [`template`].
#[derive(Debug, Clone)]
pub struct TemplateBuilder {
    fields: Value,
    groups: Vec<Value>,
}

impl TemplateBuilder {
    fn set(mut self, key: &str, value: Value) -> Self {
        self.fields[key] = value;
        self
    }

    /// A tenant template (`tenant_id`).
    pub fn tenant(self, tenant_id: &str) -> Self {
        self.set("tenant_id", json!(tenant_id))
    }

    /// `tenant_id: null`: a global template.
    pub fn global(self) -> Self {
        self.set("tenant_id", Value::Null)
    }

    pub fn version(self, version: u64) -> Self {
        self.set("version", json!(version))
    }

    pub fn description(self, description: &str) -> Self {
        self.set("description", json!(description))
    }

    /// `allowed_hosts`.
    pub fn hosts(self, hosts: &[&str]) -> Self {
        self.set("allowed_hosts", json!(hosts))
    }

    /// `allowed_ports`.
    pub fn ports(self, ports: &[u16]) -> Self {
        self.set("allowed_ports", json!(ports))
    }

    /// `allowed_ports: [port]` (a test upstream's port).
    pub fn port(self, port: u16) -> Self {
        self.ports(&[port])
    }

    /// `default_injection`.
    pub fn default_injection(self, injection: Value) -> Self {
        self.set("default_injection", injection)
    }

    /// Adds a path group (groups keep the order they are added in).
    pub fn group(mut self, group: Group) -> Self {
        self.groups.push(group.fields);
        self
    }

    /// The template JSON.
    pub fn build(self) -> Value {
        let mut fields = self.fields;
        fields["path_groups"] = Value::Array(self.groups);
        fields
    }
}

/// See [`group`].
#[derive(Debug, Clone)]
pub struct Group {
    fields: Value,
}

impl Group {
    fn set(mut self, key: &str, value: Value) -> Self {
        self.fields[key] = value;
        self
    }

    pub fn description(self, description: &str) -> Self {
        self.set("description", json!(description))
    }

    /// `risk_tier`: `low`, `medium` or `high`.
    pub fn risk(self, tier: &str) -> Self {
        self.set("risk_tier", json!(tier))
    }

    /// `approval_mode: required`.
    pub fn approval_required(self) -> Self {
        self.set("approval_mode", json!("required"))
    }

    /// `query_allowlist`.
    pub fn query(self, keys: &[&str]) -> Self {
        self.set("query_allowlist", json!(keys))
    }

    /// `header_forward_allowlist`.
    pub fn headers(self, names: &[&str]) -> Self {
        self.set("header_forward_allowlist", json!(names))
    }

    /// `response_header_allowlist`.
    pub fn response_headers(self, names: &[&str]) -> Self {
        self.set("response_header_allowlist", json!(names))
    }

    /// `body_policy`: JSON bodies of at most `max_bytes`.
    pub fn json_body(self, max_bytes: u64) -> Self {
        self.body_policy(json!({"max_bytes": max_bytes, "content_types": ["application/json"]}))
    }

    /// `body_policy` as given.
    pub fn body_policy(self, policy: Value) -> Self {
        self.set("body_policy", policy)
    }

    /// `approval_preview` (JSON pointers).
    pub fn preview(self, pointers: &[&str]) -> Self {
        self.set("approval_preview", json!(pointers))
    }

    /// `constraints` as given.
    pub fn constraints(self, constraints: Value) -> Self {
        self.set("constraints", constraints)
    }

    /// The group JSON.
    pub fn build(self) -> Value {
        self.fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_json_the_admin_api_takes() {
        let built = template("tpl_items", "items")
            .tenant("t_1")
            .version(2)
            .port(8443)
            .hosts(&["api.example.test", "other.example.test"])
            .group(items_read().query(&["q"]).headers(&["accept"]).response_headers(&["content-type"]))
            .group(items_write().preview(&["/name"]))
            .build();
        let expected = json!({
            "template_id": "tpl_items", "tenant_id": "t_1", "version": 2, "provider": "items",
            "allowed_schemes": ["https"], "allowed_ports": [8443],
            "allowed_hosts": ["api.example.test", "other.example.test"],
            "redirect_policy": {"mode": "deny"},
            "path_groups": [
                {"group_id": "items_read", "risk_tier": "low", "approval_mode": "none", "methods": ["GET"],
                 "path_patterns": ["^/v1/items$"], "query_allowlist": ["q"], "header_forward_allowlist": ["accept"],
                 "response_header_allowlist": ["content-type"]},
                {"group_id": "items_write", "risk_tier": "high", "approval_mode": "required", "methods": ["POST"],
                 "path_patterns": ["^/v1/items$"], "query_allowlist": [], "header_forward_allowlist": ["content-type"],
                 "body_policy": {"max_bytes": 4096, "content_types": ["application/json"]},
                 "approval_preview": ["/name"]}
            ]
        });
        assert_eq!(built, expected);
        assert_ne!(template("tpl_items", "items").build(), expected);
    }

    #[test]
    fn defaults_and_a_global_template() {
        let built = template("tpl_g", "g")
            .global()
            .description("d")
            .default_injection(json!({"type": "header"}))
            .build();
        assert_eq!(built["tenant_id"], Value::Null);
        assert!(built.as_object().is_some_and(|o| o.contains_key("tenant_id")));
        assert_eq!((built["version"].clone(), built["allowed_ports"].clone()), (json!(1), json!([443])));
        assert_eq!(built["allowed_hosts"], json!([API_HOST]));
        assert_eq!(built["path_groups"], json!([]));
        assert_eq!(built["default_injection"], json!({"type": "header"}));
        let g = group("g", &["DELETE"], &["^/x$"]).risk("medium").constraints(json!({"a": 1})).build();
        assert_eq!(
            g,
            json!({"group_id": "g", "risk_tier": "medium", "approval_mode": "none", "methods": ["DELETE"],
            "path_patterns": ["^/x$"], "query_allowlist": [], "header_forward_allowlist": [], "constraints": {"a": 1}})
        );
    }
}
