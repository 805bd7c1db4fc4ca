//! The local HTTPS upstream: hyper HTTP/1.1 with keep-alive behind rustls, answering as fast as it
//! can. It reads (and drops) the request body so that request sizes cost what they would cost a real
//! API, then answers by path:
//!
//! - [`SSE_PATH`]: a `text/event-stream` of [`SSE_EVENTS`] events, the first at once (with the
//!   head), the others [`SSE_INTERVAL`] apart — what a streaming LLM answer looks like;
//! - [`BLOB_PATH`]`?bytes=N`: N bytes of text in 64 KiB chunks, chunked encoding (no length), as
//!   fast as the connection takes them;
//! - anything else: a fixed JSON body of `--response-bytes`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;

use crate::pki::Leaf;

/// The host name Steward's template (and the direct client's SNI) use for the upstream.
pub const UPSTREAM_HOST: &str = "bench.upstream.test";
/// The one path every allowed request goes to.
pub const ECHO_PATH: &str = "/v1/echo";
/// The server-sent events stream (time to first byte).
pub const SSE_PATH: &str = "/v1/stream/events";
/// The large streamed body (`?bytes=N`).
pub const BLOB_PATH: &str = "/v1/stream/blob";
/// Events per SSE answer: the first at once, then one every [`SSE_INTERVAL`].
pub const SSE_EVENTS: usize = 4;
pub const SSE_INTERVAL: Duration = Duration::from_millis(25);
/// The chunk size of [`BLOB_PATH`] answers.
pub const BLOB_CHUNK: usize = 64 * 1024;

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

/// Event `index` of an SSE answer (`data: {...}` and the blank line that ends an event).
pub fn sse_event(index: usize) -> Bytes {
    Bytes::from(format!("event: delta\ndata: {{\"index\":{index},\"text\":\"token {index}\"}}\n\n"))
}

/// The `bytes` query parameter of a blob request (`None` when absent or not a number).
pub fn blob_bytes(query: Option<&str>) -> Option<u64> {
    query?.split('&').find_map(|pair| pair.strip_prefix("bytes=")).and_then(|n| n.parse().ok())
}

/// One [`BLOB_CHUNK`] of varied lowercase text and newlines (so the scrubber's prefilter sees text,
/// not one repeated byte).
fn blob_chunk() -> Bytes {
    let line = b"the quick brown fox jumps over the lazy dog 0123456789 streaming bench line\n";
    Bytes::from(line.iter().copied().cycle().take(BLOB_CHUNK).collect::<Vec<u8>>())
}

/// The body of an upstream answer.
enum UpstreamBody {
    Full(Option<Bytes>),
    /// Events sent so far, and the timer of the next one.
    Sse {
        sent: usize,
        next: Option<Pin<Box<Sleep>>>,
    },
    Blob {
        remaining: u64,
        chunk: Bytes,
    },
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            UpstreamBody::Full(body) => Poll::Ready(body.take().map(|b| Ok(Frame::data(b)))),
            UpstreamBody::Sse { sent, next } => {
                if *sent >= SSE_EVENTS {
                    return Poll::Ready(None);
                }
                if let Some(timer) = next
                    && timer.as_mut().poll(cx).is_pending()
                {
                    return Poll::Pending;
                }
                let event = sse_event(*sent);
                *sent += 1;
                *next = Some(Box::pin(tokio::time::sleep(SSE_INTERVAL)));
                Poll::Ready(Some(Ok(Frame::data(event))))
            }
            UpstreamBody::Blob { remaining, chunk } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let n = usize::try_from(*remaining).unwrap_or(usize::MAX).min(chunk.len());
                *remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk.slice(..n)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Full(body) => body.is_none(),
            UpstreamBody::Sse { sent, .. } => *sent >= SSE_EVENTS,
            UpstreamBody::Blob { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Full(Some(body)) => SizeHint::with_exact(body.len() as u64),
            UpstreamBody::Full(None) => SizeHint::with_exact(0),
            // No length: chunked, as streaming APIs answer.
            _ => SizeHint::default(),
        }
    }
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

/// The answer to one request (its body already drained).
fn answer(path: &str, query: Option<&str>, json: &Bytes, blob: &Bytes) -> Response<UpstreamBody> {
    let (content_type, body) = match path {
        SSE_PATH => ("text/event-stream", UpstreamBody::Sse { sent: 0, next: None }),
        BLOB_PATH => (
            "application/octet-stream",
            UpstreamBody::Blob { remaining: blob_bytes(query).unwrap_or(0), chunk: blob.clone() },
        ),
        _ => ("application/json", UpstreamBody::Full(Some(json.clone()))),
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert("content-type", http::HeaderValue::from_static(content_type));
    headers.insert("x-request-id", http::HeaderValue::from_static("bench"));
    response
}

/// Starts the upstream on `127.0.0.1:0`.
pub async fn start(leaf: &Leaf, response_bytes: usize) -> Result<Upstream> {
    let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the upstream")?;
    let addr = listener.local_addr()?;
    let acceptor = TlsAcceptor::from(Arc::new(server_tls(leaf, true)?));
    let json = json_of_size(response_bytes);
    let blob = blob_chunk();
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
            let (json, blob) = (json.clone(), blob.clone());
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = service_fn(move |request: Request<Incoming>| {
                    let (json, blob) = (json.clone(), blob.clone());
                    let counter = Arc::clone(&counter);
                    async move {
                        let (head, body) = request.into_parts();
                        // Drain the request body, then answer.
                        let _ = body.collect().await;
                        counter.fetch_add(1, Ordering::Relaxed);
                        Ok::<_, std::convert::Infallible>(answer(
                            head.uri.path(),
                            head.uri.query(),
                            &json,
                            &blob,
                        ))
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
