//! The execute pipeline of `spec/pipeline.md`, one module per stage. The route
//! (`routes/data_plane/execute.rs`) runs the stages in the spec's order; each stage returns an
//! [`ApiError`](crate::http::ApiError) with the exact spec code when it refuses, and the route writes
//! the audit events of that outcome (the table at the end of `pipeline.md`).
//!
//! - [`binding`]: the integration in the caller's tenant and the template it is bound to (steps 3–4);
//! - [`idempotency`]: lookup, reservation, sealed results and replay (steps 6, 10, 16);
//! - [`policy`]: compiled rules, the `once` approval, rate limits and consumption (step 7);
//! - [`approvals`]: the pending approval of an `approval_required` decision (step 8);
//! - [`secret`]: the integration secret, host binding and decryption (step 11);
//! - [`forward`]: the SSRF guard, the forwarder and scrubbing (steps 9, 13, 14);
//! - [`audit`]: the events and the descriptor as stored (`hmac:<hex>` values);
//! - [`cache`]: bounded caches of compiled templates and built scrubbers.

pub mod approvals;
pub mod audit;
pub mod binding;
pub mod cache;
pub mod forward;
pub mod idempotency;
pub mod policy;
pub mod secret;

use std::sync::Arc;

use steward_egress::{Forwarder, Resolve};

pub use audit::AuditHmac;

/// The way out of the process: one resolver and one forwarder (with its connection pool), built at
/// start-up from `egress.*` and shared by every request.
pub struct Egress {
    pub resolver: Arc<dyn Resolve>,
    pub forwarder: Forwarder,
}

impl Egress {
    pub fn new(resolver: Arc<dyn Resolve>, forwarder: Forwarder) -> Self {
        Self { resolver, forwarder }
    }
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress").field("forwarder", &self.forwarder).finish_non_exhaustive()
    }
}
