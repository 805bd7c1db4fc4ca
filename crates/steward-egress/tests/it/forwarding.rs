//! The forwarder against a real local HTTPS upstream (rustls, certificate from a test CA).

#![allow(clippy::unwrap_used)] // test helpers: a failure is a failed test

use crate::support;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use steward_egress::{EgressError, ForwardOutcome, Forwarder, OutgoingRequest, ValidatedTarget, guard};
use steward_testkit::upstream::{Reply, Step, TestUpstream};
use steward_types::ErrorCode;
use zeroize::Zeroizing;

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

async fn setup(reply: Reply) -> (TestUpstream, Arc<Forwarder>, ValidatedTarget) {
    let upstream = support::upstream(reply).await;
    let forwarder = support::forwarder(&upstream.ca_pem, |_| {});
    let target = target_for(&upstream).await;
    (upstream, forwarder, target)
}

async fn target_for(upstream: &TestUpstream) -> ValidatedTarget {
    let resolver = support::static_resolver(&[]);
    guard("localhost", upstream.addr.port(), &resolver, &support::loopback_allow()).await.unwrap()
}

fn get(path: &str) -> OutgoingRequest {
    OutgoingRequest::new("GET", path, "", vec![], Vec::new()).unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Zeroizing<String>)> {
    pairs.iter().map(|(n, v)| ((*n).to_owned(), Zeroizing::new((*v).to_owned()))).collect()
}

fn allow(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

async fn call(
    forwarder: &Forwarder,
    target: &ValidatedTarget,
    request: &OutgoingRequest,
) -> Result<ForwardOutcome, EgressError> {
    forwarder.forward(target, request, &allow(&["content-type", "x-request-id"])).await
}

/// A chunked answer of `chunks` chunks of `size` bytes.
fn chunked(chunks: usize, size: usize) -> Reply {
    let steps = (0..chunks).map(|_| Step::Send(vec![b'z'; size].into())).collect();
    Reply::chunked(200, &[("content-type", "application/octet-stream")], steps)
}

#[tokio::test]
async fn sends_exactly_the_canonical_request() {
    let (upstream, forwarder, target) =
        setup(Reply::full(200, &[("content-type", "application/json")], b"{}")).await;
    let request = OutgoingRequest::new(
        "POST",
        "/v1/items",
        "a=1&b=two",
        headers(&[
            ("content-type", "application/json"),
            ("x-request-id", "r-1"),
            ("authorization", "Bearer injected"),
            // Defensive: framing and Steward's own fields are never taken from the list.
            ("connection", "x-evil"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("host", "evil.example"),
            ("content-length", "999"),
            ("accept-encoding", "gzip"),
        ]),
        b"{\"name\":\"x\"}".to_vec(),
    )
    .unwrap();
    let outcome = call(&forwarder, &target, &request).await.unwrap();
    assert_eq!(outcome.status, 200);
    assert_eq!(outcome.resolved_ip, LOOPBACK);
    assert_eq!(&outcome.body[..], b"{}");

    let seen = upstream.received();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/v1/items?a=1&b=two");
    assert_eq!(r.sni.as_deref(), Some("localhost"));
    assert_eq!(r.body, b"{\"name\":\"x\"}");
    let mut names = r.names();
    names.sort();
    assert_eq!(
        names,
        vec!["accept-encoding", "authorization", "content-length", "content-type", "host", "x-request-id"],
        "exactly these headers arrived: {:?}",
        r.headers
    );
    assert_eq!(r.header_values("host"), vec![format!("localhost:{}", upstream.addr.port()).as_str()]);
    assert_eq!(r.header_values("accept-encoding"), vec!["identity"]);
    assert_eq!(r.header_values("content-length"), vec!["12"]);
    assert_eq!(r.header_values("authorization"), vec!["Bearer injected"]);
}

#[tokio::test]
async fn get_without_body_and_duplicate_headers() {
    let (upstream, forwarder, target) = setup(Reply::full(200, &[], b"ok")).await;
    let request =
        OutgoingRequest::new("GET", "/", "", headers(&[("accept", "a/b"), ("accept", "c/d")]), Vec::new())
            .unwrap();
    call(&forwarder, &target, &request).await.unwrap();
    let r = &upstream.received()[0];
    assert_eq!(r.header_values("accept"), vec!["a/b", "c/d"]);
    assert!(r.header_values("content-length").is_empty());
    assert!(r.header_values("transfer-encoding").is_empty());
}

#[tokio::test]
async fn response_headers_are_filtered() {
    let reply = Reply::full(
        201,
        &[
            ("Content-Type", "application/json"),
            ("X-Request-Id", "one"),
            ("Set-Cookie", "session=abc"),
            ("Connection", "keep-alive, x-hop"),
            ("X-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("X-Not-Allowlisted", "1"),
            ("X-Request-Id", "two"),
        ],
        b"{}",
    );
    let (_upstream, forwarder, target) = setup(reply).await;
    let outcome = forwarder
        .forward(
            &target,
            &get("/"),
            &allow(&["content-type", "x-request-id", "set-cookie", "x-hop", "keep-alive"]),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, 201);
    let pairs: Vec<(&str, &str)> = outcome.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(
        pairs,
        vec![("content-type", "application/json"), ("x-request-id", "one"), ("x-request-id", "two")]
    );
}

#[tokio::test]
async fn redirects_are_denied_but_304_passes() {
    for status in [301u16, 302, 303, 307, 308] {
        let (_u, forwarder, target) =
            setup(Reply::full(status, &[("location", "https://elsewhere.example/")], b"")).await;
        let err = call(&forwarder, &target, &get("/")).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::RedirectDenied, "{status}");
        assert_eq!(err.code().status(), 502);
    }
    let (_u, forwarder, target) = setup(Reply::full(304, &[("etag", "\"x\"")], b"")).await;
    let outcome = call(&forwarder, &target, &get("/")).await.unwrap();
    assert_eq!(outcome.status, 304);
    assert!(outcome.body.is_empty());
}

#[tokio::test]
async fn unsupported_answers() {
    let cases: Vec<(Reply, ErrorCode)> = vec![
        (
            Reply::full(200, &[("content-type", "text/event-stream")], b"data: x\n\n"),
            ErrorCode::UpstreamStreamingNotSupported,
        ),
        (
            Reply::full(200, &[("content-type", "application/x-ndjson; charset=utf-8")], b"{}\n"),
            ErrorCode::UpstreamStreamingNotSupported,
        ),
        (
            Reply::full(200, &[("content-encoding", "gzip")], b"\x1f\x8b"),
            ErrorCode::UpstreamEncodingNotSupported,
        ),
    ];
    for (reply, code) in cases {
        let (_u, forwarder, target) = setup(reply).await;
        assert_eq!(call(&forwarder, &target, &get("/")).await.unwrap_err().code(), code);
    }
    let (_u, forwarder, target) = setup(Reply::full(200, &[("content-encoding", "identity")], b"fine")).await;
    assert_eq!(&call(&forwarder, &target, &get("/")).await.unwrap().body[..], b"fine");
}

/// `{"echo":"Bearer sk-live-0123456789abcdef"}`, gzip-compressed (`gzip.compress(…, mtime=0)`): what
/// an upstream that compresses at the transfer layer sends. Compressed, the secret is not visible
/// to the scrubber.
const GZIPPED_ECHO: &[u8] = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xab\x56\x4a\x4d\xce\xc8\x57\xb2\x52\x72\x4a\x4d\x2c\x4a\x2d\x52\x28\xce\xd6\xcd\xc9\x2c\x4b\xd5\x35\x30\x34\x32\x36\x31\x35\x33\xb7\xb0\x4c\x4c\x4a\x4e\x49\x4d\x53\xaa\x05\x00\xaa\x01\xfe\xdb\x2a\x00\x00\x00";

/// A raw HTTP/1.1 answer with `transfer-encoding: {coding}` and `body` in one chunk (when the coding
/// ends in chunked) or delimited by closing the connection.
fn transfer_coded(coding: &str, body: &[u8]) -> Reply {
    let mut out =
        format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: {coding}\r\n\r\n")
            .into_bytes();
    if coding.trim().to_ascii_lowercase().ends_with("chunked") {
        out.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n0\r\n\r\n");
    } else {
        out.extend_from_slice(body);
    }
    Reply::Raw(out)
}

#[tokio::test]
async fn transfer_codings_other_than_chunked_are_refused() {
    for coding in ["gzip, chunked", "GZip,Chunked", "deflate,chunked", "x-marker-coding, chunked"] {
        let (_u, forwarder, target) = setup(transfer_coded(coding, GZIPPED_ECHO)).await;
        let err = call(&forwarder, &target, &get("/")).await.map(|o| o.body).unwrap_err();
        assert_eq!(err.code(), ErrorCode::UpstreamEncodingNotSupported, "{coding}: {err}");
        assert_eq!(err.code().status(), 502);
        let message = err.to_string().to_ascii_lowercase();
        assert!(message.contains("transfer-encoding"), "{message}");
        assert!(
            !message.contains("gzip") && !message.contains("deflate") && !message.contains("marker"),
            "{message}"
        );
    }
    // Plain chunked passes, whatever its case.
    for coding in ["chunked", "Chunked"] {
        let (_u, forwarder, target) = setup(transfer_coded(coding, b"{\"ok\":true}")).await;
        let outcome = call(&forwarder, &target, &get("/")).await.unwrap();
        assert_eq!(&outcome.body[..], b"{\"ok\":true}", "{coding}");
    }
}

#[tokio::test]
async fn upstream_header_values_stay_out_of_error_messages() {
    const MARKER: &str = "x-marker-7f3a9c";
    let cases = [
        Reply::full(200, &[("content-encoding", MARKER)], b"{}"),
        Reply::full(200, &[("content-encoding", &format!("identity, {MARKER}"))], b"{}"),
        Reply::full(200, &[("content-type", &format!("text/event-stream; {MARKER}=1"))], b"data: x\n\n"),
        transfer_coded(&format!("{MARKER}, chunked"), b"{}"),
    ];
    for reply in cases {
        let (_u, forwarder, target) = setup(reply).await;
        let err = call(&forwarder, &target, &get("/")).await.unwrap_err();
        assert!(!format!("{err} {err:?}").contains(MARKER), "{err} / {err:?}");
    }
}

#[tokio::test]
async fn oversized_bodies_declared_and_counted() {
    let limit = 1000u64;
    let big = vec![b'x'; 1001];
    for reply in [Reply::full(200, &[], &big), chunked(5, 300)] {
        let upstream = support::upstream(reply).await;
        let forwarder = support::forwarder(&upstream.ca_pem, |s| s.max_response_bytes = limit);
        let target = target_for(&upstream).await;
        let err = call(&forwarder, &target, &get("/")).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::UpstreamResponseTooLarge);
    }
    // Exactly at the limit, chunked: fine.
    let upstream = support::upstream(chunked(4, 250)).await;
    let forwarder = support::forwarder(&upstream.ca_pem, |s| s.max_response_bytes = limit);
    let target = target_for(&upstream).await;
    assert_eq!(call(&forwarder, &target, &get("/")).await.unwrap().body.len(), 1000);
}

#[tokio::test]
async fn a_hanging_upstream_times_out() {
    let upstream = support::upstream(Reply::Hang).await;
    let forwarder = support::forwarder(&upstream.ca_pem, |s| s.total_timeout = Duration::from_millis(400));
    let target = target_for(&upstream).await;
    let started = std::time::Instant::now();
    let err = call(&forwarder, &target, &get("/")).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::UpstreamTimeout);
    assert_eq!(err.code().status(), 504);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_silent_tls_handshake_is_a_connect_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            open.push(tcp);
        }
    });
    let ca = steward_testkit::pki::TestCa::new("unused").unwrap();
    let forwarder = support::forwarder(&ca.cert_pem, |s| s.connect_timeout = Duration::from_millis(300));
    let resolver = support::static_resolver(&[]);
    let target = guard("localhost", port, &resolver, &support::loopback_allow()).await.unwrap();
    let err = call(&forwarder, &target, &get("/")).await.unwrap_err();
    assert!(matches!(err, EgressError::ConnectTimeout { .. }), "{err}");
    assert_eq!(err.code(), ErrorCode::UpstreamTimeout);
}

#[tokio::test]
async fn refused_connections_and_untrusted_certificates_are_network_errors() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let ca = steward_testkit::pki::TestCa::new("unused").unwrap();
    let forwarder = support::forwarder(&ca.cert_pem, |_| {});
    let resolver = support::static_resolver(&[]);
    let target = guard("localhost", port, &resolver, &support::loopback_allow()).await.unwrap();
    assert_eq!(
        call(&forwarder, &target, &get("/")).await.unwrap_err().code(),
        ErrorCode::UpstreamNetworkError
    );

    // A certificate from a CA the forwarder does not trust.
    let upstream = support::upstream(Reply::full(200, &[], b"")).await;
    let target = target_for(&upstream).await;
    let err = call(&forwarder, &target, &get("/")).await.unwrap_err();
    assert!(matches!(err, EgressError::Tls { .. }), "{err}");
    assert_eq!(err.code(), ErrorCode::UpstreamNetworkError);
    // The message says the certificate was not trusted and names the setting that adds a CA.
    let text = err.to_string();
    assert!(text.contains("was not trusted") && text.contains("egress.extra_ca_files"), "{text}");
    assert!(upstream.received().is_empty());

    // A trusted certificate that does not name the host (SNI/verification use the canonical host).
    let forwarder = support::forwarder(&upstream.ca_pem, |_| {});
    let resolver = support::static_resolver(&[("other.test", &[LOOPBACK])]);
    let target =
        guard("other.test", upstream.addr.port(), &resolver, &support::loopback_allow()).await.unwrap();
    let err = call(&forwarder, &target, &get("/")).await.unwrap_err();
    assert!(matches!(err, EgressError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("not valid for the name other.test"), "{err}");
}

#[tokio::test]
async fn ip_literal_hosts_use_the_address_as_server_name() {
    let upstream = support::upstream(Reply::full(200, &[], b"ip")).await;
    let forwarder = support::forwarder(&upstream.ca_pem, |_| {});
    let resolver = support::static_resolver(&[]);
    let target =
        guard("127.0.0.1", upstream.addr.port(), &resolver, &support::loopback_allow()).await.unwrap();
    assert_eq!(&call(&forwarder, &target, &get("/")).await.unwrap().body[..], b"ip");
}

#[tokio::test]
async fn the_peer_is_rechecked_before_tls() {
    // A target validated under a wider allowlist than the forwarder's: the connector refuses the peer.
    let upstream = support::upstream(Reply::full(200, &[], b"")).await;
    let forwarder = support::forwarder(&upstream.ca_pem, |s| s.allow_cidrs.clear());
    let target = target_for(&upstream).await;
    let err = call(&forwarder, &target, &get("/")).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ResolvedIpDeniedLoopback);
    // The TCP connection was made, but no TLS handshake nor request followed.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn connections_are_reused() {
    let (upstream, forwarder, target) = setup(Reply::full(200, &[], b"again")).await;
    for _ in 0..3 {
        assert_eq!(&call(&forwarder, &target, &get("/")).await.unwrap().body[..], b"again");
    }
    assert_eq!(upstream.connection_count(), 1, "one TCP connection for sequential calls");
    let seen = upstream.received();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|r| r.connection == 0));
    assert_eq!(forwarder.idle_connections(), 1);
}

#[tokio::test]
async fn a_connection_closed_by_the_upstream_is_replaced() {
    let (upstream, forwarder, target) = setup(Reply::full(200, &[("connection", "close")], b"bye")).await;
    for _ in 0..2 {
        assert_eq!(&call(&forwarder, &target, &get("/")).await.unwrap().body[..], b"bye");
    }
    assert_eq!(upstream.connection_count(), 2);
}

#[tokio::test]
async fn failed_answers_are_not_pooled() {
    let (upstream, forwarder, target) = setup(Reply::full(302, &[("location", "/x")], b"")).await;
    for _ in 0..2 {
        assert_eq!(call(&forwarder, &target, &get("/")).await.unwrap_err().code(), ErrorCode::RedirectDenied);
    }
    assert_eq!(forwarder.idle_connections(), 0);
    assert_eq!(upstream.connection_count(), 2);
}

#[tokio::test]
async fn verification_cannot_be_skipped_with_a_bad_extra_ca() {
    let err = Forwarder::new(steward_egress::ForwarderSettings {
        extra_ca_pems: vec!["not a pem".into()],
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InternalError);
}

#[tokio::test]
async fn the_forwarder_is_shareable_across_tasks() {
    fn assert_send<T: Send>(t: T) -> T {
        t
    }
    let (upstream, forwarder, target) = setup(Reply::full(200, &[], b"spawned")).await;
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (forwarder, target) = (forwarder.clone(), target.clone());
            tokio::spawn(assert_send(async move {
                forwarder.forward(&target, &get("/"), &[]).await.map(|o| o.body)
            }))
        })
        .collect();
    for handle in handles {
        assert_eq!(&handle.await.unwrap().unwrap()[..], b"spawned");
    }
    assert!(upstream.connection_count() <= 4);
}
