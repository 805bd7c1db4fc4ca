//! The upstream against real clients: what it records, and that each kind of scripted answer goes
//! out as scripted.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use super::*;
use crate::http_client::{TlsOptions, request, tls_stream};

fn tls(upstream: &TestUpstream) -> TlsOptions {
    TlsOptions { ca_pem: upstream.ca_pem.clone(), server_name: "api.example.test".into(), client: None }
}

/// Writes `raw` on a fresh connection and reads until the upstream closes it or `until` appears.
async fn exchange(upstream: &TestUpstream, raw: &[u8], until: &str) -> String {
    let mut stream = tls_stream(upstream.addr, &tls(upstream)).await.unwrap();
    stream.write_all(raw).await.unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(until) {
        let n =
            tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await.unwrap().unwrap();
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn records_header_lines_as_they_arrived() {
    let upstream = TestUpstream::start().await.unwrap();
    let raw = b"POST /v1/items?a=1&b=2 HTTP/1.1\r\nHost: api.example.test\r\nAccept: a/b\r\nX-Trace: t\r\naccept: c/d\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n";
    let answer = exchange(&upstream, raw, r#"{"ok":true}"#).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("content-length: 11\r\n"), "{answer}");
    let received = upstream.last();
    assert_eq!((received.method.as_str(), received.target.as_str()), ("POST", "/v1/items?a=1&b=2"));
    assert_eq!(received.names(), vec!["host", "accept", "x-trace", "accept", "transfer-encoding"]);
    assert_eq!(received.header("accept"), Some("a/b"));
    assert_eq!(received.header_values("accept"), vec!["a/b", "c/d"]);
    assert_eq!(received.query("b"), Some("2"));
    assert_eq!(received.body, b"abcde");
    assert_eq!(received.sni.as_deref(), Some("api.example.test"));
    assert_eq!((received.connection, upstream.connection_count(), upstream.count()), (0, 1, 1));
}

#[tokio::test]
async fn form_fields_are_decoded() {
    let upstream = TestUpstream::start().await.unwrap();
    let body = "grant_type=refresh_token&scope=a+b&x=%2F";
    let headers = [("content-type", "application/x-www-form-urlencoded")];
    request(upstream.addr, Some(&tls(&upstream)), Method::POST, "/token", &headers, body).await.unwrap();
    let received = upstream.last();
    assert_eq!(received.field("scope").as_deref(), Some("a b"));
    assert_eq!(received.field("x").as_deref(), Some("/"));
    assert_eq!(received.field("missing"), None);
    assert_eq!(received.form().len(), 3);
}

#[tokio::test]
async fn queued_replies_come_first_then_the_standing_one() {
    let upstream = TestUpstream::start().await.unwrap();
    upstream.respond(201, &[("x-standing", "1")], b"standing");
    upstream.queue(Reply::full(503, &[("retry-after", "1")], b"busy"));
    let options = tls(&upstream);
    let send = || request(upstream.addr, Some(&options), Method::GET, "/", &[], "");
    let first = send().await.unwrap();
    assert_eq!((first.status, &first.body[..]), (503, &b"busy"[..]));
    assert_eq!(first.headers["retry-after"], "1");
    let second = send().await.unwrap();
    assert_eq!((second.status, &second.body[..]), (201, &b"standing"[..]));
    upstream.respond_with(|r| Reply::full(200, &[], r.target.as_bytes()));
    assert_eq!(
        &request(upstream.addr, Some(&tls(&upstream)), Method::GET, "/echo?x=1", &[], "").await.unwrap().body
            [..],
        b"/echo?x=1"
    );
}

#[tokio::test]
async fn a_chunked_reply_waits_for_its_gate() {
    let upstream = TestUpstream::start().await.unwrap();
    let gate = Arc::new(Notify::new());
    upstream.queue(Reply::chunked(
        200,
        &[("content-type", "text/event-stream")],
        vec![send(b"one"), Step::Wait(Arc::clone(&gate)), send(b"two")],
    ));
    let mut stream = tls_stream(upstream.addr, &tls(&upstream)).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("3\r\none\r\n") {
        let n = stream.read(&mut chunk).await.unwrap();
        seen.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&seen).into_owned();
    assert!(head.contains("transfer-encoding: chunked\r\n") && !head.contains("two"), "{head}");
    gate.notify_one();
    while !String::from_utf8_lossy(&seen).ends_with("3\r\ntwo\r\n0\r\n\r\n") {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn bodiless_answers_have_no_framing() {
    let upstream = TestUpstream::start().await.unwrap();
    upstream.respond(304, &[("etag", "\"x\"")], b"");
    let answer =
        exchange(&upstream, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", "\r\n\r\n").await;
    assert_eq!(answer, "HTTP/1.1 304 Not Modified\r\netag: \"x\"\r\n\r\n");
    upstream.respond(200, &[("content-type", "application/json")], b"{}");
    let answer = exchange(&upstream, b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\n", "\r\n\r\n").await;
    assert_eq!(answer, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n");
}

#[tokio::test]
async fn a_hanging_answer_counts_as_abandoned_when_the_client_leaves() {
    let upstream = TestUpstream::start().await.unwrap();
    upstream.set(Reply::Hang);
    let options = tls(&upstream);
    let call = request(upstream.addr, Some(&options), Method::GET, "/", &[], "");
    assert!(tokio::time::timeout(Duration::from_millis(300), call).await.is_err(), "no answer expected");
    for _ in 0..100 {
        if upstream.abandoned() == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the upstream did not notice the client left");
}

#[tokio::test]
async fn a_reset_reply_resets_the_connection() {
    let upstream = TestUpstream::start().await.unwrap();
    upstream.set(Reply::Reset);
    let error = request(upstream.addr, Some(&tls(&upstream)), Method::GET, "/", &[], "").await.unwrap_err();
    assert!(
        format!("{error:#}").to_lowercase().contains("reset") || format!("{error:#}").contains("closed"),
        "{error:#}"
    );
    assert_eq!(upstream.count(), 1);
}
