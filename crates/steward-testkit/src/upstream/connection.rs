//! One accepted upstream connection, after its TLS handshake: reads HTTP/1.1 requests off the wire by
//! hand (so a test sees exactly the header lines that arrived, in order, duplicates included) and
//! writes whatever bytes it is told, when it is told. The scripted answers ([`super::Reply`]) are
//! played with these primitives; a hand-driven upstream gives the connection to the test instead.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::{ReceivedRequest, Shared};

/// How long [`UpstreamConnection::read_request`] and [`UpstreamConnection::closed_by_client`] wait
/// before failing the test (a bound against hanging, not a measurement).
const WAIT: Duration = Duration::from_secs(20);

/// One connection a client opened to the upstream (TLS done).
#[derive(Debug)]
pub struct UpstreamConnection {
    tls: TlsStream<TcpStream>,
    /// Bytes read but not parsed yet (the start of a pipelined request).
    buf: Vec<u8>,
    /// Which accepted TCP connection this is (0, 1, …).
    id: usize,
    sni: Option<String>,
    shared: Arc<Shared>,
}

impl UpstreamConnection {
    pub(super) fn new(tls: TlsStream<TcpStream>, id: usize, shared: Arc<Shared>) -> Self {
        let sni = tls.get_ref().1.server_name().map(str::to_owned);
        Self { tls, buf: Vec::new(), id, sni, shared }
    }

    /// Reads one request (head and body) and records it with the upstream; fails if none arrives
    /// within 20 s or the client closes the connection.
    pub async fn read_request(&mut self) -> Result<ReceivedRequest> {
        match tokio::time::timeout(WAIT, self.next_request()).await {
            Err(_) => bail!("no request arrived"),
            Ok(None) => bail!("the client closed the connection"),
            Ok(Some(request)) => Ok(request),
        }
    }

    /// The next request on this connection, recorded; `None` when the client closed it (or sent
    /// something that is not HTTP/1.1). Waits as long as the client keeps the connection idle.
    pub(super) async fn next_request(&mut self) -> Option<ReceivedRequest> {
        let head_end = loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                break pos;
            }
            self.fill().await.ok()?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next()?.split(' ');
        let method = request_line.next()?.to_owned();
        let target = request_line.next()?.to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let mut request = ReceivedRequest {
            method,
            target,
            headers,
            body: Vec::new(),
            connection: self.id,
            sni: self.sni.clone(),
        };
        let chunked = request
            .header_values("transfer-encoding")
            .iter()
            .any(|v| v.to_ascii_lowercase().trim_end().ends_with("chunked"));
        request.body = if chunked {
            self.chunked_body().await.ok()?
        } else {
            let length = request.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            self.exactly(length).await.ok()?
        };
        self.shared.record(request.clone());
        Some(request)
    }

    /// A request body in chunked framing, decoded (trailers are read and dropped).
    async fn chunked_body(&mut self) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.line().await?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16).context("chunk size")?;
            if size == 0 {
                while !self.line().await?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.exactly(size).await?);
            self.line().await?;
        }
    }

    /// One line without its CRLF.
    async fn line(&mut self) -> Result<String> {
        loop {
            if let Some(pos) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..pos]).into_owned();
                self.buf.drain(..pos + 2);
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    async fn exactly(&mut self, n: usize) -> Result<Vec<u8>> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(self.buf.drain(..n).collect())
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

    /// Writes a status line and these header lines exactly as given (name case and order kept),
    /// then the blank line.
    pub async fn head(&mut self, status: u16, headers: &[(&str, &str)]) -> Result<()> {
        let reason =
            http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("X");
        let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        self.write(head.as_bytes()).await
    }

    /// Writes a response head with `transfer-encoding: chunked` (body chunks follow with
    /// [`chunk`](Self::chunk) and [`end_chunks`](Self::end_chunks)).
    pub async fn chunked_head(&mut self, status: u16, headers: &[(&str, &str)]) -> Result<()> {
        let mut headers = headers.to_vec();
        headers.push(("transfer-encoding", "chunked"));
        self.head(status, &headers).await
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

    /// Makes dropping the connection reset it (RST) instead of closing it.
    pub(super) fn set_reset(&self) -> std::io::Result<()> {
        self.tls.get_ref().0.set_zero_linger()
    }

    pub(super) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Waits until the client closes the connection (end of stream or an error on read); fails
    /// if the client sends anything else or keeps it open for 20 s.
    pub async fn closed_by_client(&mut self) -> Result<()> {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(WAIT, self.tls.read(&mut chunk)).await {
            Err(_) => bail!("the client kept the connection open"),
            Ok(Ok(0)) | Ok(Err(_)) => Ok(()),
            Ok(Ok(_)) => bail!("the client sent more bytes instead of closing"),
        }
    }

    /// Waits, however long it takes, until the client lets go of the connection (whatever it
    /// still sends is dropped).
    pub(super) async fn until_client_leaves(&mut self) {
        let mut chunk = [0u8; 4096];
        while matches!(self.tls.read(&mut chunk).await, Ok(n) if n > 0) {}
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
