//! The OpenAPI document of the admin API (`GET /v1/openapi.json`) is generated from the code; this test
//! pins it to a committed snapshot, so every change to a route, a body or a response shows up in review
//! as a diff of `tests/snapshots/openapi.json`, and checks that every admin route of the spec is in it.
//! Regenerate after a route change with
//! `STEWARD_REGENERATE_DOCS=1 cargo test -p steward-server --test openapi_snapshot`.

use std::path::PathBuf;

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/openapi.json")
}

fn generated() -> String {
    let document = steward_server::routes::admin::openapi();
    let mut text = serde_json::to_string_pretty(&document).expect("the OpenAPI document serializes");
    text.push('\n');
    text
}

#[test]
fn the_openapi_document_matches_the_snapshot() {
    let expected = generated();
    let path = snapshot_path();
    if std::env::var_os("STEWARD_REGENERATE_DOCS").is_some() {
        std::fs::write(&path, &expected).expect("write the snapshot");
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "tests/snapshots/openapi.json is stale: review the API change and regenerate it (see the top of this file)"
    );
}

#[test]
fn every_admin_route_of_the_spec_is_documented() {
    let document: serde_json::Value = serde_json::from_str(&generated()).expect("JSON");
    assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "OpenAPI 3.1");
    let routes: &[(&str, &[&str])] = &[
        ("/v1/admin/whoami", &["get"]),
        ("/v1/admin/tokens", &["get", "post"]),
        ("/v1/admin/tokens/{token_id}", &["delete"]),
        ("/v1/tenants", &["get", "post"]),
        ("/v1/tenants/{tenant_id}", &["get", "patch"]),
        ("/v1/tenants/{tenant_id}/workloads", &["get", "post"]),
        ("/v1/workloads/{workload_id}", &["get", "patch", "delete"]),
        ("/v1/workloads/{workload_id}/enrollment-token", &["post"]),
        ("/v1/workloads/{workload_id}/certificates", &["get"]),
        ("/v1/workloads/{workload_id}/certificates/{serial}/revoke", &["post"]),
        ("/v1/workloads/{workload_id}/sessions/revoke", &["post"]),
        ("/v1/tenants/{tenant_id}/integrations", &["get", "post"]),
        ("/v1/integrations/{integration_id}", &["get", "patch", "delete"]),
        ("/v1/integrations/{integration_id}/secret", &["put"]),
        ("/v1/templates", &["get", "post"]),
        ("/v1/templates/install-builtin", &["post"]),
        ("/v1/templates/{template_id}/versions/{version}", &["get"]),
        ("/v1/policies", &["get", "post"]),
        ("/v1/policies/{policy_id}", &["get", "delete"]),
        ("/v1/approvals", &["get"]),
        ("/v1/approvals/{approval_id}", &["get"]),
        ("/v1/approvals/{approval_id}/approve", &["post"]),
        ("/v1/approvals/{approval_id}/deny", &["post"]),
        ("/v1/approvals/{approval_id}/cancel", &["post"]),
        ("/v1/audit/events", &["get"]),
        ("/v1/audit/verify", &["get"]),
        ("/v1/audit/checkpoints", &["get"]),
        ("/v1/keys/manifest", &["get"]),
        ("/v1/keys/manifest/rotate", &["post"]),
        ("/v1/keys/kek", &["get"]),
        ("/v1/keys/kek/rewrap", &["post"]),
    ];
    for (path, methods) in routes {
        for method in *methods {
            let operation = &document["paths"][*path][*method];
            assert!(operation.is_object(), "{method} {path} is not in the OpenAPI document");
            assert!(operation["responses"].is_object(), "{method} {path} documents no responses");
        }
    }
}
