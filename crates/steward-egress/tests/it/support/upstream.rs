//! An HTTPS/1.1 upstream over a real rustls server. It parses requests by hand so tests see exactly
//! the header lines that arrived, in order, and it answers with whatever raw bytes the test says.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use steward_testkit::pki::TestCa;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    /// Header lines in arrival order: (name lowercased, value).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Which accepted TCP connection carried it (0, 1, …).
    pub connection: usize,
    /// The SNI the client sent.
    pub sni: Option<String>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }
    pub fn names(&self) -> Vec<&str> {
        self.headers.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// What the upstream does with a request.
pub enum Reply {
    /// Write these bytes (a complete HTTP/1.1 response) and keep the connection.
    Raw(Vec<u8>),
    /// Never answer.
    Hang,
}

pub type Responder = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub ca: Arc<TestCa>,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    pub connections: Arc<AtomicUsize>,
}

impl Upstream {
    /// A server on `ip:port` (port 0 = any) with a certificate for `localhost` and 127.0.0.1 from a
    /// fresh test CA.
    pub async fn start(ip: IpAddr, port: u16, responder: Responder) -> Self {
        let ca = Arc::new(TestCa::new("egress test upstream CA").unwrap());
        Self::start_with_ca(ip, port, ca, &["localhost", "127.0.0.1"], responder).await
    }

    pub async fn start_with_ca(
        ip: IpAddr,
        port: u16,
        ca: Arc<TestCa>,
        names: &[&str],
        responder: Responder,
    ) -> Self {
        let leaf = ca.server_cert(names).unwrap();
        let chain =
            CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(SocketAddr::new(ip, port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (log, count) = (requests.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let id = count.fetch_add(1, Ordering::SeqCst);
                let (acceptor, log, responder) = (acceptor.clone(), log.clone(), responder.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let sni = tls.get_ref().1.server_name().map(str::to_owned);
                    let mut buf = Vec::new();
                    loop {
                        let Some(mut request) = read_request(&mut tls, &mut buf).await else { return };
                        request.connection = id;
                        request.sni = sni.clone();
                        let reply = responder(&request);
                        log.lock().unwrap().push(request);
                        match reply {
                            Reply::Raw(bytes) => {
                                if tls.write_all(&bytes).await.is_err() || tls.flush().await.is_err() {
                                    return;
                                }
                            }
                            Reply::Hang => {
                                std::future::pending::<()>().await;
                            }
                        }
                    }
                });
            }
        });
        Self { addr, ca, requests, connections }
    }

    pub fn ca_pem(&self) -> String {
        self.ca.cert_pem.clone()
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Reads one request (head and `content-length` body); `None` at end of stream.
async fn read_request<S: AsyncReadExt + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> Option<Recorded> {
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize =
        headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    while buf.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body: Vec<u8> = buf.drain(..length).collect();
    Some(Recorded { method, target, headers, body, connection: 0, sni: None })
}

/// A complete response with `content-length`.
pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} X\r\n").into_bytes();
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    if status != 304 && status != 204 {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// A chunked response of `chunks` chunks of `size` bytes.
pub fn chunked(chunks: usize, size: usize) -> Vec<u8> {
    let mut out =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..chunks {
        out.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        out.extend(std::iter::repeat_n(b'z', size));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}
