//! A real local HTTPS upstream for execute tests: a rustls server with a certificate from its own
//! `TestCa` (Steward trusts it through `egress.extra_ca_files`), which records every request it
//! receives and answers as told ([`Behavior`]).

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
use steward_testkit::pki::TestCa;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Lowercase names, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    pub fn names(&self) -> Vec<&str> {
        self.headers.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// How the upstream answers.
#[derive(Debug, Clone)]
pub enum Behavior {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Echo the `authorization` and `x-api-key` headers and the query back, in a response header
    /// (`x-echo`) and the body, raw and encoded.
    Echo,
    /// Never answer.
    Hang,
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub ca_pem: String,
    received: Arc<Mutex<Vec<Received>>>,
    behavior: Arc<Mutex<Behavior>>,
}

impl Upstream {
    pub async fn start() -> Self {
        let ca = TestCa::new("execute test upstream CA").unwrap();
        let leaf =
            ca.server_cert(&["api.example.test", "other.example.test", "private.example.test"]).unwrap();
        let chain =
            CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
        let config =
            rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key).unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let behavior = Arc::new(Mutex::new(Behavior::Respond {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"ok":true}"#.to_vec(),
        }));
        let (r, b) = (received.clone(), behavior.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let acceptor = acceptor.clone();
                let (r, b) = (r.clone(), b.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = service_fn(move |request: hyper::Request<Incoming>| {
                        let (r, b) = (r.clone(), b.clone());
                        async move { Ok::<_, std::convert::Infallible>(answer(request, &r, &b).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self { addr, ca_pem: ca.cert_pem.clone(), received, behavior }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn set(&self, behavior: Behavior) {
        *self.behavior.lock().unwrap() = behavior;
    }

    pub fn respond(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        self.set(Behavior::Respond {
            status,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: body.to_vec(),
        });
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    pub fn last(&self) -> Received {
        self.received().last().cloned().expect("the upstream received nothing")
    }
}

async fn answer(
    request: hyper::Request<Incoming>,
    received: &Mutex<Vec<Received>>,
    behavior: &Mutex<Behavior>,
) -> hyper::Response<Full<Bytes>> {
    let method = request.method().to_string();
    let target = request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = request.into_body().collect().await.map(|c| c.to_bytes().to_vec()).unwrap_or_default();
    let record = Received { method, target, headers, body };
    received.lock().unwrap().push(record.clone());
    let behavior = behavior.lock().unwrap().clone();
    match behavior {
        Behavior::Respond { status, headers, body } => {
            let mut response = hyper::Response::builder().status(status);
            for (n, v) in headers {
                response = response.header(n, v);
            }
            response.body(Full::new(Bytes::from(body))).unwrap()
        }
        Behavior::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            hyper::Response::new(Full::new(Bytes::new()))
        }
        Behavior::Echo => {
            use base64::Engine as _;
            let secretish = [record.header("authorization"), record.header("x-api-key")]
                .into_iter()
                .flatten()
                .map(str::to_owned)
                .collect::<Vec<_>>();
            let mut body = String::new();
            for value in &secretish {
                let bare = value.strip_prefix("Bearer ").unwrap_or(value);
                body.push_str(&format!(
                    "raw={value} bare={bare} hex={} HEX={} b64={} b64url={} pct={} json={} ",
                    hex_of(bare.as_bytes()),
                    hex_of(bare.as_bytes()).to_uppercase(),
                    base64::engine::general_purpose::STANDARD.encode(bare),
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bare),
                    mixed_percent(value.as_bytes()),
                    json_unicode(bare.as_bytes()),
                ));
            }
            body.push_str(&format!("target={}", record.target));
            let echo = secretish.first().cloned().unwrap_or_else(|| record.target.clone());
            hyper::Response::builder()
                .status(200)
                .header("content-type", "text/plain")
                .header("x-echo", echo)
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        }
    }
}

/// Every other byte as lower-case `%xx`, spaces as `+`: a mix no fixed list of encodings holds.
pub fn mixed_percent(bytes: &[u8]) -> String {
    bytes
        .iter()
        .enumerate()
        .map(|(i, &b)| match b {
            b' ' => "+".to_owned(),
            _ if i % 2 == 0 => format!("%{b:02x}"),
            _ => char::from(b).to_string(),
        })
        .collect()
}

/// Every byte as `\u00XX`, as a JSON encoder escaping everything would write it.
pub fn json_unicode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\u{b:04x}")).collect()
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
