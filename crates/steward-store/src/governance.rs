//! The GovernanceStore part of the storage API: approvals (with the policy rows their decisions
//! create), audit search, and manifest signing key rotation. Implemented once for both backends by
//! `sql::governance::impl_governance_store!`; tested by `tests/it/governance_conformance.rs`.
//!
//! Approvals keep their *stored* state (`pending`, `approved`, `denied`, `canceled`, `executed`)
//! and their expiry; the status a reader sees ([`ApprovalStatus`]) is computed at read time from
//! both, so an approval expires without anyone writing to it. Every transition is a compare and set
//! on the stored state *and* the expiry, so two instances deciding at once cannot both win, and an
//! approval that expired a microsecond ago can no longer be decided. Creation is atomic too: one
//! pending approval per descriptor digest, enforced by a unique index
//! ([`GovernanceStore::create_pending_approval`]).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use steward_types::{
    ApprovalId, IntegrationId, PolicyId, SigningKeyId, TenantId, Timestamp, TokenId, WorkloadId,
};

use crate::audit::AuditEvent;
use crate::{EnvelopeRecord, SigningKeyRecord, StoreError};

/// The state an approval row holds (not what a reader sees: see [`ApprovalStatus`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredApprovalState {
    Pending,
    Approved,
    Denied,
    Canceled,
    /// An approved `once` approval whose call ran.
    Executed,
}

impl StoredApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            StoredApprovalState::Pending => "pending",
            StoredApprovalState::Approved => "approved",
            StoredApprovalState::Denied => "denied",
            StoredApprovalState::Canceled => "canceled",
            StoredApprovalState::Executed => "executed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(StoredApprovalState::Pending),
            "approved" => Some(StoredApprovalState::Approved),
            "denied" => Some(StoredApprovalState::Denied),
            "canceled" => Some(StoredApprovalState::Canceled),
            "executed" => Some(StoredApprovalState::Executed),
            _ => None,
        }
    }
}

/// What an approval is at a given moment (`spec/pipeline.md`, "Approvals").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
    Expired,
    Canceled,
    Executed,
}

impl ApprovalStatus {
    pub const ALL: [ApprovalStatus; 6] = [
        ApprovalStatus::Pending,
        ApprovalStatus::Approved,
        ApprovalStatus::Denied,
        ApprovalStatus::Expired,
        ApprovalStatus::Canceled,
        ApprovalStatus::Executed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Expired => "expired",
            ApprovalStatus::Canceled => "canceled",
            ApprovalStatus::Executed => "executed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// How an approval was approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    /// One call; consumed by it; expires after `approval.approved_ttl_seconds`.
    Once,
    /// Created an allow rule; never consumed, never expires.
    Rule,
}

impl ApprovalMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalMode::Once => "once",
            ApprovalMode::Rule => "rule",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "once" => Some(ApprovalMode::Once),
            "rule" => Some(ApprovalMode::Rule),
            _ => None,
        }
    }
}

/// A new pending approval, as the execute pipeline creates it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewApproval {
    pub approval_id: ApprovalId,
    pub tenant_id: TenantId,
    pub workload_id: WorkloadId,
    pub integration_id: IntegrationId,
    /// The canonical descriptor's digest (one pending approval per digest).
    pub digest: String,
    /// The canonical descriptor, as policy saw it.
    pub descriptor: serde_json::Value,
    /// The previewed body values, sealed; inserted in the same transaction as the approval.
    pub preview: Option<EnvelopeRecord>,
    /// The allow rule `rule` mode would create (`spec/pipeline.md`, "Policy").
    pub proposed_rule: serde_json::Value,
    pub created_at: Timestamp,
    /// `created_at + approval.pending_ttl_seconds`.
    pub expires_at: Timestamp,
}

/// What [`GovernanceStore::create_pending_approval`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum PendingApproval {
    /// No approval was pending for the digest: this one was inserted (its `approval_created`).
    Created(ApprovalRecord),
    /// One was already pending (possibly inserted a moment ago by a concurrent request, on any
    /// instance): that one, and nothing was written.
    Existing(ApprovalRecord),
}

impl PendingApproval {
    pub fn record(&self) -> &ApprovalRecord {
        match self {
            PendingApproval::Created(record) | PendingApproval::Existing(record) => record,
        }
    }
}

/// An approval as stored, with its preview envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRecord {
    pub approval_id: ApprovalId,
    pub tenant_id: TenantId,
    pub workload_id: WorkloadId,
    pub integration_id: IntegrationId,
    pub digest: String,
    pub descriptor: serde_json::Value,
    pub preview: Option<EnvelopeRecord>,
    pub proposed_rule: serde_json::Value,
    pub state: StoredApprovalState,
    pub mode: Option<ApprovalMode>,
    /// The rule a `rule` approval or a denial created.
    pub policy_id: Option<PolicyId>,
    pub reason: Option<String>,
    /// The admin token id that decided (or canceled).
    pub decided_by: Option<TokenId>,
    pub created_at: Timestamp,
    /// Pending: when the request stops waiting. Approved `once`: when the approval lapses unused.
    pub expires_at: Timestamp,
    pub decided_at: Option<Timestamp>,
    pub consumed_at: Option<Timestamp>,
}

impl ApprovalRecord {
    /// The status at `now`: stored state plus expiry. A `rule` approval never expires.
    pub fn status_at(&self, now: Timestamp) -> ApprovalStatus {
        let lapsed = now >= self.expires_at;
        match self.state {
            StoredApprovalState::Pending if lapsed => ApprovalStatus::Expired,
            StoredApprovalState::Pending => ApprovalStatus::Pending,
            StoredApprovalState::Approved if lapsed && self.mode != Some(ApprovalMode::Rule) => {
                ApprovalStatus::Expired
            }
            StoredApprovalState::Approved => ApprovalStatus::Approved,
            StoredApprovalState::Denied => ApprovalStatus::Denied,
            StoredApprovalState::Canceled => ApprovalStatus::Canceled,
            StoredApprovalState::Executed => ApprovalStatus::Executed,
        }
    }
}

/// Which approvals a list returns. `tenant_ids: None` means every tenant (an owner's list).
#[derive(Debug, Clone)]
pub struct ApprovalFilter {
    pub tenant_ids: Option<Vec<TenantId>>,
    pub status: Option<ApprovalStatus>,
    /// The moment statuses are computed at.
    pub now: Timestamp,
}

/// A policy row written by a decision (the exact allow rule of `rule` mode, the exact deny rule of a
/// denial). The indexed columns are copied out of `rule.scope` by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPolicyRow {
    pub policy_id: PolicyId,
    pub tenant_id: TenantId,
    pub integration_id: IntegrationId,
    pub action_group: String,
    pub method: String,
    pub host: String,
    pub workload_id: Option<WorkloadId>,
    pub rule_type: String,
    /// The whole rule JSON (`spec/pipeline.md`, "Policy").
    pub rule: serde_json::Value,
    pub created_at: Timestamp,
}

/// The outcome of a decision on a pending approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionOutcome {
    Approved(ApprovalMode),
    Denied,
}

/// A decision on a pending approval, applied atomically with the policy row it creates.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalDecision {
    pub approval_id: ApprovalId,
    pub outcome: DecisionOutcome,
    pub policy: Option<NewPolicyRow>,
    pub decided_by: TokenId,
    pub reason: Option<String>,
    pub decided_at: Timestamp,
    /// The new expiry (approved `once`: `decided_at + approval.approved_ttl_seconds`); `None` keeps it.
    pub expires_at: Option<Timestamp>,
}

/// Audit search filters; every `Some` must match. `tenant_ids: None` means every tenant (owners),
/// otherwise only events of those tenants are returned (an empty list returns nothing).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub tenant_ids: Option<Vec<String>>,
    pub tenant_id: Option<String>,
    pub workload_id: Option<String>,
    pub integration_id: Option<String>,
    pub event_type: Option<String>,
    pub decision: Option<String>,
    pub action_group: Option<String>,
    pub correlation_id: Option<String>,
    /// Inclusive.
    pub since: Option<Timestamp>,
    /// Exclusive.
    pub until: Option<Timestamp>,
}

/// A keyset position in the audit log: the last event a page returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCursor {
    pub timestamp: Timestamp,
    pub event_id: String,
}

/// The order of an audit search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOrder {
    NewestFirst,
    OldestFirst,
}

#[async_trait]
pub trait GovernanceStore: Send + Sync {
    // ----- approvals ------------------------------------------------------------------------------

    /// Inserts a pending approval (and its preview envelope) in one transaction. A second live
    /// pending approval for the same (tenant, workload, integration, digest) is refused with
    /// [`StoreError::Conflict`] (a unique index): use [`GovernanceStore::create_pending_approval`].
    async fn insert_approval(&self, approval: &NewApproval) -> Result<(), StoreError>;

    /// The one pending approval of `approval`'s (tenant, workload, integration, digest): inserted,
    /// with its preview envelope, when none is pending at `approval.created_at`, else the one that
    /// is — decided by the database (a unique index over pending rows and an insert that does
    /// nothing on conflict), so any number of concurrent calls, on any number of instances, create
    /// exactly one and all get it. A pending approval that expired no longer counts: the new one
    /// supersedes it (marked `superseded_at`; it still reads as expired).
    async fn create_pending_approval(&self, approval: &NewApproval) -> Result<PendingApproval, StoreError>;

    async fn get_approval(&self, approval_id: &ApprovalId) -> Result<Option<ApprovalRecord>, StoreError>;

    /// The approval still pending at `now` for this descriptor digest, if any (the same descriptor
    /// gets the same approval while one is pending).
    async fn pending_approval_for_digest(
        &self,
        tenant_id: &TenantId,
        workload_id: &WorkloadId,
        integration_id: &IntegrationId,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<ApprovalRecord>, StoreError>;

    /// The oldest approved, unexpired, unconsumed `once` approval at `now` for this descriptor digest,
    /// if any (policy step 2 of `spec/pipeline.md`).
    async fn approved_once_for_digest(
        &self,
        tenant_id: &TenantId,
        workload_id: &WorkloadId,
        integration_id: &IntegrationId,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<ApprovalRecord>, StoreError>;

    /// Whether any approved, unexpired, unconsumed `once` approval exists at `now` for this
    /// (tenant, workload, integration), whatever its digest: lets the data plane skip the per-digest
    /// lookup (and cache that answer) when there is none.
    async fn has_approved_once(
        &self,
        tenant_id: &TenantId,
        workload_id: &WorkloadId,
        integration_id: &IntegrationId,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Approvals matching `filter`, newest first, at most `limit`.
    async fn list_approvals(
        &self,
        filter: &ApprovalFilter,
        limit: u32,
    ) -> Result<Vec<ApprovalRecord>, StoreError>;

    /// Applies a decision if the approval is still pending and unexpired at `decided_at`, inserting
    /// `decision.policy` in the same transaction. Returns false (nothing written) otherwise.
    async fn decide_approval(&self, decision: &ApprovalDecision) -> Result<bool, StoreError>;

    /// Cancels a pending approval or an approved, unconsumed, unexpired `once` approval. Returns
    /// false (nothing written) for anything else.
    async fn cancel_approval(
        &self,
        approval_id: &ApprovalId,
        decided_by: &TokenId,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Consumes an approved, unexpired `once` approval (exactly one caller wins). For the pipeline.
    async fn consume_approval(&self, approval_id: &ApprovalId, now: Timestamp) -> Result<bool, StoreError>;

    /// The tenant's `approval_webhook_url` (`None` when unset or the tenant does not exist).
    async fn approval_webhook_url(&self, tenant_id: &TenantId) -> Result<Option<String>, StoreError>;

    // ----- audit search ---------------------------------------------------------------------------

    /// Events matching `filter`, strictly after `cursor` in `order`, at most `limit`. Ordered by
    /// `(timestamp, event_id)`, so a page boundary never skips or repeats an event.
    async fn search_audit_events(
        &self,
        filter: &AuditFilter,
        cursor: Option<&AuditCursor>,
        order: AuditOrder,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    // ----- manifest signing keys ------------------------------------------------------------------

    /// Makes `new` the active signing key and retires the current one at `now`, atomically (the
    /// database allows exactly one active key). Returns the retired key's id.
    async fn rotate_signing_key(
        &self,
        new: &SigningKeyRecord,
        now: Timestamp,
    ) -> Result<Option<SigningKeyId>, StoreError>;

    /// The active key and every key retired after `retired_after`, newest first.
    async fn published_signing_keys(
        &self,
        retired_after: Timestamp,
    ) -> Result<Vec<SigningKeyRecord>, StoreError>;
}
