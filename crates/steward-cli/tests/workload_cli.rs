//! `steward enroll` and `steward manifest` against a running `steward serve`, as a workload would
//! use them: the key is generated locally, the manifest verified against the keyset.

mod common;

use common::*;
use http::Method;
use serde_json::{Value, json};
use steward_testkit::http_client::request;

async fn admin(ports: &Ports, token: &str, method: Method, path: &str, body: Option<Value>) -> Value {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("authorization", bearer.as_str())];
    let body = match body {
        Some(body) => {
            headers.push(("content-type", "application/json"));
            body.to_string()
        }
        None => String::new(),
    };
    let response =
        request(ports.admin_addr(), None, method, path, &headers, body).await.expect("admin request");
    assert!(response.status < 300, "{path}: {} {}", response.status, String::from_utf8_lossy(&response.body));
    response.json()
}

#[tokio::test]
async fn enroll_then_manifest_with_and_without_dpop() {
    install_crypto_provider();
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let output = run(steward().args(["init", "--data-dir"]).arg(&data));
    assert!(output.status.success(), "{}", stderr(&output));
    let ports = Ports::new();
    let broker_url = format!("https://localhost:{}", ports.data);
    let mut serve = steward();
    serve
        .args(["serve", "--config"])
        .arg(data.join("steward.toml"))
        .env("STEWARD_PUBLIC_BASE_URL", &broker_url);
    ports.apply(&mut serve);
    let mut child = spawn_serving(serve, &ports).await;
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap().trim().to_owned();

    let tenant = admin(&ports, &token, Method::POST, "/v1/tenants", Some(json!({"name": "acme"}))).await;
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_owned();
    let workload = admin(
        &ports,
        &token,
        Method::POST,
        &format!("/v1/tenants/{tenant_id}/workloads"),
        Some(json!({"name": "agent"})),
    )
    .await;
    let enrollment_token = workload["enrollment_token"].as_str().unwrap().to_owned();
    let workload_id = workload["workload_id"].as_str().unwrap().to_owned();
    admin(
        &ports,
        &token,
        Method::POST,
        &format!("/v1/tenants/{tenant_id}/integrations"),
        Some(json!({"name": "openai", "provider": "openai", "template_id": "tpl_openai",
                    "secret": {"type": "api_key", "value": "sk-test-0123456789"}})),
    )
    .await;

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
