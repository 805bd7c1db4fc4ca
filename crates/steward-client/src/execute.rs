//! The execute request and its outcomes, exactly the wire shapes of `spec/data-plane.md`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderField {
    pub name: String,
    pub value: String,
}

/// `client_context` of an execute request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The call the workload wants Steward to make.
#[derive(Debug, Clone, Serialize)]
pub struct ExecuteRequest {
    pub integration_id: String,
    pub request: ExecuteCall,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_context: Option<ClientContext>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExecuteCall {
    pub method: String,
    pub url: String,
    pub headers: Vec<HeaderField>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
}

impl ExecuteRequest {
    pub fn new(
        integration_id: &str,
        method: &str,
        url: &str,
        headers: Vec<HeaderField>,
        body: Option<&[u8]>,
    ) -> Self {
        use base64::Engine;
        Self {
            integration_id: integration_id.to_owned(),
            request: ExecuteCall {
                method: method.to_ascii_uppercase(),
                url: url.to_owned(),
                headers,
                body_base64: body
                    .filter(|b| !b.is_empty())
                    .map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
            },
            client_context: None,
        }
    }
}

/// What the upstream answered, as Steward relays it.
#[derive(Debug, Clone, Deserialize)]
pub struct ExecutedResponse {
    pub correlation_id: String,
    pub status_code: u16,
    pub headers: Vec<HeaderField>,
    pub body: Vec<u8>,
    /// `idempotent-replayed: true` was set: a stored result of an earlier identical call.
    pub replayed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApprovalSummary {
    pub integration_id: String,
    pub action_group: String,
    pub risk_tier: String,
    pub destination_host: String,
    pub method: String,
    pub path: String,
}

/// The two non-error outcomes of execute.
#[derive(Debug, Clone)]
pub enum ExecuteOutcome {
    Executed(ExecutedResponse),
    ApprovalRequired {
        approval_id: String,
        expires_at: String,
        correlation_id: String,
        summary: ApprovalSummary,
    },
}

/// `GET /v1/approvals/{id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ApprovalStatus {
    pub approval_id: String,
    pub status: String,
    pub expires_at: String,
    pub decided_at: Option<String>,
    pub mode: Option<String>,
    pub summary: ApprovalSummary,
}

#[derive(Deserialize)]
pub(crate) struct WireExecuted {
    pub correlation_id: String,
    pub upstream: WireUpstream,
}

#[derive(Deserialize)]
pub(crate) struct WireUpstream {
    pub status_code: u16,
    pub headers: Vec<HeaderField>,
    pub body_base64: String,
}

#[derive(Deserialize)]
pub(crate) struct WireApprovalRequired {
    pub approval_id: String,
    pub expires_at: String,
    pub correlation_id: String,
    pub summary: ApprovalSummary,
}
