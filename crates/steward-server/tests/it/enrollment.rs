//! Enrollment end to end over real TLS: CSRs made by `openssl req` (outside our code), the issued
//! certificate completing an mTLS handshake with the data plane and being accepted by renew, the
//! spec's check order and every error code of enroll, renew and the mTLS identity.

// Test helpers outside #[test] functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::{TestServer, free_port_env};
use http::Method;
use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, Issuer, KeyPair, SanType};
use serde_json::{Value, json};
use steward_crypto::hash_token;
use steward_server::services::credentials::envelope::{ca_key_context, open_record};
use steward_testkit::http_client::{TlsOptions, request};
use steward_types::{Clock as _, ManualClock, SharedClock, Timestamp, WorkloadId};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

/// A key and CSR made by the openssl CLI: `(key PEM, CSR PEM)`.
fn openssl_csr(dir: &Path, name: &str, key_args: &[&str], extra: &[&str]) -> (String, String) {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let output = Command::new("openssl")
        .args(["req", "-new", "-nodes", "-subj", "/CN=ignored-subject"])
        .args(key_args)
        .args(extra)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .output()
        .expect("the openssl CLI is installed");
    assert!(output.status.success(), "openssl: {}", String::from_utf8_lossy(&output.stderr));
    (std::fs::read_to_string(key).unwrap(), std::fs::read_to_string(csr).unwrap())
}

const P256: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

fn p256(dir: &Path, name: &str) -> (String, String) {
    openssl_csr(dir, name, P256, &[])
}

/// One data-plane call over TLS (with a client certificate when given).
async fn data(server: &TestServer, path: &str, client: Option<(&str, &str)>, body: Value) -> (u16, Value) {
    let tls = TlsOptions { client: client.map(|(c, k)| (c.to_owned(), k.to_owned())), ..server.tls() };
    let response = request(
        server.data_addr,
        Some(&tls),
        Method::POST,
        path,
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await
    .expect("data-plane request");
    (response.status, response.json())
}

async fn enroll(server: &TestServer, token: &str, csr: &str, ttl: Option<u64>) -> (u16, Value) {
    let mut body = json!({"enrollment_token": token, "csr_pem": csr});
    if let Some(ttl) = ttl {
        body["requested_ttl_seconds"] = json!(ttl);
    }
    data(server, "/v1/enroll", None, body).await
}

async fn renew(server: &TestServer, cert: &str, key: &str, csr: &str, ttl: Option<u64>) -> (u16, Value) {
    let mut body = json!({"csr_pem": csr});
    if let Some(ttl) = ttl {
        body["requested_ttl_seconds"] = json!(ttl);
    }
    data(server, "/v1/enroll/renew", Some((cert, key)), body).await
}

fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!((got.0, got.1["error"].as_str().unwrap_or("")), (status, code), "{}", got.1);
}

async fn admin(server: &TestServer, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let response = server.admin(method, path, Some(&server.owner_token()), body).await;
    (response.status, response.json())
}

/// A tenant and a workload: `(tenant_id, workload JSON with its enrollment token)`.
async fn setup(server: &TestServer, ip_allowlist: Value) -> (String, Value) {
    let (_, tenant) = admin(server, Method::POST, "/v1/tenants", Some(json!({"name": "acme"}))).await;
    let tenant = tenant["tenant_id"].as_str().unwrap().to_owned();
    let body = json!({"name": "agent-1", "ip_allowlist": ip_allowlist});
    let (status, workload) =
        admin(server, Method::POST, &format!("/v1/tenants/{tenant}/workloads"), Some(body)).await;
    assert_eq!(status, 201, "{workload}");
    (tenant, workload)
}

async fn new_token(server: &TestServer, workload_id: &str) -> String {
    let (status, body) =
        admin(server, Method::POST, &format!("/v1/workloads/{workload_id}/enrollment-token"), None).await;
    assert_eq!(status, 201, "{body}");
    body["enrollment_token"].as_str().unwrap().to_owned()
}

async fn token_used(server: &TestServer, token: &str) -> bool {
    server.state.store.enrollment_token_by_hash(&hash_token(token)).await.unwrap().unwrap().used_at.is_some()
}

fn parse_pem_cert(pem: &str) -> Vec<u8> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    block.contents
}

/// Everything a client certificate of ours must (and must only) carry.
fn assert_plain_client_cert(pem: &str, san_uri: &str) {
    let der = parse_pem_cert(pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert_eq!(san.value.general_names, vec![GeneralName::URI(san_uri)], "the workload URI SAN only");
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth && eku.other.is_empty() && !eku.any);
    assert!(!cert.is_ca());
    assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
    for extension in cert.extensions() {
        assert!(
            !matches!(extension.parsed_extension(), ParsedExtension::UnsupportedExtension { .. }),
            "unexpected extension {}",
            extension.oid
        );
    }
    assert!(cert.subject().iter_common_name().next().is_none(), "the CSR subject is not copied");
}

#[tokio::test]
async fn enroll_with_an_openssl_csr_then_mtls_and_renew() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let (tenant, workload) = setup(&server, json!([])).await;
    let workload_id = workload["workload_id"].as_str().unwrap().to_owned();
    let san_uri = workload["san_uri"].as_str().unwrap().to_owned();
    let token = workload["enrollment_token"].as_str().unwrap().to_owned();

    let (key, csr) = p256(dir.path(), "first");
    let started = server.state.clock.now();
    let (status, enrolled) = enroll(&server, &token, &csr, None).await;
    assert_eq!(status, 201, "{enrolled}");
    assert_eq!(enrolled["workload_id"], workload_id);
    assert_eq!(enrolled["ca_pem"], workload["ca_pem"]);
    let cert = enrolled["client_cert_pem"].as_str().unwrap().to_owned();
    assert_plain_client_cert(&cert, &san_uri);
    let der = parse_pem_cert(&cert);
    let (_, parsed) = X509Certificate::from_der(&der).unwrap();
    let serial = enrolled["serial"].as_str().unwrap();
    assert_eq!(serial, parsed.raw_serial().iter().map(|b| format!("{b:02x}")).collect::<String>());
    let expires = Timestamp::parse_rfc3339(enrolled["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires.unix_seconds(), parsed.validity().not_after.timestamp());
    assert!((expires.unix_seconds() - started.unix_seconds() - 604_800).abs() <= 5, "default TTL 7 days");
    assert!(token_used(&server, &token).await);

    // The token is one-time.
    let (_, csr2) = p256(dir.path(), "again");
    assert_error(&enroll(&server, &token, &csr2, None).await, 409, "enrollment_token_used");

    // The issued certificate completes an mTLS handshake and renews itself.
    let (new_key, new_csr) = p256(dir.path(), "renewed");
    let (status, renewed) = renew(&server, &cert, &key, &new_csr, Some(3600)).await;
    assert_eq!(status, 201, "{renewed}");
    assert_eq!(renewed["workload_id"], workload_id);
    let renewed_cert = renewed["client_cert_pem"].as_str().unwrap().to_owned();
    assert_plain_client_cert(&renewed_cert, &san_uri);
    // The renewed certificate works too, and carries the original enrollment time.
    let (_, third_csr) = p256(dir.path(), "third");
    assert_eq!(renew(&server, &renewed_cert, &new_key, &third_csr, None).await.0, 201);
    let certificates =
        server.state.store.list_certificates(&WorkloadId::parse(&workload_id).unwrap()).await.unwrap();
    assert_eq!(certificates.len(), 3);
    assert!(certificates.iter().all(|c| c.identity_started_at == certificates[0].identity_started_at));

    // Audit: one `enrollment` event per certificate, with the workload as actor.
    let mut enrollments = Vec::new();
    for head in server.state.store.audit_chain_heads(Some(&tenant)).await.unwrap() {
        for event in server.state.store.audit_chain_events(&head.chain_id, 0, 1000).await.unwrap() {
            let event = event.into_event();
            if event.event_type == steward_store::audit::EventType::Enrollment {
                enrollments.push(event);
            }
        }
    }
    assert_eq!(enrollments.len(), 3);
    assert!(
        enrollments
            .iter()
            .all(|e| e.actor.id == workload_id && e.workload_id.as_deref() == Some(&workload_id))
    );

    // Enrollments are counted by outcome.
    let metrics = server.admin(Method::GET, "/metrics", None, None).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains("steward_enrollments_total"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn every_accepted_key_type_enrolls_and_unsupported_or_bad_csrs_keep_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let (_, workload) = setup(&server, json!([])).await;
    let workload_id = workload["workload_id"].as_str().unwrap().to_owned();
    let mut token = workload["enrollment_token"].as_str().unwrap().to_owned();

    // Refused CSRs first: none of them burns the token.
    let (_, good) = p256(dir.path(), "good");
    let (_, rsa1024) = openssl_csr(dir.path(), "rsa1024", &["-newkey", "rsa:1024"], &[]);
    let (_, rsa_e3) =
        openssl_csr(dir.path(), "rsa-e3", &["-newkey", "rsa:2048", "-pkeyopt", "rsa_keygen_pubexp:3"], &[]);
    let (_, p521) =
        openssl_csr(dir.path(), "p521", &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"], &[]);
    for csr in [&rsa1024, &rsa_e3, &p521] {
        assert_error(&enroll(&server, &token, csr, None).await, 400, "csr_key_unsupported");
    }
    // A CSR whose signed content was altered (the subject's CN) fails its self-signature.
    let der = parse_pem_cert(&good);
    let mut tampered = der.clone();
    let at = tampered.windows(7).position(|w| w == b"ignored").unwrap();
    tampered[at] ^= 0x20;
    let tampered = pem_wrap("CERTIFICATE REQUEST", &tampered);
    let bad = enroll(&server, &token, &tampered, None).await;
    assert_error(&bad, 400, "csr_invalid");
    assert!(bad.1["message"].as_str().unwrap().contains("self-signature"), "{}", bad.1);
    assert_error(&enroll(&server, &token, "not a csr", None).await, 400, "csr_invalid");
    assert_error(
        &enroll(&server, &token, workload["ca_pem"].as_str().unwrap(), None).await,
        400,
        "csr_invalid",
    );
    assert!(!token_used(&server, &token).await, "a bad CSR never burns a token");

    let key_types: [(&str, &[&str]); 4] = [
        ("p256", P256),
        ("p384", &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"]),
        ("ed25519", &["-newkey", "ed25519"]),
        ("rsa2048", &["-newkey", "rsa:2048"]),
    ];
    for (name, args) in key_types {
        let (key, csr) = openssl_csr(dir.path(), name, args, &[]);
        let (status, body) = enroll(&server, &token, &csr, Some(600)).await;
        assert_eq!(status, 201, "{name}: {body}");
        // Each certificate is accepted on the data plane (renew answers for this workload).
        let cert = body["client_cert_pem"].as_str().unwrap();
        let (_, next) = p256(dir.path(), &format!("{name}-next"));
        let (status, renewed) = renew(&server, cert, &key, &next, Some(600)).await;
        assert_eq!(
            (status, renewed["workload_id"].as_str()),
            (201, Some(workload_id.as_str())),
            "{name}: {renewed}"
        );
        token = new_token(&server, &workload_id).await;
    }
    server.stop().await;
}

fn pem_wrap(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<String> =
        body.as_bytes().chunks(64).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

#[tokio::test]
async fn a_hostile_csr_gets_a_plain_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let (_, workload) = setup(&server, json!([])).await;
    let san_uri = workload["san_uri"].as_str().unwrap();
    let (_, csr) = openssl_csr(
        dir.path(),
        "hostile",
        P256,
        &[
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "extendedKeyUsage=serverAuth,codeSigning",
            "-addext",
            "subjectAltName=DNS:evil.example,IP:10.0.0.1,URI:spiffe://steward/tenants/t_other/workloads/w_other",
            "-addext",
            "1.3.6.1.4.1.55555.1=ASN1:UTF8String:unusual",
        ],
    );
    let (status, body) = enroll(&server, workload["enrollment_token"].as_str().unwrap(), &csr, None).await;
    assert_eq!(status, 201, "{body}");
    assert_plain_client_cert(body["client_cert_pem"].as_str().unwrap(), san_uri);
    server.stop().await;
}

#[tokio::test]
async fn two_concurrent_enrollments_with_one_token_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(TestServer::init_and_start(dir.path()).await);
    let (_, workload) = setup(&server, json!([])).await;
    let token = workload["enrollment_token"].as_str().unwrap().to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..4 {
        let (_, csr) = p256(dir.path(), &format!("race{i}"));
        let server = Arc::clone(&server);
        let token = token.clone();
        tasks.spawn(async move { enroll(&server, &token, &csr, None).await });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined.unwrap());
    }
    let created = outcomes.iter().filter(|o| o.0 == 201).count();
    assert_eq!(created, 1, "{outcomes:?}");
    for outcome in outcomes.iter().filter(|o| o.0 != 201) {
        assert_error(outcome, 409, "enrollment_token_used");
    }
    let workload_id = WorkloadId::parse(workload["workload_id"].as_str().unwrap()).unwrap();
    assert_eq!(server.state.store.list_certificates(&workload_id).await.unwrap().len(), 1);
    Arc::into_inner(server).unwrap().stop().await;
}

#[tokio::test]
async fn enroll_check_order_and_token_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let (_, workload) = setup(&server, json!([])).await;
    let workload_id = workload["workload_id"].as_str().unwrap().to_owned();
    let first = workload["enrollment_token"].as_str().unwrap().to_owned();
    let (_, csr) = p256(dir.path(), "csr");
    let unknown = format!("stw_enr_{}", "A".repeat(43));

    // Body, then TTL, then CSR, then the token.
    assert_error(
        &data(&server, "/v1/enroll", None, json!({"csr_pem": csr})).await,
        400,
        "request_body_schema_invalid",
    );
    assert_error(
        &data(&server, "/v1/enroll", None, json!({"enrollment_token": first, "csr_pem": csr, "x": 1})).await,
        400,
        "request_body_schema_invalid",
    );
    assert_error(&enroll(&server, &unknown, "junk", Some(2_592_001)).await, 400, "requested_ttl_exceeds_max");
    assert_error(&enroll(&server, &unknown, &csr, Some(10)).await, 400, "request_body_schema_invalid");
    assert_error(&enroll(&server, &unknown, "junk", None).await, 400, "csr_invalid");
    assert_error(&enroll(&server, &unknown, &csr, None).await, 401, "enrollment_token_invalid");
    assert_error(&enroll(&server, "not-a-token", &csr, None).await, 401, "enrollment_token_invalid");
    assert!(!token_used(&server, &first).await);

    // A reissued token supersedes the first.
    let second = new_token(&server, &workload_id).await;
    assert_error(&enroll(&server, &first, &csr, None).await, 401, "enrollment_token_invalid");

    // A disabled workload cannot enroll, and its token survives.
    admin(&server, Method::PATCH, &format!("/v1/workloads/{workload_id}"), Some(json!({"enabled": false})))
        .await;
    assert_error(&enroll(&server, &second, &csr, None).await, 401, "workload_disabled");
    assert!(!token_used(&server, &second).await);
    admin(&server, Method::PATCH, &format!("/v1/workloads/{workload_id}"), Some(json!({"enabled": true})))
        .await;
    let (status, body) = enroll(&server, &second, &csr, Some(2_592_000)).await;
    assert_eq!(status, 201, "{body}");

    // A deleted workload's tokens are void.
    let third = new_token(&server, &workload_id).await;
    assert_eq!(admin(&server, Method::DELETE, &format!("/v1/workloads/{workload_id}"), None).await.0, 204);
    assert_error(&enroll(&server, &third, &csr, None).await, 401, "enrollment_token_invalid");
    server.stop().await;
}

#[tokio::test]
async fn ip_allowlist_applies_to_enroll_and_to_mtls() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let (_, workload) = setup(&server, json!(["10.0.0.0/8"])).await;
    let workload_id = workload["workload_id"].as_str().unwrap().to_owned();
    let token = workload["enrollment_token"].as_str().unwrap().to_owned();
    let (key, csr) = p256(dir.path(), "csr");
    assert_error(&enroll(&server, &token, &csr, None).await, 403, "workload_ip_denied");
    assert!(!token_used(&server, &token).await);

    let path = format!("/v1/workloads/{workload_id}");
    // The v4-mapped form of the loopback address matches the IPv4 peer.
    admin(&server, Method::PATCH, &path, Some(json!({"ip_allowlist": ["::ffff:127.0.0.1"]}))).await;
    let (status, body) = enroll(&server, &token, &csr, None).await;
    assert_eq!(status, 201, "{body}");
    let cert = body["client_cert_pem"].as_str().unwrap().to_owned();

    admin(&server, Method::PATCH, &path, Some(json!({"ip_allowlist": ["192.0.2.0/24", "2001:db8::/32"]})))
        .await;
    assert_error(&renew(&server, &cert, &key, &csr, None).await, 403, "workload_ip_denied");
    admin(&server, Method::PATCH, &path, Some(json!({"ip_allowlist": ["127.0.0.0/8"]}))).await;
    assert_eq!(renew(&server, &cert, &key, &csr, None).await.0, 201);
    server.stop().await;
}

/// A certificate signed by the deployment's CA with whatever SANs and EKUs a test wants (what an
/// attacker holding some other CA-signed certificate could present).
async fn crafted_cert(
    server: &TestServer,
    ca_pem: &str,
    sans: Vec<SanType>,
    eku: Vec<ExtendedKeyUsagePurpose>,
) -> (String, String) {
    let deployment = server.state.store.deployment().await.unwrap().unwrap();
    let ca_key = open_record(&server.state.keyring.load(), &ca_key_context(), &deployment.ca_key).unwrap();
    let ca_key = KeyPair::try_from(ca_key.as_slice()).unwrap();
    let ca_der = parse_pem_cert(ca_pem);
    let issuer = Issuer::from_ca_cert_der(&rustls_pki_types::CertificateDer::from(ca_der), ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    let now = server.state.clock.now();
    params.not_before = now.plus_seconds(-600).to_offset_date_time();
    params.not_after = now.plus_seconds(3600).to_offset_date_time();
    params.subject_alt_names = sans;
    params.extended_key_usages = eku;
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn uri(text: &str) -> SanType {
    SanType::URI(text.try_into().unwrap())
}

#[tokio::test]
async fn mtls_identity_refusals_in_the_spec_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let (tenant, workload) = setup(&server, json!([])).await;
    let workload_id = workload["workload_id"].as_str().unwrap().to_owned();
    let san = workload["san_uri"].as_str().unwrap().to_owned();
    let ca_pem = workload["ca_pem"].as_str().unwrap().to_owned();
    let (key, csr) = p256(dir.path(), "csr");
    let (_, enrolled) = enroll(&server, workload["enrollment_token"].as_str().unwrap(), &csr, None).await;
    let cert = enrolled["client_cert_pem"].as_str().unwrap().to_owned();
    let serial = enrolled["serial"].as_str().unwrap().to_owned();

    // 1. No certificate.
    assert_error(
        &data(&server, "/v1/enroll/renew", None, json!({"csr_pem": csr})).await,
        401,
        "mtls_required",
    );
    // 2. EKU and URI SAN rules.
    let client_auth = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cases = [
        (vec![uri(&san)], vec![], "clientAuth"),
        (vec![], client_auth.clone(), "no URI SAN"),
        (vec![uri(&san), uri(&format!("{san}x"))], client_auth.clone(), "2 URI SANs"),
        (
            vec![uri(&format!("spiffe://other-domain/tenants/{tenant}/workloads/{workload_id}"))],
            client_auth.clone(),
            "spiffe://steward/",
        ),
        (
            vec![uri(&format!("spiffe://steward/tenants/{tenant}/workload/{workload_id}"))],
            client_auth.clone(),
            "spiffe://steward/",
        ),
    ];
    for (sans, eku, message) in cases {
        let (crafted, crafted_key) = crafted_cert(&server, &ca_pem, sans, eku).await;
        let got = renew(&server, &crafted, &crafted_key, &csr, None).await;
        assert_error(&got, 401, "mtls_required");
        assert!(got.1["message"].as_str().unwrap().contains(message), "{message}: {}", got.1);
    }
    // 3. The identity of a workload of another tenant, or of no workload.
    let (_, other) = admin(&server, Method::POST, "/v1/tenants", Some(json!({"name": "other"}))).await;
    let other = other["tenant_id"].as_str().unwrap();
    let wrong_tenant = format!("spiffe://steward/tenants/{other}/workloads/{workload_id}");
    let (crafted, crafted_key) =
        crafted_cert(&server, &ca_pem, vec![uri(&wrong_tenant)], client_auth.clone()).await;
    assert_error(&renew(&server, &crafted, &crafted_key, &csr, None).await, 401, "workload_disabled");
    // 4. A CA-signed certificate for the right identity that this deployment never recorded.
    let (crafted, crafted_key) = crafted_cert(&server, &ca_pem, vec![uri(&san)], client_auth.clone()).await;
    assert_error(&renew(&server, &crafted, &crafted_key, &csr, None).await, 401, "certificate_revoked");

    // The real certificate works until it is revoked…
    assert_eq!(renew(&server, &cert, &key, &csr, None).await.0, 201);
    let revoke = format!("/v1/workloads/{workload_id}/certificates/{serial}/revoke");
    assert_eq!(admin(&server, Method::POST, &revoke, None).await.0, 200);
    assert_error(&renew(&server, &cert, &key, &csr, None).await, 401, "certificate_revoked");

    // …and a renewed one until its workload is disabled (checked before revocation).
    let token = new_token(&server, &workload_id).await;
    let (_, enrolled) = enroll(&server, &token, &csr, None).await;
    let cert = enrolled["client_cert_pem"].as_str().unwrap().to_owned();
    let path = format!("/v1/workloads/{workload_id}");
    admin(&server, Method::PATCH, &path, Some(json!({"enabled": false}))).await;
    assert_error(&renew(&server, &cert, &key, &csr, None).await, 401, "workload_disabled");
    admin(&server, Method::PATCH, &path, Some(json!({"enabled": true}))).await;
    // Renewal still checks its body and CSR after identification.
    assert_error(&renew(&server, &cert, &key, "junk", None).await, 400, "csr_invalid");
    assert_error(
        &renew(&server, &cert, &key, &csr, Some(99_999_999)).await,
        400,
        "requested_ttl_exceeds_max",
    );
    assert_eq!(renew(&server, &cert, &key, &csr, None).await.0, 201);
    server.stop().await;
}

#[tokio::test]
async fn identity_lifetime_caps_renewals_and_tokens_expire() {
    let dir = tempfile::tempdir().unwrap();
    common::init_data_dir(dir.path()).await;
    let manual = Arc::new(ManualClock::starting_now());
    let clock: SharedClock = manual.clone();
    let env = free_port_env(&[("STEWARD_ENROLLMENT__MAX_IDENTITY_LIFETIME_DAYS", "1")]);
    let server = TestServer::start_with_clock(dir.path(), env, clock).await.unwrap();
    let (_, workload) = setup(&server, json!([])).await;
    let workload_id = workload["workload_id"].as_str().unwrap().to_owned();
    let (key, csr) = p256(dir.path(), "csr");

    let started = manual.now();
    let (status, enrolled) =
        enroll(&server, workload["enrollment_token"].as_str().unwrap(), &csr, None).await;
    assert_eq!(status, 201, "{enrolled}");
    let cap = started.plus_seconds(86_400).unix_seconds();
    let expires = Timestamp::parse_rfc3339(enrolled["expires_at"].as_str().unwrap()).unwrap().unix_seconds();
    assert!((cap - expires).abs() <= 1, "the first certificate stops at the identity's end");
    let cert = enrolled["client_cert_pem"].as_str().unwrap().to_owned();

    // Half-way: a renewal asking for a week gets only what is left of the day.
    manual.advance_seconds(12 * 3600);
    let (status, renewed) = renew(&server, &cert, &key, &csr, Some(7 * 86_400)).await;
    assert_eq!(status, 201, "{renewed}");
    let expires = Timestamp::parse_rfc3339(renewed["expires_at"].as_str().unwrap()).unwrap().unix_seconds();
    assert!((cap - expires).abs() <= 1, "capped at the original enrollment + 1 day");

    // At the end: the first certificate is still valid (to the second) but may not be renewed.
    manual.set(Timestamp::from_unix_seconds(cap).unwrap());
    let got = renew(&server, &cert, &key, &csr, None).await;
    assert_error(&got, 403, "identity_lifetime_exceeded");
    // Past it, the certificates of the chain have expired with the identity.
    manual.advance_seconds(3600);
    assert_error(&renew(&server, &cert, &key, &csr, None).await, 401, "certificate_expired");

    // An enrollment token past its TTL (1 day by default) is expired.
    let token = new_token(&server, &workload_id).await;
    manual.advance_seconds(86_400);
    assert_error(&enroll(&server, &token, &csr, None).await, 401, "enrollment_token_expired");
    // A new token starts a new identity.
    let token = new_token(&server, &workload_id).await;
    assert_eq!(enroll(&server, &token, &csr, None).await.0, 201);
    server.stop().await;
}
