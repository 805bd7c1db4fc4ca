//! A minimal HTTP/1.1 client for tests: one request per connection, over TLS (optionally with a
//! client certificate) or plain TCP. Real handshakes, real sockets.

// Test support: the test client connects to the Steward listener under test on loopback.
// (`clippy.toml` bans `TcpStream::connect` outside steward-egress.)
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// What came back.
#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// TLS settings of a test request.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    pub ca_pem: String,
    pub server_name: String,
    /// `(certificate chain PEM, private key PEM)`.
    pub client: Option<(String, String)>,
}

/// Sends one request and reads the whole response.
pub async fn request(
    addr: SocketAddr,
    tls: Option<&TlsOptions>,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<TestResponse> {
    request_with_preface(addr, &[], tls, method, path, headers, body).await
}

/// [`request`], writing `preface` (e.g. a PROXY protocol header) on the TCP connection before TLS.
pub async fn request_with_preface(
    addr: SocketAddr,
    preface: &[u8],
    tls: Option<&TlsOptions>,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<TestResponse> {
    let mut tcp = TcpStream::connect(addr).await.with_context(|| format!("connect {addr}"))?;
    if !preface.is_empty() {
        use tokio::io::AsyncWriteExt;
        tcp.write_all(preface).await.context("write the preface")?;
    }
    let host = tls.map(|t| t.server_name.clone()).unwrap_or_else(|| addr.to_string());
    let mut builder = Request::builder().method(method).uri(path).header("host", host);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(body.into()))?;
    match tls {
        Some(options) => {
            let stream = connect_tls(tcp, options).await?;
            send(TokioIo::new(stream), request).await
        }
        None => send(TokioIo::new(tcp), request).await,
    }
}

/// A raw TLS stream to `addr` (for tests that write a request byte by byte, e.g. to keep one in flight).
pub async fn tls_stream(
    addr: SocketAddr,
    options: &TlsOptions,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await.with_context(|| format!("connect {addr}"))?;
    connect_tls(tcp, options).await
}

/// Performs only the TLS handshake (to test what the server accepts).
pub async fn tls_handshake(addr: SocketAddr, options: &TlsOptions) -> Result<()> {
    let tcp = TcpStream::connect(addr).await?;
    let mut stream = connect_tls(tcp, options).await?;
    // TLS 1.3 servers report a refused client certificate after the client's Finished: read once.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await?;
    let mut buf = [0u8; 16];
    let n = stream.read(&mut buf).await?;
    anyhow::ensure!(n > 0, "the server closed the connection");
    Ok(())
}

async fn connect_tls(
    tcp: TcpStream,
    options: &TlsOptions,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(options.ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match &options.client {
        Some((cert_pem, key_pem)) => {
            let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from(options.server_name.clone())?;
    Ok(TlsConnector::from(Arc::new(config)).connect(name, tcp).await?)
}

async fn send<IO>(io: TokioIo<IO>, request: Request<Full<Bytes>>) -> Result<TestResponse>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(TestResponse { status, headers, body })
}
