//! A real local HTTPS upstream for execute tests that run Steward as separate processes (the
//! multi-instance and fault suites): a rustls + hyper HTTP/1.1 server with a certificate for
//! `api.example.test` (and `other.example.test`) from its own [`TestCa`], which Steward trusts through
//! `egress.extra_ca_files` and reaches through `egress.static_hosts` on 127.0.0.1. It records every
//! request it receives (so a test can count calls and match them to audit events) and answers as told
//! ([`UpstreamBehavior`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::pki::TestCa;

/// The host names the upstream's certificate is valid for.
pub const UPSTREAM_HOSTS: [&str; 2] = ["api.example.test", "other.example.test"];

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Lowercase names, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ReceivedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
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

/// How the upstream answers.
#[derive(Debug, Clone)]
pub enum UpstreamBehavior {
    /// Answer at once.
    Respond { status: u16, content_type: String, body: Vec<u8> },
    /// Answer `{"ok":true}` with 200 after a pause.
    Delay(Duration),
    /// Never answer.
    Hang,
    /// Never answer requests whose target (path and query) contains this text; answer the others
    /// as [`UpstreamBehavior::default`].
    HangIf(String),
}

impl Default for UpstreamBehavior {
    fn default() -> Self {
        Self::Respond {
            status: 200,
            content_type: "application/json".into(),
            body: br#"{"ok":true}"#.to_vec(),
        }
    }
}

/// The running upstream (it stops with the test's runtime).
#[derive(Debug)]
pub struct TestUpstream {
    pub addr: SocketAddr,
    /// The CA that issued the upstream's certificate (PEM), for `egress.extra_ca_files`.
    pub ca_pem: String,
    received: Arc<Mutex<Vec<ReceivedRequest>>>,
    behavior: Arc<Mutex<UpstreamBehavior>>,
}

impl TestUpstream {
    /// Binds 127.0.0.1 on a free port and serves until the runtime ends.
    pub async fn start() -> Result<Self> {
        let ca = TestCa::new("test upstream CA")?;
        let leaf = ca.server_cert(&UPSTREAM_HOSTS)?;
        let chain = CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .context("upstream certificate")?;
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).context("upstream key")?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let behavior = Arc::new(Mutex::new(UpstreamBehavior::default()));
        let (r, b) = (Arc::clone(&received), Arc::clone(&behavior));
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let acceptor = acceptor.clone();
                let (r, b) = (Arc::clone(&r), Arc::clone(&b));
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = service_fn(move |request: hyper::Request<Incoming>| {
                        let (r, b) = (Arc::clone(&r), Arc::clone(&b));
                        async move { Ok::<_, Infallible>(answer(request, &r, &b).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, ca_pem: ca.cert_pem.clone(), received, behavior })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn set(&self, behavior: UpstreamBehavior) {
        *self.behavior.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = behavior;
    }

    /// Every request received so far, in arrival order.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// How many requests arrived so far.
    pub fn count(&self) -> usize {
        self.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

async fn answer(
    request: hyper::Request<Incoming>,
    received: &Mutex<Vec<ReceivedRequest>>,
    behavior: &Mutex<UpstreamBehavior>,
) -> hyper::Response<Full<Bytes>> {
    let method = request.method().to_string();
    let target = request.uri().path_and_query().map(ToString::to_string).unwrap_or_default();
    let headers = request
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = request.into_body().collect().await.map(|c| c.to_bytes().to_vec()).unwrap_or_default();
    received.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(ReceivedRequest {
        method,
        target: target.clone(),
        headers,
        body,
    });
    let behavior = behavior.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let (status, content_type, body) = match behavior {
        UpstreamBehavior::Respond { status, content_type, body } => (status, content_type, body),
        UpstreamBehavior::Delay(pause) => {
            tokio::time::sleep(pause).await;
            (200, "application/json".to_owned(), br#"{"ok":true}"#.to_vec())
        }
        UpstreamBehavior::Hang => hang().await,
        UpstreamBehavior::HangIf(text) if target.contains(&text) => hang().await,
        UpstreamBehavior::HangIf(_) => (200, "application/json".to_owned(), br#"{"ok":true}"#.to_vec()),
    };
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    if let Ok(value) = hyper::header::HeaderValue::from_str(&content_type) {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

async fn hang() -> (u16, String, Vec<u8>) {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    (504, "text/plain".to_owned(), Vec::new())
}
