//! Starting a real Steward in-process for tests: `steward init` into a temporary directory, then
//! `prepare` + `run` on free loopback ports.

#![allow(dead_code, clippy::unwrap_used)]

pub mod console;
pub mod execute;
pub mod logs;
pub mod workload;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::Method;
use serde_json::Value;
use steward_server::bootstrap::{InitOptions, init};
use steward_server::config::{self, StorageBackend};
use steward_server::services::AppState;
use steward_server::startup::{Environment, prepare};
use steward_testkit::http_client::TlsOptions;
use steward_types::{SharedClock, SystemClock};
use tokio::sync::oneshot;

pub fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

pub fn embedded_options(dir: &Path) -> InitOptions {
    InitOptions {
        data_dir: dir.to_path_buf(),
        public_url: None,
        storage: StorageBackend::Sqlite,
        postgres_url: None,
        redis_url: None,
        kek_file: None,
        force: false,
    }
}

/// `steward init` (embedded) into `dir`, for tests that then start the server their own way.
pub async fn init_data_dir(dir: &Path) {
    install_crypto_provider();
    init(&embedded_options(dir), &Environment::default(), clock()).await.expect("init");
}

/// `steward init --storage postgres` twice on one database: `first` creates the deployment, `second`
/// joins it with the first's keyring — two instances of one shared deployment.
pub async fn init_shared_pair(database_url: &str, first: &Path, second: &Path) {
    install_crypto_provider();
    let options = |dir: &Path, kek: Option<PathBuf>| InitOptions {
        data_dir: dir.to_path_buf(),
        public_url: None,
        storage: StorageBackend::Postgres,
        postgres_url: Some(database_url.to_owned()),
        redis_url: Some(steward_testkit::redis_url()),
        kek_file: kek,
        force: false,
    };
    init(&options(first, None), &Environment::default(), clock()).await.expect("init (create)");
    init(&options(second, Some(first.join("kek.json"))), &Environment::default(), clock())
        .await
        .expect("init (join)");
}

/// Environment overrides that put both listeners on free ports.
pub fn free_port_env(extra: &[(&str, &str)]) -> Environment {
    let mut vars = vec![
        ("STEWARD_DATA_PLANE__LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("STEWARD_ADMIN__LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Environment { vars }
}

/// A running in-process Steward.
pub struct TestServer {
    pub data_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), steward_server::StartupError>>>,
}

impl TestServer {
    /// Serves the data directory `dir` (already initialized).
    pub async fn start(dir: &Path, env: Environment) -> Result<Self, steward_server::StartupError> {
        Self::start_with_clock(dir, env, clock()).await
    }

    /// [`TestServer::start`] with a given clock (e.g. a `ManualClock` for expiry tests).
    pub async fn start_with_clock(
        dir: &Path,
        env: Environment,
        clock: SharedClock,
    ) -> Result<Self, steward_server::StartupError> {
        logs::captured();
        install_crypto_provider();
        let loaded = config::load(Some(&dir.join("steward.toml")), &env.vars)?;
        let prepared = prepare(loaded, &env, clock).await?;
        let data_addr = prepared.data_addr();
        let admin_addr = prepared.admin_addr();
        let state = prepared.state.clone();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(steward_server::runtime::run(prepared, async move {
            let _ = stop_rx.await;
        }));
        Ok(Self {
            data_addr,
            admin_addr,
            data_dir: dir.to_path_buf(),
            state,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    /// `steward init` into `dir`, then serve it.
    pub async fn init_and_start(dir: &Path) -> Self {
        init_data_dir(dir).await;
        Self::start(dir, free_port_env(&[])).await.expect("start")
    }

    pub fn tls(&self) -> TlsOptions {
        TlsOptions {
            ca_pem: std::fs::read_to_string(self.data_dir.join("ca.crt")).expect("ca.crt"),
            server_name: "localhost".into(),
            client: None,
        }
    }

    /// The owner token `steward init` wrote.
    pub fn owner_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin-token")).expect("admin-token").trim().to_owned()
    }

    /// One admin API call with a bearer token and an optional JSON body.
    pub async fn admin(
        &self,
        method: http::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> steward_testkit::http_client::TestResponse {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer));
        }
        let body = match body {
            Some(value) => {
                headers.push(("content-type", "application/json"));
                value.to_string()
            }
            None => String::new(),
        };
        steward_testkit::http_client::request(self.admin_addr, None, method, path, &headers, body)
            .await
            .expect("admin request")
    }

    /// Stops gracefully and waits for the final checkpoint.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("run");
        }
    }
}

/// `(status, body)` of one admin call with `token`.
pub async fn admin_call(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let response = server.admin(method, path, Some(token), body).await;
    (response.status, response.json())
}
