//! The execute request as a plain value: what every surface hands the pipeline. The envelope route
//! builds it from the `POST /v1/execute` JSON (body in base64); forward mode builds it from the HTTP
//! request itself (the real method, a URL from the raw request target, the request's own headers and
//! body bytes).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use steward_canon::{HeaderField, Method};

/// Which surface the request came in through; recorded in the audit metadata (`mode`) of forward
/// requests (`spec/gateway.md` §1). Execute-mode events carry no `mode` (as before forward mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `POST /v1/execute`.
    Execute,
    /// `/v1/forward/…`.
    Forward,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Execute => "execute",
            Mode::Forward => "forward",
        }
    }
}

/// The request body as received.
#[derive(Debug, Clone, Default)]
pub enum RequestBody {
    /// No body.
    #[default]
    Empty,
    /// The envelope's `body_base64`, still encoded: a non-canonical encoding is refused by
    /// canonicalization (`request_body_base64_invalid`, step 5), not by the surface.
    Base64(String),
    /// Raw bytes (forward mode).
    Bytes(Bytes),
}

/// The caller's own context (`client_context` of the envelope; forward mode has none).
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The workload's own request id.
    pub request_id: Option<String>,
    /// Free text: what made the call.
    pub source: Option<String>,
}

/// One request for the pipeline.
#[derive(Debug, Clone)]
pub struct ExecuteInput {
    /// The integration whose secret the call needs (`i_…`), as the caller named it.
    pub integration_id: String,
    pub method: Method,
    /// The absolute target URL, exactly as received (canonicalization parses it).
    pub url: String,
    /// The request headers as received, in order, duplicates kept.
    pub headers: Vec<HeaderField>,
    pub body: RequestBody,
    pub client: ClientInfo,
    /// `^[A-Za-z0-9._:-]{1,128}$` (checked by the pipeline: `idempotency_key_invalid`). Forward mode
    /// passes `None`: it never stores or replays.
    pub idempotency_key: Option<String>,
    pub mode: Mode,
}

impl RequestBody {
    /// The canonicalizer's form. Raw bytes are encoded here: the canonicalizer takes the envelope
    /// form (a bytes entry point in `steward-canon` would save this copy for forward mode).
    pub(crate) fn into_base64(self) -> Option<String> {
        match self {
            RequestBody::Empty => None,
            RequestBody::Base64(encoded) => Some(encoded),
            RequestBody::Bytes(bytes) => Some(STANDARD.encode(bytes)),
        }
    }
}
