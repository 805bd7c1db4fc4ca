//! The egress steps of execute end to end, from a canonical request: guard, injection, forward,
//! scrub — against a real local HTTPS upstream.

#![allow(clippy::unwrap_used)] // test helpers: a failure is a failed test

use crate::support;

use serde_json::json;
use steward_canon::{CanonContext, ExecuteRequest, HeaderField, Injection, Method, Template, canonicalize};
use steward_egress::{OutgoingRequest, Scrubber, guard};
use steward_testkit::templates::{self, group};
use steward_testkit::upstream::{ReceivedRequest, Reply, TestUpstream};
use steward_types::{IntegrationId, TenantId, WorkloadId};

#[tokio::test]
async fn canonical_request_to_scrubbed_outcome() {
    let echo = |r: &ReceivedRequest| {
        let key = r.header_values("x-api-key").first().map(|s| s.to_string()).unwrap_or_default();
        Reply::full(
            200,
            &[("content-type", "application/json"), ("x-echo", &key), ("set-cookie", "a=b")],
            format!("{{\"you_sent\":\"{key}\",\"path\":\"{}\"}}", r.target).as_bytes(),
        )
    };
    let upstream = TestUpstream::start().await.unwrap();
    upstream.respond_with(echo);
    let port = upstream.addr.port();
    let template = Template::from_json(
        &templates::template("tpl_echo", "echo")
            .description("local echo")
            .port(port)
            .hosts(&["127.0.0.1"])
            .default_injection(json!({"type": "header", "name": "x-api-key", "format": "{secret}"}))
            .group(
                group("items", &["POST"], &["^/v1/items$"])
                    .query(&["limit"])
                    .headers(&["content-type", "x-request-id"])
                    .response_headers(&["content-type", "x-echo", "set-cookie"])
                    .json_body(1024),
            )
            .build(),
    )
    .unwrap();
    let ctx = CanonContext::new(
        TenantId::parse("t_acme").unwrap(),
        WorkloadId::parse("w_bot").unwrap(),
        IntegrationId::parse("i_echo").unwrap(),
        1024,
    );
    let input = ExecuteRequest {
        method: Method::parse("POST").unwrap(),
        url: format!("https://127.0.0.1:{port}/v1/./items?limit=2"),
        headers: vec![
            HeaderField::new("Content-Type", "application/json"),
            HeaderField::new("X-Request-Id", "req-9"),
        ],
        body_base64: Some("eyJhIjoxfQ==".into()),
    };
    let canonical = canonicalize(&input, &template, &ctx).unwrap();
    let injection: Injection = ctx.effective_injection(&template);

    let resolver = support::static_resolver(&[]);
    let target =
        guard(canonical.host(), canonical.port(), &resolver, &support::loopback_allow()).await.unwrap();
    let forwarder = support::forwarder(&upstream.ca_pem, |_| {});
    let (request, needles) =
        OutgoingRequest::from_canonical(&canonical, &injection, b"echo-secret-value").unwrap();
    let mut outcome =
        forwarder.forward(&target, &request, canonical.group().response_header_allowlist()).await.unwrap();
    let scrubbed = Scrubber::new(&needles).unwrap().scrub_response(&mut outcome.headers, &mut outcome.body);

    assert!(scrubbed);
    let seen = &upstream.received()[0];
    assert_eq!(seen.target, "/v1/items?limit=2");
    assert_eq!(seen.header_values("x-api-key"), vec!["echo-secret-value"]);
    assert_eq!(seen.header_values("x-request-id"), vec!["req-9"]);
    assert_eq!(seen.body, b"{\"a\":1}");
    assert_eq!(seen.sni, None, "no SNI for an IP literal host");
    let names: Vec<&str> = outcome.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["content-type", "x-echo"]);
    assert_eq!(outcome.headers[1].1, "[REDACTED]");
    assert_eq!(&outcome.body[..], b"{\"you_sent\":\"[REDACTED]\",\"path\":\"/v1/items?limit=2\"}");
}
