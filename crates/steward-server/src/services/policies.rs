//! Policy rules as the store keeps them: a validated [`PolicyRule`] becomes a [`PolicyRecord`] with
//! its scope columns (for matching and filtering) and the rule's JSON (the source of truth).

use steward_policy::PolicyRule;
use steward_store::catalog::PolicyRecord;
use steward_types::{PolicyId, Timestamp};

/// A new, active record of `rule` (fresh id), created at `now`.
pub fn new_record(rule: &PolicyRule, now: Timestamp) -> PolicyRecord {
    let scope = rule.scope();
    PolicyRecord {
        policy_id: PolicyId::generate(),
        tenant_id: scope.tenant_id.clone(),
        integration_id: scope.integration_id.clone(),
        action_group: scope.action_group.clone(),
        method: scope.method.clone(),
        host: scope.host.clone(),
        workload_id: scope.workload_id.clone(),
        rule_type: rule.rule_type().as_str().to_owned(),
        rule: rule.to_json(),
        created_at: now,
        disabled_at: None,
    }
}
