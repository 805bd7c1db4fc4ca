//! A client certificate is checked against its validity period on every request that uses the mTLS
//! identity, with the server's clock (`spec/data-plane.md`, "mTLS identity" step 4): a keep-alive
//! connection and a resumed TLS 1.3 session do not extend it. Real TLS handshakes and real session
//! resumption (a rustls client with its session store); the server runs on a manual clock that the
//! test moves past the certificate's end.

// A test client connecting to the listener under test.
// (`clippy.toml` bans `TcpStream::connect` outside steward-egress.)
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use crate::common;

use std::sync::Arc;

use bytes::Bytes;
use common::workload::{Workload, enrolled, key_and_csr, tenant};
use common::{TestServer, free_port_env};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, RootCertStore};
use serde_json::{Value, json};
use steward_types::{Clock as _, ManualClock, SharedClock, Timestamp};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A TLS 1.3 client presenting `workload`'s certificate, keeping sessions for resumption.
fn client_config(server: &TestServer, workload: &Workload) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    let ca = std::fs::read_to_string(server.data_dir.join("ca.crt")).unwrap();
    for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let chain =
        CertificateDer::pem_slice_iter(workload.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(workload.key_pem.as_bytes()).unwrap();
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap();
    config.resumption = Resumption::in_memory_sessions(16);
    Arc::new(config)
}

/// One kept-alive HTTP/1.1 connection over TLS, and how its handshake went.
struct Connection {
    sender: SendRequest<Full<Bytes>>,
    handshake: HandshakeKind,
}

async fn connect(server: &TestServer, config: &Arc<ClientConfig>) -> Connection {
    let tcp = TcpStream::connect(server.data_addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = TlsConnector::from(Arc::clone(config)).connect(name, tcp).await.unwrap();
    let handshake = tls.get_ref().1.handshake_kind().unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(connection);
    Connection { sender, handshake }
}

impl Connection {
    async fn post(&mut self, path: &str, body: Value) -> (u16, Value) {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        self.sender.ready().await.unwrap();
        let response = self.sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn session(&mut self) -> (u16, Value) {
        self.post("/v1/session", json!({})).await
    }

    async fn renew(&mut self) -> (u16, Value) {
        let (_, csr_pem) = key_and_csr();
        self.post("/v1/enroll/renew", json!({"csr_pem": csr_pem})).await
    }
}

fn assert_expired((status, body): (u16, Value)) {
    assert_eq!((status, body["error"].as_str().unwrap_or("")), (401, "certificate_expired"), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("expired at") && message.contains("enroll again"), "{message}");
}

#[tokio::test]
async fn an_expired_certificate_is_refused_on_kept_alive_and_resumed_connections() {
    let dir = tempfile::tempdir().unwrap();
    common::init_data_dir(dir.path()).await;
    let manual = Arc::new(ManualClock::starting_now());
    let clock: SharedClock = manual.clone();
    let env = free_port_env(&[("STEWARD_ENROLLMENT__DEFAULT_CERT_TTL_SECONDS", "3600")]);
    let server = TestServer::start_with_clock(dir.path(), env, clock).await.unwrap();
    let tenant_id = tenant(&server, false).await;
    let workload = enrolled(&server, &tenant_id, json!({})).await;
    let config = client_config(&server, &workload);

    // Valid: a full handshake, a session, a renewal; then a resumed handshake works too.
    let mut kept = connect(&server, &config).await;
    assert_eq!(kept.handshake, HandshakeKind::Full);
    assert_eq!(kept.session().await.0, 200);
    assert_eq!(kept.renew().await.0, 201);
    let mut resumed = connect(&server, &config).await;
    assert_eq!(resumed.handshake, HandshakeKind::Resumed, "the client resumes its TLS 1.3 session");
    assert_eq!(resumed.session().await.0, 200);

    // The certificate's hour is over (by the server's clock).
    manual.advance_seconds(3600 + 60);

    // The connection opened while it was valid is still open: refused all the same.
    assert_expired(kept.session().await);
    assert_expired(kept.renew().await);
    // A resumed session restores the certificate without checking it again: refused here.
    let mut resumed = connect(&server, &config).await;
    assert_eq!(resumed.handshake, HandshakeKind::Resumed);
    assert_expired(resumed.session().await);
    assert_expired(resumed.renew().await);
    // Routes that need no certificate still answer on that connection.
    let (status, _) = resumed.post("/v1/enroll", json!({})).await;
    assert_ne!(status, 401);
    server.stop().await;
}

#[tokio::test]
async fn a_certificate_not_yet_valid_by_the_server_clock_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    common::init_data_dir(dir.path()).await;
    let manual = Arc::new(ManualClock::starting_now());
    let clock: SharedClock = manual.clone();
    let server = TestServer::start_with_clock(dir.path(), free_port_env(&[]), clock).await.unwrap();
    let tenant_id = tenant(&server, false).await;
    let workload = enrolled(&server, &tenant_id, json!({})).await;
    let mut connection = connect(&server, &client_config(&server, &workload)).await;
    assert_eq!(connection.session().await.0, 200);
    // The server's clock three hours before the certificate's start (certificates are backdated 5 min).
    manual.set(Timestamp::from_unix_seconds(manual.now().unix_seconds() - 3 * 3600).unwrap());
    let (status, body) = connection.session().await;
    assert_eq!((status, body["error"].as_str().unwrap_or("")), (401, "certificate_expired"), "{body}");
    assert!(body["message"].as_str().unwrap().contains("not valid before"), "{body}");
    server.stop().await;
}
