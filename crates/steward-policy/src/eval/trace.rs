//! The evaluation trace: every rule evaluation looked at, in the order it looked, and what came of
//! it. An entry is a pointer into the [`CompiledPolicySet`](super::CompiledPolicySet) and a compact
//! outcome, so tracing allocates nothing per rule; [`TraceEntry::to_json`] renders one for audit.

use serde_json::{Value, json};
use steward_types::PolicyId;

use super::compiled::CompiledRule;
use super::constraint::{ConstraintFailure, Failure};
use crate::RuleType;

/// A scope field of a rule that differed from the request's. (Action group, method, host and
/// workload never appear: the index leaves rules that differ there out of evaluation altogether.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeField {
    TenantId,
    IntegrationId,
    TemplateId,
    TemplateVersion,
    QueryKeys,
}

impl ScopeField {
    /// The field's path in the rule, e.g. `scope.workload_id`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeField::TenantId => "scope.tenant_id",
            ScopeField::IntegrationId => "scope.integration_id",
            ScopeField::TemplateId => "scope.template_id",
            ScopeField::TemplateVersion => "scope.template_version",
            ScopeField::QueryKeys => "scope.query_keys",
        }
    }
}

/// What came of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOutcome<'s> {
    /// The rule's scope does not cover the request: the first differing field.
    NotMatched(ScopeField),
    /// A deny, approval-required or rate-limit rule whose scope covers the request and whose
    /// constraints, if any, hold: it applies.
    Matched,
    /// An allow rule that matched and whose constraints hold.
    Held,
    /// A rule whose scope covers the request but whose constraint failed: an allow rule that does not
    /// allow, or a deny, approval-required or rate-limit rule that does not apply.
    Failed(ConstraintFailure<'s>),
}

impl RuleOutcome<'_> {
    pub fn as_str(&self) -> &'static str {
        match self {
            RuleOutcome::NotMatched(_) => "not_matched",
            RuleOutcome::Matched => "matched",
            RuleOutcome::Held => "held",
            RuleOutcome::Failed(_) => "constraint_failed",
        }
    }
}

/// What came of one rule, compactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    NotMatched(ScopeField),
    Matched,
    Held,
    Failed(Failure),
}

/// One rule evaluation looked at.
#[derive(Debug, Clone, Copy)]
pub struct TraceEntry<'s> {
    rule: &'s CompiledRule,
    outcome: Outcome,
}

impl PartialEq for TraceEntry<'_> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.rule, other.rule) && self.outcome == other.outcome
    }
}

impl Eq for TraceEntry<'_> {}

impl<'s> TraceEntry<'s> {
    pub(crate) fn new(rule: &'s CompiledRule, outcome: Outcome) -> Self {
        TraceEntry { rule, outcome }
    }

    pub fn policy_id(&self) -> &'s PolicyId {
        &self.rule.data.id
    }

    pub fn rule_type(&self) -> RuleType {
        self.rule.data.rule.rule_type()
    }

    pub fn outcome(&self) -> RuleOutcome<'s> {
        match self.outcome {
            Outcome::NotMatched(field) => RuleOutcome::NotMatched(field),
            Outcome::Matched => RuleOutcome::Matched,
            Outcome::Held => RuleOutcome::Held,
            Outcome::Failed(failure) => {
                RuleOutcome::Failed(failure.expand(self.rule.data.rule.constraints()))
            }
        }
    }

    /// `{"policy_id", "rule_type", "result", "field"?, "reason"?, "message"?}`.
    pub fn to_json(&self) -> Value {
        let outcome = self.outcome();
        let mut entry = json!({
            "policy_id": self.policy_id().as_str(),
            "rule_type": self.rule_type().as_str(),
            "result": outcome.as_str(),
        });
        match &outcome {
            RuleOutcome::NotMatched(field) => entry["field"] = field.as_str().into(),
            RuleOutcome::Failed(failure) => {
                entry["field"] = failure.field().into();
                entry["reason"] = failure.reason.as_str().into();
                entry["message"] = failure.to_string().into();
            }
            RuleOutcome::Matched | RuleOutcome::Held => {}
        }
        entry
    }
}
