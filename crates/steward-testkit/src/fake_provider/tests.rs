//! The fake driven directly over real TLS: auth, JSON and SSE framings, the record, the gate, the split.

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::http_client::{self, TlsOptions};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

const OPENAI_KEY: &str = "sk-fake-openai-0123456789abcdef";
const ANTHROPIC_KEY: &str = "sk-ant-fake-0123456789abcdef";

fn tls(fake: &FakeProvider, host: &str) -> TlsOptions {
    TlsOptions { ca_pem: fake.ca_pem.clone(), server_name: host.into(), client: None }
}

async fn openai_post(fake: &FakeProvider, path: &str, body: Value) -> http_client::TestResponse {
    let auth = format!("Bearer {OPENAI_KEY}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    http_client::request(
        fake.addr,
        Some(&tls(fake, "api.openai.com")),
        Method::POST,
        path,
        &headers,
        body.to_string(),
    )
    .await
    .expect("request")
}

async fn anthropic_post(fake: &FakeProvider, path: &str, body: Value) -> http_client::TestResponse {
    let headers = [
        ("x-api-key", ANTHROPIC_KEY),
        ("anthropic-version", "2023-06-01"),
        ("content-type", "application/json"),
    ];
    let options = tls(fake, "api.anthropic.com");
    http_client::request(fake.addr, Some(&options), Method::POST, path, &headers, body.to_string())
        .await
        .expect("request")
}

/// `(event name, data)` of each SSE event; panics on a malformed frame.
fn parse_sse(body: &[u8]) -> Vec<(Option<String>, String)> {
    let text = std::str::from_utf8(body).expect("utf-8");
    assert!(text.ends_with("\n\n"), "a stream ends with a blank line: {text:?}");
    text.trim_end_matches("\n\n")
        .split("\n\n")
        .map(|frame| {
            let mut name = None;
            let mut data = None;
            for line in frame.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    name = Some(value.to_owned());
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data = Some(value.to_owned());
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            (name, data.expect("every event has data"))
        })
        .collect()
}

async fn started() -> FakeProvider {
    FakeProvider::start(OPENAI_KEY, ANTHROPIC_KEY).await.expect("start the fake")
}

#[tokio::test]
async fn chat_json_answer_and_the_record() {
    let fake = started().await;
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let response = openai_post(&fake, "/v1/chat/completions?trace=1", body.clone()).await;
    assert_eq!(response.status, 200);
    assert!(response.headers["x-request-id"].to_str().unwrap().starts_with("req_"));
    assert!(response.headers.contains_key("openai-processing-ms"));
    assert!(response.headers.contains_key("x-ratelimit-remaining-requests"));
    let answer = response.json();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["choices"][0]["message"]["content"], NORMAL_TEXT);
    assert_eq!(answer["usage"]["prompt_tokens"], INPUT_TOKENS);
    assert_eq!(answer["usage"]["completion_tokens"], OUTPUT_TOKENS);

    let record = fake.requests();
    assert_eq!(record.len(), 1);
    assert_eq!(record[0].method, "POST");
    assert_eq!(record[0].target, "/v1/chat/completions?trace=1");
    assert_eq!(record[0].query("trace"), Some("1"));
    assert_eq!(record[0].header("authorization"), Some(format!("Bearer {OPENAI_KEY}").as_str()));
    assert_eq!(record[0].header("host"), Some("api.openai.com"));
    assert_eq!(serde_json::from_slice::<Value>(&record[0].body).unwrap(), body);
    assert_eq!(fake.requests_to("/v1/chat/completions").len(), 1);
}

#[tokio::test]
async fn wrong_or_missing_credentials_get_each_providers_401() {
    let fake = started().await;
    let body = json!({"model": "gpt-4o-mini", "messages": []}).to_string();
    let options = tls(&fake, "api.openai.com");
    let wrong = [("authorization", "Bearer sk-wrong")];
    let response = http_client::request(
        fake.addr,
        Some(&options),
        Method::POST,
        "/v1/chat/completions",
        &wrong,
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(response.status, 401);
    assert_eq!(response.json()["error"]["code"], "invalid_api_key");
    assert_eq!(response.json()["error"]["type"], "invalid_request_error");

    let options = tls(&fake, "api.anthropic.com");
    let wrong = [("x-api-key", "sk-ant-wrong"), ("anthropic-version", "2023-06-01")];
    let response =
        http_client::request(fake.addr, Some(&options), Method::POST, "/v1/messages", &wrong, body.clone())
            .await
            .unwrap();
    assert_eq!(response.status, 401);
    assert_eq!(response.json()["type"], "error");
    assert_eq!(response.json()["error"]["type"], "authentication_error");
    assert!(response.headers["request-id"].to_str().unwrap().starts_with("req_"));

    let bearer = format!("Bearer {ANTHROPIC_KEY}");
    let as_bearer = [("authorization", bearer.as_str()), ("anthropic-version", "2023-06-01")];
    let response = http_client::request(
        fake.addr,
        Some(&options),
        Method::POST,
        "/v1/messages",
        &as_bearer,
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(response.status, 200, "a bearer key is accepted too: {:?}", response.json());
    let no_version = [("x-api-key", ANTHROPIC_KEY)];
    let response =
        http_client::request(fake.addr, Some(&options), Method::POST, "/v1/messages", &no_version, body)
            .await
            .unwrap();
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["error"]["type"], "invalid_request_error");
    assert_eq!(fake.count(), 4, "refused requests are recorded too");
}

#[tokio::test]
async fn chat_stream_is_data_only_sse_with_usage_and_done() {
    let fake = started().await;
    let body = json!({"model": "gpt-4o-mini", "messages": [], "stream": true,
        "stream_options": {"include_usage": true}});
    let response = openai_post(&fake, "/v1/chat/completions", body).await;
    assert_eq!(response.status, 200);
    assert!(response.headers["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let events = parse_sse(&response.body);
    assert!(events.iter().all(|(name, _)| name.is_none()));
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks: Vec<Value> =
        events[..events.len() - 1].iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0).and_then(|choice| choice["delta"]["content"].as_str()))
        .collect();
    assert_eq!(text, NORMAL_TEXT);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], OUTPUT_TOKENS);
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c["usage"].is_null()));

    // Without include_usage there is no usage chunk at all.
    let body = json!({"model": "gpt-4o-mini", "messages": [], "stream": true});
    let events = parse_sse(&openai_post(&fake, "/v1/chat/completions", body).await.body);
    assert!(events.iter().all(|(_, data)| !data.contains("\"usage\"")));
}

#[tokio::test]
async fn responses_json_and_typed_sse_events() {
    let fake = started().await;
    let answer =
        openai_post(&fake, "/v1/responses", json!({"model": "gpt-4o-mini", "input": "hi"})).await.json();
    assert_eq!(answer["object"], "response");
    assert_eq!(answer["output"][0]["content"][0]["text"], NORMAL_TEXT);
    assert_eq!(answer["usage"]["input_tokens"], INPUT_TOKENS);

    let body = json!({"model": "gpt-4o-mini", "input": "hi", "stream": true});
    let events = parse_sse(&openai_post(&fake, "/v1/responses", body).await.body);
    let mut text = String::new();
    for (index, (name, data)) in events.iter().enumerate() {
        let data: Value = serde_json::from_str(data).unwrap();
        assert_eq!(Some(data["type"].as_str().unwrap()), name.as_deref(), "event name = data.type");
        assert_eq!(data["sequence_number"], index);
        if let Some(delta) = data["delta"].as_str() {
            text.push_str(delta);
        }
    }
    assert_eq!(text, NORMAL_TEXT);
    assert_eq!(events[0].0.as_deref(), Some("response.created"));
    let (name, last) = events.last().unwrap();
    assert_eq!(name.as_deref(), Some("response.completed"));
    let last: Value = serde_json::from_str(last).unwrap();
    assert_eq!(last["response"]["usage"]["output_tokens"], OUTPUT_TOKENS);
}

#[tokio::test]
async fn anthropic_messages_stream_count_tokens_and_models() {
    let fake = started().await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [], "stream": true});
    let response = anthropic_post(&fake, "/v1/messages", body).await;
    assert_eq!(response.status, 200);
    let events = parse_sse(&response.body);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let data: Vec<Value> = events.iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    assert!(data.iter().zip(&names).all(|(d, name)| d["type"] == *name));
    assert_eq!(data[0]["message"]["usage"]["input_tokens"], INPUT_TOKENS);
    assert_eq!(data[9]["usage"]["output_tokens"], OUTPUT_TOKENS);
    let text: String = data.iter().filter_map(|d| d["delta"]["text"].as_str()).collect();
    assert_eq!(text, NORMAL_TEXT);

    let count = anthropic_post(
        &fake,
        "/v1/messages/count_tokens",
        json!({"model": "claude-sonnet-4-5", "messages": []}),
    )
    .await;
    assert_eq!(count.json(), json!({"input_tokens": INPUT_TOKENS}));

    let headers = [("x-api-key", ANTHROPIC_KEY), ("anthropic-version", "2023-06-01")];
    let options = tls(&fake, "api.anthropic.com");
    let models = http_client::request(fake.addr, Some(&options), Method::GET, "/v1/models", &headers, "")
        .await
        .unwrap();
    assert_eq!(models.json()["data"][0]["type"], "model");
}

#[tokio::test]
async fn embeddings_as_floats_or_base64_and_openai_models() {
    let fake = started().await;
    let floats =
        openai_post(&fake, "/v1/embeddings", json!({"model": "m", "input": ["a", "b"]})).await.json();
    assert_eq!(floats["data"].as_array().unwrap().len(), 2);
    assert_eq!(floats["data"][1]["embedding"][0].as_f64().unwrap() as f32, 0.02);
    let encoded = openai_post(
        &fake,
        "/v1/embeddings",
        json!({"model": "m", "input": "a", "encoding_format": "base64"}),
    )
    .await
    .json();
    let bytes = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        encoded["data"][0]["embedding"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(bytes.len(), 8 * 4);
    assert_eq!(f32::from_le_bytes(bytes[..4].try_into().unwrap()), 0.01);

    let auth = format!("Bearer {OPENAI_KEY}");
    let options = tls(&fake, "api.openai.com");
    let models = http_client::request(
        fake.addr,
        Some(&options),
        Method::GET,
        "/v1/models",
        &[("authorization", &auth)],
        "",
    )
    .await
    .unwrap();
    assert_eq!(models.json()["object"], "list");
    assert_eq!(models.json()["data"][0]["object"], "model");
}

#[tokio::test]
async fn echo_and_error_scenarios() {
    let fake = started().await;
    let answer =
        openai_post(&fake, "/v1/chat/completions", json!({"model": models::ECHO, "messages": []})).await;
    assert_eq!(answer.json()["choices"][0]["message"]["content"], format!("Your key is {OPENAI_KEY}."));
    let answer = anthropic_post(&fake, "/v1/messages", json!({"model": models::ECHO, "messages": []})).await;
    assert_eq!(answer.json()["content"][0]["text"], format!("Your key is {ANTHROPIC_KEY}."));

    let limited =
        openai_post(&fake, "/v1/chat/completions", json!({"model": models::error(429), "messages": []}))
            .await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.headers["retry-after"], "1");
    assert_eq!(limited.json()["error"]["code"], "rate_limit_exceeded");
    let failed =
        anthropic_post(&fake, "/v1/messages", json!({"model": models::error(500), "messages": []})).await;
    assert_eq!(failed.status, 500);
    assert_eq!(failed.json()["error"]["type"], "api_error");
}

/// Sends `body` to `path` on a raw TLS connection and returns the stream, positioned after nothing.
async fn raw_post(
    fake: &FakeProvider,
    path: &str,
    body: &Value,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut stream = http_client::tls_stream(fake.addr, &tls(fake, "api.openai.com")).await.unwrap();
    let body = body.to_string();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: api.openai.com\r\nauthorization: Bearer {OPENAI_KEY}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Reads into `buf` until it contains `needle`.
async fn read_until(stream: &mut (impl AsyncReadExt + Unpin), buf: &mut Vec<u8>, needle: &str) {
    while find(buf, needle.as_bytes()).is_none() {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the stream ended before {needle:?}: {}", String::from_utf8_lossy(buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The payloads of the HTTP/1.1 chunks of a complete chunked response.
fn chunks(raw: &[u8]) -> Vec<Vec<u8>> {
    let start = find(raw, b"\r\n\r\n").unwrap() + 4;
    let mut rest = &raw[start..];
    let mut out = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push(rest[line_end + 2..line_end + 2 + size].to_vec());
        rest = &rest[line_end + 2 + size + 2..];
    }
}

#[tokio::test]
async fn gated_stream_sends_its_first_part_and_holds_the_rest_until_released() {
    let fake = started().await;
    let body = json!({"model": models::GATED, "messages": [], "stream": true});
    let mut stream = raw_post(&fake, "/v1/chat/completions", &body).await;
    let mut raw = Vec::new();
    read_until(&mut stream, &mut raw, "\"before\"").await;
    fake.wait_gated(1).await;
    // Nothing more is produced while the gate is closed: the read stays pending.
    let mut more = [0u8; 64];
    assert!(tokio::time::timeout(Duration::from_millis(300), stream.read(&mut more)).await.is_err());
    assert!(find(&raw, b"[DONE]").is_none());
    fake.release_gate();
    stream.read_to_end(&mut raw).await.unwrap();
    let payloads = chunks(&raw);
    assert!(payloads.iter().all(|p| p.starts_with(b"data: ") && p.ends_with(b"\n\n")), "one event per chunk");
    assert_eq!(payloads.last().unwrap(), b"data: [DONE]\n\n");
    assert!(find(&raw, b"\" after\"").is_some());
}

#[tokio::test]
async fn split_scenario_cuts_the_key_across_two_chunks() {
    let fake = started().await;
    let body = json!({"model": models::SPLIT, "messages": [], "stream": true});
    let mut stream = raw_post(&fake, "/v1/chat/completions", &body).await;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let payloads = chunks(&raw);
    let half = OPENAI_KEY.len() / 2;
    let first = payloads
        .iter()
        .position(|p| p.ends_with(&OPENAI_KEY.as_bytes()[..half]))
        .expect("a chunk ends mid-key");
    assert!(payloads[first + 1].starts_with(&OPENAI_KEY.as_bytes()[half..]));
    assert!(find(&raw, OPENAI_KEY.as_bytes()).is_none(), "the key is never whole in one chunk");
}

#[tokio::test]
async fn slow_scenario_pauses_between_two_events() {
    let fake = started().await;
    let body = json!({"model": models::slow(400), "messages": [], "stream": true});
    let mut stream = raw_post(&fake, "/v1/chat/completions", &body).await;
    let mut raw = Vec::new();
    read_until(&mut stream, &mut raw, "\"before\"").await;
    let started = tokio::time::Instant::now();
    read_until(&mut stream, &mut raw, "\" after\"").await;
    assert!(started.elapsed() >= Duration::from_millis(300), "the second part came after the pause");
}

/// A client that offers only HTTP/2 (as an egress client with ALPN h2 would) gets the same stream,
/// frame by frame, and the gate holds it there too.
#[tokio::test]
async fn http2_stream_is_served_and_gated() {
    #![allow(clippy::disallowed_methods)] // the test client connects to the fake on loopback
    let fake = started().await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(fake.ca_pem.as_bytes()).unwrap()).unwrap();
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(fake.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("api.openai.com").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
    tokio::spawn(connection);
    let body = json!({"model": models::GATED, "messages": [], "stream": true}).to_string();
    let request = hyper::Request::post("https://api.openai.com/v1/chat/completions")
        .header("authorization", format!("Bearer {OPENAI_KEY}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut seen = Vec::new();
    while find(&seen, b"\"before\"").is_none() {
        let frame = body.frame().await.expect("a frame").unwrap();
        seen.extend_from_slice(&frame.into_data().unwrap());
    }
    fake.wait_gated(1).await;
    fake.release_gate();
    seen.extend_from_slice(&body.collect().await.unwrap().to_bytes());
    assert!(seen.ends_with(b"data: [DONE]\n\n"));
    assert_eq!(
        fake.requests()[0].header("host"),
        Some("api.openai.com"),
        "the :authority is recorded as host"
    );
}
