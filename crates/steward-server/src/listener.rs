//! Accept loops: TCP (and TLS) connections served by hyper with the router, at most
//! `max_connections` at a time, each request tagged with its connection's [`ConnectionInfo`], and a
//! graceful stop that finishes in-flight requests. With [`ServeOptions::proxy_protocol`] every
//! connection must start with a PROXY protocol v2 header (read before TLS); its source address
//! becomes the connection's peer.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

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

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long in-flight requests may take to finish after a stop was asked for.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// How a listener accepts connections.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// At most this many connections at a time.
    pub max_connections: usize,
    /// Every connection starts with a PROXY protocol v2 header (`data_plane.proxy_protocol`).
    pub proxy_protocol: bool,
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
    let options = ServeOptions { max_connections, proxy_protocol: false };
    serve_with(name, listener, transport, router, options, stop).await;
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
    let ServeOptions { max_connections, proxy_protocol } = options;
    let permits = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stop.changed() => break,
        };
        let (mut tcp, tcp_peer) = tokio::select! {
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
        let _ = tcp.set_nodelay(true);
        let transport = transport.clone();
        let router = router.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let peer = if proxy_protocol {
                match proxy_protocol::read_header(&mut tcp).await {
                    Ok(header) => header.client(tcp_peer),
                    Err(error) => {
                        tracing::debug!(listener = name, peer = %tcp_peer, %error, "PROXY header refused; connection closed.");
                        metrics::counter!("steward_proxy_protocol_rejected_total", "listener" => name, "reason" => error.reason())
                            .increment(1);
                        return;
                    }
                }
            } else {
                tcp_peer
            };
            match transport {
                Transport::Plain => {
                    let info = ConnectionInfo { peer, client_cert: None };
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(tcp), service(router, info));
                    let _ = watcher.watch(conn).await;
                }
                Transport::Tls(acceptor) => {
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(error)) => {
                            tracing::debug!(listener = name, %peer, %error, "TLS handshake failed.");
                            metrics::counter!("steward_tls_handshake_failures_total", "listener" => name)
                                .increment(1);
                            return;
                        }
                        Err(_) => return,
                    };
                    let client_cert = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|leaf| ClientCertificate::read(leaf.clone().into_owned()));
                    let info = ConnectionInfo { peer, client_cert };
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(tls), service(router, info));
                    let _ = watcher.watch(conn).await;
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!(listener = name, "In-flight requests did not finish within the drain timeout.");
    }
}

/// The per-connection service: the router, with the connection's identity on every request.
fn service(
    router: Router,
    info: ConnectionInfo,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send + 'static,
> + Clone {
    let info = Arc::new(info);
    hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(Arc::clone(&info));
        router.clone().oneshot(request.map(Body::new))
    })
}
