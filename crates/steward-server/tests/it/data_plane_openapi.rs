//! The data plane's OpenAPI document describes what the data plane really answers. It is served at
//! `GET /v1/openapi.json` on the data plane listener, without identity; a real answer of every route
//! (health, enroll, renew, session, keyset, manifest, execute 200 and 202, the approval poll, errors)
//! validates against the schema the document gives for its path, method and status — strictly: a
//! field the schema does not name, a missing required field or a wrong type fails — and echoes the
//! correlation id the document promises.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::execute::{Exec, Options};
use common::workload::{call, create_session, key_and_csr, owner, with_session};
use http::Method;
use serde_json::{Value, json};
use steward_testkit::http_client::TestResponse;

/// The schema `document` gives for the JSON answer of `method path` with `status`.
fn response_schema<'d>(document: &'d Value, path: &str, method: &str, status: u16) -> &'d Value {
    let response = &document["paths"][path][method]["responses"][status.to_string()];
    assert!(response.is_object(), "{method} {path}: status {status} is not documented");
    let schema = &response["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path} {status}: no JSON schema");
    schema
}

/// Checks `value` against `schema` (the subset of JSON Schema utoipa writes: `$ref`, `oneOf`, `type`
/// as a name or a list, `properties`, `required`, `items`, `format: date-time`). Every object field
/// must be named by its schema.
fn validate(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.strip_prefix("#/components/schemas/").ok_or(format!("{at}: ref {reference}"))?;
        let target = &document["components"]["schemas"][name];
        if !target.is_object() {
            return Err(format!("{at}: {reference} is not in the document"));
        }
        return validate(document, target, value, at);
    }
    if let Some(choices) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        let errors: Vec<String> =
            choices.iter().filter_map(|choice| validate(document, choice, value, at).err()).collect();
        return if errors.len() < choices.len() { Ok(()) } else { Err(errors.join(" / ")) };
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(name) => vec![name.as_str()],
        Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let type_of = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let type_ok =
        types.is_empty() || types.contains(&type_of) || (type_of == "integer" && types.contains(&"number"));
    if !type_ok {
        return Err(format!("{at}: {type_of} where the schema says {types:?}: {value}"));
    }
    match value {
        Value::Object(fields) => {
            let properties = schema["properties"].as_object();
            for required in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                if !fields.contains_key(required) {
                    return Err(format!("{at}: required field {required} is missing"));
                }
            }
            for (name, field) in fields {
                let Some(field_schema) = properties.and_then(|p| p.get(name)) else {
                    if properties.is_none() && schema["additionalProperties"] != false {
                        continue; // a free-form object (`type: object` without properties)
                    }
                    return Err(format!("{at}: field {name} is not in the schema"));
                };
                validate(document, field_schema, field, &format!("{at}.{name}"))?;
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                validate(document, &schema["items"], item, &format!("{at}[{index}]"))?;
            }
        }
        Value::String(text)
            if schema["format"] == "date-time"
                && time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .is_err() =>
        {
            return Err(format!("{at}: {text:?} is not an RFC 3339 date-time"));
        }
        _ => {}
    }
    Ok(())
}

/// `response` (to `method path`) has the documented status, a body that validates, and the
/// correlation id header.
#[track_caller]
fn conforms(document: &Value, path: &str, method: &str, response: &TestResponse, status: u16) {
    let body = response.json();
    assert_eq!(response.status, status, "{method} {path}: {body}");
    let schema = response_schema(document, path, method, status);
    if let Err(error) = validate(document, schema, &body, &format!("{method} {path} {status}")) {
        panic!("the answer does not match the document: {error}\n{body}");
    }
    assert!(response.headers.get("x-correlation-id").is_some(), "{method} {path}: no x-correlation-id");
}

#[tokio::test]
async fn real_answers_match_the_served_document() {
    let dir = tempfile::tempdir().unwrap();
    let f = Exec::embedded(dir.path(), Options::default()).await;
    let server = &f.server;

    // The document, from the data plane itself, without a client certificate.
    let served = call(server, None, Method::GET, "/v1/openapi.json", &[], "").await;
    assert_eq!(served.status, 200);
    let document = served.json();
    assert_eq!(document, serde_json::to_value(steward_server::routes::data_plane::openapi()).unwrap());
    assert_eq!(document["info"]["title"], "Steward data plane API");

    for path in ["/healthz", "/readyz"] {
        let response = call(server, None, Method::GET, path, &[], "").await;
        conforms(&document, path, "get", &response, 200);
    }

    // Enrollment and renewal.
    let (status, created) = owner(
        server,
        Method::POST,
        &format!("/v1/tenants/{}/workloads", f.tenant),
        Some(json!({"name": "openapi-agent"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (_, csr_pem) = key_and_csr();
    let json_type = [("content-type", "application/json")];
    let body = json!({"enrollment_token": created["enrollment_token"], "csr_pem": csr_pem}).to_string();
    let response = call(server, None, Method::POST, "/v1/enroll", &json_type, &body).await;
    conforms(&document, "/v1/enroll", "post", &response, 201);
    let response = call(server, None, Method::POST, "/v1/enroll", &json_type, &body).await;
    conforms(&document, "/v1/enroll", "post", &response, 409);
    let (_, csr_pem) = key_and_csr();
    let body = json!({"csr_pem": csr_pem}).to_string();
    let response = call(server, Some(&f.workload), Method::POST, "/v1/enroll/renew", &json_type, &body).await;
    conforms(&document, "/v1/enroll/renew", "post", &response, 201);
    let response = call(server, None, Method::POST, "/v1/enroll/renew", &json_type, &body).await;
    conforms(&document, "/v1/enroll/renew", "post", &response, 401);

    // Sessions, the keyset, the manifest.
    let response = create_session(server, &f.workload, None, "").await;
    conforms(&document, "/v1/session", "post", &response, 200);
    let response = create_session(server, &f.workload, None, r#"{"scopes":["nope"]}"#).await;
    conforms(&document, "/v1/session", "post", &response, 400);
    let response = call(server, Some(&f.workload), Method::GET, "/v1/keys/manifest", &[], "").await;
    conforms(&document, "/v1/keys/manifest", "get", &response, 200);
    let manifest_path = format!("/v1/workloads/{}/manifest", f.workload.workload_id);
    let response =
        with_session(server, &f.workload, Method::GET, &manifest_path, "Bearer", &f.token, None).await;
    conforms(&document, "/v1/workloads/{workload_id}/manifest", "get", &response, 200);
    let other = "/v1/workloads/w_00000000000000000000000000000000/manifest";
    let response = with_session(server, &f.workload, Method::GET, other, "Bearer", &f.token, None).await;
    conforms(&document, "/v1/workloads/{workload_id}/manifest", "get", &response, 403);

    // Execute: made (200), needs an approval (202), refused (403); the approval poll.
    f.allow_reads().await;
    let response = f.execute(f.get("?q=1", &[("accept", "application/json")]), None, "c-200").await;
    conforms(&document, "/v1/execute", "post", &response, 200);
    let response = f.execute(f.post(&json!({"name": "x"})), None, "c-202").await;
    conforms(&document, "/v1/execute", "post", &response, 202);
    let approval_id = response.json()["approval_id"].as_str().unwrap().to_owned();
    let response = f.execute(f.get_on("private.example.test"), None, "c-403").await;
    conforms(&document, "/v1/execute", "post", &response, 403);
    let approval_path = format!("/v1/approvals/{approval_id}");
    let response =
        with_session(server, &f.workload, Method::GET, &approval_path, "Bearer", &f.token, None).await;
    conforms(&document, "/v1/approvals/{approval_id}", "get", &response, 200);
    let missing = "/v1/approvals/apr_00000000000000000000000000000000";
    let response = with_session(server, &f.workload, Method::GET, missing, "Bearer", &f.token, None).await;
    conforms(&document, "/v1/approvals/{approval_id}", "get", &response, 404);
    f.server.stop().await;
}

#[tokio::test]
async fn an_unknown_route_points_at_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let f = Exec::embedded(dir.path(), Options::default()).await;
    let response = call(&f.server, None, Method::GET, "/v1/executes", &[], "").await;
    assert_eq!(response.status, 404);
    let body = response.json();
    assert_eq!(body["error"], "route_not_found");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("/v1/executes") && message.contains("GET /v1/openapi.json"), "{message}");
    f.server.stop().await;
}
