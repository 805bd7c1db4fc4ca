//! Policy evaluation with 10, 100 and 1000 rules for one integration: every rule in the request's
//! own (action group, method, host) slot and none workload-specific (the worst case: all are looked
//! at), the same with canonicalization in front, and the common case of approval-created exact rules
//! spread over many workloads.

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use steward_canon::{CanonContext, ExecuteRequest, HeaderField, Method, Template, canonicalize};
use steward_policy::{CompiledPolicySet, EvaluationInput, PolicyRule, evaluate};
use steward_types::{IntegrationId, PolicyId, TenantId, WorkloadId};

const SIZES: [usize; 3] = [10, 100, 1000];

fn rule(rule_type: &str, scope: Value, extra: Value) -> PolicyRule {
    let mut value = json!({"rule_type": rule_type, "scope": {
        "tenant_id": "t_acme", "integration_id": "i_api", "action_group": "items_write",
        "method": "POST", "host": "api.example.com"}});
    for (k, v) in scope.as_object().unwrap() {
        value["scope"][k] = v.clone();
    }
    for (k, v) in extra.as_object().unwrap() {
        value[k] = v.clone();
    }
    PolicyRule::from_json(&value).unwrap()
}

/// `n` rules in the request's slot, all looked at; one allow rule with body constraints holds.
fn same_slot(n: usize) -> Vec<(PolicyId, PolicyRule)> {
    (0..n)
        .map(|i| {
            let other = json!({"query_keys": [format!("k{i}")]});
            let rule = match i % 10 {
                _ if i == n / 2 => rule(
                    "allow",
                    json!({"template_id": "tpl_test"}),
                    json!({"constraints": {"max_body_bytes": 4096, "body_json": [
                    {"pointer": "/model", "allowed_values": ["small", "large"]},
                    {"pointer": "/to", "allowed_email_domains": ["example.com"]}]}}),
                ),
                0 => rule("deny", other, json!({})),
                1 if i % 100 == 1 => rule(
                    "rate_limit",
                    json!({}),
                    json!({"rate_limit": {"max_requests": 100, "interval_seconds": 60}}),
                ),
                2 => rule("approval_required", other, json!({})),
                _ => rule("allow", other, json!({})),
            };
            (PolicyId::parse(&format!("pol_{i:05}")).unwrap(), rule)
        })
        .collect()
}

/// `n` exact rules created by `rule` approvals, one per workload, plus one shared rate limit.
fn per_workload(n: usize) -> CompiledPolicySet {
    let rules = (0..n).map(|i| {
        let rule = if i == 0 {
            rule(
                "rate_limit",
                json!({}),
                json!({"rate_limit": {"max_requests": 100, "interval_seconds": 60}}),
            )
        } else {
            rule(
                "allow",
                json!({"workload_id": format!("w_{i}"), "template_id": "tpl_test", "template_version": 1,
                       "query_keys": ["q"]}),
                json!({"bypass_template_approval": true}),
            )
        };
        (PolicyId::parse(&format!("pol_{i:05}")).unwrap(), rule)
    });
    CompiledPolicySet::new(rules)
}

fn template() -> Template {
    Template::from_json(&json!({
        "template_id": "tpl_test", "version": 1, "provider": "test", "description": "bench",
        "allowed_schemes": ["https"], "allowed_ports": [443], "allowed_hosts": ["api.example.com"],
        "redirect_policy": {"mode": "deny"},
        "path_groups": [{
            "group_id": "items_write", "risk_tier": "high", "approval_mode": "none",
            "methods": ["POST"], "path_patterns": ["^/v1/items$"], "query_allowlist": ["q"],
            "header_forward_allowlist": ["content-type"],
            "body_policy": {"max_bytes": 4096, "content_types": ["application/json"]}
        }]
    }))
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let template = template();
    // Workload w_7 has its own exact rule in `per_workload` at every size.
    let workload = WorkloadId::parse("w_7").unwrap();
    let ctx = CanonContext::new(
        TenantId::parse("t_acme").unwrap(),
        workload,
        IntegrationId::parse("i_api").unwrap(),
        1 << 20,
    );
    let body = br#"{"model":"small","to":"Ann <ann@example.com>"}"#;
    let request = ExecuteRequest {
        method: Method::Post,
        url: "https://api.example.com/v1/items?q=1".into(),
        headers: vec![HeaderField::new("content-type", "application/json")],
        body_base64: Some(STANDARD.encode(body)),
    };
    let canonical = canonicalize(&request, &template, &ctx).unwrap();
    let input = EvaluationInput::from_canonical(&canonical, None);

    let mut group = c.benchmark_group("evaluate");
    for n in SIZES {
        let set = CompiledPolicySet::new(same_slot(n));
        assert!(evaluate(&set, &input).decision.is_allowed());
        group.bench_function(format!("same_slot/{n}"), |b| {
            b.iter(|| evaluate(black_box(&set), black_box(&input)))
        });
        group.bench_function(format!("canonicalize_and_evaluate/same_slot/{n}"), |b| {
            b.iter(|| {
                let canonical = canonicalize(black_box(&request), &template, &ctx).unwrap();
                let input = EvaluationInput::from_canonical(&canonical, None);
                evaluate(black_box(&set), &input).decision
            })
        });
        let set = per_workload(n);
        assert!(evaluate(&set, &input).decision.is_allowed());
        group.bench_function(format!("per_workload/{n}"), |b| {
            b.iter(|| evaluate(black_box(&set), black_box(&input)))
        });
    }
    let rules = same_slot(1000);
    group.bench_function("compile/same_slot/1000", |b| {
        b.iter(|| CompiledPolicySet::new(black_box(rules.clone())))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
