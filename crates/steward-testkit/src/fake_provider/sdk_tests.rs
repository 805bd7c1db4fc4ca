//! The official SDKs (`tests/clients/`) pointed straight at the fake: proves the fake's wire formats
//! are what the SDKs parse, and the client scripts print what the gateway tests will read.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::clients::{self, ScriptRun};

const OPENAI_KEY: &str = "sk-fake-openai-0123456789abcdef";
const ANTHROPIC_KEY: &str = "sk-ant-fake-0123456789abcdef";
const LIMIT: Duration = Duration::from_secs(60);

async fn started() -> FakeProvider {
    FakeProvider::start(OPENAI_KEY, ANTHROPIC_KEY).await.expect("start the fake")
}

/// Runs `script` with the provider variables of a real agent pointed at the fake.
async fn run(
    fake: &FakeProvider,
    interpreter: &Path,
    script: &str,
    scenario: &str,
    extra: &[(&str, &str)],
) -> ScriptRun {
    let (openai_url, anthropic_url) = (fake.openai_base_url(), fake.anthropic_base_url());
    let ca = fake.ca_file().to_str().expect("utf-8 path").to_owned();
    let mut env = vec![
        ("OPENAI_BASE_URL", openai_url.as_str()),
        ("OPENAI_API_KEY", OPENAI_KEY),
        ("ANTHROPIC_BASE_URL", anthropic_url.as_str()),
        ("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
        ("SSL_CERT_FILE", ca.as_str()),
        ("NODE_EXTRA_CA_CERTS", ca.as_str()),
        ("SCENARIO", scenario),
    ];
    env.extend_from_slice(extra);
    let result = clients::run_script(interpreter, script, &env, LIMIT).await.expect("run the script");
    assert!(
        !result.json.is_null(),
        "{script} {scenario} printed no JSON: {}\n{}",
        result.stdout,
        result.stderr
    );
    result
}

fn ok(result: &ScriptRun) -> &Value {
    assert!(result.success && result.json["ok"] == true, "{}\n{}", result.stdout, result.stderr);
    &result.json
}

#[tokio::test]
async fn python_openai_chat_plain_streamed_echoed_and_refused() {
    let fake = started().await;
    let python = clients::python().expect("python clients");
    let chat = run(&fake, &python, "openai_agent.py", "chat", &[]).await;
    let chat = ok(&chat);
    assert_eq!(chat["content"], NORMAL_TEXT);
    assert_eq!(chat["usage"], json!({"prompt_tokens": 13, "completion_tokens": 7, "total_tokens": 20}));
    assert!(chat["request_id"].as_str().unwrap().starts_with("req_"));
    assert!(chat["id"].as_str().unwrap().starts_with("chatcmpl-"));

    let stream = run(&fake, &python, "openai_agent.py", "chat_stream", &[]).await;
    let stream = ok(&stream);
    assert_eq!(stream["content"], NORMAL_TEXT);
    assert_eq!(stream["finish_reason"], "stop");
    assert_eq!(stream["usage"]["completion_tokens"], OUTPUT_TOKENS);
    let sent: Value = serde_json::from_slice(&fake.requests().last().unwrap().body).unwrap();
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true);

    let split = run(&fake, &python, "openai_agent.py", "chat_stream", &[("MODEL", models::SPLIT)]).await;
    assert_eq!(ok(&split)["content"], format!("Your key is {OPENAI_KEY}."));

    let limited = run(&fake, &python, "openai_agent.py", "chat", &[("MODEL", &models::error(429))]).await;
    let error = &limited.json["error"];
    assert_eq!(limited.json["ok"], false);
    assert_eq!((error["class"].as_str(), error["status"].as_u64()), (Some("RateLimitError"), Some(429)));
    assert_eq!(error["code"], "rate_limit_exceeded");
    assert_eq!(error["retry_after"], "1");

    let wrong =
        run(&fake, &python, "openai_agent.py", "chat", &[("OPENAI_API_KEY", "sk-wrong-key-123")]).await;
    assert_eq!(wrong.json["error"]["class"], "AuthenticationError");
    assert_eq!(wrong.json["error"]["code"], "invalid_api_key");
}

#[tokio::test]
async fn python_openai_responses_embeddings_and_models() {
    let fake = started().await;
    let python = clients::python().expect("python clients");
    let plain = run(&fake, &python, "openai_agent.py", "responses", &[]).await;
    let plain = ok(&plain);
    assert_eq!(plain["content"], NORMAL_TEXT);
    assert_eq!(plain["usage"], json!({"input_tokens": 13, "output_tokens": 7, "total_tokens": 20}));

    let stream = run(&fake, &python, "openai_agent.py", "responses_stream", &[]).await;
    let stream = ok(&stream);
    assert_eq!(stream["content"], NORMAL_TEXT);
    assert_eq!(stream["final_text"], NORMAL_TEXT);
    assert_eq!(stream["status"], "completed");
    assert_eq!(stream["events"][0], "response.created");
    assert_eq!(stream["usage"]["output_tokens"], OUTPUT_TOKENS);

    let embeddings = run(&fake, &python, "openai_agent.py", "embeddings", &[]).await;
    let embeddings = ok(&embeddings);
    assert_eq!((embeddings["count"].as_u64(), embeddings["dimensions"].as_u64()), (Some(2), Some(8)));
    assert_eq!(embeddings["first"][0], 0.01);
    let sent: Value = serde_json::from_slice(&fake.requests().last().unwrap().body).unwrap();
    assert_eq!(sent["encoding_format"], "base64", "the SDK's default, decoded by the SDK");

    let models = run(&fake, &python, "openai_agent.py", "models", &[]).await;
    assert_eq!(ok(&models)["ids"], json!(["gpt-4o-mini", "text-embedding-3-small"]));
}

#[tokio::test]
async fn python_anthropic_messages_stream_count_tokens_and_errors() {
    let fake = started().await;
    let python = clients::python().expect("python clients");
    let plain = run(&fake, &python, "anthropic_agent.py", "messages", &[]).await;
    let plain = ok(&plain);
    assert_eq!(plain["content"], NORMAL_TEXT);
    assert_eq!(plain["usage"], json!({"input_tokens": 13, "output_tokens": 7}));
    assert!(plain["request_id"].as_str().unwrap().starts_with("req_"));
    let sent = fake.requests().last().unwrap().clone();
    // Anthropic's Python SDK 2.x sends the API key as a bearer token.
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {ANTHROPIC_KEY}").as_str()));
    assert!(sent.header("anthropic-version").is_some());

    let stream =
        run(&fake, &python, "anthropic_agent.py", "messages_stream", &[("MODEL", models::ECHO)]).await;
    let stream = ok(&stream);
    assert_eq!(stream["content"], format!("Your key is {ANTHROPIC_KEY}."));
    assert_eq!(stream["usage"], json!({"input_tokens": 13, "output_tokens": 7}));
    assert_eq!(stream["events"][0], "message_start");
    assert_eq!(stream["stop_reason"], "end_turn");

    let count = run(&fake, &python, "anthropic_agent.py", "count_tokens", &[]).await;
    assert_eq!(ok(&count)["input_tokens"], INPUT_TOKENS);
    let models_run = run(&fake, &python, "anthropic_agent.py", "models", &[]).await;
    assert_eq!(ok(&models_run)["ids"][0], "claude-sonnet-4-5");

    let failed =
        run(&fake, &python, "anthropic_agent.py", "messages", &[("MODEL", &models::error(500))]).await;
    let error = &failed.json["error"];
    assert_eq!((error["class"].as_str(), error["status"].as_u64()), (Some("InternalServerError"), Some(500)));
    assert_eq!(error["type"], "api_error");
    let wrong =
        run(&fake, &python, "anthropic_agent.py", "messages", &[("ANTHROPIC_API_KEY", "sk-ant-wrong")]).await;
    assert_eq!(wrong.json["error"]["class"], "AuthenticationError");
}

#[tokio::test]
async fn node_openai_chat_plain_streamed_and_refused() {
    let fake = started().await;
    let node = clients::node().expect("node clients");
    let chat = run(&fake, &node, "openai_agent.mjs", "chat", &[]).await;
    let chat = ok(&chat);
    assert_eq!(chat["content"], NORMAL_TEXT);
    assert_eq!(chat["usage"]["total_tokens"], INPUT_TOKENS + OUTPUT_TOKENS);
    assert!(chat["request_id"].as_str().unwrap().starts_with("req_"));

    let stream = run(&fake, &node, "openai_agent.mjs", "chat_stream", &[("MODEL", models::ECHO)]).await;
    let stream = ok(&stream);
    assert_eq!(stream["content"], format!("Your key is {OPENAI_KEY}."));
    assert_eq!(stream["usage"]["prompt_tokens"], INPUT_TOKENS);

    let limited = run(&fake, &node, "openai_agent.mjs", "chat", &[("MODEL", &models::error(429))]).await;
    let error = &limited.json["error"];
    assert_eq!((error["class"].as_str(), error["status"].as_u64()), (Some("RateLimitError"), Some(429)));
    assert_eq!(error["retry_after"], "1");
}

/// The SDK is still waiting on a gated stream (its script has not finished) until the test releases it.
#[tokio::test]
async fn python_stream_waits_on_the_gate() {
    let fake = Arc::new(started().await);
    let python = clients::python().expect("python clients");
    let running = {
        let fake = Arc::clone(&fake);
        tokio::spawn(async move {
            run(&fake, &python, "anthropic_agent.py", "messages_stream", &[("MODEL", models::GATED)]).await
        })
    };
    tokio::time::timeout(LIMIT, fake.wait_gated(1)).await.expect("the stream reached the gate");
    assert!(!running.is_finished());
    fake.release_gate();
    let result = running.await.unwrap();
    assert_eq!(ok(&result)["content"], GATED_TEXT);
}
