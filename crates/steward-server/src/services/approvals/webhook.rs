//! The approval webhook (`spec/pipeline.md`, "Approvals"): when an approval is created, approvers
//! are notified with a POST of the approval summary and preview — never headers or the full body —
//! signed `x-steward-signature: sha256=<hex HMAC-SHA256 of the body under approval.webhook_secret>`,
//! retried 3 times with backoff.
//!
//! Webhooks leave through the same egress as execute: only `https://` URLs, the SSRF guard on the
//! host (a tenant admin must not be able to point Steward at the metadata service or an internal
//! address), a connection pinned to the validated address, upstream TLS verified against the webpki
//! roots plus `egress.extra_ca_files`; see `docs/decisions/0002-webhooks.md`.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use steward_store::governance::ApprovalRecord;

use crate::services::AppState;
use crate::services::credentials::envelope::open_record;
use crate::services::credentials::envelope::preview_context;
use steward_egress::{OutgoingRequest, guard};
use zeroize::Zeroizing;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-steward-signature";
/// Waits before the 3 retries.
pub const RETRY_DELAYS: [Duration; 3] =
    [Duration::from_secs(1), Duration::from_secs(4), Duration::from_secs(16)];

/// Why a webhook was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook URL {0:?} is not https://; it is not called")]
    NotHttps(String),
    #[error("approval.webhook_secret is empty; unsigned webhooks are not sent")]
    NoSecret,
    #[error("the approval preview could not be opened: {0}")]
    Preview(String),
    #[error("the store could not be read: {0}")]
    Store(String),
    #[error("the webhook URL {0:?} is not a valid https URL")]
    InvalidUrl(String),
    #[error("the webhook destination was refused by the SSRF guard: {0}")]
    Refused(String),
    #[error("the webhook failed after {attempts} attempts; last: {last}")]
    Failed { attempts: usize, last: String },
}

/// What happened to a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// No webhook URL is configured for the tenant or the deployment.
    NotConfigured,
    /// A 2xx answer after `attempts` attempts.
    Delivered { attempts: usize },
}

/// Sends approval webhooks through the egress of the server it is given.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    retry_delays: Vec<Duration>,
}

impl Default for WebhookSender {
    fn default() -> Self {
        Self { retry_delays: RETRY_DELAYS.to_vec() }
    }
}

impl WebhookSender {
    /// Replaces the backoff (tests use milliseconds).
    pub fn with_retry_delays(mut self, delays: Vec<Duration>) -> Self {
        self.retry_delays = delays;
        self
    }

    /// Notifies the approvers of `approval` and waits for the outcome (retries included).
    pub async fn send_approval_created(
        &self,
        state: &AppState,
        approval: &ApprovalRecord,
    ) -> Result<Delivery, WebhookError> {
        let tenant_url = state
            .store
            .approval_webhook_url(&approval.tenant_id)
            .await
            .map_err(|e| WebhookError::Store(e.to_string()))?;
        let url = match tenant_url {
            Some(url) => url,
            None if !state.config.approval.webhook_url.is_empty() => {
                state.config.approval.webhook_url.clone()
            }
            None => return Ok(Delivery::NotConfigured),
        };
        if !url.starts_with("https://") {
            return Err(WebhookError::NotHttps(url));
        }
        let secret = state.config.approval.webhook_secret.as_bytes();
        if secret.is_empty() {
            return Err(WebhookError::NoSecret);
        }
        let body = Bytes::from(payload(state, approval)?.to_string());
        let signature = signature_header(secret, &body);
        let destination = Destination::parse(&url)?;
        let mut last = String::new();
        let attempts = self.retry_delays.len() + 1;
        for attempt in 1..=attempts {
            match destination.post(state, &body, &signature).await {
                Ok(status) if (200..300).contains(&status) => {
                    return Ok(Delivery::Delivered { attempts: attempt });
                }
                Ok(status) => last = format!("status {status}"),
                // The guard's verdict does not change between attempts: do not retry it.
                Err(WebhookError::Refused(reason)) => return Err(WebhookError::Refused(reason)),
                Err(WebhookError::Failed { last: reason, .. }) => last = reason,
                Err(error) => last = error.to_string(),
            }
            tracing::warn!(approval_id = %approval.approval_id, attempt, detail = %last, "Approval webhook attempt failed.");
            if let Some(delay) = self.retry_delays.get(attempt - 1) {
                tokio::time::sleep(*delay).await;
            }
        }
        Err(WebhookError::Failed { attempts, last })
    }
}

/// Notifies approvers in the background, so the request that created the approval never waits for
/// (or fails because of) the webhook. Failures are logged.
pub fn notify_approval_created(state: &AppState, approval: &ApprovalRecord) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    let approval = approval.clone();
    tokio::spawn(async move {
        let outcome = WebhookSender::default().send_approval_created(&state, &approval).await;
        match outcome {
            Ok(Delivery::Delivered { attempts }) => {
                tracing::info!(approval_id = %approval.approval_id, attempts, "Approval webhook delivered.");
            }
            Ok(Delivery::NotConfigured) => {}
            Err(error) => {
                tracing::warn!(approval_id = %approval.approval_id, tenant_id = %approval.tenant_id, detail = %error,
                    "Approval webhook not delivered.");
            }
        }
    })
}

/// Where a webhook goes: an https URL split for the egress.
struct Destination {
    host: String,
    port: u16,
    path: String,
    query: String,
}

impl Destination {
    fn parse(text: &str) -> Result<Self, WebhookError> {
        let invalid = || WebhookError::InvalidUrl(text.to_owned());
        let url = url::Url::parse(text).map_err(|_| invalid())?;
        if url.scheme() != "https" || !url.username().is_empty() || url.password().is_some() {
            return Err(invalid());
        }
        let host = url.host_str().ok_or_else(invalid)?.to_owned();
        Ok(Self {
            host,
            port: url.port_or_known_default().unwrap_or(443),
            path: url.path().to_owned(),
            query: url.query().unwrap_or("").to_owned(),
        })
    }

    /// One attempt: guard the host, then POST through the pinned forwarder. The answer's status.
    async fn post(&self, state: &AppState, body: &Bytes, signature: &str) -> Result<u16, WebhookError> {
        let headers = vec![
            ("content-type".to_owned(), Zeroizing::new("application/json".to_owned())),
            (SIGNATURE_HEADER.to_owned(), Zeroizing::new(signature.to_owned())),
        ];
        let request = OutgoingRequest::new("POST", &self.path, &self.query, headers, body.clone())
            .map_err(|e| WebhookError::InvalidUrl(e.to_string()))?;
        let target =
            guard(&self.host, self.port, state.egress.resolver.as_ref(), &state.config.egress.allow_cidrs)
                .await
                .map_err(|e| match e.code().status() {
                    403 => WebhookError::Refused(e.code().as_str().to_owned()),
                    _ => WebhookError::Failed { attempts: 1, last: e.to_string() },
                })?;
        let answer = state
            .egress
            .forwarder
            .forward(&target, &request, &[])
            .await
            .map_err(|e| WebhookError::Failed { attempts: 1, last: e.code().as_str().to_owned() })?;
        Ok(answer.status)
    }
}

/// The webhook body: the approval summary (the descriptor without headers or body digest) and the
/// decrypted preview values.
pub fn payload(state: &AppState, approval: &ApprovalRecord) -> Result<Value, WebhookError> {
    let preview = match &approval.preview {
        Some(envelope) => {
            let keyring = state.keyring.load();
            let context = preview_context(&approval.tenant_id, &approval.approval_id);
            let plaintext = open_record(&keyring, &context, envelope)
                .map_err(|e| WebhookError::Preview(e.to_string()))?;
            Some(
                serde_json::from_slice::<Value>(&plaintext)
                    .map_err(|e| WebhookError::Preview(e.to_string()))?,
            )
        }
        None => None,
    };
    let mut request = serde_json::Map::new();
    for field in [
        "method",
        "canonical_url",
        "action_group",
        "risk_tier",
        "template_id",
        "template_version",
        "query_keys",
    ] {
        if let Some(value) = approval.descriptor.get(field) {
            request.insert(field.to_owned(), value.clone());
        }
    }
    Ok(json!({
        "event": "approval_created",
        "approval_id": approval.approval_id.as_str(),
        "tenant_id": approval.tenant_id,
        "workload_id": approval.workload_id,
        "integration_id": approval.integration_id,
        "status": approval.status_at(state.clock.now()).as_str(),
        "created_at": approval.created_at,
        "expires_at": approval.expires_at,
        "request": request,
        "preview": preview,
    }))
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn signature_header(secret: &[u8], body: &[u8]) -> String {
    let tag = steward_crypto::hmac_sha256(secret, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}
