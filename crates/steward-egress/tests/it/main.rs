//! The steward-egress integration tests, one test binary with one module per area; the real local
//! servers they talk to (HTTPS upstream, DNS responder) are in `support`. Every upstream and DNS
//! server binds a port of its own, so all tests run in parallel.

mod support;

mod forwarding;
mod pipeline;
mod rebinding;
mod resolver;
mod scrubbing;
mod streaming;
