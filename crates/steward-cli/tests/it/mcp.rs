//! `steward mcp` (`spec/mcp.md` §1) driven by the official MCP SDK clients: the Python `mcp` SDK
//! spawning it over stdio, the TypeScript SDK over Streamable HTTP with the local token. A real
//! Steward server brokers every call to a real local HTTPS upstream, which records what it got.

// Helpers panic on anything unexpected: that is how a test fails.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};
use steward_testkit::TestUpstream;
use steward_testkit::templates::{self, group, items_read, items_write};

use crate::common;
use common::admin_api as admin;
use common::*;

const SECRET: &str = "sk-mcp-secret-0123456789";
const INSTALL: &str = "run scripts/install-test-clients";

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients")
}

/// The pinned Python with the `mcp` SDK; missing → the test fails saying how to install it.
fn python() -> PathBuf {
    let python = clients_dir().join(".venv/bin/python");
    let works = std::process::Command::new(&python)
        .args(["-c", "import mcp, mcp.client.stdio"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(works, "the Python MCP SDK is missing at {}: {INSTALL}", python.display());
    python
}

/// `node` with the pinned `@modelcontextprotocol/sdk`; missing → the test fails saying how to install it.
fn node() -> &'static str {
    let sdk = clients_dir().join("node_modules/@modelcontextprotocol/sdk/package.json");
    assert!(sdk.exists(), "the TypeScript MCP SDK is missing at {}: {INSTALL}", sdk.display());
    let works =
        std::process::Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(works, "node is not installed: {INSTALL}");
    "node"
}

/// A running server with a `shop` integration whose template has a read group (allowed by policy),
/// a write group (approval required) and a delete group (no rule: default deny), an enrolled
/// workload, and the upstream every call reaches.
struct Fixture {
    _temp: tempfile::TempDir,
    upstream: TestUpstream,
    ports: Ports,
    broker_url: String,
    child: std::process::Child,
    token: String,
    tenant_id: String,
    identity: PathBuf,
    root: PathBuf,
}

fn template(tenant: &str, port: u16) -> Value {
    templates::template("tpl_mcp_shop", "shop")
        .tenant(tenant)
        .port(port)
        .group(items_read().description("List the shop's items.").query(&["q"]).headers(&["accept"]))
        .group(items_write())
        .group(group("items_delete", &["DELETE"], &["^/v1/items/[0-9]+$"]).risk("medium"))
        .build()
}

async fn fixture() -> Fixture {
    fixture_with(&[]).await
}

/// [`fixture`] with extra environment for `steward serve`.
async fn fixture_with(server_env: &[(&str, &str)]) -> Fixture {
    install_crypto_provider();
    let upstream = TestUpstream::start().await.unwrap();
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().to_path_buf();
    let (data, ports, broker_url, mut serve) =
        loopback_serve_command(&root, &["api.example.test"], &upstream.ca_pem);
    serve.envs(server_env.iter().copied());
    let child = spawn_serving(serve, &ports).await;
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap().trim().to_owned();

    let tenant = admin(&ports, &token, Method::POST, "/v1/tenants", Some(json!({"name": "acme"}))).await;
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_owned();
    admin(&ports, &token, Method::POST, "/v1/templates", Some(template(&tenant_id, upstream.port()))).await;
    let integration = admin(
        &ports,
        &token,
        Method::POST,
        &format!("/v1/tenants/{tenant_id}/integrations"),
        Some(json!({"name": "shop", "provider": "shop", "template_id": "tpl_mcp_shop",
                    "secret": {"type": "api_key", "value": SECRET}})),
    )
    .await;
    let integration_id = integration["integration_id"].as_str().unwrap().to_owned();
    for (group, method) in [("items_read", "GET"), ("items_write", "POST")] {
        let allow = json!({"rule_type": "allow", "scope": {"tenant_id": tenant_id,
            "integration_id": integration_id, "action_group": group, "method": method,
            "host": "api.example.test"}});
        admin(&ports, &token, Method::POST, "/v1/policies", Some(allow)).await;
    }
    let workload = admin(
        &ports,
        &token,
        Method::POST,
        &format!("/v1/tenants/{tenant_id}/workloads"),
        Some(json!({"name": "agent"})),
    )
    .await;
    let identity = enroll_identity(
        workload["enrollment_token"].as_str().unwrap(),
        &broker_url,
        &data,
        root.join("identity"),
    );
    Fixture { _temp: temp, upstream, ports, broker_url, child, token, tenant_id, identity, root }
}

impl Fixture {
    /// The `steward mcp` command line for the stdio client to spawn.
    fn mcp_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["mcp".to_owned(), "--identity".to_owned(), self.identity.display().to_string()];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    /// Runs the Python SDK client with a plan; its JSON report and its stderr (steward mcp's log).
    async fn python_client(&self, mode: &str, extra: &[&str], calls: Value) -> (Value, String) {
        let plan = json!({
            "command": env!("CARGO_BIN_EXE_steward"),
            "args": self.mcp_args(extra),
            "env": {"PATH": std::env::var("PATH").unwrap_or_default()},
            "mode": mode,
            "calls": calls,
        });
        run_python(plan).await
    }
}

/// The Python SDK client script with a plan: its JSON report and its stderr.
async fn run_python(plan: Value) -> (Value, String) {
    let output = tokio::process::Command::new(python())
        .arg(clients_dir().join("mcp_stdio_client.py"))
        .arg(plan.to_string())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "python client failed: {err}");
    (serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {err}")), err)
}

impl Fixture {
    /// The pending approvals of the tenant (admin API).
    async fn pending_approvals(&self) -> Vec<Value> {
        let path = format!("/v1/approvals?tenant_id={}&status=pending", self.tenant_id);
        let answer = admin(&self.ports, &self.token, Method::GET, &path, None).await;
        answer["approvals"].as_array().cloned().unwrap_or_default()
    }
}

fn tool<'a>(tools: &'a Value, name: &str) -> &'a Value {
    tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no tool {name}: {tools}"))
}

fn assert_tools(tools: &Value) {
    let mut names: Vec<&str> =
        tools.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["shop__items_delete", "shop__items_read", "shop__items_write"]);

    let read = tool(tools, "shop__items_read");
    assert_eq!(read["description"], "List the shop's items.");
    assert_eq!(read["annotations"]["readOnlyHint"], true);
    assert_eq!(read["annotations"]["destructiveHint"], false);
    assert_eq!(read["annotations"]["openWorldHint"], true);
    let schema = &read["inputSchema"];
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["properties"]["method"]["enum"], json!(["GET"]));
    assert_eq!(schema["properties"]["method"]["default"], "GET");
    assert_eq!(schema["properties"]["query"]["properties"], json!({"q": {"type": "string"}}));
    assert_eq!(schema["properties"]["headers"]["properties"], json!({"accept": {"type": "string"}}));
    assert!(schema["properties"]["path"]["description"].as_str().unwrap().contains("^/v1/items$"));

    let write = tool(tools, "shop__items_write");
    let description = write["description"].as_str().unwrap();
    for part in ["shop", "POST", "^/v1/items$", "Risk tier high", "needs human approval"] {
        assert!(description.contains(part), "{description}");
    }
    assert_eq!(write["annotations"]["readOnlyHint"], false);
    assert_eq!(write["annotations"]["destructiveHint"], true);
}

/// The Python SDK over stdio (the newest revision it negotiates, and the handshake era): tools with
/// their schemas and annotations; a call that reaches the upstream with the injected secret; a
/// refusal with Steward's code; an approval explained, the same approval again on a repeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_stdio_lists_calls_and_explains_refusals_and_approvals() {
    python();
    let mut fx = fixture().await;
    let write = json!({"tool": "shop__items_write", "arguments": {"method": "POST", "path": "/v1/items", "body": {"name": "x"}}});
    let calls = json!([
        {"tool": "shop__items_read", "arguments": {"path": "/v1/items", "query": {"q": "shoes"},
                                                   "headers": {"accept": "application/json"}}},
        {"tool": "shop__items_read", "arguments": {"path": "/v1/elsewhere"}},
        {"tool": "shop__items_delete", "arguments": {"path": "/v1/items/7"}},
        write,
        write,
        {"tool": "shop__items_read", "arguments": {"path": "/v1/items", "bogus": 1}},
    ]);
    let (report, log) = fx.python_client("auto", &[], calls).await;
    assert_eq!(report["protocol_version"], "2026-07-28", "the newest revision both speak: {report}");
    assert_tools(&report["tools"]);
    let results = report["results"].as_array().unwrap();

    let ok = &results[0];
    assert_eq!(ok["is_error"], false, "{ok}");
    assert_eq!(ok["content_items"], 1);
    assert_eq!(ok["text"], r#"{"ok":true}"#);
    assert_eq!(ok["structured"]["status_code"], 200);
    assert_eq!(ok["structured"]["body"], json!({"ok": true}));
    assert_eq!(ok["structured"]["headers"]["content-type"], "application/json");
    let received = fx.upstream.received();
    assert_eq!(received.len(), 1, "only the allowed call reached the upstream");
    assert_eq!(received[0].method, "GET");
    assert_eq!(received[0].target, "/v1/items?q=shoes");
    assert_eq!(received[0].header("authorization"), Some(format!("Bearer {SECRET}").as_str()));
    assert_eq!(received[0].header("accept"), Some("application/json"));

    let refused = &results[1];
    assert_eq!(refused["is_error"], true);
    let text = refused["text"].as_str().unwrap();
    assert!(text.starts_with("no_matching_group: ") && text.contains("(correlation "), "{text}");
    let denied = results[2]["text"].as_str().unwrap();
    assert_eq!(results[2]["is_error"], true);
    assert!(denied.starts_with("policy_default_deny: ") && denied.contains("(correlation "), "{denied}");

    let approval = &results[3];
    assert_eq!(approval["is_error"], true);
    let text = approval["text"].as_str().unwrap();
    let approval_id = approval["structured"]["approval_id"].as_str().unwrap();
    assert!(approval_id.starts_with("apr_"), "{approval}");
    for part in
        ["approval_required: ", approval_id, &format!("steward admin approvals approve {approval_id} --once")]
    {
        assert!(text.contains(part), "{text}");
    }
    assert_eq!(results[4]["structured"]["approval_id"], approval_id, "a repeat reuses the pending approval");
    assert_eq!(fx.pending_approvals().await.len(), 1);
    assert_eq!(results[5]["is_error"], true, "bad arguments are a tool error, not a protocol error");
    assert!(
        results[5]["text"].as_str().unwrap().starts_with("invalid_arguments: unknown argument \"bogus\"")
    );
    assert_eq!(fx.upstream.count(), 1);
    assert!(!log.contains(SECRET), "no secret in the log");
    assert!(log.contains("\"event\":\"tool_call\""), "{log}");

    // The handshake era (initialize), as older clients speak it; DPoP-bound sessions this time.
    let calls = json!([{"tool": "shop__items_read", "arguments": {"path": "/v1/items"}}]);
    let (report, _) = fx.python_client("legacy", &["--dpop"], calls).await;
    assert_eq!(report["negotiated_by"], "initialize");
    assert_eq!(report["protocol_version"], "2025-11-25");
    assert_tools(&report["tools"]);
    assert_eq!(report["results"][0]["structured"]["status_code"], 200);
    assert_eq!(fx.upstream.count(), 2);
    assert!(fx.identity.join("dpop.key").exists(), "the DPoP key kept next to the identity");
    assert_eq!(terminate(&mut fx.child).code(), Some(0));
}

/// `--approval-wait 30`: the call waits (progress notifications carry the approve command), the
/// test approves it through the admin API meanwhile, and the call returns the executed result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_call_waits_for_an_approval_then_executes() {
    python();
    let mut fx = fixture().await;
    let calls = json!([{"tool": "shop__items_write", "progress": true,
        "arguments": {"path": "/v1/items", "body": {"name": "waited"}}}]);
    let approver = async {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(pending) = fx.pending_approvals().await.first() {
                let id = pending["approval_id"].as_str().unwrap().to_owned();
                // Let at least one progress notification go out first.
                tokio::time::sleep(Duration::from_millis(2500)).await;
                let path = format!("/v1/approvals/{id}/approve");
                admin(&fx.ports, &fx.token, Method::POST, &path, Some(json!({"mode": "once"}))).await;
                return id;
            }
            assert!(Instant::now() < deadline, "no approval became pending");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let started = Instant::now();
    let ((report, _), approval_id) =
        tokio::join!(fx.python_client("auto", &["--approval-wait", "30"], calls), approver);
    let result = &report["results"][0];
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["structured"]["status_code"], 200);
    assert!(started.elapsed() < Duration::from_secs(30));
    let progress = result["progress"].as_array().unwrap();
    assert!(!progress.is_empty(), "progress notifications while waiting: {result}");
    let message = progress[0]["message"].as_str().unwrap();
    assert!(message.contains(&format!("steward admin approvals approve {approval_id} --once")), "{message}");
    let received = fx.upstream.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, "POST");
    assert_eq!(received[0].body, br#"{"name":"waited"}"#);
    assert_eq!(received[0].header("authorization"), Some(format!("Bearer {SECRET}").as_str()));
    assert_eq!(terminate(&mut fx.child).code(), Some(0));
}

impl Fixture {
    /// `steward mcp --transport http` on a free port with a token file; its URL, token and process.
    fn spawn_http(&self) -> (String, String, std::process::Child) {
        let port = free_port().unwrap();
        let token_file = self.root.join(format!("mcp-token-{port}"));
        let mut server = steward()
            .args(self.mcp_args(&[
                "--transport",
                "http",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--token-file",
            ]))
            .arg(&token_file)
            .arg("--broker-url")
            .arg(&self.broker_url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The first stdout line says where it listens, once it does.
        let mut stdout = std::io::BufReader::new(server.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        let url = format!("http://127.0.0.1:{port}/mcp");
        assert_eq!(line.trim(), format!("STEWARD_MCP_URL={url}"), "stdout: {line}");
        let token = std::fs::read_to_string(&token_file).unwrap().trim().to_owned();
        assert!(token.starts_with("stw_gw_") && token.len() == 7 + 43, "{token}");
        line.clear();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert_eq!(line.trim(), format!("STEWARD_MCP_TOKEN={token}"), "the token of --token-file is printed");
        assert_eq!(mode_of(&token_file), 0o600);
        (url, token, server)
    }
}

/// The TypeScript SDK over Streamable HTTP (2025-11-25, with a session): with the local token it
/// lists and calls; so does the Python SDK (2026-07-28, stateless); without the token the server
/// answers 401 `gateway_token_invalid` and the SDK cannot connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_over_streamable_http_needs_the_local_token() {
    let node = node();
    python();
    let mut fx = fixture().await;
    let (url, token, mut server) = fx.spawn_http();
    let port: u16 = url.trim_end_matches("/mcp").rsplit(':').next().unwrap().parse().unwrap();

    let run_node = |token: Option<&str>| {
        let plan = json!({"url": url, "token": token,
            "calls": [{"tool": "shop__items_read", "arguments": {"path": "/v1/items", "query": {"q": "hats"}}}]});
        let output = std::process::Command::new(node)
            .arg(clients_dir().join("mcp_http_client.mjs"))
            .arg(plan.to_string())
            .current_dir(clients_dir())
            .output()
            .unwrap();
        assert!(output.status.success(), "node client: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    let report = tokio::task::block_in_place(|| run_node(Some(&token)));
    assert!(report.get("connect_error").is_none(), "{report}");
    assert_eq!(report["protocol_version"], "2025-11-25", "the newest revision the TypeScript SDK speaks");
    assert_tools(&serde_json::to_value(&report["tools"]).unwrap());
    let result = &report["results"][0];
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["structured"]["body"], json!({"ok": true}));
    let received = fx.upstream.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].target, "/v1/items?q=hats");
    assert_eq!(received[0].header("authorization"), Some(format!("Bearer {SECRET}").as_str()));

    // The Python SDK over the same endpoint speaks the stateless 2026-07-28 revision.
    let plan = json!({"url": url, "token": token, "mode": "auto",
        "calls": [{"tool": "shop__items_read", "arguments": {"path": "/v1/items", "query": {"q": "caps"}}}]});
    let (report, _) = run_python(plan).await;
    assert_eq!(report["protocol_version"], "2026-07-28", "{report}");
    assert_tools(&report["tools"]);
    assert_eq!(report["results"][0]["structured"]["status_code"], 200, "{report}");
    assert_eq!(fx.upstream.received()[1].target, "/v1/items?q=caps");

    let refused = tokio::task::block_in_place(|| run_node(None));
    let error =
        refused["connect_error"].as_str().unwrap_or_else(|| panic!("connected without a token: {refused}"));
    assert_eq!(refused["connect_error_code"], 401, "{refused}");
    assert!(error.contains("gateway_token_invalid"), "{error}");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let basic = format!("Basic {token}");
    for authorization in [None, Some("Bearer stw_gw_wrong"), Some(basic.as_str())] {
        let mut headers =
            vec![("content-type", "application/json"), ("accept", "application/json, text/event-stream")];
        if let Some(value) = authorization {
            headers.push(("authorization", value));
        }
        let response =
            steward_testkit::http_client::request(addr, None, Method::POST, "/mcp", &headers, body)
                .await
                .unwrap();
        assert_eq!(response.status, 401, "{authorization:?}");
        assert_eq!(response.json()["error"], "gateway_token_invalid");
    }
    assert_eq!(fx.upstream.count(), 2);

    assert_eq!(terminate(&mut server).code(), Some(0), "SIGTERM stops steward mcp cleanly");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut log).unwrap();
    assert!(!log.contains(&token) && !log.contains(SECRET), "no token or secret in the log: {log}");
    assert_eq!(terminate(&mut fx.child).code(), Some(0));
}

/// `manifest.ttl_seconds = 30`: a new integration appears in the manifest, `steward mcp` notices
/// at its next poll and sends `notifications/tools/list_changed`; `tools/list` then has its tools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_change_sends_tools_list_changed() {
    let node = node();
    let mut fx = fixture_with(&[("STEWARD_MANIFEST__TTL_SECONDS", "30")]).await;
    let (url, token, mut server) = fx.spawn_http();
    let plan = json!({"url": url, "token": token, "calls": [], "await_list_changed_seconds": 120});
    let mut client = tokio::process::Command::new(node)
        .arg(clients_dir().join("mcp_http_client.mjs"))
        .arg(plan.to_string())
        .current_dir(clients_dir())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(client.stdout.take().unwrap()));
    let ready = lines.next_line().await.unwrap().unwrap();
    let connected = Instant::now();
    assert_eq!(ready, r#"{"ready":true}"#);

    let integration = json!({"name": "shop2", "provider": "shop", "template_id": "tpl_mcp_shop",
        "secret": {"type": "api_key", "value": "sk-other-0123456789"}});
    let path = format!("/v1/tenants/{}/integrations", fx.tenant_id);
    admin(&fx.ports, &fx.token, Method::POST, &path, Some(integration)).await;

    let report =
        tokio::time::timeout(Duration::from_secs(150), lines.next_line()).await.unwrap().unwrap().unwrap();
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["list_changed"], true, "{report}");
    // Noticed at the first poll after the change: one manifest TTL after start, plus slack.
    assert!(connected.elapsed() < Duration::from_secs(50), "{:?}", connected.elapsed());
    let mut after: Vec<&str> =
        report["tools_after"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    after.sort_unstable();
    assert_eq!(after.len(), 6, "{after:?}");
    assert!(after.contains(&"shop2__items_read") && after.contains(&"shop__items_read"), "{after:?}");
    assert!(client.wait().await.unwrap().success());
    assert_eq!(terminate(&mut server).code(), Some(0));
    let mut log = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut log).unwrap();
    assert!(log.contains(r#""event":"tools_changed""#), "{log}");
    assert_eq!(terminate(&mut fx.child).code(), Some(0));
}
