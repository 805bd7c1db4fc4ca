//! The MCP server handler: `tools/list` from the current catalog, `tools/call` through
//! `BrokerClient::execute`, approvals (optionally waited for, with progress notifications), and
//! `notifications/tools/list_changed` when the manifest poller swaps the catalog — on the session
//! (handshake-era clients) or on a `subscriptions/listen` stream (2026-07-28 clients).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ProgressToken, ProtocolVersion, ServerCapabilities,
    ServerConfig, SubscriptionFilter, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use steward_client::{ApprovalSummary, BrokerClient, ClientError, ExecuteOutcome, ExecuteRequest};
use tokio::sync::watch;

use super::call;
use super::catalog::Catalog;
use super::log;

/// How often a waited-for approval is polled (and progress reported).
const APPROVAL_POLL: Duration = Duration::from_secs(1);

/// What every session shares: the broker client and the current catalog.
#[derive(Debug)]
pub struct Shared {
    pub client: BrokerClient,
    pub catalog: watch::Sender<Arc<Catalog>>,
    /// `--approval-wait` (zero: explain the approval instead of waiting).
    pub approval_wait: Duration,
}

/// One MCP session's handler (cheap to clone; the HTTP transport makes one per session).
#[derive(Debug, Clone)]
pub struct StewardMcp {
    shared: Arc<Shared>,
}

impl StewardMcp {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// One execute, retried once with a new session after `session_invalid` (an expired or
    /// revoked session the cache did not know about).
    async fn execute(&self, request: &ExecuteRequest) -> Result<ExecuteOutcome, ClientError> {
        match self.shared.client.execute(request).await {
            Err(error) if error.code() == Some("session_invalid") => {
                self.shared.client.reset_session().await;
                self.shared.client.execute(request).await
            }
            other => other,
        }
    }

    async fn call(
        &self,
        name: &str,
        params: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let entry = self.shared.catalog.borrow().tools.get(name).cloned();
        let Some(entry) = entry else {
            return call::error_text(format!(
                "tool_not_found: no tool named {name:?} (the workload's manifest may have changed; list the tools again)"
            ));
        };
        let request = match call::build_request(&entry, params.arguments.as_ref()) {
            Ok(request) => request,
            Err(message) => return call::error_text(format!("invalid_arguments: {message}")),
        };
        log::event(
            "tool_call",
            &[
                ("tool", name),
                ("method", &request.request.method),
                ("integration", &entry.target.integration_name),
            ],
        );
        match self.execute(&request).await {
            Ok(ExecuteOutcome::Executed(response)) => call::executed_result(&response),
            Ok(ExecuteOutcome::ApprovalRequired { approval_id, expires_at, summary, .. }) => {
                self.approval(&request, &approval_id, &expires_at, &summary, context).await
            }
            Err(error) => {
                log::event(
                    "tool_refused",
                    &[("tool", name), ("error", error.code().unwrap_or("client_error"))],
                );
                call::refusal_result(&error)
            }
        }
    }

    /// A call that needs approval: explained at once, or waited for up to `--approval-wait` and
    /// then made again (the broker matches the repeated call to the approval by its digest).
    async fn approval(
        &self,
        request: &ExecuteRequest,
        approval_id: &str,
        expires_at: &str,
        summary: &ApprovalSummary,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let wait = self.shared.approval_wait;
        let command = call::approve_command(approval_id);
        log::event("approval_required", &[("approval_id", approval_id), ("approve_with", &command)]);
        if wait.is_zero() {
            return call::approval_result(approval_id, expires_at, summary, "pending", None);
        }
        let progress_token = context.meta.get_progress_token();
        let started = tokio::time::Instant::now();
        let deadline = started + wait;
        loop {
            let status = match self.shared.client.approval(approval_id).await {
                Ok(status) => status,
                Err(error) => return call::refusal_result(&error),
            };
            match status.status.as_str() {
                "approved" => {
                    log::event("approval_approved", &[("approval_id", approval_id)]);
                    return match self.execute(request).await {
                        Ok(ExecuteOutcome::Executed(response)) => call::executed_result(&response),
                        Ok(ExecuteOutcome::ApprovalRequired { approval_id, expires_at, summary, .. }) => {
                            call::approval_result(&approval_id, &expires_at, &summary, "pending", None)
                        }
                        Err(error) => call::refusal_result(&error),
                    };
                }
                "pending" => {}
                other => return call::approval_result(approval_id, expires_at, summary, other, None),
            }
            let now = tokio::time::Instant::now();
            if now >= deadline || context.ct.is_cancelled() {
                return call::approval_result(
                    approval_id,
                    expires_at,
                    summary,
                    "pending",
                    Some(wait.as_secs()),
                );
            }
            if let Some(token) = &progress_token {
                self.progress(context, token, (now - started).as_secs_f64(), wait.as_secs_f64(), &command)
                    .await;
            }
            tokio::select! {
                () = tokio::time::sleep(APPROVAL_POLL.min(deadline - now)) => {}
                () = context.ct.cancelled() => {}
            }
        }
    }

    async fn progress(
        &self,
        context: &RequestContext<RoleServer>,
        token: &ProgressToken,
        progress: f64,
        total: f64,
        command: &str,
    ) {
        let message = format!("waiting for a human approval; an administrator approves it with: {command}");
        let param =
            ProgressNotificationParam::new(token.clone(), progress).with_total(total).with_message(message);
        // A client that went away is noticed by the request's cancellation; nothing to do here.
        let _ = context.peer.notify_progress(param).await;
    }
}

impl ServerHandler for StewardMcp {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder().enable_tools().enable_tool_list_changed().build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("steward-mcp", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Each tool calls one provider API through Steward, which adds the credentials and \
                 enforces the workload's policy. A refused call returns an error text starting with \
                 Steward's error code; a call that needs human approval says how to approve it.",
            )
    }

    /// Every revision rmcp implements: the handshake-era ones current clients negotiate (up to
    /// 2025-11-25) and the stateless 2026-07-28 one.
    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.shared.catalog.borrow().list()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.shared.catalog.borrow().tools.get(name).map(|entry| entry.tool.clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        Ok(self.call(&name, &request, &context).await.into())
    }

    /// Handshake-era sessions: `notifications/tools/list_changed` on the session whenever the
    /// catalog changes, until the client is gone.
    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let mut changes = self.shared.catalog.subscribe();
        changes.mark_unchanged();
        let peer = context.peer;
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                if peer.is_transport_closed() || peer.notify_tool_list_changed().await.is_err() {
                    break;
                }
            }
        });
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }

    /// 2026-07-28 clients: the same notification on their `subscriptions/listen` stream.
    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let mut changes = self.shared.catalog.subscribe();
        changes.mark_unchanged();
        loop {
            tokio::select! {
                () = context.cancelled() => return Ok(()),
                changed = changes.changed() => {
                    if changed.is_err() || context.sink().notify_tool_list_changed().await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}
