//! The local HTTPS upstream: hyper HTTP/1.1 with keep-alive behind rustls, answering every request
//! with a fixed JSON body of the requested size, as fast as it can. It reads (and drops) the request
//! body so that request sizes cost what they would cost a real API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::pki::Leaf;

/// The host name Steward's template (and the direct client's SNI) use for the upstream.
pub const UPSTREAM_HOST: &str = "bench.upstream.test";
/// The one path every allowed request goes to.
pub const ECHO_PATH: &str = "/v1/echo";

/// A running upstream; dropping it stops accepting.
#[derive(Debug)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicU64>,
    /// TCP connections accepted so far (shows whether a proxy reuses its upstream connections).
    pub connections: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A JSON document of exactly `size` bytes (at least the 10 bytes of `{"pad":""}`).
pub fn json_of_size(size: usize) -> Bytes {
    let pad = size.saturating_sub(10);
    let mut out = String::with_capacity(size.max(10));
    out.push_str("{\"pad\":\"");
    out.extend(std::iter::repeat_n('x', pad));
    out.push_str("\"}");
    Bytes::from(out)
}

pub fn server_tls(leaf: &Leaf, alpn_h1: bool) -> Result<rustls::ServerConfig> {
    let chain = CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes())?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    if alpn_h1 {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    Ok(config)
}

/// Starts the upstream on `127.0.0.1:0`.
pub async fn start(leaf: &Leaf, response_bytes: usize) -> Result<Upstream> {
    let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the upstream")?;
    let addr = listener.local_addr()?;
    let acceptor = TlsAcceptor::from(Arc::new(server_tls(leaf, true)?));
    let body = json_of_size(response_bytes);
    let requests = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&requests);
    let connections = Arc::new(AtomicU64::new(0));
    let accepted = Arc::clone(&connections);
    let accept = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let _ = tcp.set_nodelay(true);
            accepted.fetch_add(1, Ordering::Relaxed);
            let acceptor = acceptor.clone();
            let body = body.clone();
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = service_fn(move |request: Request<Incoming>| {
                    let body = body.clone();
                    let counter = Arc::clone(&counter);
                    async move {
                        // Drain the request body, then answer.
                        let _ = request.into_body().collect().await;
                        counter.fetch_add(1, Ordering::Relaxed);
                        Response::builder()
                            .header("content-type", "application/json")
                            .header("x-request-id", "bench")
                            .body(Full::new(body))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok(Upstream { addr, requests, connections, accept })
}
