//! A minimal HTTP/1.1 client (one request per connection) for the `steward admin` CLI talking to the
//! admin listener: hyper's connection API over tokio-rustls with aws-lc-rs, so `ring` never enters
//! the tree (see `docs/decisions/0002-webhooks.md`).
//!
//! It is not an egress path: it resolves names with the system resolver and has no SSRF
//! classification. Steward's own outbound calls (execute, OAuth2, webhooks) use `steward-egress`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Why a request could not be sent or answered.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid URL {0:?}: {1}")]
    Url(String, String),
    #[error("invalid TLS roots: {0}")]
    Roots(String),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    #[error("TLS handshake with {0} failed: {1}")]
    Tls(String, String),
    #[error("HTTP exchange with {0} failed: {1}")]
    Http(String, String),
    #[error("{0} did not answer within {1:?}")]
    Timeout(String, Duration),
}

/// What came back.
#[derive(Debug, Clone)]
pub struct ClientResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// An HTTP(S) client trusting the webpki roots plus any extra roots given.
#[derive(Debug, Clone)]
pub struct HttpClient {
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
}

impl HttpClient {
    /// `extra_roots_pem`: more trusted CA certificates (PEM), e.g. a private CA of the admin listener
    /// or, in tests, a test CA.
    pub fn new(extra_roots_pem: Option<&str>, timeout: Duration) -> Result<Self, ClientError> {
        let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(pem) = extra_roots_pem {
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| ClientError::Roots(e.to_string()))?;
                roots.add(cert).map_err(|e| ClientError::Roots(e.to_string()))?;
                added += 1;
            }
            if added == 0 {
                return Err(ClientError::Roots("no PEM certificate found".into()));
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Roots(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self { tls: Arc::new(tls), timeout })
    }

    /// Sends one request to an absolute `http://` or `https://` URL and reads the whole answer.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<ClientResponse, ClientError> {
        let uri: Uri =
            url.parse().map_err(|e: http::uri::InvalidUri| ClientError::Url(url.into(), e.to_string()))?;
        let target = Target::from_uri(&uri).map_err(|e| ClientError::Url(url.into(), e))?;
        tokio::time::timeout(self.timeout, self.exchange(method, &target, headers, body))
            .await
            .map_err(|_| ClientError::Timeout(target.authority.clone(), self.timeout))?
    }

    async fn exchange(
        &self,
        method: Method,
        target: &Target,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<ClientResponse, ClientError> {
        let tcp = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| ClientError::Connect(target.authority.clone(), e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let mut builder = Request::builder()
            .method(method)
            .uri(target.path_and_query.as_str())
            .header(http::header::HOST, target.authority.as_str());
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| ClientError::Http(target.authority.clone(), e.to_string()))?;
        if target.tls {
            let name = ServerName::try_from(target.host.clone())
                .map_err(|e| ClientError::Url(target.authority.clone(), e.to_string()))?;
            let stream = TlsConnector::from(Arc::clone(&self.tls))
                .connect(name, tcp)
                .await
                .map_err(|e| ClientError::Tls(target.authority.clone(), e.to_string()))?;
            exchange(TokioIo::new(stream), request, &target.authority).await
        } else {
            exchange(TokioIo::new(tcp), request, &target.authority).await
        }
    }
}

/// Where a URL points.
#[derive(Debug)]
struct Target {
    tls: bool,
    /// Without IPv6 brackets, for connecting and SNI.
    host: String,
    port: u16,
    /// `host[:port]` as written, for the Host header and messages.
    authority: String,
    path_and_query: String,
}

impl Target {
    fn from_uri(uri: &Uri) -> Result<Self, String> {
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err("the scheme must be http or https".into()),
        };
        let authority = uri.authority().ok_or("the URL has no host")?;
        if authority.as_str().contains('@') {
            return Err("credentials in the URL are not allowed".into());
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let path_and_query =
            uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
        Ok(Self { tls, host, port, authority: authority.as_str().to_owned(), path_and_query })
    }
}

async fn exchange<IO>(
    io: TokioIo<IO>,
    request: Request<Full<Bytes>>,
    authority: &str,
) -> Result<ClientResponse, ClientError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let fail = |e: hyper::Error| ClientError::Http(authority.to_owned(), e.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.map_err(fail)?;
    let driver = tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(fail)?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.map_err(fail)?.to_bytes();
    driver.abort();
    Ok(ClientResponse { status, headers, body })
}
