//! PROXY protocol v2 on the data plane (`data_plane.proxy_protocol = true`): the header's source
//! address is the client address `ip_allowlist` checks; a connection without a valid header is
//! closed before TLS.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use crate::common;

use std::net::SocketAddr;

use common::workload::{key_and_csr, owner, tenant};
use common::{TestServer, free_port_env};
use http::Method;
use serde_json::{Value, json};
use steward_server::proxy_protocol::encode;
use steward_testkit::http_client::{TestResponse, TlsOptions, request_with_preface};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A PROXY header claiming the client is `ip`.
fn from(ip: &str, server: &TestServer) -> Vec<u8> {
    encode(Some((SocketAddr::new(ip.parse().unwrap(), 50_000), server.data_addr)), &[0x04, 0x00, 0x00])
}

async fn start() -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    common::init_data_dir(dir.path()).await;
    let server =
        TestServer::start(dir.path(), free_port_env(&[("STEWARD_DATA_PLANE__PROXY_PROTOCOL", "true")]))
            .await
            .unwrap();
    (dir, server)
}

async fn call(
    server: &TestServer,
    preface: &[u8],
    client: Option<(&str, &str)>,
    path: &str,
    body: &str,
) -> anyhow::Result<TestResponse> {
    let tls = TlsOptions { client: client.map(|(c, k)| (c.to_owned(), k.to_owned())), ..server.tls() };
    request_with_preface(
        server.data_addr,
        preface,
        Some(&tls),
        Method::POST,
        path,
        &[("content-type", "application/json")],
        body.to_owned(),
    )
    .await
}

/// A workload allowed only from `allowed`, enrolled from `enroll_from`: `(cert PEM, key PEM)`.
async fn workload(
    server: &TestServer,
    tenant_id: &str,
    allowed: &str,
    enroll_from: &str,
) -> (String, String) {
    let (status, created) = owner(
        server,
        Method::POST,
        &format!("/v1/tenants/{tenant_id}/workloads"),
        Some(json!({"name": format!("agent-{}", uuid::Uuid::new_v4().simple()), "ip_allowlist": [allowed]})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (key_pem, csr_pem) = key_and_csr();
    let body = json!({"enrollment_token": created["enrollment_token"], "csr_pem": csr_pem}).to_string();
    let response = call(server, &from(enroll_from, server), None, "/v1/enroll", &body).await.unwrap();
    assert_eq!(response.status, 201, "{}", response.json());
    (response.json()["client_cert_pem"].as_str().unwrap().to_owned(), key_pem)
}

fn error_of(response: &TestResponse) -> (u16, Value) {
    (response.status, response.json()["error"].clone())
}

#[tokio::test]
async fn the_header_source_is_the_address_the_allowlist_checks() {
    let (_dir, server) = start().await;
    let tenant_id = tenant(&server, false).await;
    let (allowed_cert, allowed_key) = workload(&server, &tenant_id, "203.0.113.7", "203.0.113.7").await;
    let (other_cert, other_key) = workload(&server, &tenant_id, "198.51.100.1", "198.51.100.1").await;

    let header = from("203.0.113.7", &server);
    let accepted =
        call(&server, &header, Some((&allowed_cert, &allowed_key)), "/v1/session", "").await.unwrap();
    assert_eq!(accepted.status, 200, "{}", accepted.json());

    let denied = call(&server, &header, Some((&other_cert, &other_key)), "/v1/session", "").await.unwrap();
    assert_eq!(error_of(&denied), (403, json!("workload_ip_denied")));

    // The TCP peer (127.0.0.1) is not what is checked: a header from elsewhere is denied for both.
    let elsewhere = from("192.0.2.55", &server);
    let denied =
        call(&server, &elsewhere, Some((&allowed_cert, &allowed_key)), "/v1/session", "").await.unwrap();
    assert_eq!(error_of(&denied), (403, json!("workload_ip_denied")));

    // IPv6 sources work too (mapped v4 counts as v4).
    let mapped = encode(Some((addr("[::ffff:203.0.113.7]:1"), addr("[::1]:2"))), &[]);
    let accepted =
        call(&server, &mapped, Some((&allowed_cert, &allowed_key)), "/v1/session", "").await.unwrap();
    assert_eq!(accepted.status, 200, "{}", accepted.json());
    server.stop().await;
}

#[tokio::test]
async fn local_uses_the_tcp_peer() {
    let (_dir, server) = start().await;
    let tenant_id = tenant(&server, false).await;
    let local = encode(None, &[]);
    // Enrolled and used over LOCAL connections: the TCP peer 127.0.0.1 is checked.
    let (cert, key) = workload(&server, &tenant_id, "127.0.0.1", "127.0.0.1").await;
    let accepted = call(&server, &local, Some((&cert, &key)), "/v1/session", "").await.unwrap();
    assert_eq!(accepted.status, 200, "{}", accepted.json());
    let (far_cert, far_key) = workload(&server, &tenant_id, "203.0.113.7", "203.0.113.7").await;
    let denied = call(&server, &local, Some((&far_cert, &far_key)), "/v1/session", "").await.unwrap();
    assert_eq!(error_of(&denied), (403, json!("workload_ip_denied")));
    let health = call(&server, &local, None, "/healthz", "").await;
    assert!(health.is_ok(), "{health:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_connection_without_a_valid_header_is_closed() {
    let (_dir, server) = start().await;
    let good = from("203.0.113.7", &server);
    assert!(call(&server, &good, None, "/healthz", "").await.is_ok());

    // No header: the ClientHello is not a signature; the connection is closed before TLS.
    assert!(call(&server, &[], None, "/healthz", "").await.is_err(), "no header");
    // v1 text header.
    let v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 50000 8081\r\n";
    assert!(call(&server, v1, None, "/healthz", "").await.is_err(), "v1 header");
    // Malformed v2: wrong version, unknown command, UDP, truncated block, over-long block.
    for (at, value) in [(12usize, 0x11u8), (12, 0x2f), (13, 0x12), (15, 4), (14, 0x20)] {
        let mut bad = good.clone();
        bad[at] = value;
        assert!(call(&server, &bad, None, "/healthz", "").await.is_err(), "byte {at} = {value:#x}");
    }
    // The listener is still healthy afterwards.
    assert!(call(&server, &good, None, "/healthz", "").await.is_ok());
    server.stop().await;
}
