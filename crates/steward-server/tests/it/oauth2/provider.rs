//! A fake OAuth2 provider over HTTPS: `POST /token` is an RFC 6749 token endpoint that counts
//! requests and answers as told ([`TokenMode`]); every other path is the provider's API, which
//! accepts only the newest access token it issued (or answers 401 when told to).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use steward_testkit::pki::TestCa;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub const TOKEN_HOST: &str = "oauth.example.test";
pub const API_HOST: &str = "api.example.test";

/// One request as the provider received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.body.as_bytes()).into_owned().collect()
    }
    pub fn field(&self, name: &str) -> Option<String> {
        self.form().into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

#[derive(Debug, Clone)]
pub enum TokenMode {
    /// Issue `at-<n>-<random>` valid `expires_in` seconds, after `delay`; with `rotate`, a new refresh
    /// token `rt-rotated-<n>-<random>` too.
    Issue { expires_in: i64, rotate: bool, delay: Duration },
    /// Answer with this status and JSON body.
    Fail { status: u16, body: String },
    /// Never answer.
    Hang,
}

#[derive(Debug)]
struct Inner {
    token_mode: TokenMode,
    /// Whether the API answers 401 to everything.
    api_unauthorized: bool,
    token_requests: Vec<Received>,
    api_requests: Vec<Received>,
    /// Every token issued (access and refresh), to check they never leak.
    issued: Vec<String>,
    /// The newest access token: the only one the API accepts.
    current: Option<String>,
}

pub struct Provider {
    pub addr: SocketAddr,
    pub ca_pem: String,
    inner: Arc<Mutex<Inner>>,
}

impl Provider {
    pub async fn start() -> Self {
        Self::start_with("127.0.0.1:0", &[]).await
    }

    /// Binds `bind` with a certificate for the token and API hosts plus `extra_hosts` (e.g. Google's
    /// API hosts on port 443, for the built-in templates).
    pub async fn start_with(bind: &str, extra_hosts: &[&str]) -> Self {
        let ca = TestCa::new("oauth2 test provider CA").unwrap();
        let mut hosts = vec![TOKEN_HOST, API_HOST];
        hosts.extend_from_slice(extra_hosts);
        let leaf = ca.server_cert(&hosts).unwrap();
        let chain =
            CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
        let config =
            rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key).unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(bind).await.unwrap_or_else(|e| panic!("bind {bind}: {e}"));
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(Inner {
            token_mode: TokenMode::Issue { expires_in: 3600, rotate: false, delay: Duration::ZERO },
            api_unauthorized: false,
            token_requests: Vec::new(),
            api_requests: Vec::new(),
            issued: Vec::new(),
            current: None,
        }));
        let shared = inner.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let acceptor = acceptor.clone();
                let shared = shared.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = service_fn(move |request: hyper::Request<Incoming>| {
                        let shared = shared.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(request, &shared).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self { addr, ca_pem: ca.cert_pem.clone(), inner }
    }

    pub fn token_url(&self) -> String {
        format!("https://{TOKEN_HOST}:{}/token", self.addr.port())
    }

    pub fn set_token_mode(&self, mode: TokenMode) {
        self.inner.lock().unwrap().token_mode = mode;
    }

    pub fn issue(&self, expires_in: i64, rotate: bool) {
        self.set_token_mode(TokenMode::Issue { expires_in, rotate, delay: Duration::ZERO });
    }

    pub fn fail(&self, status: u16, body: serde_json::Value) {
        self.set_token_mode(TokenMode::Fail { status, body: body.to_string() });
    }

    pub fn set_api_unauthorized(&self, unauthorized: bool) {
        self.inner.lock().unwrap().api_unauthorized = unauthorized;
    }

    pub fn token_requests(&self) -> Vec<Received> {
        self.inner.lock().unwrap().token_requests.clone()
    }

    pub fn token_count(&self) -> usize {
        self.inner.lock().unwrap().token_requests.len()
    }

    pub fn api_requests(&self) -> Vec<Received> {
        self.inner.lock().unwrap().api_requests.clone()
    }

    pub fn issued(&self) -> Vec<String> {
        self.inner.lock().unwrap().issued.clone()
    }

    pub fn current_access_token(&self) -> Option<String> {
        self.inner.lock().unwrap().current.clone()
    }
}

fn respond(status: u16, body: String) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

async fn answer(request: hyper::Request<Incoming>, inner: &Mutex<Inner>) -> hyper::Response<Full<Bytes>> {
    let target = request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = request.into_body().collect().await.map(|c| c.to_bytes().to_vec()).unwrap_or_default();
    let received =
        Received { target: target.clone(), headers, body: String::from_utf8_lossy(&body).into_owned() };
    if target.starts_with("/token") {
        let mode = {
            let mut guard = inner.lock().unwrap();
            guard.token_requests.push(received);
            guard.token_mode.clone()
        };
        match mode {
            TokenMode::Issue { expires_in, rotate, delay } => {
                tokio::time::sleep(delay).await;
                let mut guard = inner.lock().unwrap();
                let n = guard.token_requests.len();
                let access = format!("at-{n}-{}", uuid::Uuid::new_v4().simple());
                let mut answer =
                    json!({"access_token": access, "token_type": "Bearer", "expires_in": expires_in});
                guard.issued.push(access.clone());
                guard.current = Some(access);
                if rotate {
                    let refresh = format!("rt-rotated-{n}-{}", uuid::Uuid::new_v4().simple());
                    guard.issued.push(refresh.clone());
                    answer["refresh_token"] = refresh.into();
                }
                respond(200, answer.to_string())
            }
            TokenMode::Fail { status, body } => respond(status, body),
            TokenMode::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                respond(500, String::new())
            }
        }
    } else {
        let mut guard = inner.lock().unwrap();
        let presented = received.header("authorization").map(str::to_owned);
        guard.api_requests.push(received);
        let valid = !guard.api_unauthorized
            && presented.is_some_and(|p| {
                Some(p.as_str()) == guard.current.as_deref().map(|c| format!("Bearer {c}")).as_deref()
            });
        if valid {
            // Echo the token back, as a careless upstream might: Steward must scrub it.
            let token = guard.current.clone().unwrap_or_default();
            respond(200, json!({"messages": [], "echo": token}).to_string())
        } else {
            respond(401, json!({"error": {"code": 401, "status": "UNAUTHENTICATED"}}).to_string())
        }
    }
}
