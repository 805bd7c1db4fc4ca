//! The approval's request in brief, as workloads (the execute 202 answer, approval polling),
//! approvers (webhook, console) and the admin API see it.

use serde::Serialize;
use serde_json::Value;
use steward_store::governance::ApprovalRecord;
use utoipa::ToSchema;

/// The approval's request in brief: the `summary` of the execute 202 answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ApprovalSummary {
    pub integration_id: String,
    pub action_group: String,
    pub risk_tier: String,
    pub destination_host: String,
    pub method: String,
    /// Without the query.
    pub path: String,
}

/// The summary of an approval, from its canonical descriptor (`spec/pipeline.md`).
pub fn approval_summary(record: &ApprovalRecord) -> ApprovalSummary {
    let text = |field: &str| record.descriptor.get(field).and_then(Value::as_str).unwrap_or("").to_owned();
    let url =
        record.descriptor.get("canonical_url").and_then(Value::as_str).and_then(|u| url::Url::parse(u).ok());
    ApprovalSummary {
        integration_id: record.integration_id.to_string(),
        action_group: text("action_group"),
        risk_tier: text("risk_tier"),
        destination_host: url.as_ref().and_then(|u| u.host_str()).unwrap_or("").to_owned(),
        method: text("method"),
        path: url.as_ref().map(|u| u.path().to_owned()).unwrap_or_default(),
    }
}
