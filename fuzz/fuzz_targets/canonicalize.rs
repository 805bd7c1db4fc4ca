//! Canonicalization never panics, and is idempotent on what it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use steward_canon::{CanonContext, ExecuteRequest, Template, canonicalize};
use steward_types::{IntegrationId, TenantId, WorkloadId};

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else { return };
    let template = serde_json::json!({
        "template_id": "tpl_fuzz", "version": 1, "provider": "fuzz",
        "allowed_schemes": ["https"], "allowed_ports": [443, 8443],
        "allowed_hosts": ["api.example.test", "[2001:db8::1]"],
        "redirect_policy": {"mode": "deny"},
        "path_groups": [{"group_id": "all_v1", "risk_tier": "low", "approval_mode": "none",
            "methods": ["GET", "POST"], "path_patterns": ["^/v1/[a-z/]*$"],
            "query_allowlist": ["a", "b"], "header_forward_allowlist": ["content-type"],
            "body_policy": {"max_bytes": 1024, "content_types": ["application/json"]}}]
    });
    let Ok(template) = Template::from_json(&template) else { return };
    let request = serde_json::json!({"method": "GET", "url": url, "headers": []});
    let Ok(request) = serde_json::from_value::<ExecuteRequest>(request) else { return };
    let (Ok(t), Ok(w), Ok(i)) = (TenantId::parse("t_fuzz"), WorkloadId::parse("w_fuzz"), IntegrationId::parse("i_fuzz")) else {
        return;
    };
    let context = CanonContext::new(t, w, i, 4096);
    if let Ok(canonical) = canonicalize(&request, &template, &context) {
        let again = canonicalize(&canonical.to_execute_request(), &template, &context);
        assert!(again.is_ok_and(|c| c.digest() == canonical.digest()));
    }
});
