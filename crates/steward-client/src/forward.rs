//! Forward mode (`spec/gateway.md` §1): `{METHOD} /v1/forward/{integration_id}/{authority}/{path…}?{query}`
//! with the request's own headers and body, the answer streamed back as it arrives. The session goes
//! in `authorization`, a DPoP proof (when the session is bound) in `dpop` with `htu` = the URL
//! without its query.
//!
//! The path and query are sent as given (raw bytes of the caller's request target): this module never
//! decodes or re-encodes them. One caveat of the URL parser underneath (WHATWG): it resolves `.` and
//! `..` segments, so callers that must keep bytes exact refuse such paths first
//! ([`has_dot_segment`]).

use std::pin::Pin;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};

use crate::{BrokerClient, ClientError};

/// A stream of body chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, ClientError>> + Send>>;

/// A request body stream as the caller supplies it.
pub type BodyStream =
    Pin<Box<dyn Stream<Item = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>> + Send>>;

/// Where a forwarded call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardTarget {
    pub integration_id: String,
    /// `host` or `host:port` of the upstream.
    pub authority: String,
    /// The upstream path, raw, starting with `/` (an empty path means `/`).
    pub path: String,
    /// The raw query without `?`, if any.
    pub query: Option<String>,
}

impl ForwardTarget {
    /// The broker path (no query): `/v1/forward/{integration_id}/{authority}{path}`.
    pub fn broker_path(&self) -> String {
        let path = if self.path.is_empty() { "/" } else { self.path.as_str() };
        format!("/v1/forward/{}/{}{path}", self.integration_id, self.authority)
    }
}

/// The body of a forwarded request.
pub enum ForwardBody {
    Empty,
    /// A complete body: the request can be sent again (session retry, approval wait).
    Full(Bytes),
    /// A body streamed as it arrives: sent once.
    Stream(BodyStream),
}

impl std::fmt::Debug for ForwardBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForwardBody::Empty => f.write_str("Empty"),
            ForwardBody::Full(bytes) => write!(f, "Full({} bytes)", bytes.len()),
            ForwardBody::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// The broker's answer: status and headers now, the body as it arrives.
pub struct ForwardResponse {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: ByteStream,
}

impl std::fmt::Debug for ForwardResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish()
    }
}

impl ForwardResponse {
    /// The `steward-error` header: set on Steward's own refusals, never on upstream answers.
    pub fn steward_error(&self) -> Option<&str> {
        self.headers.get("steward-error").and_then(|v| v.to_str().ok())
    }

    /// Reads the whole body, refusing more than `limit` bytes (for small answers such as refusals).
    pub async fn collect(
        mut self,
        limit: usize,
    ) -> Result<(http::StatusCode, http::HeaderMap, Bytes), ClientError> {
        let mut body = Vec::new();
        while let Some(chunk) = self.body.next().await {
            let chunk = chunk?;
            if body.len() + chunk.len() > limit {
                return Err(ClientError::Protocol(format!("answer body larger than {limit} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((self.status, self.headers, Bytes::from(body)))
    }
}

/// Whether a raw path has a `.` or `..` segment (also percent-encoded): the URL parser would resolve
/// it, so it could not be forwarded byte for byte.
pub fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let lowered = segment.to_ascii_lowercase().replace("%2e", ".");
        lowered == "." || lowered == ".."
    })
}

impl BrokerClient {
    /// Sends one request in forward mode. `headers` are passed as given: the caller removes what
    /// must not travel (its own credentials, hop-by-hop headers); this adds `authorization` and,
    /// for a bound session, `dpop`. A transport failure is [`ClientError::Transport`]; any HTTP
    /// answer, Steward's refusals included, is a [`ForwardResponse`].
    pub async fn forward(
        &self,
        method: http::Method,
        target: &ForwardTarget,
        headers: http::HeaderMap,
        body: ForwardBody,
    ) -> Result<ForwardResponse, ClientError> {
        let path = target.broker_path();
        let mut request =
            self.authorized_on(&self.stream_http, method, &path, target.query.as_deref()).await?;
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        request = match body {
            ForwardBody::Empty => request,
            ForwardBody::Full(bytes) => request.body(bytes),
            ForwardBody::Stream(stream) => request.body(reqwest::Body::wrap_stream(stream)),
        };
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes_stream().map_err(ClientError::from).boxed();
        Ok(ForwardResponse { status, headers, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_paths_keep_the_raw_bytes() {
        let target = ForwardTarget {
            integration_id: "i_1".into(),
            authority: "api.example.test:8443".into(),
            path: "/v1/a%2Fb/c%20d".into(),
            query: Some("x=%41&y".into()),
        };
        assert_eq!(target.broker_path(), "/v1/forward/i_1/api.example.test:8443/v1/a%2Fb/c%20d");
        let root = ForwardTarget { path: String::new(), ..target };
        assert_eq!(root.broker_path(), "/v1/forward/i_1/api.example.test:8443/");
    }

    #[test]
    fn dot_segments_are_detected_also_encoded() {
        for path in ["/a/../b", "/./x", "/a/%2E%2e/b", "/a/%2e", "/.."] {
            assert!(has_dot_segment(path), "{path}");
        }
        for path in ["/a/b", "/a/.b", "/a/..b/", "/v1/chat/completions", "/"] {
            assert!(!has_dot_segment(path), "{path}");
        }
    }
}
