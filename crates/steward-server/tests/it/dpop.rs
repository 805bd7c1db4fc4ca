//! DPoP end to end over real mTLS: every row of the spec's verification table on `POST /v1/session`
//! (each with its code and `WWW-Authenticate: DPoP error="invalid_dpop_proof"`, whether or not DPoP
//! is required), bound sessions on protected routes (`ath`, `jkt`, the Bearer scheme refused), the
//! jti replay check last (a refused proof never burns its jti), the `iat` window, and replays across
//! an embedded-mode restart and across two instances sharing PostgreSQL and Redis.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::workload::{
    INVALID_PROOF, RawEcKey, Workload, bound_session, call, challenge, code, compact, create_session,
    dpop_proof, enrolled, htu, jti, manifest_path, now, openai_integration, owner, session_token, tenant,
    with_session,
};
use common::{TestServer, free_port_env};
use http::Method;
use serde_json::{Value, json};
use steward_crypto::{DpopAlg, DpopKey, access_token_hash};
use steward_types::{ManualClock, SharedClock};

/// The API key of the OpenAI integrations.
const OPENAI_SECRET: &str = "sk-test-dpop-000001";

/// A proof for `POST /v1/session` now.
fn session_proof(server: &TestServer, key: &DpopKey) -> String {
    dpop_proof(server, key, "POST", "/v1/session", None)
}

/// A GET of the manifest with a bound session and a fresh proof for it.
fn manifest_proof(server: &TestServer, key: &DpopKey, workload: &Workload, token: &str) -> String {
    dpop_proof(server, key, "GET", &manifest_path(workload), Some(token))
}

fn assert_dpop_refusal(response: &steward_testkit::http_client::TestResponse, expected: &str, case: &str) {
    assert_eq!(code(response), (401, expected.to_owned()), "{case}: {}", response.json());
    assert_eq!(challenge(response), INVALID_PROOF, "{case}");
}

/// An RSA key of `bits` made by the openssl CLI (outside our code): `(jwk, key PEM path)`.
fn openssl_rsa(dir: &Path, bits: u32) -> (Value, std::path::PathBuf) {
    let key = dir.join(format!("rsa{bits}.pem"));
    let out = Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt"])
        .arg(format!("rsa_keygen_bits:{bits}"))
        .arg("-out")
        .arg(&key)
        .output()
        .expect("the openssl CLI is installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new("openssl").args(["rsa", "-noout", "-modulus", "-in"]).arg(&key).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let hex_modulus = text.trim().strip_prefix("Modulus=").unwrap();
    let n: Vec<u8> = (0..hex_modulus.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex_modulus[i..i + 2], 16).unwrap())
        .collect();
    (json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(n), "e": "AQAB"}), key)
}

/// Signs `header.claims` with RS256 through the openssl CLI.
fn openssl_rs256(dir: &Path, key: &Path, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let input_path = dir.join("input");
    std::fs::write(&input_path, &input).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .arg(&input_path)
        .output()
        .unwrap();
    assert!(out.status.success());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(out.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_proof_check_on_session_creation_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let tenant_id = tenant(&server, false).await;
    let workload = enrolled(&server, &tenant_id, json!({})).await;
    let key = RawEcKey::generate();
    let url = htu(&server, "/v1/session");
    let iat = now(&server);
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk()});
    let claims = |jti: &str| json!({"jti": jti, "htm": "POST", "htu": url, "iat": iat});
    let with = |base: &Value, field: &str, value: Value| {
        let mut out = base.clone();
        out[field] = value;
        out
    };
    let without = |base: &Value, field: &str| {
        let mut out = base.clone();
        out.as_object_mut().unwrap().remove(field);
        out
    };

    // A correct hand-made proof is accepted (the harness is right), and binds the session.
    let good = key.sign(&header, &claims(&jti()));
    let response = create_session(&server, &workload, Some(&good), "").await;
    assert_eq!(response.status, 200, "{}", response.json());
    assert!(response.json()["dpop_jkt"].is_string());

    let private_jwk = with(&key.jwk(), "d", json!(key.private_d()));
    let (rsa1024, rsa1024_key) = openssl_rsa(dir.path(), 1024);
    let rsa1024_header = json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": rsa1024});
    let rsa1024_proof = openssl_rs256(dir.path(), &rsa1024_key, &rsa1024_header, &claims(&jti()));
    let (rsa2048, rsa2048_key) = openssl_rsa(dir.path(), 2048);
    let rsa2048_header = json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": rsa2048});
    let rsa2048_proof = openssl_rs256(dir.path(), &rsa2048_key, &rsa2048_header, &claims(&jti()));
    let hmac_key = steward_crypto::HmacKey::new(b"a shared secret of 32 bytes....");
    let hs256_header = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}});
    let hs256_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&hs256_header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(&jti())).unwrap())
    );
    let hs256 = format!("{hs256_input}.{}", URL_SAFE_NO_PAD.encode(hmac_key.sign(hs256_input.as_bytes())));
    let tampered = {
        let proof = key.sign(&header, &claims(&jti()));
        let mut parts: Vec<String> = proof.split('.').map(str::to_owned).collect();
        parts[1] =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&with(&claims(&jti()), "htm", json!("POST"))).unwrap());
        parts.join(".")
    };
    let okp = DpopKey::generate_ed25519().unwrap();

    let cases: Vec<(&str, String, &str)> = vec![
        ("garbage", "not-a-jws".into(), "dpop_malformed"),
        ("four parts", format!("{good}.x"), "dpop_malformed"),
        ("not base64url", "a*b.c.d".into(), "dpop_malformed"),
        (
            "larger than 8 KiB",
            key.sign(&with(&header, "pad", json!("x".repeat(9000))), &claims(&jti())),
            "dpop_malformed",
        ),
        ("typ missing", key.sign(&without(&header, "typ"), &claims(&jti())), "dpop_bad_typ"),
        ("typ jwt", key.sign(&with(&header, "typ", json!("JWT")), &claims(&jti())), "dpop_bad_typ"),
        (
            "alg none",
            compact(&with(&header, "alg", json!("none")), &claims(&jti()), b""),
            "dpop_alg_forbidden",
        ),
        ("HS256", hs256, "dpop_alg_forbidden"),
        (
            "alg inconsistent with the key",
            key.sign(&with(&header, "jwk", okp.public_jwk().clone()), &claims(&jti())),
            "dpop_alg_forbidden",
        ),
        (
            "jwk with a private member",
            key.sign(&with(&header, "jwk", private_jwk), &claims(&jti())),
            "dpop_jwk_invalid",
        ),
        ("no jwk", key.sign(&without(&header, "jwk"), &claims(&jti())), "dpop_jwk_invalid"),
        ("RSA 1024", rsa1024_proof, "dpop_jwk_invalid"),
        ("signature of other claims", tampered, "dpop_signature_invalid"),
        (
            "signature by another key",
            RawEcKey::generate().sign(&header, &claims(&jti())),
            "dpop_signature_invalid",
        ),
        ("no jti", key.sign(&header, &without(&claims(&jti()), "jti")), "dpop_missing_claims"),
        (
            "iat a string",
            key.sign(&header, &with(&claims(&jti()), "iat", json!(iat.to_string()))),
            "dpop_missing_claims",
        ),
        ("no htu", key.sign(&header, &without(&claims(&jti()), "htu")), "dpop_missing_claims"),
        ("htm GET", key.sign(&header, &with(&claims(&jti()), "htm", json!("GET"))), "dpop_method_mismatch"),
        (
            "htm lowercase",
            key.sign(&header, &with(&claims(&jti()), "htm", json!("post"))),
            "dpop_method_mismatch",
        ),
        (
            "htu another host",
            key.sign(&header, &with(&claims(&jti()), "htu", json!("https://evil.example:8081/v1/session"))),
            "dpop_htu_mismatch",
        ),
        (
            "htu another port",
            key.sign(&header, &with(&claims(&jti()), "htu", json!("https://localhost:8443/v1/session"))),
            "dpop_htu_mismatch",
        ),
        (
            "htu another path",
            key.sign(&header, &with(&claims(&jti()), "htu", json!("https://localhost:8081/v1/sessions"))),
            "dpop_htu_mismatch",
        ),
        (
            "htu another scheme",
            key.sign(&header, &with(&claims(&jti()), "htu", json!("http://localhost:8081/v1/session"))),
            "dpop_htu_mismatch",
        ),
        (
            "iat far in the past",
            key.sign(&header, &with(&claims(&jti()), "iat", json!(iat - 3600))),
            "dpop_iat_skew",
        ),
        (
            "iat far in the future",
            key.sign(&header, &with(&claims(&jti()), "iat", json!(iat + 3600))),
            "dpop_iat_skew",
        ),
    ];
    for (case, proof, expected) in &cases {
        let response = create_session(&server, &workload, Some(proof), "").await;
        assert_dpop_refusal(&response, expected, case);
    }
    // Two DPoP headers.
    let second = key.sign(&header, &claims(&jti()));
    let response = call(
        &server,
        Some(&workload),
        Method::POST,
        "/v1/session",
        &[("dpop", &good), ("dpop", &second)],
        "",
    )
    .await;
    assert_dpop_refusal(&response, "dpop_malformed", "two headers");

    // Accepted: RFC 3986 normalization of htu (case, default port, query, fragment), RSA 2048, every alg.
    for accepted in ["https://LOCALHOST:8081/v1/session", "HTTPS://localhost:8081/v1/./session?x=1#frag"] {
        let proof = key.sign(&header, &with(&claims(&jti()), "htu", json!(accepted)));
        assert_eq!(create_session(&server, &workload, Some(&proof), "").await.status, 200, "{accepted}");
    }
    let response = create_session(&server, &workload, Some(&rsa2048_proof), "").await;
    assert_eq!(response.status, 200, "RSA 2048: {}", response.json());
    for alg in DpopAlg::ALL {
        let key = DpopKey::generate(alg).unwrap();
        let response = create_session(&server, &workload, Some(&session_proof(&server, &key)), "").await;
        assert_eq!(response.status, 200, "{alg}: {}", response.json());
        assert_eq!(response.json()["dpop_jkt"], key.thumbprint(), "{alg}");
    }

    // Audit: each refusal is session_issued denied with its code; failures are counted.
    let mut denied = Vec::new();
    for head in server.state.store.audit_chain_heads(Some(&tenant_id)).await.unwrap() {
        for event in server.state.store.audit_chain_events(&head.chain_id, 0, 10_000).await.unwrap() {
            let event = event.into_event();
            if event.event_type == steward_store::audit::EventType::SessionIssued
                && let Some(reason) = event.reason_code
            {
                denied.push(reason);
            }
        }
    }
    for (case, _, expected) in &cases {
        assert!(denied.iter().any(|d| d == expected), "{case}: {expected} audited");
    }
    let metrics = server.admin(Method::GET, "/metrics", None, None).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains(r#"steward_dpop_failures_total{reason="dpop_jwk_invalid"}"#), "{text}");
    assert!(text.contains(r#"steward_session_failures_total{reason="dpop_htu_mismatch"}"#), "{text}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_required_by_the_workload_or_its_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let plain_tenant = tenant(&server, false).await;
    let strict_tenant = tenant(&server, true).await;
    let strict_workload = enrolled(&server, &plain_tenant, json!({"dpop_required": true})).await;
    let in_strict_tenant = enrolled(&server, &strict_tenant, json!({})).await;
    for workload in [&strict_workload, &in_strict_tenant] {
        let response = create_session(&server, workload, None, "").await;
        assert_dpop_refusal(&response, "dpop_missing", &workload.workload_id);
        let key = DpopKey::generate_es256().unwrap();
        let (_, jkt) = bound_session(&server, workload, &key).await;
        assert_eq!(jkt, key.thumbprint());
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_sessions_need_a_proof_with_ath_from_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let tenant_id = tenant(&server, false).await;
    openai_integration(&server, &tenant_id, OPENAI_SECRET).await;
    let workload = enrolled(&server, &tenant_id, json!({})).await;
    let path = manifest_path(&workload);
    let url = htu(&server, &path);
    let key = DpopKey::generate_es256().unwrap();
    let (token, jkt) = bound_session(&server, &workload, &key).await;
    assert_eq!(jkt, key.thumbprint());
    let stored =
        server.state.store.session_by_hash(&steward_crypto::hash_token(&token)).await.unwrap().unwrap();
    assert_eq!(stored.dpop_jkt.as_deref(), Some(key.thumbprint()));

    let proof = manifest_proof(&server, &key, &workload, &token);
    let response = with_session(&server, &workload, Method::GET, &path, "DPoP", &token, Some(&proof)).await;
    assert_eq!(response.status, 200, "{}", response.json());
    assert_eq!(response.json()["dpop_required"], false);
    // The same proof again: replay.
    let response = with_session(&server, &workload, Method::GET, &path, "DPoP", &token, Some(&proof)).await;
    assert_dpop_refusal(&response, "dpop_replay", "replay");

    // A bound session presented with the Bearer scheme.
    let proof = manifest_proof(&server, &key, &workload, &token);
    let response = with_session(&server, &workload, Method::GET, &path, "Bearer", &token, Some(&proof)).await;
    assert_eq!(code(&response), (401, "session_dpop_required".to_owned()));
    assert!(challenge(&response).starts_with(r#"DPoP error="invalid_token""#), "{}", challenge(&response));
    // No proof.
    let response = with_session(&server, &workload, Method::GET, &path, "DPoP", &token, None).await;
    assert_dpop_refusal(&response, "dpop_missing", "no proof");
    // No ath; a wrong ath (another token's); a proof from another key.
    let no_ath = dpop_proof(&server, &key, "GET", &path, None);
    let response = with_session(&server, &workload, Method::GET, &path, "DPoP", &token, Some(&no_ath)).await;
    assert_dpop_refusal(&response, "dpop_ath_missing", "no ath");
    let other_token = session_token(&server, &workload, None).await;
    let wrong_ath = dpop_proof(&server, &key, "GET", &path, Some(&other_token));
    let response =
        with_session(&server, &workload, Method::GET, &path, "DPoP", &token, Some(&wrong_ath)).await;
    assert_dpop_refusal(&response, "dpop_ath_mismatch", "wrong ath");
    let raw = RawEcKey::generate();
    let bad_ath_type = raw.sign(
        &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": raw.jwk()}),
        &json!({"jti": jti(), "htm": "GET", "htu": url, "iat": now(&server), "ath": 5}),
    );
    let response =
        with_session(&server, &workload, Method::GET, &path, "DPoP", &token, Some(&bad_ath_type)).await;
    assert_dpop_refusal(&response, "dpop_ath_mismatch", "ath not a string");
    let thief = DpopKey::generate_es256().unwrap();
    let stolen = manifest_proof(&server, &thief, &workload, &token);
    let response = with_session(&server, &workload, Method::GET, &path, "DPoP", &token, Some(&stolen)).await;
    assert_dpop_refusal(&response, "dpop_jkt_mismatch", "another key");
    // The proof must be for this request: method and URL.
    let post_proof = dpop_proof(&server, &key, "POST", &path, Some(&token));
    let response =
        with_session(&server, &workload, Method::GET, &path, "DPoP", &token, Some(&post_proof)).await;
    assert_dpop_refusal(&response, "dpop_method_mismatch", "method");
    let session_url = dpop_proof(&server, &key, "GET", "/v1/session", Some(&token));
    let response =
        with_session(&server, &workload, Method::GET, &path, "DPoP", &token, Some(&session_url)).await;
    assert_dpop_refusal(&response, "dpop_htu_mismatch", "path");
    // The ath is the base64url SHA-256 of the token (cross-checked by hand).
    let digest = steward_crypto::sha256(token.as_bytes());
    assert_eq!(access_token_hash(&token), URL_SAFE_NO_PAD.encode(digest));

    // A refused request never burned its jti: the same jti, now in a correct proof, is accepted once.
    let reused = jti();
    let wrong_method = key.proof("POST", &url, now(&server), &reused, Some(&token)).unwrap();
    let response =
        with_session(&server, &workload, Method::GET, &path, "DPoP", &token, Some(&wrong_method)).await;
    assert_dpop_refusal(&response, "dpop_method_mismatch", "first, wrong method");
    let right = key.proof("GET", &url, now(&server), &reused, Some(&token)).unwrap();
    let response = with_session(&server, &workload, Method::GET, &path, "DPoP", &token, Some(&right)).await;
    assert_eq!(response.status, 200, "{}", response.json());

    // The identical request, first refused for its certificate (checked before DPoP), then sent with
    // the right one: accepted, so the refusal did not spend the jti.
    let second = common::workload::second_certificate(&server, &workload).await;
    let proof = manifest_proof(&server, &key, &workload, &token);
    let response = with_session(&server, &second, Method::GET, &path, "DPoP", &token, Some(&proof)).await;
    assert_eq!(code(&response), (401, "session_cert_mismatch".to_owned()));
    assert!(challenge(&response).starts_with(r#"DPoP error="invalid_token""#), "{}", challenge(&response));
    assert_eq!(
        with_session(&server, &workload, Method::GET, &path, "DPoP", &token, Some(&proof)).await.status,
        200
    );

    // On session creation, the identical proof: refused for the body, then accepted, then a replay.
    let proof = session_proof(&server, &key);
    let response = create_session(&server, &workload, Some(&proof), r#"{"requested_ttl_seconds":5}"#).await;
    assert_eq!(code(&response), (400, "request_body_schema_invalid".to_owned()));
    assert_eq!(create_session(&server, &workload, Some(&proof), "").await.status, 200);
    let response = create_session(&server, &workload, Some(&proof), "").await;
    assert_dpop_refusal(&response, "dpop_replay", "session replay");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iat_is_accepted_exactly_within_the_skew_window() {
    let dir = tempfile::tempdir().unwrap();
    common::init_data_dir(dir.path()).await;
    let clock = Arc::new(ManualClock::starting_now());
    let shared: SharedClock = clock.clone();
    let server = TestServer::start_with_clock(dir.path(), free_port_env(&[]), shared).await.unwrap();
    let tenant_id = tenant(&server, false).await;
    let workload = enrolled(&server, &tenant_id, json!({})).await;
    // Well past the process start, so only the skew bounds matter.
    clock.advance_seconds(1000);
    let key = DpopKey::generate_es256().unwrap();
    let url = htu(&server, "/v1/session");
    let now = now(&server);
    for (iat, accepted) in
        [(now - 300, true), (now - 301, false), (now + 300, true), (now + 301, false), (now, true)]
    {
        let proof = key.proof("POST", &url, iat, &jti(), None).unwrap();
        let response = create_session(&server, &workload, Some(&proof), "").await;
        if accepted {
            assert_eq!(response.status, 200, "iat now{:+}: {}", iat - now, response.json());
        } else {
            assert_dpop_refusal(&response, "dpop_iat_skew", &format!("iat now{:+}", iat - now));
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_cannot_be_replayed_across_an_embedded_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let tenant_id = tenant(&server, false).await;
    let workload = enrolled(&server, &tenant_id, json!({})).await;
    let key = DpopKey::generate_es256().unwrap();
    let proof = session_proof(&server, &key);
    assert_eq!(create_session(&server, &workload, Some(&proof), "").await.status, 200);
    assert_dpop_refusal(
        &create_session(&server, &workload, Some(&proof), "").await,
        "dpop_replay",
        "same process",
    );
    server.stop().await;

    // A new process has an empty replay cache, yet refuses the proof: it was issued before it started.
    let server = TestServer::start(dir.path(), free_port_env(&[])).await.unwrap();
    assert_eq!(
        server.state.started_at.unix_micros() % 1_000_000,
        0,
        "embedded mode starts on a whole second"
    );
    let response = create_session(&server, &workload, Some(&proof), "").await;
    assert_dpop_refusal(&response, "dpop_iat_skew", "after restart");
    assert!(response.json()["message"].as_str().unwrap().contains("started"), "{}", response.json());
    // Fresh proofs work.
    assert_eq!(create_session(&server, &workload, Some(&session_proof(&server, &key)), "").await.status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_is_used_once_across_two_instances_sharing_postgres_and_redis() {
    use steward_testkit::{TestDatabase, redis_url, unique_redis_prefix};

    common::install_crypto_provider();
    let database = TestDatabase::create().await.unwrap();
    let temp = tempfile::tempdir().unwrap();
    let (first_dir, second_dir) = (temp.path().join("first"), temp.path().join("second"));
    common::init_shared_pair(&database.url, &first_dir, &second_dir).await;
    let prefix = unique_redis_prefix();
    let env = || free_port_env(&[("STEWARD_STORAGE__REDIS_KEY_PREFIX", prefix.as_str())]);
    let first = TestServer::start(&first_dir, env()).await.unwrap();
    let mut second = TestServer::start(&second_dir, env()).await.unwrap();
    // The second instance has no owner token file of its own; it is the same deployment.
    second.data_dir = first_dir.clone();
    assert!(first.state.coord.is_shared() && second.state.coord.is_shared());

    let tenant_id = tenant(&first, false).await;
    openai_integration(&first, &tenant_id, OPENAI_SECRET).await;
    let workload = enrolled(&first, &tenant_id, json!({})).await;
    let key = DpopKey::generate_ed25519().unwrap();

    // Session creation: the same proof on both instances; the second sees the first's jti.
    let proof = session_proof(&first, &key);
    let response = create_session(&first, &workload, Some(&proof), "").await;
    assert_eq!(response.status, 200, "{}", response.json());
    let token = response.json()["session_token"].as_str().unwrap().to_owned();
    assert_dpop_refusal(
        &create_session(&second, &workload, Some(&proof), "").await,
        "dpop_replay",
        "second instance",
    );

    // A session made on one instance works on the other, and a proof used there is spent here.
    let path = manifest_path(&workload);
    let proof = manifest_proof(&first, &key, &workload, &token);
    let response = with_session(&second, &workload, Method::GET, &path, "DPoP", &token, Some(&proof)).await;
    assert_eq!(response.status, 200, "{}", response.json());
    let response = with_session(&first, &workload, Method::GET, &path, "DPoP", &token, Some(&proof)).await;
    assert_dpop_refusal(&response, "dpop_replay", "first instance");

    // A rotation on one instance reaches the other's signer (at most 30 s later; here on refresh).
    let (status, rotated) = owner(&first, Method::POST, "/v1/keys/manifest/rotate", None).await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(first.state.signing_key.cached().kid().as_str(), rotated["kid"]);
    assert_eq!(second.state.signing_key.cached().kid().as_str(), rotated["retired_kid"]);
    second.state.signing_key.refresh(&second.state).await.unwrap();
    assert_eq!(second.state.signing_key.cached().kid().as_str(), rotated["kid"]);

    // Redis loses its contents (a restart without persistence): the jtis are forgotten, so a proof
    // issued before that moment is refused instead of being accepted a second time.
    let old_proof = session_proof(&first, &key);
    // The new epoch is the second before the first check after the loss: wait long enough that the
    // old proof's whole-second iat is before it.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let mut redis =
        redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut redis).await.unwrap();
    let _: i64 = redis::cmd("DEL").arg(keys).query_async(&mut redis).await.unwrap();
    let response = create_session(&second, &workload, Some(&old_proof), "").await;
    assert_dpop_refusal(&response, "dpop_iat_skew", "proof older than the emptied replay cache");
    assert!(response.json()["message"].as_str().unwrap().contains("replay cache"), "{}", response.json());
    let response = create_session(&first, &workload, Some(&session_proof(&first, &key)), "").await;
    assert_eq!(response.status, 200, "fresh proofs work: {}", response.json());

    // Automatic rotation: not due on either instance right after a rotation.
    assert_eq!(steward_server::services::keys::rotate_manifest_key_if_due(&first.state).await.unwrap(), None);
    assert_eq!(
        steward_server::services::keys::rotate_manifest_key_if_due(&second.state).await.unwrap(),
        None
    );
    first.stop().await;
    second.stop().await;
}
