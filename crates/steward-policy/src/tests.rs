#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use crate::{PolicyRule, RateLimitPer, RuleType};

fn base() -> Value {
    json!({
        "rule_type": "allow",
        "scope": {
            "tenant_id": "t_one", "integration_id": "i_one", "action_group": "openai_responses",
            "method": "post", "host": "api.openai.com"
        }
    })
}

fn with(path: &[&str], value: Value) -> Value {
    let mut rule = base();
    let mut target = &mut rule;
    for key in &path[..path.len() - 1] {
        target = &mut target[*key];
    }
    target[path[path.len() - 1]] = value;
    rule
}

fn field_of(rule: Value) -> String {
    PolicyRule::from_json(&rule).unwrap_err().field().to_owned()
}

#[test]
fn a_minimal_rule_is_normalized_and_round_trips() {
    let rule = PolicyRule::from_json(&base()).unwrap();
    assert_eq!(rule.rule_type(), RuleType::Allow);
    assert_eq!(rule.scope().method, "POST");
    assert!(!rule.bypass_template_approval());
    let again = PolicyRule::from_json(&rule.to_json()).unwrap();
    assert_eq!(again, rule);
}

#[test]
fn rate_limits_default_to_per_workload_and_are_required_iff_rule_type_is_rate_limit() {
    let limited = with(&["rate_limit"], json!({"max_requests": 10, "interval_seconds": 60}));
    assert_eq!(field_of(limited.clone()), "rate_limit");
    let mut limited = limited;
    limited["rule_type"] = json!("rate_limit");
    let rule = PolicyRule::from_json(&limited).unwrap();
    assert_eq!(rule.rate_limit().unwrap().per, RateLimitPer::Workload);
    assert_eq!(PolicyRule::from_json(&rule.to_json()).unwrap(), rule);
    assert_eq!(field_of(with(&["rule_type"], json!("rate_limit"))), "rate_limit");
    let mut zero = limited.clone();
    zero["rate_limit"]["max_requests"] = json!(0);
    assert_eq!(field_of(zero), "rate_limit.max_requests");
    let mut per = limited;
    per["rate_limit"]["per"] = json!("tenant");
    assert_eq!(field_of(per), "rate_limit.per");
}

#[test]
fn every_rule_names_its_field() {
    let cases: Vec<(Value, &str)> = vec![
        (with(&["rule_type"], json!("permit")), "rule_type"),
        (with(&["scope", "tenant_id"], json!(" ")), "scope.tenant_id"),
        (with(&["scope", "tenant_id"], json!("tenant")), "scope.tenant_id"),
        (with(&["scope", "integration_id"], json!("")), "scope.integration_id"),
        (with(&["scope", "action_group"], json!("")), "scope.action_group"),
        (with(&["scope", "method"], json!("CONNECT")), "scope.method"),
        (with(&["scope", "host"], json!("https://api.openai.com")), "scope.host"),
        (with(&["scope", "host"], json!("api.openai.com:443")), "scope.host"),
        (with(&["scope", "host"], json!("api.openai.com/v1")), "scope.host"),
        (with(&["scope", "host"], json!("*.openai.com")), "scope.host"),
        (with(&["scope", "host"], json!("API.openai.com")), "scope.host"),
        (with(&["scope", "workload_id"], json!("")), "scope.workload_id"),
        (with(&["scope", "template_id"], json!("openai")), "scope.template_id"),
        (with(&["scope", "template_version"], json!(0)), "scope.template_version"),
        (with(&["scope", "query_keys"], json!(["b", "a"])), "scope.query_keys"),
        (with(&["scope", "query_keys"], json!(["a", "a"])), "scope.query_keys"),
        (with(&["scope", "extra"], json!(1)), "scope"),
        (with(&["bypass_template_approval"], json!(true)).tap_type("deny"), "bypass_template_approval"),
        (
            with(&["constraints"], json!({"body_json": [{"pointer": "model"}]})),
            "constraints.body_json[0].pointer",
        ),
        (
            with(
                &["constraints"],
                json!({"body_json": [{"pointer": "/a", "max_length": 1, "max_number": 2}]}),
            ),
            "constraints.body_json[0]",
        ),
        (
            with(
                &["constraints"],
                json!({"body_json": [{"pointer": "/to", "allowed_email_domains": ["a@b"]}]}),
            ),
            "constraints.body_json[0].allowed_email_domains",
        ),
        (with(&["constraints"], json!({"max_body_bytes": -1})), "constraints"),
        (with(&["constraints"], json!({"max_body_bytes": -1})).tap_type("deny"), "constraints"),
        (with(&["unknown"], json!(1)), "rule"),
    ];
    for (rule, field) in cases {
        assert_eq!(field_of(rule.clone()), field, "{rule}");
    }
}

#[test]
fn ipv6_and_constraints_are_accepted() {
    let rule = with(&["scope", "host"], json!("[2001:db8::1]"));
    assert!(PolicyRule::from_json(&rule).is_ok());
    let rule = with(
        &["constraints"],
        json!({"max_body_bytes": 10, "allowed_query_keys": ["q"], "body_json": [
            {"pointer": "/model", "allowed_values": ["gpt-4o"]},
            {"pointer": "/to", "allowed_email_domains": ["example.com"]},
            {"pointer": "/n", "max_number": 2.5}
        ]}),
    );
    let parsed = PolicyRule::from_json(&rule).unwrap();
    assert_eq!(PolicyRule::from_json(&parsed.to_json()).unwrap(), parsed);
}

#[test]
fn every_rule_type_may_carry_constraints() {
    let constraints = json!({"body_json": [{"pointer": "/params/name", "allowed_values": ["delete_repo"]}]});
    for rule_type in ["allow", "deny", "approval_required", "rate_limit"] {
        let mut rule = with(&["constraints"], constraints.clone()).tap_type(rule_type);
        if rule_type == "rate_limit" {
            rule["rate_limit"] = json!({"max_requests": 1, "interval_seconds": 60});
        }
        let parsed = PolicyRule::from_json(&rule).unwrap_or_else(|e| panic!("{rule_type}: {e}"));
        assert!(parsed.constraints().is_some(), "{rule_type}");
        assert_eq!(PolicyRule::from_json(&parsed.to_json()).unwrap(), parsed);
    }
    // The same validation applies whatever the type.
    let bad = with(&["constraints"], json!({"body_json": [{"pointer": "params"}]})).tap_type("deny");
    assert_eq!(field_of(bad), "constraints.body_json[0].pointer");
}

trait TapType {
    fn tap_type(self, rule_type: &str) -> Value;
}

impl TapType for Value {
    fn tap_type(mut self, rule_type: &str) -> Value {
        self["rule_type"] = json!(rule_type);
        self
    }
}

#[test]
fn ipv6_hosts_are_normalized_as_templates_and_requests_are() {
    // A rule names the host the way a request's canonical URL does (RFC 5952), whatever spelling
    // the author used, so `[::127.0.0.1]` meets a request for `[::7f00:1]`.
    for (written, canonical) in [
        ("[::127.0.0.1]", "[::7f00:1]"),
        ("[0:0:0:0:0:0:7f00:1]", "[::7f00:1]"),
        ("[::FFFF:7F00:1]", "[::ffff:127.0.0.1]"),
        ("[2001:db8:0:0:1:0:0:1]", "[2001:db8::1:0:0:1]"),
        ("[2001:0DB8::0001]", "[2001:db8::1]"),
        ("[::1]", "[::1]"),
    ] {
        let rule = PolicyRule::from_json(&with(&["scope", "host"], json!(written)))
            .unwrap_or_else(|e| panic!("{written}: {e}"));
        assert_eq!(rule.scope().host, canonical, "{written}");
        // The same literal in a template normalizes to the same host.
        let template = steward_canon::Template::from_json(&json!({
            "template_id": "tpl_v6", "version": 1, "provider": "v6", "allowed_schemes": ["https"],
            "allowed_ports": [443], "allowed_hosts": [written], "redirect_policy": {"mode": "deny"},
            "path_groups": [{"group_id": "g", "risk_tier": "low", "approval_mode": "none",
                             "methods": ["GET"], "path_patterns": ["^/x$"]}]
        }))
        .unwrap();
        assert_eq!(template.hosts(), &[rule.scope().host.clone()], "{written}");
        assert_eq!(PolicyRule::from_json(&rule.to_json()).unwrap(), rule);
    }
    for bad in ["[::1%25lo]", "[fe80::1%eth0]", "[v1.x]", "[::1]:443", "[12345::]"] {
        assert_eq!(field_of(with(&["scope", "host"], json!(bad))), "scope.host", "{bad}");
    }
}
