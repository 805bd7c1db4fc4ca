//! `steward-egress` owns the way out of Steward: the [`Resolve`] trait and its hickory resolver, the
//! SSRF classifier ([`classify`]) and guard ([`guard`]) that validate every address of a host before
//! any connection, the [`Forwarder`] that connects only to a validated address (pinned: no second
//! resolution, peer re-checked before TLS, pooled by host, port and address) with verified TLS and the
//! response limits of `pipeline.md` "Forwarding", secret injection ([`apply_injection`]) and the
//! [`Scrubber`] that removes the secret from answers. For forward mode (`gateway.md` §1),
//! [`Forwarder::forward_stream`] returns the head and a [`ResponseBody`] pulled chunk by chunk under
//! [`StreamLimits`], ending with a [`StreamEnd`]; [`StreamScrubber`] scrubs it chunk by chunk and
//! [`UsageMeter`] reads LLM token usage from it (`docs/decisions/0016-streaming-egress.md`).
//!
//! It must not decide *whether* a call is allowed (templates, canonicalization and policy do that
//! upstream of it), must never resolve a name outside [`Resolve`], never open a connection that did
//! not pass the guard, never follow a redirect, never offer a way to disable certificate verification,
//! and never put a secret into an error message, a log line or a `Debug` output.

mod classify;
mod error;
mod forward;
mod guard;
mod inject;
mod pool;
mod resolve;
mod response;
mod scrub;
mod stream;
mod tls;
mod usage;

pub use classify::classify;
pub use error::{EgressError, ResolveError};
pub use forward::{ForwardOutcome, Forwarder, ForwarderSettings, OutgoingRequest};
pub use guard::{ValidatedTarget, guard};
pub use inject::{Injected, Needles, SecretHeaders, apply_injection};
pub use resolve::{HickoryResolve, Resolve, ResolverSettings};
pub use response::is_streaming_media_type;
pub use scrub::{REDACTED, Scrubber, StreamScrubber, encodings};
pub use stream::{BodyChunk, ResponseBody, StreamEnd, StreamLimits, StreamingResponse};
pub use usage::{DEFAULT_USAGE_CAP, Provider, Usage, UsageMeter};
