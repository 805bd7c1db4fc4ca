//! Audit records of the admin plane over real HTTP: tenant checkpoints (a token scoped to one tenant
//! learns nothing of another tenant's chains from any field, signed payloads included, and can verify
//! its own checkpoint with the published manifest key) and the actor of `admin_action` events (token
//! id and role).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use common::TestServer;
use http::Method;
use serde_json::{Value, json};

/// `(status, body)` of one admin call.
async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let response = server.admin(method, path, Some(token), body).await;
    (response.status, response.json())
}

async fn created(server: &TestServer, path: &str, token: &str, body: Value) -> Value {
    let (status, body) = call(server, Method::POST, path, token, Some(body)).await;
    assert_eq!(status, 201, "{path}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_action_events_name_the_token_and_its_role() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let owner = server.owner_token();
    let (_, me) = call(&server, Method::GET, "/v1/admin/whoami", &owner, None).await;
    let owner_id = me["token_id"].as_str().unwrap().to_owned();

    let tenant = created(&server, "/v1/tenants", &owner, json!({"name": "acme"})).await;
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_owned();
    let admin = created(
        &server,
        "/v1/admin/tokens",
        &owner,
        json!({"name": "acme admin", "role": "admin", "tenant_ids": [tenant_id]}),
    )
    .await;
    let admin_id = admin["token_id"].as_str().unwrap().to_owned();
    created(
        &server,
        &format!("/v1/tenants/{tenant_id}/workloads"),
        admin["token"].as_str().unwrap(),
        json!({"name": "agent"}),
    )
    .await;

    let (status, page) = call(
        &server,
        Method::GET,
        &format!("/v1/audit/events?tenant_id={tenant_id}&event_type=admin_action"),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let events = page["events"].as_array().unwrap();
    let by_action = |action: &str| -> Value {
        events
            .iter()
            .find(|e| e["metadata"]["action"] == action)
            .unwrap_or_else(|| panic!("{action}: {page}"))["actor"]
            .clone()
    };
    assert_eq!(by_action("tenant.create"), json!({"type": "admin", "id": owner_id, "role": "owner"}));
    assert_eq!(by_action("workload.create"), json!({"type": "admin", "id": admin_id, "role": "admin"}));

    // The actor is part of the chained event: verification still passes.
    let (_, report) =
        call(&server, Method::GET, &format!("/v1/audit/verify?tenant_id={tenant_id}"), &owner, None).await;
    assert_eq!(report["ok"], true, "{report}");
    server.stop().await;
}
