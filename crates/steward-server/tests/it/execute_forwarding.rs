//! `POST /v1/execute` end to end against a real HTTPS upstream: what the upstream receives for each
//! injection type, the answer's shape, and the audit events of an allowed and forwarded call.

#![allow(clippy::unwrap_used)]

use crate::common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::execute::{Exec, Options, SECRET, kinds, upstream_body};
use serde_json::json;
use steward_testkit::{ReceivedRequest, Reply};

/// Client headers a workload might send that must never reach the upstream.
const HOSTILE: [(&str, &str); 9] = [
    ("authorization", "Bearer client-token"),
    ("cookie", "session=abc"),
    ("dpop", "proof"),
    ("x-forwarded-for", "10.0.0.1"),
    ("x-other", "not-allowlisted"),
    ("connection", "keep-alive"),
    ("upgrade", "h2c"),
    ("accept-encoding", "gzip"),
    ("x-steward-debug", "1"),
];

fn assert_clean(received: &ReceivedRequest) {
    for name in
        ["cookie", "dpop", "x-forwarded-for", "x-other", "upgrade", "x-steward-debug", "proxy-authorization"]
    {
        assert!(received.header(name).is_none(), "{name} reached the upstream: {:?}", received.names());
    }
    assert_eq!(received.header("accept-encoding"), Some("identity"), "{:?}", received.headers);
    assert!(received.headers.iter().all(|(_, v)| !v.contains("client-token")), "{:?}", received.headers);
    assert_eq!(received.header("x-trace"), Some("t-1"));
    assert_eq!(received.header("accept"), Some("application/json"));
    assert_eq!(received.header("host").map(|h| h.starts_with("api.example.test")), Some(true));
}

async fn forwarded(options: Options, query: &str) -> (Exec, ReceivedRequest, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let f = Exec::embedded(dir.path(), options).await;
    f.allow_reads().await;
    let mut headers = HOSTILE.to_vec();
    headers.extend([("x-trace", "t-1"), ("accept", "application/json")]);
    let response = f.execute(f.get(query, &headers), None, "corr-forward").await;
    assert_eq!(response.status, 200, "{}", response.json());
    let received = f.upstream.last();
    assert_clean(&received);
    (f, received, dir)
}

#[tokio::test]
async fn default_bearer_injection() {
    let (f, received, _dir) = forwarded(Options::default(), "?q=1").await;
    assert_eq!(received.header("authorization"), Some(format!("Bearer {SECRET}").as_str()));
    assert_eq!(received.target, "/v1/items?q=1");
    assert_eq!(received.method, "GET");
    f.server.stop().await;
}

#[tokio::test]
async fn template_default_header_injection() {
    let options = Options {
        default_injection: Some(json!({"type": "header", "name": "x-api-key", "format": "{secret}"})),
        ..Options::default()
    };
    let (f, received, _dir) = forwarded(options, "").await;
    assert_eq!(received.header("x-api-key"), Some(SECRET));
    assert!(received.header("authorization").is_none(), "{:?}", received.headers);
    f.server.stop().await;
}

#[tokio::test]
async fn integration_basic_injection() {
    let options =
        Options { injection: Some(json!({"type": "basic", "username": "svc"})), ..Options::default() };
    let (f, received, _dir) = forwarded(options, "").await;
    let expected = format!("Basic {}", STANDARD.encode(format!("svc:{SECRET}")));
    assert_eq!(received.header("authorization"), Some(expected.as_str()));
    f.server.stop().await;
}

#[tokio::test]
async fn integration_query_injection_and_reserved_key() {
    let options =
        Options { injection: Some(json!({"type": "query", "name": "limit"})), ..Options::default() };
    let (f, received, _dir) = forwarded(options, "?q=1").await;
    assert!(received.header("authorization").is_none(), "{:?}", received.headers);
    assert!(received.target.starts_with("/v1/items?"), "{}", received.target);
    assert!(received.target.contains(&format!("limit={SECRET}")), "{}", received.target);
    assert!(received.target.contains("q=1"), "{}", received.target);
    // A client may not send the key the secret goes into.
    let count = f.upstream.count();
    let response = f.execute(f.get("?limit=5", &[]), None, "corr-reserved").await;
    assert_eq!(response.status, 403, "{}", response.json());
    assert_eq!(response.json()["error"], "request_query_key_reserved");
    assert_eq!(f.upstream.count(), count);
    f.server.stop().await;
}

#[tokio::test]
async fn answer_shape_and_audit_of_a_forwarded_call() {
    let dir = tempfile::tempdir().unwrap();
    let f = Exec::embedded(dir.path(), Options::default()).await;
    let policy_id = f.allow_reads().await;
    f.upstream.respond(
        503,
        &[
            ("content-type", "application/json"),
            ("set-cookie", "a=b"),
            ("x-request-id", "r1"),
            ("x-internal", "no"),
        ],
        br#"{"busy":true}"#,
    );
    let response =
        f.execute(f.get("?q=secret-query-value", &[("x-trace", "trace-value")]), None, "corr-shape").await;
    assert_eq!(response.status, 200, "{}", response.json());
    let body = response.json();
    assert_eq!(body["status"], "executed");
    assert_eq!(body["correlation_id"], "corr-shape");
    assert_eq!(body["upstream"]["status_code"], 503);
    let names: Vec<&str> =
        body["upstream"]["headers"].as_array().unwrap().iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"content-type") && names.contains(&"x-request-id"), "{names:?}");
    assert!(!names.contains(&"set-cookie") && !names.contains(&"x-internal"), "{names:?}");
    assert_eq!(upstream_body(&response), r#"{"busy":true}"#);

    let events = f.events("corr-shape").await;
    assert_eq!(
        f.event_kinds("corr-shape").await,
        kinds(&[("execute", "allowed", "policy_allow"), ("execute_result", "", "")])
    );
    let intent = &events[0];
    assert_eq!(intent["policy"]["rule_id"], policy_id.as_str());
    assert_eq!(intent["action_group"], "items_read");
    assert_eq!(intent["destination"]["host"], "api.example.test");
    let descriptor = intent["canonical_descriptor"].to_string();
    assert!(
        !descriptor.contains("secret-query-value") && !descriptor.contains("trace-value"),
        "{descriptor}"
    );
    assert!(descriptor.contains("hmac:"), "{descriptor}");
    let result = &events[1];
    assert_eq!(result["upstream_status_code"], 503);
    assert!(result["latency_ms"].is_u64(), "{result}");
    assert_eq!(result["metadata"]["resolved_ips"], json!(["127.0.0.1"]));
    assert_eq!(result["metadata"]["secret_scrubbed"], false);
    for event in &events {
        assert!(!event.to_string().contains(SECRET), "{event}");
    }
    f.server.stop().await;
}

#[tokio::test]
async fn an_echoed_secret_is_scrubbed_in_every_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let f = Exec::embedded(dir.path(), Options::default()).await;
    f.allow_reads().await;
    f.upstream.respond_with(echo);
    let response = f.execute(f.get("", &[]), None, "corr-echo").await;
    assert_eq!(response.status, 200, "{}", response.json());
    let text = response.json().to_string();
    let body = upstream_body(&response);
    assert!(!text.contains(SECRET) && !body.contains(SECRET), "{body}");
    for encoded in [
        hex(SECRET.as_bytes()),
        hex(SECRET.as_bytes()).to_uppercase(),
        STANDARD.encode(SECRET),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SECRET),
        mixed_percent(format!("Bearer {SECRET}").as_bytes()),
        json_unicode(SECRET.as_bytes()),
    ] {
        assert!(!body.contains(&encoded), "{encoded} survived: {body}");
    }
    assert!(body.contains("pct=[REDACTED] json=[REDACTED] "), "{body}");
    assert!(body.contains("[REDACTED]"), "{body}");
    let echo = response.json()["upstream"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "x-echo")
        .map(|h| h["value"].as_str().unwrap().to_owned())
        .unwrap();
    assert_eq!(echo, "[REDACTED]");
    let events = f.events("corr-echo").await;
    assert_eq!(events[1]["metadata"]["secret_scrubbed"], true);
    f.server.stop().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Echoes the `authorization` and `x-api-key` headers and the query back, in a response header
/// (`x-echo`) and the body, raw and encoded.
fn echo(request: &ReceivedRequest) -> Reply {
    let secretish = [request.header("authorization"), request.header("x-api-key")]
        .into_iter()
        .flatten()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    let mut body = String::new();
    for value in &secretish {
        let bare = value.strip_prefix("Bearer ").unwrap_or(value);
        body.push_str(&format!(
            "raw={value} bare={bare} hex={} HEX={} b64={} b64url={} pct={} json={} ",
            hex(bare.as_bytes()),
            hex(bare.as_bytes()).to_uppercase(),
            STANDARD.encode(bare),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bare),
            mixed_percent(value.as_bytes()),
            json_unicode(bare.as_bytes()),
        ));
    }
    body.push_str(&format!("target={}", request.target));
    let echo = secretish.first().cloned().unwrap_or_else(|| request.target.clone());
    Reply::full(200, &[("content-type", "text/plain"), ("x-echo", &echo)], body.as_bytes())
}

/// Every other byte as lower-case `%xx`, spaces as `+`: a mix no fixed list of encodings holds.
fn mixed_percent(bytes: &[u8]) -> String {
    bytes
        .iter()
        .enumerate()
        .map(|(i, &b)| match b {
            b' ' => "+".to_owned(),
            _ if i % 2 == 0 => format!("%{b:02x}"),
            _ => char::from(b).to_string(),
        })
        .collect()
}

/// Every byte as `\u00XX`, as a JSON encoder escaping everything would write it.
fn json_unicode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\u{b:04x}")).collect()
}

#[tokio::test]
async fn the_execute_body_limit_and_audited_body_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let f = Exec::embedded(dir.path(), Options::default()).await;
    // Larger than data_plane.max_body_bytes (1 MiB) but inside ceil(2 MiB × 4 / 3) + 64 KiB.
    let padding = "a".repeat(1_500_000);
    let body = json!({"integration_id": f.integration_id, "request": f.get("", &[]),
                      "client_context": {"source": padding}});
    let response = f.raw_on(&f.server, &body.to_string(), "c-big").await;
    assert_eq!(response.status, 403, "{}", response.json());
    assert_eq!(response.json()["error"], "policy_default_deny");
    let huge = "b".repeat(3_000_000);
    let response = f.raw_on(&f.server, &huge, "c-huge").await;
    assert_eq!((response.status, response.json()["error"].clone()), (413, json!("request_body_too_large")));
    assert_eq!(f.event_kinds("c-huge").await, kinds(&[("execute", "denied", "request_body_too_large")]));
    let response = f.raw_on(&f.server, r#"{"integration_id":"i_x","request":{},"extra":1}"#, "c-shape").await;
    assert_eq!(
        (response.status, response.json()["error"].clone()),
        (400, json!("request_body_schema_invalid"))
    );
    let response = f
        .raw_on(
            &f.server,
            &json!({"integration_id": "i_nope", "request": f.get("", &[])}).to_string(),
            "c-none",
        )
        .await;
    assert_eq!((response.status, response.json()["error"].clone()), (404, json!("integration_not_found")));
    let events = f.events("c-none").await;
    assert_eq!(events[0]["metadata"]["requested_integration_id"], "i_nope");
    assert_eq!(f.upstream.count(), 0);
    f.server.stop().await;
}
