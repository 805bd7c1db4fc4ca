//! Deny, approval-required and rate-limit rules with `constraints` (`spec/mcp.md` §2): such a rule
//! applies only to requests whose constraints hold, and precedence is unchanged among those that do.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::tests::{Req, buckets, code, decide, rule, set};
use super::*;

/// A deny (or other rule) for one MCP tool, by JSON-RPC method and tool name.
fn tool(name: &str) -> Value {
    json!({"constraints": {"body_json": [
        {"pointer": "/method", "allowed_values": ["tools/call"]},
        {"pointer": "/params/name", "allowed_values": [name]}
    ]}})
}

fn call(name: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": {}}})
        .to_string()
}

#[test]
fn a_constrained_deny_blocks_only_the_bodies_it_names() {
    let s = set(vec![rule("pol_a", "allow", json!({})), rule("pol_d", "deny", tool("delete_repo"))]);
    let d = decide(&s, &Req::new().body(&call("delete_repo")));
    assert_eq!(code(&d), "policy_deny");
    assert_eq!(d.policy_id().unwrap().as_str(), "pol_d");
    for other in [call("list_repos"), json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string()]
    {
        let d = decide(&s, &Req::new().body(&other));
        assert_eq!(code(&d), "policy_allow", "{other}");
        assert_eq!(d.policy_id().unwrap().as_str(), "pol_a");
    }
    // No body (an MCP GET or DELETE): the deny does not apply.
    assert_eq!(code(&decide(&s, &Req::new())), "policy_allow");
    // The trace says why the deny was passed over.
    let e = evaluate(&s, &Req::new().body(&call("list_repos")).input());
    let deny = e.trace.iter().find(|t| t.policy_id().as_str() == "pol_d").unwrap();
    let entry = deny.to_json();
    assert_eq!(entry["result"], "constraint_failed");
    assert_eq!(entry["field"], "constraints.body_json[1].allowed_values");
}

#[test]
fn a_restrictive_rule_applies_to_a_body_it_cannot_judge() {
    let s = set(vec![rule("pol_a", "allow", json!({})), rule("pol_d", "deny", tool("delete_repo"))]);
    // Not JSON, or an object that repeats a key (an upstream may read the other value): deny.
    let repeated = r#"{"method": "tools/call", "params": {"name": "list_repos", "name": "delete_repo"}}"#;
    for body in ["not json", "{", repeated] {
        assert_eq!(code(&decide(&s, &Req::new().body(body))), "policy_deny", "{body}");
    }
    // A JSON-RPC batch is denied when any of its calls is.
    let batch = format!("[{}, {}]", call("list_repos"), call("delete_repo"));
    assert_eq!(code(&decide(&s, &Req::new().body(&batch))), "policy_deny");
    let harmless = format!("[{}, {}]", call("list_repos"), call("get_issue"));
    assert_eq!(code(&decide(&s, &Req::new().body(&harmless))), "policy_allow");
    // An allow rule's check on a repeated key fails (it never reads an ambiguous body).
    let s = set(vec![rule("pol_a", "allow", tool("list_repos"))]);
    assert_eq!(code(&decide(&s, &Req::new().body(repeated))), "policy_constraint_failed");
    assert_eq!(code(&decide(&s, &Req::new().body(&call("list_repos")))), "policy_allow");
}

#[test]
fn a_constrained_approval_rule_applies_only_where_its_constraints_hold() {
    let s = set(vec![rule("pol_p", "approval_required", tool("merge_pr"))]);
    let d = decide(&s, &Req::new().body(&call("merge_pr")));
    assert_eq!(code(&d), "policy_approval_required");
    assert_eq!(d.policy_id().unwrap().as_str(), "pol_p");
    // Not applying, it leaves the default: deny, or the group's approval mode.
    assert_eq!(code(&decide(&s, &Req::new().body(&call("list_repos")))), "policy_default_deny");
    assert_eq!(
        code(&decide(&s, &Req::new().required().body(&call("list_repos")))),
        "template_approval_required"
    );
    // Precedence is unchanged: an allow rule that holds still wins over an approval rule.
    let s =
        set(vec![rule("pol_a", "allow", json!({})), rule("pol_p", "approval_required", tool("merge_pr"))]);
    assert_eq!(code(&decide(&s, &Req::new().body(&call("merge_pr")))), "policy_allow");
    // And a deny that applies beats an approved once approval.
    let s = set(vec![rule("pol_d", "deny", tool("merge_pr"))]);
    assert_eq!(code(&decide(&s, &Req::new().once("apr_one").body(&call("merge_pr")))), "policy_deny");
    assert_eq!(code(&decide(&s, &Req::new().once("apr_one").body(&call("list")))), "approval_once");
}

#[test]
fn a_constrained_rate_limit_takes_tokens_only_where_its_constraints_hold() {
    let s = set(vec![
        rule("pol_a", "allow", json!({})),
        rule("pol_r", "rate_limit", tool("search")),
        rule("pol_s", "rate_limit", json!({"constraints": {"max_body_bytes": 4}})),
    ]);
    let d = decide(&s, &Req::new().body(&call("search")));
    assert_eq!(buckets(&d), vec![("rl:pol_r:w:w_bot".to_owned(), 5, 60)]);
    assert_eq!(buckets(&decide(&s, &Req::new().body(&call("other")))), vec![]);
    assert_eq!(buckets(&decide(&s, &Req::new().body("{}"))), vec![("rl:pol_s:w:w_bot".to_owned(), 5, 60)]);
}

mod prop {
    use proptest::prelude::*;

    use super::*;

    fn name() -> impl Strategy<Value = String> {
        "[a-c]{1,2}"
    }

    proptest! {
        /// For a JSON object body, a deny with constraints C applies exactly when an allow rule
        /// with C holds, whatever the other rules: the same constraint language, one meaning.
        #[test]
        fn a_deny_applies_exactly_where_the_same_allow_would_hold(
            denied in name(), sent in proptest::option::of(name()), max in 0u64..200,
            approval in any::<bool>(), once in any::<bool>(),
        ) {
            let constraints = json!({"max_body_bytes": max, "body_json": [
                {"pointer": "/params/name", "allowed_values": [denied]}]});
            let body = sent.map(|n| call(&n)).unwrap_or_default();
            let mut req = Req::new().body(&body);
            let holds = code(&decide(&set(vec![rule("pol_a", "allow", json!({"constraints": constraints}))]), &req))
                == "policy_allow";
            let mut rules = vec![
                rule("pol_d", "deny", json!({"constraints": constraints})),
                rule("pol_a", "allow", json!({})),
            ];
            if approval {
                rules.push(rule("pol_p", "approval_required", json!({"constraints": constraints})));
            }
            if once {
                req = req.once("apr_one");
            }
            let d = decide(&set(rules), &req);
            if holds {
                prop_assert_eq!(code(&d), "policy_deny");
            } else {
                prop_assert_eq!(code(&d), if once { "approval_once" } else { "policy_allow" });
            }
        }

        /// Without an allow rule, a constrained approval rule decides exactly where it holds.
        #[test]
        fn an_approval_rule_decides_exactly_where_it_holds(denied in name(), sent in name(), required in any::<bool>()) {
            let constraints = json!({"body_json": [{"pointer": "/params/name", "allowed_values": [denied.clone()]}]});
            let mut req = Req::new().body(&call(&sent));
            if required {
                req = req.required();
            }
            let d = decide(&set(vec![rule("pol_p", "approval_required", json!({"constraints": constraints}))]), &req);
            let expected = if denied == sent {
                "policy_approval_required"
            } else if required {
                "template_approval_required"
            } else {
                "policy_default_deny"
            };
            prop_assert_eq!(code(&d), expected);
        }
    }
}
