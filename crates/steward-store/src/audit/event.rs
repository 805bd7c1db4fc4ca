//! The audit event record of `spec/keys-and-audit.md`, exactly as it is serialized (every field, nulls
//! included, so the JSON a reader sees is the JSON that was hashed).

use serde::{Deserialize, Serialize};
use steward_types::{EventId, Timestamp};

/// The kinds of audit events the spec lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    SessionIssued,
    Execute,
    ExecuteResult,
    ApprovalCreated,
    ApprovalDecided,
    ApprovalConsumed,
    ApprovalExpired,
    Violation,
    ManifestIssued,
    Enrollment,
    AdminAction,
    KeyRotated,
}

impl EventType {
    /// The wire form, also stored in the indexed `event_type` column.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::SessionIssued => "session_issued",
            EventType::Execute => "execute",
            EventType::ExecuteResult => "execute_result",
            EventType::ApprovalCreated => "approval_created",
            EventType::ApprovalDecided => "approval_decided",
            EventType::ApprovalConsumed => "approval_consumed",
            EventType::ApprovalExpired => "approval_expired",
            EventType::Violation => "violation",
            EventType::ManifestIssued => "manifest_issued",
            EventType::Enrollment => "enrollment",
            EventType::AdminAction => "admin_action",
            EventType::KeyRotated => "key_rotated",
        }
    }
}

/// The decision an event records, when it records one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allowed,
    Denied,
    ApprovalRequired,
    Throttled,
}

impl Decision {
    /// The wire form, also stored in the indexed `decision` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Denied => "denied",
            Decision::ApprovalRequired => "approval_required",
            Decision::Throttled => "throttled",
        }
    }
}

/// Who caused the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    /// A workload identified by its certificate (id `w_…`).
    Workload,
    /// An admin token (id `tok_…`).
    Admin,
    /// Steward itself (expiry sweeps, key rotation timers); id names the instance or task.
    System,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "type")]
    pub actor_type: ActorType,
    pub id: String,
    /// The admin token's role (`owner`, `admin`, `operator`, `auditor`) for an admin actor; absent
    /// for workloads and Steward itself (and in events written before admin actors carried it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl Actor {
    pub fn workload(id: impl Into<String>) -> Self {
        Self { actor_type: ActorType::Workload, id: id.into(), role: None }
    }

    /// An admin token and its role (`spec/control-plane.md`: the actor of an admin event is the
    /// token id and its role).
    pub fn admin(token_id: impl Into<String>, role: impl Into<String>) -> Self {
        Self { actor_type: ActorType::Admin, id: token_id.into(), role: Some(role.into()) }
    }

    pub fn system(id: impl Into<String>) -> Self {
        Self { actor_type: ActorType::System, id: id.into(), role: None }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub path_group: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRef {
    pub rule_id: Option<String>,
    pub rule_type: Option<String>,
    pub approval_id: Option<String>,
}

/// An event's place in its hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    pub chain_id: String,
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
}

/// One audit event. Build with [`AuditEvent::new`] and the `with_*` setters; the audit writer fills
/// `chain`. Fields are public so readers (the admin API) can serialize and filter them directly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub event_id: EventId,
    pub timestamp: Timestamp,
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
    pub tenant_id: Option<String>,
    pub workload_id: Option<String>,
    pub integration_id: Option<String>,
    pub event_type: EventType,
    pub decision: Option<Decision>,
    pub reason_code: Option<String>,
    pub action_group: Option<String>,
    pub risk_tier: Option<String>,
    pub destination: Option<Destination>,
    pub latency_ms: Option<u64>,
    pub upstream_status_code: Option<u16>,
    pub canonical_descriptor: Option<serde_json::Value>,
    pub policy: Option<PolicyRef>,
    pub actor: Actor,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub chain: Option<ChainLink>,
}

impl AuditEvent {
    /// A fresh event (new id) at `now`; everything optional starts empty.
    pub fn new(event_type: EventType, actor: Actor, now: Timestamp) -> Self {
        Self {
            event_id: EventId::generate(),
            timestamp: now,
            request_id: None,
            correlation_id: None,
            tenant_id: None,
            workload_id: None,
            integration_id: None,
            event_type,
            decision: None,
            reason_code: None,
            action_group: None,
            risk_tier: None,
            destination: None,
            latency_ms: None,
            upstream_status_code: None,
            canonical_descriptor: None,
            policy: None,
            actor,
            metadata: serde_json::Map::new(),
            chain: None,
        }
    }

    pub fn with_request_id(mut self, value: impl Into<String>) -> Self {
        self.request_id = Some(value.into());
        self
    }

    pub fn with_correlation_id(mut self, value: impl Into<String>) -> Self {
        self.correlation_id = Some(value.into());
        self
    }

    pub fn with_tenant(mut self, value: impl Into<String>) -> Self {
        self.tenant_id = Some(value.into());
        self
    }

    pub fn with_workload(mut self, value: impl Into<String>) -> Self {
        self.workload_id = Some(value.into());
        self
    }

    pub fn with_integration(mut self, value: impl Into<String>) -> Self {
        self.integration_id = Some(value.into());
        self
    }

    pub fn with_decision(mut self, decision: Decision) -> Self {
        self.decision = Some(decision);
        self
    }

    pub fn with_reason_code(mut self, value: impl Into<String>) -> Self {
        self.reason_code = Some(value.into());
        self
    }

    pub fn with_action_group(mut self, value: impl Into<String>) -> Self {
        self.action_group = Some(value.into());
        self
    }

    pub fn with_risk_tier(mut self, value: impl Into<String>) -> Self {
        self.risk_tier = Some(value.into());
        self
    }

    pub fn with_destination(mut self, destination: Destination) -> Self {
        self.destination = Some(destination);
        self
    }

    pub fn with_latency_ms(mut self, value: u64) -> Self {
        self.latency_ms = Some(value);
        self
    }

    pub fn with_upstream_status_code(mut self, value: u16) -> Self {
        self.upstream_status_code = Some(value);
        self
    }

    /// The descriptor as it may be stored: the caller has already replaced query and header values
    /// by their `hmac:<hex>` forms.
    pub fn with_canonical_descriptor(mut self, value: serde_json::Value) -> Self {
        self.canonical_descriptor = Some(value);
        self
    }

    pub fn with_policy(mut self, policy: PolicyRef) -> Self {
        self.policy = Some(policy);
        self
    }

    pub fn with_metadata(mut self, key: impl Into<String>, value: serde_json::Value) -> Self {
        self.metadata.insert(key.into(), value);
        self
    }

    /// The tenant whose chain this event joins: its own, or `global` when it has none.
    pub fn chain_tenant(&self) -> &str {
        self.tenant_id.as_deref().unwrap_or(steward_types::GLOBAL_TENANT)
    }
}
