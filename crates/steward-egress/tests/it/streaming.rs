//! The streaming forward (forward mode) against a real local HTTPS upstream that the test drives
//! step by step (`steward_testkit::upstream`, hand-driven): ordering is proven by handshake (the client
//! holds a chunk before the upstream writes the next one), never by wall-clock thresholds.

#![allow(clippy::unwrap_used)] // test helpers: a failure is a failed test

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use steward_egress::{
    BodyChunk, Forwarder, OutgoingRequest, Provider, ResponseBody, Scrubber, StreamEnd, StreamLimits,
    StreamScrubber, StreamingResponse, UsageMeter, ValidatedTarget, guard,
};
use steward_testkit::upstream::{TestUpstream, UpstreamConnection};
use steward_types::ErrorCode;

const SECRET: &str = "sk-live-0123456789abcdef";

async fn setup(
    tweak: impl FnOnce(&mut steward_egress::ForwarderSettings),
) -> (TestUpstream, Arc<Forwarder>, ValidatedTarget) {
    let upstream = TestUpstream::hand_driven().await.unwrap();
    let forwarder = support::forwarder(&upstream.ca_pem, tweak);
    let resolver = support::static_resolver(&[]);
    let target =
        guard("localhost", upstream.addr.port(), &resolver, &support::loopback_allow()).await.unwrap();
    (upstream, forwarder, target)
}

fn get() -> OutgoingRequest {
    OutgoingRequest::new("GET", "/v1/stream", "", vec![], Vec::new()).unwrap()
}

fn limits(tweak: impl FnOnce(&mut StreamLimits)) -> StreamLimits {
    let mut limits = StreamLimits::default();
    tweak(&mut limits);
    limits
}

/// Opens a stream while the upstream side accepts, reads the request and runs `answer` (the head and
/// whatever the test wants sent before the client reads).
async fn open<F, Fut>(
    upstream: &TestUpstream,
    forwarder: &Forwarder,
    target: &ValidatedTarget,
    limits: StreamLimits,
    answer: F,
) -> (Result<StreamingResponse, steward_egress::EgressError>, UpstreamConnection)
where
    F: FnOnce(UpstreamConnection) -> Fut,
    Fut: std::future::Future<Output = UpstreamConnection>,
{
    let allow = vec!["content-type".to_owned()];
    let request = get();
    let upstream_side = async {
        let mut connection = upstream.accept().await.unwrap();
        let request = connection.read_request().await.unwrap();
        assert_eq!(request.header_values("accept-encoding"), vec!["identity"]);
        answer(connection).await
    };
    tokio::join!(forwarder.forward_stream(target, &request, &allow, limits), upstream_side)
}

/// The next chunk, failing the test (instead of hanging) if nothing comes.
async fn next(body: &mut ResponseBody) -> BodyChunk {
    tokio::time::timeout(Duration::from_secs(20), body.next_chunk()).await.expect("the body never moved")
}

fn data(chunk: BodyChunk) -> Vec<u8> {
    match chunk {
        BodyChunk::Data(bytes) => bytes.to_vec(),
        BodyChunk::End(end) => panic!("expected data, the stream ended: {end}"),
    }
}

async fn sse_head(mut connection: UpstreamConnection) -> UpstreamConnection {
    connection.chunked_head(200, &[("content-type", "text/event-stream; charset=utf-8")]).await.unwrap();
    connection
}

#[tokio::test]
async fn chunks_reach_the_client_before_the_upstream_writes_the_next_one() {
    let (upstream, forwarder, target) = setup(|_| {}).await;
    let (response, mut connection) =
        open(&upstream, &forwarder, &target, StreamLimits::default(), |mut c| async {
            c = sse_head(c).await;
            c.chunk(b"event: start\ndata: {\"n\":1}\n\n").await.unwrap();
            c
        })
        .await;
    let mut response = response.unwrap();
    assert_eq!(response.status, 200);
    assert!(response.stream);
    assert_eq!(response.media_type.as_deref(), Some("text/event-stream"));
    assert_eq!(
        response.headers,
        vec![("content-type".to_owned(), "text/event-stream; charset=utf-8".to_owned())]
    );
    // The upstream has written one chunk and waits: the client must already have it.
    assert_eq!(data(next(&mut response.body).await), b"event: start\ndata: {\"n\":1}\n\n");
    connection.chunk(b"data: {\"n\":2}\n\n").await.unwrap();
    assert_eq!(data(next(&mut response.body).await), b"data: {\"n\":2}\n\n");
    connection.end_chunks().await.unwrap();
    assert_eq!(next(&mut response.body).await, BodyChunk::End(StreamEnd::Complete));
    assert_eq!(next(&mut response.body).await, BodyChunk::End(StreamEnd::Complete));
    assert_eq!(response.body.received(), 43);
    // Read to its end: the connection is pooled and carries the next request.
    assert_eq!(forwarder.idle_connections(), 1);
    let allow: Vec<String> = Vec::new();
    let request = get();
    let reuse = async {
        connection.read_request().await.unwrap();
        connection.chunked_head(200, &[]).await.unwrap();
        connection.end_chunks().await.unwrap();
    };
    let (second, ()) =
        tokio::join!(forwarder.forward_stream(&target, &request, &allow, StreamLimits::default()), reuse);
    let mut second = second.unwrap();
    assert!(!second.stream);
    assert_eq!(next(&mut second.body).await, BodyChunk::End(StreamEnd::Complete));
    assert!(upstream.try_accept().await.is_none(), "a second connection was opened");
}

#[tokio::test]
async fn a_secret_split_across_upstream_chunks_is_scrubbed_and_usage_is_metered() {
    let (upstream, forwarder, target) = setup(|_| {}).await;
    let (response, mut connection) = open(&upstream, &forwarder, &target, StreamLimits::default(), |mut c| async {
        c = sse_head(c).await;
        c.chunk(b"data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":11}}}\n\ndata: {\"echo\":\"sk-live-0123").await.unwrap();
        c
    })
    .await;
    let mut response = response.unwrap();
    let scrubber = Arc::new(Scrubber::new(&[SECRET]).unwrap());
    let mut scrub = StreamScrubber::new(scrubber);
    let mut meter = UsageMeter::new(Provider::Anthropic, response.media_type.as_deref());
    let mut sent = Vec::new();
    let first = data(next(&mut response.body).await);
    meter.push(&first);
    let out = scrub.push(&first);
    // The whole first event goes out at once; only the possible start of the secret is held.
    assert!(out.ends_with(b"\n\ndata: {\"echo\":\""), "{}", String::from_utf8_lossy(&out));
    assert_eq!(scrub.held(), "sk-live-0123".len());
    sent.extend_from_slice(&out);
    connection
        .chunk(b"456789abcdef\"}\n\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}}\n\n")
        .await
        .unwrap();
    connection.end_chunks().await.unwrap();
    loop {
        match next(&mut response.body).await {
            BodyChunk::Data(bytes) => {
                meter.push(&bytes);
                sent.extend_from_slice(&scrub.push(&bytes));
            }
            BodyChunk::End(end) => {
                assert_eq!(end, StreamEnd::Complete);
                break;
            }
        }
    }
    sent.extend_from_slice(&scrub.finish());
    let text = String::from_utf8(sent).unwrap();
    assert!(text.contains("data: {\"echo\":\"[REDACTED]\"}\n\n"), "{text}");
    assert!(!text.contains("0123456789"), "{text}");
    assert!(scrub.redacted());
    let usage = meter.finish().unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (Some(11), Some(5)));
}

#[tokio::test]
async fn a_silent_upstream_ends_the_stream_with_idle_timeout_and_the_connection_is_closed() {
    let (upstream, forwarder, target) = setup(|_| {}).await;
    let limits = limits(|l| l.idle_timeout = Duration::from_millis(300));
    let (response, mut connection) = open(&upstream, &forwarder, &target, limits, |mut c| async {
        c = sse_head(c).await;
        c.chunk(b"data: 1\n\n").await.unwrap();
        c
    })
    .await;
    let mut response = response.unwrap();
    assert_eq!(data(next(&mut response.body).await), b"data: 1\n\n");
    assert_eq!(next(&mut response.body).await, BodyChunk::End(StreamEnd::IdleTimeout));
    connection.closed_by_client().await.unwrap();
    assert_eq!(forwarder.idle_connections(), 0);
}

#[tokio::test]
async fn the_stream_duration_limit_ends_it_with_max_seconds() {
    let (upstream, forwarder, target) = setup(|_| {}).await;
    let limits = limits(|l| l.max_duration = Duration::from_millis(500));
    let (response, mut connection) = open(&upstream, &forwarder, &target, limits, sse_head).await;
    let mut response = response.unwrap();
    assert_eq!(next(&mut response.body).await, BodyChunk::End(StreamEnd::MaxSeconds));
    connection.closed_by_client().await.unwrap();
}

#[tokio::test]
async fn max_bytes_cuts_the_stream_at_the_limit() {
    let (upstream, forwarder, target) = setup(|_| {}).await;
    let limits = limits(|l| l.max_bytes = 10);
    let (response, mut connection) = open(&upstream, &forwarder, &target, limits, |mut c| async {
        c = sse_head(c).await;
        c.chunk(b"123456").await.unwrap();
        c
    })
    .await;
    let mut response = response.unwrap();
    assert_eq!(data(next(&mut response.body).await), b"123456");
    connection.chunk(b"789abc").await.unwrap();
    assert_eq!(data(next(&mut response.body).await), b"789a");
    assert_eq!(next(&mut response.body).await, BodyChunk::End(StreamEnd::MaxBytes));
    assert_eq!(response.body.received(), 10);
    connection.closed_by_client().await.unwrap();
    assert_eq!(forwarder.idle_connections(), 0);

    // A declared length above the limit is refused before any body.
    let (response, _c) = open(&upstream, &forwarder, &target, limits, |mut c| async {
        c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n0123456789a").await.unwrap();
        c
    })
    .await;
    assert_eq!(response.unwrap_err().code(), ErrorCode::UpstreamResponseTooLarge);
}

#[tokio::test]
async fn an_upstream_reset_mid_stream_ends_it_with_upstream_error() {
    let (upstream, forwarder, target) = setup(|_| {}).await;
    let (response, connection) =
        open(&upstream, &forwarder, &target, StreamLimits::default(), |mut c| async {
            c = sse_head(c).await;
            c.chunk(b"data: partial\n\n").await.unwrap();
            c
        })
        .await;
    let mut response = response.unwrap();
    assert_eq!(data(next(&mut response.body).await), b"data: partial\n\n");
    connection.reset().unwrap();
    assert_eq!(next(&mut response.body).await, BodyChunk::End(StreamEnd::UpstreamError));
    assert!(response.body.upstream_error().is_some());
    assert_eq!(forwarder.idle_connections(), 0);
}

#[tokio::test]
async fn dropping_the_body_early_closes_the_upstream_connection() {
    let (upstream, forwarder, target) = setup(|_| {}).await;
    let (response, mut connection) =
        open(&upstream, &forwarder, &target, StreamLimits::default(), |mut c| async {
            c = sse_head(c).await;
            c.chunk(b"data: 1\n\n").await.unwrap();
            c
        })
        .await;
    let mut response = response.unwrap();
    assert_eq!(data(next(&mut response.body).await), b"data: 1\n\n");
    // The client left (the server drops the body): the half-read connection is closed, not pooled.
    drop(response);
    connection.closed_by_client().await.unwrap();
    assert_eq!(forwarder.idle_connections(), 0);
}

#[tokio::test]
async fn compressed_or_reframed_answers_are_refused_in_stream_mode() {
    let (upstream, forwarder, target) = setup(|_| {}).await;
    for head in [
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
    ] {
        let (response, mut connection) =
            open(&upstream, &forwarder, &target, StreamLimits::default(), |mut c| async move {
                c.write(head.as_bytes()).await.unwrap();
                c
            })
            .await;
        let error = response.unwrap_err();
        // Refused at the head: the body is never read, so the connection is closed, not pooled.
        connection.closed_by_client().await.unwrap();
        assert_eq!(forwarder.idle_connections(), 0);
        assert_eq!(error.code(), ErrorCode::UpstreamEncodingNotSupported);
        assert_eq!(error.code().status(), 502);
        assert!(!error.to_string().contains("gzip"), "{error}");
    }
    let (response, _c) = open(&upstream, &forwarder, &target, StreamLimits::default(), |mut c| async {
        c.write(b"HTTP/1.1 302 Found\r\nlocation: https://elsewhere/\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        c
    })
    .await;
    assert_eq!(response.unwrap_err().code(), ErrorCode::RedirectDenied);
}

#[tokio::test]
async fn the_total_timeout_bounds_the_wait_for_the_head() {
    let (upstream, forwarder, target) = setup(|s| s.total_timeout = Duration::from_millis(400)).await;
    let (response, mut connection) =
        open(&upstream, &forwarder, &target, StreamLimits::default(), |c| async { c }).await;
    assert_eq!(response.unwrap_err().code(), ErrorCode::UpstreamTimeout);
    // The abandoned exchange does not keep the connection open.
    connection.closed_by_client().await.unwrap();
}
