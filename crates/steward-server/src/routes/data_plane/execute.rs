//! `POST /v1/execute` (`spec/data-plane.md`, `spec/pipeline.md`): the sixteen steps of the execute
//! pipeline in the spec's order — the first failure wins — with the audit events of each outcome
//! (the table at the end of `pipeline.md`). The stages live in [`crate::pipeline`]; this module is
//! the order and the bookkeeping: which events each outcome writes, the metrics, the answer.
//!
//! Failures before the workload is identified are never audited. Every later refusal that is a
//! decision (not a store, coordination or audit outage) writes `execute` denied with its reason.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use steward_canon::{CanonContext, CanonicalRequest, ExecuteRequest, Injection, canonicalize};
use steward_egress::{OutgoingRequest, ValidatedTarget};
use steward_store::audit::{AuditEvent, Decision, EventType, PolicyRef};
use steward_store::catalog::IntegrationRecord;
use steward_types::{ApprovalId, ErrorCode, PolicyId};
use utoipa::ToSchema;

use super::MtlsPrincipal;
use super::approvals::approval_summary;
use super::session::is_decision;
use super::session_auth::{ExecuteScope, SessionPrincipal, SessionRejection};
use crate::http::{ApiError, DeferredBody, LogFields, RequestContext};
use crate::pipeline::audit::EventBase;
use crate::pipeline::idempotency::{self, IdempotencyKey, Lookup, StoredError, StoredResponse};
use crate::pipeline::policy::{self, PolicyOutcome};
use crate::pipeline::{approvals, binding, forward, secret};
use crate::routes::admin::ErrorBody;
use crate::state::AppState;
use crate::webhook::notify_approval_created;

/// The execute body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteBody {
    /// The integration whose secret the call needs (`i_…`).
    pub integration_id: String,
    #[schema(value_type = super::openapi::ExecuteRequestSchema)]
    pub request: ExecuteRequest,
    #[serde(default)]
    pub client_context: Option<ClientContext>,
}

/// `client_context`: every field optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientContext {
    /// The workload's own request id (kept in the audit event).
    #[serde(default)]
    pub request_id: Option<String>,
    /// `^[A-Za-z0-9._:-]{1,128}$`: a repeated request with the same key and body gets the stored
    /// answer (header `idempotent-replayed: true`) instead of a second call.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Free text: what made the call (kept in the audit event).
    #[serde(default)]
    pub source: Option<String>,
}

/// The route's body limit: `ceil(egress.max_request_body_bytes × 4 / 3) + 64 KiB`, so the largest
/// allowed decoded body fits in base64.
pub fn body_limit(max_request_body_bytes: u64) -> usize {
    let limit = max_request_body_bytes.saturating_mul(4).div_ceil(3).saturating_add(64 * 1024);
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// Makes a protected call: the template and policy check it, the SSRF guard checks where it goes,
/// the secret is injected, the answer scrubbed. 200 when the call was made (whatever the provider
/// answered), 202 when a person must approve it first, an error otherwise.
#[utoipa::path(post, path = "/v1/execute", tag = "execute", operation_id = "execute",
    security(("mtls" = [], "session" = []), ("mtls" = [], "session" = [], "dpop" = [])),
    request_body = ExecuteBody,
    responses(
        (status = 200, body = super::openapi::ExecutedResponse, headers(
            ("idempotent-replayed" = String, description = "`true` when this is the stored answer of an earlier request with the same idempotency key."))),
        (status = 202, body = super::openapi::ApprovalRequiredResponse),
        (status = 400, body = ErrorBody, description = "request_body_*, request_url_*, request_header_*, request_body_base64_invalid, idempotency_key_invalid, …"),
        (status = 401, body = ErrorBody, description = "mtls_*, session_*, dpop_* (with WWW-Authenticate)"),
        (status = 403, body = ErrorBody, description = "template, policy and SSRF refusals: request_host_not_allowed, no_matching_group, policy_default_deny, resolved_ip_denied_*, …"),
        (status = 404, body = ErrorBody, description = "integration_not_found, template_not_found"),
        (status = 409, body = ErrorBody, description = "idempotency_key_conflict, idempotency_request_in_progress"),
        (status = 413, body = ErrorBody, description = "request_body_too_large"),
        (status = 415, body = ErrorBody, description = "content_type_invalid"),
        (status = 429, body = ErrorBody, description = "policy_rate_limited, with retry-after",
            headers(("retry-after" = u64, description = "Seconds to wait."))),
        (status = 502, body = ErrorBody, description = "dns_resolution_*, upstream_network_error, redirect_denied, upstream_response_too_large, …"),
        (status = 503, body = ErrorBody, description = "integration_secret_unavailable, audit_write_failed, storage_unavailable, coordination_unavailable"),
        (status = 504, body = ErrorBody, description = "upstream_timeout"),
    ))]
pub async fn execute(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    session: Result<SessionPrincipal<ExecuteScope>, SessionRejection>,
    body: DeferredBody,
) -> Response {
    let (principal, refused) = match session {
        Ok(session) => (session.mtls, None),
        Err(SessionRejection { error, principal: Some(principal) }) => (principal, Some(error)),
        Err(SessionRejection { error, principal: None }) => {
            count("denied", error.code.as_str());
            return error.into_response();
        }
    };
    let mut run = Run {
        state: &state,
        context: &context,
        principal: &principal,
        integration_id: None,
        requested_integration: None,
        canonical: None,
        consumed: None,
    };
    let mut response = match refused {
        Some(error) => run.refuse(error).await,
        None => match run.pipeline(body).await {
            Ok(response) | Err(Refusal::Answered(response)) => response,
            Err(Refusal::Error(error)) => run.refuse(error).await,
        },
    };
    response.extensions_mut().insert(LogFields {
        tenant_id: Some(principal.tenant_id.to_string()),
        workload_id: Some(principal.workload_id.to_string()),
        integration_id: run.integration_id.clone(),
        ..LogFields::default()
    });
    response
}

/// How a stage stopped the pipeline.
enum Refusal {
    /// A refusal still to be audited (`execute` denied) and answered.
    Error(ApiError),
    /// Already audited and answered.
    Answered(Response),
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Refusal::Error(error)
    }
}

/// `steward_execute_total{decision, reason}`.
fn count(decision: &str, reason: &str) {
    metrics::counter!("steward_execute_total", "decision" => decision.to_owned(), "reason" => reason.to_owned())
        .increment(1);
}

/// The policy part of the allowed `execute` event.
struct Allowed {
    reason: &'static str,
    policy: PolicyRef,
    trace: Value,
}

/// One execute request as it goes through the pipeline.
struct Run<'a> {
    state: &'a AppState,
    context: &'a RequestContext,
    principal: &'a MtlsPrincipal,
    integration_id: Option<String>,
    /// The body's `integration_id`, before it was found.
    requested_integration: Option<String>,
    canonical: Option<Arc<CanonicalRequest>>,
    /// The `once` approval this request consumed (a later failure still counts as consumed).
    consumed: Option<ApprovalId>,
}

impl Run<'_> {
    fn base(&self) -> EventBase<'_> {
        EventBase {
            state: self.state,
            context: self.context,
            principal: self.principal,
            integration_id: self.integration_id.clone(),
            canonical: self.canonical.as_deref(),
        }
    }

    fn event(&self, event_type: EventType) -> AuditEvent {
        let mut event = self.base().event(event_type);
        if self.integration_id.is_none()
            && let Some(requested) = &self.requested_integration
        {
            event = event.with_metadata("requested_integration_id", requested.clone().into());
        }
        if let Some(consumed) = &self.consumed {
            event = event.with_metadata("approval_consumed", consumed.as_str().into());
        }
        event
    }

    /// Appends every event in order; the first failure is the answer (503 `audit_write_failed`).
    async fn record(&self, events: Vec<AuditEvent>) -> Result<(), Response> {
        for event in events {
            self.state.audit.append(event).await.map_err(|e| ApiError::from(e).into_response())?;
        }
        Ok(())
    }

    /// A refusal: `execute` denied with the reason when it is a decision, then the error.
    async fn refuse(&self, error: ApiError) -> Response {
        count("denied", error.code.as_str());
        if is_decision(error.code) {
            let event = self
                .event(EventType::Execute)
                .with_decision(Decision::Denied)
                .with_reason_code(error.code.as_str())
                .with_metadata("message", error.message.clone().into());
            if let Err(response) = self.record(vec![event]).await {
                return response;
            }
        }
        error.into_response()
    }

    async fn pipeline(&mut self, body: DeferredBody) -> Result<Response, Refusal> {
        let state = self.state;
        // 2. Body.
        let body: ExecuteBody = body.json()?;
        let key = body.client_context.as_ref().and_then(|c| c.idempotency_key.clone());
        if let Some(key) = &key
            && !idempotency::key_is_valid(key)
        {
            return Err(ApiError::new(
                ErrorCode::IdempotencyKeyInvalid,
                "client_context.idempotency_key must be 1-128 characters of A-Z a-z 0-9 . _ : -",
            )
            .into());
        }
        // 3. Integration; 4. template.
        self.requested_integration = Some(body.integration_id.clone());
        let integration = binding::integration(state, self.principal, &body.integration_id).await?;
        self.integration_id = Some(integration.integration_id.to_string());
        let template = binding::template(state, &integration).await?;
        // 5. Canonicalization.
        let ctx = CanonContext::new(
            self.principal.tenant_id.clone(),
            self.principal.workload_id.clone(),
            integration.integration_id.clone(),
            state.config.egress.max_request_body_bytes,
        )
        .with_integration_injection(binding::injection(&integration)?);
        let canonical = Arc::new(
            canonicalize(&body.request, &template, &ctx).map_err(|e| ApiError::new(e.code(), e.message()))?,
        );
        let injection = ctx.effective_injection(&template);
        self.canonical = Some(Arc::clone(&canonical));
        // 6. Idempotency lookup.
        let idem = key.map(|key| {
            IdempotencyKey::new(
                self.principal.tenant_id.as_str(),
                self.principal.workload_id.as_str(),
                integration.integration_id.as_str(),
                &key,
            )
        });
        if let Some(idem) = &idem
            && let Lookup::Replay(stored) = idempotency::lookup(state, idem, canonical.digest()).await?
        {
            return Err(Refusal::Answered(self.replay(&stored).await));
        }
        // 7–8. Policy, rate limits, consumption; the branch.
        let allowed = match policy::decide(state, &canonical).await? {
            PolicyOutcome::Allowed { reason, policy_id, consumed, trace } => {
                let policy = PolicyRef {
                    rule_id: policy_id.as_ref().map(ToString::to_string),
                    rule_type: policy_id.as_ref().map(|_| "allow".to_owned()),
                    approval_id: consumed.as_ref().map(ToString::to_string),
                };
                if let Some(approval_id) = consumed {
                    self.consumed = Some(approval_id.clone());
                    let event = self
                        .event(EventType::ApprovalConsumed)
                        .with_decision(Decision::Allowed)
                        .with_reason_code(reason.as_str())
                        .with_policy(policy.clone());
                    self.record(vec![event]).await.map_err(Refusal::Answered)?;
                }
                Allowed { reason: reason.as_str(), policy, trace }
            }
            PolicyOutcome::Denied { code, policy_id, message, trace } => {
                return Err(Refusal::Answered(self.denied(code, policy_id, message, trace).await));
            }
            outcome @ PolicyOutcome::ApprovalRequired { .. } => {
                return Err(Refusal::Answered(self.approval_required(outcome, &canonical).await?));
            }
            PolicyOutcome::Throttled { retry_after_seconds, policy_ids, trace } => {
                return Err(Refusal::Answered(self.throttled(retry_after_seconds, policy_ids, trace).await));
            }
        };
        // 9. SSRF guard.
        let target = forward::check_target(state, &canonical).await?;
        // 10. Idempotency reservation; 11–16 under the lock.
        let lock = match &idem {
            Some(idem) => Some((idem, idempotency::reserve(state, idem, canonical.digest()).await?)),
            None => None,
        };
        let result = self.send(&integration, &canonical, &injection, &target, idem.as_ref(), allowed).await;
        if let Some((idem, token)) = lock {
            idempotency::release(state, idem, &token).await;
        }
        result
    }

    /// Steps 11–16.
    async fn send(
        &self,
        integration: &IntegrationRecord,
        canonical: &CanonicalRequest,
        injection: &Injection,
        target: &ValidatedTarget,
        idem: Option<&IdempotencyKey>,
        allowed: Allowed,
    ) -> Result<Response, Refusal> {
        let state = self.state;
        // A request with this key may have completed between the lookup and the lock.
        if let Some(idem) = idem
            && let Lookup::Replay(stored) = idempotency::lookup(state, idem, canonical.digest()).await?
        {
            return Ok(self.replay(&stored).await);
        }
        // 11. Secret, injected into the canonical request, then wiped.
        let secret = secret::load(state, integration, canonical, injection).await?;
        // OAuth2 integrations always inject `Authorization: Bearer <access token>`.
        let bearer = secret.oauth2.as_ref().map(|_| crate::oauth2::bearer_injection());
        let injection = bearer.as_ref().unwrap_or(injection);
        let (outgoing, mut needles) = OutgoingRequest::from_canonical(canonical, injection, &secret).map_err(|e| {
            tracing::error!(integration_id = %integration.integration_id, detail = %e, "The secret cannot be injected.");
            ApiError::new(
                ErrorCode::IntegrationSecretUnavailable,
                format!(
                    "the secret of integration {} cannot be injected as configured; an admin must write it again",
                    integration.integration_id
                ),
            )
        })?;
        // The plaintext goes; an OAuth2 token's bookkeeping stays (scrub needles, 401, audit).
        let secret::Credential { oauth2, version: secret_version, .. } = secret;
        if let Some(token) = &oauth2 {
            needles.extend(token.needles().iter().cloned());
        }
        // 12. Write-ahead audit: durable before anything is sent.
        let resolved: Vec<Value> = target.addresses().iter().map(|ip| ip.to_string().into()).collect();
        let intent = self
            .event(EventType::Execute)
            .with_decision(Decision::Allowed)
            .with_reason_code(allowed.reason)
            .with_policy(allowed.policy)
            .with_metadata("policy_trace", allowed.trace)
            .with_metadata("validated_ips", resolved.clone().into());
        let intent = match &oauth2 {
            Some(token) => intent.with_metadata("token_refreshed", token.refreshed.into()),
            None => intent,
        };
        self.record(vec![intent]).await.map_err(Refusal::Answered)?;
        count("allowed", allowed.reason);
        // 13–14. Forward and scrub.
        let secret_version = forward::SecretVersion {
            integration_id: integration.integration_id.as_str(),
            version: secret_version,
        };
        let sent = forward::send(state, target, &outgoing, canonical, &needles, secret_version).await;
        drop(outgoing);
        drop(needles);
        // 15. Result audit; 16. idempotency completion.
        let correlation_id = self.context.correlation_id.clone();
        match sent {
            Ok(delivered) => {
                // An upstream 401 drops the cached access token (the next call refreshes); this
                // call is not retried.
                if delivered.status == 401
                    && let Some(token) = &oauth2
                {
                    crate::oauth2::drop_access_token(state, integration, token).await;
                }
                let result = self
                    .event(EventType::ExecuteResult)
                    .with_upstream_status_code(delivered.status)
                    .with_latency_ms(delivered.latency_ms)
                    // Every address the guard validated, and the one the call went to.
                    .with_metadata("resolved_ips", resolved.into())
                    .with_metadata("connected_ip", delivered.resolved_ip.to_string().into())
                    .with_metadata("secret_scrubbed", delivered.scrubbed.into());
                self.record_result(result).await;
                let body = json!({
                    "status": "executed",
                    "correlation_id": correlation_id,
                    "upstream": delivered.upstream_json(),
                });
                if let Some(idem) = idem {
                    let stored =
                        StoredResponse { status: 200, correlation_id, body: Some(body.clone()), error: None };
                    idempotency::complete(state, idem, canonical.digest(), &stored).await;
                }
                Ok(Json(body).into_response())
            }
            Err(error) => {
                let api = forward::egress_error(&error);
                let result = self
                    .event(EventType::ExecuteResult)
                    .with_reason_code(api.code.as_str())
                    .with_metadata("resolved_ips", resolved.into())
                    .with_metadata("secret_scrubbed", false.into())
                    .with_metadata("sent", (!forward::failed_before_send(&error)).into());
                self.record_result(result).await;
                if let Some(idem) = idem
                    && !forward::failed_before_send(&error)
                {
                    let stored = StoredResponse {
                        status: api.status().as_u16(),
                        correlation_id,
                        body: None,
                        error: Some(StoredError {
                            code: api.code.as_str().to_owned(),
                            message: api.message.clone(),
                        }),
                    };
                    idempotency::complete(state, idem, canonical.digest(), &stored).await;
                }
                Ok(api.into_response())
            }
        }
    }

    /// Step 15: a failure is logged at ERROR and counted; the answer is still returned.
    async fn record_result(&self, event: AuditEvent) {
        if let Err(error) = self.state.audit.append(event).await {
            metrics::counter!("steward_audit_result_failures_total").increment(1);
            tracing::error!(detail = %error, correlation_id = %self.context.correlation_id,
                "The execute_result audit event could not be written; the call itself is on record.");
        }
    }

    /// Step 6: the stored answer, with an `execute` allowed event marked `replayed`.
    async fn replay(&self, stored: &StoredResponse) -> Response {
        let event = self
            .event(EventType::Execute)
            .with_decision(Decision::Allowed)
            .with_reason_code("idempotent_replay")
            .with_metadata("replayed", true.into())
            .with_metadata("original_correlation_id", stored.correlation_id.clone().into());
        if let Err(response) = self.record(vec![event]).await {
            return response;
        }
        count("allowed", "idempotent_replay");
        stored.replay(&self.context.correlation_id)
    }

    /// Policy denied: `execute` denied (`policy_deny` also writes `violation`).
    async fn denied(
        &self,
        code: ErrorCode,
        policy_id: Option<PolicyId>,
        message: String,
        trace: Value,
    ) -> Response {
        count("denied", code.as_str());
        let policy = PolicyRef {
            rule_id: policy_id.as_ref().map(ToString::to_string),
            rule_type: policy_id
                .as_ref()
                .map(|_| if code == ErrorCode::PolicyDeny { "deny" } else { "allow" }.to_owned()),
            approval_id: None,
        };
        let mut events = vec![
            self.event(EventType::Execute)
                .with_decision(Decision::Denied)
                .with_reason_code(code.as_str())
                .with_policy(policy.clone())
                .with_metadata("policy_trace", trace),
        ];
        if code == ErrorCode::PolicyDeny {
            events.push(
                self.event(EventType::Violation)
                    .with_decision(Decision::Denied)
                    .with_reason_code(code.as_str())
                    .with_policy(policy),
            );
        }
        if let Err(response) = self.record(events).await {
            return response;
        }
        ApiError::new(code, message).into_response()
    }

    /// Approval required: the (new or reused) pending approval and 202.
    async fn approval_required(
        &self,
        outcome: PolicyOutcome,
        canonical: &CanonicalRequest,
    ) -> Result<Response, Refusal> {
        let PolicyOutcome::ApprovalRequired { reason, policy_id, trace } = outcome else {
            return Err(ApiError::internal("approval_required called without an approval decision").into());
        };
        let (record, created) = approvals::create_or_reuse(self.state, canonical).await?;
        let policy = PolicyRef {
            rule_id: policy_id.as_ref().map(ToString::to_string),
            rule_type: policy_id.as_ref().map(|_| "approval_required".to_owned()),
            approval_id: Some(record.approval_id.to_string()),
        };
        let mut events = vec![
            self.event(EventType::Execute)
                .with_decision(Decision::ApprovalRequired)
                .with_reason_code(reason.as_str())
                .with_policy(policy.clone())
                .with_metadata("policy_trace", trace)
                .with_metadata("approval_created", created.into()),
        ];
        if created {
            events.push(
                self.event(EventType::ApprovalCreated)
                    .with_decision(Decision::ApprovalRequired)
                    .with_reason_code(reason.as_str())
                    .with_policy(policy)
                    .with_metadata("expires_at", json!(record.expires_at)),
            );
        }
        self.record(events).await.map_err(Refusal::Answered)?;
        count("approval_required", reason.as_str());
        if created {
            metrics::counter!("steward_approvals_created_total").increment(1);
            notify_approval_created(self.state, &record);
        }
        let body = json!({
            "status": "approval_required",
            "approval_id": record.approval_id.as_str(),
            "expires_at": record.expires_at,
            "correlation_id": self.context.correlation_id,
            "summary": approval_summary(&record),
        });
        Ok((StatusCode::ACCEPTED, Json(body)).into_response())
    }

    /// Throttled: `execute` throttled and 429 with `retry-after`.
    async fn throttled(&self, retry_after_seconds: u64, policy_ids: Vec<PolicyId>, trace: Value) -> Response {
        count("throttled", ErrorCode::PolicyRateLimited.as_str());
        let ids: Vec<Value> = policy_ids.iter().map(|id| id.to_string().into()).collect();
        let event = self
            .event(EventType::Execute)
            .with_decision(Decision::Throttled)
            .with_reason_code(ErrorCode::PolicyRateLimited.as_str())
            .with_policy(PolicyRef {
                rule_id: policy_ids.first().map(ToString::to_string),
                rule_type: Some("rate_limit".to_owned()),
                approval_id: None,
            })
            .with_metadata("rate_limit_policy_ids", ids.into())
            .with_metadata("retry_after_seconds", retry_after_seconds.into())
            .with_metadata("policy_trace", trace);
        if let Err(response) = self.record(vec![event]).await {
            return response;
        }
        let mut error = ApiError::new(
            ErrorCode::PolicyRateLimited,
            format!("rate limit reached for this action; retry after {retry_after_seconds} s"),
        );
        if let Ok(value) = HeaderValue::from_str(&retry_after_seconds.to_string()) {
            error = error.with_header(header::RETRY_AFTER, value);
        }
        error.into_response()
    }
}
