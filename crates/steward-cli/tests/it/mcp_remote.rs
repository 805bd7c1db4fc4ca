//! A remote MCP server through `steward gateway` (`spec/mcp.md` §2): a real MCP server built on the
//! official Python SDK (Streamable HTTP behind TLS, a bearer token, `tests/clients/mcp_remote_server.py`),
//! a real `steward serve` holding that token as the integration secret, `steward gateway`, and the
//! Python SDK's client (`tests/clients/mcp_remote_client.py`; the TypeScript SDK's too) pointed at the
//! gateway with the gateway token. Per-tool policy comes from `body_json` constraints on `/method` and
//! `/params/name`.

// Helpers panic on anything unexpected: that is how a test fails.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};
use steward_testkit::clients;
use steward_testkit::http_client::{TlsOptions, request};
use steward_testkit::pki::TestCa;

use crate::common::*;

/// The remote server's bearer token: the integration secret, never seen by the agent side.
const SECRET: &str = "mcp-remote-secret-0123456789abcdef";
const HOST: &str = "mcp.example.test";
const INTEGRATION: &str = "remote";
const TEMPLATE: &str = "tpl_remote_mcp";

fn python() -> PathBuf {
    clients::python().unwrap_or_else(|e| panic!("{e}"))
}

/// The Python MCP server: its process, port and the request log it appends to.
struct RemoteServer {
    child: Child,
    port: u16,
    log: PathBuf,
    ca_pem: String,
}

impl RemoteServer {
    /// Starts the server with a certificate for [`HOST`] from a throwaway CA; waits until it accepts TLS
    /// connections.
    async fn start(dir: &Path) -> RemoteServer {
        let ca = TestCa::new("remote MCP server CA").unwrap();
        let leaf = ca.server_cert(&[HOST]).unwrap();
        let (cert, key, log) = (dir.join("mcp.crt"), dir.join("mcp.key"), dir.join("mcp-requests.jsonl"));
        std::fs::write(&cert, &leaf.cert_pem).unwrap();
        std::fs::write(&key, &leaf.key_pem).unwrap();
        let port = free_port().unwrap();
        let stderr_path = dir.join("mcp-server.err");
        let mut child = std::process::Command::new(python())
            .arg(clients::script("mcp_remote_server.py"))
            .env("MCP_PORT", port.to_string())
            .env("MCP_HOST", HOST)
            .env("MCP_TOKEN", SECRET)
            .env("MCP_REQUEST_LOG", &log)
            .env("MCP_CERT_FILE", &cert)
            .env("MCP_KEY_FILE", &key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        // Ready once it answers over TLS: without the token, 401. The probe is then forgotten, so
        // the log holds only what came through Steward.
        let tls = TlsOptions { ca_pem: ca.cert_pem.clone(), server_name: HOST.into(), client: None };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(answer) = request(addr, Some(&tls), Method::POST, "/mcp", &[], "{}").await {
                assert_eq!(answer.status, 401, "the server must refuse a request without its token");
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the MCP server exited with {status}: {}",
                    std::fs::read_to_string(&stderr_path).unwrap()
                );
            }
            assert!(Instant::now() < deadline, "the MCP server did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        std::fs::write(&log, "").unwrap();
        RemoteServer { child, port, log, ca_pem: ca.cert_pem }
    }

    /// Every request the server got, in order.
    fn requests(&self) -> Vec<Value> {
        self.lines().into_iter().filter(|line| line.get("method").is_some()).collect()
    }

    /// How each `count_slowly` call ended (`finished` or `cancelled`, and at which step).
    fn outcomes(&self) -> Vec<Value> {
        self.lines().into_iter().filter(|line| line.get("outcome").is_some()).collect()
    }

    fn lines(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }
}

impl Drop for RemoteServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `steward serve` with a tenant, the copied template, the `remote` integration and an
/// enrolled workload; policies are the test's.
struct Fixture {
    _temp: tempfile::TempDir,
    dir: PathBuf,
    remote: RemoteServer,
    server: Child,
    ports: Ports,
    admin_token: String,
    tenant_id: String,
    integration_id: String,
    identity: PathBuf,
}

impl Fixture {
    /// `approval_mode` of the copied group: `none` as in the built-in example, or `required`.
    async fn start(approval_mode: &str) -> Fixture {
        install_crypto_provider();
        python();
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        let remote = RemoteServer::start(&dir).await;
        let (data, ports, broker_url, serve) = loopback_serve_command(&dir, &[HOST], &remote.ca_pem);
        let server = spawn_serving(serve, &ports).await;
        let admin_token = std::fs::read_to_string(data.join("admin-token")).unwrap().trim().to_owned();
        let admin = |method, path: String, body| {
            let (ports, token) = (&ports, &admin_token);
            async move { admin_api(ports, token, method, &path, body).await }
        };
        let tenant = admin(Method::POST, "/v1/tenants".into(), Some(json!({"name": "acme"}))).await;
        let tenant_id = tenant["tenant_id"].as_str().unwrap().to_owned();

        // The recipe of docs/mcp.md: copy the built-in example, point it at the server, publish it.
        let builtin = admin(Method::GET, "/v1/templates/tpl_mcp_remote/versions/1".into(), None).await;
        let mut template = builtin["template"].clone();
        assert_eq!(template["template_id"], "tpl_mcp_remote", "{builtin}");
        template["template_id"] = json!(TEMPLATE);
        template["tenant_id"] = json!(tenant_id);
        template["version"] = json!(1);
        template["allowed_hosts"] = json!([HOST]);
        template["allowed_ports"] = json!([remote.port]);
        template["path_groups"][0]["approval_mode"] = json!(approval_mode);
        admin(Method::POST, "/v1/templates".into(), Some(template)).await;
        let integration = admin(
            Method::POST,
            format!("/v1/tenants/{tenant_id}/integrations"),
            Some(json!({"name": INTEGRATION, "provider": "mcp", "template_id": TEMPLATE,
                        "secret": {"type": "api_key", "value": SECRET}})),
        )
        .await;
        let integration_id = integration["integration_id"].as_str().unwrap().to_owned();

        let workload =
            admin(Method::POST, format!("/v1/tenants/{tenant_id}/workloads"), Some(json!({"name": "agent"})))
                .await;
        let token = workload["enrollment_token"].as_str().unwrap();
        let identity = enroll_identity(token, &broker_url, &data, dir.join("identity"));
        Fixture { _temp: temp, dir, remote, server, ports, admin_token, tenant_id, integration_id, identity }
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        admin_api(&self.ports, &self.admin_token, method, path, body).await
    }

    /// A policy rule on the endpoint group for `method`; `extra` adds `constraints` and the like.
    async fn rule(&self, rule_type: &str, method: &str, extra: Value) -> String {
        let mut rule = json!({"rule_type": rule_type, "scope": {"tenant_id": self.tenant_id,
            "integration_id": self.integration_id, "action_group": "mcp_endpoint", "method": method,
            "host": HOST}});
        rule.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let created = self.admin(Method::POST, "/v1/policies", Some(rule)).await;
        created["policy_id"].as_str().unwrap().to_owned()
    }

    /// The `execute` and `execute_result` events of the tenant, oldest first.
    async fn events(&self) -> Vec<Value> {
        let mut events = Vec::new();
        for event_type in ["execute", "execute_result"] {
            let path =
                format!("/v1/audit/events?tenant_id={}&event_type={event_type}&limit=1000", self.tenant_id);
            let answer = self.admin(Method::GET, &path, None).await;
            events.extend(answer["events"].as_array().unwrap().iter().cloned());
        }
        events.sort_by(|a, b| a["timestamp"].as_str().cmp(&b["timestamp"].as_str()));
        events
    }
}

/// `{"body_json": [...]}` constraints: `/method` is `tools/call` and `/params/name` one of `tools`.
fn tool_call(tools: &[&str]) -> Value {
    json!({"body_json": [{"pointer": "/method", "allowed_values": ["tools/call"]},
                         {"pointer": "/params/name", "allowed_values": tools}]})
}

/// `steward gateway` with a token file; stopped (SIGTERM, exit 0 asserted) by [`Gateway::stop`].
struct Gateway {
    child: Child,
    addr: std::net::SocketAddr,
    url: String,
    token: String,
    stderr: PathBuf,
}

impl Gateway {
    async fn start(fixture: &Fixture, extra: &[&str]) -> Gateway {
        let port = free_port().unwrap();
        let token_file = fixture.dir.join(format!("gateway-token-{port}"));
        let stderr_path = fixture.dir.join(format!("gateway-{port}.err"));
        let mut child = steward()
            .args(["gateway", "--listen", &format!("127.0.0.1:{port}"), "--token-file"])
            .arg(&token_file)
            .arg("--identity")
            .arg(&fixture.identity)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health =
                steward_testkit::http_client::request(addr, None, Method::GET, "/_steward/healthz", &[], "")
                    .await;
            if health.is_ok_and(|r| r.status == 200) {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "steward gateway exited with {status}: {}",
                    std::fs::read_to_string(&stderr_path).unwrap()
                );
            }
            assert!(Instant::now() < deadline, "the gateway did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let token = std::fs::read_to_string(&token_file).unwrap().trim().to_owned();
        Gateway { child, addr, url: format!("http://{addr}/{INTEGRATION}/mcp"), token, stderr: stderr_path }
    }

    /// The Python SDK client with these calls, in `mode` (`auto`: the newest revision, `legacy`: the
    /// `initialize` handshake with a session); its JSON report.
    async fn client(&self, mode: &str, calls: Value) -> Value {
        let plan = json!({"url": self.url, "token": self.token, "mode": mode, "calls": calls}).to_string();
        let run = clients::run_script(
            &python(),
            "mcp_remote_client.py",
            &[("MCP_PLAN", plan.as_str())],
            Duration::from_secs(120),
        )
        .await
        .unwrap();
        assert!(run.success, "the MCP client failed: {}\n{}", run.stderr, self.logs());
        run.json
    }

    /// One hand-written 2026-07-28 POST (its `mcp-method` and `mcp-name` headers as the SDK sends them).
    async fn post_raw(&self, body: &str, tool: &str) -> steward_testkit::http_client::TestResponse {
        let bearer = format!("Bearer {}", self.token);
        let headers = [
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", tool),
        ];
        let path = format!("/{INTEGRATION}/mcp");
        request(self.addr, None, Method::POST, &path, &headers, body.to_owned()).await.unwrap()
    }

    /// `tests/clients/mcp_http_client.mjs` (the TypeScript SDK) with these calls; its JSON report.
    async fn typescript_client(&self, calls: Value) -> Value {
        let node = clients::node().unwrap_or_else(|e| panic!("{e}"));
        let plan = json!({"url": self.url, "token": self.token, "calls": calls}).to_string();
        let output = tokio::time::timeout(
            Duration::from_secs(120),
            tokio::process::Command::new(node)
                .arg(clients::script("mcp_http_client.mjs"))
                .arg(plan)
                .current_dir(clients::clients_dir())
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("the TypeScript client did not finish in 120 s")
        .unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "the TypeScript client failed: {err}\n{}", self.logs());
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {err}"))
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn stop(mut self) -> String {
        assert_eq!(terminate(&mut self.child).code(), Some(0));
        self.logs()
    }
}

fn result<'a>(report: &'a Value, index: usize, tool: &str) -> &'a Value {
    let result = &report["results"][index];
    assert_eq!(result["tool"], tool, "{report}");
    result
}

/// The answers the SDK got with a status ≥ 400.
fn refusals(report: &Value) -> Vec<&Value> {
    report["http"].as_array().unwrap().iter().filter(|a| a["status"].as_u64().unwrap() >= 400).collect()
}

/// A refusal in the nested error shape of forward mode: status, `steward-error` and body agree.
fn assert_refusal(answer: &Value, status: u64, code: &str) {
    assert_eq!(answer["status"], status, "{answer}");
    assert_eq!(answer["steward_error"], code, "{answer}");
    assert_eq!(answer["content_type"], "application/json", "{answer}");
    let body = &answer["body"];
    assert_eq!(body["type"], "error", "{answer}");
    assert_eq!(body["error"]["type"], code, "{answer}");
    assert_eq!(body["error"]["code"], code, "{answer}");
    assert!(body["error"]["correlation_id"].as_str().is_some_and(|c| !c.is_empty()), "{answer}");
}

/// Everything the MCP server received carried the integration secret, never the gateway token.
fn assert_only_the_secret_reached_the_server(remote: &RemoteServer, gateway_token: &str) {
    let requests = remote.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(request["authorization"], format!("Bearer {SECRET}"), "{request}");
        assert_eq!(request["status"], Value::Null, "the server accepted it: {request}");
        assert_eq!(request["path"], "/mcp", "{request}");
    }
    let log = std::fs::read_to_string(&remote.log).unwrap();
    assert!(!log.contains(gateway_token), "the gateway token reached the MCP server");
}

/// Tools listed and called through Steward in both eras of the protocol (2026-07-28 stateless, and
/// the `initialize` handshake with its session, SSE answers, GET stream and DELETE; the TypeScript
/// SDK as well); SSE answers are streamed (progress arrives before the result) and a call the client
/// cancels stops at the server; the server sees only the injected secret, and a server that echoes it
/// gets it scrubbed; a deny rule constrained to `delete_repo` stops that tool (403 `policy_deny` in
/// the nested shape, nothing reaches the server) while `read_item` still works; the audit records the
/// JSON-RPC method and tool name of every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_calls_a_remote_mcp_server_through_the_gateway_with_a_per_tool_deny() {
    let mut f = Fixture::start("none").await;
    for method in ["POST", "GET", "DELETE"] {
        f.rule("allow", method, json!({})).await;
    }
    let deny = f
        .rule(
            "deny",
            "POST",
            json!({"constraints": tool_call(&["delete_repo"]),
        "description": "no agent deletes repositories"}),
        )
        .await;
    let gateway = Gateway::start(&f, &[]).await;

    // The newest revision (stateless; JSON answers, SSE when the call sends progress first).
    let calls = json!([
        {"tool": "read_item", "arguments": {"item_id": "7"}},
        {"tool": "delete_repo", "arguments": {"repo": "steward"}},
        {"tool": "read_item", "arguments": {"item_id": "8"}},
        {"tool": "count_slowly", "arguments": {"steps": 3, "delay_ms": 800}, "progress": true},
        {"tool": "count_slowly", "arguments": {"steps": 40, "delay_ms": 250}, "progress": true,
         "cancel_after_ms": 2000},
        {"tool": "echo_token"},
    ]);
    let report = gateway.client("auto", calls).await;
    assert_eq!(report["protocol_version"], "2026-07-28", "{report}");
    assert_eq!(report["negotiated_by"], "discover");
    assert_eq!(
        report["tools"],
        json!(["approve_me", "count_slowly", "delete_repo", "echo_token", "read_item"])
    );
    for (index, id) in [(0, "7"), (2, "8")] {
        let read = result(&report, index, "read_item");
        assert_eq!(read["ok"], true, "{read}");
        assert_eq!(read["is_error"], false, "{read}");
        assert_eq!(read["structured"], json!({"item_id": id, "name": format!("item {id}")}));
    }
    // Streamed, not buffered: each progress event reached the client as the server sent it, well
    // before the result (a buffered answer would deliver them all at once, with the result).
    let counted = result(&report, 3, "count_slowly");
    assert_eq!(counted["structured"], json!({"steps": 3}), "{counted}");
    let progress = counted["progress"].as_array().unwrap();
    assert_eq!(progress.len(), 3, "{counted}");
    let (first, done) = (progress[0]["at_ms"].as_u64().unwrap(), counted["result_at_ms"].as_u64().unwrap());
    assert!(done >= first + 1200, "progress at {first} ms, result at {done} ms: {counted}");
    // The caller gave up on the second count: closing its stream reached the server, which stopped.
    let cancelled = result(&report, 4, "count_slowly");
    assert_eq!(cancelled["cancelled"], true, "{cancelled}");
    assert!(!cancelled["progress"].as_array().unwrap().is_empty(), "{cancelled}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while f.remote.outcomes().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the server never saw the cancellation: {:?}",
            f.remote.outcomes()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let outcomes = f.remote.outcomes();
    assert_eq!(outcomes[0], json!({"outcome": "finished", "tool": "count_slowly", "step": 3}));
    assert_eq!(outcomes[1]["outcome"], "cancelled", "{outcomes:?}");
    assert!(outcomes[1]["step"].as_u64().unwrap() < 40, "{outcomes:?}");
    // A server that echoes its token: Steward scrubs it from the stream.
    let echoed = result(&report, 5, "echo_token");
    assert_eq!(echoed["structured"], json!({"token": "[REDACTED]"}), "{echoed}");
    assert!(!report.to_string().contains(SECRET), "the secret reached the client: {report}");
    let denied = result(&report, 1, "delete_repo");
    assert_eq!(denied["ok"], false, "the SDK reports the refused POST as an error: {denied}");
    let refused = refusals(&report);
    assert_eq!(refused.len(), 1, "{report}");
    assert_refusal(refused[0], 403, "policy_deny");
    let message = refused[0]["body"]["error"]["message"].as_str().unwrap();
    assert!(message.contains(&deny), "the message names the rule: {message}");

    let requests = f.remote.requests();
    let tools: Vec<&str> = requests.iter().filter_map(|r| r["tool"].as_str()).collect();
    assert_eq!(
        tools,
        ["read_item", "read_item", "count_slowly", "count_slowly", "echo_token"],
        "the denied call never reached the server"
    );
    assert!(requests.iter().any(|r| r["jsonrpc_method"] == "tools/list"));
    assert!(requests.iter().all(|r| r["host"] == format!("{HOST}:{}", f.remote.port)), "{requests:?}");

    // The handshake era: a session whose id crosses Steward both ways, SSE answers, the GET stream
    // for server messages and the DELETE that ends the session.
    let before = f.remote.requests().len();
    let calls = json!([{"tool": "read_item", "arguments": {"item_id": "9"}},
                       {"tool": "delete_repo", "arguments": {"repo": "steward"}}]);
    let report = gateway.client("legacy", calls).await;
    assert_eq!(report["negotiated_by"], "initialize", "{report}");
    assert_eq!(report["protocol_version"], "2025-11-25");
    assert_eq!(
        report["tools"],
        json!(["approve_me", "count_slowly", "delete_repo", "echo_token", "read_item"])
    );
    let read = result(&report, 0, "read_item");
    assert_eq!(read["structured"], json!({"item_id": "9", "name": "item 9"}), "{read}");
    assert_eq!(result(&report, 1, "delete_repo")["ok"], false);
    let refused = refusals(&report);
    assert_eq!(refused.len(), 1, "{report}");
    assert_refusal(refused[0], 403, "policy_deny");
    let answers = report["http"].as_array().unwrap();
    let sse = |method: &str| {
        answers.iter().any(|a| {
            a["method"] == method
                && a["status"] == 200
                && a["content_type"].as_str().is_some_and(|t| t.starts_with("text/event-stream"))
        })
    };
    assert!(sse("POST") && sse("GET"), "SSE answers through Steward: {answers:?}");
    assert!(answers.iter().any(|a| a["method"] == "DELETE" && a["status"] == 200), "{answers:?}");
    let session_requests = &f.remote.requests()[before..];
    let session = session_requests[1]["session"].as_str().expect("the session id came back to the client");
    for request in &session_requests[1..] {
        assert_eq!(request["session"], session, "{request}");
        assert_eq!(request["protocol_version"], "2025-11-25", "{request}");
    }
    let methods: Vec<&str> = session_requests.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert!(methods.contains(&"GET") && methods.last() == Some(&"DELETE"), "{methods:?}");
    assert!(session_requests.iter().all(|r| r["tool"] != "delete_repo"));

    // Hand-written messages that try to slip delete_repo past the rule: the name spelled with a
    // JSON escape, a repeated key, a batch. Each is denied; the same escape for read_item is not.
    let raw = |name: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}","arguments":{{"item_id":"r","repo":"r"}},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
        )
    };
    let attempts = [
        (raw("\\u0064elete_repo"), "delete_repo"),
        (raw("read_item\",\"name\":\"delete_repo"), "delete_repo"),
        (format!("[{}]", raw("delete_repo")), "delete_repo"),
        (raw("\\u0072ead_item"), "read_item"),
    ];
    for (body, tool) in &attempts {
        let answer = gateway.post_raw(body, tool).await;
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        if *tool == "read_item" {
            assert_eq!(answer.status, 200, "{body}: {text}");
            assert!(text.contains(r#""structuredContent":{"item_id":"r","name":"item r"}"#), "{text}");
        } else {
            assert_eq!(answer.status, 403, "{body}: {text}");
            assert_eq!(answer.headers.get("steward-error").unwrap(), "policy_deny", "{body}");
        }
    }

    // The TypeScript SDK (2025-11-25, with a session) through the same gateway.
    let report =
        gateway.typescript_client(json!([{"tool": "read_item", "arguments": {"item_id": "10"}}])).await;
    assert_eq!(report["protocol_version"], "2025-11-25", "{report}");
    assert_eq!(report["session_id"], "present", "{report}");
    assert_eq!(report["tools"].as_array().unwrap().len(), 5, "{report}");
    assert_eq!(report["results"][0]["structured"], json!({"item_id": "10", "name": "item 10"}), "{report}");

    assert_only_the_secret_reached_the_server(&f.remote, &gateway.token);
    let logs = gateway.stop();
    assert!(!logs.contains(SECRET) && !logs.contains("mcp-remote-secret"), "no secret in the gateway log");

    // The audit: one forward `execute` per JSON-RPC request, with its method and tool name.
    let events = wait_for_results(&f).await;
    let executes: Vec<&Value> = events.iter().filter(|e| e["event_type"] == "execute").collect();
    for execute in &executes {
        assert_eq!(execute["metadata"]["mode"], "forward", "{execute}");
        assert_eq!(execute["integration_id"], f.integration_id.as_str(), "{execute}");
        assert!(!execute.to_string().contains("steward\"}"), "tool arguments are not recorded: {execute}");
    }
    let recorded = |method: &str, tool: Option<&str>, decision: &str| {
        executes
            .iter()
            .filter(|e| {
                e["metadata"]["jsonrpc_method"] == method
                    && e["metadata"]["jsonrpc_tool_name"].as_str() == tool
                    && e["decision"] == decision
            })
            .count()
    };
    assert_eq!(recorded("tools/call", Some("read_item"), "allowed"), 5, "{executes:#?}");
    assert_eq!(recorded("tools/call", Some("delete_repo"), "denied"), 3, "{executes:#?}");
    assert_eq!(recorded("tools/call", Some("delete_repo"), "allowed"), 0);
    assert_eq!(recorded("tools/call", Some("count_slowly"), "allowed"), 2);
    let echo = executes.iter().find(|e| e["metadata"]["jsonrpc_tool_name"] == "echo_token").unwrap();
    let echo_result = events
        .iter()
        .find(|e| e["event_type"] == "execute_result" && e["correlation_id"] == echo["correlation_id"])
        .unwrap();
    assert_eq!(echo_result["metadata"]["secret_scrubbed"], true, "{echo_result}");
    assert_eq!(recorded("tools/list", None, "allowed"), 3, "{executes:#?}");
    assert_eq!(recorded("initialize", None, "allowed"), 2, "{executes:#?}");
    assert_eq!(recorded("server/discover", None, "allowed"), 1, "{executes:#?}");
    let denied: Vec<&&Value> = executes.iter().filter(|e| e["decision"] == "denied").collect();
    assert!(denied.iter().all(|e| e["reason_code"] == "policy_deny"), "{denied:#?}");
    let denied_metadata: Vec<&Value> = denied.iter().map(|e| &e["metadata"]).collect();
    assert_eq!(denied.len(), 5, "two SDK calls and three hand-written ones: {denied_metadata:#?}");
    let path = format!("/v1/audit/events?tenant_id={}&event_type=violation", f.tenant_id);
    let violations = f.admin(Method::GET, &path, None).await;
    assert_eq!(
        violations["events"].as_array().unwrap().len(),
        5,
        "a violation per denied call: {violations}"
    );
    // The GET stream and the DELETE have no body: audited as forward calls without a method.
    let bodiless = executes.iter().filter(|e| e["metadata"]["jsonrpc_method"].is_null()).count();
    assert!(bodiless >= 2, "{executes:#?}");
    // The SSE answers were streams; the first count ran to its end, the second was closed by the
    // client.
    let counts: Vec<&Value> = executes
        .iter()
        .filter(|e| e["metadata"]["jsonrpc_tool_name"] == "count_slowly")
        .map(|execute| {
            events
                .iter()
                .find(|e| {
                    e["event_type"] == "execute_result" && e["correlation_id"] == execute["correlation_id"]
                })
                .unwrap()
        })
        .collect();
    assert!(counts.iter().all(|r| r["metadata"]["stream"] == true), "{counts:#?}");
    let ends: Vec<&Value> = counts.iter().map(|r| &r["metadata"]["end"]).collect();
    // The SDK closes a POST's SSE answer as soon as it has the JSON-RPC result; when that beats the
    // server's chunked terminator to Steward (a loaded machine), the first count is recorded as
    // `client_closed` although the tool finished (the server's log says so, checked above).
    assert_eq!(ends.len(), 2, "{counts:#?}");
    assert!(ends[0] == "complete" || ends[0] == "client_closed", "{counts:#?}");
    assert_eq!(ends[1], "client_closed", "{counts:#?}");
    let streamed = events
        .iter()
        .filter(|e| e["event_type"] == "execute_result" && e["metadata"]["stream"] == true)
        .count();
    assert!(
        streamed >= 4,
        "count_slowly, initialize, tools/list and tools/call answered as SSE: {events:#?}"
    );
    assert_eq!(terminate(&mut f.server).code(), Some(0));
}

/// Every allowed `execute` has its `execute_result` (written when the answer's body ended); the
/// events of the tenant.
async fn wait_for_results(f: &Fixture) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = f.events().await;
        let allowed =
            events.iter().filter(|e| e["event_type"] == "execute" && e["decision"] == "allowed").count();
        let results = events.iter().filter(|e| e["event_type"] == "execute_result").count();
        if results >= allowed {
            return events;
        }
        assert!(Instant::now() < deadline, "{allowed} allowed calls, {results} results: {events:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Approval per tool: the copied group needs approval (`approval_mode: required`); allow rules with
/// `bypass_template_approval` lift it for the protocol's own methods, the GET stream, the DELETE and
/// the tools an agent may call freely. Any other tool call gets 403 `approval_required` with the
/// approval id; with `--approval-wait` the gateway holds it until a person approves, then sends the
/// same request again and the client gets the tool's result. A call the client abandons while it
/// waits is not sent when its approval comes later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_outside_the_allowed_list_waits_for_an_approval() {
    let mut f = Fixture::start("required").await;
    let bypass = |constraints: Value| json!({"bypass_template_approval": true, "constraints": constraints});
    let protocol = json!({"body_json": [{"pointer": "/method", "allowed_values":
        ["server/discover", "initialize", "notifications/initialized", "ping", "tools/list"]}]});
    f.rule("allow", "POST", bypass(protocol)).await;
    f.rule("allow", "POST", bypass(tool_call(&["read_item"]))).await;
    for method in ["GET", "DELETE"] {
        f.rule("allow", method, json!({"bypass_template_approval": true})).await;
    }
    // Without it, a call no bypass rule covers would be `policy_constraint_failed`; with it, such a
    // call falls to the group's approval floor.
    f.rule("allow", "POST", json!({})).await;

    let gateway = Gateway::start(&f, &[]).await;
    let calls = json!([{"tool": "read_item", "arguments": {"item_id": "1"}},
                       {"tool": "approve_me", "arguments": {"note": "please"}}]);
    let report = gateway.client("auto", calls).await;
    assert_eq!(result(&report, 0, "read_item")["ok"], true, "{report}");
    assert_eq!(result(&report, 1, "approve_me")["ok"], false, "{report}");
    let refused = refusals(&report);
    assert_eq!(refused.len(), 1, "{report}");
    assert_refusal(refused[0], 403, "approval_required");
    let approval_id = refused[0]["approval_id"].as_str().unwrap().to_owned();
    assert!(approval_id.starts_with("apr_"), "{report}");
    let error = &refused[0]["body"]["error"];
    assert_eq!(error["approval_id"], approval_id.as_str());
    let approve = format!("steward admin approvals approve {approval_id} --once");
    assert!(error["message"].as_str().unwrap().contains(&approve), "{report}");
    assert!(f.remote.requests().iter().all(|r| r["tool"] != "approve_me"));
    // The approver sees which tool (approval_preview of the template: /method and /params/name).
    let approval = f.admin(Method::GET, &format!("/v1/approvals/{approval_id}"), None).await;
    assert!(approval.to_string().contains("approve_me"), "{approval}");
    gateway.stop();

    // --approval-wait: the gateway holds the call, a person approves it, the call goes through.
    let gateway = Gateway::start(&f, &["--approval-wait", "90"]).await;
    let approver = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        let waiting = loop {
            let logs = gateway.logs();
            if let Some(line) = logs.lines().find(|l| l.contains("approval required; waiting")) {
                break serde_json::from_str::<Value>(line).unwrap();
            }
            assert!(Instant::now() < deadline, "the gateway never waited: {logs}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let id = waiting["approval_id"].as_str().unwrap().to_owned();
        f.admin(Method::POST, &format!("/v1/approvals/{id}/approve"), Some(json!({"mode": "once"}))).await;
    };
    let calls = json!([{"tool": "approve_me", "arguments": {"note": "approved"}}]);
    let (report, ()) = tokio::join!(gateway.client("auto", calls), approver);
    let approved = result(&report, 0, "approve_me");
    assert_eq!(approved["structured"], json!({"note": "approved"}), "{report}");
    assert!(refusals(&report).is_empty(), "{report}");
    let calls: Vec<Value> = f.remote.requests().into_iter().filter(|r| r["tool"] == "approve_me").collect();
    assert_eq!(calls.len(), 1, "sent once, after the approval: {calls:?}");

    // The agent gives up while the gateway waits: a later approval must not send the abandoned call.
    let calls = json!([{"tool": "approve_me", "arguments": {"note": "abandoned"}, "cancel_after_ms": 4000}]);
    let report = gateway.client("auto", calls).await;
    assert_eq!(result(&report, 0, "approve_me")["cancelled"], true, "{report}");
    let logs = gateway.logs();
    let waits: Vec<Value> = logs
        .lines()
        .filter(|l| l.contains("approval required; waiting"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(waits.len(), 2, "{logs}");
    let id = waits[1]["approval_id"].as_str().unwrap();
    f.admin(Method::POST, &format!("/v1/approvals/{id}/approve"), Some(json!({"mode": "once"}))).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls: Vec<Value> = f.remote.requests().into_iter().filter(|r| r["tool"] == "approve_me").collect();
    assert_eq!(
        calls.len(),
        1,
        "the abandoned call was sent after its approval: {calls:?}\n{}",
        gateway.logs()
    );
    let granted = gateway.logs().lines().filter(|l| l.contains("approval granted")).count();
    assert_eq!(granted, 1, "the gateway stopped waiting when the client left: {}", gateway.logs());
    assert_only_the_secret_reached_the_server(&f.remote, &gateway.token);
    gateway.stop();
    assert_eq!(terminate(&mut f.server).code(), Some(0));
}

/// A message whose `params` repeat `name` (`"read_item"`, then `"delete_repo"`): the server (Python's
/// `json`, like most parsers) takes the last one and runs `delete_repo`. The audit must not say the
/// call was `read_item`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_tool_name_is_not_audited_as_the_first_one() {
    let mut f = Fixture::start("none").await;
    f.rule("allow", "POST", json!({})).await;
    let gateway = Gateway::start(&f, &[]).await;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_item","name":"delete_repo","arguments":{"item_id":"r","repo":"r"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let answer = gateway.post_raw(body, "delete_repo").await;
    let text = String::from_utf8_lossy(&answer.body).into_owned();
    assert_eq!(answer.status, 200, "{text}");
    assert!(text.contains(r#""structuredContent":{"deleted":"r"}"#), "the server ran delete_repo: {text}");
    let tools: Vec<Value> = f.remote.requests().into_iter().map(|r| r["tool"].clone()).collect();
    assert_eq!(tools, [json!("delete_repo")]);
    gateway.stop();
    let events = wait_for_results(&f).await;
    let execute = events.iter().find(|e| e["event_type"] == "execute").unwrap();
    assert_eq!(execute["metadata"]["jsonrpc_method"], "tools/call", "{execute}");
    assert_eq!(
        execute["metadata"].get("jsonrpc_tool_name"),
        None,
        "an ambiguous tool name is not recorded (neither the first nor the last): {execute}"
    );
    assert_eq!(terminate(&mut f.server).code(), Some(0));
}
