//! A real local HTTPS upstream for forward-mode tests: a rustls server (certificate from its own
//! `TestCa`, trusted by Steward through `egress.extra_ca_files`) that records each request and
//! answers with a scripted body, chunk by chunk: send, wait for the test's signal, sleep, cut the
//! connection or hang. Whether Steward let go of the upstream connection is observable too.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use std::pin::Pin;

use futures::Stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use steward_testkit::pki::TestCa;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query, as on the wire.
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

/// One step of a scripted answer body.
#[derive(Debug, Clone)]
pub enum Step {
    /// Send these bytes as one chunk.
    Send(Bytes),
    /// Wait until the test signals.
    Wait(Arc<Notify>),
    Sleep(Duration),
    /// Cut the connection (the body fails).
    Abort,
    /// Never send anything more.
    Hang,
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub steps: Vec<Step>,
}

impl Reply {
    pub fn new(status: u16, headers: &[(&str, &str)], steps: Vec<Step>) -> Self {
        Self { status, headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(), steps }
    }

    /// A whole body in one chunk.
    pub fn full(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Self {
        Self::new(status, headers, vec![send(body)])
    }
}

/// `Step::Send` of `bytes`.
pub fn send(bytes: &[u8]) -> Step {
    Step::Send(Bytes::copy_from_slice(bytes))
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub ca_pem: String,
    received: Arc<Mutex<Vec<Received>>>,
    replies: Arc<Mutex<VecDeque<Reply>>>,
    /// Answer bodies whose reader (Steward) went away before the script ended.
    abandoned: Arc<AtomicUsize>,
}

impl Upstream {
    pub async fn start() -> Self {
        let ca = TestCa::new("forward test upstream CA").unwrap();
        let leaf = ca.server_cert(&["api.example.test"]).unwrap();
        let chain =
            CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
        let config =
            rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key).unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = Self {
            addr,
            ca_pem: ca.cert_pem.clone(),
            received: Arc::default(),
            replies: Arc::default(),
            abandoned: Arc::default(),
        };
        let (received, replies, abandoned) =
            (upstream.received.clone(), upstream.replies.clone(), upstream.abandoned.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let acceptor = acceptor.clone();
                let (received, replies, abandoned) = (received.clone(), replies.clone(), abandoned.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = service_fn(move |request: hyper::Request<Incoming>| {
                        let (received, replies, abandoned) =
                            (received.clone(), replies.clone(), abandoned.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                answer(request, &received, &replies, abandoned).await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        upstream
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Queues the answer to the next request (without one: `200 {"ok":true}`).
    pub fn reply(&self, reply: Reply) {
        self.replies.lock().unwrap().push_back(reply);
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

    /// How many answers lost their reader before their script ended.
    pub fn abandoned(&self) -> usize {
        self.abandoned.load(Ordering::SeqCst)
    }
}

type Frames = StreamBody<Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send>>>;

async fn answer(
    request: hyper::Request<Incoming>,
    received: &Mutex<Vec<Received>>,
    replies: &Mutex<VecDeque<Reply>>,
    abandoned: Arc<AtomicUsize>,
) -> hyper::Response<Frames> {
    let method = request.method().to_string();
    let target = request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = request.into_body().collect().await.map(|c| c.to_bytes().to_vec()).unwrap_or_default();
    received.lock().unwrap().push(Received { method, target, headers, body });
    let reply = replies
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| Reply::full(200, &[("content-type", "application/json")], br#"{"ok":true}"#));
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
    tokio::spawn(async move {
        for step in reply.steps {
            match step {
                Step::Send(bytes) => {
                    if sender.send(Ok(Frame::data(bytes))).await.is_err() {
                        abandoned.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
                Step::Wait(signal) => signal.notified().await,
                Step::Sleep(duration) => tokio::time::sleep(duration).await,
                Step::Abort => {
                    let _ = sender.send(Err(std::io::Error::other("scripted abort"))).await;
                    return;
                }
                Step::Hang => {
                    // Until Steward lets go of the body.
                    sender.closed().await;
                    abandoned.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
        }
    });
    let mut response = hyper::Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    let frames = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|frame| (frame, receiver))
    });
    response.body(StreamBody::new(Box::pin(frames) as Pin<Box<dyn Stream<Item = _> + Send>>)).unwrap()
}
