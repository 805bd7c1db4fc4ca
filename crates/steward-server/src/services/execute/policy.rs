//! Step 7: policy evaluation over the integration's active rules, then the rate limits of an allowed
//! decision (all or none, in the coordination service), then — last — the atomic consumption of the
//! `once` approval that allowed it. Of two concurrent retries exactly one consumes the approval; the
//! other is evaluated again without it.
//!
//! The compiled rules and the "is there any approved `once` approval?" answer come through the read
//! cache ([`crate::read_cache`]), so a rule change is in force within 1 s on every instance (at once
//! on the one that made it). A cached "none" is only trusted for an allowed decision: any other
//! outcome is evaluated again with the store's own answer first, so a retry right after an approval
//! on another instance is not asked for a second approval.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use steward_canon::CanonicalRequest;
use steward_coord::{BucketSpec, TakeOutcome};
use steward_policy::{CompiledPolicySet, Decision, EvaluationInput, PolicyRule, Reason, evaluate};
use steward_store::StoreError;
use steward_types::{ApprovalId, ErrorCode, PolicyId};

use crate::http::ApiError;
use crate::services::AppState;

/// What step 7 decided, after rate limits and consumption.
#[derive(Debug, Clone)]
pub enum PolicyOutcome {
    /// Go on. `consumed` is the `once` approval this request consumed.
    Allowed {
        reason: Reason,
        policy_id: Option<PolicyId>,
        consumed: Option<ApprovalId>,
        trace: Value,
    },
    ApprovalRequired {
        reason: Reason,
        policy_id: Option<PolicyId>,
        trace: Value,
    },
    Denied {
        code: ErrorCode,
        policy_id: Option<PolicyId>,
        message: String,
        trace: Value,
    },
    /// An empty rate-limit bucket: 429 with `retry-after`.
    Throttled {
        retry_after_seconds: u64,
        policy_ids: Vec<PolicyId>,
        trace: Value,
    },
}

impl PolicyOutcome {
    /// The reason code for audit and metrics.
    pub fn reason_code(&self) -> &'static str {
        match self {
            PolicyOutcome::Allowed { reason, .. } | PolicyOutcome::ApprovalRequired { reason, .. } => {
                reason.as_str()
            }
            PolicyOutcome::Denied { code, .. } => code.as_str(),
            PolicyOutcome::Throttled { .. } => ErrorCode::PolicyRateLimited.as_str(),
        }
    }
}

/// Why the active rules of a group could not be compiled.
#[derive(Debug)]
pub enum CompileError {
    /// The store failed (503 `storage_unavailable`, or 500 for a bug).
    Api(ApiError),
    /// A stored rule cannot be read or no longer validates (written by an older version, or edited in
    /// the database). Skipping it could skip a deny, so the whole group fails closed: every call is
    /// denied `policy_deny`, naming the rule, until an admin deletes or replaces it (decision 0007).
    Unusable { policy_id: Option<PolicyId>, rule_type: Option<String>, field: String, detail: String },
}

impl From<ApiError> for CompileError {
    fn from(error: ApiError) -> Self {
        CompileError::Api(error)
    }
}

/// The active rules of the request's (tenant, integration, action group), compiled. A stored rule
/// that cannot be read or no longer validates fails the whole group closed ([`CompileError::Unusable`]).
pub async fn compile(
    state: &AppState,
    canonical: &CanonicalRequest,
) -> Result<CompiledPolicySet, CompileError> {
    let d = canonical.descriptor();
    let records = match state.store.active_policies(d.tenant_id(), d.integration_id(), d.action_group()).await
    {
        Ok(records) => records,
        Err(StoreError::Corrupt(detail)) => {
            return Err(CompileError::Unusable {
                policy_id: None,
                rule_type: None,
                field: "rule".into(),
                detail,
            });
        }
        Err(error) => return Err(ApiError::from(error).into()),
    };
    let mut rules = Vec::with_capacity(records.len());
    for record in records {
        match PolicyRule::from_json(&record.rule) {
            Ok(rule) => rules.push((record.policy_id, rule)),
            Err(e) => {
                return Err(CompileError::Unusable {
                    policy_id: Some(record.policy_id),
                    rule_type: Some(record.rule_type),
                    field: e.field().to_owned(),
                    detail: e.message().to_owned(),
                });
            }
        }
    }
    Ok(CompiledPolicySet::new(rules))
}

/// The denial of a group whose rules cannot be evaluated (logged at ERROR: an operator must act).
fn unusable(
    canonical: &CanonicalRequest,
    policy_id: Option<PolicyId>,
    rule_type: Option<String>,
    field: String,
    detail: String,
) -> PolicyOutcome {
    let d = canonical.descriptor();
    let named = policy_id.as_ref().map(|id| format!(" (policy {id})")).unwrap_or_default();
    tracing::error!(
        tenant_id = %d.tenant_id(),
        integration_id = %d.integration_id(),
        action_group = d.action_group(),
        policy_id = policy_id.as_ref().map(|id| id.as_str()),
        %field,
        %detail,
        "A stored policy rule cannot be evaluated; every call of its action group is denied until an admin deletes or replaces it."
    );
    let trace = json!([{
        "policy_id": policy_id.as_ref().map(|id| id.as_str()),
        "rule_type": rule_type,
        "result": "unusable",
        "field": field,
        "message": detail,
    }]);
    let message = match &policy_id {
        Some(_) => format!(
            "a policy rule of action group {}{named} no longer validates; every call of this group is denied \
             until an administrator deletes or replaces that rule",
            d.action_group()
        ),
        None => format!(
            "the policy rules of action group {} cannot be read; every call of this group is denied until an \
             administrator repairs them",
            d.action_group()
        ),
    };
    PolicyOutcome::Denied { code: ErrorCode::PolicyDeny, policy_id, message, trace }
}

/// A default deny names its fix: the command that allows this action group of this integration (the
/// ids are not secrets; the workload knows both).
fn with_allow_command(canonical: &CanonicalRequest, message: String) -> String {
    let d = canonical.descriptor();
    format!(
        "{message}; an administrator allows it with `steward admin policies allow --integration {} --group {}` \
         (add --workload {} to allow only this workload)",
        d.integration_id(),
        d.action_group(),
        d.workload_id()
    )
}

/// Where step 2's `once` approval comes from on this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnceLookup {
    /// The read cache says whether there is any for (tenant, workload, integration); only then the
    /// store is asked for this digest.
    Cached,
    /// The store, for this digest.
    Store,
    /// None: a concurrent retry consumed the one found.
    Skip,
}

/// Step 2's approval for this pass, and whether the store itself was asked for this digest.
async fn approved_once(
    state: &AppState,
    canonical: &CanonicalRequest,
    lookup: OnceLookup,
) -> Result<(Option<ApprovalId>, bool), ApiError> {
    let d = canonical.descriptor();
    let (tenant, workload, integration) = (d.tenant_id(), d.workload_id(), d.integration_id());
    let now = state.clock.now();
    let ask_store = match lookup {
        OnceLookup::Skip => false,
        OnceLookup::Store => true,
        OnceLookup::Cached => state.reads.has_approved_once(tenant, workload, integration, now).await?,
    };
    if !ask_store {
        return Ok((None, false));
    }
    let found =
        state.store.approved_once_for_digest(tenant, workload, integration, canonical.digest(), now).await?;
    Ok((found.map(|record| record.approval_id), true))
}

/// Evaluates, takes the rate-limit tokens of an allowed decision, and consumes its `once` approval.
pub async fn decide(state: &AppState, canonical: &CanonicalRequest) -> Result<PolicyOutcome, ApiError> {
    let d = canonical.descriptor();
    let key = (d.tenant_id().as_str(), d.integration_id().as_str(), d.action_group());
    let set =
        match state.reads.policies(key, || async { compile(state, canonical).await.map(Arc::new) }).await {
            Ok(set) => set,
            Err(CompileError::Api(error)) => return Err(error),
            Err(CompileError::Unusable { policy_id, rule_type, field, detail }) => {
                return Ok(unusable(canonical, policy_id, rule_type, field, detail));
            }
        };
    let mut lookup = OnceLookup::Cached;
    loop {
        let (once, asked_store) = approved_once(state, canonical, lookup).await?;
        let evaluation = evaluate(&set, &EvaluationInput::from_canonical(canonical, once.as_ref()));
        let trace = evaluation.trace_json();
        let (reason, policy_id, approval_id, rate_limits) = match evaluation.decision {
            Decision::Allowed { reason, policy_id, approval_id, rate_limits } => {
                (reason, policy_id, approval_id, rate_limits)
            }
            // The cached "none" may be up to a second old: ask the store before refusing.
            Decision::ApprovalRequired { .. } | Decision::Denied { .. }
                if lookup == OnceLookup::Cached && !asked_store =>
            {
                lookup = OnceLookup::Store;
                continue;
            }
            Decision::ApprovalRequired { reason, policy_id } => {
                return Ok(PolicyOutcome::ApprovalRequired { reason, policy_id, trace });
            }
            Decision::Denied { code, policy_id, message } => {
                let message = match code {
                    ErrorCode::PolicyDefaultDeny => with_allow_command(canonical, message),
                    _ => message,
                };
                return Ok(PolicyOutcome::Denied { code, policy_id, message, trace });
            }
        };
        let buckets: Vec<BucketSpec> = rate_limits
            .iter()
            .map(|b| BucketSpec {
                key: b.key.clone(),
                capacity: u32::try_from(b.capacity).unwrap_or(u32::MAX),
                interval: Duration::from_secs(b.interval_seconds),
            })
            .collect();
        if let TakeOutcome::Throttled { retry_after_seconds } = state.coord.take_tokens(&buckets).await? {
            let policy_ids = rate_limits.into_iter().map(|b| b.policy_id).collect();
            return Ok(PolicyOutcome::Throttled { retry_after_seconds, policy_ids, trace });
        }
        match approval_id {
            Some(approval_id) => {
                let consumed = state.store.consume_approval(&approval_id, state.clock.now()).await?;
                // Either way the approval is no longer usable: this instance must not trust a
                // cached "there is one" any longer than it has to.
                state.reads.invalidate();
                if consumed {
                    return Ok(PolicyOutcome::Allowed {
                        reason,
                        policy_id,
                        consumed: Some(approval_id),
                        trace,
                    });
                }
                // A concurrent retry consumed it first: evaluate again without it.
                tracing::info!(approval_id = %approval_id, "The once approval was consumed by another request; re-evaluating.");
                lookup = OnceLookup::Skip;
            }
            None => return Ok(PolicyOutcome::Allowed { reason, policy_id, consumed: None, trace }),
        }
    }
}
