//! What evaluation looks at: the descriptor fields a rule can match on, the decoded body, the
//! group's approval mode and the server's `once`-approval lookup. Everything is borrowed, so building
//! an input costs nothing.

use steward_canon::{ApprovalMode, CanonicalRequest, Method};
use steward_types::{ApprovalId, IntegrationId, TenantId, WorkloadId};

/// One request as policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct EvaluationInput<'a> {
    pub tenant_id: &'a TenantId,
    pub workload_id: &'a WorkloadId,
    pub integration_id: &'a IntegrationId,
    pub template_id: &'a str,
    pub template_version: u64,
    pub action_group: &'a str,
    pub method: Method,
    /// The canonical host (lowercase; IPv6 literals in brackets, RFC 5952).
    pub host: &'a str,
    /// The request's query keys, compared as a set (the descriptor's are distinct and sorted); empty
    /// for a request without a query.
    pub query_keys: &'a [String],
    /// The decoded request body (empty without one).
    pub body: &'a [u8],
    /// The matched path group's `approval_mode`.
    pub approval_mode: ApprovalMode,
    /// An approved, unexpired, unconsumed `once` approval for this exact descriptor digest, as the
    /// server found it in its store. The server consumes it only after the rate limits pass.
    pub approved_once: Option<&'a ApprovalId>,
}

impl<'a> EvaluationInput<'a> {
    /// The input for a canonical request: its descriptor, host, body and group.
    pub fn from_canonical(request: &'a CanonicalRequest, approved_once: Option<&'a ApprovalId>) -> Self {
        let d = request.descriptor();
        EvaluationInput {
            tenant_id: d.tenant_id(),
            workload_id: d.workload_id(),
            integration_id: d.integration_id(),
            template_id: d.template_id(),
            template_version: d.template_version(),
            action_group: d.action_group(),
            method: d.method(),
            host: request.host(),
            query_keys: d.query_keys(),
            body: request.body(),
            approval_mode: request.group().approval_mode(),
            approved_once,
        }
    }
}
