//! The service layer: what every surface (the execute route, the admin API, the console, and
//! forward mode next) calls. Each service takes the shared handles ([`AppState`]: store, keyring,
//! coordinator, clock, config, caches, egress) and plain values, and returns typed results; the
//! surfaces extract their input, call one service and render the outcome in their own shape.
//!
//! - [`identity`]: the mTLS principal, the IP allowlist, enrollment, sessions, DPoP, admin tokens
//!   and roles;
//! - [`credentials`]: envelope contexts, seal/open, the integration [`credentials::Credential`]
//!   (injection, scrub needles, OAuth2 tokens and the upstream-401 rule);
//! - [`approvals`]: create or reuse a pending approval, its summary and preview, webhook notification;
//! - [`audit`]: event builders and the one rule "is this refusal audited?" ([`audit::is_decision`]);
//! - [`execute`]: the execute pipeline of `spec/pipeline.md` as a value ([`execute::Execution`]),
//!   returning an [`execute::Outcome`];
//! - [`keys`]: the active manifest signing key and its rotation; [`policies`]: a rule as the store
//!   keeps it; [`state`]: the shared handles.
//!
//! Rule (checked by `tests::services_import_no_surface`): nothing here imports `crate::routes` or
//! `crate::console`.

pub mod approvals;
pub mod audit;
pub mod credentials;
pub mod execute;
pub mod identity;
pub mod keys;
pub mod policies;
pub mod state;

pub use state::{AppState, AppStateInner};

#[cfg(test)]
mod tests;
