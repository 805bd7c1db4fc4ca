//! The listeners end to end: real TLS handshakes with certificates generated at test time, the
//! HTTP conventions on both listeners, and the embedded store behind them.

// Test clients connecting to the listener under test.
// (`clippy.toml` bans `TcpStream::connect` outside steward-egress.)
#![allow(clippy::disallowed_methods)]

use crate::common;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use common::{TestServer, install_crypto_provider};
use http::Method;
use steward_crypto::WorkloadCa;
use steward_server::listener::{ConnectionInfo, Transport, serve};
use steward_server::tls::{ReloadableCert, data_plane_config};
use steward_testkit::http_client::{TlsOptions, request, tls_handshake};
use steward_testkit::pki::{TestCa, workload_key};
use steward_types::{Clock, SystemClock};
use tokio::sync::watch;
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

#[tokio::test]
async fn both_listeners_answer_health_and_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;

    let health =
        request(server.data_addr, Some(&server.tls()), Method::GET, "/healthz", &[], "").await.unwrap();
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), serde_json::json!({"status": "ok"}));
    for (name, value) in [
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(health.headers[name], value, "{name}");
    }
    assert!(health.headers.contains_key("x-correlation-id"));

    let admin = request(server.admin_addr, None, Method::GET, "/healthz", &[], "").await.unwrap();
    assert_eq!(admin.status, 200);
    for addr_tls in [(server.data_addr, Some(server.tls())), (server.admin_addr, None)] {
        let ready = request(addr_tls.0, addr_tls.1.as_ref(), Method::GET, "/readyz", &[], "").await.unwrap();
        assert_eq!(ready.status, 200);
        assert_eq!(
            ready.json(),
            serde_json::json!({"status": "ready", "checks": {"store": "ok", "redis": "absent"}})
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_get_the_standard_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let tls = server.tls();

    let missing =
        request(server.data_addr, Some(&tls), Method::GET, "/v1/nope", &[("x-correlation-id", "corr-1")], "")
            .await
            .unwrap();
    assert_eq!(missing.status, 404);
    let body = missing.json();
    assert_eq!(body["error"], "route_not_found");
    assert_eq!(body["correlation_id"], "corr-1");
    assert_eq!(missing.headers["x-correlation-id"], "corr-1");

    let wrong = request(server.admin_addr, None, Method::POST, "/healthz", &[], "").await.unwrap();
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.json()["error"], "method_not_allowed");
    let allow = wrong.headers["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET"), "{allow}");

    // A correlation id that is not 1–128 visible ASCII characters is replaced by a UUID.
    let long = "x".repeat(129);
    let replaced = request(server.admin_addr, None, Method::GET, "/nope", &[("x-correlation-id", &long)], "")
        .await
        .unwrap();
    let id = replaced.json()["correlation_id"].as_str().unwrap().to_owned();
    assert_ne!(id, long);
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    server.stop().await;
}

#[tokio::test]
async fn metrics_are_open_on_a_loopback_admin_listener() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    // Make at least one request so there is something to count.
    request(server.admin_addr, None, Method::GET, "/healthz", &[], "").await.unwrap();
    let metrics = request(server.admin_addr, None, Method::GET, "/metrics", &[], "").await.unwrap();
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains("steward_http_requests_total"), "{text}");
    server.stop().await;
}

/// A router that reports the connection's client certificate URI SAN, to see what reaches handlers.
fn san_echo_router() -> Router {
    Router::new().route(
        "/whoami",
        get(|axum::Extension(info): axum::Extension<Arc<ConnectionInfo>>| async move {
            let Some(client_cert) = &info.client_cert else { return "none".to_owned() };
            let (_, cert) =
                X509Certificate::from_der(client_cert.der().as_ref()).expect("the handshake verified it");
            cert.extensions()
                .iter()
                .find_map(|ext| match ext.parsed_extension() {
                    ParsedExtension::SubjectAlternativeName(san) => {
                        san.general_names.iter().find_map(|n| match n {
                            GeneralName::URI(uri) => Some((*uri).to_owned()),
                            _ => None,
                        })
                    }
                    _ => None,
                })
                .unwrap_or_else(|| "no-uri".into())
        }),
    )
}

#[tokio::test]
async fn client_certificates_from_the_workload_ca_reach_handlers_and_others_fail_the_handshake() {
    install_crypto_provider();
    let now = SystemClock.now();
    let ca = WorkloadCa::generate("steward", now).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server_cert = ca.issue_server_cert(&["localhost".into(), "127.0.0.1".into()], now, 30).unwrap();
    std::fs::write(dir.path().join("server.crt"), &server_cert.cert_pem).unwrap();
    std::fs::write(dir.path().join("server.key"), server_cert.key_pem.as_bytes()).unwrap();
    let reloadable =
        ReloadableCert::load(dir.path().join("server.crt"), dir.path().join("server.key")).unwrap();
    let config = data_plane_config(ca.cert_pem(), reloadable).unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(serve(
        "data_plane",
        listener,
        Transport::Tls(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        san_echo_router(),
        16,
        stop_rx,
    ));

    let san = "spiffe://steward/tenants/t_abc/workloads/w_def";
    let (key_pem, spki) = workload_key().unwrap();
    let issued = ca.issue_client_cert(&spki, san, now, 3600).unwrap();
    let mut tls =
        TlsOptions { ca_pem: ca.cert_pem().to_owned(), server_name: "localhost".into(), client: None };

    // No certificate: the handshake succeeds (certificates are requested, not required).
    let anonymous = request(addr, Some(&tls), Method::GET, "/whoami", &[], "").await.unwrap();
    assert_eq!(String::from_utf8_lossy(&anonymous.body), "none");

    // A certificate from the workload CA: its URI SAN reaches the handler.
    tls.client = Some((issued.cert_pem.clone(), key_pem));
    let known = request(addr, Some(&tls), Method::GET, "/whoami", &[], "").await.unwrap();
    assert_eq!(known.status, 200);
    assert_eq!(String::from_utf8_lossy(&known.body), san);

    // A certificate from another CA fails the handshake: no HTTP response at all.
    let other = TestCa::new("not steward").unwrap();
    let foreign = other.client_cert(san).unwrap();
    tls.client = Some((foreign.cert_pem, foreign.key_pem));
    assert!(tls_handshake(addr, &tls).await.is_err(), "a foreign client certificate must fail the handshake");
    assert!(request(addr, Some(&tls), Method::GET, "/whoami", &[], "").await.is_err());

    stop_tx.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn graceful_stop_writes_the_final_checkpoint() {
    use steward_store::audit::{Actor, AuditEvent, EventType};
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let store = std::sync::Arc::clone(&server.state.store);
    let event = AuditEvent::new(EventType::AdminAction, Actor::system("test"), SystemClock.now());
    server.state.audit.append(event).await.unwrap();
    assert!(store.list_checkpoints(None, 10).await.unwrap().is_empty(), "no checkpoint before the stop");
    server.stop().await;
    let checkpoints = store.list_checkpoints(None, 10).await.unwrap();
    assert_eq!(checkpoints.len(), 1, "the stop wrote the final checkpoint");
    assert_eq!(checkpoints[0].heads.len(), 1);
}

#[tokio::test]
async fn metrics_need_an_admin_token_on_a_non_loopback_admin_listener() {
    let dir = tempfile::tempdir().unwrap();
    install_crypto_provider();
    common::init_data_dir(dir.path()).await;
    let env = common::free_port_env(&[("STEWARD_ADMIN__LISTEN", "0.0.0.0:0")]);
    let server = TestServer::start(dir.path(), env).await.unwrap();
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], server.admin_addr.port()));

    let anonymous = request(admin, None, Method::GET, "/metrics", &[], "").await.unwrap();
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.json()["error"], "admin_auth_missing");
    let wrong =
        request(admin, None, Method::GET, "/metrics", &[("authorization", "Bearer stw_adm_nope")], "")
            .await
            .unwrap();
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"], "admin_auth_invalid");
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let bearer = format!("Bearer {}", token.trim());
    let allowed =
        request(admin, None, Method::GET, "/metrics", &[("authorization", &bearer)], "").await.unwrap();
    assert_eq!(allowed.status, 200);
    // Health stays open.
    assert_eq!(request(admin, None, Method::GET, "/healthz", &[], "").await.unwrap().status, 200);
    server.stop().await;
}

#[tokio::test]
async fn connections_beyond_max_connections_wait_for_a_free_slot() {
    install_crypto_provider();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let router = Router::new().route("/x", get(|| async { "ok" }));
    let task = tokio::spawn(serve("admin", listener, Transport::Plain, router, 1, stop_rx));

    // The first connection holds the only slot (keep-alive, idle).
    let first = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let waiting = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        request(addr, None, Method::GET, "/x", &[], ""),
    )
    .await;
    assert!(waiting.is_err(), "a second connection is not served while the first holds the slot");
    drop(first);
    let served = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        request(addr, None, Method::GET, "/x", &[], ""),
    )
    .await
    .expect("served once the slot is free")
    .unwrap();
    assert_eq!(served.status, 200);
    stop_tx.send(true).unwrap();
    task.await.unwrap();
}
