//! `steward enroll` and `steward manifest` against a running `steward serve`, as a workload would
//! use them: the key is generated locally, the manifest verified against the keyset.

use crate::common;

use common::admin_api as admin;
use common::*;
use http::Method;
use serde_json::{Value, json};
use steward_testkit::templates::{self, items_read, items_write};

#[tokio::test]
async fn enroll_then_manifest_with_and_without_dpop() {
    let temp = tempfile::tempdir().unwrap();
    let WorkloadFixture {
        data,
        ports: _,
        broker_url,
        mut child,
        token: _,
        tenant_id: _,
        workload_id,
        enrollment_token,
    } = serve_with_workload(temp.path()).await;

    let identity = temp.path().join("identity");
    let output = run(steward()
        .args([
            "enroll",
            "--token",
            &enrollment_token,
            "--broker-url",
            &broker_url,
            "--key-type",
            "p256",
            "--out",
        ])
        .arg(&identity)
        .arg("--ca-file")
        .arg(data.join("ca.crt")));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(mode_of(&identity.join("workload.key")), 0o600);
    assert!(identity.join("workload.crt").exists() && identity.join("ca.crt").exists());

    // The token was used: a second enrollment fails with the broker's code and exit 1.
    let again = temp.path().join("again");
    let output = run(steward()
        .args(["enroll", "--token", &enrollment_token, "--broker-url", &broker_url, "--out"])
        .arg(&again)
        .arg("--ca-file")
        .arg(data.join("ca.crt")));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("enrollment_token_used"), "{}", stderr(&output));

    for dpop in [false, true] {
        let mut command = steward();
        command.args(["manifest", "--broker-url", &broker_url, "--identity"]).arg(&identity);
        if dpop {
            command.arg("--dpop");
            // A cached unbound session is not reused for a DPoP client.
        }
        let output = run(&mut command);
        assert!(output.status.success(), "dpop={dpop}: {}", stderr(&output));
        let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(manifest["workload_id"], workload_id.as_str());
        assert_eq!(manifest["match_rules"][0]["provider"], "openai");
        assert_eq!(mode_of(&identity.join("session.json")), 0o600);
    }
    assert!(identity.join("dpop.key").exists(), "the DPoP key is kept next to the identity");
    assert_eq!(terminate(&mut child).code(), Some(0));
}

fn call_template(tenant: &str, port: u16) -> Value {
    templates::template("tpl_cli", "cli")
        .tenant(tenant)
        .port(port)
        .group(items_read().query(&["q"]).headers(&["accept"]))
        .group(items_write())
        .build()
}

// Multi-threaded: the test blocks on the CLI processes while the upstream, on this runtime, answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_then_call_with_and_without_dpop_and_the_exit_codes() {
    install_crypto_provider();
    let upstream = steward_testkit::TestUpstream::start().await.unwrap();
    let temp = tempfile::tempdir().unwrap();
    let (data, ports, broker_url, serve) =
        loopback_serve_command(temp.path(), &["api.example.test"], &upstream.ca_pem);
    let mut child = spawn_serving(serve, &ports).await;
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap().trim().to_owned();

    let tenant = admin(&ports, &token, Method::POST, "/v1/tenants", Some(json!({"name": "acme"}))).await;
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_owned();
    admin(&ports, &token, Method::POST, "/v1/templates", Some(call_template(&tenant_id, upstream.port())))
        .await;
    let integration = admin(
        &ports,
        &token,
        Method::POST,
        &format!("/v1/tenants/{tenant_id}/integrations"),
        Some(json!({"name": "cli", "provider": "cli", "template_id": "tpl_cli",
                    "secret": {"type": "api_key", "value": "sk-cli-secret-0123456789"}})),
    )
    .await;
    let integration_id = integration["integration_id"].as_str().unwrap().to_owned();
    let allow = json!({"rule_type": "allow", "scope": {"tenant_id": tenant_id, "integration_id": integration_id,
        "action_group": "items_read", "method": "GET", "host": "api.example.test"}});
    admin(&ports, &token, Method::POST, "/v1/policies", Some(allow)).await;
    let workload = admin(
        &ports,
        &token,
        Method::POST,
        &format!("/v1/tenants/{tenant_id}/workloads"),
        Some(json!({"name": "a"})),
    )
    .await;
    let identity = temp.path().join("identity");
    let output = run(steward()
        .args([
            "enroll",
            "--token",
            workload["enrollment_token"].as_str().unwrap(),
            "--broker-url",
            &broker_url,
        ])
        .arg("--out")
        .arg(&identity)
        .arg("--ca-file")
        .arg(data.join("ca.crt")));
    assert!(output.status.success(), "{}", stderr(&output));

    let url = format!("https://api.example.test:{}/v1/items?q=shoes", upstream.port());
    let call = |extra: &[&str]| {
        let mut command = steward();
        command
            .args(["call", "--broker-url", &broker_url, "--integration", &integration_id, "--identity"])
            .arg(&identity)
            .args(extra);
        command
    };
    for dpop in [false, true] {
        let mut command = call(&["-v", "-H", "accept: application/json"]);
        if dpop {
            command.arg("--dpop");
        }
        let output = run(command.arg(&url));
        assert_eq!(output.status.code(), Some(0), "dpop={dpop}: {}", stderr(&output));
        assert_eq!(String::from_utf8_lossy(&output.stdout), r#"{"ok":true}"#);
        assert!(stderr(&output).contains("< status 200"), "{}", stderr(&output));
    }
    assert_eq!(upstream.count(), 2);
    let received = upstream.received();
    assert_eq!(received[0].header("authorization"), Some("Bearer sk-cli-secret-0123456789"));

    // --fail: an upstream 500 is still "executed", exit 4 only with --fail.
    upstream.respond(500, &[("content-type", "application/json")], b"{}");
    assert_eq!(run(call(&[]).arg(&url)).status.code(), Some(0));
    assert_eq!(run(call(&["--fail"]).arg(&url)).status.code(), Some(4));

    // Approval required: exit 3; a broker refusal (no allow rule for this query key): exit 1.
    let write = run(call(&["-X", "POST", "-H", "content-type: application/json", "-d", r#"{"name":"x"}"#])
        .arg(format!("https://api.example.test:{}/v1/items", upstream.port())));
    assert_eq!(write.status.code(), Some(3), "{}", stderr(&write));
    assert!(stderr(&write).contains("approval required"), "{}", stderr(&write));
    let refused =
        run(call(&[]).arg(format!("https://api.example.test:{}/v1/items?other=1", upstream.port())));
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("request_query_key_not_allowlisted"), "{}", stderr(&refused));
    assert_eq!(terminate(&mut child).code(), Some(0));
}

/// Runs an external tool the test relies on; a missing tool fails the test with the command that
/// installs it (never a silent skip).
fn external(program: &str, args: &[&str], cwd: &std::path::Path, install: &str) -> std::process::Output {
    match std::process::Command::new(program).args(args).current_dir(cwd).output() {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            panic!("{program} is not installed; this test needs it: {install}")
        }
        Err(error) => panic!("cannot run {program}: {error}"),
    }
}

/// `gateway.md` §3: with defaults, `steward enroll` writes a P-256 key as PKCS#8 PEM that OpenSSL 3
/// and Python's `ssl` load, and a `broker_url` file, so later commands need only `--identity`.
/// `--broker-url` and `STEWARD_BROKER_URL` still win over the file.
#[tokio::test]
async fn enroll_defaults_give_a_p256_pkcs8_key_and_a_broker_url_file() {
    let temp = tempfile::tempdir().unwrap();
    let WorkloadFixture {
        data,
        ports,
        broker_url,
        mut child,
        token,
        tenant_id: _,
        workload_id,
        enrollment_token,
    } = serve_with_workload(temp.path()).await;

    // Defaults only: no --key-type.
    let identity = temp.path().join("identity");
    let output = run(steward()
        .args(["enroll", "--token", &enrollment_token, "--broker-url"])
        .arg(format!("{broker_url}/"))
        .arg("--out")
        .arg(&identity)
        .arg("--ca-file")
        .arg(data.join("ca.crt")));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        std::fs::read_to_string(identity.join("broker_url")).unwrap(),
        format!("{broker_url}\n"),
        "the broker URL is kept next to the identity"
    );
    let key = std::fs::read_to_string(identity.join("workload.key")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM: {key}");

    let install_openssl = "apt-get install -y openssl";
    let checked = external("openssl", &["pkey", "-in", "workload.key", "-noout"], &identity, install_openssl);
    assert!(checked.status.success(), "openssl pkey: {}", String::from_utf8_lossy(&checked.stderr));
    let text =
        external("openssl", &["pkey", "-in", "workload.key", "-noout", "-text"], &identity, install_openssl);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("prime256v1") || text.contains("P-256"), "a P-256 key: {text}");
    let python = external(
        "python3",
        &[
            "-c",
            "import ssl; ctx=ssl.create_default_context(); ctx.load_cert_chain('workload.crt','workload.key')",
        ],
        &identity,
        "apt-get install -y python3",
    );
    assert!(python.status.success(), "python ssl: {}", String::from_utf8_lossy(&python.stderr));

    // Only --identity: the broker URL comes from the file.
    let output = run(steward().arg("manifest").arg("--identity").arg(&identity));
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(manifest["workload_id"], workload_id.as_str());

    // STEWARD_BROKER_URL wins over the file, --broker-url over both.
    let nowhere = format!("https://localhost:{}", free_port().unwrap());
    let output =
        run(steward().arg("manifest").arg("--identity").arg(&identity).env("STEWARD_BROKER_URL", &nowhere));
    assert_eq!(output.status.code(), Some(1), "the environment's URL was used: {}", stderr(&output));
    // An unreachable broker: the URL, where it came from, and what changes it.
    let file = identity.join("broker_url").display().to_string();
    let text = stderr(&output);
    for part in [
        format!("broker URL {nowhere} (from STEWARD_BROKER_URL)"),
        "is steward serve running there?".to_owned(),
        "--broker-url URL (or set STEWARD_BROKER_URL)".to_owned(),
        format!("write the right URL to {file}"),
    ] {
        assert!(text.contains(&part), "{part:?} missing: {text}");
    }
    let output = run(steward()
        .args(["manifest", "--broker-url", &broker_url, "--identity"])
        .arg(&identity)
        .env("STEWARD_BROKER_URL", &nowhere));
    assert!(output.status.success(), "{}", stderr(&output));

    // ed25519 stays available on request.
    let token_answer = admin(
        &ports,
        &token,
        Method::POST,
        &format!("/v1/workloads/{}/enrollment-token", &workload_id),
        None,
    )
    .await;
    let ed = temp.path().join("ed");
    let output = run(steward()
        .args([
            "enroll",
            "--key-type",
            "ed25519",
            "--token",
            token_answer["enrollment_token"].as_str().unwrap(),
        ])
        .args(["--broker-url", &broker_url, "--out"])
        .arg(&ed)
        .arg("--ca-file")
        .arg(data.join("ca.crt")));
    assert!(output.status.success(), "{}", stderr(&output));
    let output = run(steward().arg("manifest").arg("--identity").arg(&ed));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(terminate(&mut child).code(), Some(0));

    // The server is gone: a call through the identity's file says so and names the file.
    let output = run(steward()
        .args(["call", "--integration", "i_unused", "--identity"])
        .arg(&ed)
        .arg("https://api.openai.com/v1/responses"));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    let file = ed.join("broker_url").display().to_string();
    assert!(text.contains(&format!("broker URL {broker_url} (from {file})")), "{text}");
    assert!(
        text.contains("--broker-url") && text.contains(&format!("write the right URL to {file}")),
        "{text}"
    );
}
