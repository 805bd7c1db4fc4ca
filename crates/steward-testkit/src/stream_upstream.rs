//! An HTTPS/1.1 upstream the test drives by hand, byte by byte, for streaming tests: the test
//! accepts each connection, reads the request, then decides when each part of the answer goes out
//! (head, chunks, end), or stalls, or resets the connection, and can wait until the client closes
//! it. This lets a test prove ordering ("the client had chunk 1 before chunk 2 was written")
//! by handshake, never by wall-clock thresholds. Real TLS with a CA made at test time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::pki::TestCa;

/// How long [`StreamUpstream::accept`] and [`StreamConnection::read_request`] wait before failing the
/// test (a bound against hanging, not a measurement).
const WAIT: Duration = Duration::from_secs(20);

/// A listening upstream on 127.0.0.1 with a certificate for `localhost` and 127.0.0.1.
#[derive(Debug)]
pub struct StreamUpstream {
    pub addr: SocketAddr,
    pub ca_pem: String,
    accepted: Mutex<mpsc::UnboundedReceiver<StreamConnection>>,
}

/// One accepted connection, after its TLS handshake.
#[derive(Debug)]
pub struct StreamConnection {
    tls: TlsStream<TcpStream>,
    buf: Vec<u8>,
}

/// A request as the upstream read it.
#[derive(Debug, Clone)]
pub struct StreamRequest {
    pub method: String,
    pub target: String,
    /// Header lines in arrival order: (name lowercased, value).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl StreamRequest {
    /// Every value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }
}

impl StreamUpstream {
    /// Binds 127.0.0.1 on a free port; connections wait in a queue for [`accept`](Self::accept).
    pub async fn start() -> Result<Self> {
        let ca = TestCa::new("stream upstream CA")?;
        let leaf = ca.server_cert(&["localhost", "127.0.0.1"])?;
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
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (acceptor, sender) = (acceptor.clone(), sender.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let _ = sender.send(StreamConnection { tls, buf: Vec::new() });
                    }
                });
            }
        });
        Ok(Self { addr, ca_pem: ca.cert_pem.clone(), accepted: Mutex::new(receiver) })
    }

    /// The next connection a client opened (TLS done).
    pub async fn accept(&self) -> Result<StreamConnection> {
        let mut accepted = self.accepted.lock().await;
        match tokio::time::timeout(WAIT, accepted.recv()).await {
            Ok(Some(connection)) => Ok(connection),
            Ok(None) => bail!("the stream upstream stopped listening"),
            Err(_) => bail!("no connection reached the stream upstream"),
        }
    }

    /// A connection accepted right now, if one is waiting (to assert that none was opened).
    pub async fn try_accept(&self) -> Option<StreamConnection> {
        self.accepted.lock().await.try_recv().ok()
    }
}

impl StreamConnection {
    /// Reads one request (head and `content-length` body).
    pub async fn read_request(&mut self) -> Result<StreamRequest> {
        tokio::time::timeout(WAIT, self.read_request_inner()).await.context("no request arrived")?
    }

    async fn read_request_inner(&mut self) -> Result<StreamRequest> {
        let head_end = loop {
            if let Some(pos) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split(' ');
        let method = request_line.next().unwrap_or_default().to_owned();
        let target = request_line.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while self.buf.len() < length {
            self.fill().await?;
        }
        let body: Vec<u8> = self.buf.drain(..length).collect();
        Ok(StreamRequest { method, target, headers, body })
    }

    async fn fill(&mut self) -> Result<()> {
        let mut chunk = [0u8; 4096];
        let n = self.tls.read(&mut chunk).await?;
        if n == 0 {
            bail!("the client closed the connection");
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Writes raw bytes and flushes them to the socket.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.tls.write_all(bytes).await?;
        self.tls.flush().await?;
        Ok(())
    }

    /// Writes a response head with `transfer-encoding: chunked` (body chunks follow with
    /// [`chunk`](Self::chunk) and [`end_chunks`](Self::end_chunks)).
    pub async fn chunked_head(&mut self, status: u16, headers: &[(&str, &str)]) -> Result<()> {
        let mut head = format!("HTTP/1.1 {status} X\r\n");
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("transfer-encoding: chunked\r\n\r\n");
        self.write(head.as_bytes()).await
    }

    /// Writes one body chunk in chunked framing.
    pub async fn chunk(&mut self, data: &[u8]) -> Result<()> {
        let mut out = format!("{:x}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        self.write(&out).await
    }

    /// Writes the last chunk: the body is complete and the connection can carry another request.
    pub async fn end_chunks(&mut self) -> Result<()> {
        self.write(b"0\r\n\r\n").await
    }

    /// Resets the TCP connection (RST, no TLS close_notify): an upstream failing mid-answer.
    pub fn reset(self) -> Result<()> {
        self.tls.get_ref().0.set_zero_linger()?;
        drop(self);
        Ok(())
    }

    /// Waits until the client closes the connection (end of stream or an error on read); fails
    /// if the client sends anything else or keeps it open for `WAIT`.
    pub async fn closed_by_client(&mut self) -> Result<()> {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(WAIT, self.tls.read(&mut chunk)).await {
            Err(_) => bail!("the client kept the connection open"),
            Ok(Ok(0)) | Ok(Err(_)) => Ok(()),
            Ok(Ok(_)) => bail!("the client sent more bytes instead of closing"),
        }
    }
}
