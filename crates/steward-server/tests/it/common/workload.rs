//! Workloads for data-plane tests: a tenant and a workload made through the admin API, a P-256 key
//! and CSR made here (the private key never leaves the test), the certificate from `POST
//! /v1/enroll`, and data-plane calls over real mTLS. Plus DPoP helpers: the `htu` the server
//! expects, fresh proofs and bound sessions, and proofs with hand-made headers for the verifier's
//! refusal paths.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::Method;
use serde_json::{Value, json};
use steward_crypto::DpopKey;
use steward_testkit::http_client::{TestResponse, TlsOptions, request};

use super::TestServer;

/// An enrolled workload: its ids and one certificate with its key.
#[derive(Debug, Clone)]
pub struct Workload {
    pub tenant_id: String,
    pub workload_id: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// One admin call with the owner token: `(status, JSON body)`.
pub async fn owner(server: &TestServer, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let response = server.admin(method, path, Some(&server.owner_token()), body).await;
    (response.status, response.json())
}

/// A new tenant (unique name), optionally requiring DPoP.
pub async fn tenant(server: &TestServer, dpop_required: bool) -> String {
    let name = format!("tenant-{}", uuid::Uuid::new_v4().simple());
    let (status, body) = owner(
        server,
        Method::POST,
        "/v1/tenants",
        Some(json!({"name": name, "dpop_required": dpop_required})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["tenant_id"].as_str().unwrap().to_owned()
}

/// A P-256 key and a CSR for it: `(key PEM, CSR PEM)`.
pub fn key_and_csr() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap().serialize_request(&key).unwrap();
    (key.serialize_pem(), csr.pem().unwrap())
}

/// Creates a workload in `tenant` (with `extra` fields such as `dpop_required`) and enrolls it.
pub async fn enrolled(server: &TestServer, tenant: &str, extra: Value) -> Workload {
    let mut body = json!({"name": format!("agent-{}", uuid::Uuid::new_v4().simple())});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    let (status, created) =
        owner(server, Method::POST, &format!("/v1/tenants/{tenant}/workloads"), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let (key_pem, csr_pem) = key_and_csr();
    let enroll = json!({"enrollment_token": created["enrollment_token"], "csr_pem": csr_pem});
    let response = call(
        server,
        None,
        Method::POST,
        "/v1/enroll",
        &[("content-type", "application/json")],
        &enroll.to_string(),
    )
    .await;
    assert_eq!(response.status, 201, "{}", response.json());
    Workload {
        tenant_id: tenant.to_owned(),
        workload_id: created["workload_id"].as_str().unwrap().to_owned(),
        cert_pem: response.json()["client_cert_pem"].as_str().unwrap().to_owned(),
        key_pem,
    }
}

/// A second valid certificate of the same workload (renewal with the first).
pub async fn second_certificate(server: &TestServer, workload: &Workload) -> Workload {
    let (key_pem, csr_pem) = key_and_csr();
    let body = json!({"csr_pem": csr_pem}).to_string();
    let response = call(
        server,
        Some(workload),
        Method::POST,
        "/v1/enroll/renew",
        &[("content-type", "application/json")],
        &body,
    )
    .await;
    assert_eq!(response.status, 201, "{}", response.json());
    Workload {
        cert_pem: response.json()["client_cert_pem"].as_str().unwrap().to_owned(),
        key_pem,
        ..workload.clone()
    }
}

/// One data-plane request over TLS, with the workload's certificate when given.
pub async fn call(
    server: &TestServer,
    client: Option<&Workload>,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> TestResponse {
    let tls = TlsOptions { client: client.map(|w| (w.cert_pem.clone(), w.key_pem.clone())), ..server.tls() };
    request(server.data_addr, Some(&tls), method, path, headers, body.to_owned())
        .await
        .expect("data-plane request")
}

/// `(status, error code)` of a response.
pub fn code(response: &TestResponse) -> (u16, String) {
    (response.status, response.json()["error"].as_str().unwrap_or("").to_owned())
}

/// The `WWW-Authenticate` header of a response.
pub fn challenge(response: &TestResponse) -> String {
    response.headers.get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// The challenge of every DPoP proof failure.
pub const INVALID_PROOF: &str = r#"DPoP error="invalid_dpop_proof", algs="ES256 ES384 EdDSA RS256 PS256""#;

/// `POST /v1/session` with an optional proof and body.
pub async fn create_session(
    server: &TestServer,
    workload: &Workload,
    proof: Option<&str>,
    body: &str,
) -> TestResponse {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(proof) = proof {
        headers.push(("dpop", proof));
    }
    call(server, Some(workload), Method::POST, "/v1/session", &headers, body).await
}

/// A session token (unbound unless `proof` is given).
pub async fn session_token(server: &TestServer, workload: &Workload, proof: Option<&str>) -> String {
    let response = create_session(server, workload, proof, "").await;
    assert_eq!(response.status, 200, "{}", response.json());
    response.json()["session_token"].as_str().unwrap().to_owned()
}

/// A request with a session: `scheme` `Bearer` or `DPoP`, and an optional proof.
pub async fn with_session(
    server: &TestServer,
    workload: &Workload,
    method: Method,
    path: &str,
    scheme: &str,
    token: &str,
    proof: Option<&str>,
) -> TestResponse {
    let authorization = format!("{scheme} {token}");
    let mut headers = vec![("authorization", authorization.as_str())];
    if let Some(proof) = proof {
        headers.push(("dpop", proof));
    }
    call(server, Some(workload), method, path, &headers, "").await
}

/// The `htu` the server expects for `path` (`public_base_url` + path).
pub fn htu(server: &TestServer, path: &str) -> String {
    format!("{}{path}", server.state.config.public_base_url().unwrap().origin())
}

/// The server clock's now, in whole seconds.
pub fn now(server: &TestServer) -> i64 {
    server.state.clock.now().unix_seconds()
}

pub fn jti() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A fresh DPoP proof by `key` for `method` on `path` of `server` (its `htu`), issued now, with
/// `ath` for `token` when given.
pub fn dpop_proof(
    server: &TestServer,
    key: &DpopKey,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> String {
    key.proof(method, &htu(server, path), now(server), &jti(), token).unwrap()
}

/// A session bound to `key` (`POST /v1/session` with a fresh proof): `(token, dpop_jkt)`.
pub async fn bound_session(server: &TestServer, workload: &Workload, key: &DpopKey) -> (String, String) {
    let response =
        create_session(server, workload, Some(&dpop_proof(server, key, "POST", "/v1/session", None)), "")
            .await;
    assert_eq!(response.status, 200, "{}", response.json());
    let body = response.json();
    (body["session_token"].as_str().unwrap().to_owned(), body["dpop_jkt"].as_str().unwrap().to_owned())
}

/// `/v1/workloads/{id}/manifest`.
pub fn manifest_path(workload: &Workload) -> String {
    format!("/v1/workloads/{}/manifest", workload.workload_id)
}

/// An integration on the built-in OpenAI template with the API key `secret`, so manifests have a
/// rule; its id.
pub async fn openai_integration(server: &TestServer, tenant: &str, secret: &str) -> String {
    let body = json!({"name": format!("openai-{}", uuid::Uuid::new_v4().simple()), "provider": "openai",
        "template_id": "tpl_openai", "secret": {"type": "api_key", "value": secret}});
    let (status, created) =
        owner(server, Method::POST, &format!("/v1/tenants/{tenant}/integrations"), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["integration_id"].as_str().unwrap().to_owned()
}

/// An ES256 key for proofs with hand-made headers and claims.
pub struct RawEcKey {
    pair: EcdsaKeyPair,
}

impl RawEcKey {
    pub fn generate() -> Self {
        Self { pair: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap() }
    }

    /// The public JWK (members required by RFC 7638).
    pub fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])})
    }

    /// The private scalar `d` (to build a JWK that wrongly carries it).
    pub fn private_d(&self) -> String {
        let pkcs8 = self.pair.to_pkcs8v1().unwrap();
        // The SEC1 private key inside PKCS#8 v1 for P-256: the 32-byte scalar follows `04 20`.
        let der = pkcs8.as_ref();
        let at = der.windows(2).position(|w| w == [0x04, 0x20]).unwrap() + 2;
        URL_SAFE_NO_PAD.encode(&der[at..at + 32])
    }

    /// `base64url(header).base64url(claims).base64url(ES256 signature)`.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
        );
        let signature = self.pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

/// Unsigned JWS parts with any signature bytes.
pub fn compact(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}
