//! The steward-server integration tests: one test binary (one link of the server and its
//! dependencies) with one module per area. Shared fixtures are in `common` and in `steward-testkit`.
//! Every test runs in parallel with every other test of this binary, so a test never depends on a
//! fixed port, a shared file or process-global state it does not own (see `common::logs` for the
//! one process-global thing, the log capture).

mod common;

mod admin_api;
mod admin_audit;
mod admin_catalog;
mod admin_governance;
mod admin_identity;
mod approval_rules;
mod certificate_expiry;
mod console_browser;
mod console_http;
mod data_plane_openapi;
mod dpop;
mod enrollment;
mod errors_doc;
mod execute_egress;
mod execute_forwarding;
mod execute_idempotency;
mod execute_policy;
mod forward_mode;
mod gateway_templates;
mod listener_limits;
mod listeners;
mod manifests;
mod oauth2;
mod openapi_snapshot;
mod proxy_protocol;
mod read_cache;
mod sessions;
