//! The OpenAPI documents of the admin API and of the data plane (each served at `GET /v1/openapi.json`
//! on its own listener) are generated from the code; this test pins them to committed snapshots, so
//! every change to a route, a body or a response shows up in review as a diff of
//! `tests/snapshots/openapi.json` (admin) or `tests/snapshots/openapi-data-plane.json`, and checks
//! that every route of the spec is in its document.
//! Regenerate after a route change with
//! `STEWARD_REGENERATE_DOCS=1 cargo test -p steward-server --test openapi_snapshot`.

use std::path::PathBuf;

fn snapshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(name)
}

fn render(document: &utoipa::openapi::OpenApi) -> String {
    let mut text = serde_json::to_string_pretty(document).expect("the OpenAPI document serializes");
    text.push('\n');
    text
}

fn generated() -> String {
    render(&steward_server::routes::admin::openapi())
}

fn generated_data_plane() -> String {
    render(&steward_server::routes::data_plane::openapi())
}

#[track_caller]
fn matches_snapshot(name: &str, expected: &str) {
    let path = snapshot_path(name);
    if std::env::var_os("STEWARD_REGENERATE_DOCS").is_some() {
        std::fs::write(&path, expected).expect("write the snapshot");
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "tests/snapshots/{name} is stale: review the API change and regenerate it (see the top of this file)"
    );
}

#[test]
fn the_openapi_document_matches_the_snapshot() {
    matches_snapshot("openapi.json", &generated());
}

#[test]
fn the_data_plane_openapi_document_matches_the_snapshot() {
    matches_snapshot("openapi-data-plane.json", &generated_data_plane());
}

/// Every operation of `routes` is in `document`, with its responses.
#[track_caller]
fn documents(document: &serde_json::Value, routes: &[(&str, &[&str])]) {
    assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "OpenAPI 3.1");
    for (path, methods) in routes {
        for method in *methods {
            let operation = &document["paths"][*path][*method];
            assert!(operation.is_object(), "{method} {path} is not in the OpenAPI document");
            assert!(operation["responses"].is_object(), "{method} {path} documents no responses");
        }
    }
}

#[test]
fn every_data_plane_route_of_the_spec_is_documented() {
    let document: serde_json::Value = serde_json::from_str(&generated_data_plane()).expect("JSON");
    let routes: &[(&str, &[&str])] = &[
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
        ("/v1/enroll", &["post"]),
        ("/v1/enroll/renew", &["post"]),
        ("/v1/session", &["post"]),
        ("/v1/keys/manifest", &["get"]),
        ("/v1/workloads/{workload_id}/manifest", &["get"]),
        ("/v1/execute", &["post"]),
        ("/v1/forward/{integration_id}/{target}", &["get", "head", "post", "put", "patch", "delete"]),
        ("/v1/approvals/{approval_id}", &["get"]),
    ];
    documents(&document, routes);
    let paths = document["paths"].as_object().expect("paths");
    assert_eq!(paths.len(), routes.len(), "only the spec's routes: {:?}", paths.keys().collect::<Vec<_>>());
    // Each operation says what identity it needs, takes x-correlation-id and echoes it.
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            assert!(operation["security"].is_array(), "{method} {path}: no security requirement");
            let takes_correlation_id = operation["parameters"].as_array().is_some_and(|list| {
                list.iter().any(|p| p["name"] == "x-correlation-id" && p["in"] == "header")
            });
            assert!(takes_correlation_id, "{method} {path}: no x-correlation-id parameter");
            for (status, response) in operation["responses"].as_object().expect("responses") {
                assert!(
                    response["headers"]["x-correlation-id"].is_object(),
                    "{method} {path} {status}: x-correlation-id not echoed"
                );
            }
        }
    }
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["mtls"]["type"], "mutualTLS");
    assert_eq!(schemes["session"]["scheme"], "bearer");
    assert_eq!(schemes["dpop"]["name"], "DPoP");
}

#[test]
fn every_admin_route_of_the_spec_is_documented() {
    let document: serde_json::Value = serde_json::from_str(&generated()).expect("JSON");
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
    documents(&document, routes);
}
