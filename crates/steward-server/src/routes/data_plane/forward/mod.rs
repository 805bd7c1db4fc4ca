//! Forward mode (`spec/gateway.md` §1): `{METHOD} /v1/forward/{integration_id}/{authority}/{path…}`
//! runs the execute pipeline on the HTTP request's own method, headers and body, and answers with
//! the upstream's own status, filtered headers and body, streamed as it arrives and scrubbed while
//! streaming. Steward's own refusals use the nested error shape SDKs parse ([`error`]).
//!
//! - [`target`]: the integration and the upstream URL, from the raw request target;
//! - [`headers`]: the request headers handed to canonicalization;
//! - [`body`]: the request body, up to `data_plane.max_forward_body_bytes`;
//! - [`jsonrpc`]: the JSON-RPC method and tool name recorded in the `execute` event (MCP);
//! - [`stream`]: the answer's body: scrub → count → forward, and the end report;
//! - [`error`]: the nested error body and the 403 `approval_required`;
//! - [`route`]: the handler: identity, extraction, the execute service's steps 2–12, rendering;
//! - [`answer`]: steps 13–16 with the streaming forwarder: the answer as it arrives.

pub mod answer;
pub mod body;
pub mod error;
pub mod headers;
pub mod jsonrpc;
pub mod route;
pub mod stream;
pub mod target;
