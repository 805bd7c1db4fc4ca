//! Steward under test: `bootstrap::init` into the run's temp directory, then Steward as a *child
//! process* (this binary re-executed as `steward-bench __serve --config FILE`) so that its RSS is
//! its own; configuration overrides go through the child's environment. Then the setup through the
//! admin API, enrollment, the session, and the execute requests the load generator sends.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use serde_json::{Value, json};
use steward_client::{BrokerClient, ExecuteRequest, HeaderField, Identity, KeyType};
use steward_crypto::{DpopAlg, DpopKey};
use steward_server::bootstrap::{InitOptions, init};
use steward_server::config::StorageBackend;
use steward_server::startup::Environment;
use steward_types::{Clock, SystemClock};
use tokio::process::{Child, Command};

use crate::admin::{AdminClient, field};
use crate::load::RequestFactory;
use crate::session_refresh::{self, SharedSession};
use crate::upstream::{BLOB_PATH, ECHO_PATH, SSE_PATH, UPSTREAM_HOST, json_of_size};

/// The secret Steward injects (`authorization: Bearer …`); the baselines send the same header.
pub const BENCH_SECRET: &str = "bench-secret-0123456789";

#[derive(Debug, Clone)]
pub struct StewardOptions {
    pub postgres_url: Option<String>,
    pub redis_url: Option<String>,
    pub upstream_ca_file: PathBuf,
    /// A seeded deployment to run on (its data directory and `steward.toml`) instead of a fresh
    /// `init` into the run's temp directory.
    pub seeded: Option<(PathBuf, PathBuf)>,
    /// `session.default_ttl_seconds` (60..3600; Steward's default, 900, when `None`).
    pub session_ttl_seconds: Option<u32>,
}

/// The running child.
#[derive(Debug)]
pub struct StewardProcess {
    child: Child,
    pub pid: u32,
    pub admin: AdminClient,
    pub public_url: String,
    pub data_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
}

/// A free loopback port (bound, read, released: a small race that is acceptable here).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A data directory initialized for a run, and how to start Steward on it.
#[derive(Debug, Clone)]
pub struct Initialized {
    /// The environment overlay Steward runs with.
    pub vars: Vec<(String, String)>,
    pub config_path: PathBuf,
    pub data_dir: PathBuf,
    pub public_url: String,
    pub data_addr: SocketAddr,
    pub admin_addr: SocketAddr,
}

impl Initialized {
    /// An admin client with the owner token `init` wrote.
    pub fn admin(&self) -> Result<AdminClient> {
        let token = std::fs::read_to_string(self.data_dir.join("admin-token"))
            .context("reading the owner token")?
            .trim()
            .to_owned();
        Ok(AdminClient::new(self.admin_addr, token))
    }
}

/// `steward init` into `work_dir/steward-data` (or the seeded deployment, as it is), with the
/// harness's configuration overlay.
pub async fn initialize(work_dir: &Path, options: &StewardOptions) -> Result<Initialized> {
    let data_dir = match &options.seeded {
        Some((data_dir, _)) => data_dir.clone(),
        None => work_dir.join("steward-data"),
    };
    let (data_port, admin_port) = (free_port()?, free_port()?);
    let public_url = format!("https://localhost:{data_port}");
    let ca_file = options.upstream_ca_file.display().to_string();
    if ca_file.contains(['"', '\\']) {
        bail!("the temp directory path {ca_file} cannot be written as a TOML string");
    }
    let mut vars: Vec<(String, String)> = vec![
        ("STEWARD_PUBLIC_BASE_URL".into(), public_url.clone()),
        ("STEWARD_DATA_PLANE__LISTEN".into(), format!("127.0.0.1:{data_port}")),
        ("STEWARD_ADMIN__LISTEN".into(), format!("127.0.0.1:{admin_port}")),
        ("STEWARD_EGRESS__STATIC_HOSTS".into(), format!("{{ \"{UPSTREAM_HOST}\" = [\"127.0.0.1\"] }}")),
        ("STEWARD_EGRESS__ALLOW_CIDRS".into(), "[\"127.0.0.1/32\"]".into()),
        ("STEWARD_EGRESS__EXTRA_CA_FILES".into(), format!("[\"{ca_file}\"]")),
        ("STEWARD_LOG__LEVEL".into(), "warn".into()),
        ("STEWARD_SESSION__MAX_PER_MINUTE".into(), "100000".into()),
    ];
    if let Some(ttl) = options.session_ttl_seconds {
        vars.push(("STEWARD_SESSION__DEFAULT_TTL_SECONDS".into(), ttl.to_string()));
    }
    let storage = match (&options.postgres_url, &options.redis_url) {
        (Some(_), Some(_)) => {
            let prefix = format!("stwbench{}", uuid::Uuid::new_v4().simple());
            vars.push(("STEWARD_STORAGE__REDIS_KEY_PREFIX".into(), prefix));
            StorageBackend::Postgres
        }
        (None, None) => StorageBackend::Sqlite,
        _ => bail!("--postgres-url and --redis-url go together"),
    };
    let config_path = match &options.seeded {
        Some((_, config_path)) => config_path.clone(),
        None => {
            init(
                &InitOptions {
                    data_dir: data_dir.clone(),
                    public_url: Some(public_url.clone()),
                    storage,
                    postgres_url: options.postgres_url.clone(),
                    redis_url: options.redis_url.clone(),
                    kek_file: None,
                    force: false,
                },
                &Environment { vars: vars.clone() },
                Arc::new(SystemClock),
            )
            .await
            .map_err(|e| anyhow::anyhow!("steward init: {}", e.message))?
            .config_path
        }
    };
    Ok(Initialized {
        vars,
        config_path,
        data_dir,
        public_url,
        data_addr: SocketAddr::from(([127, 0, 0, 1], data_port)),
        admin_addr: SocketAddr::from(([127, 0, 0, 1], admin_port)),
    })
}

/// Initializes a data directory under `work_dir` (or takes the seeded one) and starts Steward on it.
pub async fn launch(work_dir: &Path, options: &StewardOptions) -> Result<StewardProcess> {
    let initialized = initialize(work_dir, options).await?;
    let log_file = work_dir.join(if options.seeded.is_some() { "steward-seeded.log" } else { "steward.log" });
    let log = std::fs::File::create(&log_file)?;
    let child = Command::new(std::env::current_exe().context("locating this binary")?)
        .arg("__serve")
        .arg("--config")
        .arg(&initialized.config_path)
        .envs(initialized.vars.clone())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting the Steward child process")?;
    let pid = child.id().context("the child has no pid")?;
    let mut process = StewardProcess {
        child,
        pid,
        admin: initialized.admin()?,
        public_url: initialized.public_url,
        data_addr: initialized.data_addr,
        data_dir: initialized.data_dir,
        log_file,
    };
    process.wait_ready().await?;
    Ok(process)
}

impl StewardProcess {
    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(&self.log_file).unwrap_or_default();
                bail!("Steward exited during start-up ({status}):\n{log}");
            }
            if let Ok((200, _)) = self.admin.call("GET", "/readyz", None).await {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("Steward did not become ready within 60 s (log: {})", self.log_file.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The workload CA (verifies the data plane; nginx verifies client certificates with it).
    pub fn ca_pem(&self) -> Result<String> {
        Ok(std::fs::read_to_string(self.data_dir.join("ca.crt"))?)
    }

    /// SIGTERM (graceful: the audit writer flushes), then a kill after 10 s.
    pub async fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status().await;
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(_) => Ok(()),
            Err(_) => {
                self.child.start_kill()?;
                let _ = self.child.wait().await;
                Ok(())
            }
        }
    }
}

/// What the setup created.
#[derive(Debug, Clone)]
pub struct Setup {
    pub tenant_id: String,
    pub workload_id: String,
    pub integration_id: String,
    pub enrollment_token: String,
    pub ca_pem: String,
}

fn group(id: &str, path: &str, approval: bool) -> Value {
    json!({
        "group_id": id,
        "risk_tier": if approval { "high" } else { "low" },
        "approval_mode": if approval { "required" } else { "none" },
        "methods": ["POST"],
        "path_patterns": [format!("^{path}$")],
        "query_allowlist": [],
        "header_forward_allowlist": ["content-type"],
        "response_header_allowlist": ["content-type", "x-request-id"],
        "body_policy": {"max_bytes": 1_048_576, "content_types": ["application/json"]},
        "approval_preview": [],
        "constraints": {"allow_duplicate_query_keys": false}
    })
}

/// A `GET` group without a body (the streams of forward mode).
fn stream_group(id: &str, path: &str, query: &[&str], headers: &[&str]) -> Value {
    json!({
        "group_id": id,
        "risk_tier": "low",
        "approval_mode": "none",
        "methods": ["GET"],
        "path_patterns": [format!("^{path}$")],
        "query_allowlist": query,
        "header_forward_allowlist": headers,
        "response_header_allowlist": ["content-type", "x-request-id"],
        "approval_preview": [],
    })
}

/// The bench's template `tpl_bench` of `tenant_id` at `version`, allowing the upstream's port:
/// groups `bench_echo`, `bench_denied` (no allow rule), `bench_approval` (`approval_mode:
/// required`), and the `GET` streams `bench_events` (SSE) and `bench_blob` (`?bytes=N`).
pub fn bench_template(tenant_id: &str, version: u64, upstream_port: u16) -> Value {
    json!({
        "tenant_id": tenant_id,
        "template_id": "tpl_bench",
        "version": version,
        "provider": "bench",
        "description": "steward-bench upstream",
        "allowed_schemes": ["https"],
        "allowed_ports": [upstream_port],
        "allowed_hosts": [UPSTREAM_HOST],
        "redirect_policy": {"mode": "deny"},
        "default_injection": {"type": "header", "name": "authorization", "format": "Bearer {secret}"},
        "path_groups": [
            group("bench_echo", ECHO_PATH, false),
            group("bench_denied", "/v1/denied", false),
            group("bench_approval", "/v1/approval", true),
            stream_group("bench_events", SSE_PATH, &[], &["accept"]),
            stream_group("bench_blob", BLOB_PATH, &["bytes"], &[]),
        ],
    })
}

/// The bench's allow rules on its integration: `bench_echo`, `bench_approval` (POST) and the two
/// streams (GET); `bench_denied` has none.
pub fn bench_rules(tenant_id: &str, integration_id: &str) -> Vec<Value> {
    [("bench_echo", "POST"), ("bench_approval", "POST"), ("bench_events", "GET"), ("bench_blob", "GET")]
        .into_iter()
        .map(|(group, method)| {
            json!({
                "rule_type": "allow",
                "scope": {"tenant_id": tenant_id, "integration_id": integration_id, "action_group": group,
                          "method": method, "host": UPSTREAM_HOST},
                "description": "steward-bench"
            })
        })
        .collect()
}

/// Tenant, workload, template `tpl_bench` (groups `bench_echo`, `bench_denied` without an allow
/// rule, `bench_approval` with `approval_mode: required`, and the `GET` streams `bench_events` (SSE)
/// and `bench_blob` (`?bytes=N`) of forward mode), integration and allow policies.
pub async fn setup(admin: &AdminClient, upstream_port: u16) -> Result<Setup> {
    let tenant = admin.expect("POST", "/v1/tenants", &json!({"name": "bench"}), 201).await?;
    let tenant_id = field(&tenant, "/tenant_id")?;
    let workload = admin
        .expect(
            "POST",
            &format!("/v1/tenants/{tenant_id}/workloads"),
            &json!({"name": "bench-workload"}),
            201,
        )
        .await?;
    let template = bench_template(&tenant_id, 1, upstream_port);
    admin.expect("POST", "/v1/templates", &template, 201).await?;
    let integration = admin
        .expect(
            "POST",
            &format!("/v1/tenants/{tenant_id}/integrations"),
            &json!({"name": "bench", "provider": "bench", "template_id": "tpl_bench",
                    "secret": {"type": "api_key", "value": BENCH_SECRET}}),
            201,
        )
        .await?;
    let integration_id = field(&integration, "/integration_id")?;
    for rule in bench_rules(&tenant_id, &integration_id) {
        admin.expect("POST", "/v1/policies", &rule, 201).await?;
    }
    Ok(Setup {
        tenant_id,
        workload_id: field(&workload, "/workload_id")?,
        integration_id,
        enrollment_token: field(&workload, "/enrollment_token")?,
        ca_pem: field(&workload, "/ca_pem")?,
    })
}

/// The setup on a seeded store (the bench's tenant, integration and rules are seeded): a new
/// version of `tpl_bench` allowing this run's upstream port (its version: the current unix time,
/// above every earlier run's), and a new workload in the bench's tenant.
pub async fn setup_seeded(
    admin: &AdminClient,
    upstream_port: u16,
    tenant_id: &str,
    integration_id: &str,
) -> Result<Setup> {
    let version = SystemClock.now().unix_seconds().max(2) as u64;
    admin.expect("POST", "/v1/templates", &bench_template(tenant_id, version, upstream_port), 201).await?;
    let name = format!("bench-workload-{}", uuid::Uuid::new_v4().simple());
    let workload = admin
        .expect("POST", &format!("/v1/tenants/{tenant_id}/workloads"), &json!({"name": name}), 201)
        .await?;
    Ok(Setup {
        tenant_id: tenant_id.to_owned(),
        workload_id: field(&workload, "/workload_id")?,
        integration_id: integration_id.to_owned(),
        enrollment_token: field(&workload, "/enrollment_token")?,
        ca_pem: field(&workload, "/ca_pem")?,
    })
}

/// An enrolled workload with an open session.
#[derive(Debug)]
pub struct Workload {
    pub identity: Identity,
    /// The session the load sends, refreshed by a [`crate::session_refresh::Refresher`] on `client`.
    pub session: Arc<SharedSession>,
    pub dpop: Option<DpopKey>,
    /// Holds the session (and renews it: [`crate::session_refresh`]).
    pub client: Arc<BrokerClient>,
}

impl Workload {
    /// The session token now (the first one, until a refresh swaps in the next).
    pub fn session_token(&self) -> String {
        self.session.current().token.clone()
    }
}

/// Enrolls (key generated here, P-256) and opens a session, DPoP-bound when `dpop`.
pub async fn enroll_and_open_session(
    public_url: &str,
    setup: &Setup,
    identity_dir: &Path,
    dpop: bool,
) -> Result<Workload> {
    let (identity, _) = steward_client::enroll::enroll(
        public_url,
        &setup.ca_pem,
        &setup.enrollment_token,
        KeyType::P256,
        None,
        identity_dir,
    )
    .await
    .context("enrolling")?;
    let (key_for_client, key_for_proofs) = if dpop {
        let key = DpopKey::generate_es256()?;
        let copy = DpopKey::from_pkcs8(DpopAlg::Es256, &key.to_pkcs8()?)?;
        (Some(key), Some(copy))
    } else {
        (None, None)
    };
    let client = BrokerClient::new(public_url, &identity, key_for_client)?;
    client.session().await.context("opening a session")?;
    let first = session_refresh::current_token(&client).await.context("no session after opening one")?;
    Ok(Workload {
        identity,
        session: Arc::new(SharedSession::new(first)),
        dpop: key_for_proofs,
        client: Arc::new(client),
    })
}

/// `--mix allowed=90,denied=5,approval=5`: the weights of each request kind.
pub fn parse_mix(text: &str) -> Result<Vec<(String, u32)>> {
    let mut mix = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) =
            part.split_once('=').with_context(|| format!("mix entry {part:?}: want name=weight"))?;
        let name = name.trim();
        if !["allowed", "denied", "approval"].contains(&name) {
            bail!("mix entry {part:?}: the kinds are allowed, denied and approval");
        }
        let weight: u32 = weight.trim().parse().with_context(|| format!("mix entry {part:?}: weight"))?;
        if weight > 0 {
            mix.push((name.to_owned(), weight));
        }
    }
    if mix.is_empty() {
        bail!("--mix names no kind with a weight above 0");
    }
    Ok(mix)
}

/// A repeating schedule of kind indices, spread evenly (smooth weighted round robin).
pub fn mix_schedule(weights: &[u32]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut schedule = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(weights) {
            *c += i64::from(*w);
        }
        let (best, _) =
            current.iter().enumerate().max_by_key(|(i, c)| (**c, -(*i as i64))).unwrap_or((0, &0));
        current[best] -= total;
        schedule.push(best);
    }
    schedule
}

/// `POST /v1/execute` requests, one pre-serialized body per kind; a fresh DPoP proof per request
/// when the session is bound.
pub struct ExecuteFactory {
    kinds: Vec<String>,
    bodies: Vec<Bytes>,
    schedule: Vec<usize>,
    host: String,
    session: Arc<SharedSession>,
    /// The key and the `htu` of the proofs, when the session is DPoP-bound.
    dpop: Option<(DpopKey, String)>,
}

impl std::fmt::Debug for ExecuteFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecuteFactory")
            .field("kinds", &self.kinds)
            .field("dpop", &self.dpop.is_some())
            .finish()
    }
}

impl ExecuteFactory {
    pub fn new(
        public_url: &str,
        data_addr: SocketAddr,
        upstream_port: u16,
        integration_id: &str,
        workload: &Workload,
        mix: &[(String, u32)],
        body_bytes: usize,
    ) -> Result<Self> {
        let body = json_of_size(body_bytes);
        let mut bodies = Vec::new();
        for (kind, _) in mix {
            let path = match kind.as_str() {
                "allowed" => ECHO_PATH,
                "denied" => "/v1/denied",
                _ => "/v1/approval",
            };
            let call = ExecuteRequest::new(
                integration_id,
                "POST",
                &format!("https://{UPSTREAM_HOST}:{upstream_port}{path}"),
                vec![HeaderField { name: "content-type".into(), value: "application/json".into() }],
                Some(&body),
            );
            bodies.push(Bytes::from(serde_json::to_vec(&call)?));
        }
        let weights: Vec<u32> = mix.iter().map(|(_, w)| *w).collect();
        let dpop = match &workload.dpop {
            Some(key) => Some((
                DpopKey::from_pkcs8(DpopAlg::Es256, &key.to_pkcs8()?)?,
                format!("{}/v1/execute", public_url.trim_end_matches('/')),
            )),
            None => None,
        };
        Ok(Self {
            kinds: mix.iter().map(|(k, _)| k.clone()).collect(),
            bodies,
            schedule: mix_schedule(&weights),
            host: format!("localhost:{}", data_addr.port()),
            session: Arc::clone(&workload.session),
            dpop,
        })
    }
}

impl RequestFactory for ExecuteFactory {
    fn kinds(&self) -> &[String] {
        &self.kinds
    }

    fn make(&self, seq: u64) -> Result<(usize, Request<Full<Bytes>>)> {
        let slot = usize::try_from(seq % self.schedule.len() as u64).unwrap_or(0);
        let kind = self.schedule[slot];
        let session = self.session.current();
        let mut request = Request::builder()
            .method("POST")
            .uri("/v1/execute")
            .header("host", &self.host)
            .header("content-type", "application/json")
            .header("authorization", &session.authorization);
        if let Some((key, htu)) = &self.dpop {
            let jti = uuid::Uuid::new_v4().to_string();
            let proof =
                key.proof("POST", htu, SystemClock.now().unix_seconds(), &jti, Some(&session.token))?;
            request = request.header("dpop", proof);
        }
        Ok((kind, request.body(Full::new(self.bodies[kind].clone()))?))
    }
}
