//! The official SDKs, unchanged, through `steward run` (`spec/gateway.md`, issue 14): a real
//! `steward serve`, integrations from the built-in `tpl_openai` / `tpl_anthropic`, and the SDK scripts
//! of `tests/clients/` run as the COMMAND of `steward run` with nothing in their environment but
//! `SCENARIO` / `MODEL` and what `steward run` adds (base URL and API key). The provider is
//! [`FakeProvider`] on port 443 of a loopback address of its own, which `egress.static_hosts` gives
//! the names `api.openai.com` and `api.anthropic.com`.
//!
//! Each test asserts what the provider received (the real key, injected by Steward; no gateway or
//! session token, no DPoP proof, no `steward-*` header), what the SDK returned, and the audit trail
//! (`execute` / `execute_result` with the forward-mode metadata) read through the admin API.

#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};
use steward_testkit::clients;
use steward_testkit::fake_provider::{
    FakeProvider, GATED_TEXT, INPUT_TOKENS, NORMAL_TEXT, OUTPUT_TOKENS, models,
};
use steward_testkit::upstream::ReceivedRequest;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

use crate::common::*;

const OPENAI_KEY: &str = "sk-proj-sdk-openai-0123456789abcdef";
const ANTHROPIC_KEY: &str = "sk-ant-sdk-anthropic-0123456789abcdef";
/// How long one SDK script may take (Python starts in ~4 s on a loaded machine).
const SCRIPT_LIMIT: Duration = Duration::from_secs(120);
const REDACTED: &str = "[REDACTED]";

/// The groups of the built-in templates each fixture allows; `anthropic_models` is left out (a
/// refusal), `anthropic_count_tokens` needs an approval (an `approval_required` rule).
const OPENAI_GROUPS: [(&str, &str); 4] = [
    ("openai_chat_completions", "POST"),
    ("openai_responses", "POST"),
    ("openai_embeddings", "POST"),
    ("openai_models_list", "GET"),
];

/// A model name a deny rule (constrained to it) refuses on chat completions.
const DENIED_MODEL: &str = "gpt-denied-by-policy";

struct Fixture {
    temp: tempfile::TempDir,
    server: Child,
    ports: Ports,
    admin_token: String,
    tenant_id: String,
    fake: Arc<FakeProvider>,
    identity: PathBuf,
}

/// The fake provider on `127.a.b.c:443`, a loopback address picked at random (another test may hold
/// one): the built-in templates allow port 443 only.
async fn fake_on_port_443() -> FakeProvider {
    for _ in 0..50 {
        let bytes = uuid::Uuid::new_v4().into_bytes();
        let ip = Ipv4Addr::new(127, bytes[0].max(1), bytes[1], bytes[2].clamp(2, 254));
        match FakeProvider::start_on(SocketAddr::from((ip, 443)), OPENAI_KEY, ANTHROPIC_KEY).await {
            Ok(fake) => return fake,
            Err(error)
                if error
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::AddrInUse) => {}
            Err(error) => panic!(
                "the fake provider cannot listen on {ip}:443 (the tests bind port 443 on loopback: run them \
                 as root or with CAP_NET_BIND_SERVICE): {error:#}"
            ),
        }
    }
    panic!("no free loopback address for port 443 after 50 tries");
}

impl Fixture {
    /// A server (with `extra_env` on top of the egress settings), the two integrations, policies and
    /// an enrolled workload.
    async fn start(extra_env: &[(&str, &str)]) -> Fixture {
        install_crypto_provider();
        let fake = Arc::new(fake_on_port_443().await);
        let temp = tempfile::tempdir().unwrap();
        let data = temp.path().join("data");
        let output = run(steward().args(["init", "--data-dir"]).arg(&data));
        assert!(output.status.success(), "{}", stderr(&output));
        let ports = Ports::new();
        let broker_url = format!("https://localhost:{}", ports.data);
        write_ports(&data, &ports, Some(&broker_url));
        let ip = fake.addr.ip().to_string();
        let mut serve = steward();
        serve
            .args(["serve", "--config"])
            .arg(data.join("steward.toml"))
            .env(
                "STEWARD_EGRESS__STATIC_HOSTS",
                format!(r#"{{"api.openai.com"=["{ip}"],"api.anthropic.com"=["{ip}"]}}"#),
            )
            .env("STEWARD_EGRESS__ALLOW_CIDRS", r#"["127.0.0.0/8"]"#)
            .env("STEWARD_EGRESS__EXTRA_CA_FILES", format!("[{:?}]", fake.ca_file().display().to_string()))
            .envs(extra_env.iter().copied());
        let server = spawn_serving(serve, &ports).await;
        let admin_token = std::fs::read_to_string(data.join("admin-token")).unwrap().trim().to_owned();
        let mut f = Fixture {
            temp,
            server,
            ports,
            admin_token,
            tenant_id: String::new(),
            fake,
            identity: PathBuf::new(),
        };
        let tenant = f.admin(Method::POST, "/v1/tenants", Some(json!({"name": "acme"}))).await;
        f.tenant_id = tenant["tenant_id"].as_str().unwrap().to_owned();
        let openai = f.integration("openai", "openai", "tpl_openai", OPENAI_KEY).await;
        for (group, method) in OPENAI_GROUPS {
            f.rule("allow", &openai, group, method, "api.openai.com", None).await;
        }
        let model_is_denied = json!({"body_json": [{"pointer": "/model", "allowed_values": [DENIED_MODEL]}]});
        f.rule("deny", &openai, "openai_chat_completions", "POST", "api.openai.com", Some(model_is_denied))
            .await;
        let anthropic = f.integration("anthropic", "anthropic", "tpl_anthropic", ANTHROPIC_KEY).await;
        f.rule("allow", &anthropic, "anthropic_messages", "POST", "api.anthropic.com", None).await;
        f.rule("approval_required", &anthropic, "anthropic_count_tokens", "POST", "api.anthropic.com", None)
            .await;
        let tenant_id = f.tenant_id.clone();
        let workload = f
            .admin(
                Method::POST,
                &format!("/v1/tenants/{tenant_id}/workloads"),
                Some(json!({"name": "agent"})),
            )
            .await;
        let token = workload["enrollment_token"].as_str().unwrap();
        f.identity = enroll_identity(token, &broker_url, &data, f.temp.path().join("identity"));
        f
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        admin_api(&self.ports, &self.admin_token, method, path, body).await
    }

    /// An integration from a built-in template; its id.
    async fn integration(&self, name: &str, provider: &str, template: &str, key: &str) -> String {
        let body = json!({"name": name, "provider": provider, "template_id": template,
                          "secret": {"type": "api_key", "value": key}});
        let created = self
            .admin(Method::POST, &format!("/v1/tenants/{}/integrations", self.tenant_id), Some(body))
            .await;
        created["integration_id"].as_str().unwrap().to_owned()
    }

    async fn rule(
        &self,
        rule_type: &str,
        integration: &str,
        group: &str,
        method: &str,
        host: &str,
        constraints: Option<Value>,
    ) {
        let mut rule = json!({"rule_type": rule_type, "scope": {"tenant_id": self.tenant_id,
            "integration_id": integration, "action_group": group, "method": method, "host": host}});
        if let Some(constraints) = constraints {
            rule["constraints"] = constraints;
        }
        self.admin(Method::POST, "/v1/policies", Some(rule)).await;
    }

    /// Starts `steward run --identity DIR [run_args] -- INTERPRETER SCRIPT` (no SCRIPT when empty)
    /// with an empty environment plus `env`: the script gets only what `steward run` adds.
    fn spawn(&self, run_args: &[&str], interpreter: &Path, script: &str, env: &[(&str, &str)]) -> Sdk {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"));
        command
            .env_clear()
            .envs(env.iter().copied())
            .arg("run")
            .arg("--identity")
            .arg(&self.identity)
            .args(run_args)
            .arg("--")
            .arg(interpreter)
            .args((!script.is_empty()).then(|| clients::script(script)))
            .current_dir(clients::clients_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (line_tx, line_rx) = tokio::sync::mpsc::unbounded_channel();
        let stderr = child.stderr.take().unwrap();
        let collected = Arc::clone(&lines);
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                collected.lock().unwrap().push(line.clone());
                let _ = line_tx.send(line);
            }
        });
        Sdk { child, stderr: lines, lines: line_rx, what: format!("{script} {env:?}") }
    }

    /// Runs one SDK scenario to its end.
    async fn sdk(&self, interpreter: &Path, script: &str, scenario: &str, model: Option<&str>) -> Outcome {
        let mut env = vec![("SCENARIO", scenario)];
        env.extend(model.map(|m| ("MODEL", m)));
        self.spawn(&[], interpreter, script, &env).finish().await
    }

    /// The newest `count` (at least) audit events of `event_type` for `group`, newest first; waits
    /// for them (`execute_result` is written when the body has ended, maybe after the SDK is done).
    async fn events(&self, event_type: &str, group: &str, count: usize) -> Vec<Value> {
        let path = format!(
            "/v1/audit/events?tenant_id={}&event_type={event_type}&action_group={group}&limit=1000",
            self.tenant_id
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let page = self.admin(Method::GET, &path, None).await;
            let events = page["events"].as_array().unwrap().clone();
            if events.len() >= count {
                return events;
            }
            assert!(Instant::now() < deadline, "{count} {event_type} events of {group} expected: {page}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The `count`-th `execute_result` of `group` (the newest once `count` exist) and its `execute`
    /// event, checked for forward mode: `execute` is allowed with `mode: forward`; the result's
    /// metadata has `mode`, `end`, `stream`, `response_bytes`, `ttfb_ms`. Returns the result.
    async fn forward_result(&self, group: &str, count: usize, stream: bool, end: &str) -> Value {
        let results = self.events("execute_result", group, count).await;
        assert_eq!(results.len(), count, "one execute_result per call of {group}: {results:#?}");
        let result = results[0].clone();
        let metadata = &result["metadata"];
        assert_eq!(metadata["mode"], "forward", "{result}");
        assert_eq!(metadata["end"], end, "{result}");
        assert_eq!(metadata["stream"], stream, "{result}");
        assert!(metadata["response_bytes"].as_u64().unwrap() > 0, "{result}");
        assert!(metadata["ttfb_ms"].is_u64(), "{result}");
        let correlation_id = result["correlation_id"].as_str().unwrap();
        let path = format!(
            "/v1/audit/events?tenant_id={}&event_type=execute&correlation_id={correlation_id}",
            self.tenant_id
        );
        let execute = self.admin(Method::GET, &path, None).await;
        let execute = &execute["events"][0];
        assert_eq!(execute["decision"], "allowed", "{execute}");
        assert_eq!(execute["action_group"], group, "{execute}");
        assert_eq!(execute["metadata"]["mode"], "forward", "{execute}");
        result
    }

    fn stop(mut self) {
        assert_eq!(terminate(&mut self.server).code(), Some(0));
    }
}

/// A running `steward run -- SDK script`.
struct Sdk {
    child: tokio::process::Child,
    /// Every stderr line so far (the gateway's JSON log lines and the script's own).
    stderr: Arc<Mutex<Vec<String>>>,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    what: String,
}

/// How a script ended: `steward run`'s exit code (the script's), its one JSON line, its stderr.
#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    json: Value,
    stdout: String,
    stderr: String,
}

impl Outcome {
    /// The JSON of a successful run (exit 0, `"ok": true`).
    fn ok(&self) -> &Value {
        assert!(self.code == Some(0) && self.json["ok"] == true, "{self:#?}");
        &self.json
    }

    /// The `error` of an SDK error (exit 3, `"ok": false`).
    fn error(&self) -> &Value {
        assert!(self.code == Some(3) && self.json["ok"] == false, "{self:#?}");
        &self.json["error"]
    }
}

impl Sdk {
    /// The first stderr line containing `needle` (the script is still running).
    async fn wait_for_line(&mut self, needle: &str) -> String {
        let found = tokio::time::timeout(SCRIPT_LIMIT, async {
            while let Some(line) = self.lines.recv().await {
                if line.contains(needle) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!(
                "{}: no stderr line with {needle:?}:\n{}",
                self.what,
                self.stderr.lock().unwrap().join("\n")
            ),
        }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    async fn finish(mut self) -> Outcome {
        let mut stdout = String::new();
        let mut pipe = self.child.stdout.take().unwrap();
        let status = tokio::time::timeout(SCRIPT_LIMIT, async {
            pipe.read_to_string(&mut stdout).await.unwrap();
            self.child.wait().await.unwrap()
        })
        .await
        .unwrap_or_else(|_| panic!("{} did not finish within {SCRIPT_LIMIT:?}", self.what));
        // The stderr reader ends with the pipe; give it a moment to take the last lines.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let stderr = self.stderr.lock().unwrap().join("\n");
        Outcome {
            code: status.code(),
            json: serde_json::from_str(stdout.trim()).unwrap_or(Value::Null),
            stdout,
            stderr,
        }
    }
}

/// What the provider received carries the real key where the provider wants it and nothing of
/// Steward's: no gateway or session token (`stw_…`) in any header, no `dpop`, no `steward-*`.
fn assert_clean(request: &ReceivedRequest, provider: &str) {
    match provider {
        "openai" => {
            assert_eq!(request.header("authorization"), Some(format!("Bearer {OPENAI_KEY}").as_str()))
        }
        _ => {
            assert_eq!(request.header("x-api-key"), Some(ANTHROPIC_KEY), "{request:?}");
            assert!(request.header("authorization").is_none(), "{request:?}");
            assert!(request.header("anthropic-version").is_some(), "{request:?}");
        }
    }
    for (name, value) in &request.headers {
        assert!(!value.contains("stw_"), "a Steward token reached the provider in {name}: {request:?}");
        assert!(name != "dpop" && !name.starts_with("steward-"), "{name} reached the provider");
    }
}

/// The requests the provider received since `before` (its count then): exactly `n`.
fn received_since(fake: &FakeProvider, before: usize, n: usize) -> Vec<ReceivedRequest> {
    let requests = fake.requests();
    assert_eq!(requests.len(), before + n, "{:#?}", &requests[before.min(requests.len())..]);
    requests[before..].to_vec()
}

fn usage() -> Value {
    json!({"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_openai_sdk_through_steward_run() {
    let f = Fixture::start(&[]).await;
    let python = clients::python().unwrap();
    let py = "openai_agent.py";

    // Chat, not streamed.
    let chat = f.sdk(&python, py, "chat", None).await;
    let chat = chat.ok();
    assert_eq!(chat["content"], NORMAL_TEXT);
    assert_eq!(chat["usage"], json!({"prompt_tokens": 13, "completion_tokens": 7, "total_tokens": 20}));
    assert!(chat["request_id"].as_str().unwrap().starts_with("req_"), "x-request-id reaches the SDK");
    let sent = received_since(&f.fake, 0, 1);
    assert_clean(&sent[0], "openai");
    assert_eq!(sent[0].target, "/v1/chat/completions");
    assert_eq!(sent[0].header("x-stainless-lang"), Some("python"), "the SDK's own headers pass");
    assert_eq!(sent[0].header("host"), Some("api.openai.com"));
    let result = f.forward_result("openai_chat_completions", 1, false, "complete").await;
    assert_eq!(result["metadata"]["usage"], usage());
    assert_eq!(result["upstream_status_code"], 200);

    // Chat, streamed (usage in the last chunk).
    let stream = f.sdk(&python, py, "chat_stream", None).await;
    let stream = stream.ok();
    assert_eq!(stream["content"], NORMAL_TEXT);
    assert_eq!(stream["finish_reason"], "stop");
    assert_eq!(stream["usage"]["completion_tokens"], OUTPUT_TOKENS);
    let sent = received_since(&f.fake, 1, 1);
    assert_clean(&sent[0], "openai");
    assert_eq!(serde_json::from_slice::<Value>(&sent[0].body).unwrap()["stream"], true);
    let result = f.forward_result("openai_chat_completions", 2, true, "complete").await;
    assert_eq!(result["metadata"]["usage"], usage());

    // Responses, streamed.
    let responses = f.sdk(&python, py, "responses_stream", None).await;
    let responses = responses.ok();
    assert_eq!(responses["content"], NORMAL_TEXT);
    assert_eq!(responses["final_text"], NORMAL_TEXT);
    assert_eq!(responses["status"], "completed");
    assert_eq!(responses["events"][0], "response.created");
    assert_eq!(responses["usage"]["output_tokens"], OUTPUT_TOKENS);
    assert_clean(&received_since(&f.fake, 2, 1)[0], "openai");
    let result = f.forward_result("openai_responses", 1, true, "complete").await;
    assert_eq!(result["metadata"]["usage"], usage());

    // Embeddings and the models list.
    let embeddings = f.sdk(&python, py, "embeddings", None).await;
    let embeddings = embeddings.ok();
    assert_eq!((embeddings["count"].as_u64(), embeddings["dimensions"].as_u64()), (Some(2), Some(8)));
    assert_eq!(embeddings["first"][0], 0.01);
    assert_clean(&received_since(&f.fake, 3, 1)[0], "openai");
    f.forward_result("openai_embeddings", 1, false, "complete").await;
    let listed = f.sdk(&python, py, "models", None).await;
    assert_eq!(listed.ok()["ids"], json!(["gpt-4o-mini", "text-embedding-3-small"]));
    let sent = received_since(&f.fake, 4, 1);
    assert_clean(&sent[0], "openai");
    assert_eq!((sent[0].method.as_str(), sent[0].target.as_str()), ("GET", "/v1/models"));
    f.forward_result("openai_models_list", 1, false, "complete").await;

    // The provider echoes the key: the SDK gets the redaction marker, never the key.
    let echo = f.sdk(&python, py, "chat", Some(models::ECHO)).await;
    assert_eq!(echo.ok()["content"], format!("Your key is {REDACTED}."));
    assert!(!echo.stdout.contains(OPENAI_KEY) && !echo.stderr.contains(OPENAI_KEY));
    let result = f.forward_result("openai_chat_completions", 3, false, "complete").await;
    assert_eq!(result["metadata"]["secret_scrubbed"], true, "{result}");
    // … also when the key is split across two chunks of a stream.
    let split = f.sdk(&python, py, "chat_stream", Some(models::SPLIT)).await;
    assert_eq!(split.ok()["content"], format!("Your key is {REDACTED}."));
    assert!(!split.stdout.contains(OPENAI_KEY));
    let result = f.forward_result("openai_chat_completions", 4, true, "complete").await;
    assert_eq!(result["metadata"]["secret_scrubbed"], true, "{result}");
    assert_eq!(result["metadata"]["usage"], usage());

    // A gated stream: the SDK has its first delta while the provider still holds the rest.
    let before = f.fake.count();
    let mut gated = f.spawn(
        &[],
        &python,
        py,
        &[("SCENARIO", "chat_stream"), ("MODEL", models::GATED), ("ANNOUNCE_FIRST_DELTA", "1")],
    );
    let line = gated.wait_for_line("first_delta").await;
    assert_eq!(serde_json::from_str::<Value>(&line).unwrap(), json!({"first_delta": "before"}));
    tokio::time::timeout(SCRIPT_LIMIT, f.fake.wait_gated(1)).await.unwrap();
    assert!(gated.running(), "the stream is still open");
    f.fake.release_gate();
    let gated = gated.finish().await;
    assert_eq!(gated.ok()["content"], GATED_TEXT);
    assert_clean(&received_since(&f.fake, before, 1)[0], "openai");
    f.forward_result("openai_chat_completions", 5, true, "complete").await;

    // The agent stopped mid-stream: `steward run` passes SIGTERM on and exits as the script did
    // (128 + 15); Steward notices the closed stream although the provider is still silent.
    let mut stopped = f.spawn(
        &[],
        &python,
        py,
        &[("SCENARIO", "chat_stream"), ("MODEL", models::GATED), ("ANNOUNCE_FIRST_DELTA", "1")],
    );
    stopped.wait_for_line("first_delta").await;
    let pid = stopped.child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let stopped = stopped.finish().await;
    assert_eq!(stopped.code, Some(143), "{stopped:#?}");
    let result = f.forward_result("openai_chat_completions", 6, true, "client_closed").await;
    assert!(result["metadata"]["usage"].is_null(), "{result}");
    assert_eq!(f.fake.count(), before + 2);

    // The provider's own error reaches the SDK as it is: a RateLimitError, no steward-error.
    let limited = f.sdk(&python, py, "chat", Some(&models::error(429))).await;
    let error = limited.error();
    assert_eq!((error["class"].as_str(), error["status"].as_u64()), (Some("RateLimitError"), Some(429)));
    assert_eq!(error["code"], "rate_limit_exceeded");
    assert_eq!(error["retry_after"], "1");
    assert!(error["steward_error"].is_null(), "{error}");
    assert_eq!(f.fake.count(), before + 3);
    let results = f.events("execute_result", "openai_chat_completions", 7).await;
    assert_eq!(results[0]["upstream_status_code"], 429, "{}", results[0]);

    // Steward's refusal (a deny rule for this model) reaches the SDK as a 403 with Steward's code.
    let denied = f.sdk(&python, py, "chat", Some(DENIED_MODEL)).await;
    let error = denied.error();
    assert_eq!(
        (error["class"].as_str(), error["status"].as_u64()),
        (Some("PermissionDeniedError"), Some(403))
    );
    assert_eq!(error["code"], "policy_deny");
    assert_eq!(error["steward_error"], "policy_deny");
    // The OpenAI SDK keeps the inner `error` object as the error's body.
    assert_eq!(error["body"]["code"], "policy_deny", "{error}");
    assert!(error["body"]["correlation_id"].is_string(), "{error}");
    assert_eq!(f.fake.count(), before + 3, "a refused call never reaches the provider");
    f.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_anthropic_sdk_refusal_and_held_approval() {
    let f = Fixture::start(&[]).await;
    let python = clients::python().unwrap();
    let py = "anthropic_agent.py";

    // What `steward run` gives its command: the gateway's URL and token, and each SDK's pair.
    let shown = f.spawn(&[], Path::new("/usr/bin/env"), "", &[]).finish().await;
    assert_eq!(shown.code, Some(0), "{shown:#?}");
    let vars: std::collections::BTreeMap<&str, &str> =
        shown.stdout.lines().filter_map(|line| line.split_once('=')).collect();
    let names: Vec<&str> = vars.keys().copied().collect();
    assert_eq!(
        names,
        [
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_BASE_URL",
            "OPENAI_API_KEY",
            "OPENAI_BASE_URL",
            "STEWARD_GATEWAY_TOKEN",
            "STEWARD_GATEWAY_URL"
        ]
    );
    let (url, token) = (vars["STEWARD_GATEWAY_URL"], vars["STEWARD_GATEWAY_TOKEN"]);
    assert!(url.starts_with("http://127.0.0.1:") && token.starts_with("stw_gw_"), "{vars:?}");
    assert_eq!(vars["OPENAI_BASE_URL"], format!("{url}/openai/v1"));
    assert_eq!(vars["ANTHROPIC_BASE_URL"], format!("{url}/anthropic"));
    assert_eq!((vars["OPENAI_API_KEY"], vars["ANTHROPIC_API_KEY"]), (token, token));

    let message = f.sdk(&python, py, "messages", None).await;
    let message = message.ok();
    assert_eq!(message["content"], NORMAL_TEXT);
    assert_eq!(message["usage"], usage());
    assert!(message["request_id"].as_str().unwrap().starts_with("req_"), "request-id reaches the SDK");
    let sent = received_since(&f.fake, 0, 1);
    assert_clean(&sent[0], "anthropic");
    assert_eq!(sent[0].target, "/v1/messages");
    assert_eq!(sent[0].header("host"), Some("api.anthropic.com"));
    let result = f.forward_result("anthropic_messages", 1, false, "complete").await;
    assert_eq!(result["metadata"]["usage"], usage());

    // Streamed, with the key echoed, through a DPoP-bound session: redacted in the SDK's output;
    // usage from message_start / message_delta; the proof stays between the gateway and Steward.
    let env = [("SCENARIO", "messages_stream"), ("MODEL", models::ECHO)];
    let stream = f.spawn(&["--dpop"], &python, py, &env).finish().await;
    assert!(stream.stderr.contains(r#""dpop":true"#), "{stream:#?}");
    let stream = stream.ok();
    assert_eq!(stream["content"], format!("Your key is {REDACTED}."));
    assert_eq!(stream["usage"], usage());
    assert_eq!(stream["stop_reason"], "end_turn");
    assert_eq!(stream["events"][0], "message_start");
    assert_clean(&received_since(&f.fake, 1, 1)[0], "anthropic");
    let result = f.forward_result("anthropic_messages", 2, true, "complete").await;
    assert_eq!(result["metadata"]["usage"], usage());
    assert_eq!(result["metadata"]["secret_scrubbed"], true, "{result}");

    // A group no rule allows: Steward's 403, which the SDK raises as PermissionDeniedError.
    let refused = f.sdk(&python, py, "models", None).await;
    let error = refused.error();
    assert_eq!(
        (error["class"].as_str(), error["status"].as_u64()),
        (Some("PermissionDeniedError"), Some(403))
    );
    assert_eq!(error["type"], "policy_default_deny");
    assert_eq!(error["steward_error"], "policy_default_deny");
    assert_eq!(error["body"]["error"]["code"], "policy_default_deny");
    assert_eq!(f.fake.count(), 2, "a refused call never reaches the provider");

    // An approval held by the gateway: the SDK's call waits, the operator approves, the call completes.
    let mut held = f.spawn(
        &["--approval-wait", "60"],
        &python,
        py,
        &[("SCENARIO", "count_tokens"), ("TIMEOUT_SECONDS", "120")],
    );
    let line = held.wait_for_line("approval required; waiting").await;
    let line: Value = serde_json::from_str(&line).unwrap();
    let approval_id = line["approval_id"].as_str().unwrap().to_owned();
    assert_eq!(line["approve_with"], format!("steward admin approvals approve {approval_id} --once"));
    assert!(held.running(), "the SDK's call is held");
    assert_eq!(f.fake.count(), 2, "nothing reached the provider before the approval");
    let approval = f.admin(Method::GET, &format!("/v1/approvals/{approval_id}"), None).await;
    assert_eq!(approval["status"], "pending", "{approval}");
    let approve = tokio::spawn({
        let (ports, token) = (Ports { data: f.ports.data, admin: f.ports.admin }, f.admin_token.clone());
        let path = format!("/v1/approvals/{approval_id}/approve");
        async move { admin_api(&ports, &token, Method::POST, &path, Some(json!({"mode": "once"}))).await }
    });
    approve.await.unwrap();
    let counted = held.finish().await;
    assert_eq!(counted.ok()["input_tokens"], INPUT_TOKENS);
    let sent = received_since(&f.fake, 2, 1);
    assert_clean(&sent[0], "anthropic");
    assert_eq!(sent[0].target, "/v1/messages/count_tokens");
    let result = f.forward_result("anthropic_count_tokens", 1, false, "complete").await;
    assert_eq!(result["metadata"]["approval_consumed"], approval_id.as_str(), "{result}");
    f.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_openai_sdk_and_an_idle_stream_cut() {
    // Streams idle for more than 1 s are cut.
    let f = Fixture::start(&[("STEWARD_EGRESS__STREAM_IDLE_TIMEOUT_MS", "1000")]).await;
    let node = clients::node().unwrap();
    let python = clients::python().unwrap();

    let chat = f.sdk(&node, "openai_agent.mjs", "chat", None).await;
    let chat = chat.ok();
    assert_eq!(chat["content"], NORMAL_TEXT);
    assert_eq!(chat["usage"]["total_tokens"], INPUT_TOKENS + OUTPUT_TOKENS);
    assert!(chat["request_id"].as_str().unwrap().starts_with("req_"));
    let sent = received_since(&f.fake, 0, 1);
    assert_clean(&sent[0], "openai");
    assert_eq!(sent[0].header("x-stainless-lang"), Some("js"));
    let result = f.forward_result("openai_chat_completions", 1, false, "complete").await;
    assert_eq!(result["metadata"]["usage"], usage());

    let stream = f.sdk(&node, "openai_agent.mjs", "chat_stream", Some(models::SPLIT)).await;
    let stream = stream.ok();
    assert_eq!(stream["content"], format!("Your key is {REDACTED}."));
    assert_eq!(stream["usage"]["prompt_tokens"], INPUT_TOKENS);
    assert_clean(&received_since(&f.fake, 1, 1)[0], "openai");
    let result = f.forward_result("openai_chat_completions", 2, true, "complete").await;
    assert_eq!(result["metadata"]["usage"], usage());

    // The provider pauses 30 s after the first delta: Steward cuts the stream after 1 s idle (the
    // connection is closed), and the SDK raises a connection error after the first delta.
    let slow = f.sdk(&python, "openai_agent.py", "chat_stream", Some(&models::slow(30_000))).await;
    let error = slow.error();
    assert_eq!(error["class"], "APIConnectionError", "{slow:#?}");
    assert_eq!(slow.json["streamed"], "before", "{slow:#?}");
    f.forward_result("openai_chat_completions", 3, true, "idle_timeout").await;
    f.stop();
}
