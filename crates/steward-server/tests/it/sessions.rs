//! Sessions end to end over real mTLS: `POST /v1/session` (TTL, scopes, token shape, only the hash
//! stored, audit, rate limit), the session checks of protected routes in the spec's order with their
//! codes and challenges, revocation and disabling taking effect on the next request, and
//! `GET /v1/approvals/{id}` for the calling workload only.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::workload::{
    INVALID_PROOF, call, challenge, code, create_session, enrolled, manifest_path, openai_integration, owner,
    second_certificate, session_token, tenant, with_session,
};
use common::{TestServer, free_port_env};
use http::Method;
use serde_json::{Value, json};
use steward_crypto::hash_token;
use steward_store::governance::NewApproval;
use steward_types::{ApprovalId, IntegrationId, ManualClock, SharedClock, TenantId, WorkloadId};

/// Every event of `event_type` in the store, oldest first.
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

fn thumbprint(cert_pem: &str) -> String {
    let (_, block) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).unwrap();
    URL_SAFE_NO_PAD.encode(steward_crypto::sha256(&block.contents))
}

/// The API key of the OpenAI integrations.
const OPENAI_SECRET: &str = "sk-test-session-0001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_creation_ttl_scopes_token_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let tenant = tenant(&server, false).await;
    let workload = enrolled(&server, &tenant, json!({})).await;

    // Empty body, no content type: `{}`.
    let before = server.state.clock.now();
    let response = call(&server, Some(&workload), Method::POST, "/v1/session", &[], "").await;
    assert_eq!(response.status, 200, "{}", response.json());
    let session = response.json();
    let token = session["session_token"].as_str().unwrap();
    let random = token.strip_prefix("stw_sess_").unwrap();
    assert_eq!(random.len(), 43);
    assert_eq!(URL_SAFE_NO_PAD.decode(random).unwrap().len(), 32);
    assert!(session["session_id"].as_str().unwrap().starts_with("sess_"));
    assert_eq!(session["scopes"], json!(["execute", "manifest.read"]));
    assert_eq!(session["bound_cert_thumbprint"], thumbprint(&workload.cert_pem));
    assert!(session.get("dpop_jkt").is_none(), "only bound sessions carry dpop_jkt");
    let expires = steward_types::Timestamp::parse_rfc3339(session["expires_at"].as_str().unwrap()).unwrap();
    assert!((before.seconds_until(expires) - 900).abs() <= 2, "default TTL");
    assert_eq!(response.headers["cache-control"], "no-store");

    // Only the SHA-256 of the token is stored.
    let stored = server.state.store.session_by_hash(&hash_token(token)).await.unwrap().unwrap();
    assert_eq!(stored.session_id.as_str(), session["session_id"]);
    assert_eq!(stored.scopes, vec!["execute", "manifest.read"]);
    assert_eq!(stored.cert_thumbprint, thumbprint(&workload.cert_pem));
    assert_eq!(stored.dpop_jkt, None);

    // TTL bounds and scopes.
    for (body, expected_ttl, scopes) in [
        (json!({}), 900, json!(["execute", "manifest.read"])),
        (json!({"requested_ttl_seconds": 60}), 60, json!(["execute", "manifest.read"])),
        (json!({"requested_ttl_seconds": 3600, "scopes": []}), 3600, json!(["execute", "manifest.read"])),
        (json!({"scopes": ["execute"]}), 900, json!(["execute"])),
        (json!({"scopes": ["manifest.read", "manifest.read"]}), 900, json!(["manifest.read"])),
    ] {
        let response = create_session(&server, &workload, None, &body.to_string()).await;
        assert_eq!(response.status, 200, "{body}: {}", response.json());
        let got = response.json();
        let expires = steward_types::Timestamp::parse_rfc3339(got["expires_at"].as_str().unwrap()).unwrap();
        assert!((server.state.clock.now().seconds_until(expires) - expected_ttl).abs() <= 2, "{body}");
        assert_eq!(got["scopes"], scopes, "{body}");
    }
    for (body, expected) in [
        (json!({"requested_ttl_seconds": 59}).to_string(), (400, "request_body_schema_invalid")),
        (json!({"requested_ttl_seconds": 3601}).to_string(), (400, "request_body_schema_invalid")),
        (json!({"requested_ttl_seconds": "60"}).to_string(), (400, "request_body_schema_invalid")),
        (json!({"requested_ttl_seconds": -1}).to_string(), (400, "request_body_schema_invalid")),
        (json!({"extra": true}).to_string(), (400, "request_body_schema_invalid")),
        (json!({"scopes": ["admin"]}).to_string(), (400, "session_scope_invalid")),
        (json!({"scopes": ["execute", "Execute"]}).to_string(), (400, "session_scope_invalid")),
        (json!({"scopes": "execute"}).to_string(), (400, "request_body_schema_invalid")),
        ("{not json".to_owned(), (400, "request_body_invalid_json")),
    ] {
        let response = create_session(&server, &workload, None, &body).await;
        assert_eq!(code(&response), (expected.0, expected.1.to_owned()), "{body}");
    }
    let response =
        call(&server, Some(&workload), Method::POST, "/v1/session", &[("content-type", "text/plain")], "{}")
            .await;
    assert_eq!(code(&response), (415, "content_type_invalid".to_owned()));
    let response = call(&server, Some(&workload), Method::GET, "/v1/session", &[], "").await;
    assert_eq!(code(&response), (405, "method_not_allowed".to_owned()));

    // Without a certificate: refused before identification, so not audited.
    let response = call(&server, None, Method::POST, "/v1/session", &[], "").await;
    assert_eq!(code(&response), (401, "mtls_required".to_owned()));

    // Audit: allowed with scopes and binding; refusals after identification denied with the reason.
    let issued = events(&server, &tenant, "session_issued").await;
    let allowed: Vec<&Value> = issued.iter().filter(|e| e["decision"] == "allowed").collect();
    assert_eq!(allowed.len(), 6);
    assert_eq!(allowed[0]["metadata"]["scopes"], json!(["execute", "manifest.read"]));
    assert_eq!(allowed[0]["metadata"]["dpop_bound"], false);
    assert_eq!(allowed[0]["metadata"]["session_id"], session["session_id"]);
    assert_eq!(allowed[0]["workload_id"], workload.workload_id.as_str());
    assert_eq!(allowed[0]["actor"], json!({"type": "workload", "id": workload.workload_id}));
    let denied: Vec<&str> = issued
        .iter()
        .filter(|e| e["decision"] == "denied")
        .map(|e| e["reason_code"].as_str().unwrap())
        .collect();
    assert!(
        denied.contains(&"session_scope_invalid") && denied.contains(&"content_type_invalid"),
        "{denied:?}"
    );
    for event in &issued {
        let text = event.to_string();
        assert!(!text.contains(token), "no token in audit events");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_checks_run_in_the_spec_order_with_their_challenges() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let tenant_id = tenant(&server, false).await;
    openai_integration(&server, &tenant_id, OPENAI_SECRET).await;
    let workload = enrolled(&server, &tenant_id, json!({})).await;
    let other = enrolled(&server, &tenant_id, json!({})).await;
    let path = manifest_path(&workload);
    let token = session_token(&server, &workload, None).await;
    let bearer_invalid = r#"Bearer error="invalid_token""#;

    let ok = with_session(&server, &workload, Method::GET, &path, "Bearer", &token, None).await;
    assert_eq!(ok.status, 200, "{}", ok.json());
    // The scheme is case-insensitive.
    let ok = with_session(&server, &workload, Method::GET, &path, "bEaReR", &token, None).await;
    assert_eq!(ok.status, 200, "{}", ok.json());

    // 0. mTLS first: no certificate, no session check.
    let response =
        call(&server, None, Method::GET, &path, &[("authorization", &format!("Bearer {token}"))], "").await;
    assert_eq!(code(&response), (401, "mtls_required".to_owned()));

    // 1. session_missing.
    for headers in [vec![], vec![("authorization", "Basic dXNlcjpwYXNz")], vec![("authorization", "Bearer")]]
    {
        let response = call(&server, Some(&workload), Method::GET, &path, &headers, "").await;
        assert_eq!(code(&response), (401, "session_missing".to_owned()), "{headers:?}");
        assert_eq!(challenge(&response), bearer_invalid);
    }

    // 2. session_invalid: unknown (Bearer and DPoP schemes get their own challenge).
    let unknown = "stw_sess_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let response = with_session(&server, &workload, Method::GET, &path, "Bearer", unknown, None).await;
    assert_eq!(
        (code(&response), challenge(&response)),
        ((401, "session_invalid".to_owned()), bearer_invalid.to_owned())
    );
    let response = with_session(&server, &workload, Method::GET, &path, "Bearer", "garbage", None).await;
    assert_eq!(code(&response), (401, "session_invalid".to_owned()));
    let response = with_session(&server, &workload, Method::GET, &path, "DPoP", unknown, None).await;
    assert_eq!(code(&response), (401, "session_invalid".to_owned()));
    assert!(challenge(&response).starts_with(r#"DPoP error="invalid_token""#), "{}", challenge(&response));

    // 3. An unbound session presented with the DPoP scheme.
    let response = with_session(&server, &workload, Method::GET, &path, "DPoP", &token, None).await;
    assert_eq!(
        (code(&response), challenge(&response)),
        ((401, "session_invalid".to_owned()), bearer_invalid.to_owned())
    );

    // 4. Another workload's session.
    let response = with_session(&server, &other, Method::GET, &path, "Bearer", &token, None).await;
    assert_eq!(code(&response), (401, "session_workload_mismatch".to_owned()));

    // 5. A stolen token with another certificate of the same workload.
    let second = second_certificate(&server, &workload).await;
    let response = with_session(&server, &second, Method::GET, &path, "Bearer", &token, None).await;
    assert_eq!(
        (code(&response), challenge(&response)),
        ((401, "session_cert_mismatch".to_owned()), bearer_invalid.to_owned())
    );
    // The second certificate's own session works.
    let second_token = session_token(&server, &second, None).await;
    assert_eq!(
        with_session(&server, &second, Method::GET, &path, "Bearer", &second_token, None).await.status,
        200
    );

    // 6. The route's scope.
    let response = create_session(&server, &workload, None, r#"{"scopes":["execute"]}"#).await;
    let execute_only = response.json()["session_token"].as_str().unwrap().to_owned();
    let response = with_session(&server, &workload, Method::GET, &path, "Bearer", &execute_only, None).await;
    assert_eq!(code(&response), (403, "session_scope_missing".to_owned()));
    assert_eq!(challenge(&response), r#"Bearer error="insufficient_scope""#);

    // 7. The tenant starts requiring DPoP: the unbound session stops working on its next request.
    let (status, _) = owner(
        &server,
        Method::PATCH,
        &format!("/v1/tenants/{tenant_id}"),
        Some(json!({"dpop_required": true})),
    )
    .await;
    assert_eq!(status, 200);
    let response = with_session(&server, &workload, Method::GET, &path, "Bearer", &token, None).await;
    assert_eq!(code(&response), (401, "session_dpop_required".to_owned()));
    assert!(challenge(&response).starts_with("DPoP "), "{}", challenge(&response));
    owner(&server, Method::PATCH, &format!("/v1/tenants/{tenant_id}"), Some(json!({"dpop_required": false})))
        .await;
    assert_eq!(
        with_session(&server, &workload, Method::GET, &path, "Bearer", &token, None).await.status,
        200
    );

    // Revoking the workload's sessions takes effect on the next request.
    let (status, revoked) = owner(
        &server,
        Method::POST,
        &format!("/v1/workloads/{}/sessions/revoke", workload.workload_id),
        None,
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    let response = with_session(&server, &workload, Method::GET, &path, "Bearer", &token, None).await;
    assert_eq!(code(&response), (401, "session_invalid".to_owned()));

    // Session failures after identification are audited on the manifest route and counted.
    let denied: Vec<String> = events(&server, &tenant_id, "manifest_issued")
        .await
        .iter()
        .filter(|e| e["decision"] == "denied")
        .map(|e| e["reason_code"].as_str().unwrap().to_owned())
        .collect();
    for expected in [
        "session_missing",
        "session_invalid",
        "session_workload_mismatch",
        "session_cert_mismatch",
        "session_scope_missing",
        "session_dpop_required",
    ] {
        assert!(denied.iter().any(|d| d == expected), "{expected} in {denied:?}");
    }
    let metrics = server.admin(Method::GET, "/metrics", None, None).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains(r#"steward_session_failures_total{reason="session_cert_mismatch"}"#), "{text}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_revoking_and_allowlists_apply_on_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let tenant_id = tenant(&server, false).await;
    openai_integration(&server, &tenant_id, OPENAI_SECRET).await;
    let workload = enrolled(&server, &tenant_id, json!({})).await;
    let path = manifest_path(&workload);
    let token = session_token(&server, &workload, None).await;
    let workload_path = format!("/v1/workloads/{}", workload.workload_id);
    assert_eq!(
        with_session(&server, &workload, Method::GET, &path, "Bearer", &token, None).await.status,
        200
    );

    // Disabled: the next request is refused, before the session is looked at.
    owner(&server, Method::PATCH, &workload_path, Some(json!({"enabled": false}))).await;
    let response = with_session(&server, &workload, Method::GET, &path, "Bearer", &token, None).await;
    assert_eq!(code(&response), (401, "workload_disabled".to_owned()));
    assert_eq!(
        code(&create_session(&server, &workload, None, "").await),
        (401, "workload_disabled".to_owned())
    );
    owner(&server, Method::PATCH, &workload_path, Some(json!({"enabled": true}))).await;
    assert_eq!(
        with_session(&server, &workload, Method::GET, &path, "Bearer", &token, None).await.status,
        200
    );

    // An allowlist without the client's address.
    owner(&server, Method::PATCH, &workload_path, Some(json!({"ip_allowlist": ["10.0.0.0/8"]}))).await;
    let response = with_session(&server, &workload, Method::GET, &path, "Bearer", &token, None).await;
    assert_eq!(code(&response), (403, "workload_ip_denied".to_owned()));
    owner(&server, Method::PATCH, &workload_path, Some(json!({"ip_allowlist": ["::ffff:127.0.0.1"]}))).await;
    assert_eq!(
        with_session(&server, &workload, Method::GET, &path, "Bearer", &token, None).await.status,
        200
    );

    // The certificate revoked: its session is useless at once, and so is a new session.
    let (_, certificates) = owner(&server, Method::GET, &format!("{workload_path}/certificates"), None).await;
    let serial = certificates["certificates"][0]["serial"].as_str().unwrap().to_owned();
    let (status, body) =
        owner(&server, Method::POST, &format!("{workload_path}/certificates/{serial}/revoke"), None).await;
    assert_eq!(status, 200, "{body}");
    let response = with_session(&server, &workload, Method::GET, &path, "Bearer", &token, None).await;
    assert_eq!(code(&response), (401, "certificate_revoked".to_owned()));
    assert_eq!(
        code(&create_session(&server, &workload, None, "").await),
        (401, "certificate_revoked".to_owned())
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_and_are_rate_limited_per_workload() {
    let dir = tempfile::tempdir().unwrap();
    common::init_data_dir(dir.path()).await;
    let clock = Arc::new(ManualClock::starting_now());
    let shared: SharedClock = clock.clone();
    let server = TestServer::start_with_clock(
        dir.path(),
        free_port_env(&[("STEWARD_SESSION__MAX_PER_MINUTE", "3")]),
        shared,
    )
    .await
    .unwrap();
    let tenant_id = tenant(&server, false).await;
    openai_integration(&server, &tenant_id, OPENAI_SECRET).await;
    let workload = enrolled(&server, &tenant_id, json!({})).await;
    let neighbour = enrolled(&server, &tenant_id, json!({})).await;
    let path = manifest_path(&workload);

    // Expiry: a 60 s session works at 59 s and not at 60 s.
    let response = create_session(&server, &workload, None, r#"{"requested_ttl_seconds":60}"#).await;
    let token = response.json()["session_token"].as_str().unwrap().to_owned();
    clock.advance_seconds(59);
    assert_eq!(
        with_session(&server, &workload, Method::GET, &path, "Bearer", &token, None).await.status,
        200
    );
    clock.advance_seconds(1);
    let response = with_session(&server, &workload, Method::GET, &path, "Bearer", &token, None).await;
    assert_eq!(code(&response), (401, "session_invalid".to_owned()));

    // Three sessions a minute; the fourth waits for the oldest to leave the window.
    for _ in 0..3 {
        assert_eq!(create_session(&server, &workload, None, "").await.status, 200);
        clock.advance_seconds(10);
    }
    let refused = create_session(&server, &workload, None, "").await;
    assert_eq!(code(&refused), (429, "session_rate_limited".to_owned()));
    assert_eq!(refused.headers["retry-after"], "30");
    // Other workloads have their own budget.
    assert_eq!(create_session(&server, &neighbour, None, "").await.status, 200);
    clock.advance_seconds(30);
    assert_eq!(create_session(&server, &workload, None, "").await.status, 200);
    let refused = create_session(&server, &workload, None, "").await;
    assert_eq!(code(&refused), (429, "session_rate_limited".to_owned()));
    assert_eq!(refused.headers["retry-after"], "10");

    let throttled: Vec<Value> = events(&server, &tenant_id, "session_issued")
        .await
        .into_iter()
        .filter(|e| e["decision"] == "throttled")
        .collect();
    assert_eq!(throttled.len(), 2);
    assert_eq!(throttled[0]["reason_code"], "session_rate_limited");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_reads_only_its_own_approvals() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let tenant_id = tenant(&server, false).await;
    let integration_id = openai_integration(&server, &tenant_id, OPENAI_SECRET).await;
    let workload = enrolled(&server, &tenant_id, json!({})).await;
    let neighbour = enrolled(&server, &tenant_id, json!({})).await;
    let other_tenant = tenant(&server, false).await;
    let stranger = enrolled(&server, &other_tenant, json!({})).await;

    let now = server.state.clock.now();
    let approval = NewApproval {
        approval_id: ApprovalId::generate(),
        tenant_id: TenantId::parse(&tenant_id).unwrap(),
        workload_id: WorkloadId::parse(&workload.workload_id).unwrap(),
        integration_id: IntegrationId::parse(&integration_id).unwrap(),
        digest: "digest-1".into(),
        descriptor: json!({"tenant_id": tenant_id, "workload_id": workload.workload_id, "integration_id": integration_id,
            "template_id": "tpl_openai", "template_version": 1, "method": "POST",
            "canonical_url": "https://api.openai.com/v1/responses?stream=false", "action_group": "openai_responses",
            "risk_tier": "low", "normalized_headers": [], "query_keys": ["stream"], "body_sha256": null}),
        preview: None,
        proposed_rule: json!({}),
        created_at: now,
        expires_at: now.plus_seconds(300),
    };
    server.state.store.insert_approval(&approval).await.unwrap();
    let path = format!("/v1/approvals/{}", approval.approval_id);

    let token = session_token(&server, &workload, None).await;
    let response = with_session(&server, &workload, Method::GET, &path, "Bearer", &token, None).await;
    assert_eq!(response.status, 200, "{}", response.json());
    let body = response.json();
    assert_eq!(body["approval_id"], approval.approval_id.as_str());
    assert_eq!(body["status"], "pending");
    assert_eq!(body["expires_at"], json!(approval.expires_at));
    assert_eq!(body["decided_at"], Value::Null);
    assert_eq!(body["mode"], Value::Null);
    assert_eq!(
        body["summary"],
        json!({"integration_id": integration_id, "action_group": "openai_responses", "risk_tier": "low",
            "destination_host": "api.openai.com", "method": "POST", "path": "/v1/responses"})
    );
    // The client library reads it.
    let parsed: steward_client::ApprovalStatus = serde_json::from_value(body).unwrap();
    assert_eq!(parsed.summary.path, "/v1/responses");

    // Another workload of the tenant, another tenant's workload, an unknown or malformed id: 404.
    for (who, path) in [
        (&neighbour, path.clone()),
        (&stranger, path.clone()),
        (&workload, format!("/v1/approvals/{}", ApprovalId::generate())),
        (&workload, "/v1/approvals/not-an-id".to_owned()),
    ] {
        let token = session_token(&server, who, None).await;
        let response = with_session(&server, who, Method::GET, &path, "Bearer", &token, None).await;
        assert_eq!(code(&response), (404, "approval_not_found".to_owned()), "{path}");
    }
    // An undecodable path parameter: the standard error body, after the identity checks.
    let response =
        with_session(&server, &workload, Method::GET, "/v1/approvals/%FF", "Bearer", &token, None).await;
    assert_eq!(code(&response), (400, "path_param_invalid".to_owned()));
    let response = call(&server, Some(&workload), Method::GET, "/v1/approvals/%FF", &[], "").await;
    assert_eq!(code(&response), (401, "session_missing".to_owned()));

    // The route needs scope execute.
    let response = create_session(&server, &workload, None, r#"{"scopes":["manifest.read"]}"#).await;
    let manifest_only = response.json()["session_token"].as_str().unwrap().to_owned();
    let response = with_session(&server, &workload, Method::GET, &path, "Bearer", &manifest_only, None).await;
    assert_eq!(code(&response), (403, "session_scope_missing".to_owned()));
    let response = call(&server, Some(&workload), Method::GET, &path, &[], "").await;
    assert_eq!(code(&response), (401, "session_missing".to_owned()));
    assert_ne!(challenge(&response), INVALID_PROOF);
    server.stop().await;
}
