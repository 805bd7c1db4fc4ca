use axum::Router;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use serde::Deserialize;
use tower::ServiceExt;

use super::*;
use crate::http::context::{ListenerName, request_context};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Shape {
    #[allow(dead_code)]
    name: Option<String>,
    #[allow(dead_code)]
    count: Option<u8>,
}

fn app() -> Router {
    Router::new()
        .route("/required", post(|JsonBody(_): JsonBody<Shape>| async { "ok" }))
        .route("/optional", post(|OptionalJsonBody(_): OptionalJsonBody<Shape>| async { "ok" }))
        .layer(axum::Extension(BodyLimit(64)))
        .layer(axum::middleware::from_fn(|r, n| request_context(ListenerName("test"), r, n)))
}

async fn call(path: &str, content_type: Option<&str>, body: &str) -> (StatusCode, serde_json::Value) {
    let mut builder = Request::post(path);
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    let response =
        app().oneshot(builder.body(axum::body::Body::from(body.to_owned())).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn required_body_checks_in_order() {
    let json = Some("application/json");
    assert_eq!(call("/required", Some("text/plain"), "{}").await.1["error"], "content_type_invalid");
    assert_eq!(call("/required", None, "{}").await.1["error"], "content_type_invalid");
    assert_eq!(call("/required", json, &"x".repeat(65)).await.1["error"], "request_body_too_large");
    assert_eq!(call("/required", json, "").await.1["error"], "request_body_missing");
    assert_eq!(call("/required", json, "{").await.1["error"], "request_body_invalid_json");
    let (status, body) = call("/required", json, "{\"count\": 300}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "request_body_schema_invalid");
    assert!(body["message"].as_str().unwrap().contains("count"), "{body}");
    assert_eq!(call("/required", json, "{\"extra\": 1}").await.1["error"], "request_body_schema_invalid");
    assert_eq!(call("/required", Some("application/json; charset=utf-8"), "{}").await.0, StatusCode::OK);
}

#[tokio::test]
async fn optional_body_accepts_empty_with_any_content_type() {
    assert_eq!(call("/optional", None, "").await.0, StatusCode::OK);
    assert_eq!(call("/optional", Some("text/plain"), "").await.0, StatusCode::OK);
    assert_eq!(call("/optional", Some("application/json"), "{}").await.0, StatusCode::OK);
    assert_eq!(call("/optional", Some("text/plain"), "{}").await.1["error"], "content_type_invalid");
    assert_eq!(
        call("/optional", Some("application/json"), "[1]").await.1["error"],
        "request_body_schema_invalid"
    );
}

#[tokio::test]
async fn errors_carry_the_correlation_id_and_security_headers() {
    let response = app()
        .oneshot(
            Request::post("/required")
                .header("x-correlation-id", "abc-123")
                .body(axum::body::Body::from("{}"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.headers()["x-correlation-id"], "abc-123");
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["correlation_id"], "abc-123");
}
