//! The body of a forwarded answer (`spec/gateway.md` §1, "Response" and "Streaming scrubbing"): the
//! upstream body handed to the client **as it arrives** — each upstream chunk is scrubbed (only the
//! tail that could still become a needle is held back, until the next chunk or the end decides it),
//! counted and sent at once — and, when the body ends for whatever reason, one [`StreamSummary`]
//! given to the caller's callback (which writes `execute_result`).
//!
//! How a body ends:
//! - the source ends → the held-back tail goes out, then the end: `complete`;
//! - the source fails with a reason (`upstream_error`, `idle_timeout`, `max_bytes`, `max_seconds`;
//!   the limits are the source's business) → the held-back tail is dropped (it may be the start of a
//!   secret) and the body fails, so the server closes the connection instead of ending the body
//!   cleanly: the client can tell a cut answer from a complete one;
//! - the body is dropped before either (the client went away, or the server stopped sending) →
//!   `client_closed`, reported from `Drop`.
//!
//! The callback runs exactly once, synchronously, in `poll_frame` or in `drop`: it must not block
//! (spawn the audit write).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::Stream;
use hyper::body::{Body, Frame, SizeHint};
use serde_json::Value;
use steward_egress::{StreamScrubber, UsageMeter};

/// Why a forwarded body ended: `execute_result.metadata.end` (the egress stream's own reasons, plus
/// `client_closed`, which only the server side can tell).
pub use steward_egress::StreamEnd;

/// The error a cut body reports to the server (which then closes the connection).
#[derive(Debug, thiserror::Error)]
#[error("the forwarded answer was cut: {end}")]
pub struct StreamCut {
    pub end: StreamEnd,
}

/// Turns upstream chunks into client chunks: the streaming scrubber.
pub trait ChunkFilter: Send + 'static {
    /// What of `chunk` (after what was held back before it) can go to the client now.
    fn push(&mut self, chunk: &[u8]) -> Bytes;
    /// What was still held back, once the body is complete.
    fn finish(&mut self) -> Bytes;
    /// Whether anything was redacted so far.
    fn redacted(&self) -> bool;
}

/// Reads what the answer says about itself as it passes (usage metering); sees the upstream bytes.
pub trait ChunkObserver: Send + 'static {
    fn observe(&mut self, chunk: &[u8]);
    /// What it learned (e.g. `{"input_tokens","output_tokens"}`), when the body has ended.
    fn summary(&mut self) -> Option<Value>;
}

/// The streaming scrubber is the filter of every forwarded body.
impl ChunkFilter for StreamScrubber {
    fn push(&mut self, chunk: &[u8]) -> Bytes {
        StreamScrubber::push(self, chunk)
    }
    fn finish(&mut self) -> Bytes {
        StreamScrubber::finish(self)
    }
    fn redacted(&self) -> bool {
        StreamScrubber::redacted(self)
    }
}

/// The usage meter observes the bodies of `openai` and `anthropic` integrations.
impl ChunkObserver for UsageMeter {
    fn observe(&mut self, chunk: &[u8]) {
        self.push(chunk);
    }
    fn summary(&mut self) -> Option<Value> {
        self.finish().map(|usage| usage.to_json())
    }
}

/// How a forwarded body went, given to the callback once.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSummary {
    pub end: StreamEnd,
    /// Bytes handed to the client (after scrubbing).
    pub response_bytes: u64,
    /// From the start of the upstream call to the first body byte handed to the client (for an
    /// empty body: to the end).
    pub ttfb: Duration,
    /// From the start of the upstream call to the end of the body.
    pub latency: Duration,
    /// Whether the scrubber redacted anything.
    pub scrubbed: bool,
    /// The observer's summary (usage), if any.
    pub usage: Option<Value>,
}

type Source = Pin<Box<dyn Stream<Item = Result<Bytes, StreamEnd>> + Send>>;
type OnEnd = Box<dyn FnOnce(StreamSummary) + Send>;

/// A forwarded answer's body. See the module documentation.
pub struct ForwardedBody {
    source: Source,
    filter: Box<dyn ChunkFilter>,
    observer: Option<Box<dyn ChunkObserver>>,
    started: Instant,
    ttfb: Option<Duration>,
    response_bytes: u64,
    /// `Some` until the end is reported.
    on_end: Option<OnEnd>,
    /// The source is done; the next poll ends the body.
    drained: bool,
}

impl std::fmt::Debug for ForwardedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardedBody")
            .field("response_bytes", &self.response_bytes)
            .field("ended", &self.on_end.is_none())
            .finish_non_exhaustive()
    }
}

impl ForwardedBody {
    /// `source` yields upstream chunks, then ends (`complete`) or fails with the reason it was cut
    /// (never `Complete` or `ClientClosed`). `started` is when the upstream call began.
    pub fn new<S>(
        source: S,
        filter: Box<dyn ChunkFilter>,
        started: Instant,
        on_end: impl FnOnce(StreamSummary) + Send + 'static,
    ) -> Self
    where
        S: Stream<Item = Result<Bytes, StreamEnd>> + Send + 'static,
    {
        metrics::gauge!("steward_forward_streams_open").increment(1.0);
        Self {
            source: Box::pin(source),
            filter,
            observer: None,
            started,
            ttfb: None,
            response_bytes: 0,
            on_end: Some(Box::new(on_end)),
            drained: false,
        }
    }

    /// Adds an observer of the upstream bytes (usage metering).
    pub fn with_observer(mut self, observer: Box<dyn ChunkObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Counts `chunk` as handed to the client.
    fn hand_out(&mut self, chunk: Bytes) -> Frame<Bytes> {
        if self.ttfb.is_none() {
            let ttfb = self.started.elapsed();
            metrics::histogram!("steward_forward_ttfb_seconds").record(ttfb.as_secs_f64());
            self.ttfb = Some(ttfb);
        }
        self.response_bytes += chunk.len() as u64;
        metrics::counter!("steward_forward_stream_bytes_total").increment(chunk.len() as u64);
        Frame::data(chunk)
    }

    /// Reports the end, once.
    fn end(&mut self, end: StreamEnd) {
        let Some(on_end) = self.on_end.take() else { return };
        let latency = self.started.elapsed();
        metrics::gauge!("steward_forward_streams_open").decrement(1.0);
        metrics::counter!("steward_forward_stream_ends_total", "end" => end.as_str()).increment(1);
        let summary = StreamSummary {
            end,
            response_bytes: self.response_bytes,
            ttfb: self.ttfb.unwrap_or(latency),
            latency,
            scrubbed: self.filter.redacted(),
            usage: self.observer.as_mut().and_then(|o| o.summary()),
        };
        on_end(summary);
    }
}

impl Body for ForwardedBody {
    type Data = Bytes;
    type Error = StreamCut;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamCut>>> {
        let this = &mut *self;
        loop {
            if this.drained {
                this.end(StreamEnd::Complete);
                return Poll::Ready(None);
            }
            match this.source.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    if let Some(observer) = this.observer.as_mut() {
                        observer.observe(&chunk);
                    }
                    let out = this.filter.push(&chunk);
                    // All of it held back (or an empty chunk): wait for the next one.
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(this.hand_out(out))));
                    }
                }
                Poll::Ready(Some(Err(end))) => {
                    // The held-back tail is dropped with the filter: it may begin a secret.
                    this.end(end);
                    return Poll::Ready(Some(Err(StreamCut { end })));
                }
                Poll::Ready(None) => {
                    this.drained = true;
                    let tail = this.filter.finish();
                    if !tail.is_empty() {
                        let frame = this.hand_out(tail);
                        // The last byte is handed out now: that is the end.
                        this.end(StreamEnd::Complete);
                        return Poll::Ready(Some(Ok(frame)));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.drained && self.on_end.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for ForwardedBody {
    fn drop(&mut self) {
        if self.on_end.is_some() && self.upstream_already_ended() {
            // A client may close as soon as it has what it wanted (an MCP client after its JSON-RPC
            // answer, before the chunked terminator): when the upstream had already finished and
            // nothing was held back, every byte reached the client, and that is a complete answer.
            self.end(StreamEnd::Complete);
        } else {
            self.end(StreamEnd::ClientClosed);
        }
    }
}

impl ForwardedBody {
    /// Whether the upstream body has ended (already known, or ready without waiting) with nothing
    /// held back by the scrubber — i.e. the client has received every byte there was.
    fn upstream_already_ended(&mut self) -> bool {
        if !self.drained {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            match self.source.as_mut().poll_next(&mut cx) {
                Poll::Ready(None) => self.drained = true,
                _ => return false,
            }
        }
        self.filter.finish().is_empty()
    }
}

#[cfg(test)]
mod tests;
