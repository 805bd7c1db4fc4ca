use serde_json::json;

use super::*;
use crate::mcp::catalog::Catalog;

fn entry(name: &str) -> ToolEntry {
    let manifest = crate::mcp::catalog::tests::manifest();
    Catalog::from_manifest(&manifest).0.tools[name].clone()
}

fn args(value: Value) -> JsonObject {
    match value {
        Value::Object(object) => object,
        _ => unreachable!(),
    }
}

fn text_of(result: &CallToolResult) -> String {
    result.content[0].as_text().map(|t| t.text.clone()).unwrap_or_default()
}

#[test]
fn arguments_become_an_envelope_execute_to_the_template_host() {
    let read = entry("shop_eu__items_read");
    let request = build_request(
        &read,
        Some(&args(json!({"path": "/v1/items", "query": {"q": "red shoes&more"}, "headers": {"accept": "application/json"}}))),
    )
    .unwrap();
    assert_eq!(request.integration_id, "i_1");
    assert_eq!(request.request.method, "GET", "the first method is the default");
    assert_eq!(request.request.url, "https://api.example.test:8443/v1/items?q=red%20shoes%26more");
    assert_eq!(
        request.request.headers,
        [HeaderField { name: "accept".into(), value: "application/json".into() }]
    );
    assert!(request.request.body_base64.is_none());

    let write = entry("shop_eu__items_write");
    let request = build_request(
        &write,
        Some(&args(json!({"method": "post", "path": "/v1/items", "body": {"name": "x"}}))),
    )
    .unwrap();
    assert_eq!(request.request.method, "POST");
    assert_eq!(request.request.headers[0].value, "application/json");
    let body =
        base64::engine::general_purpose::STANDARD.decode(request.request.body_base64.unwrap()).unwrap();
    assert_eq!(body, br#"{"name":"x"}"#);

    let request = build_request(
        &write,
        Some(&args(json!({"path": "/v1/items", "body_text": "a,b", "content_type": "text/csv"}))),
    )
    .unwrap();
    assert_eq!(
        request.request.headers,
        [HeaderField { name: "content-type".into(), value: "text/csv".into() }]
    );

    let nulls = json!({"path": "/v1/items", "method": null, "query": null, "body": null, "body_text": null});
    let request = build_request(&read, Some(&args(nulls))).unwrap();
    assert_eq!(request.request.method, "GET");
    assert!(request.request.body_base64.is_none() && request.request.headers.is_empty(), "null is absent");
}

#[test]
fn bad_arguments_are_explained() {
    let read = entry("shop_eu__items_read");
    let refuse = |value: Value| build_request(&read, Some(&args(value))).unwrap_err();
    assert!(refuse(json!({"path": "/v1/items", "extra": 1})).contains("unknown argument \"extra\""));
    assert!(refuse(json!({"method": "DELETE", "path": "/v1/items"})).contains("not one of GET, HEAD"));
    assert!(refuse(json!({})).contains("path is required"));
    assert!(refuse(json!({"path": "v1/items"})).contains("start with '/'"));
    assert!(refuse(json!({"path": "/v1/items?q=1"})).contains("pass query parameters in query"));
    assert!(refuse(json!({"path": "/v1/items", "body": {}, "body_text": "x"})).contains("not both"));
    assert!(refuse(json!({"path": "/v1/items", "query": {"q": ["a"]}})).contains("query.q must be a string"));
}

fn executed(status: u16, body: &[u8]) -> ExecutedResponse {
    ExecutedResponse {
        correlation_id: "c1".into(),
        status_code: status,
        headers: vec![
            HeaderField { name: "content-type".into(), value: "application/json".into() },
            HeaderField { name: "vary".into(), value: "a".into() },
            HeaderField { name: "vary".into(), value: "b".into() },
        ],
        body: body.to_vec(),
        replayed: false,
    }
}

#[test]
fn executed_results_carry_text_and_structured_content() {
    let result = executed_result(&executed(200, br#"{"ok":true}"#));
    assert_eq!(result.is_error, Some(false));
    assert_eq!(text_of(&result), r#"{"ok":true}"#);
    let structured = result.structured_content.unwrap();
    assert_eq!(structured["status_code"], 200);
    assert_eq!(structured["body"], json!({"ok": true}));
    assert_eq!(structured["headers"]["vary"], "a, b");

    let result = executed_result(&executed(404, b"not found"));
    assert_eq!(result.is_error, Some(true), "upstream >= 400 is an error result");
    assert_eq!(result.structured_content.unwrap()["body"], "not found");

    let result = executed_result(&executed(200, &[0xff, 0xfe, 0x00]));
    assert!(text_of(&result).contains("not UTF-8") && text_of(&result).ends_with("//4A"));
    assert_eq!(result.structured_content.unwrap()["body_encoding"], "base64");
}

#[test]
fn refusals_and_approvals_are_error_results_the_model_can_read() {
    let error = ClientError::Broker {
        status: 403,
        code: "policy_denied".into(),
        message: "no rule allows this".into(),
        correlation_id: Some("abc".into()),
    };
    let result = refusal_result(&error);
    assert_eq!(result.is_error, Some(true));
    assert_eq!(text_of(&result), "policy_denied: no rule allows this (correlation abc)");

    let summary = ApprovalSummary {
        integration_id: "i_1".into(),
        action_group: "items_write".into(),
        risk_tier: "high".into(),
        destination_host: "api.example.test".into(),
        method: "POST".into(),
        path: "/v1/items".into(),
    };
    let result = approval_result("apr_1", "2026-01-01T00:00:00Z", &summary, "pending", None);
    assert_eq!(result.is_error, Some(true));
    let text = text_of(&result);
    assert!(text.starts_with("approval_required: "), "{text}");
    for part in ["apr_1", "POST api.example.test/v1/items", "steward admin approvals approve apr_1 --once"] {
        assert!(text.contains(part), "{text}");
    }
    let denied = approval_result("apr_1", "x", &summary, "denied", None);
    assert!(text_of(&denied).starts_with("approval_denied: "));
}
