//! A real local HTTPS upstream for tests, the one every crate uses: a rustls HTTP/1.1 server on
//! 127.0.0.1 (or an address of the test's choosing) with a certificate from its own [`TestCa`],
//! which Steward trusts through `egress.extra_ca_files` and reaches through `egress.static_hosts`.
//!
//! - It records every request as it arrived on the wire ([`ReceivedRequest`]: header lines in
//!   arrival order, duplicates kept; the TCP connection that carried it; the SNI), so a test can
//!   count calls, match them to audit events and check exactly what Steward sent.
//! - It answers as scripted ([`Reply`]): a whole response, a head and a body sent step by step with
//!   pauses and gates the test opens, exact raw bytes, silence, a reset. The answer is a standing
//!   one ([`TestUpstream::set`]), computed from the request ([`TestUpstream::respond_with`], e.g. an
//!   echo), or queued for the next request only ([`TestUpstream::queue`]).
//! - Or the test drives each connection by hand ([`TestUpstream::hand_driven`],
//!   [`UpstreamConnection`]), to prove ordering by handshake rather than by timing.
//!
//! Requests are parsed by hand rather than by hyper because a test of a credential broker must see
//! the exact header lines that reached the upstream, and must be able to answer with any framing.

mod connection;
mod reply;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub use connection::UpstreamConnection;
pub use reply::{Reply, Step, send};

use crate::pki::TestCa;
use reply::Then;

/// The host names the upstream's certificate is valid for, unless told otherwise.
pub const UPSTREAM_HOSTS: [&str; 5] =
    ["api.example.test", "other.example.test", "private.example.test", "localhost", "127.0.0.1"];

/// How long [`TestUpstream::accept`] waits before failing the test.
const ACCEPT_WAIT: Duration = Duration::from_secs(20);

/// One request as the upstream received it.
#[derive(Debug, Clone, Default)]
pub struct ReceivedRequest {
    pub method: String,
    /// Path and query, as on the wire.
    pub target: String,
    /// Header lines in arrival order: (name lowercased, value).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Which accepted TCP connection carried it (0, 1, …).
    pub connection: usize,
    /// The SNI the client sent.
    pub sni: Option<String>,
}

impl ReceivedRequest {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (lowercase), in arrival order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    /// The header names, in arrival order.
    pub fn names(&self) -> Vec<&str> {
        self.headers.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The fields of an `application/x-www-form-urlencoded` body, decoded, in order.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body).into_owned().collect()
    }

    /// The first form field `name` of the body, decoded.
    pub fn field(&self, name: &str) -> Option<String> {
        self.form().into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The value of query parameter `name` (undecoded), if present.
    pub fn query(&self, name: &str) -> Option<&str> {
        let (_, query) = self.target.split_once('?')?;
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
    }
}

/// Computes the answer to a request.
pub type Responder = Arc<dyn Fn(&ReceivedRequest) -> Reply + Send + Sync>;

/// Where the upstream listens and what its certificate says.
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    /// Port 0: any free port.
    pub bind: SocketAddr,
    /// The names of its certificate.
    pub hosts: Vec<String>,
    /// The CA that issues the certificate (to share one between upstreams); a fresh one if `None`.
    pub ca: Option<Arc<TestCa>>,
    /// Hand every connection to the test ([`TestUpstream::accept`]) instead of answering.
    pub hand_driven: bool,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        Self {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            hosts: UPSTREAM_HOSTS.iter().map(|h| (*h).to_owned()).collect(),
            ca: None,
            hand_driven: false,
        }
    }
}

/// What the accept loop, the connections and the test share.
pub(crate) struct Shared {
    received: Mutex<Vec<ReceivedRequest>>,
    connections: AtomicUsize,
    /// Answers whose client went away before they ended.
    abandoned: AtomicUsize,
    standing: Mutex<Responder>,
    queued: Mutex<VecDeque<Reply>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("received", &lock(&self.received).len()).finish_non_exhaustive()
    }
}

impl Shared {
    fn record(&self, request: ReceivedRequest) {
        lock(&self.received).push(request);
    }

    fn reply_to(&self, request: &ReceivedRequest) -> Reply {
        if let Some(reply) = lock(&self.queued).pop_front() {
            return reply;
        }
        let standing = Arc::clone(&lock(&self.standing));
        standing(request)
    }
}

/// The running upstream (it stops with the test's runtime).
pub struct TestUpstream {
    pub addr: SocketAddr,
    /// The CA that issued the upstream's certificate.
    pub ca: Arc<TestCa>,
    /// Its certificate (PEM), for `egress.extra_ca_files`.
    pub ca_pem: String,
    shared: Arc<Shared>,
    accepted: tokio::sync::Mutex<mpsc::UnboundedReceiver<UpstreamConnection>>,
}

impl std::fmt::Debug for TestUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestUpstream").field("addr", &self.addr).field("received", &self.count()).finish()
    }
}

impl TestUpstream {
    /// Binds 127.0.0.1 on a free port with a certificate for [`UPSTREAM_HOSTS`]; answers
    /// [`Reply::ok`] until told otherwise.
    pub async fn start() -> Result<Self> {
        Self::start_with(UpstreamOptions::default()).await
    }

    /// As [`start`](Self::start), but every connection waits for the test ([`accept`](Self::accept)).
    pub async fn hand_driven() -> Result<Self> {
        Self::start_with(UpstreamOptions { hand_driven: true, ..UpstreamOptions::default() }).await
    }

    pub async fn start_with(options: UpstreamOptions) -> Result<Self> {
        let ca = match options.ca {
            Some(ca) => ca,
            None => Arc::new(TestCa::new("test upstream CA")?),
        };
        let hosts: Vec<&str> = options.hosts.iter().map(String::as_str).collect();
        let acceptor = ca.server_cert(&hosts)?.acceptor(&[]).context("upstream TLS")?;
        let listener =
            TcpListener::bind(options.bind).await.with_context(|| format!("bind {}", options.bind))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            received: Mutex::default(),
            connections: AtomicUsize::new(0),
            abandoned: AtomicUsize::new(0),
            standing: Mutex::new(Arc::new(|_: &ReceivedRequest| Reply::ok())),
            queued: Mutex::default(),
        });
        let (sender, receiver) = mpsc::unbounded_channel();
        let (hand_driven, accept_shared) = (options.hand_driven, Arc::clone(&shared));
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let id = accept_shared.connections.fetch_add(1, Ordering::SeqCst);
                let (acceptor, sender, shared) =
                    (acceptor.clone(), sender.clone(), Arc::clone(&accept_shared));
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let connection = UpstreamConnection::new(tls, id, shared);
                    if hand_driven {
                        let _ = sender.send(connection);
                    } else {
                        serve(connection).await;
                    }
                });
            }
        });
        let ca_pem = ca.cert_pem.clone();
        Ok(Self { addr, ca, ca_pem, shared, accepted: tokio::sync::Mutex::new(receiver) })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Answers every request from now on with `reply`.
    pub fn set(&self, reply: Reply) {
        self.respond_with(move |_| reply.clone());
    }

    /// Answers every request from now on with a whole response.
    pub fn respond(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        self.set(Reply::full(status, headers, body));
    }

    /// Answers every request from now on with what `responder` makes of it (an echo, or an answer
    /// that depends on the path).
    pub fn respond_with(&self, responder: impl Fn(&ReceivedRequest) -> Reply + Send + Sync + 'static) {
        *lock(&self.shared.standing) = Arc::new(responder);
    }

    /// Answers the next request that has no queued reply yet with `reply`, once; then the standing
    /// answer again.
    pub fn queue(&self, reply: Reply) {
        lock(&self.shared.queued).push_back(reply);
    }

    /// Every request received so far, in arrival order.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        lock(&self.shared.received).clone()
    }

    /// How many requests arrived so far.
    pub fn count(&self) -> usize {
        lock(&self.shared.received).len()
    }

    /// The last request received; panics (fails the test) if there was none.
    pub fn last(&self) -> ReceivedRequest {
        self.received().last().cloned().expect("the upstream received nothing")
    }

    /// How many TCP connections clients opened so far.
    pub fn connection_count(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// How many answers lost their client before they ended ([`Reply::Hang`], [`Step::Hang`], or a
    /// `Step::Send` that could not be written).
    pub fn abandoned(&self) -> usize {
        self.shared.abandoned.load(Ordering::SeqCst)
    }

    /// The next connection a client opened (hand-driven upstreams only).
    pub async fn accept(&self) -> Result<UpstreamConnection> {
        let mut accepted = self.accepted.lock().await;
        match tokio::time::timeout(ACCEPT_WAIT, accepted.recv()).await {
            Ok(Some(connection)) => Ok(connection),
            Ok(None) => bail!("the upstream stopped listening"),
            Err(_) => bail!("no connection reached the upstream"),
        }
    }

    /// A connection opened and waiting right now, if any (to assert that none was opened).
    pub async fn try_accept(&self) -> Option<UpstreamConnection> {
        self.accepted.lock().await.try_recv().ok()
    }
}

/// Answers requests on `connection` until it ends.
async fn serve(mut connection: UpstreamConnection) {
    while let Some(request) = connection.next_request().await {
        let reply = connection.shared().reply_to(&request);
        if let Then::Stop = reply::play(&mut connection, &request.method, reply).await {
            return;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
