//! The identity part of the admin API over real HTTP: admin tokens, tenants, workloads, enrollment
//! tokens, certificates and sessions; the role matrix of these routes cell by cell; tenant-scope
//! refusals; every validation code; `admin_action` audit events.

// Test helpers outside #[test] functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used)]

use crate::common;

use common::admin_call as call;

use common::TestServer;
use http::Method;
use serde_json::{Value, json};
use steward_crypto::hash_token;
use steward_store::{CertificateRecord, SessionRecord};
use steward_types::{SessionId, WorkloadId};

fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!((got.0, got.1["error"].as_str().unwrap_or("")), (status, code), "{}", got.1);
}

async fn create_tenant(server: &TestServer, owner: &str, name: &str) -> String {
    let (status, body) = call(server, Method::POST, "/v1/tenants", owner, Some(json!({"name": name}))).await;
    assert_eq!(status, 201, "{body}");
    body["tenant_id"].as_str().unwrap().to_owned()
}

async fn create_workload(server: &TestServer, token: &str, tenant: &str, name: &str) -> Value {
    let path = format!("/v1/tenants/{tenant}/workloads");
    let (status, body) = call(server, Method::POST, &path, token, Some(json!({"name": name}))).await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn create_token(server: &TestServer, owner: &str, role: &str, tenants: &[&str]) -> String {
    let body = json!({"name": format!("{role} token"), "role": role, "tenant_ids": tenants});
    let (status, body) = call(server, Method::POST, "/v1/admin/tokens", owner, Some(body)).await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// Every stored audit event, as JSON text.
async fn audit_bodies(server: &TestServer) -> Vec<String> {
    let store = &server.state.store;
    let mut bodies = Vec::new();
    for head in store.audit_chain_heads(None).await.unwrap() {
        for event in store.audit_chain_events(&head.chain_id, 0, 100_000).await.unwrap() {
            bodies.push(event.body_json().unwrap());
        }
    }
    bodies
}

fn certificate(workload_id: &str, serial: &str) -> CertificateRecord {
    let now = steward_types::Timestamp::from_unix_seconds(1_800_000_000).unwrap();
    CertificateRecord {
        serial: serial.to_owned(),
        workload_id: WorkloadId::parse(workload_id).unwrap(),
        not_before: now,
        not_after: now.plus_seconds(3600),
        thumbprint: format!("thumb-{serial}"),
        identity_started_at: now,
        issued_at: now,
        revoked_at: None,
    }
}

fn session(workload_id: &str, hash_byte: u8) -> SessionRecord {
    let now = steward_types::Timestamp::from_unix_seconds(1_800_000_000).unwrap();
    SessionRecord {
        session_id: SessionId::generate(),
        workload_id: WorkloadId::parse(workload_id).unwrap(),
        token_hash: [hash_byte; 32],
        scopes: vec!["execute".into()],
        cert_thumbprint: "thumb".into(),
        dpop_jkt: None,
        created_at: now,
        expires_at: now.plus_seconds(900),
        revoked_at: None,
    }
}

#[tokio::test]
async fn admin_tokens_create_list_revoke_and_validation() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let owner = server.owner_token();
    let tenant = create_tenant(&server, &owner, "acme").await;

    let body = json!({"name": "ci", "role": "operator", "tenant_ids": [tenant, tenant], "ttl_seconds": 3600});
    let (status, created) = call(&server, Method::POST, "/v1/admin/tokens", &owner, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    let suffix = token.strip_prefix("stw_adm_").unwrap();
    assert_eq!(suffix.len(), 43);
    assert!(suffix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert!(created["token_id"].as_str().unwrap().starts_with("tok_"));
    assert_eq!(created["tenant_ids"], json!([tenant]), "duplicates collapse");
    assert_eq!(created["role"], "operator");
    assert!(created["expires_at"].is_string());

    // The new token works; whoami shows it.
    let (status, me) = call(&server, Method::GET, "/v1/admin/whoami", &token, None).await;
    assert_eq!((status, me["role"].as_str()), (200, Some("operator")));

    // Listing never shows a token or its hash.
    let (status, list) = call(&server, Method::GET, "/v1/admin/tokens", &owner, None).await;
    assert_eq!(status, 200);
    let text = list.to_string();
    assert!(!text.contains(&token) && !text.contains("hash"), "{text}");
    let tokens = list["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    assert!(tokens.iter().all(|t| t.get("token").is_none()));

    // Revoke: 204, then the token is refused; unknown ids are 404.
    let path = format!("/v1/admin/tokens/{}", created["token_id"].as_str().unwrap());
    assert_eq!(call(&server, Method::DELETE, &path, &owner, None).await.0, 204);
    assert_error(
        &call(&server, Method::GET, "/v1/admin/whoami", &token, None).await,
        401,
        "admin_auth_invalid",
    );
    assert_error(
        &call(&server, Method::DELETE, "/v1/admin/tokens/tok_nope", &owner, None).await,
        404,
        "token_not_found",
    );

    // The last active owner token cannot be revoked; with a second owner it can.
    let (_, me) = call(&server, Method::GET, "/v1/admin/whoami", &owner, None).await;
    let owner_path = format!("/v1/admin/tokens/{}", me["token_id"].as_str().unwrap());
    assert_error(&call(&server, Method::DELETE, &owner_path, &owner, None).await, 409, "last_owner_token");
    let second_owner = create_token(&server, &owner, "owner", &[]).await;
    assert_eq!(call(&server, Method::DELETE, &owner_path, &second_owner, None).await.0, 204);
    assert_error(&call(&server, Method::GET, "/v1/tenants", &owner, None).await, 401, "admin_auth_invalid");

    // Validation.
    let cases = [
        (json!({"name": "x", "role": "root", "tenant_ids": []}), 400, "validation_failed"),
        (json!({"name": "x", "role": "owner", "tenant_ids": [tenant]}), 400, "validation_failed"),
        (json!({"name": "x", "role": "admin", "tenant_ids": []}), 400, "validation_failed"),
        (json!({"name": "x", "role": "admin", "tenant_ids": ["t_missing"]}), 400, "validation_failed"),
        (json!({"name": " ", "role": "admin", "tenant_ids": [tenant]}), 400, "validation_failed"),
        (
            json!({"name": "x", "role": "admin", "tenant_ids": [tenant], "ttl_seconds": 1}),
            400,
            "request_body_schema_invalid",
        ),
        (
            json!({"name": "x", "role": "admin", "tenant_ids": [tenant], "extra": 1}),
            400,
            "request_body_schema_invalid",
        ),
        (json!({"role": "admin", "tenant_ids": [tenant]}), 400, "request_body_schema_invalid"),
    ];
    for (body, status, code) in cases {
        let got = call(&server, Method::POST, "/v1/admin/tokens", &second_owner, Some(body.clone())).await;
        assert_error(&got, status, code);
    }

    // Every mutation is audited, and no token value is in any audit event.
    let bodies = audit_bodies(&server).await;
    let actions: Vec<String> = bodies
        .iter()
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .filter(|e| e["event_type"] == "admin_action")
        .map(|e| e["metadata"]["action"].as_str().unwrap_or("").to_owned())
        .collect();
    for action in ["tenant.create", "admin_token.create", "admin_token.revoke"] {
        assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
    }
    for secret in [&token, &second_owner, &owner] {
        assert!(bodies.iter().all(|b| !b.contains(secret.as_str())));
    }
    server.stop().await;
}

#[tokio::test]
async fn tenants_create_list_get_patch_and_validation() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let owner = server.owner_token();

    let body =
        json!({"name": "  acme  ", "dpop_required": true, "approval_webhook_url": "https://hooks.example/a"});
    let (status, acme) = call(&server, Method::POST, "/v1/tenants", &owner, Some(body)).await;
    assert_eq!(status, 201, "{acme}");
    assert_eq!(acme["name"], "acme");
    assert_eq!(acme["dpop_required"], true);
    assert_eq!(acme["approval_webhook_url"], "https://hooks.example/a");
    assert!(acme["created_at"].as_str().unwrap().ends_with('Z'));
    let acme_id = acme["tenant_id"].as_str().unwrap().to_owned();
    assert!(acme_id.starts_with("t_"));
    let other = create_tenant(&server, &owner, "other").await;

    assert_error(
        &call(&server, Method::POST, "/v1/tenants", &owner, Some(json!({"name": "acme"}))).await,
        409,
        "tenant_name_conflict",
    );
    for body in [
        json!({"name": "x", "approval_webhook_url": "http://hooks.example/"}),
        json!({"name": "x", "approval_webhook_url": "not a url"}),
        json!({"name": ""}),
        json!({"name": "a\u{1}b"}),
        json!({"name": "x".repeat(129)}),
    ] {
        assert_error(
            &call(&server, Method::POST, "/v1/tenants", &owner, Some(body)).await,
            400,
            "validation_failed",
        );
    }
    assert_error(
        &call(
            &server,
            Method::POST,
            "/v1/tenants",
            &owner,
            Some(json!({"name": "x", "dpop_required": "yes"})),
        )
        .await,
        400,
        "request_body_schema_invalid",
    );
    let empty = server.admin(Method::POST, "/v1/tenants", Some(&owner), None).await;
    assert_eq!(empty.status, 415, "a required body without a content type");

    let (status, list) = call(&server, Method::GET, "/v1/tenants", &owner, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["tenants"].as_array().unwrap().len(), 2);
    let (status, got) = call(&server, Method::GET, &format!("/v1/tenants/{acme_id}"), &owner, None).await;
    assert_eq!((status, &got["name"]), (200, &json!("acme")));
    assert_error(
        &call(&server, Method::GET, "/v1/tenants/t_missing", &owner, None).await,
        404,
        "tenant_not_found",
    );

    // Patch: rename, clear the webhook (null), keep what is absent.
    let path = format!("/v1/tenants/{acme_id}");
    let (status, patched) = call(
        &server,
        Method::PATCH,
        &path,
        &owner,
        Some(json!({"name": "acme-2", "approval_webhook_url": null})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], "acme-2");
    assert_eq!(patched["approval_webhook_url"], Value::Null);
    assert_eq!(patched["dpop_required"], true);
    assert_error(
        &call(&server, Method::PATCH, &path, &owner, Some(json!({"name": "other"}))).await,
        409,
        "tenant_name_conflict",
    );
    assert_error(
        &call(&server, Method::PATCH, &path, &owner, Some(json!({"approval_webhook_url": "ftp://x"}))).await,
        400,
        "validation_failed",
    );
    assert_error(
        &call(&server, Method::PATCH, "/v1/tenants/t_missing", &owner, Some(json!({}))).await,
        404,
        "tenant_not_found",
    );
    let (status, _) = call(&server, Method::PATCH, &format!("/v1/tenants/{other}"), &owner, None).await;
    assert_eq!(status, 200, "an empty patch body means {{}}");
    server.stop().await;
}

#[tokio::test]
async fn workloads_create_list_get_patch_delete_and_validation() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let owner = server.owner_token();
    let tenant = create_tenant(&server, &owner, "acme").await;

    let path = format!("/v1/tenants/{tenant}/workloads");
    let body =
        json!({"name": "agent-1", "ip_allowlist": ["10.0.0.0/8", "::1", "192.0.2.7"], "dpop_required": true});
    let (status, created) = call(&server, Method::POST, &path, &owner, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let workload = created["workload_id"].as_str().unwrap().to_owned();
    assert_eq!(created["san_uri"], format!("spiffe://steward/tenants/{tenant}/workloads/{workload}"));
    assert_eq!(created["tenant_id"], tenant);
    assert_eq!(created["enabled"], true);
    assert_eq!(created["dpop_required"], true);
    assert_eq!(created["ip_allowlist"], json!(["10.0.0.0/8", "::1", "192.0.2.7"]));
    let enrollment = created["enrollment_token"].as_str().unwrap();
    assert_eq!(enrollment.strip_prefix("stw_enr_").unwrap().len(), 43);
    assert!(created["enrollment_expires_at"].is_string());
    assert!(created["ca_pem"].as_str().unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    // Only the hash is stored.
    let stored = server.state.store.enrollment_token_by_hash(&hash_token(enrollment)).await.unwrap().unwrap();
    assert_eq!(stored.workload_id.as_str(), workload);

    assert_error(
        &call(&server, Method::POST, &path, &owner, Some(json!({"name": "agent-1"}))).await,
        409,
        "workload_name_conflict",
    );
    let bad = call(
        &server,
        Method::POST,
        &path,
        &owner,
        Some(json!({"name": "x", "ip_allowlist": ["::1", "10.0.0.300"]})),
    )
    .await;
    assert_error(&bad, 400, "ip_allowlist_invalid");
    assert!(bad.1["message"].as_str().unwrap().contains("ip_allowlist[1]"), "{}", bad.1);
    assert_error(
        &call(&server, Method::POST, &path, &owner, Some(json!({"name": ""}))).await,
        400,
        "validation_failed",
    );
    assert_error(
        &call(&server, Method::POST, "/v1/tenants/t_missing/workloads", &owner, Some(json!({"name": "x"})))
            .await,
        404,
        "tenant_not_found",
    );
    assert_error(
        &call(&server, Method::GET, "/v1/tenants/t_missing/workloads", &owner, None).await,
        404,
        "tenant_not_found",
    );

    let second = create_workload(&server, &owner, &tenant, "agent-2").await;
    let second = second["workload_id"].as_str().unwrap().to_owned();
    let (status, list) = call(&server, Method::GET, &path, &owner, None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> =
        list["workloads"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["agent-1", "agent-2"]);
    assert!(list.to_string().find("stw_enr_").is_none(), "lists never show enrollment tokens");

    let one = format!("/v1/workloads/{workload}");
    let (status, got) = call(&server, Method::GET, &one, &owner, None).await;
    assert_eq!((status, &got["name"]), (200, &json!("agent-1")));
    assert_error(
        &call(&server, Method::GET, "/v1/workloads/w_missing", &owner, None).await,
        404,
        "workload_not_found",
    );

    let (status, patched) =
        call(&server, Method::PATCH, &one, &owner, Some(json!({"enabled": false, "ip_allowlist": []}))).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!((patched["enabled"].clone(), patched["ip_allowlist"].clone()), (json!(false), json!([])));
    assert_eq!(patched["dpop_required"], true);
    assert_error(
        &call(&server, Method::PATCH, &one, &owner, Some(json!({"ip_allowlist": ["nope"]}))).await,
        400,
        "ip_allowlist_invalid",
    );
    assert_error(
        &call(&server, Method::PATCH, &one, &owner, Some(json!({"name": "renamed"}))).await,
        400,
        "request_body_schema_invalid",
    );

    // Delete: sessions and certificates revoked, tokens void, rows kept.
    let store = &server.state.store;
    store.record_certificate(None, &certificate(&second, "0c"), server.state.clock.now()).await.ok();
    store.insert_session(&session(&second, 41)).await.unwrap();
    let gone = format!("/v1/workloads/{second}");
    assert_eq!(call(&server, Method::DELETE, &gone, &owner, None).await.0, 204);
    let (status, deleted) = call(&server, Method::GET, &gone, &owner, None).await;
    assert_eq!(status, 200);
    assert_eq!(deleted["enabled"], false);
    assert!(deleted["deleted_at"].is_string());
    assert!(store.session_by_hash(&[41; 32]).await.unwrap().unwrap().revoked_at.is_some());
    assert!(store.certificate("0c").await.unwrap().unwrap().revoked_at.is_some());
    assert_eq!(call(&server, Method::DELETE, &gone, &owner, None).await.0, 204, "deleting again is a no-op");
    assert_error(
        &call(&server, Method::PATCH, &gone, &owner, Some(json!({"enabled": true}))).await,
        404,
        "workload_not_found",
    );
    assert_error(
        &call(&server, Method::POST, &format!("{gone}/enrollment-token"), &owner, None).await,
        404,
        "workload_not_found",
    );
    assert_error(
        &call(&server, Method::DELETE, "/v1/workloads/w_missing", &owner, None).await,
        404,
        "workload_not_found",
    );

    let actions: Vec<String> = audit_bodies(&server)
        .await
        .iter()
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .filter(|e| e["event_type"] == "admin_action" && e["tenant_id"] == tenant)
        .map(|e| e["metadata"]["action"].as_str().unwrap_or("").to_owned())
        .collect();
    for action in ["workload.create", "workload.update", "workload.delete"] {
        assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn enrollment_tokens_certificates_and_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let owner = server.owner_token();
    let tenant = create_tenant(&server, &owner, "acme").await;
    let created = create_workload(&server, &owner, &tenant, "agent-1").await;
    let workload = created["workload_id"].as_str().unwrap().to_owned();
    let first = created["enrollment_token"].as_str().unwrap().to_owned();
    let store = &server.state.store;

    // A new token (empty body, or {}) supersedes the earlier unused one.
    let path = format!("/v1/workloads/{workload}/enrollment-token");
    let (status, issued) = call(&server, Method::POST, &path, &owner, None).await;
    assert_eq!(status, 201, "{issued}");
    let second = issued["enrollment_token"].as_str().unwrap();
    assert!(second.starts_with("stw_enr_") && issued["expires_at"].is_string());
    let old = store.enrollment_token_by_hash(&hash_token(&first)).await.unwrap().unwrap();
    assert!(old.superseded_at.is_some());
    assert_eq!(call(&server, Method::POST, &path, &owner, Some(json!({}))).await.0, 201);
    assert_error(
        &call(&server, Method::POST, &path, &owner, Some(json!({"ttl": 5}))).await,
        400,
        "request_body_schema_invalid",
    );

    // Certificates: list and revoke.
    store.record_certificate(None, &certificate(&workload, "0a1b"), server.state.clock.now()).await.unwrap();
    let (status, list) =
        call(&server, Method::GET, &format!("/v1/workloads/{workload}/certificates"), &owner, None).await;
    assert_eq!(status, 200);
    let cert = &list["certificates"][0];
    assert_eq!(cert["serial"], "0a1b");
    assert_eq!(cert["thumbprint"], "thumb-0a1b");
    assert_eq!(cert["revoked_at"], Value::Null);
    assert!(cert["not_before"].is_string() && cert["not_after"].is_string());
    let revoke = format!("/v1/workloads/{workload}/certificates/0A1B/revoke");
    let (status, revoked) = call(&server, Method::POST, &revoke, &owner, None).await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    assert_error(
        &call(
            &server,
            Method::POST,
            &format!("/v1/workloads/{workload}/certificates/ffff/revoke"),
            &owner,
            None,
        )
        .await,
        404,
        "certificate_not_found",
    );

    // Sessions.
    store.insert_session(&session(&workload, 51)).await.unwrap();
    store.insert_session(&session(&workload, 52)).await.unwrap();
    let sessions = format!("/v1/workloads/{workload}/sessions/revoke");
    let (status, body) = call(&server, Method::POST, &sessions, &owner, None).await;
    assert_eq!((status, body["revoked"].as_u64()), (200, Some(2)));
    let (status, body) = call(&server, Method::POST, &sessions, &owner, Some(json!({}))).await;
    assert_eq!((status, body["revoked"].as_u64()), (200, Some(0)));
    assert!(store.session_by_hash(&[51; 32]).await.unwrap().unwrap().revoked_at.is_some());
    server.stop().await;
}

/// Every cell of the role matrix for the identity routes. Allowed cells are sent requests that stop
/// after the role check (a bad body, an unknown id), so the matrix leaves nothing behind.
#[tokio::test]
async fn role_matrix_of_identity_routes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let owner = server.owner_token();
    let tenant = create_tenant(&server, &owner, "acme").await;
    let workload = create_workload(&server, &owner, &tenant, "agent-1").await;
    let w = workload["workload_id"].as_str().unwrap().to_owned();
    let tokens = [
        ("owner", owner.clone()),
        ("admin", create_token(&server, &owner, "admin", &[&tenant]).await),
        ("operator", create_token(&server, &owner, "operator", &[&tenant]).await),
        ("auditor", create_token(&server, &owner, "auditor", &[&tenant]).await),
    ];
    const OWNER: &[&str] = &["owner"];
    const WRITE: &[&str] = &["owner", "admin"];
    const READ: &[&str] = &["owner", "admin", "operator", "auditor"];
    let bad = Some(json!({"unexpected": true}));
    let routes: Vec<(Method, String, Option<Value>, &[&str])> = vec![
        (Method::POST, "/v1/admin/tokens".into(), bad.clone(), OWNER),
        (Method::GET, "/v1/admin/tokens".into(), None, OWNER),
        (Method::DELETE, "/v1/admin/tokens/tok_missing".into(), None, OWNER),
        (Method::POST, "/v1/tenants".into(), bad.clone(), OWNER),
        (Method::PATCH, format!("/v1/tenants/{tenant}"), bad.clone(), OWNER),
        (Method::GET, "/v1/tenants".into(), None, READ),
        (Method::GET, format!("/v1/tenants/{tenant}"), None, READ),
        (Method::GET, format!("/v1/tenants/{tenant}/workloads"), None, READ),
        (Method::GET, format!("/v1/workloads/{w}"), None, READ),
        (Method::GET, format!("/v1/workloads/{w}/certificates"), None, READ),
        (Method::POST, format!("/v1/tenants/{tenant}/workloads"), bad.clone(), WRITE),
        (Method::PATCH, format!("/v1/workloads/{w}"), bad.clone(), WRITE),
        (Method::DELETE, "/v1/workloads/w_missing".into(), None, WRITE),
        (Method::POST, format!("/v1/workloads/{w}/enrollment-token"), bad.clone(), WRITE),
        (Method::POST, format!("/v1/workloads/{w}/certificates/ff/revoke"), None, WRITE),
        (Method::POST, format!("/v1/workloads/{w}/sessions/revoke"), bad.clone(), WRITE),
    ];
    for (method, path, body, allowed) in &routes {
        for (role, token) in &tokens {
            let got = call(&server, method.clone(), path, token, body.clone()).await;
            if allowed.contains(role) {
                assert!(got.0 != 403 && got.0 < 500, "{role} {method} {path}: {got:?}");
            } else {
                assert_error(&got, 403, "admin_forbidden");
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn tenant_scope_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let owner = server.owner_token();
    let a = create_tenant(&server, &owner, "tenant-a").await;
    let b = create_tenant(&server, &owner, "tenant-b").await;
    let wb =
        create_workload(&server, &owner, &b, "b-agent").await["workload_id"].as_str().unwrap().to_owned();
    let admin_a = create_token(&server, &owner, "admin", &[&a]).await;
    let operator_a = create_token(&server, &owner, "operator", &[&a]).await;

    // Lists are silently limited.
    let (status, list) = call(&server, Method::GET, "/v1/tenants", &admin_a, None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> =
        list["tenants"].as_array().unwrap().iter().map(|t| t["tenant_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [a.as_str()]);

    // A tenant named in the path: 403 admin_tenant_forbidden, before existence and body.
    for (method, path, body) in [
        (Method::GET, format!("/v1/tenants/{b}"), None),
        (Method::GET, format!("/v1/tenants/{b}/workloads"), None),
        (Method::POST, format!("/v1/tenants/{b}/workloads"), Some(json!({"bad": 1}))),
        (Method::GET, "/v1/tenants/t_missing".to_owned(), None),
    ] {
        assert_error(&call(&server, method, &path, &admin_a, body).await, 403, "admin_tenant_forbidden");
    }
    // Role comes before tenant.
    assert_error(
        &call(
            &server,
            Method::POST,
            &format!("/v1/tenants/{b}/workloads"),
            &operator_a,
            Some(json!({"name": "x"})),
        )
        .await,
        403,
        "admin_forbidden",
    );
    // B's workload by its own id: exactly like a missing one, before the body.
    for (method, suffix, body) in [
        (Method::GET, "", None),
        (Method::PATCH, "", Some(json!({"bad": 1}))),
        (Method::DELETE, "", None),
        (Method::POST, "/enrollment-token", Some(json!({"bad": 1}))),
        (Method::GET, "/certificates", None),
        (Method::POST, "/certificates/ff/revoke", None),
        (Method::POST, "/sessions/revoke", None),
    ] {
        let path = format!("/v1/workloads/{wb}{suffix}");
        assert_error(&call(&server, method.clone(), &path, &admin_a, body).await, 404, "workload_not_found");
    }
    // Nothing of B changed.
    let workload = server.state.store.workload(&WorkloadId::parse(&wb).unwrap()).await.unwrap().unwrap();
    assert!(workload.is_active());
    server.stop().await;
}
