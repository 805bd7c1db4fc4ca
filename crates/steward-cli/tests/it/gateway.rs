//! `steward gateway` and `steward run` (`spec/gateway.md` §2) against a running `steward serve`: the
//! real binary, a real enrolled workload identity, plain HTTP on loopback.
//!
//! The `forward_fixture` tests exercise `/v1/forward/…` on the broker.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};
use steward_testkit::http_client::{TestResponse, request};
use steward_testkit::templates::{self, group, items_write};

use crate::common::*;

/// Enrolls the fixture's workload into `<root>/identity` with `steward enroll`.
fn enroll(fixture: &WorkloadFixture, root: &Path) -> PathBuf {
    enroll_identity(&fixture.enrollment_token, &fixture.broker_url, &fixture.data, root.join("identity"))
}

async fn add_integration(fixture: &WorkloadFixture, name: &str, provider: &str, template: &str) -> Value {
    admin_api(
        &fixture.ports,
        &fixture.token,
        Method::POST,
        &format!("/v1/tenants/{}/integrations", fixture.tenant_id),
        Some(json!({"name": name, "provider": provider, "template_id": template,
                    "secret": {"type": "api_key", "value": format!("sk-{name}-0123456789")}})),
    )
    .await
}

/// A tenant template with the upstream's two host names on `port`.
fn template(tenant: &str, id: &str, hosts: &[&str], port: u16) -> Value {
    templates::template(id, "cli")
        .tenant(tenant)
        .port(port)
        .hosts(hosts)
        .group(
            group("items_read", &["GET"], &["^/v1/items(/.*)?$"])
                .query(&["q"])
                .headers(&["accept", "x-trace"])
                .constraints(json!({"allow_encoded_slashes": true})),
        )
        .group(items_write())
        .build()
}

/// A `steward gateway` process with `--print-env`; stdout and stderr go to files.
struct Gateway {
    child: Child,
    addr: SocketAddr,
    url: String,
    token: String,
    env: String,
    stderr: PathBuf,
}

impl Gateway {
    async fn start(identity: &Path, dir: &Path, extra: &[&str]) -> Gateway {
        let port = free_port().unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let (out, err) = (dir.join(format!("gw-{port}.out")), dir.join(format!("gw-{port}.err")));
        let mut command = steward();
        command
            .args(["gateway", "--print-env", "--listen", &addr.to_string(), "--identity"])
            .arg(identity)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        let mut child = command.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if let Some(token) = env_value(&text, "STEWARD_GATEWAY_TOKEN") {
                let url = format!("http://{addr}");
                let answer = get(addr, "/_steward/env", &[("x-api-key", &token)]).await;
                assert_eq!(answer.status, 200);
                let env = String::from_utf8(answer.body.to_vec()).unwrap();
                // Wait until every line of --print-env is written: they are the lines /_steward/env serves.
                if text == env {
                    return Gateway { child, addr, url, token, env, stderr: err };
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("steward gateway exited with {status}: {}", std::fs::read_to_string(&err).unwrap());
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not start: {}",
                std::fs::read_to_string(&err).unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap()
    }

    async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> TestResponse {
        request(self.addr, None, method, path, headers, body.to_owned()).await.unwrap()
    }

    async fn get_with_token(&self, path: &str) -> TestResponse {
        self.send(Method::GET, path, &[("x-api-key", &self.token)], "").await
    }
}

async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> TestResponse {
    request(addr, None, Method::GET, path, headers, "").await.unwrap()
}

fn env_value(lines: &str, name: &str) -> Option<String> {
    lines.lines().find_map(|line| line.strip_prefix(&format!("export {name}=")).map(str::to_owned))
}

/// The nested error shape of forward mode, with its `steward-error` header.
fn assert_refusal(response: &TestResponse, status: u16, code: &str) -> String {
    assert_eq!(response.status, status, "{}", String::from_utf8_lossy(&response.body));
    assert_eq!(response.headers.get("steward-error").and_then(|v| v.to_str().ok()), Some(code));
    let body = response.json();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], code, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let correlation_id = body["error"]["correlation_id"].as_str().unwrap();
    assert_eq!(response.headers.get("x-correlation-id").unwrap(), correlation_id);
    body["error"]["message"].as_str().unwrap().to_owned()
}

fn assert_json_lines_without(logs: &str, secret: &str) {
    assert!(!logs.is_empty());
    for line in logs.lines() {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(value["timestamp"].is_string() && value["message"].is_string(), "{line}");
    }
    assert!(!logs.contains(secret), "a token reached the logs");
}

#[tokio::test]
async fn gateway_token_routes_env_and_sigterm() {
    let temp = tempfile::tempdir().unwrap();
    let mut fixture = serve_with_workload(temp.path()).await;
    add_integration(&fixture, "claude", "anthropic", "tpl_anthropic").await;
    add_integration(&fixture, "openai-2", "openai", "tpl_openai").await;
    let multi = template(&fixture.tenant_id, "tpl_multi", &["api.example.test", "other.example.test"], 8443);
    admin_api(&fixture.ports, &fixture.token, Method::POST, "/v1/templates", Some(multi)).await;
    add_integration(&fixture, "multi", "cli", "tpl_multi").await;
    let identity = enroll(&fixture, temp.path());
    let gateway = Gateway::start(&identity, temp.path(), &[]).await;

    // --print-env: the gateway, then the first openai and anthropic integrations by name.
    let token = gateway.token.clone();
    assert!(token.starts_with("stw_gw_") && token.len() == 7 + 43, "{token}");
    let url = &gateway.url;
    assert_eq!(
        gateway.env,
        format!(
            "export STEWARD_GATEWAY_URL={url}\nexport STEWARD_GATEWAY_TOKEN={token}\n\
             export OPENAI_BASE_URL={url}/openai/v1\nexport OPENAI_API_KEY={token}\n\
             export ANTHROPIC_BASE_URL={url}/claude\nexport ANTHROPIC_API_KEY={token}\n"
        )
    );

    // The health check needs no token; everything else does, in any of the three slots.
    let health = get(gateway.addr, "/_steward/healthz", &[]).await;
    assert_eq!((health.status, health.json()), (200, json!({"status": "ok"})));
    let bearer = format!("Bearer {token}");
    for slot in [("authorization", bearer.as_str()), ("x-api-key", &token), ("api-key", &token)] {
        let answer = gateway.send(Method::GET, "/_steward/env", &[slot], "").await;
        assert_eq!(answer.status, 200, "{slot:?}");
        assert_eq!(String::from_utf8_lossy(&answer.body), gateway.env);
    }
    let wrong = format!("stw_gw_{}", "A".repeat(43));
    let wrong_bearer = format!("Bearer {wrong}");
    let bare = token.clone();
    for headers in [
        vec![],
        vec![("authorization", wrong_bearer.as_str())],
        vec![("x-api-key", wrong.as_str())],
        vec![("api-key", wrong.as_str())],
        vec![("authorization", bare.as_str())],
        vec![("x-other-key", bare.as_str())],
    ] {
        for path in ["/openai/v1/models", "/_steward/env", "/nope/x"] {
            let answer = gateway.send(Method::GET, path, &headers, "").await;
            let message = assert_refusal(&answer, 401, "gateway_token_invalid");
            assert!(message.contains("x-api-key"), "{message}");
        }
    }

    // Unknown routes.
    for path in ["/nope/v1/models", "/", "/_steward/other", "/_host/unknown.example/v1"] {
        let message = assert_refusal(&gateway.get_with_token(path).await, 404, "gateway_route_not_found");
        assert!(!message.is_empty(), "{path}");
    }
    // An integration with several hosts is reached through /_host/ routes only.
    let message =
        assert_refusal(&gateway.get_with_token("/multi/v1/items").await, 404, "gateway_route_not_found");
    assert!(
        message.contains("/_host/api.example.test/") && message.contains("/_host/other.example.test/"),
        "{message}"
    );

    // Two integrations cover api.openai.com: 409 naming both, unless one is chosen.
    let message = assert_refusal(
        &gateway.get_with_token("/_host/api.openai.com/v1/models").await,
        409,
        "gateway_host_ambiguous",
    );
    assert!(message.contains("openai") && message.contains("openai-2"), "{message}");
    let message = assert_refusal(
        &gateway.get_with_token("/_host/api.openai.com/v1/models?integration=claude").await,
        404,
        "gateway_route_not_found",
    );
    assert!(message.contains("does not cover"), "{message}");
    let by_header = gateway
        .send(
            Method::GET,
            "/_host/api.openai.com/v1/models",
            &[("x-api-key", &token), ("steward-integration", "claude")],
            "",
        )
        .await;
    assert_refusal(&by_header, 404, "gateway_route_not_found");
    // A valid choice (query key or header) passes the gateway: whatever answers is not its refusal.
    for (path, selector) in [
        ("/_host/api.openai.com/v1/models?integration=openai-2", None),
        ("/_host/api.openai.com/v1/models", Some("openai")),
    ] {
        let mut headers = vec![("x-api-key", token.as_str())];
        if let Some(selector) = selector {
            headers.push(("steward-integration", selector));
        }
        let answer = gateway.send(Method::GET, path, &headers, "").await;
        let code =
            answer.headers.get("steward-error").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        assert!(!code.starts_with("gateway_"), "{path}: {} {code}", answer.status);
    }

    // SIGTERM: exit 0; the logs are JSON lines without the token.
    let mut child = gateway.child;
    let status = terminate(&mut child);
    assert_eq!(status.code(), Some(0));
    let logs = std::fs::read_to_string(&gateway.stderr).unwrap();
    assert_json_lines_without(&logs, &token);
    assert!(logs.contains("\"message\":\"listening\""), "{logs}");
    assert_eq!(terminate(&mut fixture.child).code(), Some(0));
}

#[tokio::test]
async fn token_file_is_private_and_reused_and_an_unreachable_broker_is_502() {
    let temp = tempfile::tempdir().unwrap();
    let mut fixture = serve_with_workload(temp.path()).await;
    let identity = enroll(&fixture, temp.path());
    let token_file = temp.path().join("gateway-token");

    let first = Gateway::start(&identity, temp.path(), &["--token-file", token_file.to_str().unwrap()]).await;
    assert_eq!(mode_of(&token_file), 0o600);
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), first.token);
    let mut child = first.child;
    assert_eq!(terminate(&mut child).code(), Some(0));

    let second =
        Gateway::start(&identity, temp.path(), &["--token-file", token_file.to_str().unwrap()]).await;
    assert_eq!(second.token, first.token, "the token file is reused");
    // Without --token-file, every start has its own token.
    let third = Gateway::start(&identity, temp.path(), &[]).await;
    assert_ne!(third.token, first.token);

    // The broker goes away: forwarded requests are 502 gateway_broker_unreachable; the gateway's own
    // routes still answer.
    assert_eq!(terminate(&mut fixture.child).code(), Some(0));
    let message =
        assert_refusal(&second.get_with_token("/openai/v1/models").await, 502, "gateway_broker_unreachable");
    assert!(message.contains(&fixture.broker_url), "{message}");
    assert_eq!(get(second.addr, "/_steward/healthz", &[]).await.status, 200);
    for gateway in [second, third] {
        let mut child = gateway.child;
        assert_eq!(terminate(&mut child).code(), Some(0));
    }
}

#[tokio::test]
async fn a_gateway_refuses_to_start_without_a_broker_or_off_loopback() {
    let temp = tempfile::tempdir().unwrap();
    let mut fixture = serve_with_workload(temp.path()).await;
    let identity = enroll(&fixture, temp.path());
    let output = run(steward().args(["gateway", "--listen", "0.0.0.0:0", "--identity"]).arg(&identity));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("loopback"), "{}", stderr(&output));
    assert_eq!(terminate(&mut fixture.child).code(), Some(0));
    let output = run(steward().args(["gateway", "--listen", "127.0.0.1:0", "--identity"]).arg(&identity));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("is steward serve running there?"), "{}", stderr(&output));
}

fn python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients/.venv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/install-test-clients", python.display());
    python
}

#[tokio::test]
async fn steward_run_gives_the_child_the_environment_and_returns_its_exit_code() {
    let temp = tempfile::tempdir().unwrap();
    let mut fixture = serve_with_workload(temp.path()).await;
    let identity = enroll(&fixture, temp.path());

    // The child sees the variables and reaches the gateway with the token; its exit code is ours.
    let script = r#"
import os, sys, urllib.request
url, token = os.environ["STEWARD_GATEWAY_URL"], os.environ["STEWARD_GATEWAY_TOKEN"]
assert os.environ["OPENAI_BASE_URL"] == url + "/openai/v1", os.environ["OPENAI_BASE_URL"]
assert os.environ["OPENAI_API_KEY"] == token and "ANTHROPIC_BASE_URL" not in os.environ
request = urllib.request.Request(url + "/_steward/env", headers={"authorization": "Bearer " + token})
print(urllib.request.urlopen(request).read().decode(), end="")
sys.exit(7)
"#;
    let output = run(steward()
        .args(["run", "--identity"])
        .arg(&identity)
        .arg("--")
        .arg(python())
        .args(["-c", script]));
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let token = env_value(&stdout, "STEWARD_GATEWAY_TOKEN").unwrap();
    assert!(token.starts_with("stw_gw_"), "{stdout}");
    assert!(env_value(&stdout, "STEWARD_GATEWAY_URL").unwrap().starts_with("http://127.0.0.1:"), "{stdout}");

    // A child ended by a signal: 128 + n. Arguments after -- are the child's, flags included.
    let output =
        run(steward().args(["run", "--identity"]).arg(&identity).args(["--", "sh", "-c", "kill -TERM $$"]));
    assert_eq!(output.status.code(), Some(128 + 15), "{}", stderr(&output));
    let output = run(steward()
        .args(["run", "--identity"])
        .arg(&identity)
        .args(["--", "sh", "-c", "exit 0", "--help"]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    // A SIGTERM to steward run goes to the child, whose exit code is returned.
    let mut running = steward()
        .args(["run", "--identity"])
        .arg(&identity)
        .args(["--", "sh", "-c", "trap 'exit 3' TERM; echo started; while :; do sleep 0.1; done"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(running.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "started\n");
    assert_eq!(terminate(&mut running).code(), Some(3));
    // A command that cannot start: 127.
    let output = run(steward().args(["run", "--identity"]).arg(&identity).args(["--", "/nonexistent/agent"]));
    assert_eq!(output.status.code(), Some(127), "{}", stderr(&output));
    assert_eq!(terminate(&mut fixture.child).code(), Some(0));
}

#[tokio::test]
async fn the_certificate_is_renewed_when_a_third_of_its_lifetime_is_left() {
    install_crypto_provider();
    let temp = tempfile::tempdir().unwrap();
    let mut fixture = serve_with_workload(temp.path()).await;
    // 60 s requested (plus the server's 5 min backdating): less than a third is left at once.
    let identity = temp.path().join("identity");
    let ca_pem = std::fs::read_to_string(fixture.data.join("ca.crt")).unwrap();
    let (_, enrolled) = steward_client::enroll::enroll(
        &fixture.broker_url,
        &ca_pem,
        &fixture.enrollment_token,
        steward_client::KeyType::P256,
        Some(60),
        &identity,
    )
    .await
    .unwrap();
    let key_before = std::fs::read_to_string(identity.join("workload.key")).unwrap();

    let gateway = Gateway::start(&identity, temp.path(), &["--dpop"]).await;
    let logs = gateway.logs();
    assert!(logs.contains("certificate renewed"), "{logs}");
    let renewed = steward_client::Identity::load(&identity).unwrap();
    assert_ne!(renewed.cert_pem, enrolled.client_cert_pem, "a new certificate was written");
    assert_eq!(*renewed.key_pem, key_before, "the key is kept");
    let (not_before, not_after) = renewed.certificate_validity().unwrap();
    assert_eq!(not_after - not_before, 360, "the same lifetime was asked for");
    assert_eq!(renewed.workload_id().unwrap(), fixture.workload_id);
    // The manifest was fetched with the renewed certificate and a DPoP-bound session.
    assert!(logs.contains("\"dpop\":true"), "{logs}");
    assert!(logs.contains("manifest verified"), "{logs}");
    let leftovers: Vec<_> = std::fs::read_dir(&identity)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let mut child = gateway.child;
    assert_eq!(terminate(&mut child).code(), Some(0));
    assert_eq!(terminate(&mut fixture.child).code(), Some(0));
}

// ---- Forward mode: these need `/v1/forward/…` on the server. ----

/// A server whose `cli` integration (template [`template`]) reaches a local HTTPS upstream as
/// `api.example.test` / `other.example.test`, an allow rule for `items_read`, and an enrolled workload.
struct ForwardFixture {
    _temp: tempfile::TempDir,
    server: Child,
    ports: Ports,
    admin_token: String,
    upstream: steward_testkit::TestUpstream,
    /// The `sse` integration's upstream (`other.example.test`): one answer, its events sent by the test.
    sse_events: tokio::sync::mpsc::Sender<bytes::Bytes>,
    identity: PathBuf,
    workload_id: String,
    dir: PathBuf,
}

async fn forward_fixture() -> ForwardFixture {
    install_crypto_provider();
    let upstream = steward_testkit::TestUpstream::start().await.unwrap();
    let (sse_port, sse_ca, sse_events) = sse_upstream().await;
    let temp = tempfile::tempdir().unwrap();
    let hosts = ["api.example.test", "other.example.test"];
    let cas = format!("{}\n{sse_ca}", upstream.ca_pem);
    let (data, ports, broker_url, serve) = loopback_serve_command(temp.path(), &hosts, &cas);
    let server = spawn_serving(serve, &ports).await;
    let admin_token = std::fs::read_to_string(data.join("admin-token")).unwrap().trim().to_owned();
    let admin = |method, path: String, body| {
        let (ports, token) = (&ports, &admin_token);
        async move { admin_api(ports, token, method, &path, body).await }
    };
    let tenant = admin(Method::POST, "/v1/tenants".into(), Some(json!({"name": "acme"}))).await;
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_owned();
    let single = template(&tenant_id, "tpl_cli", &hosts[..1], upstream.port());
    admin(Method::POST, "/v1/templates".into(), Some(single)).await;
    let integration = admin(
        Method::POST,
        format!("/v1/tenants/{tenant_id}/integrations"),
        Some(json!({"name": "cli", "provider": "cli", "template_id": "tpl_cli",
                    "secret": {"type": "api_key", "value": "sk-cli-secret-0123456789"}})),
    )
    .await;
    let integration_id = integration["integration_id"].as_str().unwrap().to_owned();
    let allow = json!({"rule_type": "allow", "scope": {"tenant_id": tenant_id, "integration_id": integration_id,
        "action_group": "items_read", "method": "GET", "host": "api.example.test"}});
    admin(Method::POST, "/v1/policies".into(), Some(allow)).await;
    let sse = template(&tenant_id, "tpl_sse", &hosts[1..], sse_port);
    admin(Method::POST, "/v1/templates".into(), Some(sse)).await;
    let integration = admin(
        Method::POST,
        format!("/v1/tenants/{tenant_id}/integrations"),
        Some(json!({"name": "sse", "provider": "cli", "template_id": "tpl_sse",
                    "secret": {"type": "api_key", "value": "sk-sse-secret-0123456789"}})),
    )
    .await;
    let allow = json!({"rule_type": "allow", "scope": {"tenant_id": tenant_id,
        "integration_id": integration["integration_id"], "action_group": "items_read", "method": "GET",
        "host": "other.example.test"}});
    admin(Method::POST, "/v1/policies".into(), Some(allow)).await;
    let workload =
        admin(Method::POST, format!("/v1/tenants/{tenant_id}/workloads"), Some(json!({"name": "agent"})))
            .await;
    let identity = enroll_identity(
        workload["enrollment_token"].as_str().unwrap(),
        &broker_url,
        &data,
        temp.path().join("identity"),
    );
    let dir = temp.path().to_path_buf();
    let workload_id = workload["workload_id"].as_str().unwrap().to_owned();
    ForwardFixture {
        _temp: temp,
        server,
        ports,
        admin_token,
        upstream,
        sse_events,
        identity,
        workload_id,
        dir,
    }
}

/// An HTTPS upstream for `other.example.test` whose first answer is `text/event-stream` made of the
/// chunks sent on the returned channel (the body ends when the sender is dropped).
async fn sse_upstream() -> (u16, String, tokio::sync::mpsc::Sender<bytes::Bytes>) {
    use std::sync::{Arc, Mutex};

    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::Frame;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    let ca = steward_testkit::pki::TestCa::new("sse upstream CA").unwrap();
    let leaf = ca.server_cert(&["other.example.test"]).unwrap();
    let chain =
        CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, receiver) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
    let receiver = Arc::new(Mutex::new(Some(receiver)));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, receiver) = (acceptor.clone(), receiver.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service =
                    hyper::service::service_fn(move |_request: hyper::Request<hyper::body::Incoming>| {
                        let events = receiver.lock().unwrap().take();
                        async move {
                            let frames = futures::stream::unfold(events, |events| async move {
                                let mut events = events?;
                                let chunk = events.recv().await?;
                                Some((Ok::<_, std::convert::Infallible>(Frame::data(chunk)), Some(events)))
                            });
                            let response = hyper::Response::builder()
                                .header("content-type", "text/event-stream")
                                .body(BodyExt::boxed(StreamBody::new(frames)))
                                .unwrap();
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, ca.cert_pem.clone(), sender)
}

/// Reads from `stream` into `buffer` until it contains `needle` (10 s at most).
async fn read_until(stream: &mut tokio::net::TcpStream, buffer: &mut Vec<u8>, needle: &str) {
    use tokio::io::AsyncReadExt;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(buffer).contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout(left, stream.read(&mut chunk)).await;
        let Ok(Ok(n)) = read else {
            panic!("{needle:?} did not arrive: {}", String::from_utf8_lossy(buffer))
        };
        assert!(n > 0, "the stream ended before {needle:?}: {}", String::from_utf8_lossy(buffer));
        buffer.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_flow_through_one_by_one() {
    use tokio::io::AsyncWriteExt;
    let mut f = forward_fixture().await;
    let gateway = Gateway::start(&f.identity, &f.dir, &[]).await;
    // A raw connection to the local gateway (a test client, not an outbound call of Steward).
    #[allow(clippy::disallowed_methods)]
    let mut stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let head = format!(
        "GET /sse/v1/items/stream HTTP/1.1\r\nhost: {}\r\nx-api-key: {}\r\naccept: text/event-stream\r\n\r\n",
        gateway.addr, gateway.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    // Each event reaches the client before the upstream sends the next one.
    f.sse_events.send(bytes::Bytes::from_static(b"event: delta\ndata: one\n\n")).await.unwrap();
    read_until(&mut stream, &mut received, "data: one").await;
    assert!(
        String::from_utf8_lossy(&received).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&received)
    );
    assert!(
        String::from_utf8_lossy(&received).to_ascii_lowercase().contains("content-type: text/event-stream")
    );
    f.sse_events.send(bytes::Bytes::from_static(b"event: delta\ndata: two\n\n")).await.unwrap();
    read_until(&mut stream, &mut received, "data: two").await;
    assert!(!String::from_utf8_lossy(&received).contains("data: three"));
    f.sse_events.send(bytes::Bytes::from_static(b"data: three\n\n")).await.unwrap();
    read_until(&mut stream, &mut received, "data: three").await;

    // SIGTERM while a stream is open: the gateway waits for it to end, then exits 0.
    let mut child = gateway.child;
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(child.try_wait().unwrap().is_none(), "the gateway left before the stream ended");
    drop(f.sse_events);
    read_until(&mut stream, &mut received, "0\r\n\r\n").await;
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(terminate(&mut f.server).code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_keeps_the_raw_target_and_removes_the_local_token() {
    let mut f = forward_fixture().await;
    for dpop in [false, true] {
        let extra: &[&str] = if dpop { &["--dpop"] } else { &[] };
        let gateway = Gateway::start(&f.identity, &f.dir, extra).await;
        let before = f.upstream.count();
        let answer = gateway
            .send(
                Method::GET,
                "/cli/v1/items/a%2Fb?q=a%20b",
                &[("x-api-key", &gateway.token), ("x-trace", "t1")],
                "",
            )
            .await;
        assert_eq!(answer.status, 200, "dpop={dpop}: {}", String::from_utf8_lossy(&answer.body));
        assert_eq!(answer.json(), json!({"ok": true}));
        assert!(answer.headers.get("steward-error").is_none());
        // /_host/ route to the same upstream, token in authorization.
        let bearer = format!("Bearer {}", gateway.token);
        let host_route = format!("/_host/api.example.test:{}/v1/items?q=x", f.upstream.port());
        let answer = gateway.send(Method::GET, &host_route, &[("authorization", &bearer)], "").await;
        assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
        let received = f.upstream.received();
        assert_eq!(received.len(), before + 2);
        let first = &received[before];
        assert_eq!(first.target, "/v1/items/a%2Fb?q=a%20b", "path and query bytes unchanged");
        assert_eq!(first.header("x-trace"), Some("t1"));
        assert_eq!(first.header("authorization"), Some("Bearer sk-cli-secret-0123456789"));
        assert!(first.header("x-api-key").is_none(), "the local token is removed");
        assert_eq!(received[before + 1].target, "/v1/items?q=x");
        // Sessions revoked behind the gateway's back: the next request is sent again with a new one.
        admin_api(
            &f.ports,
            &f.admin_token,
            Method::POST,
            &format!("/v1/workloads/{}/sessions/revoke", f.workload_id),
            None,
        )
        .await;
        let answer = gateway.get_with_token("/cli/v1/items?q=again").await;
        assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
        assert!(gateway.logs().contains("retrying once with a new session"));
        assert_eq!(f.upstream.count(), before + 3);
        let mut child = gateway.child;
        assert_eq!(terminate(&mut child).code(), Some(0));
    }
    // Steward's own refusals pass through unchanged (a query key the template does not allow).
    let gateway = Gateway::start(&f.identity, &f.dir, &[]).await;
    let answer = gateway.get_with_token("/cli/v1/items?secret=1").await;
    assert!(answer.status >= 400, "{}", answer.status);
    let code = answer.headers.get("steward-error").unwrap().to_str().unwrap().to_owned();
    assert!(!code.starts_with("gateway_"), "{code}");
    assert_eq!(answer.json()["error"]["code"], code.as_str());
    let mut child = gateway.child;
    assert_eq!(terminate(&mut child).code(), Some(0));
    assert_eq!(terminate(&mut f.server).code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_wait_sends_the_request_again_once_approved() {
    let mut f = forward_fixture().await;
    let body = r#"{"name":"shoes"}"#;
    let headers = |token: &str| {
        vec![("x-api-key".to_owned(), token.to_owned()), ("content-type".into(), "application/json".into())]
    };

    // Without --approval-wait: the 403 as Steward sent it.
    let gateway = Gateway::start(&f.identity, &f.dir, &[]).await;
    let h = headers(&gateway.token);
    let h: Vec<(&str, &str)> = h.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let answer = gateway.send(Method::POST, "/cli/v1/items", &h, body).await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.headers.get("steward-error").unwrap(), "approval_required");
    assert!(answer.headers.get("steward-approval-id").unwrap().to_str().unwrap().starts_with("apr_"));
    let mut child = gateway.child;
    assert_eq!(terminate(&mut child).code(), Some(0));

    // With it: the request is held, approved by the operator, sent again; the upstream sees it once.
    let gateway = Gateway::start(&f.identity, &f.dir, &["--approval-wait", "60"]).await;
    let before = f.upstream.count();
    let (addr, token) = (gateway.addr, gateway.token.clone());
    let pending = tokio::spawn(async move {
        let h = headers(&token);
        let h: Vec<(&str, &str)> = h.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        request(addr, None, Method::POST, "/cli/v1/items", &h, body).await.unwrap()
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let approval_id = loop {
        let logs = gateway.logs();
        if let Some(line) = logs.lines().find(|l| l.contains("approval required; waiting")) {
            let line: Value = serde_json::from_str(line).unwrap();
            let id = line["approval_id"].as_str().unwrap().to_owned();
            assert_eq!(line["approve_with"], format!("steward admin approvals approve {id} --once"));
            break id;
        }
        assert!(Instant::now() < deadline, "{logs}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    admin_api(
        &f.ports,
        &f.admin_token,
        Method::POST,
        &format!("/v1/approvals/{approval_id}/approve"),
        Some(json!({"mode": "once"})),
    )
    .await;
    let answer = pending.await.unwrap();
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(f.upstream.count(), before + 1);
    assert_eq!(f.upstream.received()[before].body, body.as_bytes());
    let mut child = gateway.child;
    assert_eq!(terminate(&mut child).code(), Some(0));
    assert_eq!(terminate(&mut f.server).code(), Some(0));
}
