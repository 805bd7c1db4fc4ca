//! The audit side of execute: the events of each outcome, with the canonical descriptor as it may be
//! stored — query values and header values (except `content-type` and `accept`) replaced by
//! `hmac:<hex>` under the deployment's audit key, so equal values correlate within a deployment
//! without being readable. Never a secret, a token or a body.

use serde_json::{Value, json};
use steward_canon::{CanonicalRequest, RiskTier};
use steward_crypto::HmacKey;
use steward_store::audit::{Actor, AuditEvent, Destination, EventType};
use steward_types::ErrorCode;
use zeroize::Zeroizing;

use crate::http::RequestContext;
use crate::services::AppState;
use crate::services::identity::MtlsPrincipal;

/// Failures that are not a decision about this workload (the store, Redis or the audit log itself
/// failing) are logged and counted, not audited.
pub fn is_decision(code: ErrorCode) -> bool {
    !matches!(
        code,
        ErrorCode::StorageUnavailable
            | ErrorCode::CoordinationUnavailable
            | ErrorCode::AuditWriteFailed
            | ErrorCode::InternalError
    )
}

/// Header values kept readable in stored descriptors.
const READABLE_HEADERS: [&str; 2] = ["content-type", "accept"];

/// The audit key as an HMAC key for stored descriptor values. Its `Debug` shows nothing.
#[derive(Clone)]
pub struct AuditHmac {
    key: HmacKey,
}

impl std::fmt::Debug for AuditHmac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditHmac(..)")
    }
}

impl AuditHmac {
    pub fn new(audit_key: &Zeroizing<[u8; 32]>) -> Self {
        Self { key: HmacKey::new(audit_key.as_slice()) }
    }

    /// `hmac:<lowercase hex of HMAC-SHA256(audit key, value)>`.
    pub fn value(&self, value: &str) -> String {
        let tag = self.key.sign(value.as_bytes());
        format!("hmac:{}", hex_lower(&tag))
    }

    /// The descriptor of `canonical` as audit events store it.
    pub fn stored_descriptor(&self, canonical: &CanonicalRequest) -> Value {
        let descriptor = canonical.descriptor();
        let headers: Vec<Value> = descriptor
            .normalized_headers()
            .iter()
            .map(|(name, value)| {
                if READABLE_HEADERS.contains(&name.as_str()) {
                    json!([name, value])
                } else {
                    json!([name, self.value(value)])
                }
            })
            .collect();
        let url = canonical.canonical_url();
        let base = url.split_once('?').map_or(url, |(base, _)| base);
        let query: Vec<String> = canonical
            .query()
            .iter()
            .map(|pair| match pair.value() {
                Some(value) => format!("{}={}", pair.key(), self.value(value)),
                None => pair.key().to_owned(),
            })
            .collect();
        let canonical_url =
            if query.is_empty() { base.to_owned() } else { format!("{base}?{}", query.join("&")) };
        json!({
            "tenant_id": descriptor.tenant_id().as_str(),
            "workload_id": descriptor.workload_id().as_str(),
            "integration_id": descriptor.integration_id().as_str(),
            "template_id": descriptor.template_id(),
            "template_version": descriptor.template_version(),
            "method": descriptor.method().as_str(),
            "canonical_url": canonical_url,
            "action_group": descriptor.action_group(),
            "risk_tier": risk_tier(descriptor.risk_tier()),
            "normalized_headers": headers,
            "query_keys": descriptor.query_keys(),
            "body_sha256": descriptor.body_sha256(),
            "digest": canonical.digest(),
        })
    }
}

/// `low`, `medium` or `high`.
pub fn risk_tier(tier: RiskTier) -> &'static str {
    match tier {
        RiskTier::Low => "low",
        RiskTier::Medium => "medium",
        RiskTier::High => "high",
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// A new event of `event_type` caused by the identified workload of a data-plane request: the actor,
/// the request and correlation ids, the tenant and the workload.
pub fn workload_event(
    state: &AppState,
    context: &RequestContext,
    principal: &MtlsPrincipal,
    event_type: EventType,
) -> AuditEvent {
    AuditEvent::new(event_type, Actor::workload(principal.workload_id.as_str()), state.clock.now())
        .with_request_id(context.request_id.to_string())
        .with_correlation_id(context.correlation_id.clone())
        .with_tenant(principal.tenant_id.as_str())
        .with_workload(principal.workload_id.as_str())
}

/// What every execute-related event of one request shares.
#[derive(Debug, Clone)]
pub struct EventBase<'a> {
    pub state: &'a AppState,
    pub context: &'a RequestContext,
    pub principal: &'a MtlsPrincipal,
    pub integration_id: Option<String>,
    pub canonical: Option<&'a CanonicalRequest>,
}

impl EventBase<'_> {
    /// A new event of `event_type` with the request's ids, and — once the request is canonical — its
    /// action group, risk tier, destination and stored descriptor.
    pub fn event(&self, event_type: EventType) -> AuditEvent {
        let mut event = workload_event(self.state, self.context, self.principal, event_type);
        if let Some(integration_id) = &self.integration_id {
            event = event.with_integration(integration_id.clone());
        }
        if let Some(canonical) = self.canonical {
            let group = canonical.group();
            event = event
                .with_action_group(group.id())
                .with_risk_tier(risk_tier(group.risk_tier()))
                .with_destination(Destination {
                    scheme: canonical.scheme().to_owned(),
                    host: canonical.host().to_owned(),
                    port: canonical.port(),
                    path_group: Some(group.id().to_owned()),
                })
                .with_canonical_descriptor(self.state.audit_hmac.stored_descriptor(canonical));
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_not_audited_and_every_decision_is() {
        for outage in [
            ErrorCode::StorageUnavailable,
            ErrorCode::CoordinationUnavailable,
            ErrorCode::AuditWriteFailed,
            ErrorCode::InternalError,
        ] {
            assert!(!is_decision(outage), "{outage:?} is an outage, not a decision");
        }
        for decision in [
            ErrorCode::PolicyDefaultDeny,
            ErrorCode::IntegrationNotFound,
            ErrorCode::RequestHostNotAllowed,
            ErrorCode::IntegrationSecretUnavailable,
            ErrorCode::ResolvedIpDeniedLoopback,
            ErrorCode::DpopMissing,
        ] {
            assert!(is_decision(decision), "{decision:?} is a decision about the workload");
        }
    }
}
