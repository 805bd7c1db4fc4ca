//! A shared-mode deployment of real `steward serve` processes for the multi-instance and fault
//! suites: `steward init --storage postgres` once, every further node joined with `--kek-file`, all
//! on one PostgreSQL database and one Redis key prefix, all with one `public_base_url` (as behind a
//! TCP load balancer, so a DPoP proof's `htu` is the same on every node). Each node's log is drained
//! into memory (a full pipe would stall the server) and can be searched.

#![allow(dead_code, clippy::unwrap_used)]

pub mod execute;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};
use steward_crypto::DpopKey;
use steward_testkit::http_client::{TestResponse, TlsOptions, request};

use crate::common::{Ports, run, stderr, steward};

/// The URL every node calls itself (DPoP `htu`, manifests' execute URL), as a balancer's name would be.
pub const PUBLIC_URL: &str = "https://steward.test:8443";

/// One `steward serve` process and its data directory.
pub struct Node {
    pub dir: PathBuf,
    pub ports: Ports,
    child: Mutex<Option<Child>>,
    log: Arc<Mutex<String>>,
}

impl Node {
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap().as_ref().map(Child::id).expect("the node is running")
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends a signal through kill(1).
    pub fn signal(&self, name: &str) {
        let status =
            Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status().unwrap();
        assert!(status.success());
    }

    /// Waits until the log contains `needle` `count` times.
    pub async fn wait_for_log(&self, needle: &str, count: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.log().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} ×{count} in the log within {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then the exit status (the process must stop within 30 s).
    pub async fn terminate(&self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(30)).await
    }

    /// Waits for the process to exit (within `within`) and returns its status.
    pub async fn wait_exit(&self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            {
                let mut guard = self.child.lock().unwrap();
                let child = guard.as_mut().expect("the node is running");
                if let Some(status) = child.try_wait().unwrap() {
                    *guard = None;
                    return status;
                }
            }
            assert!(Instant::now() < deadline, "steward did not exit within {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.lock().unwrap().is_some()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A deployment of several nodes.
pub struct Cluster {
    _temp: tempfile::TempDir,
    pub postgres_url: String,
    pub redis_url: String,
    pub redis_prefix: String,
    pub nodes: Vec<Node>,
    owner_token: String,
    ca_pem: String,
    /// Extra environment for every node (`(name, value)`).
    pub extra_env: Vec<(String, String)>,
}

impl Cluster {
    /// `steward init` of `count` nodes on the database (the first creates, the others join).
    pub fn init(postgres_url: &str, redis_url: &str, count: usize) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for i in 0..count {
            let dir = temp.path().join(format!("node{i}"));
            let mut command = steward();
            command
                .args([
                    "init",
                    "--storage",
                    "postgres",
                    "--postgres-url",
                    postgres_url,
                    "--redis-url",
                    redis_url,
                ])
                .arg("--data-dir")
                .arg(&dir)
                .args(["--public-url", PUBLIC_URL]);
            if i > 0 {
                command.arg("--kek-file").arg(temp.path().join("node0/kek.json"));
            }
            let output = run(&mut command);
            assert!(output.status.success(), "init of node {i}: {}", stderr(&output));
            nodes.push(Node { dir, ports: Ports::new(), child: Mutex::new(None), log: Arc::default() });
        }
        let owner_token =
            std::fs::read_to_string(temp.path().join("node0/admin-token")).unwrap().trim().to_owned();
        let ca_pem = std::fs::read_to_string(temp.path().join("node0/ca.crt")).unwrap();
        Self {
            _temp: temp,
            postgres_url: postgres_url.to_owned(),
            redis_url: redis_url.to_owned(),
            redis_prefix: steward_testkit::unique_redis_prefix(),
            nodes,
            owner_token,
            ca_pem,
            extra_env: Vec::new(),
        }
    }

    /// The `steward serve` command of node `i`.
    pub fn serve_command(&self, i: usize) -> Command {
        let node = &self.nodes[i];
        let mut command = steward();
        command
            .args(["serve", "--config"])
            .arg(node.dir.join("steward.toml"))
            .env("STEWARD_PUBLIC_BASE_URL", PUBLIC_URL)
            .env("STEWARD_STORAGE__REDIS_KEY_PREFIX", &self.redis_prefix)
            .env("STEWARD_SESSION__MAX_PER_MINUTE", "100000");
        for (name, value) in &self.extra_env {
            command.env(name, value);
        }
        node.ports.apply(&mut command);
        command
    }

    /// Spawns node `i` without waiting for it, on fresh free ports (picked now, not at `init`, so the
    /// window in which another process can take them is short; see [`Cluster::wait_healthy`]).
    pub fn spawn(&mut self, i: usize) {
        self.nodes[i].ports = Ports::new();
        let mut child = self
            .serve_command(i)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        *self.nodes[i].child.lock().unwrap() = Some(child);
        self.nodes[i].log = log;
    }

    /// Waits until node `i` serves: its own log says it started (so the `/healthz` answer that
    /// follows comes from this process, not from another test's process that happens to hold the port)
    /// and its admin listener answers. A free port picked for it can be taken by another process before
    /// it binds (tests run in parallel): it then exits with "cannot listen on", and is spawned again on
    /// other ports (a few times). Any other early exit fails the test.
    pub async fn wait_healthy(&mut self, i: usize) {
        let mut respawns = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let node = &self.nodes[i];
            if node.log().contains("\"event\":\"started\"")
                && let Ok(response) =
                    request(node.ports.admin_addr(), None, Method::GET, "/healthz", &[], "").await
                && response.status == 200
            {
                return;
            }
            let exited = node.child.lock().unwrap().as_mut().and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                std::thread::sleep(Duration::from_millis(100));
                let log = node.log();
                if log.contains("cannot listen on") && respawns < 5 {
                    respawns += 1;
                    *node.child.lock().unwrap() = None;
                    self.spawn(i);
                    continue;
                }
                panic!("node {i} exited early with {status}: {log}");
            }
            assert!(Instant::now() < deadline, "node {i} did not become healthy: {}", node.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts node `i` and waits until it is healthy.
    pub async fn start(&mut self, i: usize) {
        self.spawn(i);
        self.wait_healthy(i).await;
    }

    /// Starts every node.
    pub async fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i).await;
        }
    }

    pub fn owner_token(&self) -> &str {
        &self.owner_token
    }

    pub fn tls(&self, client: Option<&Workload>) -> TlsOptions {
        TlsOptions {
            ca_pem: self.ca_pem.clone(),
            server_name: "localhost".into(),
            client: client.map(|w| (w.cert_pem.clone(), w.key_pem.clone())),
        }
    }

    /// One owner-token admin call on node `i`: `(status, JSON)`.
    pub async fn admin(&self, i: usize, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let response = self.try_admin(i, method, path, body).await.unwrap();
        (response.status, response.json())
    }

    pub async fn try_admin(
        &self,
        i: usize,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<TestResponse> {
        let bearer = format!("Bearer {}", self.owner_token);
        let mut headers = vec![("authorization", bearer.as_str())];
        let body = match body {
            Some(body) => {
                headers.push(("content-type", "application/json"));
                body.to_string()
            }
            None => String::new(),
        };
        request(self.nodes[i].ports.admin_addr(), None, method, path, &headers, body).await
    }

    /// One data-plane request on node `i`.
    pub async fn data(
        &self,
        i: usize,
        client: Option<&Workload>,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> anyhow::Result<TestResponse> {
        let tls = self.tls(client);
        request(self.nodes[i].ports.data_addr(), Some(&tls), method, path, headers, body.to_owned()).await
    }

    /// A new tenant (through node `i`).
    pub async fn tenant(&self, i: usize) -> String {
        let name = format!("tenant-{}", uuid::Uuid::new_v4().simple());
        let (status, body) = self.admin(i, Method::POST, "/v1/tenants", Some(json!({"name": name}))).await;
        assert_eq!(status, 201, "{body}");
        body["tenant_id"].as_str().unwrap().to_owned()
    }

    /// An `openai` integration in the tenant, so its workloads get manifests.
    pub async fn integration(&self, i: usize, tenant: &str) -> String {
        let body = json!({"name": format!("openai-{}", uuid::Uuid::new_v4().simple()), "provider": "openai",
            "template_id": "tpl_openai", "secret": {"type": "api_key", "value": "sk-test-cluster-0001"}});
        let (status, created) =
            self.admin(i, Method::POST, &format!("/v1/tenants/{tenant}/integrations"), Some(body)).await;
        assert_eq!(status, 201, "{created}");
        created["integration_id"].as_str().unwrap().to_owned()
    }

    /// A workload created through node `i` and enrolled through node `enroll_on`.
    pub async fn workload(&self, i: usize, enroll_on: usize, tenant: &str) -> Workload {
        let body = json!({"name": format!("agent-{}", uuid::Uuid::new_v4().simple())});
        let (status, created) =
            self.admin(i, Method::POST, &format!("/v1/tenants/{tenant}/workloads"), Some(body)).await;
        assert_eq!(status, 201, "{created}");
        let (key_pem, csr_pem) = steward_client::enroll::key_and_csr(steward_client::KeyType::P256).unwrap();
        let enroll = json!({"enrollment_token": created["enrollment_token"], "csr_pem": csr_pem}).to_string();
        let response = self
            .data(
                enroll_on,
                None,
                Method::POST,
                "/v1/enroll",
                &[("content-type", "application/json")],
                &enroll,
            )
            .await
            .unwrap();
        assert_eq!(response.status, 201, "{}", response.json());
        Workload {
            tenant_id: tenant.to_owned(),
            workload_id: created["workload_id"].as_str().unwrap().to_owned(),
            cert_pem: response.json()["client_cert_pem"].as_str().unwrap().to_owned(),
            key_pem: key_pem.to_string(),
        }
    }

    /// `POST /v1/session` on node `i`, optionally with a DPoP proof.
    pub async fn session(
        &self,
        i: usize,
        workload: &Workload,
        proof: Option<&str>,
    ) -> anyhow::Result<TestResponse> {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(proof) = proof {
            headers.push(("dpop", proof));
        }
        self.data(i, Some(workload), Method::POST, "/v1/session", &headers, "").await
    }

    /// A bearer session token from node `i`.
    pub async fn session_token(&self, i: usize, workload: &Workload) -> String {
        let response = self.session(i, workload, None).await.unwrap();
        assert_eq!(response.status, 200, "{}", response.json());
        response.json()["session_token"].as_str().unwrap().to_owned()
    }

    /// `GET /v1/workloads/{w}/manifest` on node `i` with a bearer session.
    pub async fn manifest(&self, i: usize, workload: &Workload, token: &str) -> anyhow::Result<TestResponse> {
        let bearer = format!("Bearer {token}");
        let path = format!("/v1/workloads/{}/manifest", workload.workload_id);
        self.data(i, Some(workload), Method::GET, &path, &[("authorization", &bearer)], "").await
    }

    /// Every node's keyring file path.
    pub fn keyring_files(&self) -> Vec<PathBuf> {
        self.nodes.iter().map(|n| n.dir.join("kek.json")).collect()
    }
}

/// An enrolled workload.
#[derive(Debug, Clone)]
pub struct Workload {
    pub tenant_id: String,
    pub workload_id: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// A DPoP proof for `method` `path` on the deployment's public URL.
pub fn proof(key: &DpopKey, method: &str, path: &str, token: Option<&str>) -> String {
    use steward_types::Clock;
    let now = steward_types::SystemClock.now().unix_seconds();
    let jti = uuid::Uuid::new_v4().to_string();
    key.proof(method, &format!("{PUBLIC_URL}{path}"), now, &jti, token).unwrap()
}

/// `(status, error code)`.
pub fn code(response: &TestResponse) -> (u16, String) {
    (response.status, response.json()["error"].as_str().unwrap_or("").to_owned())
}

/// Polls `check` on every node until all pass, and returns how long after the start a node was last
/// seen *not* complying, measured at the moment that check was sent. That is the staleness the
/// freshness promise bounds; the time the answers took to come back (long on a loaded machine) is not
/// part of it. Fails when a check sent later than `within` still did not comply.
pub async fn until_all<F, Fut>(cluster: &Cluster, within: Duration, mut check: F) -> Duration
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    let mut done = vec![false; cluster.nodes.len()];
    let mut last_stale = Duration::ZERO;
    loop {
        for (i, done) in done.iter_mut().enumerate() {
            if !*done {
                let sent = started.elapsed();
                *done = check(i).await;
                if !*done {
                    last_stale = last_stale.max(sent);
                    assert!(
                        sent < within,
                        "node {i} did not comply to a check sent {sent:?} after the change"
                    );
                }
            }
        }
        if done.iter().all(|d| *d) {
            return last_stale;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads a keyring file as JSON.
pub fn read_keyring(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Rewrites a keyring file in place (keeping its mode).
pub fn write_keyring(path: &Path, keyring: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(keyring).unwrap()).unwrap();
}
