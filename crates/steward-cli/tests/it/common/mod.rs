//! Running the real `steward` binary in tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use http::Method;
pub use steward_testkit::free_port;
use steward_testkit::http_client::{TlsOptions, request};

pub fn steward() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_steward"));
    // The tests' own environment must not leak configuration into the binary.
    for (name, _) in std::env::vars() {
        if name.starts_with("STEWARD_") {
            command.env_remove(name);
        }
    }
    command.env("STEWARD_LOG__FORMAT", "json");
    command
}

/// `steward init --storage postgres --postgres-url URL --redis-url (the local Redis) --data-dir DIR`,
/// not yet run: shared-mode init, as every instance of a deployment runs it.
pub fn shared_init(database_url: &str, dir: &Path) -> Command {
    let mut command = steward();
    command
        .args(["init", "--storage", "postgres", "--postgres-url", database_url])
        .arg("--redis-url")
        .arg(steward_testkit::redis_url())
        .arg("--data-dir")
        .arg(dir);
    command
}

pub fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("run steward")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `steward enroll` with an enrollment token into `out`, trusting the CA of the server's data
/// directory `data`; fails the test when it does not succeed. Returns `out`.
pub fn enroll_identity(enrollment_token: &str, broker_url: &str, data: &Path, out: PathBuf) -> PathBuf {
    let output = run(steward()
        .args(["enroll", "--token", enrollment_token, "--broker-url", broker_url, "--out"])
        .arg(&out)
        .arg("--ca-file")
        .arg(data.join("ca.crt")));
    assert!(output.status.success(), "{}", stderr(&output));
    out
}

/// Listener overrides for a server process.
pub struct Ports {
    pub data: u16,
    pub admin: u16,
}

impl Ports {
    pub fn new() -> Self {
        Self { data: free_port().unwrap(), admin: free_port().unwrap() }
    }

    pub fn apply(&self, command: &mut Command) {
        command
            .env("STEWARD_DATA_PLANE__LISTEN", format!("127.0.0.1:{}", self.data))
            .env("STEWARD_ADMIN__LISTEN", format!("127.0.0.1:{}", self.admin));
    }

    pub fn data_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.data))
    }

    pub fn admin_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.admin))
    }
}

/// Spawns `steward serve` and waits until its admin listener answers `/healthz`.
pub async fn spawn_serving(mut command: Command, ports: &Ports) -> Child {
    let mut child =
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = request(ports.admin_addr(), None, Method::GET, "/healthz", &[], "").await
            && response.status == 200
        {
            return child;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("steward serve exited early with {status}: {err}");
        }
        assert!(Instant::now() < deadline, "steward serve did not become healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM (through kill(1), so the tests need no unsafe code), then the exit status.
pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    child.wait().unwrap()
}

pub fn tls_for(data_dir: &Path) -> TlsOptions {
    TlsOptions {
        ca_pem: std::fs::read_to_string(data_dir.join("ca.crt")).unwrap(),
        server_name: "localhost".into(),
        client: None,
    }
}

pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// One admin API call that must succeed (status < 300); its JSON answer.
pub async fn admin_api(
    ports: &Ports,
    token: &str,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
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

/// `steward init` into `<root>/data`, and a `steward serve` command for it whose egress sends `hosts`
/// to a loopback upstream trusted through `upstream_ca_pem` (written to `<root>/upstream-ca.pem`).
/// Returns the data directory, the ports, the broker URL and the command, to which a test adds its
/// own environment before `spawn_serving`.
pub fn loopback_serve_command(
    root: &Path,
    hosts: &[&str],
    upstream_ca_pem: &str,
) -> (PathBuf, Ports, String, Command) {
    let data = root.join("data");
    let output = run(steward().args(["init", "--data-dir"]).arg(&data));
    assert!(output.status.success(), "{}", stderr(&output));
    let upstream_ca = root.join("upstream-ca.pem");
    std::fs::write(&upstream_ca, upstream_ca_pem).unwrap();
    let ports = Ports::new();
    let broker_url = format!("https://localhost:{}", ports.data);
    let static_hosts: Vec<String> = hosts.iter().map(|host| format!(r#""{host}"=["127.0.0.1"]"#)).collect();
    let mut serve = steward();
    serve
        .args(["serve", "--config"])
        .arg(data.join("steward.toml"))
        .env("STEWARD_PUBLIC_BASE_URL", &broker_url)
        .env("STEWARD_EGRESS__STATIC_HOSTS", format!("{{{}}}", static_hosts.join(",")))
        .env("STEWARD_EGRESS__ALLOW_CIDRS", r#"["127.0.0.1/32"]"#)
        .env("STEWARD_EGRESS__EXTRA_CA_FILES", format!("[{:?}]", upstream_ca.display().to_string()));
    ports.apply(&mut serve);
    (data, ports, broker_url, serve)
}

/// Writes `ports` (and a public URL) into an initialized data directory's `steward.toml`, so the
/// server and every command that reads the file agree without environment overrides.
pub fn write_ports(data_dir: &Path, ports: &Ports, public_url: Option<&str>) {
    let path = data_dir.join("steward.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("listen = \"127.0.0.1:8080\"") && text.contains("listen = \"127.0.0.1:8081\""));
    let mut text = text
        .replace("listen = \"127.0.0.1:8080\"", &format!("listen = \"127.0.0.1:{}\"", ports.admin))
        .replace("listen = \"127.0.0.1:8081\"", &format!("listen = \"127.0.0.1:{}\"", ports.data));
    if let Some(url) = public_url {
        text = text
            .replace("public_base_url = \"https://localhost:8081\"", &format!("public_base_url = {url:?}"));
        assert!(text.contains(url), "{text}");
    }
    std::fs::write(&path, text).unwrap();
}

/// A running `steward serve` on a fresh data directory (ports written into its `steward.toml`)
/// with one tenant, one workload not yet enrolled, and an `openai` integration: where the
/// workload-side tests start.
#[allow(dead_code)] // each test binary uses the fields it needs
pub struct WorkloadFixture {
    pub data: PathBuf,
    pub ports: Ports,
    pub broker_url: String,
    pub child: Child,
    pub token: String,
    pub tenant_id: String,
    pub workload_id: String,
    pub enrollment_token: String,
}

#[allow(dead_code)]
pub async fn serve_with_workload(root: &Path) -> WorkloadFixture {
    install_crypto_provider();
    let data = root.join("data");
    let output = run(steward().args(["init", "--data-dir"]).arg(&data));
    assert!(output.status.success(), "{}", stderr(&output));
    let ports = Ports::new();
    let broker_url = format!("https://localhost:{}", ports.data);
    write_ports(&data, &ports, Some(&broker_url));
    let mut serve = steward();
    serve.args(["serve", "--config"]).arg(data.join("steward.toml"));
    let child = spawn_serving(serve, &ports).await;
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap().trim().to_owned();
    let tenant =
        admin_api(&ports, &token, Method::POST, "/v1/tenants", Some(serde_json::json!({"name": "acme"})))
            .await;
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_owned();
    let workload = admin_api(
        &ports,
        &token,
        Method::POST,
        &format!("/v1/tenants/{tenant_id}/workloads"),
        Some(serde_json::json!({"name": "agent"})),
    )
    .await;
    admin_api(
        &ports,
        &token,
        Method::POST,
        &format!("/v1/tenants/{tenant_id}/integrations"),
        Some(serde_json::json!({"name": "openai", "provider": "openai", "template_id": "tpl_openai",
                    "secret": {"type": "api_key", "value": "sk-test-0123456789"}})),
    )
    .await;
    WorkloadFixture {
        workload_id: workload["workload_id"].as_str().unwrap().to_owned(),
        enrollment_token: workload["enrollment_token"].as_str().unwrap().to_owned(),
        data,
        ports,
        broker_url,
        child,
        token,
        tenant_id,
    }
}
