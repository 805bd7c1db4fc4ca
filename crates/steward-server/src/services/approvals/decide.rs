//! Approval decisions (`spec/pipeline.md` "Approvals", `spec/control-plane.md`): approve `once`,
//! approve `rule` (creates the exact allow rule of `proposed_rule`), deny (creates the exact deny
//! rule), cancel; each writes `approval_decided`. Also the approver's view of the sealed preview.
//!
//! Decisions are compare-and-set transitions in the store, so two approvers (or two instances) racing
//! on one approval produce one decision and one 409. A `rule` approval and a denial insert their
//! policy row in the same transaction as the decision: there is never a decision without its rule.
//! Role checks are the caller's (the check order of the admin API puts them first).

use serde_json::Value;
use steward_policy::PolicyRule;
use steward_store::audit::{AuditEvent, Decision, EventType, PolicyRef};
use steward_store::governance::{
    ApprovalDecision, ApprovalMode, ApprovalRecord, ApprovalStatus, DecisionOutcome, NewPolicyRow,
};
use steward_types::{ErrorCode, PolicyId, WorkloadId};

use crate::http::{ApiError, RequestContext};
use crate::services::AppState;
use crate::services::credentials::envelope::{open_record, preview_context};
use crate::services::identity::admin::AdminPrincipal;

/// What an approver decided.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Approve this one request (`once`), for `approval.approved_ttl_seconds`.
    Once,
    /// Approve the class: an exact allow rule with `bypass_template_approval` and these constraints.
    Rule { constraints: Option<serde_json::Map<String, Value>> },
    /// Deny, creating the matching exact deny rule.
    Deny,
    /// Cancel a pending approval, or an approved `once` approval not used yet.
    Cancel,
}

/// The approval after the decision.
#[derive(Debug, Clone)]
pub struct Decided {
    pub status: ApprovalStatus,
    /// The rule the decision created (`rule` and deny).
    pub policy_id: Option<String>,
}

/// Applies `verdict` to `record` now and records `approval_decided`. A record no longer in a
/// state the verdict applies to → 409 `approval_not_pending`.
pub async fn decide(
    state: &AppState,
    context: &RequestContext,
    principal: &AdminPrincipal,
    record: &ApprovalRecord,
    verdict: Verdict,
    reason: Option<String>,
) -> Result<Decided, ApiError> {
    let now = state.clock.now();
    let (outcome, policy, expires_at) = match verdict {
        Verdict::Once => {
            let ttl = i64::from(state.config.approval.approved_ttl_seconds);
            (DecisionOutcome::Approved(ApprovalMode::Once), None, Some(now.plus_seconds(ttl)))
        }
        Verdict::Rule { constraints } => {
            let rule = exact_rule(record, "allow", constraints)?;
            (DecisionOutcome::Approved(ApprovalMode::Rule), Some(policy_row(record, rule, now)?), None)
        }
        Verdict::Deny => {
            let rule = exact_rule(record, "deny", None)?;
            (DecisionOutcome::Denied, Some(policy_row(record, rule, now)?), None)
        }
        Verdict::Cancel => {
            let actor = &principal.token_id;
            if !state.store.cancel_approval(&record.approval_id, actor, reason.as_deref(), now).await? {
                return Err(not_pending(record, now, "canceled"));
            }
            record_decision(state, context, principal, record, "canceled", None, None, reason.as_deref())
                .await?;
            return Ok(Decided { status: ApprovalStatus::Canceled, policy_id: None });
        }
    };
    apply(state, context, principal, record, now, (outcome, policy, reason, expires_at)).await
}

/// The previewed body values, decrypted (for approvers only: the caller decides who sees them).
pub fn open_preview(state: &AppState, record: &ApprovalRecord) -> Result<Option<Value>, ApiError> {
    let Some(envelope) = &record.preview else { return Ok(None) };
    let keyring = state.keyring.load();
    let context = preview_context(&record.tenant_id, &record.approval_id);
    let plaintext = open_record(&keyring, &context, envelope).map_err(ApiError::internal)?;
    Ok(Some(serde_json::from_slice(&plaintext).map_err(ApiError::internal)?))
}

fn not_pending(record: &ApprovalRecord, now: steward_types::Timestamp, verb: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ApprovalNotPending,
        format!(
            "approval {} is {} and can no longer be {verb}",
            record.approval_id,
            record.status_at(now).as_str()
        ),
    )
}

/// The exact rule of the approval's `proposed_rule` as `rule_type`: an allow rule carries
/// `bypass_template_approval: true` (a person approved that class) and any constraints; a deny rule
/// carries neither. Validated like any policy (400 `policy_invalid` naming the field, e.g. bad
/// `constraints`) and normalized, so a decision never stores a rule the execute path cannot load.
fn exact_rule(
    record: &ApprovalRecord,
    rule_type: &str,
    constraints: Option<serde_json::Map<String, Value>>,
) -> Result<Value, ApiError> {
    let mut rule =
        record.proposed_rule.as_object().cloned().ok_or_else(|| {
            ApiError::internal(format!("approval {} has no proposed rule", record.approval_id))
        })?;
    rule.insert("rule_type".into(), rule_type.into());
    rule.remove("rate_limit");
    if rule_type == "allow" {
        rule.insert("bypass_template_approval".into(), true.into());
        if let Some(constraints) = constraints {
            rule.insert("constraints".into(), Value::Object(constraints));
        }
    } else {
        rule.remove("bypass_template_approval");
        rule.remove("constraints");
    }
    rule.insert(
        "description".into(),
        format!("created by the {rule_type} decision on approval {}", record.approval_id).into(),
    );
    let rule = PolicyRule::from_json(&Value::Object(rule))
        .map_err(|e| ApiError::new(e.code(), format!("{}: {}", e.field(), e.message())))?;
    Ok(rule.to_json())
}

/// The policy row of `rule`, its indexed columns taken from `rule.scope`, which must name the
/// approval's own tenant and integration.
fn policy_row(
    record: &ApprovalRecord,
    rule: Value,
    now: steward_types::Timestamp,
) -> Result<NewPolicyRow, ApiError> {
    let bad = |field: &str| {
        ApiError::internal(format!("approval {}: proposed_rule.scope.{field} is missing", record.approval_id))
    };
    let scope = rule.get("scope").and_then(Value::as_object).ok_or_else(|| bad("(scope)"))?;
    let text =
        |field: &str| scope.get(field).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| bad(field));
    let tenant_id = text("tenant_id")?;
    let integration_id = text("integration_id")?;
    if tenant_id != record.tenant_id.as_str() || integration_id != record.integration_id.as_str() {
        return Err(ApiError::internal(format!(
            "approval {}: its proposed rule names another tenant or integration",
            record.approval_id
        )));
    }
    Ok(NewPolicyRow {
        policy_id: PolicyId::generate(),
        tenant_id: record.tenant_id.clone(),
        integration_id: record.integration_id.clone(),
        action_group: text("action_group")?,
        method: text("method")?,
        host: text("host")?,
        workload_id: scope
            .get("workload_id")
            .and_then(Value::as_str)
            .map(WorkloadId::parse)
            .transpose()
            .map_err(|e| {
                ApiError::internal(format!("approval {}: proposed_rule.scope.{e}", record.approval_id))
            })?,
        rule_type: rule.get("rule_type").and_then(Value::as_str).unwrap_or("allow").to_owned(),
        rule,
        created_at: now,
    })
}

/// What a decision does: outcome, the rule it creates, the reason given, the new expiry.
type DecisionParts =
    (DecisionOutcome, Option<NewPolicyRow>, Option<String>, Option<steward_types::Timestamp>);

/// Applies a decision made at `now` (the same moment its expiry was computed from) and records it.
async fn apply(
    state: &AppState,
    context: &RequestContext,
    principal: &AdminPrincipal,
    record: &ApprovalRecord,
    now: steward_types::Timestamp,
    (outcome, policy, reason, expires_at): DecisionParts,
) -> Result<Decided, ApiError> {
    let policy_id = policy.as_ref().map(|p| p.policy_id.to_string());
    let decision = ApprovalDecision {
        approval_id: record.approval_id.clone(),
        outcome,
        policy: policy.clone(),
        decided_by: principal.token_id.clone(),
        reason: reason.clone(),
        decided_at: now,
        expires_at,
    };
    let (verb, status, mode) = match outcome {
        DecisionOutcome::Approved(mode) => ("approved", ApprovalStatus::Approved, Some(mode)),
        DecisionOutcome::Denied => ("denied", ApprovalStatus::Denied, None),
    };
    if !state.store.decide_approval(&decision).await? {
        return Err(not_pending(record, now, verb));
    }
    record_decision(state, context, principal, record, verb, mode, policy.as_ref(), reason.as_deref())
        .await?;
    Ok(Decided { status, policy_id })
}

/// Writes `approval_decided` (actor, decision, mode, created policy) and waits for its commit.
#[allow(clippy::too_many_arguments)]
async fn record_decision(
    state: &AppState,
    context: &RequestContext,
    principal: &AdminPrincipal,
    record: &ApprovalRecord,
    decision: &str,
    mode: Option<ApprovalMode>,
    policy: Option<&NewPolicyRow>,
    reason: Option<&str>,
) -> Result<(), ApiError> {
    let mut event = AuditEvent::new(EventType::ApprovalDecided, principal.actor(), state.clock.now())
        .with_request_id(context.request_id.to_string())
        .with_correlation_id(context.correlation_id.clone())
        .with_tenant(record.tenant_id.clone())
        .with_workload(record.workload_id.clone())
        .with_integration(record.integration_id.clone())
        .with_policy(PolicyRef {
            rule_id: policy.map(|p| p.policy_id.to_string()),
            rule_type: policy.map(|p| p.rule_type.clone()),
            approval_id: Some(record.approval_id.to_string()),
        })
        .with_metadata("decision", decision.into())
        .with_metadata("mode", mode.map(|m| m.as_str()).into())
        .with_metadata("role", principal.role.as_str().into())
        .with_metadata("policy_id", policy.map(|p| p.policy_id.to_string()).into());
    if let Some(group) = record.descriptor.get("action_group").and_then(Value::as_str) {
        event = event.with_action_group(group);
    }
    match decision {
        "approved" => event = event.with_decision(Decision::Allowed),
        "denied" => event = event.with_decision(Decision::Denied),
        _ => {}
    }
    if let Some(reason) = reason {
        event = event.with_metadata("reason", reason.into());
    }
    state.audit.append(event).await?;
    Ok(())
}
