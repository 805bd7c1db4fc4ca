//! What one connection is doing, for the listener's header and idle timeouts.
//!
//! [`Tracked`] wraps the connection's (decrypted) byte stream and tells [`Activity`] when a request
//! head starts arriving: over HTTP/1.1 the first byte read while no request is in flight; over HTTP/2
//! a `HEADERS` frame, until the frame that carries `END_HEADERS` has been read whole (a light frame
//! reader that only follows frame boundaries). The per-connection service tells it when a request
//! head is complete (the service is called) and when the request is over (its response body is
//! dropped). [`Activity::expired`] resolves when a limit is over:
//!
//! - **header**: the first request head is not complete `header_read_timeout` after accept, or a later
//!   head (HTTP/2: a header block) started more than `header_read_timeout` ago and is not complete;
//! - **idle**: no request has been in flight for `idle_timeout` (HTTP/1.1: and no byte of a next head
//!   arrived). HTTP/2 control frames (PING, SETTINGS, WINDOW_UPDATE) do not count as activity.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The HTTP/2 connection preface (RFC 9113 §3.4), which is also how the server tells HTTP/2 from
/// HTTP/1.1 on a connection.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const H2_FRAME_HEADER: usize = 9;
const H2_HEADERS: u8 = 0x1;
const H2_PUSH_PROMISE: u8 = 0x5;
const H2_CONTINUATION: u8 = 0x9;
const H2_END_HEADERS: u8 = 0x4;

const PROTOCOL_UNKNOWN: u8 = 0;
const PROTOCOL_H1: u8 = 1;
const PROTOCOL_H2: u8 = 2;

/// Which limit ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A request head (or the TLS handshake before the first one) took too long: close at once.
    Header,
    /// No request in flight for the idle timeout: close gracefully (HTTP/2: GOAWAY). After a graceful
    /// close was asked for, the connection's last chance is over: close at once.
    Idle,
}

/// The two timeouts of a listener.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header: Duration,
    pub idle: Duration,
}

/// One connection's activity, shared by its byte stream, its service and its watchdog.
#[derive(Debug)]
pub struct Activity {
    accepted: Instant,
    protocol: AtomicU8,
    /// Request heads completed.
    requests: AtomicU64,
    /// Requests whose head is complete and whose response body is not yet dropped.
    in_flight: AtomicUsize,
    /// When the connection last had no request in flight (ms since accept).
    idle_since: AtomicU64,
    /// When the head (HTTP/2: header block) being received started (ms since accept, plus one); 0: none.
    head_since: AtomicU64,
    /// Wakes the watchdog when a deadline may have moved earlier.
    changed: Notify,
}

impl Activity {
    pub fn new(accepted: Instant) -> Arc<Self> {
        Arc::new(Self {
            accepted,
            protocol: AtomicU8::new(PROTOCOL_UNKNOWN),
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            changed: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(Instant::now().saturating_duration_since(self.accepted).as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> Instant {
        self.accepted + Duration::from_millis(ms)
    }

    fn is_h2(&self) -> bool {
        self.protocol.load(Ordering::Acquire) == PROTOCOL_H2
    }

    /// HTTP/1.1 bytes arrived: with no request in flight they are the start of the next head.
    fn h1_bytes(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self
                .head_since
                .compare_exchange(0, self.now_ms().saturating_add(1), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.changed.notify_one();
        }
    }

    /// An HTTP/2 header block started (a no-op while one is already in progress).
    fn header_block_started(&self) {
        if self
            .head_since
            .compare_exchange(0, self.now_ms().saturating_add(1), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.changed.notify_one();
        }
    }

    /// An HTTP/2 header block is complete: its stream opens now, so the connection is not idle.
    fn header_block_ended(&self) {
        self.idle_since.store(self.now_ms(), Ordering::Release);
        self.head_since.store(0, Ordering::Release);
    }

    /// A request head is complete: the request is in flight until the returned guard is dropped.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        if !self.is_h2() {
            self.head_since.store(0, Ordering::Release);
        }
        InFlight(Arc::clone(self))
    }

    fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since.store(self.now_ms(), Ordering::Release);
            if !self.is_h2() {
                self.head_since.store(0, Ordering::Release);
            }
            self.changed.notify_one();
        }
    }

    /// The earliest deadline that applies now, if any. `closing`: when a graceful close was asked for.
    pub fn deadline(&self, timeouts: Timeouts, closing: Option<Instant>) -> Option<(Instant, Expiry)> {
        let mut next: Option<(Instant, Expiry)> = None;
        let mut consider = |when: Instant, why: Expiry| {
            if next.is_none_or(|(earliest, _)| when < earliest) {
                next = Some((when, why));
            }
        };
        let head = self.head_since.load(Ordering::Acquire);
        if self.requests.load(Ordering::Acquire) == 0 {
            consider(self.accepted + timeouts.header, Expiry::Header);
        }
        if head != 0 {
            consider(self.at(head - 1) + timeouts.header, Expiry::Header);
        }
        // HTTP/1.1: a head that started arriving is bounded by the header timeout alone.
        if self.in_flight.load(Ordering::Acquire) == 0 && (head == 0 || self.is_h2()) {
            let since = self.at(self.idle_since.load(Ordering::Acquire));
            match closing {
                None => consider(since + timeouts.idle, Expiry::Idle),
                // A graceful close was asked for and nothing is in flight: allow one header timeout
                // for it (an HTTP/2 client acknowledging GOAWAY), then close at once.
                Some(closing) => consider(closing.max(since) + timeouts.header, Expiry::Idle),
            }
        }
        next
    }

    /// Resolves when a limit is over (never while only in-flight requests are open).
    pub async fn expired(&self, timeouts: Timeouts, closing: Option<Instant>) -> Expiry {
        loop {
            let changed = self.changed.notified();
            match self.deadline(timeouts, closing) {
                Some((at, why)) if at <= Instant::now() => return why,
                Some((at, _)) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// A request in flight; dropping it (with the response body, or the abandoned service future) ends it.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// Follows the bytes a connection reads: which protocol it speaks and, for HTTP/2, where header
/// blocks start and end. Never buffers more than one frame header.
#[derive(Debug)]
pub struct Framing {
    state: FramingState,
}

#[derive(Debug)]
enum FramingState {
    /// Comparing the first bytes with the HTTP/2 preface, as the server's protocol detection does.
    Detect {
        matched: usize,
    },
    Http1,
    Http2 {
        header: [u8; H2_FRAME_HEADER],
        have: usize,
        /// Payload bytes of the current frame still to come.
        remaining: usize,
        /// The current frame carries `END_HEADERS` of a header block.
        ends_block: bool,
    },
}

impl Default for Framing {
    fn default() -> Self {
        Self { state: FramingState::Detect { matched: 0 } }
    }
}

impl Framing {
    /// Notes `bytes`, the next bytes read from the connection.
    pub fn feed(&mut self, mut bytes: &[u8], activity: &Activity) {
        while !bytes.is_empty() {
            match &mut self.state {
                FramingState::Detect { matched } => {
                    let take = bytes.len().min(H2_PREFACE.len() - *matched);
                    if bytes[..take] != H2_PREFACE[*matched..*matched + take] {
                        activity.protocol.store(PROTOCOL_H1, Ordering::Release);
                        self.state = FramingState::Http1;
                        continue;
                    }
                    *matched += take;
                    bytes = &bytes[take..];
                    if *matched == H2_PREFACE.len() {
                        activity.protocol.store(PROTOCOL_H2, Ordering::Release);
                        self.state = FramingState::Http2 {
                            header: [0; H2_FRAME_HEADER],
                            have: 0,
                            remaining: 0,
                            ends_block: false,
                        };
                    } else {
                        // Possibly the preface, possibly an HTTP/1.1 head: a head either way.
                        activity.h1_bytes();
                    }
                }
                FramingState::Http1 => {
                    activity.h1_bytes();
                    return;
                }
                FramingState::Http2 { header, have, remaining, ends_block } => {
                    if *remaining > 0 {
                        let take = bytes.len().min(*remaining);
                        *remaining -= take;
                        bytes = &bytes[take..];
                        if *remaining == 0 && *ends_block {
                            *ends_block = false;
                            activity.header_block_ended();
                        }
                        continue;
                    }
                    let take = bytes.len().min(H2_FRAME_HEADER - *have);
                    header[*have..*have + take].copy_from_slice(&bytes[..take]);
                    *have += take;
                    bytes = &bytes[take..];
                    if *have < H2_FRAME_HEADER {
                        continue;
                    }
                    *have = 0;
                    let length = (usize::from(header[0]) << 16)
                        | (usize::from(header[1]) << 8)
                        | usize::from(header[2]);
                    let (kind, flags) = (header[3], header[4]);
                    *remaining = length;
                    if matches!(kind, H2_HEADERS | H2_PUSH_PROMISE | H2_CONTINUATION) {
                        activity.header_block_started();
                        if flags & H2_END_HEADERS != 0 {
                            if length == 0 {
                                activity.header_block_ended();
                            } else {
                                *ends_block = true;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A connection's byte stream, reporting what it reads to the connection's [`Activity`].
#[derive(Debug)]
pub struct Tracked<I> {
    io: I,
    framing: Framing,
    activity: Arc<Activity>,
}

impl<I> Tracked<I> {
    pub fn new(io: I, activity: Arc<Activity>) -> Self {
        Self { io, framing: Framing::default(), activity }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let read = &buf.filled()[before..];
            if !read.is_empty() {
                this.framing.feed(read, &this.activity);
            }
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
