//! A response body read chunk by chunk as it arrives, under the stream limits of `gateway.md` §1
//! (`egress.max_stream_bytes`, `egress.stream_idle_timeout_ms`, `egress.max_stream_seconds`), and
//! the reason it ended. The buffered forward reads the same body to its end.
//!
//! The connection goes back to the pool only when the body was read to its end; any other end
//! (a limit, an upstream error, or the body dropped early, e.g. because the client left) closes it
//! at once: a half-read HTTP/1.1 connection can never carry another request.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::error::EgressError;
use crate::pool::{Conn, Pool};

/// The limits of one streamed body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Body bytes after which the stream ends with [`StreamEnd::MaxBytes`] (`egress.max_stream_bytes`).
    /// A declared `content-length` above it is refused before the body.
    pub max_bytes: u64,
    /// Longest wait for the next body chunk, from the head or the previous chunk
    /// (`egress.stream_idle_timeout_ms`) → [`StreamEnd::IdleTimeout`].
    pub idle_timeout: Duration,
    /// Longest whole exchange, from the start of the forward to the last chunk
    /// (`egress.max_stream_seconds`) → [`StreamEnd::MaxSeconds`].
    pub max_duration: Duration,
}

impl Default for StreamLimits {
    /// The spec's defaults: 1 GiB, 120 s between chunks, 1800 s in all.
    fn default() -> Self {
        Self {
            max_bytes: 1 << 30,
            idle_timeout: Duration::from_millis(120_000),
            max_duration: Duration::from_secs(1800),
        }
    }
}

/// Why a stream ended: the `end` of the forward-mode `execute_result` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamEnd {
    /// The upstream sent the whole body.
    Complete,
    /// The client went away (decided by the server, which drops the body; never returned here).
    ClientClosed,
    /// The upstream connection failed or was reset before the end of the body.
    UpstreamError,
    /// No chunk within [`StreamLimits::idle_timeout`].
    IdleTimeout,
    /// More than [`StreamLimits::max_bytes`].
    MaxBytes,
    /// The exchange passed [`StreamLimits::max_duration`].
    MaxSeconds,
}

impl StreamEnd {
    /// The spec's name: `complete`, `client_closed`, `upstream_error`, `idle_timeout`, `max_bytes`,
    /// `max_seconds`.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamEnd::Complete => "complete",
            StreamEnd::ClientClosed => "client_closed",
            StreamEnd::UpstreamError => "upstream_error",
            StreamEnd::IdleTimeout => "idle_timeout",
            StreamEnd::MaxBytes => "max_bytes",
            StreamEnd::MaxSeconds => "max_seconds",
        }
    }
}

impl std::fmt::Display for StreamEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`ResponseBody::next_chunk`] yields.
#[derive(Clone, PartialEq, Eq)]
pub enum BodyChunk {
    /// Body bytes, never empty (not scrubbed: feed them to a `StreamScrubber`).
    Data(Bytes),
    /// The body is over; every later call returns the same end.
    End(StreamEnd),
}

impl std::fmt::Debug for BodyChunk {
    // Body bytes are not scrubbed yet: their length only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyChunk::Data(bytes) => write!(f, "Data({} bytes)", bytes.len()),
            BodyChunk::End(end) => write!(f, "End({end})"),
        }
    }
}

/// The head of a streamed answer and its body.
pub struct StreamingResponse {
    pub status: u16,
    /// Filtered like the buffered answer's (lowercase names, upstream order, duplicates kept); not
    /// yet scrubbed.
    pub headers: Vec<(String, String)>,
    /// The peer address the request went to.
    pub resolved_ip: IpAddr,
    /// The upstream's media type (lowercase, without parameters), whether or not `content-type` is
    /// allowlisted: for the stream flag and usage metering, never for messages.
    pub media_type: Option<String>,
    /// Whether the media type is `text/event-stream` or `application/x-ndjson`.
    pub stream: bool,
    /// From the start of the forward to the response head.
    pub head_latency: Duration,
    pub body: ResponseBody,
}

impl std::fmt::Debug for StreamingResponse {
    // Header values are not scrubbed yet and may echo the secret: names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("StreamingResponse")
            .field("status", &self.status)
            .field("header_names", &names)
            .field("resolved_ip", &self.resolved_ip)
            .field("media_type", &self.media_type)
            .field("stream", &self.stream)
            .field("head_latency", &self.head_latency)
            .field("body", &self.body)
            .finish()
    }
}

/// A response body pulled chunk by chunk. Dropping it before its end closes the upstream
/// connection. `Send`: it can be moved into the task that streams it to the client.
#[derive(Debug)]
pub struct ResponseBody {
    incoming: Option<Incoming>,
    /// The connection, until the body ends: back to the pool at a complete end, closed otherwise.
    conn: Option<Conn>,
    pool: Arc<Pool>,
    host: String,
    limits: StreamLimits,
    /// The start of the forward plus `max_duration`.
    deadline: Instant,
    received: u64,
    /// An end already decided while its last bytes are still to be returned (`max_bytes`).
    pending: Option<StreamEnd>,
    end: Option<StreamEnd>,
    upstream_error: Option<String>,
}

impl ResponseBody {
    pub(crate) fn new(
        incoming: Incoming,
        conn: Conn,
        pool: Arc<Pool>,
        limits: StreamLimits,
        started: Instant,
    ) -> Self {
        let host = conn.key.host.clone();
        Self {
            incoming: Some(incoming),
            conn: Some(conn),
            pool,
            host,
            limits,
            deadline: started + limits.max_duration,
            received: 0,
            pending: None,
            end: None,
            upstream_error: None,
        }
    }

    /// The next chunk as it arrives, or how the body ended. Never waits longer than the idle
    /// timeout or past the stream's deadline; never returns more than `max_bytes` in all (the
    /// chunk that passes it is cut at the limit, then the body ends with `max_bytes`).
    pub async fn next_chunk(&mut self) -> BodyChunk {
        if let Some(end) = self.end {
            return BodyChunk::End(end);
        }
        if let Some(end) = self.pending.take() {
            return self.end_with(end);
        }
        let idle_deadline = Instant::now() + self.limits.idle_timeout;
        let (deadline, on_timeout) = if idle_deadline < self.deadline {
            (idle_deadline, StreamEnd::IdleTimeout)
        } else {
            (self.deadline, StreamEnd::MaxSeconds)
        };
        loop {
            let Some(incoming) = self.incoming.as_mut() else {
                return self.end_with(StreamEnd::UpstreamError);
            };
            let frame = match tokio::time::timeout_at(deadline, incoming.frame()).await {
                Err(_) => return self.end_with(on_timeout),
                Ok(None) => return self.end_with(StreamEnd::Complete),
                Ok(Some(Err(e))) => {
                    self.upstream_error = Some(format!("reading the response body: {e}"));
                    return self.end_with(StreamEnd::UpstreamError);
                }
                Ok(Some(Ok(frame))) => frame,
            };
            // Trailers carry no body bytes (and are not forwarded).
            let Ok(data) = frame.into_data() else { continue };
            if data.is_empty() {
                continue;
            }
            let room = self.limits.max_bytes.saturating_sub(self.received);
            if data.len() as u64 > room {
                let room = usize::try_from(room).unwrap_or(usize::MAX);
                self.received += room as u64;
                if room == 0 {
                    return self.end_with(StreamEnd::MaxBytes);
                }
                // Close now; the bytes up to the limit still go out.
                self.close();
                self.pending = Some(StreamEnd::MaxBytes);
                return BodyChunk::Data(data.slice(..room));
            }
            self.received += data.len() as u64;
            return BodyChunk::Data(data);
        }
    }

    /// Body bytes returned so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// How the body ended, once it has.
    pub fn end(&self) -> Option<StreamEnd> {
        self.end
    }

    /// What went wrong when the body ended with [`StreamEnd::UpstreamError`] (names the host,
    /// never a secret), for logs.
    pub fn upstream_error(&self) -> Option<&str> {
        self.upstream_error.as_deref()
    }

    /// Reads the whole body, as the buffered forward does: `max_bytes` becomes
    /// `upstream_response_too_large`, an upstream error `upstream_network_error`, a timeout
    /// `upstream_timeout`.
    pub(crate) async fn collect(mut self) -> Result<Bytes, EgressError> {
        let mut out = BytesMut::new();
        loop {
            match self.next_chunk().await {
                BodyChunk::Data(data) => out.extend_from_slice(&data),
                BodyChunk::End(StreamEnd::Complete) => return Ok(out.freeze()),
                BodyChunk::End(StreamEnd::MaxBytes) => {
                    return Err(EgressError::ResponseTooLarge { limit: self.limits.max_bytes });
                }
                BodyChunk::End(StreamEnd::UpstreamError | StreamEnd::ClientClosed) => {
                    let reason = self.upstream_error.take().unwrap_or_else(|| "the body ended early".into());
                    return Err(EgressError::Network { host: self.host.clone(), reason });
                }
                BodyChunk::End(StreamEnd::IdleTimeout | StreamEnd::MaxSeconds) => {
                    return Err(EgressError::TotalTimeout { host: self.host.clone() });
                }
            }
        }
    }

    fn end_with(&mut self, end: StreamEnd) -> BodyChunk {
        self.end = Some(end);
        self.incoming = None;
        match (end, self.conn.take()) {
            (StreamEnd::Complete, Some(conn)) => self.pool.checkin(conn),
            (_, Some(conn)) => conn.close(),
            (_, None) => {}
        }
        BodyChunk::End(end)
    }

    /// Closes the connection without deciding the end yet.
    fn close(&mut self) {
        self.incoming = None;
        if let Some(conn) = self.conn.take() {
            conn.close();
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // Not read to its end: the connection cannot be reused.
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}
    fn send<T: Send>() {}

    /// Compiled, never run: the future of `next_chunk` is `Send`.
    #[allow(dead_code)]
    fn next_chunk_is_send(body: &mut ResponseBody) {
        assert_send(&body.next_chunk());
    }

    /// The server streams a body from a task of its own: what that task holds must be `Send`.
    #[test]
    fn everything_a_streaming_task_holds_is_send() {
        send::<ResponseBody>();
        send::<StreamingResponse>();
        send::<crate::StreamScrubber>();
        send::<crate::UsageMeter>();
    }

    #[test]
    fn end_names_are_the_specs() {
        let names: Vec<&str> = [
            StreamEnd::Complete,
            StreamEnd::ClientClosed,
            StreamEnd::UpstreamError,
            StreamEnd::IdleTimeout,
            StreamEnd::MaxBytes,
            StreamEnd::MaxSeconds,
        ]
        .iter()
        .map(|e| e.as_str())
        .collect();
        assert_eq!(
            names,
            ["complete", "client_closed", "upstream_error", "idle_timeout", "max_bytes", "max_seconds"]
        );
        let limits = StreamLimits::default();
        assert_eq!(limits.max_bytes, 1_073_741_824);
        assert_eq!(limits.idle_timeout, Duration::from_millis(120_000));
        assert_eq!(limits.max_duration, Duration::from_secs(1800));
    }
}
