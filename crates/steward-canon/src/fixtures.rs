//! Test fixtures shared by the unit tests.

use serde_json::{Value, json};
use steward_types::{IntegrationId, TenantId, WorkloadId};

use crate::{CanonContext, Template};

/// A template exercising every group feature.
pub(crate) fn template_json() -> Value {
    json!({
        "template_id": "tpl_test",
        "version": 3,
        "provider": "test",
        "description": "fixture",
        "allowed_schemes": ["https"],
        "allowed_ports": [443, 8443],
        "allowed_hosts": ["API.Example.com.", "bücher.example", "127.0.0.1", "[::FFFF:7f00:1]"],
        "redirect_policy": {"mode": "deny"},
        "path_groups": [
            {
                "group_id": "items_read",
                "risk_tier": "low",
                "approval_mode": "none",
                "methods": ["GET", "HEAD"],
                "path_patterns": ["^/v1/items$", "^/v1/items/[^/]+$", "^/$"],
                "query_allowlist": ["limit", "tag", "cursor", "a%2Fb", "key"],
                "header_forward_allowlist": ["Accept", "x-request-id", "content-type", "x-api-key", "x-forwarded-for", "content-length"],
                "constraints": {"allow_duplicate_query_keys": ["tag"]}
            },
            {
                "group_id": "items_write",
                "risk_tier": "high",
                "approval_mode": "required",
                "methods": ["POST", "PUT"],
                "path_patterns": ["^/v1/items$"],
                "query_allowlist": ["dry_run"],
                "header_forward_allowlist": ["content-type", "accept"],
                "response_header_allowlist": ["content-type", "x-request-id"],
                "body_policy": {"max_bytes": 64, "content_types": ["application/json", "text/event-stream"]},
                "approval_preview": ["/name", "/a~1b"],
                "constraints": {"allow_duplicate_query_keys": true}
            }
        ]
    })
}

pub(crate) fn template() -> Template {
    Template::from_json(&template_json()).expect("fixture template is valid")
}

pub(crate) fn ctx() -> CanonContext {
    CanonContext::new(
        TenantId::parse("t_acme").expect("fixture id"),
        WorkloadId::parse("w_bot").expect("fixture id"),
        IntegrationId::parse("i_api").expect("fixture id"),
        1024,
    )
}
