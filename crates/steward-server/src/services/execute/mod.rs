//! The execute pipeline of `spec/pipeline.md` as a value ([`Execution`]) whose steps are plain
//! functions returning plain values; the outcome is an [`Outcome`], rendered by each surface in its
//! own shape. One module per stage:
//!
//! - [`input`]: the request as a plain value ([`ExecuteInput`]), independent of the envelope JSON;
//! - [`binding`]: the integration in the caller's tenant and the template it is bound to (steps 3–4);
//! - [`idempotency`]: lookup, reservation, sealed results (steps 6, 10, 16);
//! - [`policy`]: compiled rules, the `once` approval, rate limits and consumption (step 7);
//! - [`forward`]: the SSRF guard, the forwarder and scrubbing (steps 9, 13, 14);
//! - [`cache`]: bounded caches of compiled templates and built scrubbers;
//! - [`run`]: the order and the audit bookkeeping of each outcome ([`Execution`]);
//! - [`outcome`]: [`Outcome`] and its parts.
//!
//! The secret (step 11) is [`crate::services::credentials`]; approvals (step 8) are
//! [`crate::services::approvals`]; the events are built by [`crate::services::audit`].

pub mod binding;
pub mod cache;
pub mod forward;
pub mod idempotency;
pub mod input;
pub mod outcome;
pub mod policy;
pub mod run;

pub use input::{ClientInfo, ExecuteInput, Mode, RequestBody};
pub use outcome::{Executed, Outcome, throttled_error};
pub use run::{Answer, Execution, Finisher, Pending, Prepared, Sent, Step, Wire, count_unidentified_refusal};

use std::sync::Arc;

use steward_egress::{Forwarder, Resolve};

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

#[cfg(test)]
mod tests;
