//! Listener limits against slow and idle clients (`data_plane.header_read_timeout_ms`,
//! `idle_timeout_ms`, `max_connections_per_ip`), over real sockets: real TLS handshakes with
//! certificates generated at test time, HTTP/1.1 and raw HTTP/2 frames. Bounds are generous: the
//! tests assert behaviour (closed / served), not timing precision.

// Raw sockets against the listener under test (slow and idle clients).
// (`clippy.toml` bans `TcpStream::connect` outside steward-egress.)
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use common::{TestServer, free_port_env, install_crypto_provider};
use http::Method;
use steward_server::listener::{ServeOptions, Transport, serve_with};
use steward_server::proxy_protocol::encode;
use steward_server::tls::{ReloadableCert, data_plane_config};
use steward_testkit::http_client::{TlsOptions, request, tls_stream};
use steward_testkit::pki::TestCa;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

/// How long a misbehaving connection may stay open past its limit before the test fails.
const CLOSED_WITHIN: Duration = Duration::from_secs(5);

fn router() -> Router {
    Router::new()
        .route("/x", get(|| async { "ok" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                "done"
            }),
        )
        .route(
            "/stream",
            get(|| async {
                // Three chunks 700 ms apart: gaps longer than the idle timeout, inside one response.
                let chunks = futures::stream::unfold(0u8, |n| async move {
                    if n == 3 {
                        return None;
                    }
                    if n > 0 {
                        tokio::time::sleep(Duration::from_millis(700)).await;
                    }
                    Some((Ok::<_, std::io::Error>(Bytes::from(format!("chunk{n};"))), n + 1))
                });
                Body::from_stream(chunks)
            }),
        )
}

/// A listener under test.
struct Listener {
    addr: SocketAddr,
    tls: Option<TlsOptions>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Listener {
    async fn start(tls: bool, options: ServeOptions) -> Self {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("listener limits").unwrap();
        let (transport, client) = if tls {
            let leaf = ca.server_cert(&["localhost"]).unwrap();
            std::fs::write(dir.path().join("server.crt"), &leaf.cert_pem).unwrap();
            std::fs::write(dir.path().join("server.key"), &leaf.key_pem).unwrap();
            let cert =
                ReloadableCert::load(dir.path().join("server.crt"), dir.path().join("server.key")).unwrap();
            let config = data_plane_config(&ca.cert_pem, cert).unwrap();
            let transport = Transport::Tls(tokio_rustls::TlsAcceptor::from(Arc::new(config)));
            let client =
                TlsOptions { ca_pem: ca.cert_pem.clone(), server_name: "localhost".into(), client: None };
            (transport, Some(client))
        } else {
            (Transport::Plain, None)
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(serve_with("data_plane", listener, transport, router(), options, stop_rx));
        Self { addr, tls: client, stop, task, _dir: dir }
    }

    async fn get(&self, path: &str) -> anyhow::Result<steward_testkit::http_client::TestResponse> {
        request(self.addr, self.tls.as_ref(), Method::GET, path, &[], "").await
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        timeout(Duration::from_secs(30), self.task).await.unwrap().unwrap();
    }
}

fn options(max_connections: usize, header_ms: u64, idle_ms: u64, per_ip: usize) -> ServeOptions {
    ServeOptions {
        max_connections_per_ip: per_ip,
        header_read_timeout: Duration::from_millis(header_ms),
        idle_timeout: Duration::from_millis(idle_ms),
        ..ServeOptions::new(max_connections)
    }
}

/// Reads until the server closes the connection (EOF or reset); `false` if it is still open after
/// `within`. Whatever the server sends before closing is ignored.
async fn closed_within<S: AsyncRead + Unpin>(stream: &mut S, within: Duration) -> bool {
    let read_to_end = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    timeout(within, read_to_end).await.is_ok()
}

/// Reads one HTTP/1.1 response with a `content-length` body off a kept-alive stream; its body.
async fn read_response<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = timeout(Duration::from_secs(10), stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "the connection closed before the response was complete");
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok())?
                })
                .expect("content-length");
            if body.len() >= length {
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                return body[..length].to_owned();
            }
        }
    }
}

/// Writes `head` (repeated) one byte every 100 ms until a write fails (the server closed), at most 200.
fn trickle<W: AsyncWrite + Unpin + Send + 'static>(mut writer: W, head: &'static [u8]) -> JoinHandle<()> {
    tokio::spawn(async move {
        for byte in head.iter().cycle().take(200) {
            if writer.write_all(std::slice::from_ref(byte)).await.is_err() || writer.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

async fn tcp_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

#[tokio::test]
async fn silent_slow_and_idle_clients_are_closed_while_a_good_client_is_served() {
    let listener = Listener::start(true, options(8, 300, 500, 1000)).await;
    let tls = listener.tls.clone().unwrap();

    // An idle keep-alive client: one request, then nothing.
    let mut idle = tls_stream(listener.addr, &tls).await.unwrap();
    idle.write_all(b"GET /x HTTP/1.1\r\nhost: localhost\r\n\r\n").await.unwrap();
    assert_eq!(read_response(&mut idle).await, "ok");
    let idle_since = Instant::now();
    // Clients that connect and never send: three never start TLS, two finish the handshake.
    let mut silent_tcp = Vec::new();
    for _ in 0..3 {
        silent_tcp.push(TcpStream::connect(listener.addr).await.unwrap());
    }
    let mut silent_tls = Vec::new();
    for _ in 0..2 {
        silent_tls.push(tls_stream(listener.addr, &tls).await.unwrap());
    }
    // Clients that send half a request head, slowly (a byte every 100 ms, never the blank line).
    let mut slow = Vec::new();
    for _ in 0..1 {
        let stream = tls_stream(listener.addr, &tls).await.unwrap();
        let (reader, mut writer) = tokio::io::split(stream);
        writer.write_all(b"GET /x HTTP/1.1\r\n").await.unwrap();
        slow.push((reader, trickle(writer, b"x-slow: 1\r\n")));
    }
    // Seven of eight slots are held. A well-behaved client is served throughout.
    let good = {
        let addr = listener.addr;
        let tls = tls.clone();
        tokio::spawn(async move {
            for _ in 0..10 {
                let response =
                    timeout(Duration::from_secs(5), request(addr, Some(&tls), Method::GET, "/x", &[], ""))
                        .await
                        .expect("the good client is served in time")
                        .unwrap();
                assert_eq!(response.status, 200);
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };

    assert!(closed_within(&mut idle, CLOSED_WITHIN).await, "the idle keep-alive client was not closed");
    assert!(idle_since.elapsed() >= Duration::from_millis(400), "closed for idleness, not before");
    for (n, stream) in silent_tcp.iter_mut().enumerate() {
        assert!(closed_within(stream, CLOSED_WITHIN).await, "silent TCP client {n} was not closed");
    }
    for (n, stream) in silent_tls.iter_mut().enumerate() {
        assert!(closed_within(stream, CLOSED_WITHIN).await, "silent TLS client {n} was not closed");
    }
    for (n, (reader, writer)) in slow.iter_mut().enumerate() {
        assert!(closed_within(reader, CLOSED_WITHIN).await, "slow-head client {n} was not closed");
        writer.abort();
    }
    good.await.unwrap();

    // Every slot held by a client that never sends: they are reclaimed and a good client gets in.
    let mut hogs = Vec::new();
    for _ in 0..8 {
        hogs.push(TcpStream::connect(listener.addr).await.unwrap());
    }
    let response = timeout(Duration::from_secs(10), listener.get("/x"))
        .await
        .expect("served once the silent connections are closed")
        .unwrap();
    assert_eq!(response.status, 200);
    listener.stop().await;
}

#[tokio::test]
async fn a_request_in_flight_is_not_cut_by_the_idle_or_header_timeout() {
    let listener = Listener::start(true, options(8, 300, 300, 1000)).await;
    // A 2 s handler and a response streamed with 700 ms gaps, both longer than either timeout.
    let slow = listener.get("/slow").await.unwrap();
    assert_eq!((slow.status, String::from_utf8_lossy(&slow.body).into_owned()), (200, "done".into()));
    let streamed = listener.get("/stream").await.unwrap();
    assert_eq!(String::from_utf8_lossy(&streamed.body), "chunk0;chunk1;chunk2;");
    // The same over HTTP/2.
    let mut h2 = H2::connect(&listener).await;
    h2.get(1, "/slow").await;
    assert_eq!(h2.response_body(1).await, "done");
    h2.get(3, "/stream").await;
    assert_eq!(h2.response_body(3).await, "chunk0;chunk1;chunk2;");
    listener.stop().await;
}

#[tokio::test]
async fn an_http2_connection_without_open_streams_gets_goaway() {
    let listener = Listener::start(true, options(8, 300, 500, 1000)).await;
    let mut h2 = H2::connect(&listener).await;
    h2.get(1, "/x").await;
    assert_eq!(h2.response_body(1).await, "ok");
    // PINGs every 100 ms are not requests: the connection is idle all the same.
    let started = Instant::now();
    let H2 { reader, writer } = &mut h2;
    let pinging = async {
        loop {
            writer.frame(0x6, 0, 0, &[7; 8]).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let goaway = async {
        loop {
            match read_frame(reader).await {
                Some(frame) if frame.kind == 0x7 => return Some(frame),
                Some(_) => {}
                None => return None,
            }
        }
    };
    let goaway = timeout(CLOSED_WITHIN, async {
        tokio::select! {
            goaway = goaway => goaway,
            () = pinging => unreachable!(),
        }
    })
    .await
    .expect("GOAWAY within the bound")
    .expect("GOAWAY before the connection closes");
    assert_eq!(goaway.payload[4..8], [0, 0, 0, 0], "GOAWAY with NO_ERROR");
    assert!(started.elapsed() >= Duration::from_millis(400), "not before the idle timeout");
    // The client acknowledges what it gets; the server then closes the connection.
    assert!(timeout(CLOSED_WITHIN, h2.until_closed()).await.is_ok(), "the connection closes after GOAWAY");
    listener.stop().await;
}

#[tokio::test]
async fn an_http2_header_block_is_bounded_by_the_header_timeout() {
    // A long idle timeout: only the header timeout can close this connection in time.
    let listener = Listener::start(true, options(8, 300, 60_000, 1000)).await;
    let mut h2 = H2::connect(&listener).await;
    h2.get(1, "/x").await;
    assert_eq!(h2.response_body(1).await, "ok");
    // Kept alive with no stream: still open after several header timeouts.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    h2.get(3, "/x").await;
    assert_eq!(h2.response_body(3).await, "ok");
    // A HEADERS frame without END_HEADERS, and the CONTINUATION never comes.
    h2.frame(0x1, 0x1, 5, &[0x82, 0x87]).await;
    let started = Instant::now();
    let frames = timeout(CLOSED_WITHIN, h2.until_closed())
        .await
        .expect("an unfinished header block closes the connection");
    assert!(frames.iter().all(|f| f.kind != 0x7), "closed at once, not with a graceful GOAWAY");
    assert!(started.elapsed() >= Duration::from_millis(250), "not before the header timeout");
    listener.stop().await;
}

#[tokio::test]
async fn connections_over_the_per_ip_cap_are_closed_before_tls() {
    // A long header timeout: a refused connection is closed at once, not when that runs out.
    let listener = Listener::start(true, options(64, 10_000, 60_000, 2)).await;
    let tls = listener.tls.clone().unwrap();
    let mut kept = Vec::new();
    for _ in 0..2 {
        let mut stream = tls_stream(listener.addr, &tls).await.unwrap();
        stream.write_all(b"GET /x HTTP/1.1\r\nhost: localhost\r\n\r\n").await.unwrap();
        assert_eq!(read_response(&mut stream).await, "ok");
        kept.push(stream);
    }
    // The third connection from 127.0.0.1 is closed without a handshake.
    let mut third = TcpStream::connect(listener.addr).await.unwrap();
    assert!(closed_within(&mut third, Duration::from_secs(2)).await, "over the cap: closed at once");
    assert!(tls_stream(listener.addr, &tls).await.is_err(), "no TLS handshake over the cap");
    // The connections under the cap keep working.
    for stream in &mut kept {
        stream.write_all(b"GET /x HTTP/1.1\r\nhost: localhost\r\n\r\n").await.unwrap();
        assert_eq!(read_response(stream).await, "ok");
    }
    // Another address has its own count.
    let mut other = tcp_from("127.0.0.2", listener.addr).await;
    other.write_all(b"\x16\x03\x01").await.unwrap();
    assert!(
        !closed_within(&mut other, Duration::from_millis(500)).await,
        "127.0.0.2 is under its cap and waits for the rest of its handshake"
    );
    // A slot freed by closing one connection is usable again.
    drop(kept.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(listener.get("/x").await.unwrap().status, 200);
    listener.stop().await;
}

#[tokio::test]
async fn the_per_ip_cap_counts_the_proxy_protocol_source() {
    let listener =
        Listener::start(false, ServeOptions { proxy_protocol: true, ..options(64, 10_000, 60_000, 1) }).await;
    let proxied = |ip: &str| encode(Some((SocketAddr::new(ip.parse().unwrap(), 40_000), listener.addr)), &[]);
    let mut first = TcpStream::connect(listener.addr).await.unwrap();
    first.write_all(&proxied("10.0.0.1")).await.unwrap();
    first.write_all(b"GET /x HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    assert_eq!(read_response(&mut first).await, "ok");
    // Same balancer (TCP peer), same client behind it: over that client's cap of one.
    let mut second = TcpStream::connect(listener.addr).await.unwrap();
    second.write_all(&proxied("10.0.0.1")).await.unwrap();
    assert!(closed_within(&mut second, Duration::from_secs(2)).await, "10.0.0.1 is over its cap");
    // Same balancer, another client: served.
    let mut third = TcpStream::connect(listener.addr).await.unwrap();
    third.write_all(&proxied("10.0.0.2")).await.unwrap();
    third.write_all(b"GET /x HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    assert_eq!(read_response(&mut third).await, "ok");
    listener.stop().await;
}

/// The configuration keys reach both listeners of a running Steward; the admin listener (plain HTTP)
/// closes slow and silent clients and counts refused connections in `/metrics`.
#[tokio::test]
async fn a_running_steward_applies_the_limits_to_both_listeners() {
    let dir = tempfile::tempdir().unwrap();
    common::init_data_dir(dir.path()).await;
    let env = free_port_env(&[
        ("STEWARD_DATA_PLANE__HEADER_READ_TIMEOUT_MS", "300"),
        ("STEWARD_DATA_PLANE__IDLE_TIMEOUT_MS", "500"),
    ]);
    let server = TestServer::start(dir.path(), env).await.unwrap();
    for addr in [server.admin_addr, server.data_addr] {
        let mut silent = TcpStream::connect(addr).await.unwrap();
        assert!(closed_within(&mut silent, CLOSED_WITHIN).await, "silent client on {addr}");
    }
    let mut slow = TcpStream::connect(server.admin_addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let (mut reader, writer) = slow.into_split();
    let writing = trickle(writer, b"x-slow: 1\r\n");
    assert!(closed_within(&mut reader, CLOSED_WITHIN).await, "slow-head client on the admin listener");
    writing.abort();
    let mut idle = TcpStream::connect(server.admin_addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    read_response(&mut idle).await;
    assert!(closed_within(&mut idle, CLOSED_WITHIN).await, "idle keep-alive client on the admin listener");
    server.stop().await;

    let dir = tempfile::tempdir().unwrap();
    common::init_data_dir(dir.path()).await;
    let env = free_port_env(&[("STEWARD_DATA_PLANE__MAX_CONNECTIONS_PER_IP", "2")]);
    let server = TestServer::start(dir.path(), env).await.unwrap();
    let mut kept = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.admin_addr).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        read_response(&mut stream).await;
        kept.push(stream);
    }
    let mut over = TcpStream::connect(server.admin_addr).await.unwrap();
    assert!(closed_within(&mut over, Duration::from_secs(2)).await, "over the cap on the admin listener");
    // Under the cap, on a connection already open: still served.
    kept[0].write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let metrics = read_response(&mut kept[0]).await;
    assert!(
        metrics.lines().any(|line| line.starts_with("steward_connections_closed_total")
            && line.contains(r#"listener="admin""#)
            && line.contains(r#"reason="per_ip_limit""#)),
        "{metrics}"
    );
    drop(kept);
    server.stop().await;
}

/// A raw HTTP/2 client: the preface, frames written by hand, frames read back. Enough to see
/// GOAWAY and to send a header block that never ends.
struct H2 {
    reader: tokio::io::ReadHalf<tokio_rustls::client::TlsStream<TcpStream>>,
    writer: H2Writer,
}

struct H2Writer(tokio::io::WriteHalf<tokio_rustls::client::TlsStream<TcpStream>>);

struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

impl H2Writer {
    async fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        // A write may fail once the server has closed; the reads say what happened.
        let _ = self.0.write_all(&out).await;
        let _ = self.0.flush().await;
    }
}

/// The next frame, or `None` once the server closed the connection.
async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Option<Frame> {
    let mut header = [0u8; 9];
    reader.read_exact(&mut header).await.ok()?;
    let len = (usize::from(header[0]) << 16) | (usize::from(header[1]) << 8) | usize::from(header[2]);
    let mut payload = vec![0u8; len];
    reader.read_exact(&mut payload).await.ok()?;
    let stream = u32::from_be_bytes([header[5] & 0x7f, header[6], header[7], header[8]]);
    Some(Frame { kind: header[3], flags: header[4], stream, payload })
}

impl H2 {
    async fn connect(listener: &Listener) -> Self {
        let mut stream = tls_stream(listener.addr, listener.tls.as_ref().unwrap()).await.unwrap();
        stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
        let (reader, writer) = tokio::io::split(stream);
        let mut h2 = Self { reader, writer: H2Writer(writer) };
        h2.writer.frame(0x4, 0, 0, &[]).await;
        h2
    }

    async fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        self.writer.frame(kind, flags, stream, payload).await;
    }

    /// `GET path` on `stream`: one HEADERS frame (END_HEADERS | END_STREAM), HPACK without indexing
    /// state (static-table indexes and literals).
    async fn get(&mut self, stream: u32, path: &str) {
        let mut block = vec![0x82, 0x87]; // :method GET, :scheme https
        block.push(0x04); // :path, literal without indexing
        block.push(u8::try_from(path.len()).unwrap());
        block.extend_from_slice(path.as_bytes());
        block.push(0x01); // :authority, literal without indexing
        block.push(9);
        block.extend_from_slice(b"localhost");
        self.frame(0x1, 0x4 | 0x1, stream, &block).await;
    }

    /// Reads frames until the server closes the connection, acknowledging SETTINGS and PINGs; the
    /// frames read.
    async fn until_closed(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = read_frame(&mut self.reader).await {
            self.acknowledge(&frame).await;
            frames.push(frame);
        }
        frames
    }

    async fn acknowledge(&mut self, frame: &Frame) {
        match frame.kind {
            0x4 if frame.flags & 0x1 == 0 => self.writer.frame(0x4, 0x1, 0, &[]).await,
            0x6 if frame.flags & 0x1 == 0 => self.writer.frame(0x6, 0x1, 0, &frame.payload).await,
            _ => {}
        }
    }

    /// The DATA of `stream` up to END_STREAM.
    async fn response_body(&mut self, stream: u32) -> String {
        let mut body = Vec::new();
        let read = async {
            loop {
                let frame =
                    read_frame(&mut self.reader).await.expect("the connection stays open for the response");
                self.acknowledge(&frame).await;
                match frame.kind {
                    0x0 if frame.stream == stream => {
                        body.extend_from_slice(&frame.payload);
                        if frame.flags & 0x1 != 0 {
                            return;
                        }
                    }
                    0x1 if frame.stream == stream && frame.flags & 0x1 != 0 => return,
                    0x3 | 0x7 => panic!("stream reset or GOAWAY while waiting for the response"),
                    _ => {}
                }
            }
        };
        timeout(Duration::from_secs(10), read).await.expect("the response in time");
        String::from_utf8(body).unwrap()
    }
}
