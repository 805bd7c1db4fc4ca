//! Forward mode end to end (`spec/gateway.md` §1): real mTLS sessions (and a DPoP-bound one), a real
//! local HTTPS upstream that streams scripted answers, and the audit trail of each call. Streaming is
//! proven by handshake, never by timing: the upstream holds its last event until the test has read
//! the first one at the client.

#![allow(clippy::unwrap_used)]

mod client;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::Full;
use serde_json::{Value, json};
use steward_crypto::{DpopAlg, DpopKey};
use steward_store::governance::{AuditFilter, AuditOrder};
use tokio::sync::Notify;

use self::client::{Streaming, open};
use crate::common::workload::{Workload, bound_session, dpop_proof, enrolled, owner, session_token, tenant};
use crate::common::{TestServer, free_port_env, install_crypto_provider};
use steward_testkit::execute::{self, API_HOST};
use steward_testkit::templates::{self, group};
use steward_testkit::upstream::{Reply, Step, TestUpstream, send};

/// The integration secret of every fixture.
const SECRET: &str = "sk-live-forward-secret-0001";

/// A Steward whose tenant has a provider-`openai` template on `api.example.test` (the local
/// upstream), an integration with [`SECRET`], allow rules, an enrolled workload and a session.
struct Fwd {
    server: TestServer,
    upstream: TestUpstream,
    workload: Workload,
    token: String,
    tenant: String,
    integration_id: String,
    _dir: tempfile::TempDir,
}

fn template(tenant: &str, port: u16) -> Value {
    const JSON_BODY: u64 = 1_048_576;
    templates::template("tpl_fwd", "openai")
        .tenant(tenant)
        .port(port)
        .group(
            group("chat", &["POST"], &["^/v1/chat/completions$"])
                .headers(&["content-type", "accept", "x-trace", "openai-beta"])
                .response_headers(&["content-type", "x-request-id", "content-length", "set-cookie"])
                .json_body(JSON_BODY),
        )
        .group(
            group("items_read", &["GET", "HEAD"], &["^/v1/items(/[^/]+)?$"])
                .query(&["q", "limit"])
                .headers(&["accept"])
                .response_headers(&["content-type"])
                .constraints(json!({"allow_encoded_slashes": true})),
        )
        .group(group("items_delete", &["DELETE"], &["^/v1/items/[^/]+$"]).risk("high"))
        .group(
            group("send", &["POST"], &["^/v1/send$"])
                .risk("high")
                .approval_required()
                .headers(&["content-type"])
                .json_body(JSON_BODY)
                .preview(&["/to"]),
        )
        .group(
            group("mcp", &["POST"], &["^/mcp$"])
                .risk("medium")
                .headers(&["content-type", "accept", "mcp-session-id"])
                .response_headers(&["content-type", "mcp-session-id"])
                .json_body(JSON_BODY),
        )
        .build()
}

impl Fwd {
    async fn start(extra_env: &[(&str, &str)]) -> Self {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let upstream = TestUpstream::start().await.unwrap();
        crate::common::init_data_dir(dir.path()).await;
        let server =
            TestServer::start(dir.path(), environment(dir.path(), &upstream, extra_env)).await.unwrap();
        let tenant = tenant(&server, false).await;
        let (status, published) =
            owner(&server, Method::POST, "/v1/templates", Some(template(&tenant, upstream.port()))).await;
        assert_eq!(status, 201, "{published}");
        let integration = execute::integration("openai", "tpl_fwd", SECRET);
        let (status, created) =
            owner(&server, Method::POST, &format!("/v1/tenants/{tenant}/integrations"), Some(integration))
                .await;
        assert_eq!(status, 201, "{created}");
        let integration_id = created["integration_id"].as_str().unwrap().to_owned();
        let workload = enrolled(&server, &tenant, json!({})).await;
        let token = session_token(&server, &workload, None).await;
        let f = Self { server, upstream, workload, token, tenant, integration_id, _dir: dir };
        for (group, method) in
            [("chat", "POST"), ("items_read", "GET"), ("items_read", "HEAD"), ("mcp", "POST")]
        {
            f.policy("allow", group, method).await;
        }
        f.policy("deny", "items_delete", "DELETE").await;
        f
    }

    async fn policy(&self, rule_type: &str, group: &str, method: &str) {
        let rule = execute::policy_rule(
            &self.tenant,
            &self.integration_id,
            rule_type,
            group,
            method,
            API_HOST,
            json!({}),
        );
        let (status, created) = owner(&self.server, Method::POST, "/v1/policies", Some(rule)).await;
        assert_eq!(status, 201, "{created}");
    }

    /// `/v1/forward/{integration}/api.example.test:{port}{path_and_query}`.
    fn path(&self, path_and_query: &str) -> String {
        format!(
            "/v1/forward/{}/api.example.test:{}{path_and_query}",
            self.integration_id,
            self.upstream.port()
        )
    }

    /// A forward request with the fixture's session and `x-correlation-id: correlation`.
    async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        correlation: &str,
    ) -> Streaming {
        let authorization = format!("Bearer {}", self.token);
        let mut all = vec![("authorization", authorization.as_str()), ("x-correlation-id", correlation)];
        all.extend_from_slice(headers);
        let path = self.path(path_and_query);
        open(&self.server, &self.workload, method, &path, &all, Full::new(Bytes::copy_from_slice(body))).await
    }

    /// A chat completion request (JSON), optionally asking for a stream.
    async fn chat(&self, stream: bool, correlation: &str) -> Streaming {
        let body =
            json!({"model": "gpt-test", "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
        let accept = if stream { "text/event-stream" } else { "application/json" };
        let headers = [("content-type", "application/json"), ("accept", accept)];
        self.call(Method::POST, "/v1/chat/completions", &headers, body.to_string().as_bytes(), correlation)
            .await
    }

    /// The audit events of one correlation id, oldest first.
    async fn events(&self, correlation: &str) -> Vec<Value> {
        let filter = AuditFilter { correlation_id: Some(correlation.to_owned()), ..AuditFilter::default() };
        let events = self
            .server
            .state
            .store
            .search_audit_events(&filter, None, AuditOrder::OldestFirst, 100)
            .await
            .unwrap();
        events.iter().map(|e| serde_json::to_value(e).unwrap()).collect()
    }

    /// The `execute_result` event of a correlation id, waiting for it (it is written when the body
    /// ends, after the client may have seen that end).
    async fn result_event(&self, correlation: &str) -> Value {
        for _ in 0..200 {
            if let Some(event) =
                self.events(correlation).await.into_iter().find(|e| e["event_type"] == "execute_result")
            {
                return event;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no execute_result for {correlation}: {:?}", self.events(correlation).await);
    }

    /// `(event_type, decision, reason_code)` of each event.
    async fn kinds(&self, correlation: &str) -> Vec<(String, String, String)> {
        execute::event_kinds(&self.events(correlation).await)
    }
}

fn environment(
    dir: &Path,
    upstream: &TestUpstream,
    extra: &[(&str, &str)],
) -> steward_server::startup::Environment {
    let mut vars = execute::egress_env(upstream, dir);
    vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    free_port_env(&vars)
}

fn new_correlation() -> String {
    format!("fwd-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn a_json_call_gets_the_secret_and_nothing_of_the_hop() {
    let f = Fwd::start(&[]).await;
    let answer = br#"{"id":"chatcmpl-1","choices":[{"message":{"content":"hello"}}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#;
    f.upstream.queue(Reply::full(
        200,
        &[
            ("content-type", "application/json"),
            ("x-request-id", "req-42"),
            ("set-cookie", "session=abc"),
            ("x-internal", "hidden"),
            ("content-length", &answer.len().to_string()),
        ],
        answer,
    ));
    let body = br#"{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}"#;
    let correlation = new_correlation();
    let response = f
        .call(
            Method::POST,
            "/v1/chat/completions",
            &[
                ("content-type", "application/json"),
                ("accept", "application/json"),
                ("x-trace", "t-1"),
                ("dpop", "not.a.proof"),
                ("steward-integration", "fwd"),
                ("proxy-authorization", "Basic eDp5"),
                ("connection", "x-hop"),
                ("x-hop", "1"),
                ("accept-encoding", "gzip"),
            ],
            body,
            &correlation,
        )
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), "application/json");
    assert_eq!(response.header("x-request-id"), "req-42");
    assert_eq!(response.header("x-correlation-id"), correlation);
    for absent in ["set-cookie", "x-internal", "steward-error"] {
        assert!(!response.headers.contains_key(absent), "{absent}: {:?}", response.headers);
    }
    let mut response = response;
    let (received_body, error) = response.rest().await;
    assert_eq!(error, None);
    assert_eq!(received_body, answer);

    let upstream = f.upstream.last();
    assert_eq!((upstream.method.as_str(), upstream.target.as_str()), ("POST", "/v1/chat/completions"));
    assert_eq!(upstream.header("authorization"), Some(format!("Bearer {SECRET}").as_str()));
    assert_eq!(upstream.header("x-trace"), Some("t-1"));
    assert_eq!(upstream.header("accept-encoding"), Some("identity"));
    assert_eq!(upstream.body, body);
    for absent in ["dpop", "steward-integration", "proxy-authorization", "x-hop", "x-correlation-id"] {
        assert!(upstream.header(absent).is_none(), "{absent} reached the upstream: {:?}", upstream.names());
    }

    let events = f.events(&correlation).await;
    let execute = events.iter().find(|e| e["event_type"] == "execute").unwrap();
    assert_eq!(execute["decision"], "allowed");
    assert_eq!(execute["metadata"]["mode"], "forward");
    let result = f.result_event(&correlation).await;
    let metadata = &result["metadata"];
    assert_eq!(result["upstream_status_code"], 200);
    assert_eq!(metadata["mode"], "forward");
    assert_eq!(metadata["stream"], false);
    assert_eq!(metadata["end"], "complete");
    assert_eq!(metadata["response_bytes"], answer.len());
    assert_eq!(metadata["secret_scrubbed"], false);
    assert!(metadata["ttfb_ms"].as_u64().unwrap() <= result["latency_ms"].as_u64().unwrap(), "{result}");
    // Provider openai: the usage of a JSON answer.
    assert_eq!(metadata["usage"], json!({"input_tokens": 3, "output_tokens": 2}));
}

#[tokio::test]
async fn a_head_request_ends_complete_without_a_body() {
    let f = Fwd::start(&[]).await;
    f.upstream.queue(Reply::chunked(
        200,
        &[("content-type", "application/json"), ("content-length", "11")],
        vec![],
    ));
    let correlation = new_correlation();
    let mut response = f.call(Method::HEAD, "/v1/items", &[], b"", &correlation).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), "application/json");
    let (body, error) = response.rest().await;
    assert_eq!((body.len(), error), (0, None));
    assert_eq!(f.upstream.last().method, "HEAD");
    let result = f.result_event(&correlation).await;
    assert_eq!(result["metadata"]["end"], "complete");
    assert_eq!(result["metadata"]["response_bytes"], 0);
}

#[tokio::test]
async fn raw_target_bytes_reach_canonicalization_unchanged() {
    let f = Fwd::start(&[]).await;
    // An encoded slash stays inside its segment (a decoded one would make a path no pattern allows),
    // `+` stays a literal, `%7e` is normalized by canonicalization, query keys are sorted.
    let correlation = new_correlation();
    let mut response =
        f.call(Method::GET, "/v1/items/a%2Fb%7e?q=x%2By+z&limit=5", &[], b"", &correlation).await;
    assert_eq!(response.status, 200);
    let _ = response.rest().await;
    assert_eq!(f.upstream.last().target, "/v1/items/a%2Fb~?limit=5&q=x%2By+z");

    // What an execute URL may not have, a forward URL may not have either, with the same codes.
    let cases = [
        ("/v1/items/%zz", 400, "request_percent_encoding_invalid"),
        ("/v1/items/%00", 400, "request_percent_encoding_invalid"),
        ("/v1/items?other=1", 403, "request_query_key_not_allowlisted"),
        ("/v1/other", 403, "no_matching_group"),
    ];
    for (path, status, code) in cases {
        let correlation = new_correlation();
        let response = f.call(Method::GET, path, &[], b"", &correlation).await;
        let body = response_json(response, status, code, &correlation).await;
        assert!(body["error"]["message"].is_string());
    }
    let correlation = new_correlation();
    let path =
        format!("/v1/forward/{}/user@api.example.test:{}/v1/items", f.integration_id, f.upstream.port());
    let authorization = format!("Bearer {}", f.token);
    let headers = [("authorization", authorization.as_str()), ("x-correlation-id", correlation.as_str())];
    let response = open(&f.server, &f.workload, Method::GET, &path, &headers, Full::default()).await;
    response_json(response, 400, "request_url_userinfo_forbidden", &correlation).await;
    assert_eq!(f.upstream.count(), 1, "nothing refused reached the upstream");
}

/// A Steward refusal in the forward shape: status, `steward-error`, `x-correlation-id`, the nested
/// JSON body with a message, never the secret. Returns the body.
async fn response_json(response: Streaming, status: u16, code: &str, correlation: &str) -> Value {
    assert_eq!(response.header("steward-error"), code, "{:?}", response.headers);
    assert_eq!(response.header("x-correlation-id"), correlation);
    assert_eq!(response.header("content-type"), "application/json");
    let status_seen = response.status;
    let body = response.json().await;
    assert_eq!(status_seen, status, "{body}");
    assert_eq!(body["type"], "error", "{body}");
    let error = &body["error"];
    assert_eq!((error["type"].as_str(), error["code"].as_str()), (Some(code), Some(code)), "{body}");
    assert_eq!(error["correlation_id"], correlation, "{body}");
    assert!(!error["message"].as_str().unwrap_or("").is_empty(), "{body}");
    assert!(!body.to_string().contains(SECRET), "{body}");
    body
}

#[tokio::test]
async fn refusals_have_the_nested_shape_and_steward_error() {
    let f = Fwd::start(&[]).await;
    // Policy: deny rule → 403 policy_deny, audited as execute denied + violation, nothing sent.
    let correlation = new_correlation();
    let response = f.call(Method::DELETE, "/v1/items/42", &[], b"", &correlation).await;
    response_json(response, 403, "policy_deny", &correlation).await;
    let kinds = f.kinds(&correlation).await;
    assert_eq!(kinds[0], ("execute".into(), "denied".into(), "policy_deny".into()), "{kinds:?}");
    assert_eq!(kinds[1].0, "violation", "{kinds:?}");
    assert_eq!(f.events(&correlation).await[0]["metadata"]["mode"], "forward");

    // An unknown integration.
    let correlation = new_correlation();
    let path = format!("/v1/forward/i_unknown/api.example.test:{}/v1/items", f.upstream.port());
    let authorization = format!("Bearer {}", f.token);
    let headers = [("authorization", authorization.as_str()), ("x-correlation-id", correlation.as_str())];
    let response = open(&f.server, &f.workload, Method::GET, &path, &headers, Full::default()).await;
    response_json(response, 404, "integration_not_found", &correlation).await;

    // No session: 401 with its challenge, in the same shape.
    let correlation = new_correlation();
    let path = f.path("/v1/items");
    let headers = [("x-correlation-id", correlation.as_str())];
    let response = open(&f.server, &f.workload, Method::GET, &path, &headers, Full::default()).await;
    assert_eq!(response.header("www-authenticate"), r#"Bearer error="invalid_token""#);
    response_json(response, 401, "session_missing", &correlation).await;

    // No integration in the URL.
    for path in ["/v1/forward/", "/v1/forward"] {
        let correlation = new_correlation();
        let authorization = format!("Bearer {}", f.token);
        let headers = [("authorization", authorization.as_str()), ("x-correlation-id", correlation.as_str())];
        let response = open(&f.server, &f.workload, Method::GET, path, &headers, Full::default()).await;
        response_json(response, 400, "path_param_invalid", &correlation).await;
    }

    // A method execute does not know.
    let correlation = new_correlation();
    let response = f.call(Method::OPTIONS, "/v1/items", &[], b"", &correlation).await;
    assert!(response.header("allow").contains("GET"), "{:?}", response.headers);
    response_json(response, 405, "method_not_allowed", &correlation).await;
    assert_eq!(f.upstream.count(), 0);
}

#[tokio::test]
async fn approval_required_is_a_403_then_the_same_request_runs_once_approved() {
    let f = Fwd::start(&[]).await;
    let body = br#"{"to":"alice@example.com","text":"hi"}"#;
    let headers = [("content-type", "application/json")];
    let first = new_correlation();
    let response = f.call(Method::POST, "/v1/send", &headers, body, &first).await;
    let approval_header = response.header("steward-approval-id");
    let refused = response_json(response, 403, "approval_required", &first).await;
    let approval_id = refused["error"]["approval_id"].as_str().unwrap().to_owned();
    assert!(approval_id.starts_with("apr_"), "{refused}");
    assert_eq!(approval_header, approval_id);
    assert!(refused["error"]["expires_at"].as_str().unwrap().ends_with('Z'), "{refused}");
    let summary = &refused["error"]["summary"];
    assert_eq!(
        (summary["action_group"].as_str(), summary["method"].as_str(), summary["path"].as_str()),
        (Some("send"), Some("POST"), Some("/v1/send")),
        "{refused}"
    );
    assert_eq!(summary["destination_host"], "api.example.test");

    // The same request again: the same pending approval.
    let again = new_correlation();
    let response = f.call(Method::POST, "/v1/send", &headers, body, &again).await;
    let refused = response_json(response, 403, "approval_required", &again).await;
    assert_eq!(refused["error"]["approval_id"], approval_id.as_str());
    assert_eq!(f.upstream.count(), 0);

    let (status, decided) = owner(
        &f.server,
        Method::POST,
        &format!("/v1/approvals/{approval_id}/approve"),
        Some(json!({"mode": "once"})),
    )
    .await;
    assert_eq!(status, 200, "{decided}");
    let approved = new_correlation();
    let mut response = f.call(Method::POST, "/v1/send", &headers, body, &approved).await;
    assert_eq!(response.status, 200);
    assert!(response.header("steward-error").is_empty());
    let (answer, _) = response.rest().await;
    assert_eq!(answer, br#"{"ok":true}"#);
    assert_eq!(f.upstream.count(), 1);
    assert_eq!(f.upstream.last().body, body);
    let kinds = f.kinds(&approved).await;
    assert!(kinds.iter().any(|k| k.0 == "approval_consumed"), "{kinds:?}");
}

#[tokio::test]
async fn a_body_over_the_forward_limit_is_413() {
    let f = Fwd::start(&[("STEWARD_DATA_PLANE__MAX_FORWARD_BODY_BYTES", "2048")]).await;
    let big = vec![b'a'; 4096];
    // Declared by content-length, and chunked (no length known in advance).
    let correlation = new_correlation();
    let response = f
        .call(
            Method::POST,
            "/v1/chat/completions",
            &[("content-type", "application/json")],
            &big,
            &correlation,
        )
        .await;
    response_json(response, 413, "request_body_too_large", &correlation).await;

    let correlation = new_correlation();
    let chunks: Vec<Result<hyper::body::Frame<Bytes>, std::io::Error>> =
        (0..4).map(|_| Ok(hyper::body::Frame::data(Bytes::from(vec![b'a'; 1024])))).collect();
    let chunked = http_body_util::StreamBody::new(futures::stream::iter(chunks));
    let authorization = format!("Bearer {}", f.token);
    let headers = [
        ("authorization", authorization.as_str()),
        ("x-correlation-id", correlation.as_str()),
        ("content-type", "application/json"),
    ];
    let response =
        open(&f.server, &f.workload, Method::POST, &f.path("/v1/chat/completions"), &headers, chunked).await;
    response_json(response, 413, "request_body_too_large", &correlation).await;
    assert_eq!(f.upstream.count(), 0);
}

fn sse_headers() -> [(&'static str, &'static str); 1] {
    [("content-type", "text/event-stream")]
}

#[tokio::test]
async fn sse_events_reach_the_client_as_they_arrive() {
    let f = Fwd::start(&[]).await;
    let gate = Arc::new(Notify::new());
    let first = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n";
    let last = b"data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\ndata: [DONE]\n\n";
    f.upstream.queue(Reply::chunked(
        200,
        &sse_headers(),
        vec![send(first), Step::Wait(gate.clone()), send(last)],
    ));
    let correlation = new_correlation();
    let mut response = f.chat(true, &correlation).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), "text/event-stream");
    // The upstream has not sent its last event: it waits for this test to see the first one.
    let chunk = response.next_chunk().await.expect("the first event").expect("a chunk");
    assert_eq!(&chunk[..], first);
    gate.notify_one();
    let (rest, error) = response.rest().await;
    assert_eq!(error, None);
    assert_eq!(rest, last);
    let result = f.result_event(&correlation).await;
    assert_eq!(result["metadata"]["stream"], true);
    assert_eq!(result["metadata"]["end"], "complete");
    assert_eq!(result["metadata"]["response_bytes"], first.len() + last.len());
    // The stream metrics (process-wide: other tests add to them, so only their presence is checked).
    let metrics = f.server.admin(Method::GET, "/metrics", None, None).await;
    let text = String::from_utf8_lossy(&metrics.body);
    for name in [
        r#"steward_forward_stream_ends_total{end="complete"}"#,
        "steward_forward_stream_bytes_total",
        "steward_forward_streams_open",
        "steward_forward_ttfb_seconds",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
}

#[tokio::test]
async fn a_secret_split_across_two_chunks_is_redacted() {
    let f = Fwd::start(&[]).await;
    let (head, tail) = SECRET.split_at(11);
    let one = format!("data: {{\"echo\":\"{head}");
    let two = format!("{tail}\"}}\n\n");
    f.upstream.queue(Reply::chunked(
        200,
        &sse_headers(),
        vec![send(one.as_bytes()), Step::Pause(Duration::from_millis(100)), send(two.as_bytes())],
    ));
    let correlation = new_correlation();
    let mut response = f.chat(true, &correlation).await;
    let (body, error) = response.rest().await;
    assert_eq!(error, None);
    assert_eq!(String::from_utf8(body).unwrap(), "data: {\"echo\":\"[REDACTED]\"}\n\n");
    let result = f.result_event(&correlation).await;
    assert_eq!(result["metadata"]["secret_scrubbed"], true);
}

#[tokio::test]
async fn an_idle_upstream_ends_the_stream_with_idle_timeout() {
    let f = Fwd::start(&[("STEWARD_EGRESS__STREAM_IDLE_TIMEOUT_MS", "400")]).await;
    f.upstream.queue(Reply::chunked(200, &sse_headers(), vec![send(b"data: 1\n\n"), Step::Hang]));
    let correlation = new_correlation();
    let mut response = f.chat(true, &correlation).await;
    assert_eq!(response.next_chunk().await.unwrap().unwrap(), "data: 1\n\n");
    // The connection is closed instead of ending the body cleanly: the client sees the cut.
    let (rest, error) = response.rest().await;
    assert!(rest.is_empty());
    assert!(error.is_some(), "a cut stream must not look complete");
    let result = f.result_event(&correlation).await;
    assert_eq!(result["metadata"]["end"], "idle_timeout");
    assert_eq!(result["metadata"]["response_bytes"], 9);
    wait_until(|| f.upstream.abandoned() == 1).await;
}

#[tokio::test]
async fn an_upstream_that_breaks_mid_stream_is_upstream_error() {
    let f = Fwd::start(&[]).await;
    f.upstream.queue(Reply::chunked(200, &sse_headers(), vec![send(b"data: 1\n\n"), Step::Close]));
    let correlation = new_correlation();
    let mut response = f.chat(true, &correlation).await;
    let (body, error) = response.rest().await;
    assert_eq!(body, b"data: 1\n\n");
    assert!(error.is_some(), "a broken stream must not look complete");
    let result = f.result_event(&correlation).await;
    assert_eq!(result["metadata"]["end"], "upstream_error");
}

#[tokio::test]
async fn a_client_that_goes_away_mid_stream_is_client_closed() {
    let f = Fwd::start(&[]).await;
    f.upstream.queue(Reply::chunked(200, &sse_headers(), vec![send(b"data: 1\n\n"), Step::Hang]));
    let correlation = new_correlation();
    let mut response = f.chat(true, &correlation).await;
    assert_eq!(response.next_chunk().await.unwrap().unwrap(), "data: 1\n\n");
    response.disconnect();
    let result = f.result_event(&correlation).await;
    assert_eq!(result["metadata"]["end"], "client_closed");
    assert_eq!(result["metadata"]["response_bytes"], 9);
    // Steward let go of the upstream too.
    wait_until(|| f.upstream.abandoned() == 1).await;
}

#[tokio::test]
async fn usage_is_recorded_for_an_openai_stream() {
    let f = Fwd::start(&[]).await;
    let events = [
        "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7,\"total_tokens\":18}}\n\n",
        "data: [DONE]\n\n",
    ];
    f.upstream.queue(Reply::chunked(
        200,
        &sse_headers(),
        events.iter().map(|e| send(e.as_bytes())).collect(),
    ));
    let correlation = new_correlation();
    let mut response = f.chat(true, &correlation).await;
    let (body, _) = response.rest().await;
    assert_eq!(String::from_utf8(body).unwrap(), events.concat());
    let result = f.result_event(&correlation).await;
    assert_eq!(result["metadata"]["usage"], json!({"input_tokens": 11, "output_tokens": 7}));
}

#[tokio::test]
async fn an_upstream_error_status_passes_through_unchanged() {
    let f = Fwd::start(&[]).await;
    let answer = br#"{"error":{"message":"boom","type":"server_error"}}"#;
    f.upstream.queue(Reply::full(
        500,
        &[("content-type", "application/json"), ("x-request-id", "r-500")],
        answer,
    ));
    let correlation = new_correlation();
    let mut response = f.chat(false, &correlation).await;
    assert_eq!(response.status, 500);
    assert!(response.header("steward-error").is_empty());
    assert_eq!(response.header("x-request-id"), "r-500");
    let (body, _) = response.rest().await;
    assert_eq!(body, answer);
    let result = f.result_event(&correlation).await;
    assert_eq!(result["upstream_status_code"], 500);
    assert_eq!(result["metadata"]["end"], "complete");
}

#[tokio::test]
async fn an_answer_steward_cannot_pass_on_is_a_502_of_its_own() {
    let f = Fwd::start(&[]).await;
    let cases: [(Reply, &str); 2] = [
        (Reply::full(302, &[("location", "https://elsewhere.test/")], b""), "redirect_denied"),
        (
            Reply::full(
                200,
                &[("content-type", "application/json"), ("content-encoding", "gzip")],
                b"\x1f\x8b",
            ),
            "upstream_encoding_not_supported",
        ),
    ];
    for (reply, code) in cases {
        f.upstream.queue(reply);
        let correlation = new_correlation();
        let response = f.chat(false, &correlation).await;
        response_json(response, 502, code, &correlation).await;
        let result = f.result_event(&correlation).await;
        assert_eq!(result["reason_code"], code, "{result}");
        assert_eq!(result["metadata"]["mode"], "forward");
    }
}

#[tokio::test]
async fn a_dpop_bound_session_works_with_the_forward_htu() {
    let f = Fwd::start(&[]).await;
    let key = DpopKey::generate(DpopAlg::Es256).unwrap();
    let (token, _) = bound_session(&f.server, &f.workload, &key).await;
    let path = f.path("/v1/items/a%2Fb?q=1");
    // htu: this URL without its query.
    let without_query = f.path("/v1/items/a%2Fb");
    let authorization = format!("DPoP {token}");
    let call = |proof: String, correlation: String| {
        let headers = vec![
            ("authorization".to_owned(), authorization.clone()),
            ("dpop".to_owned(), proof),
            ("x-correlation-id".to_owned(), correlation),
        ];
        get_with(&f, path.clone(), headers)
    };
    let good = dpop_proof(&f.server, &key, "GET", &without_query, Some(&token));
    let mut response = call(good, new_correlation()).await;
    assert_eq!(response.status, 200);
    let _ = response.rest().await;
    assert_eq!(f.upstream.last().target, "/v1/items/a%2Fb?q=1");

    // A proof for another upstream path is refused, in the forward shape, with the DPoP challenge.
    let other = f.path("/v1/items/other");
    let wrong = dpop_proof(&f.server, &key, "GET", &other, Some(&token));
    let correlation = new_correlation();
    let response = call(wrong, correlation.clone()).await;
    assert!(response.header("www-authenticate").starts_with("DPoP error=\"invalid_dpop_proof\""));
    response_json(response, 401, "dpop_htu_mismatch", &correlation).await;
    assert_eq!(f.upstream.count(), 1);
}

#[tokio::test]
async fn json_rpc_calls_are_audited_with_their_method_and_tool() {
    let f = Fwd::start(&[]).await;
    let body = br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search_issues","arguments":{"q":"bug"}}}"#;
    f.upstream.queue(Reply::full(
        200,
        &[("content-type", "application/json")],
        br#"{"jsonrpc":"2.0","id":3,"result":{}}"#,
    ));
    let correlation = new_correlation();
    let headers = [("content-type", "application/json"), ("accept", "application/json, text/event-stream")];
    let mut response = f.call(Method::POST, "/mcp", &headers, body, &correlation).await;
    assert_eq!(response.status, 200);
    let _ = response.rest().await;
    let events = f.events(&correlation).await;
    let execute = events.iter().find(|e| e["event_type"] == "execute").unwrap();
    assert_eq!(execute["metadata"]["jsonrpc_method"], "tools/call");
    assert_eq!(execute["metadata"]["jsonrpc_tool_name"], "search_issues");
    assert!(!execute.to_string().contains("\"bug\""), "arguments are not recorded: {execute}");
}

/// A GET of `path` with exactly these headers.
async fn get_with(f: &Fwd, path: String, headers: Vec<(String, String)>) -> Streaming {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    open(&f.server, &f.workload, Method::GET, &path, &headers, Full::default()).await
}

async fn wait_until(condition: impl Fn() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met in time");
}
