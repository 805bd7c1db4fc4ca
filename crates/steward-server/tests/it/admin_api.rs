//! Admin API conventions: authentication, whoami, and the OpenAPI document.

use crate::common;

use common::TestServer;
use http::Method;

#[tokio::test]
async fn whoami_reports_the_owner_token_and_bad_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let token = server.owner_token();

    let me = server.admin(Method::GET, "/v1/admin/whoami", Some(&token), None).await;
    assert_eq!(me.status, 200);
    let body = me.json();
    assert_eq!(body["role"], "owner");
    assert!(body["token_id"].as_str().unwrap().starts_with("tok_"));
    assert_eq!(body["tenant_ids"], serde_json::json!([]));

    let missing = server.admin(Method::GET, "/v1/admin/whoami", None, None).await;
    assert_eq!((missing.status, missing.json()["error"].clone()), (401, "admin_auth_missing".into()));
    let forged = format!("stw_adm_{}", "A".repeat(43));
    let invalid = server.admin(Method::GET, "/v1/admin/whoami", Some(&forged), None).await;
    assert_eq!((invalid.status, invalid.json()["error"].clone()), (401, "admin_auth_invalid".into()));
    server.stop().await;
}

#[tokio::test]
async fn the_openapi_document_is_served_and_lists_the_admin_routes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let document = server.admin(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(document.status, 200);
    let body = document.json();
    assert!(body["openapi"].as_str().unwrap().starts_with("3.1"), "{body}");
    assert!(body["paths"]["/v1/admin/whoami"]["get"].is_object(), "{body}");
    assert_eq!(body["components"]["securitySchemes"]["admin_token"]["scheme"], "bearer");
    server.stop().await;
}
