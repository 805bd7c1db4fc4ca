//! `steward-policy` owns what a policy rule *is* and what it *decides*: the rule model of
//! `spec/pipeline.md` "Policy" ([`PolicyRule`]), its validation ([`PolicyRule::from_json`]), and the
//! evaluation of a request against a tenant's rules ([`CompiledPolicySet`], [`evaluate`]): the
//! decision, its reason code, the rate-limit buckets to take and a trace of every rule looked at;
//! plus the exact rules an approval decision creates ([`proposed_rule`], [`exact_deny_rule`]).
//!
//! It is pure: no I/O, no clock, no storage or network crates. It checks a rule on its own; whether
//! the integration and action group it names exist is the caller's question (it needs the store).
//! Likewise the server looks up the `once` approval, takes the rate-limit tokens and consumes the
//! approval through its stores. Every rejection is [`ErrorCode::PolicyInvalid`] with a message
//! naming the field.

mod eval;
mod model;
mod raw;
#[cfg(test)]
mod tests;

pub use eval::{
    CompiledPolicySet, Constraint, ConstraintFailure, Decision, Evaluation, EvaluationInput, FailReason,
    RateLimitBucket, Reason, RuleOutcome, ScopeField, TraceEntry, evaluate, exact_deny_rule, proposed_rule,
};
pub use model::{
    BodyCheck, BodyJsonCheck, Constraints, PolicyRule, RateLimit, RateLimitPer, RuleType, Scope,
};

use steward_types::ErrorCode;

/// A rule rejected by validation: the field at fault and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy_invalid: {field}: {message}")]
pub struct PolicyError {
    field: String,
    message: String,
}

impl PolicyError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }

    /// Always `policy_invalid`.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::PolicyInvalid
    }

    /// The JSON path of the offending field, e.g. `scope.method`.
    pub fn field(&self) -> &str {
        &self.field
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The methods a rule may name: those of execute.
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
