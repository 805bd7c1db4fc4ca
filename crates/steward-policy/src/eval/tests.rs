#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use steward_canon::{ApprovalMode, Method};
use steward_types::{ApprovalId, ErrorCode, IntegrationId, PolicyId, TenantId, WorkloadId};

use super::*;
use crate::{PolicyRule, RuleType};

/// An owned request to borrow an [`EvaluationInput`] from.
pub(super) struct Req {
    tenant: TenantId,
    workload: WorkloadId,
    integration: IntegrationId,
    template_version: u64,
    query_keys: Vec<String>,
    pub(super) body: Vec<u8>,
    mode: ApprovalMode,
    once: Option<ApprovalId>,
}

impl Req {
    pub(super) fn new() -> Self {
        Req {
            tenant: TenantId::parse("t_acme").unwrap(),
            workload: WorkloadId::parse("w_bot").unwrap(),
            integration: IntegrationId::parse("i_api").unwrap(),
            template_version: 3,
            query_keys: vec![],
            body: vec![],
            mode: ApprovalMode::None,
            once: None,
        }
    }
    pub(super) fn required(mut self) -> Self {
        self.mode = ApprovalMode::Required;
        self
    }
    pub(super) fn body(mut self, body: &str) -> Self {
        self.body = body.as_bytes().to_vec();
        self
    }
    fn keys(mut self, keys: &[&str]) -> Self {
        self.query_keys = keys.iter().map(|k| (*k).to_owned()).collect();
        self
    }
    fn workload(mut self, w: &str) -> Self {
        self.workload = WorkloadId::parse(w).unwrap();
        self
    }
    pub(super) fn once(mut self, id: &str) -> Self {
        self.once = Some(ApprovalId::parse(id).unwrap());
        self
    }
    pub(super) fn input(&self) -> EvaluationInput<'_> {
        EvaluationInput {
            tenant_id: &self.tenant,
            workload_id: &self.workload,
            integration_id: &self.integration,
            template_id: "tpl_test",
            template_version: self.template_version,
            action_group: "items_write",
            method: Method::Post,
            host: "api.example.com",
            query_keys: &self.query_keys,
            body: &self.body,
            approval_mode: self.mode,
            approved_once: self.once.as_ref(),
        }
    }
}

/// A rule of `rule_type` for the request's fixed scope, with `extra` merged in (`scope` merged too).
pub(super) fn rule(id: &str, rule_type: &str, extra: Value) -> (PolicyId, PolicyRule) {
    let mut value = json!({
        "rule_type": rule_type,
        "scope": {"tenant_id": "t_acme", "integration_id": "i_api", "action_group": "items_write",
                  "method": "POST", "host": "api.example.com"}
    });
    if rule_type == "rate_limit" {
        value["rate_limit"] = json!({"max_requests": 5, "interval_seconds": 60});
    }
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            match (k.as_str(), v) {
                ("scope", Value::Object(scope)) => {
                    for (sk, sv) in scope {
                        value["scope"][sk] = sv;
                    }
                }
                (_, v) => value[k] = v,
            }
        }
    }
    (PolicyId::parse(id).unwrap(), PolicyRule::from_json(&value).unwrap())
}

pub(super) fn set(rules: Vec<(PolicyId, PolicyRule)>) -> CompiledPolicySet {
    CompiledPolicySet::new(rules)
}

pub(super) fn decide(set: &CompiledPolicySet, req: &Req) -> Decision {
    evaluate(set, &req.input()).decision
}

pub(super) fn code(d: &Decision) -> &'static str {
    d.reason_code()
}

fn denied_message(d: &Decision) -> &str {
    match d {
        Decision::Denied { message, .. } => message,
        other => panic!("not denied: {other:?}"),
    }
}

pub(super) fn buckets(d: &Decision) -> Vec<(String, u64, u64)> {
    match d {
        Decision::Allowed { rate_limits, .. } => {
            rate_limits.iter().map(|b| (b.key.clone(), b.capacity, b.interval_seconds)).collect()
        }
        other => panic!("not allowed: {other:?}"),
    }
}

// ---- Decision order ----

#[test]
fn deny_beats_everything() {
    let s = set(vec![
        rule("pol_a", "allow", json!({"bypass_template_approval": true})),
        rule("pol_b", "approval_required", json!({})),
        rule("pol_z", "deny", json!({})),
        rule("pol_r", "rate_limit", json!({})),
    ]);
    let d = decide(&s, &Req::new().once("apr_one").required());
    assert_eq!(code(&d), "policy_deny");
    assert!(matches!(&d, Decision::Denied { code: ErrorCode::PolicyDeny, .. }));
    assert_eq!(d.policy_id().unwrap().as_str(), "pol_z");
    assert!(denied_message(&d).contains("pol_z"));
}

#[test]
fn a_once_approval_beats_allow_and_approval_rules() {
    let s = set(vec![
        rule("pol_a", "allow", json!({"constraints": {"max_body_bytes": 0}})),
        rule("pol_b", "approval_required", json!({})),
        rule("pol_r", "rate_limit", json!({})),
    ]);
    let d = decide(&s, &Req::new().once("apr_one").required().body("{}"));
    let Decision::Allowed { reason, policy_id, approval_id, rate_limits } = &d else { panic!("{d:?}") };
    assert_eq!(*reason, Reason::ApprovalOnce);
    assert_eq!(code(&d), "approval_once");
    assert_eq!(policy_id, &None);
    assert_eq!(approval_id.as_ref().unwrap().as_str(), "apr_one");
    assert_eq!(rate_limits.len(), 1, "a once approval still takes rate-limit tokens");
}

#[test]
fn an_allow_rule_without_bypass_does_not_lift_template_approval() {
    let s = set(vec![rule("pol_a", "allow", json!({}))]);
    let d = decide(&s, &Req::new().required());
    assert_eq!(d, Decision::ApprovalRequired { reason: Reason::TemplateApprovalRequired, policy_id: None });
    assert_eq!(code(&decide(&s, &Req::new())), "policy_allow");
}

#[test]
fn a_bypassing_allow_rule_lifts_template_approval_and_is_named() {
    let s = set(vec![
        rule("pol_a", "allow", json!({})),
        rule("pol_b", "allow", json!({"bypass_template_approval": true})),
        rule(
            "pol_c",
            "allow",
            json!({"bypass_template_approval": true, "constraints": {"max_body_bytes": 0}}),
        ),
    ]);
    let d = decide(&s, &Req::new().required().body("{}"));
    assert_eq!(code(&d), "policy_allow");
    assert_eq!(d.policy_id().unwrap().as_str(), "pol_b");
    // Without the floor the first holding rule (by id) is named.
    assert_eq!(decide(&s, &Req::new().body("{}")).policy_id().unwrap().as_str(), "pol_a");
    // A bypassing rule whose constraints fail lifts nothing.
    let s = set(vec![
        rule("pol_a", "allow", json!({})),
        rule(
            "pol_c",
            "allow",
            json!({"bypass_template_approval": true, "constraints": {"max_body_bytes": 0}}),
        ),
    ]);
    assert_eq!(code(&decide(&s, &Req::new().required().body("{}"))), "template_approval_required");
}

#[test]
fn allow_is_deterministic_whatever_the_input_order() {
    let rules = vec![
        rule("pol_c", "allow", json!({})),
        rule("pol_a", "allow", json!({})),
        rule("pol_b", "allow", json!({})),
    ];
    let mut reversed = rules.clone();
    reversed.reverse();
    for rules in [rules, reversed] {
        assert_eq!(decide(&set(rules), &Req::new()).policy_id().unwrap().as_str(), "pol_a");
    }
    // A workload-specific rule and an any-workload rule are visited together, in id order.
    let s = set(vec![
        rule("pol_b", "allow", json!({})),
        rule("pol_a", "allow", json!({"scope": {"workload_id": "w_bot"}})),
    ]);
    let e = evaluate(&s, &Req::new().input());
    assert_eq!(e.decision.policy_id().unwrap().as_str(), "pol_a");
    let ids: Vec<&str> = e.trace.iter().map(|t| t.policy_id().as_str()).collect();
    assert_eq!(ids, ["pol_a", "pol_b"]);
}

#[test]
fn when_every_allow_rule_fails_its_constraints_the_first_failure_is_named() {
    let s = set(vec![
        rule("pol_b", "allow", json!({"constraints": {"max_body_bytes": 1}})),
        rule(
            "pol_a",
            "allow",
            json!({"constraints": {"body_json": [
                {"pointer": "/model", "allowed_values": ["small"]},
                {"pointer": "/n", "max_number": 3}
            ]}}),
        ),
        rule("pol_q", "approval_required", json!({})),
    ]);
    let d = decide(&s, &Req::new().required().body(r#"{"model":"small","n":4}"#));
    assert!(matches!(&d, Decision::Denied { code: ErrorCode::PolicyConstraintFailed, .. }));
    assert_eq!(d.policy_id().unwrap().as_str(), "pol_a");
    let message = denied_message(&d);
    assert!(message.contains("constraints.body_json[1].max_number"), "{message}");
    assert!(message.contains("\"/n\""), "{message}");
    assert!(!message.contains('4'), "no request values in messages: {message}");
}

#[test]
fn an_approval_required_rule_applies_only_without_an_allow() {
    let s = set(vec![rule("pol_q", "approval_required", json!({}))]);
    let d = decide(&s, &Req::new());
    assert_eq!(
        d,
        Decision::ApprovalRequired {
            reason: Reason::PolicyApprovalRequired,
            policy_id: Some(PolicyId::parse("pol_q").unwrap())
        }
    );
    let s = set(vec![rule("pol_q", "approval_required", json!({})), rule("pol_a", "allow", json!({}))]);
    assert_eq!(code(&decide(&s, &Req::new())), "policy_allow");
}

#[test]
fn the_template_floor_and_default_deny() {
    let empty = set(vec![]);
    assert!(empty.is_empty());
    assert_eq!(code(&decide(&empty, &Req::new().required())), "template_approval_required");
    let d = decide(&empty, &Req::new());
    assert!(matches!(&d, Decision::Denied { code: ErrorCode::PolicyDefaultDeny, policy_id: None, .. }));
    assert_eq!(code(&d), "policy_default_deny");
    assert_eq!(d.kind(), "denied");
    // Rate-limit rules alone allow nothing.
    let s = set(vec![rule("pol_r", "rate_limit", json!({}))]);
    assert_eq!(code(&decide(&s, &Req::new())), "policy_default_deny");
}

// ---- Matching ----

#[test]
fn fixed_scope_fields_must_all_be_equal() {
    let others = [
        json!({"scope": {"action_group": "items_read"}}),
        json!({"scope": {"method": "PUT"}}),
        json!({"scope": {"host": "other.example.com"}}),
        json!({"scope": {"tenant_id": "t_other"}}),
        json!({"scope": {"integration_id": "i_other"}}),
    ];
    for other in others {
        let s = set(vec![rule("pol_d", "deny", other.clone()), rule("pol_a", "allow", other.clone())]);
        assert_eq!(s.len(), 2);
        assert_eq!(code(&decide(&s, &Req::new())), "policy_default_deny", "{other}");
    }
}

#[test]
fn optional_scope_fields_narrow_when_present() {
    let cases = [
        (json!({"workload_id": "w_bot"}), true),
        (json!({"workload_id": "w_other"}), false),
        (json!({"template_id": "tpl_test"}), true),
        (json!({"template_id": "tpl_other"}), false),
        (json!({"template_version": 3}), true),
        (json!({"template_version": 4}), false),
        (json!({"query_keys": ["a", "b"]}), true),
        (json!({"query_keys": ["a"]}), false),
        (json!({"query_keys": ["a", "b", "c"]}), false),
        (json!({"query_keys": []}), false),
    ];
    for (scope, matches) in cases {
        let s = set(vec![rule("pol_d", "deny", json!({ "scope": scope.clone() }))]);
        let e = evaluate(&s, &Req::new().keys(&["b", "a"]).input());
        assert_eq!(code(&e.decision) == "policy_deny", matches, "{scope}");
        let field = scope.as_object().unwrap().keys().next().unwrap().clone();
        if field == "workload_id" && !matches {
            assert!(e.trace.is_empty(), "the index leaves other workloads' rules out");
        } else if !matches {
            assert_eq!(e.trace[0].outcome(), RuleOutcome::NotMatched(scope_field(&field)), "{scope}");
        }
    }
}

fn scope_field(name: &str) -> ScopeField {
    match name {
        "template_id" => ScopeField::TemplateId,
        "template_version" => ScopeField::TemplateVersion,
        _ => ScopeField::QueryKeys,
    }
}

#[test]
fn empty_query_keys_mean_no_query_and_absent_means_any() {
    let s = set(vec![rule("pol_d", "deny", json!({"scope": {"query_keys": []}}))]);
    assert_eq!(code(&decide(&s, &Req::new())), "policy_deny");
    assert_eq!(code(&decide(&s, &Req::new().keys(&["a"]))), "policy_default_deny");
    let s = set(vec![rule("pol_d", "deny", json!({}))]);
    assert_eq!(code(&decide(&s, &Req::new())), "policy_deny");
    assert_eq!(code(&decide(&s, &Req::new().keys(&["a"]))), "policy_deny");
}

// ---- Constraints ----

/// Evaluates one allow rule with `constraints` against `req`; returns the failure's field and reason,
/// or `None` when it held.
fn constraint_result(constraints: Value, req: &Req) -> Option<(String, FailReason)> {
    let s = set(vec![rule("pol_a", "allow", json!({ "constraints": constraints }))]);
    let e = evaluate(&s, &req.input());
    match e.trace[0].outcome() {
        RuleOutcome::Held => {
            assert_eq!(code(&e.decision), "policy_allow");
            None
        }
        RuleOutcome::Failed(f) => {
            assert_eq!(code(&e.decision), "policy_constraint_failed");
            Some((f.field(), f.reason))
        }
        other => panic!("{other:?}"),
    }
}

fn check(pointer: &str, kind: &str, arg: Value, body: &str) -> Option<FailReason> {
    constraint_result(json!({"body_json": [{"pointer": pointer, kind: arg}]}), &Req::new().body(body)).map(
        |(field, reason)| {
            assert_eq!(field, format!("constraints.body_json[0].{kind}"));
            reason
        },
    )
}

#[test]
fn max_body_bytes_and_allowed_query_keys() {
    let max = json!({"max_body_bytes": 4});
    assert_eq!(constraint_result(max.clone(), &Req::new().body("1234")), None);
    assert_eq!(constraint_result(max.clone(), &Req::new()), None);
    assert_eq!(
        constraint_result(max, &Req::new().body("12345")),
        Some(("constraints.max_body_bytes".into(), FailReason::BodyTooLarge))
    );
    let keys = json!({"allowed_query_keys": ["a", "b"]});
    assert_eq!(constraint_result(keys.clone(), &Req::new()), None);
    assert_eq!(constraint_result(keys.clone(), &Req::new().keys(&["b"])), None);
    assert_eq!(
        constraint_result(keys, &Req::new().keys(&["a", "c"])),
        Some(("constraints.allowed_query_keys".into(), FailReason::QueryKeyNotAllowed))
    );
}

#[test]
fn body_json_needs_a_json_body_and_the_pointer() {
    let allowed = json!(["x"]);
    assert_eq!(check("/m", "allowed_values", allowed.clone(), ""), Some(FailReason::BodyMissing));
    assert_eq!(check("/m", "allowed_values", allowed.clone(), "m=x"), Some(FailReason::BodyNotJson));
    assert_eq!(check("/m", "allowed_values", allowed.clone(), "\u{0}\u{ff}"), Some(FailReason::BodyNotJson));
    assert_eq!(
        check("/m", "allowed_values", allowed.clone(), r#"{"n":"x"}"#),
        Some(FailReason::PointerMissing)
    );
    assert_eq!(check("/a~1b/0", "allowed_values", allowed.clone(), r#"{"a/b":["x"]}"#), None);
    assert_eq!(check("", "allowed_values", allowed, r#""x""#), None);
}

#[test]
fn allowed_values_use_json_equality() {
    let allowed = json!(["gpt", 1, {"a": [1, 2], "b": null}]);
    assert_eq!(check("/m", "allowed_values", allowed.clone(), r#"{"m":"gpt"}"#), None);
    assert_eq!(check("/m", "allowed_values", allowed.clone(), r#"{"m":1.0}"#), None);
    assert_eq!(check("/m", "allowed_values", allowed.clone(), r#"{"m":{"b":null,"a":[1,2.0]}}"#), None);
    for bad in [r#"{"m":"GPT"}"#, r#"{"m":"1"}"#, r#"{"m":2}"#, r#"{"m":{"a":[1,2]}}"#, r#"{"m":null}"#] {
        assert_eq!(
            check("/m", "allowed_values", allowed.clone(), bad),
            Some(FailReason::ValueNotAllowed),
            "{bad}"
        );
    }
}

#[test]
fn max_length_counts_characters_and_elements() {
    assert_eq!(check("/s", "max_length", json!(3), r#"{"s":"äöü"}"#), None);
    assert_eq!(check("/s", "max_length", json!(3), r#"{"s":"abcd"}"#), Some(FailReason::TooLong));
    assert_eq!(check("/s", "max_length", json!(2), r#"{"s":[1,2]}"#), None);
    assert_eq!(check("/s", "max_length", json!(2), r#"{"s":[1,2,3]}"#), Some(FailReason::TooLong));
    assert_eq!(check("/s", "max_length", json!(2), r#"{"s":12}"#), Some(FailReason::NotStringOrArray));
    assert_eq!(check("/s", "max_length", json!(2), r#"{"s":{}}"#), Some(FailReason::NotStringOrArray));
}

#[test]
fn max_number() {
    assert_eq!(check("/n", "max_number", json!(2.5), r#"{"n":2.5}"#), None);
    assert_eq!(check("/n", "max_number", json!(2.5), r#"{"n":-100}"#), None);
    assert_eq!(check("/n", "max_number", json!(2.5), r#"{"n":3}"#), Some(FailReason::NumberTooLarge));
    assert_eq!(check("/n", "max_number", json!(2.5), r#"{"n":"1"}"#), Some(FailReason::NotNumber));
}

#[test]
fn allowed_email_domains_in_every_form() {
    let domains = json!(["example.com"]);
    let ok = [
        r#"{"to":"ann@example.com"}"#,
        r#"{"to":"ann@EXAMPLE.com"}"#,
        r#"{"to":"Ann Lee <ann@example.com>"}"#,
        r#"{"to":"\"Lee, Ann\" <ann@Example.COM>"}"#,
        r#"{"to":["ann@example.com","Bob <bob@example.com>"]}"#,
        r#"{"to":[]}"#,
    ];
    for body in ok {
        assert_eq!(check("/to", "allowed_email_domains", domains.clone(), body), None, "{body}");
    }
    let bad = [
        (r#"{"to":"ann@evil.com"}"#, FailReason::EmailDomainNotAllowed),
        (r#"{"to":"ann@sub.example.com"}"#, FailReason::EmailDomainNotAllowed),
        (r#"{"to":"ann@example.com.evil.com"}"#, FailReason::EmailDomainNotAllowed),
        (r#"{"to":["ann@example.com","eve@evil.com"]}"#, FailReason::EmailDomainNotAllowed),
        (r#"{"to":"Eve <eve@evil.com>"}"#, FailReason::EmailDomainNotAllowed),
        (r#"{"to":"eve@evil.com, ann@example.com"}"#, FailReason::NotEmail),
        (r#"{"to":"Eve <eve@evil.com> <ann@example.com>"}"#, FailReason::NotEmail),
        (r#"{"to":"ann"}"#, FailReason::NotEmail),
        (r#"{"to":["ann@example.com",1]}"#, FailReason::NotEmail),
        (r#"{"to":{"a":"ann@example.com"}}"#, FailReason::NotEmail),
        (r#"{"to":null}"#, FailReason::NotEmail),
    ];
    for (body, reason) in bad {
        assert_eq!(check("/to", "allowed_email_domains", domains.clone(), body), Some(reason), "{body}");
    }
}

#[test]
fn allowed_emails_match_case_insensitively() {
    let emails = json!(["Ann@Example.com", "bob@example.com"]);
    for body in [r#"{"to":"ann@example.com"}"#, r#"{"to":["Ann <ANN@example.com>","bob@example.com"]}"#] {
        assert_eq!(check("/to", "allowed_emails", emails.clone(), body), None, "{body}");
    }
    assert_eq!(
        check("/to", "allowed_emails", emails.clone(), r#"{"to":"carl@example.com"}"#),
        Some(FailReason::EmailNotAllowed)
    );
    assert_eq!(
        check("/to", "allowed_emails", emails, r#"{"to":"ann@example.com;"}"#),
        Some(FailReason::NotEmail)
    );
}

#[test]
fn constraints_are_checked_in_order_and_all_must_hold() {
    let c = json!({"max_body_bytes": 100, "allowed_query_keys": ["q"], "body_json": [
        {"pointer": "/model", "allowed_values": ["small"]},
        {"pointer": "/to", "allowed_email_domains": ["example.com"]}
    ]});
    let body = r#"{"model":"small","to":"a@example.com"}"#;
    assert_eq!(constraint_result(c.clone(), &Req::new().body(body).keys(&["q"])), None);
    let (field, _) = constraint_result(c.clone(), &Req::new().body(body).keys(&["x"])).unwrap();
    assert_eq!(field, "constraints.allowed_query_keys");
    let (field, _) =
        constraint_result(c, &Req::new().body(r#"{"model":"small","to":"a@evil.com"}"#)).unwrap();
    assert_eq!(field, "constraints.body_json[1].allowed_email_domains");
}

// ---- Rate limits ----

#[test]
fn rate_limit_buckets_per_workload_and_per_rule() {
    let s = set(vec![
        rule("pol_a", "allow", json!({})),
        rule("pol_w", "rate_limit", json!({"rate_limit": {"max_requests": 10, "interval_seconds": 60}})),
        rule(
            "pol_r",
            "rate_limit",
            json!({"rate_limit": {"max_requests": 2, "interval_seconds": 1, "per": "rule"}}),
        ),
        rule("pol_x", "rate_limit", json!({"scope": {"workload_id": "w_other"}})),
        rule("pol_y", "rate_limit", json!({"scope": {"workload_id": "w_bot", "query_keys": ["q"]}})),
    ]);
    let d = decide(&s, &Req::new());
    assert_eq!(buckets(&d), vec![("rl:pol_r".to_owned(), 2, 1), ("rl:pol_w:w:w_bot".to_owned(), 10, 60)]);
    let d = decide(&s, &Req::new().workload("w_other").keys(&["q"]));
    assert_eq!(
        buckets(&d),
        vec![
            ("rl:pol_r".to_owned(), 2, 1),
            ("rl:pol_w:w:w_other".to_owned(), 10, 60),
            ("rl:pol_x:w:w_other".to_owned(), 5, 60),
        ]
    );
}

#[test]
fn rate_limits_are_returned_only_for_allowed_requests() {
    let limit = rule("pol_r", "rate_limit", json!({}));
    for (rules, req) in [
        (vec![limit.clone(), rule("pol_d", "deny", json!({}))], Req::new()),
        (vec![limit.clone(), rule("pol_q", "approval_required", json!({}))], Req::new()),
        (vec![limit.clone(), rule("pol_a", "allow", json!({}))], Req::new().required()),
        (vec![limit.clone()], Req::new()),
    ] {
        let s = set(rules);
        let e = evaluate(&s, &req.input());
        assert!(!e.decision.is_allowed());
        assert!(e.trace.iter().all(|t| t.rule_type() != RuleType::RateLimit), "{:?}", e.trace);
    }
}

// ---- Trace ----

#[test]
fn the_trace_says_why_for_every_rule_looked_at() {
    let s = set(vec![
        rule("pol_a", "allow", json!({"scope": {"template_version": 9}})),
        rule("pol_b", "allow", json!({"constraints": {"max_body_bytes": 1}})),
        rule("pol_c", "allow", json!({})),
        rule("pol_d", "deny", json!({"scope": {"workload_id": "w_other"}})),
        rule("pol_e", "rate_limit", json!({})),
        rule("pol_f", "deny", json!({"scope": {"workload_id": "w_bot", "template_id": "tpl_x"}})),
    ]);
    let e = evaluate(&s, &Req::new().body("{}").input());
    assert_eq!(code(&e.decision), "policy_allow");
    let json = e.trace_json();
    assert_eq!(
        json,
        json!([
            {"policy_id": "pol_f", "rule_type": "deny", "result": "not_matched", "field": "scope.template_id"},
            {"policy_id": "pol_a", "rule_type": "allow", "result": "not_matched", "field": "scope.template_version"},
            {"policy_id": "pol_b", "rule_type": "allow", "result": "constraint_failed",
             "field": "constraints.max_body_bytes", "reason": "body_too_large",
             "message": "constraints.max_body_bytes: the body is larger than allowed"},
            {"policy_id": "pol_c", "rule_type": "allow", "result": "held"},
            {"policy_id": "pol_e", "rule_type": "rate_limit", "result": "matched"},
        ])
    );
}

// ---- Proposed rules ----

#[test]
fn proposed_rule_is_the_exact_valid_allow_rule() {
    let req = Req::new().keys(&["b", "a"]);
    let proposed = proposed_rule(&req.input()).unwrap();
    let parsed = PolicyRule::from_json(&proposed).unwrap();
    assert!(parsed.bypass_template_approval());
    assert_eq!(parsed.rule_type(), RuleType::Allow);
    assert_eq!(
        proposed["scope"],
        json!({"tenant_id": "t_acme", "workload_id": "w_bot", "integration_id": "i_api",
               "template_id": "tpl_test", "template_version": 3, "action_group": "items_write",
               "method": "POST", "host": "api.example.com", "query_keys": ["a", "b"]})
    );
    // It lets that exact request through the template floor, and no other workload's.
    let s = set(vec![(PolicyId::parse("pol_p").unwrap(), parsed)]);
    assert_eq!(code(&decide(&s, &Req::new().keys(&["a", "b"]).required())), "policy_allow");
    assert_eq!(code(&decide(&s, &Req::new().keys(&["a"]).required())), "template_approval_required");
    assert_eq!(code(&decide(&s, &Req::new().keys(&["a", "b"]).workload("w_x"))), "policy_default_deny");

    let deny = exact_deny_rule(&Req::new().input()).unwrap();
    let parsed = PolicyRule::from_json(&deny).unwrap();
    assert_eq!(parsed.rule_type(), RuleType::Deny);
    assert_eq!(deny["scope"]["query_keys"], json!([]));
    let s = set(vec![(PolicyId::parse("pol_n").unwrap(), parsed)]);
    assert_eq!(code(&decide(&s, &Req::new())), "policy_deny");
    assert_eq!(code(&decide(&s, &Req::new().keys(&["a"]))), "policy_default_deny");
}

// ---- From a canonical request ----

#[test]
fn input_from_a_canonical_request() {
    let template = steward_canon::Template::from_json(&json!({
        "template_id": "tpl_test", "version": 3, "provider": "test", "description": "fixture",
        "allowed_schemes": ["https"], "allowed_ports": [443], "allowed_hosts": ["api.example.com"],
        "redirect_policy": {"mode": "deny"},
        "path_groups": [{
            "group_id": "items_write", "risk_tier": "high", "approval_mode": "required",
            "methods": ["POST"], "path_patterns": ["^/v1/items$"], "query_allowlist": ["b", "a"],
            "header_forward_allowlist": ["content-type"],
            "body_policy": {"max_bytes": 1024, "content_types": ["application/json"]}
        }]
    }))
    .unwrap();
    let ctx = steward_canon::CanonContext::new(
        TenantId::parse("t_acme").unwrap(),
        WorkloadId::parse("w_bot").unwrap(),
        IntegrationId::parse("i_api").unwrap(),
        1 << 20,
    );
    let request = steward_canon::ExecuteRequest {
        method: Method::Post,
        url: "https://API.example.com/v1/items?b=1&a=2".into(),
        headers: vec![steward_canon::HeaderField::new("content-type", "application/json")],
        body_base64: Some("eyJtIjoxfQ==".into()),
    };
    let canonical = steward_canon::canonicalize(&request, &template, &ctx).unwrap();
    let input = EvaluationInput::from_canonical(&canonical, None);
    assert_eq!(input.host, "api.example.com");
    assert_eq!(input.body, br#"{"m":1}"#);
    assert_eq!(input.approval_mode, ApprovalMode::Required);
    let proposed = PolicyRule::from_json(&proposed_rule(&input).unwrap()).unwrap();
    let s = set(vec![(PolicyId::parse("pol_p").unwrap(), proposed)]);
    assert_eq!(code(&evaluate(&s, &input).decision), "policy_allow");
    assert_eq!(code(&evaluate(&set(vec![]), &input).decision), "template_approval_required");
}

// ---- Robustness ----

mod prop {
    use proptest::prelude::*;

    use super::*;

    fn pointer() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            proptest::collection::vec("[a-z0-9~/]{0,3}|~0|~1|-|0|[0-9]{1,20}", 1..4)
                .prop_map(|parts| parts.iter().map(|p| format!("/{p}")).collect::<String>()),
        ]
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            "[\\[\\]{}\",:a-z0-9@<> .~/-]{0,64}".prop_map(String::into_bytes),
            (any::<u8>(), "[a-z@<>. ]{0,12}", any::<f64>(), any::<i64>()).prop_map(|(n, s, f, i)| {
                let f = if f.is_finite() { json!(f) } else { Value::Null };
                json!({"a": [s.clone(), n, {"b": s}], "n": f, "i": i, "to": [format!("x <{s}>")], "": s})
                    .to_string()
                    .into_bytes()
            }),
        ]
    }

    proptest! {
        #[test]
        fn evaluation_never_panics(pointers in proptest::collection::vec(pointer(), 1..5), body in body(),
                                   keys in proptest::collection::vec("[a-c]", 0..3)) {
            let checks = [
                ("allowed_values", json!(["x", 1, [1], {"b": "x"}])),
                ("max_length", json!(2)),
                ("max_number", json!(0.5)),
                ("allowed_email_domains", json!(["example.com"])),
                ("allowed_emails", json!(["a@example.com"])),
            ];
            let mut rules = Vec::new();
            for (i, pointer) in pointers.iter().enumerate() {
                for (j, (kind, arg)) in checks.iter().enumerate() {
                    let c = json!({"body_json": [{"pointer": pointer, *kind: arg}], "allowed_query_keys": ["a", "b"]});
                    let id = format!("pol_{i}_{j}");
                    let value = json!({"rule_type": "allow", "constraints": c, "scope": {
                        "tenant_id": "t_acme", "integration_id": "i_api", "action_group": "items_write",
                        "method": "POST", "host": "api.example.com"}});
                    if let Ok(rule) = PolicyRule::from_json(&value) {
                        rules.push((PolicyId::parse(&id).unwrap(), rule));
                    }
                }
            }
            let s = CompiledPolicySet::new(rules);
            let mut req = Req::new().keys(&keys.iter().map(String::as_str).collect::<Vec<_>>());
            req.body = body;
            let e = evaluate(&s, &req.input());
            prop_assert!(["policy_allow", "policy_constraint_failed", "policy_default_deny"]
                .contains(&e.decision.reason_code()));
            let _ = e.trace_json();
        }
    }
}

#[test]
fn trace_entries_stay_compact() {
    assert!(std::mem::size_of::<TraceEntry<'_>>() <= 24, "{}", std::mem::size_of::<TraceEntry<'_>>());
}
