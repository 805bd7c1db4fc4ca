//! The exact rules an approval decision creates for a request's class: `rule` mode's allow rule
//! (`proposed_rule`, with `bypass_template_approval: true`, since a person approved that class) and
//! the deny decision's deny rule. Both are built through [`PolicyRule::from_json`], so what is
//! returned is a valid rule in normalized form.

use serde_json::{Map, Value, json};

use super::input::EvaluationInput;
use crate::{PolicyError, PolicyRule, RuleType};

/// The allow rule a `rule`-mode approval of this request creates: tenant, workload, integration,
/// template id and version, action group, method, host and query keys, bypassing template approval.
pub fn proposed_rule(input: &EvaluationInput<'_>) -> Result<Value, PolicyError> {
    exact_rule(input, RuleType::Allow)
}

/// The deny rule a denied approval of this request creates, with the same exact scope.
pub fn exact_deny_rule(input: &EvaluationInput<'_>) -> Result<Value, PolicyError> {
    exact_rule(input, RuleType::Deny)
}

fn exact_rule(input: &EvaluationInput<'_>, rule_type: RuleType) -> Result<Value, PolicyError> {
    let mut query_keys = input.query_keys.to_vec();
    query_keys.sort();
    query_keys.dedup();
    let mut rule = Map::new();
    rule.insert("rule_type".into(), rule_type.as_str().into());
    rule.insert(
        "scope".into(),
        json!({
            "tenant_id": input.tenant_id.as_str(),
            "workload_id": input.workload_id.as_str(),
            "integration_id": input.integration_id.as_str(),
            "template_id": input.template_id,
            "template_version": input.template_version,
            "action_group": input.action_group,
            "method": input.method.as_str(),
            "host": input.host,
            "query_keys": query_keys,
        }),
    );
    if rule_type == RuleType::Allow {
        rule.insert("bypass_template_approval".into(), true.into());
    }
    Ok(PolicyRule::from_json(&Value::Object(rule))?.to_json())
}
