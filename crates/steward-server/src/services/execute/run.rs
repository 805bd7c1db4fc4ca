//! The execute pipeline of `spec/pipeline.md` in the spec's order — the first failure wins — with
//! the audit events of each outcome (the table at the end of `pipeline.md`).
//!
//! One request is one [`Execution`]. It runs in two halves so a surface can do the sending itself:
//!
//! - [`Execution::prepare`]: steps 2 (idempotency key) – 12, ending with the write-ahead `execute`
//!   event durable; returns [`Step::Ready`] with a [`Prepared`] call (what to send, and where), or
//!   [`Step::Done`] with the [`Outcome`] of a request that stops before anything is sent;
//! - then either [`Execution::send_buffered`] (steps 13–16, the envelope route), or the caller sends
//!   [`Wire`] itself (forward mode, streaming) and calls [`Execution::record_result`] (step 15) and
//!   [`Execution::complete`] (step 16) when the answer has ended.
//!
//! [`Execution::run`] is both halves for a buffered call. Failures before the workload is
//! identified never reach this module; every later refusal goes through [`Execution::refuse`], which
//! writes `execute` denied when the refusal is a decision ([`audit::is_decision`]).

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Value, json};
use steward_canon::{CanonContext, CanonicalRequest, ExecuteRequest, canonicalize};
use steward_coord::LockToken;
use steward_egress::{EgressError, Needles, OutgoingRequest, ValidatedTarget};
use steward_store::audit::{AuditEvent, Decision, EventType, PolicyRef};
use steward_store::catalog::IntegrationRecord;
use steward_types::{ApprovalId, ErrorCode, PolicyId};

use super::idempotency::{self, IdempotencyKey, Lookup, StoredError, StoredResponse};
use super::input::{ExecuteInput, Mode};
use super::outcome::{Executed, Outcome};
use super::policy::{self, PolicyOutcome};
use super::{binding, forward};
use crate::http::{ApiError, RequestContext};
use crate::services::AppState;
use crate::services::approvals::{self, webhook};
use crate::services::audit::{self, EventBase};
use crate::services::credentials::{self, CredentialUse};
use crate::services::identity::MtlsPrincipal;

/// One execute request of an identified workload.
#[derive(Debug)]
pub struct Execution<'a> {
    state: &'a AppState,
    context: &'a RequestContext,
    principal: &'a MtlsPrincipal,
    mode: Mode,
    trail: Trail,
}

/// What the audit events of this request can say so far. Each step adds what it learned, so a
/// refusal at any step records exactly what was known then.
#[derive(Debug, Default)]
struct Trail {
    /// The caller's `integration_id`, before it was found.
    requested_integration: Option<String>,
    /// The integration, once found (step 3).
    integration_id: Option<String>,
    /// The canonical request (step 5).
    canonical: Option<Arc<CanonicalRequest>>,
    /// The `once` approval this request consumed (step 7): a later failure still counts as consumed.
    consumed: Option<ApprovalId>,
    /// What the surface adds to every event of the request (forward mode: the JSON-RPC method and
    /// tool name of an MCP call).
    metadata: Vec<(&'static str, Value)>,
}

/// Where [`Execution::prepare`] stopped.
#[derive(Debug)]
pub enum Step {
    /// Steps 2–12 passed: the write-ahead event is durable; send [`Prepared::wire`].
    Ready(Box<Prepared>),
    /// The request ended before anything was sent.
    Done(Outcome),
}

/// A call ready to send: what goes on the wire, and what steps 15–16 need afterwards.
#[derive(Debug)]
pub struct Prepared {
    pub wire: Wire,
    pub pending: Pending,
}

/// What goes on the wire. It holds the injected secret: drop it as soon as the answer has been
/// received and scrubbed.
pub struct Wire {
    /// The validated addresses of the canonical host (step 9); connect only to one of them.
    pub target: ValidatedTarget,
    /// The canonical request with the credential injected (step 11).
    pub outgoing: OutgoingRequest,
    /// What the scrubber removes from the answer (step 14; a scrubber for them:
    /// `state.scrubbers.get(…, pending.secret_version(), &needles)`).
    pub needles: Needles,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire").field("target", &self.target).finish_non_exhaustive()
    }
}

/// What the result audit and the idempotency completion need, without the secret.
#[derive(Debug)]
pub struct Pending {
    integration: IntegrationRecord,
    canonical: Arc<CanonicalRequest>,
    credential: CredentialUse,
    /// The idempotency key and the in-progress lock this request holds (step 10).
    idempotency: Option<(IdempotencyKey, LockToken)>,
    /// Every address the guard validated, for `execute` and `execute_result`.
    resolved_ips: Vec<Value>,
}

impl Pending {
    pub fn canonical(&self) -> &CanonicalRequest {
        &self.canonical
    }

    pub fn integration(&self) -> &IntegrationRecord {
        &self.integration
    }

    /// Which secret the needles come from (keys the scrubber cache).
    pub fn secret_version(&self) -> forward::SecretVersion<'_> {
        forward::SecretVersion {
            integration_id: self.integration.integration_id.as_str(),
            version: self.credential.version,
        }
    }
}

/// What the sending produced, for the result audit (step 15).
#[derive(Debug)]
pub enum Sent {
    /// The upstream answered (for a stream: the stream has ended, however it ended).
    Answered(Answer),
    /// No answer: the forwarder's error (timeout, connection, TLS, redirect, size, encoding …).
    Failed(EgressError),
}

/// An upstream answer as the result event records it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// To the response head (buffered) or to the last byte (streamed).
    pub latency_ms: u64,
    /// The address the call went to.
    pub connected_ip: IpAddr,
    /// Whether the scrubber replaced anything.
    pub scrubbed: bool,
    /// Extra `execute_result` metadata (forward mode: `stream`, `response_bytes`, `ttfb_ms`, `end`,
    /// `usage`).
    pub metadata: Vec<(&'static str, Value)>,
}

/// How a step stopped the pipeline inside [`Execution::prepare`].
enum Stop {
    /// A refusal still to be audited ([`Execution::refuse`]).
    Refuse(ApiError),
    /// Fully bookkept.
    Done(Outcome),
}

impl From<ApiError> for Stop {
    fn from(error: ApiError) -> Self {
        Stop::Refuse(error)
    }
}

/// The policy part of the allowed `execute` event.
struct Allowed {
    reason: &'static str,
    policy: PolicyRef,
    trace: Value,
}

/// `steward_execute_total{decision, reason}`.
fn count(decision: &str, reason: &str) {
    metrics::counter!("steward_execute_total", "decision" => decision.to_owned(), "reason" => reason.to_owned())
        .increment(1);
}

/// Counts the refusal of a caller that could not be identified: there is no principal, so no
/// execution and no audit event, only the metric (envelope and forward mode alike).
pub fn count_unidentified_refusal(error: &ApiError) {
    count("denied", error.code.as_str());
}

impl<'a> Execution<'a> {
    pub fn new(
        state: &'a AppState,
        context: &'a RequestContext,
        principal: &'a MtlsPrincipal,
        mode: Mode,
    ) -> Self {
        Self { state, context, principal, mode, trail: Trail::default() }
    }

    /// The integration, once step 3 found it (for log fields).
    pub fn integration_id(&self) -> Option<&str> {
        self.trail.integration_id.as_deref()
    }

    /// Adds `key: value` to the metadata of every event this request writes from now on.
    pub fn add_metadata(&mut self, key: &'static str, value: Value) {
        self.trail.metadata.push((key, value));
    }

    /// Hands steps 15–16 of a call the surface sends itself to a [`Finisher`] that owns what they
    /// need, so they can run after the surface has answered (forward mode: when the streamed body
    /// ends).
    pub fn finisher(self, pending: Pending) -> Finisher {
        Finisher {
            state: self.state.clone(),
            context: self.context.clone(),
            principal: self.principal.clone(),
            mode: self.mode,
            trail: self.trail,
            pending,
        }
    }

    /// Steps 2–16 with a buffered answer.
    pub async fn run(&mut self, input: ExecuteInput) -> Outcome {
        match self.prepare(input).await {
            Step::Ready(prepared) => self.send_buffered(*prepared).await,
            Step::Done(outcome) => outcome,
        }
    }

    /// A refusal before or outside the pipeline's own steps (a session or DPoP failure after the
    /// workload was identified, an unparsable body): audited like any other.
    pub async fn refuse(&self, error: ApiError) -> Outcome {
        count("denied", error.code.as_str());
        if audit::is_decision(error.code) {
            let event = self
                .event(EventType::Execute)
                .with_decision(Decision::Denied)
                .with_reason_code(error.code.as_str())
                .with_metadata("message", error.message.clone().into());
            if let Err(error) = self.record(vec![event]).await {
                return Outcome::Refused(error);
            }
        }
        Outcome::Refused(error)
    }

    /// Steps 2 (the idempotency key) – 12.
    pub async fn prepare(&mut self, input: ExecuteInput) -> Step {
        match self.steps(input).await {
            Ok(prepared) => Step::Ready(Box::new(prepared)),
            Err(Stop::Done(outcome)) => Step::Done(outcome),
            Err(Stop::Refuse(error)) => Step::Done(self.refuse(error).await),
        }
    }

    /// Steps 13–16: sends, buffers and scrubs the answer, records the result, completes the
    /// idempotency key.
    pub async fn send_buffered(&self, prepared: Prepared) -> Outcome {
        let Prepared { wire, pending } = prepared;
        let sent = forward::send(
            self.state,
            &wire.target,
            &wire.outgoing,
            &pending.canonical,
            &wire.needles,
            pending.secret_version(),
        )
        .await;
        drop(wire);
        let correlation_id = self.context.correlation_id.clone();
        match sent {
            Ok(delivered) => {
                let answer = Answer {
                    status: delivered.status,
                    latency_ms: delivered.latency_ms,
                    connected_ip: delivered.resolved_ip,
                    scrubbed: delivered.scrubbed,
                    metadata: Vec::new(),
                };
                self.record_result(&pending, &Sent::Answered(answer)).await;
                let executed = Executed { delivered };
                let stored = StoredResponse {
                    status: 200,
                    correlation_id: correlation_id.clone(),
                    body: Some(executed.envelope_json(&correlation_id)),
                    error: None,
                };
                self.complete(pending, Some(&stored)).await;
                Outcome::Executed(executed)
            }
            Err(error) => {
                let api = forward::egress_error(&error);
                let sent_upstream = !forward::failed_before_send(&error);
                self.record_result(&pending, &Sent::Failed(error)).await;
                // A failure after the request may have reached the upstream is stored and replayed.
                let stored = sent_upstream.then(|| StoredResponse {
                    status: api.status().as_u16(),
                    correlation_id,
                    body: None,
                    error: Some(StoredError {
                        code: api.code.as_str().to_owned(),
                        message: api.message.clone(),
                    }),
                });
                self.complete(pending, stored.as_ref()).await;
                Outcome::UpstreamFailed(api)
            }
        }
    }

    /// Step 15: the `execute_result` event, and the credential's reaction to the upstream status
    /// (an OAuth2 401 drops the cached access token). A failing write is logged at ERROR and
    /// counted; the answer is still returned (the call is already on record).
    pub async fn record_result(&self, pending: &Pending, sent: &Sent) {
        let event = match sent {
            Sent::Answered(answer) => {
                pending.credential.upstream_status(self.state, answer.status).await;
                let mut event = self
                    .event(EventType::ExecuteResult)
                    .with_upstream_status_code(answer.status)
                    .with_latency_ms(answer.latency_ms)
                    // Every address the guard validated, and the one the call went to.
                    .with_metadata("resolved_ips", pending.resolved_ips.clone().into())
                    .with_metadata("connected_ip", answer.connected_ip.to_string().into())
                    .with_metadata("secret_scrubbed", answer.scrubbed.into());
                for (key, value) in &answer.metadata {
                    event = event.with_metadata(*key, value.clone());
                }
                event
            }
            Sent::Failed(error) => {
                let api = forward::egress_error(error);
                self.event(EventType::ExecuteResult)
                    .with_reason_code(api.code.as_str())
                    .with_metadata("resolved_ips", pending.resolved_ips.clone().into())
                    .with_metadata("secret_scrubbed", false.into())
                    .with_metadata("sent", (!forward::failed_before_send(error)).into())
            }
        };
        if let Err(error) = self.state.audit.append(event).await {
            metrics::counter!("steward_audit_result_failures_total").increment(1);
            tracing::error!(detail = %error, correlation_id = %self.context.correlation_id,
                "The execute_result audit event could not be written; the call itself is on record.");
        }
    }

    /// Step 16: stores `stored` under the idempotency key (when the request has one and there is
    /// something to store), then releases the in-progress lock. Always call it once the call has
    /// ended, so the lock does not wait for its expiry.
    pub async fn complete(&self, pending: Pending, stored: Option<&StoredResponse>) {
        let Some((key, token)) = &pending.idempotency else { return };
        if let Some(stored) = stored {
            idempotency::complete(self.state, key, pending.canonical.digest(), stored).await;
        }
        idempotency::release(self.state, key, token).await;
    }

    async fn steps(&mut self, input: ExecuteInput) -> Result<Prepared, Stop> {
        let state = self.state;
        let ExecuteInput { integration_id, method, url, headers, body, client: _, idempotency_key, mode: _ } =
            input;
        // 2. The rest of the body's shape: the idempotency key.
        if let Some(key) = &idempotency_key
            && !idempotency::key_is_valid(key)
        {
            return Err(ApiError::new(
                ErrorCode::IdempotencyKeyInvalid,
                "client_context.idempotency_key must be 1-128 characters of A-Z a-z 0-9 . _ : -",
            )
            .into());
        }
        // 3. Integration; 4. template.
        self.trail.requested_integration = Some(integration_id.clone());
        let integration = binding::integration(state, self.principal, &integration_id).await?;
        self.trail.integration_id = Some(integration.integration_id.to_string());
        let template = binding::template(state, &integration).await?;
        // 5. Canonicalization.
        // Forward mode: the body limit is `data_plane.max_forward_body_bytes`, and answers stream.
        let max_body = match self.mode {
            Mode::Execute => state.config.egress.max_request_body_bytes,
            Mode::Forward => state.config.data_plane.max_forward_body_bytes,
        };
        let mut ctx = CanonContext::new(
            self.principal.tenant_id.clone(),
            self.principal.workload_id.clone(),
            integration.integration_id.clone(),
            max_body,
        )
        .with_integration_injection(binding::injection(&integration)?);
        if self.mode == Mode::Forward {
            ctx = ctx.allowing_streaming();
        }
        let request = ExecuteRequest { method, url, headers, body_base64: body.into_base64() };
        let canonical = Arc::new(
            canonicalize(&request, &template, &ctx).map_err(|e| ApiError::new(e.code(), e.message()))?,
        );
        drop(request);
        let injection = ctx.effective_injection(&template);
        self.trail.canonical = Some(Arc::clone(&canonical));
        // 6. Idempotency lookup.
        let key = idempotency_key.map(|key| {
            IdempotencyKey::new(
                &self.principal.tenant_id,
                &self.principal.workload_id,
                &integration.integration_id,
                &key,
            )
        });
        if let Some(key) = &key
            && let Lookup::Replay(stored) = idempotency::lookup(state, key, canonical.digest()).await?
        {
            return Err(Stop::Done(self.replay(stored).await));
        }
        // 7–8. Policy, rate limits, consumption; the branch.
        let allowed = self.decide(&canonical).await?;
        // 9. SSRF guard.
        let target = forward::check_target(state, &canonical).await?;
        // 10. Idempotency reservation; 11–12 under the lock (released on any failure).
        let Some(key) = key else {
            return self.secret_and_intent(integration, canonical, &injection, target, allowed).await;
        };
        let token = idempotency::reserve(state, &key, canonical.digest()).await?;
        // A request with this key may have completed between the lookup and the lock.
        let recheck = match idempotency::lookup(state, &key, canonical.digest()).await {
            Ok(Lookup::Replay(stored)) => Err(Stop::Done(self.replay(stored).await)),
            Ok(Lookup::Fresh) => Ok(()),
            Err(error) => Err(Stop::Refuse(error)),
        };
        if let Err(stop) = recheck {
            idempotency::release(state, &key, &token).await;
            return Err(stop);
        }
        let held = (key, token);
        match self.secret_and_intent(integration, canonical, &injection, target, allowed).await {
            Ok(mut prepared) => {
                prepared.pending.idempotency = Some(held);
                Ok(prepared)
            }
            Err(stop) => {
                idempotency::release(state, &held.0, &held.1).await;
                Err(stop)
            }
        }
    }

    /// Steps 7–8: the policy decision and its branch; only an allowed request goes on.
    async fn decide(&mut self, canonical: &CanonicalRequest) -> Result<Allowed, Stop> {
        match policy::decide(self.state, canonical).await? {
            PolicyOutcome::Allowed { reason, policy_id, consumed, trace } => {
                let policy = PolicyRef {
                    rule_id: policy_id.as_ref().map(ToString::to_string),
                    rule_type: policy_id.as_ref().map(|_| "allow".to_owned()),
                    approval_id: consumed.as_ref().map(ToString::to_string),
                };
                if let Some(approval_id) = consumed {
                    self.trail.consumed = Some(approval_id.clone());
                    let event = self
                        .event(EventType::ApprovalConsumed)
                        .with_decision(Decision::Allowed)
                        .with_reason_code(reason.as_str())
                        .with_policy(policy.clone());
                    self.record(vec![event]).await.map_err(|e| Stop::Done(Outcome::Refused(e)))?;
                }
                Ok(Allowed { reason: reason.as_str(), policy, trace })
            }
            PolicyOutcome::Denied { code, policy_id, message, trace } => {
                Err(Stop::Done(self.denied(code, policy_id, message, trace).await))
            }
            PolicyOutcome::ApprovalRequired { reason, policy_id, trace } => {
                Err(self.approval_required(canonical, reason, policy_id, trace).await)
            }
            PolicyOutcome::Throttled { retry_after_seconds, policy_ids, trace } => {
                Err(Stop::Done(self.throttled(retry_after_seconds, policy_ids, trace).await))
            }
        }
    }

    /// Steps 11–12: the credential, injected; then the write-ahead `execute` event.
    async fn secret_and_intent(
        &self,
        integration: IntegrationRecord,
        canonical: Arc<CanonicalRequest>,
        injection: &steward_canon::Injection,
        target: ValidatedTarget,
        allowed: Allowed,
    ) -> Result<Prepared, Stop> {
        // 11. Secret, injected into the canonical request; the plaintext is wiped at once.
        let credential = credentials::load(self.state, &integration, &canonical, injection).await?;
        let (outgoing, needles, credential) = credential.inject(&integration, &canonical)?;
        // 12. Write-ahead audit: durable before anything is sent.
        let resolved_ips: Vec<Value> = target.addresses().iter().map(|ip| ip.to_string().into()).collect();
        let mut intent = self
            .event(EventType::Execute)
            .with_decision(Decision::Allowed)
            .with_reason_code(allowed.reason)
            .with_policy(allowed.policy)
            .with_metadata("policy_trace", allowed.trace)
            .with_metadata("validated_ips", resolved_ips.clone().into());
        for (key, value) in credential.audit_metadata() {
            intent = intent.with_metadata(key, value);
        }
        self.record(vec![intent]).await.map_err(|e| Stop::Done(Outcome::Refused(e)))?;
        count("allowed", allowed.reason);
        Ok(Prepared {
            wire: Wire { target, outgoing, needles },
            pending: Pending { integration, canonical, credential, idempotency: None, resolved_ips },
        })
    }

    /// The event of `event_type` with everything known so far.
    fn event(&self, event_type: EventType) -> AuditEvent {
        let base = EventBase {
            state: self.state,
            context: self.context,
            principal: self.principal,
            integration_id: self.trail.integration_id.clone(),
            canonical: self.trail.canonical.as_deref(),
        };
        let mut event = base.event(event_type);
        if self.trail.integration_id.is_none()
            && let Some(requested) = &self.trail.requested_integration
        {
            event = event.with_metadata("requested_integration_id", requested.clone().into());
        }
        if let Some(consumed) = &self.trail.consumed {
            event = event.with_metadata("approval_consumed", consumed.as_str().into());
        }
        if self.mode == Mode::Forward {
            event = event.with_metadata("mode", self.mode.as_str().into());
        }
        for (key, value) in &self.trail.metadata {
            event = event.with_metadata(*key, value.clone());
        }
        event
    }

    /// Appends every event in order; the first failure is the answer (503 `audit_write_failed`).
    async fn record(&self, events: Vec<AuditEvent>) -> Result<(), ApiError> {
        for event in events {
            self.state.audit.append(event).await.map_err(ApiError::from)?;
        }
        Ok(())
    }

    /// Step 6: the stored answer, with an `execute` allowed event marked `replayed`.
    async fn replay(&self, stored: StoredResponse) -> Outcome {
        let event = self
            .event(EventType::Execute)
            .with_decision(Decision::Allowed)
            .with_reason_code("idempotent_replay")
            .with_metadata("replayed", true.into())
            .with_metadata("original_correlation_id", stored.correlation_id.clone().into());
        if let Err(error) = self.record(vec![event]).await {
            return Outcome::Refused(error);
        }
        count("allowed", "idempotent_replay");
        Outcome::Replayed(stored)
    }

    /// Policy denied: `execute` denied (`policy_deny` also writes `violation`).
    async fn denied(
        &self,
        code: ErrorCode,
        policy_id: Option<PolicyId>,
        message: String,
        trace: Value,
    ) -> Outcome {
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
        if let Err(error) = self.record(events).await {
            return Outcome::Refused(error);
        }
        Outcome::Denied(ApiError::new(code, message))
    }

    /// Approval required: the (new or reused) pending approval; approvers are notified of a new one.
    async fn approval_required(
        &self,
        canonical: &CanonicalRequest,
        reason: steward_policy::Reason,
        policy_id: Option<PolicyId>,
        trace: Value,
    ) -> Stop {
        let (approval, created) = match approvals::create_or_reuse(self.state, canonical).await {
            Ok(found) => found,
            Err(error) => return Stop::Refuse(error),
        };
        let policy = PolicyRef {
            rule_id: policy_id.as_ref().map(ToString::to_string),
            rule_type: policy_id.as_ref().map(|_| "approval_required".to_owned()),
            approval_id: Some(approval.approval_id.to_string()),
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
                    .with_metadata("expires_at", json!(approval.expires_at)),
            );
        }
        if let Err(error) = self.record(events).await {
            return Stop::Done(Outcome::Refused(error));
        }
        count("approval_required", reason.as_str());
        if created {
            metrics::counter!("steward_approvals_created_total").increment(1);
            webhook::notify_approval_created(self.state, &approval);
        }
        Stop::Done(Outcome::ApprovalRequired { approval: Box::new(approval), created })
    }

    /// Throttled: `execute` throttled.
    async fn throttled(&self, retry_after_seconds: u64, policy_ids: Vec<PolicyId>, trace: Value) -> Outcome {
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
        if let Err(error) = self.record(vec![event]).await {
            return Outcome::Refused(error);
        }
        Outcome::Throttled { retry_after_seconds }
    }
}

/// Steps 15–16 of a call whose answer outlives the request handler (forward mode), with everything
/// they need owned. [`Finisher::finish`] writes `execute_result` with the same fields and trail as
/// [`Execution::record_result`], then releases what step 10 held.
#[derive(Debug)]
pub struct Finisher {
    state: AppState,
    context: RequestContext,
    principal: MtlsPrincipal,
    mode: Mode,
    trail: Trail,
    pending: Pending,
}

impl Finisher {
    pub async fn finish(self, sent: Sent) {
        let Finisher { state, context, principal, mode, trail, pending } = self;
        let execution = Execution { state: &state, context: &context, principal: &principal, mode, trail };
        execution.record_result(&pending, &sent).await;
        execution.complete(pending, None).await;
    }
}
