//! Accept loops: TCP (and TLS) connections served by hyper with the router, at most
//! `max_connections` at a time and `max_connections_per_ip` per client address, each request tagged
//! with its connection's [`ConnectionInfo`], and a graceful stop that finishes in-flight requests.
//! With [`ServeOptions::proxy_protocol`] every connection must start with a PROXY protocol v2 header
//! (read before TLS); its source address becomes the connection's peer.
//!
//! Slow and idle clients cannot hold connections ([`activity`]): a connection must complete its first
//! request head `header_read_timeout` after accept (PROXY header and TLS handshake included), every
//! later head (HTTP/2: header block) within `header_read_timeout` of its first byte, or it is closed at
//! once; a connection with no request in flight for `idle_timeout` is closed gracefully (HTTP/2:
//! GOAWAY). A request in flight is never cut by these timers.

mod activity;
mod per_ip;

#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, HttpBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use self::activity::{Activity, Expiry, InFlight, Timeouts, Tracked};
use self::per_ip::{PerIp, PerIpPermit};
use crate::config::DataPlaneConfig;
use crate::proxy_protocol;
use crate::tls::ClientCertificate;

/// Who is on the other end of the connection a request came in on.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The client's address: the TCP peer, or the PROXY header's source when the listener takes one.
    pub peer: SocketAddr,
    /// The verified client certificate (leaf), read once for the connection, when the client presented
    /// one. Chain verification against the workload CA happened in the (original) handshake; validity
    /// is checked again per request.
    pub client_cert: Option<ClientCertificate>,
}

/// How a listener speaks.
#[derive(Clone)]
pub enum Transport {
    Plain,
    Tls(TlsAcceptor),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Plain => "Plain",
            Transport::Tls(_) => "Tls",
        })
    }
}

/// How long in-flight requests may take to finish after a stop was asked for.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// How a listener accepts connections.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// At most this many connections at a time.
    pub max_connections: usize,
    /// Every connection starts with a PROXY protocol v2 header (`data_plane.proxy_protocol`).
    pub proxy_protocol: bool,
    /// From accept to a complete first request head; from the first byte of a later head (HTTP/2:
    /// header block) to its end (`data_plane.header_read_timeout_ms`).
    pub header_read_timeout: Duration,
    /// No request in flight for this long closes the connection (`data_plane.idle_timeout_ms`).
    pub idle_timeout: Duration,
    /// At most this many connections at a time from one client address
    /// (`data_plane.max_connections_per_ip`).
    pub max_connections_per_ip: usize,
}

impl ServeOptions {
    /// `max_connections` with every other option at its configuration default.
    pub fn new(max_connections: usize) -> Self {
        Self { max_connections, ..Self::from_config(&DataPlaneConfig::default()) }
    }

    /// The data plane's options from its configuration. The admin listener takes the same limits
    /// without PROXY protocol.
    pub fn from_config(config: &DataPlaneConfig) -> Self {
        let usize_of = |value: u32| usize::try_from(value).unwrap_or(usize::MAX);
        Self {
            max_connections: usize_of(config.max_connections),
            proxy_protocol: config.proxy_protocol,
            header_read_timeout: Duration::from_millis(u64::from(config.header_read_timeout_ms)),
            idle_timeout: Duration::from_millis(u64::from(config.idle_timeout_ms)),
            max_connections_per_ip: usize_of(config.max_connections_per_ip),
        }
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts { header: self.header_read_timeout, idle: self.idle_timeout }
    }
}

/// Serves `router` on `listener` until `stop` turns true, then stops accepting and waits (up to
/// [`DRAIN_TIMEOUT`]) for open connections to finish their in-flight requests.
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    transport: Transport,
    router: Router,
    max_connections: usize,
    stop: watch::Receiver<bool>,
) {
    serve_with(name, listener, transport, router, ServeOptions::new(max_connections), stop).await;
}

/// [`serve`] with every [`ServeOptions`].
pub async fn serve_with(
    name: &'static str,
    listener: TcpListener,
    transport: Transport,
    router: Router,
    options: ServeOptions,
    mut stop: watch::Receiver<bool>,
) {
    let max_connections = options.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max_connections));
    let per_ip = PerIp::new(options.max_connections_per_ip.max(1));
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stop.changed() => break,
        };
        let (tcp, tcp_peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(listener = name, %error, "Accept failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let accepted_at = Instant::now();
        // Without PROXY protocol the client is the TCP peer: count it before anything else is read.
        let ip_permit = if options.proxy_protocol {
            None
        } else {
            match per_ip.try_acquire(tcp_peer.ip()) {
                Some(ip_permit) => Some(ip_permit),
                None => {
                    refuse_over_cap(name, tcp_peer);
                    continue;
                }
            }
        };
        let _ = tcp.set_nodelay(true);
        let connection = Connection {
            name,
            options,
            accepted_at,
            tcp_peer,
            transport: transport.clone(),
            router: router.clone(),
            builder: builder.clone(),
            per_ip: Arc::clone(&per_ip),
            stop: stop.clone(),
        };
        tokio::spawn(connection.run(tcp, permit, ip_permit));
    }
    drop(listener);
    // Every connection holds one permit until it is closed: all of them back means all are done.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN_TIMEOUT, permits.acquire_many(all)).await.is_err() {
        tracing::warn!(listener = name, "In-flight requests did not finish within the drain timeout.");
    }
}

fn refuse_over_cap(name: &'static str, peer: SocketAddr) {
    tracing::debug!(listener = name, %peer, "Connection over max_connections_per_ip; closed.");
    metrics::counter!("steward_connections_closed_total", "listener" => name, "reason" => "per_ip_limit")
        .increment(1);
}

fn count_closed(name: &'static str, reason: &'static str) {
    metrics::counter!("steward_connections_closed_total", "listener" => name, "reason" => reason)
        .increment(1);
}

/// One accepted connection and what it needs to be served.
struct Connection {
    name: &'static str,
    options: ServeOptions,
    accepted_at: Instant,
    tcp_peer: SocketAddr,
    transport: Transport,
    router: Router,
    builder: auto::Builder<TokioExecutor>,
    per_ip: Arc<PerIp>,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn run(self, mut tcp: TcpStream, _permit: OwnedSemaphorePermit, ip_permit: Option<PerIpPermit>) {
        let name = self.name;
        let deadline = self.accepted_at + self.options.header_read_timeout;
        let (peer, _ip_permit) = if self.options.proxy_protocol {
            let within =
                deadline.saturating_duration_since(Instant::now()).min(proxy_protocol::HEADER_TIMEOUT);
            let peer = match proxy_protocol::read_header_within(&mut tcp, within).await {
                Ok(header) => header.client(self.tcp_peer),
                Err(error) => {
                    tracing::debug!(listener = name, peer = %self.tcp_peer, %error, "PROXY header refused; connection closed.");
                    metrics::counter!("steward_proxy_protocol_rejected_total", "listener" => name, "reason" => error.reason())
                        .increment(1);
                    return;
                }
            };
            // Counted by the balancer's client, still before TLS.
            match self.per_ip.try_acquire(peer.ip()) {
                Some(ip_permit) => (peer, Some(ip_permit)),
                None => return refuse_over_cap(name, peer),
            }
        } else {
            (self.tcp_peer, ip_permit)
        };
        match self.transport.clone() {
            Transport::Plain => {
                let info = ConnectionInfo { peer, client_cert: None };
                self.serve(tcp, info).await;
            }
            Transport::Tls(acceptor) => {
                let tls = match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(error)) => {
                        tracing::debug!(listener = name, %peer, %error, "TLS handshake failed.");
                        metrics::counter!("steward_tls_handshake_failures_total", "listener" => name)
                            .increment(1);
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(listener = name, %peer, "TLS handshake not done within the header timeout; connection closed.");
                        return count_closed(name, "header_timeout");
                    }
                };
                let client_cert = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| ClientCertificate::read(leaf.clone().into_owned()));
                let info = ConnectionInfo { peer, client_cert };
                self.serve(tls, info).await;
            }
        }
    }

    /// Serves HTTP on `io` until the client closes, a limit closes it, or the listener stops.
    async fn serve<I>(self, io: I, info: ConnectionInfo)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self { name, options, accepted_at, router, builder, mut stop, .. } = self;
        let peer = info.peer;
        let activity = Activity::new(accepted_at);
        let io = TokioIo::new(Tracked::new(io, Arc::clone(&activity)));
        let conn = builder.serve_connection_with_upgrades(io, service(router, info, Arc::clone(&activity)));
        tokio::pin!(conn);
        let timeouts = options.timeouts();
        let mut closing: Option<Instant> = None;
        let mut stopping = false;
        loop {
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = stop.wait_for(|stop| *stop), if !stopping => {
                    stopping = true;
                    closing.get_or_insert_with(Instant::now);
                    conn.as_mut().graceful_shutdown();
                }
                expiry = activity.expired(timeouts, closing) => match (expiry, closing) {
                    (Expiry::Header, _) => {
                        tracing::debug!(listener = name, %peer, "Request head not complete within the header timeout; connection closed.");
                        return count_closed(name, "header_timeout");
                    }
                    (Expiry::Idle, None) => {
                        count_closed(name, "idle");
                        closing = Some(Instant::now());
                        conn.as_mut().graceful_shutdown();
                    }
                    // The graceful close had its chance (an HTTP/2 client not acknowledging GOAWAY).
                    (Expiry::Idle, Some(_)) => return,
                }
            }
        }
    }
}

/// The per-connection service: the router, with the connection's identity on every request, and the
/// request counted as in flight until its response body is done.
fn service(
    router: Router,
    info: ConnectionInfo,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send + 'static,
> + Clone {
    let info = Arc::new(info);
    hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let in_flight = activity.request_started();
        request.extensions_mut().insert(Arc::clone(&info));
        let response = router.clone().oneshot(request.map(Body::new));
        async move {
            let response = response.await?;
            Ok(response.map(|body| Body::new(InFlightBody { body, _in_flight: in_flight })))
        }
    })
}

/// A response body that keeps its request counted as in flight until hyper is done with it.
struct InFlightBody {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for InFlightBody {
    type Data = <Body as HttpBody>::Data;
    type Error = <Body as HttpBody>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}
