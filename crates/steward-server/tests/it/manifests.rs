//! Manifests end to end: the rules (enabled integrations, pinned or latest template versions), the
//! exact JWS header and JCS payload, verification with an independent JOSE implementation
//! (jsonwebtoken on aws-lc-rs, not our signing code) and with `steward_client::verify_manifest`, the
//! data plane's keyset (mTLS, etag, 304), key rotation by hand and automatically (a manifest signed
//! before a rotation still verifies after it; retired keys leave the keyset once their manifests
//! expired), and the refusals with their audit events.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::workload::{
    Workload, bound_session, call, code, dpop_proof, enrolled, manifest_path, owner, session_token, tenant,
    with_session,
};
use common::{TestServer, free_port_env};
use http::Method;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use steward_crypto::DpopKey;
use steward_testkit::templates::{self, group};
use steward_types::{ManualClock, SharedClock, Timestamp};

fn template(version: u64, patterns: &[&str], ports: &[u16]) -> Value {
    templates::template("tpl_acme", "acme")
        .global()
        .version(version)
        .description("Acme API")
        .ports(ports)
        .hosts(&["api.acme.example"])
        .default_injection(json!({"type": "header", "name": "authorization", "format": "Bearer {secret}"}))
        .group(
            group("acme_calls", &["GET", "POST"], patterns)
                .headers(&["content-type"])
                .response_headers(&["content-type"])
                .json_body(1024)
                .preview(&[]),
        )
        .build()
}

async fn publish(server: &TestServer, tenant: &str, template: Value) {
    let mut template = template;
    template["tenant_id"] = json!(tenant);
    let (status, body) = owner(server, Method::POST, "/v1/templates", Some(template)).await;
    assert_eq!(status, 201, "{body}");
}

async fn integration(
    server: &TestServer,
    tenant: &str,
    template_id: &str,
    provider: &str,
    version: Option<u64>,
) -> String {
    let mut body = json!({"name": format!("{provider}-{}", uuid::Uuid::new_v4().simple()), "provider": provider,
        "template_id": template_id, "secret": {"type": "api_key", "value": "sk-test-manifest-0001"}});
    if let Some(version) = version {
        body["template_version"] = json!(version);
    }
    let (status, created) =
        owner(server, Method::POST, &format!("/v1/tenants/{tenant}/integrations"), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["integration_id"].as_str().unwrap().to_owned()
}

async fn manifest(server: &TestServer, workload: &Workload, token: &str) -> (u16, Value) {
    let path = format!("/v1/workloads/{}/manifest", workload.workload_id);
    let response = with_session(server, workload, Method::GET, &path, "Bearer", token, None).await;
    (response.status, response.json())
}

async fn keyset(server: &TestServer, workload: &Workload) -> Value {
    let response = call(server, Some(workload), Method::GET, "/v1/keys/manifest", &[], "").await;
    assert_eq!(response.status, 200, "{}", response.json());
    response.json()
}

/// Verifies with jsonwebtoken, an independent JOSE implementation, and returns the claims.
fn verify_independently(document: &Value, keyset: &Value) -> Value {
    let jws = document["signature"]["jws"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(jws).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("broker-manifest+jws"));
    let kid = header.kid.unwrap();
    assert_eq!(document["signature"]["kid"], kid.as_str());
    let keys: JwkSet = serde_json::from_value(keyset.clone()).unwrap();
    let jwk = keys.find(&kid).unwrap_or_else(|| panic!("{kid} is not in the keyset {keyset}"));
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(jws, &key, &validation).unwrap().claims
}

fn without_signature(document: &Value) -> Value {
    let mut unsigned = document.clone();
    unsigned.as_object_mut().unwrap().remove("signature");
    unsigned
}

async fn events(server: &TestServer, tenant: &str, event_type: &str) -> Vec<Value> {
    let mut found = Vec::new();
    for head in server.state.store.audit_chain_heads(Some(tenant)).await.unwrap() {
        for event in server.state.store.audit_chain_events(&head.chain_id, 0, 10_000).await.unwrap() {
            let event = serde_json::to_value(event.into_event()).unwrap();
            if event["event_type"] == event_type {
                found.push(event);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_carry_the_rules_and_verify_with_an_independent_jose_library() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let tenant_id = tenant(&server, false).await;
    publish(&server, &tenant_id, template(1, &["^/v1/a$"], &[443])).await;
    let mut described = template(2, &["^/v1/a$", "^/v1/b/[a-z]+$"], &[443, 8443]);
    described["path_groups"][0]["description"] = json!("Calls of the Acme API");
    publish(&server, &tenant_id, described).await;
    let pinned = integration(&server, &tenant_id, "tpl_acme", "acme", Some(1)).await;
    let latest = integration(&server, &tenant_id, "tpl_acme", "acme", None).await;
    let openai = integration(&server, &tenant_id, "tpl_openai", "openai", None).await;
    let disabled = integration(&server, &tenant_id, "tpl_openai", "openai", None).await;
    let (status, _) = owner(
        &server,
        Method::PATCH,
        &format!("/v1/integrations/{disabled}"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 200);
    let workload = enrolled(&server, &tenant_id, json!({})).await;
    let token = session_token(&server, &workload, None).await;

    let before = server.state.clock.now().unix_seconds();
    let (status, document) = manifest(&server, &workload, &token).await;
    assert_eq!(status, 200, "{document}");
    assert_eq!(document["manifest_version"], 1);
    assert_eq!(document["workload_id"], workload.workload_id.as_str());
    assert_eq!(document["broker_execute_url"], "https://localhost:8081/v1/execute");
    assert_eq!(
        (document["dpop_required"].clone(), document["dpop_ath_required"].clone()),
        (json!(false), json!(false))
    );
    let issued = Timestamp::parse_rfc3339(document["issued_at"].as_str().unwrap()).unwrap();
    let expires = Timestamp::parse_rfc3339(document["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(issued.seconds_until(expires), 300, "manifest.ttl_seconds");
    assert!((issued.unix_seconds() - before).abs() <= 2);

    let rules = document["match_rules"].as_array().unwrap();
    let ids: Vec<&str> = rules.iter().map(|r| r["integration_id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        vec![pinned.as_str(), latest.as_str(), openai.as_str()],
        "enabled integrations, in order"
    );
    let rewrite = json!({"mode": "execute", "send_intended_url": true});
    let pinned_name = rules[0]["name"].as_str().unwrap();
    assert!(pinned_name.starts_with("acme-"), "{pinned_name}");
    assert_eq!(
        rules[0],
        json!({"integration_id": pinned, "name": pinned_name, "provider": "acme", "rewrite": rewrite,
        "groups": [{"group_id": "acme_calls", "methods": ["GET", "POST"], "path_patterns": ["^/v1/a$"],
            "query_allowlist": [], "header_forward_allowlist": ["content-type"],
            "risk_tier": "low", "approval_mode": "none"}],
        "match": {"hosts": ["api.acme.example"], "schemes": ["https"], "ports": [443], "path_groups": ["^/v1/a$"]}})
    );
    assert_eq!(rules[1]["groups"][0]["description"], "Calls of the Acme API");
    assert_eq!(
        rules[1]["match"],
        json!({"hosts": ["api.acme.example"], "schemes": ["https"], "ports": [443, 8443],
        "path_groups": ["^/v1/a$", "^/v1/b/[a-z]+$"]})
    );
    assert_eq!(rules[2]["provider"], "openai");
    assert_eq!(rules[2]["match"]["hosts"], json!(["api.openai.com"]));
    assert!(rules[2]["match"]["path_groups"].as_array().unwrap().contains(&json!("^/v1/responses$")));

    // The JWS: the exact protected header, the JCS payload, the keyset's key.
    let signature = &document["signature"];
    let kid = signature["kid"].as_str().unwrap();
    assert!(kid.starts_with("mk_"));
    assert_eq!(signature["alg"], "EdDSA");
    let jws = signature["jws"].as_str().unwrap();
    let parts: Vec<&str> = jws.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header, format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"broker-manifest+jws"}}"#));
    let payload = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
    assert_eq!(payload, serde_jcs::to_vec(&without_signature(&document)).unwrap());

    let keys = keyset(&server, &workload).await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    assert_eq!(keys["keys"][0]["kid"], kid);
    assert_eq!(verify_independently(&document, &keys), without_signature(&document));
    // The workload library accepts what the server produces.
    let verified =
        steward_client::verify_manifest(&document, &keys, &workload.workload_id, server.state.clock.now())
            .unwrap();
    assert_eq!(verified.match_rules.len(), 3);
    // A tampered manifest fails the independent check.
    let mut tampered = document.clone();
    tampered["signature"]["jws"] =
        json!(format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(b"{}"), parts[2]));
    let jwk: JwkSet = serde_json::from_value(keys.clone()).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.required_spec_claims.clear();
    let key = DecodingKey::from_jwk(jwk.find(kid).unwrap()).unwrap();
    assert!(
        jsonwebtoken::decode::<Value>(tampered["signature"]["jws"].as_str().unwrap(), &key, &validation)
            .is_err()
    );

    // Audit: manifest_issued allowed, with the key and the integrations.
    let issued_events = events(&server, &tenant_id, "manifest_issued").await;
    assert_eq!(issued_events.len(), 1);
    assert_eq!(issued_events[0]["decision"], "allowed");
    assert_eq!(issued_events[0]["metadata"]["kid"], kid);
    assert_eq!(issued_events[0]["metadata"]["integration_ids"], json!([pinned, latest, openai]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_plane_keyset_needs_mtls_and_supports_conditional_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let tenant_id = tenant(&server, false).await;
    let workload = enrolled(&server, &tenant_id, json!({})).await;

    let response = call(&server, None, Method::GET, "/v1/keys/manifest", &[], "").await;
    assert_eq!(code(&response), (401, "mtls_required".to_owned()));

    let response = call(&server, Some(&workload), Method::GET, "/v1/keys/manifest", &[], "").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["cache-control"], "public, max-age=60");
    let etag = response.headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "a strong etag: {etag}");
    let document = response.json();
    let key = &document["keys"][0];
    assert_eq!(
        (key["kty"].clone(), key["crv"].clone(), key["alg"].clone(), key["use"].clone()),
        (json!("OKP"), json!("Ed25519"), json!("EdDSA"), json!("sig"))
    );
    assert_eq!(URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap().len(), 32);
    // The same document as the admin listener's.
    let admin = server.admin(Method::GET, "/v1/keys/manifest", Some(&server.owner_token()), None).await;
    assert_eq!(admin.body, response.body);
    assert_eq!(admin.headers["etag"], etag.as_str());

    for (value, status) in [
        (etag.clone(), 304),
        (format!("W/{etag}"), 304),
        ("*".to_owned(), 304),
        (format!("\"other\", {etag}"), 304),
        ("\"other\"".to_owned(), 200),
    ] {
        let response = call(
            &server,
            Some(&workload),
            Method::GET,
            "/v1/keys/manifest",
            &[("if-none-match", &value)],
            "",
        )
        .await;
        assert_eq!(response.status, status, "{value}");
        assert_eq!(response.headers["etag"], etag.as_str());
        if status == 304 {
            assert!(response.body.is_empty());
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_refusals_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let empty_tenant = tenant(&server, false).await;
    let lonely = enrolled(&server, &empty_tenant, json!({})).await;
    let token = session_token(&server, &lonely, None).await;
    let (status, body) = manifest(&server, &lonely, &token).await;
    assert_eq!((status, body["error"].as_str().unwrap()), (404, "manifest_no_rules"));

    let tenant_id = tenant(&server, true).await;
    integration(&server, &tenant_id, "tpl_openai", "openai", None).await;
    let workload = enrolled(&server, &tenant_id, json!({})).await;
    let neighbour = enrolled(&server, &tenant_id, json!({})).await;
    let key = DpopKey::generate_es256().unwrap();
    let (token, _) = bound_session(&server, &workload, &key).await;

    // Another workload's manifest, even of the same tenant.
    let path = manifest_path(&neighbour);
    let proof = dpop_proof(&server, &key, "GET", &path, Some(&token));
    let response = with_session(&server, &workload, Method::GET, &path, "DPoP", &token, Some(&proof)).await;
    assert_eq!(code(&response), (403, "manifest_workload_mismatch".to_owned()));

    // The tenant requires DPoP: the manifest says so.
    let path = manifest_path(&workload);
    let proof = dpop_proof(&server, &key, "GET", &path, Some(&token));
    let response = with_session(&server, &workload, Method::GET, &path, "DPoP", &token, Some(&proof)).await;
    assert_eq!(response.status, 200, "{}", response.json());
    assert_eq!(
        (response.json()["dpop_required"].clone(), response.json()["dpop_ath_required"].clone()),
        (json!(true), json!(true))
    );

    let lonely_events = events(&server, &empty_tenant, "manifest_issued").await;
    assert_eq!(lonely_events.len(), 1);
    assert_eq!(
        (lonely_events[0]["decision"].clone(), lonely_events[0]["reason_code"].clone()),
        (json!("denied"), json!("manifest_no_rules"))
    );
    let decisions: Vec<(Value, Value)> = events(&server, &tenant_id, "manifest_issued")
        .await
        .iter()
        .map(|e| (e["decision"].clone(), e["reason_code"].clone()))
        .collect();
    assert_eq!(
        decisions,
        vec![(json!("denied"), json!("manifest_workload_mismatch")), (json!("allowed"), Value::Null)]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_signed_before_a_rotation_verifies_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let tenant_id = tenant(&server, false).await;
    integration(&server, &tenant_id, "tpl_openai", "openai", None).await;
    let workload = enrolled(&server, &tenant_id, json!({})).await;
    let token = session_token(&server, &workload, None).await;
    let (_, before) = manifest(&server, &workload, &token).await;
    let old_kid = before["signature"]["kid"].clone();

    let (status, rotated) = owner(&server, Method::POST, "/v1/keys/manifest/rotate", None).await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["retired_kid"], old_kid);
    let keys = keyset(&server, &workload).await;
    let kids: Vec<Value> = keys["keys"].as_array().unwrap().iter().map(|k| k["kid"].clone()).collect();
    assert_eq!(kids, vec![rotated["kid"].clone(), old_kid.clone()]);

    // The old manifest still verifies against the new keyset, independently and with the client.
    assert_eq!(verify_independently(&before, &keys), without_signature(&before));
    steward_client::verify_manifest(&before, &keys, &workload.workload_id, server.state.clock.now()).unwrap();
    // This instance signs with the new key at once.
    let (_, after) = manifest(&server, &workload, &token).await;
    assert_eq!(after["signature"]["kid"], rotated["kid"]);
    assert_eq!(verify_independently(&after, &keys), without_signature(&after));

    // The final audit checkpoint is signed with the new key too (the same key handle).
    let state = server.state.clone();
    server.stop().await;
    let checkpoints = state.store.list_checkpoints(None, 1).await.unwrap();
    assert_eq!(checkpoints[0].kid.as_str(), rotated["kid"].as_str().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_rotation_after_key_rotation_days() {
    let dir = tempfile::tempdir().unwrap();
    common::init_data_dir(dir.path()).await;
    let clock = Arc::new(ManualClock::starting_now());
    let shared: SharedClock = clock.clone();
    // The workload's certificate must outlive the 30 days the clock moves (checked per request).
    let env = free_port_env(&[
        ("STEWARD_ENROLLMENT__MAX_CERT_TTL_SECONDS", "3888000"),
        ("STEWARD_ENROLLMENT__DEFAULT_CERT_TTL_SECONDS", "3888000"),
    ]);
    let server = TestServer::start_with_clock(dir.path(), env, shared).await.unwrap();
    let tenant_id = tenant(&server, false).await;
    integration(&server, &tenant_id, "tpl_openai", "openai", None).await;
    let workload = enrolled(&server, &tenant_id, json!({})).await;
    let first_kid = server.state.signing_key.cached().kid().to_string();

    // Not due: nothing changes. (The key was made by init, a moment before the server's clock started.)
    assert_eq!(
        steward_server::services::keys::rotate_manifest_key_if_due(&server.state).await.unwrap(),
        None
    );
    clock.advance_seconds(30 * 86_400 - 60);
    assert_eq!(
        steward_server::services::keys::rotate_manifest_key_if_due(&server.state).await.unwrap(),
        None
    );
    let token = session_token(&server, &workload, None).await;
    let (_, before) = manifest(&server, &workload, &token).await;
    assert_eq!(before["signature"]["kid"], first_kid.as_str());

    // 30 days (the default `manifest.key_rotation_days`): rotated, once.
    clock.advance_seconds(60);
    let rotation =
        steward_server::services::keys::rotate_manifest_key_if_due(&server.state).await.unwrap().unwrap();
    assert_eq!(rotation.retired_kid.as_ref().map(|k| k.to_string()), Some(first_kid.clone()));
    assert_eq!(
        steward_server::services::keys::rotate_manifest_key_if_due(&server.state).await.unwrap(),
        None
    );
    let (_, after) = manifest(&server, &workload, &token).await;
    assert_eq!(after["signature"]["kid"], rotation.kid.as_str());
    let keys = keyset(&server, &workload).await;
    assert_eq!(verify_independently(&before, &keys), without_signature(&before));
    assert_eq!(verify_independently(&after, &keys), without_signature(&after));

    let rotated: Vec<Value> = {
        let mut found = Vec::new();
        for head in server.state.store.audit_chain_heads(None).await.unwrap() {
            for event in server.state.store.audit_chain_events(&head.chain_id, 0, 10_000).await.unwrap() {
                let event = serde_json::to_value(event.into_event()).unwrap();
                if event["event_type"] == "key_rotated" {
                    found.push(event);
                }
            }
        }
        found
    };
    assert_eq!(rotated.len(), 1);
    assert_eq!(rotated[0]["actor"]["type"], "system");
    assert_eq!(rotated[0]["metadata"]["trigger"], "automatic");
    assert_eq!(rotated[0]["metadata"]["kid"], rotation.kid.as_str());
    assert_eq!(rotated[0]["metadata"]["retired_kid"], first_kid.as_str());

    // The retired key stays published while a manifest it signed may be valid (plus the 30 s an
    // instance may still sign with it), then leaves the keyset.
    clock.advance_seconds(300 + 30 - 1);
    assert_eq!(keyset(&server, &workload).await["keys"].as_array().unwrap().len(), 2);
    clock.advance_seconds(2);
    let keys = keyset(&server, &workload).await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    assert_eq!(keys["keys"][0]["kid"], rotation.kid.as_str());
    server.stop().await;
}
