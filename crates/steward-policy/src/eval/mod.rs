//! Policy evaluation, `spec/pipeline.md` "Policy" steps 1–5. A deny, approval-required or rate-limit
//! rule with `constraints` applies only to requests whose constraints hold (`spec/mcp.md` §2: a deny
//! for one MCP tool by `/params/name`); the order below is the same among the rules that apply:
//! deny → approved `once` approval →
//! allow rules with constraints and the template-approval floor → approval-required rule → the
//! group's approval mode → default deny; then, for an allowed request, the rate-limit buckets the
//! server must take tokens from (all or none).
//!
//! Evaluation is pure. The server supplies the compiled rules, the request and its `once`-approval
//! lookup; it takes the returned buckets through its rate limiter and then consumes the approval
//! (step 6) itself.

mod compiled;
mod constraint;
mod email;
mod input;
mod proposed;
#[cfg(test)]
mod restrictive_tests;
mod strict_json;
#[cfg(test)]
mod tests;
mod trace;

use serde_json::Value;
use steward_canon::ApprovalMode;
use steward_types::{ApprovalId, ErrorCode, PolicyId};

pub use compiled::CompiledPolicySet;
pub use constraint::{Constraint, ConstraintFailure, FailReason};
pub use input::EvaluationInput;
pub use proposed::{exact_deny_rule, proposed_rule};
use trace::Outcome;
pub use trace::{RuleOutcome, ScopeField, TraceEntry};

use crate::RateLimitPer;
use compiled::{Candidates, CompiledRule, MatchKey, Merged, Partition};
use constraint::Body;

/// The reason of a decision that is not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Allowed by an allow rule.
    PolicyAllow,
    /// Allowed by an approved `once` approval for this descriptor digest.
    ApprovalOnce,
    /// The group needs approval and no holding allow rule lifts it.
    TemplateApprovalRequired,
    /// An approval-required rule matched.
    PolicyApprovalRequired,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::PolicyAllow => "policy_allow",
            Reason::ApprovalOnce => "approval_once",
            Reason::TemplateApprovalRequired => "template_approval_required",
            Reason::PolicyApprovalRequired => "policy_approval_required",
        }
    }
}

/// A token bucket an allowed request must take one token from. The server takes from every bucket
/// of a decision or from none, in one atomic step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitBucket {
    /// `rl:<policy_id>:w:<workload_id>` (`per: workload`) or `rl:<policy_id>` (`per: rule`).
    pub key: String,
    /// `max_requests`.
    pub capacity: u64,
    /// The bucket refills evenly over this many seconds.
    pub interval_seconds: u64,
    pub per: RateLimitPer,
    pub policy_id: PolicyId,
}

/// What policy decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// `policy_allow` (with the allowing rule) or `approval_once` (with the approval, which the
    /// server consumes after the rate limits pass).
    Allowed {
        reason: Reason,
        policy_id: Option<PolicyId>,
        approval_id: Option<ApprovalId>,
        rate_limits: Vec<RateLimitBucket>,
    },
    /// `template_approval_required` or `policy_approval_required` (with the rule).
    ApprovalRequired { reason: Reason, policy_id: Option<PolicyId> },
    /// `policy_deny`, `policy_constraint_failed` (with the rule) or `policy_default_deny`.
    Denied { code: ErrorCode, policy_id: Option<PolicyId>, message: String },
}

impl Decision {
    /// The reason code: one of [`Reason`] or the error code.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Decision::Allowed { reason, .. } | Decision::ApprovalRequired { reason, .. } => reason.as_str(),
            Decision::Denied { code, .. } => code.as_str(),
        }
    }

    /// `allowed`, `approval_required` or `denied`.
    pub fn kind(&self) -> &'static str {
        match self {
            Decision::Allowed { .. } => "allowed",
            Decision::ApprovalRequired { .. } => "approval_required",
            Decision::Denied { .. } => "denied",
        }
    }

    /// The rule that decided, if one did.
    pub fn policy_id(&self) -> Option<&PolicyId> {
        match self {
            Decision::Allowed { policy_id, .. }
            | Decision::ApprovalRequired { policy_id, .. }
            | Decision::Denied { policy_id, .. } => policy_id.as_ref(),
        }
    }

    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }
}

/// A decision and how it was reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation<'s> {
    pub decision: Decision,
    /// Every rule looked at, in order. Rules the index ruled out (another action group, method, host
    /// or workload) are not listed; evaluation stops at the deciding deny or approval-required rule.
    pub trace: Vec<TraceEntry<'s>>,
}

impl Evaluation<'_> {
    /// The trace as a JSON array, for audit and debugging.
    pub fn trace_json(&self) -> Value {
        Value::Array(self.trace.iter().map(TraceEntry::to_json).collect())
    }
}

/// Evaluates one request against the compiled rules.
pub fn evaluate<'s>(set: &'s CompiledPolicySet, input: &EvaluationInput<'_>) -> Evaluation<'s> {
    let Candidates { any, mine, key } = set.candidates(input);
    let mut trace = Vec::with_capacity(any.len() + mine.len());
    let decision = decide(&Context { any, mine, key, input }, &mut trace);
    Evaluation { decision, trace }
}

/// What one evaluation looks at.
struct Context<'s, 'i> {
    any: &'s Partition,
    mine: &'s Partition,
    key: MatchKey,
    input: &'i EvaluationInput<'i>,
}

fn decide<'s>(cx: &Context<'s, '_>, trace: &mut Vec<TraceEntry<'s>>) -> Decision {
    let input = cx.input;
    let body = Body::new(input.body);
    // 1. Any matching deny (whose constraints, if it has any, hold).
    if let Some(rule) = first_match(Merged::new(&cx.any.deny, &cx.mine.deny), cx, &body, trace) {
        let rule = &rule.data;
        return Decision::Denied {
            code: ErrorCode::PolicyDeny,
            policy_id: Some(rule.id.clone()),
            message: format!("denied by policy {}", rule.id),
        };
    }
    // 2. An approved `once` approval for this digest.
    if let Some(approval) = input.approved_once {
        return allowed(cx, Reason::ApprovalOnce, None, Some(approval.clone()), &body, trace);
    }
    // 3. Allow rules whose constraints hold, under the template-approval floor.
    let mut first_held: Option<&CompiledRule> = None;
    let mut first_bypass: Option<&CompiledRule> = None;
    let mut first_failure = None;
    for rule in Merged::new(&cx.any.allow, &cx.mine.allow) {
        let outcome = match rule.mismatch(&cx.key) {
            Some(field) => Outcome::NotMatched(field),
            None => match rule.data.rule.constraints().map(|c| constraint::check(c, input, &body)) {
                None | Some(Ok(())) => {
                    first_held.get_or_insert(rule);
                    if rule.data.rule.bypass_template_approval() {
                        first_bypass.get_or_insert(rule);
                    }
                    Outcome::Held
                }
                Some(Err(failure)) => {
                    first_failure.get_or_insert((rule, failure));
                    Outcome::Failed(failure)
                }
            },
        };
        trace.push(TraceEntry::new(rule, outcome));
    }
    if let Some(held) = first_held {
        return match (input.approval_mode, first_bypass) {
            (ApprovalMode::Required, None) => {
                Decision::ApprovalRequired { reason: Reason::TemplateApprovalRequired, policy_id: None }
            }
            (ApprovalMode::Required, Some(bypass)) => {
                allowed(cx, Reason::PolicyAllow, Some(bypass.data.id.clone()), None, &body, trace)
            }
            (ApprovalMode::None, _) => {
                allowed(cx, Reason::PolicyAllow, Some(held.data.id.clone()), None, &body, trace)
            }
        };
    }
    if let Some((rule, failure)) = first_failure {
        let rule = &rule.data;
        let failure = failure.expand(rule.rule.constraints());
        return Decision::Denied {
            code: ErrorCode::PolicyConstraintFailed,
            policy_id: Some(rule.id.clone()),
            message: format!("policy {}: {failure}", rule.id),
        };
    }
    // 4. No allow: an approval-required rule, the group's approval mode, default deny.
    if let Some(rule) = first_match(Merged::new(&cx.any.approval, &cx.mine.approval), cx, &body, trace) {
        return Decision::ApprovalRequired {
            reason: Reason::PolicyApprovalRequired,
            policy_id: Some(rule.data.id.clone()),
        };
    }
    if input.approval_mode == ApprovalMode::Required {
        return Decision::ApprovalRequired { reason: Reason::TemplateApprovalRequired, policy_id: None };
    }
    Decision::Denied {
        code: ErrorCode::PolicyDefaultDeny,
        policy_id: None,
        message: format!(
            "no policy allows {} {} in action group {}",
            input.method, input.host, input.action_group
        ),
    }
}

/// The first rule in id order that applies; every rule up to it is traced.
fn first_match<'s>(
    rules: Merged<'s>,
    cx: &Context<'s, '_>,
    body: &Body<'_>,
    trace: &mut Vec<TraceEntry<'s>>,
) -> Option<&'s CompiledRule> {
    for rule in rules {
        let outcome = applies(rule, cx, body);
        trace.push(TraceEntry::new(rule, outcome));
        if outcome == Outcome::Matched {
            return Some(rule);
        }
    }
    None
}

/// Whether a deny, approval-required or rate-limit rule applies to the request: its scope covers it
/// and its constraints, if it has any, hold (`Failed` names the first that does not: the rule was
/// looked at and does not apply).
fn applies(rule: &CompiledRule, cx: &Context<'_, '_>, body: &Body<'_>) -> Outcome {
    if let Some(field) = rule.mismatch(&cx.key) {
        return Outcome::NotMatched(field);
    }
    match rule.data.rule.constraints().map(|c| constraint::check_restrictive(c, cx.input, body)) {
        None | Some(Ok(())) => Outcome::Matched,
        Some(Err(failure)) => Outcome::Failed(failure),
    }
}

/// 5. An allowed decision with the buckets of every matching rate-limit rule.
fn allowed<'s>(
    cx: &Context<'s, '_>,
    reason: Reason,
    policy_id: Option<PolicyId>,
    approval_id: Option<ApprovalId>,
    body: &Body<'_>,
    trace: &mut Vec<TraceEntry<'s>>,
) -> Decision {
    let mut rate_limits = Vec::new();
    for compiled in Merged::new(&cx.any.rate, &cx.mine.rate) {
        let outcome = applies(compiled, cx, body);
        trace.push(TraceEntry::new(compiled, outcome));
        let rule = &compiled.data;
        if let (Outcome::Matched, Some(limit)) = (outcome, rule.rule.rate_limit()) {
            let key = match limit.per {
                RateLimitPer::Rule => rule.bucket_key.clone(),
                RateLimitPer::Workload => {
                    let workload = cx.input.workload_id.as_str();
                    let mut key = String::with_capacity(rule.bucket_key.len() + 3 + workload.len());
                    key.push_str(&rule.bucket_key);
                    key.push_str(":w:");
                    key.push_str(workload);
                    key
                }
            };
            rate_limits.push(RateLimitBucket {
                key,
                capacity: limit.max_requests,
                interval_seconds: limit.interval_seconds,
                per: limit.per,
                policy_id: rule.id.clone(),
            });
        }
    }
    Decision::Allowed { reason, policy_id, approval_id, rate_limits }
}
