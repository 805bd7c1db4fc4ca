//! A Steward with an HTTPS upstream behind `api.example.test`, a tenant template for it, an
//! integration with a known secret, an enrolled workload and a session: everything an execute test
//! needs. Embedded (SQLite) by default, or shared (PostgreSQL + Redis, two instances).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::Method;
use serde_json::{Value, json};
use steward_server::startup::Environment;
use steward_store::governance::{AuditFilter, AuditOrder};
use steward_testkit::http_client::TestResponse;

use super::workload::{Workload, call, enrolled, owner, session_token, tenant};
use super::{TestServer, free_port_env, install_crypto_provider};
use steward_testkit::TestUpstream;
use steward_testkit::execute::{self, API_HOST};

/// An embedded fixture with `env` as extra environment, and the directory it lives in (keep it
/// alive as long as the fixture).
pub async fn fixture(env: &[(&str, &str)]) -> (Exec, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let f = Exec::embedded(dir.path(), Options { env, ..Options::default() }).await;
    (f, dir)
}

/// A refusal with this status and code, a message a person can act on, and never the secret.
#[track_caller]
pub fn expect(response: &TestResponse, status: u16, code: &str) {
    let body = response.json();
    assert_eq!((response.status, body["error"].as_str().unwrap_or("")), (status, code), "{body}");
    assert!(!body["message"].as_str().unwrap_or("").is_empty(), "{body}");
    assert!(!body.to_string().contains(SECRET), "{body}");
}

/// The integration secret every fixture writes.
pub const SECRET: &str = "sk-live-execute-secret-0001";

/// Options of a fixture.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The integration's `injection` (default: the template's, else bearer).
    pub injection: Option<Value>,
    /// The template's `default_injection`.
    pub default_injection: Option<Value>,
    /// Extra environment (e.g. `STEWARD_EGRESS__TOTAL_TIMEOUT_MS`).
    pub env: Vec<(String, String)>,
}

pub struct Exec {
    pub server: TestServer,
    pub upstream: TestUpstream,
    pub workload: Workload,
    pub token: String,
    pub tenant: String,
    pub integration_id: String,
    pub dir: PathBuf,
}

/// The tenant template: `items_read` (GET, allow rules), `items_write` (POST, approval required,
/// preview `/name`), on `api.example.test` and two hosts resolving to denied addresses.
pub fn template(
    tenant: &str,
    port: u16,
    version: u64,
    hosts: &[&str],
    default_injection: Option<&Value>,
) -> Value {
    let read = (
        &["q", "limit"][..],
        &["accept", "x-trace", "x-forwarded-for"][..],
        &["content-type", "x-echo", "x-request-id"][..],
    );
    let mut body =
        execute::items_template("tpl_exec", "exec", tenant, port, read).version(version).hosts(hosts);
    if let Some(injection) = default_injection {
        body = body.default_injection(injection.clone());
    }
    body.build()
}

pub use steward_testkit::execute::HOSTS;

fn environment(dir: &Path, upstream: &TestUpstream, extra: &[(String, String)]) -> Environment {
    let mut vars = execute::egress_env(upstream, dir);
    vars.extend(extra.iter().cloned());
    let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    free_port_env(&refs)
}

impl Exec {
    /// An embedded (SQLite) Steward in `dir`.
    pub async fn embedded(dir: &Path, options: Options) -> Self {
        install_crypto_provider();
        let upstream = TestUpstream::start().await.unwrap();
        super::init_data_dir(dir).await;
        let server = TestServer::start(dir, environment(dir, &upstream, &options.env)).await.expect("start");
        Self::provision(server, upstream, dir, &options).await
    }

    /// Two instances sharing PostgreSQL and Redis; the fixture is provisioned on the first.
    pub async fn shared(temp: &Path, database_url: &str, options: Options) -> (Self, TestServer) {
        use steward_testkit::unique_redis_prefix;
        install_crypto_provider();
        let upstream = TestUpstream::start().await.unwrap();
        let (first_dir, second_dir) = (temp.join("first"), temp.join("second"));
        super::init_shared_pair(database_url, &first_dir, &second_dir).await;
        let mut extra = options.env.clone();
        extra.push(("STEWARD_STORAGE__REDIS_KEY_PREFIX".to_owned(), unique_redis_prefix()));
        let first = TestServer::start(&first_dir, environment(&first_dir, &upstream, &extra)).await.unwrap();
        let mut second =
            TestServer::start(&second_dir, environment(&second_dir, &upstream, &extra)).await.unwrap();
        second.data_dir = first_dir.clone();
        let exec = Self::provision(first, upstream, &first_dir, &options).await;
        (exec, second)
    }

    async fn provision(server: TestServer, upstream: TestUpstream, dir: &Path, options: &Options) -> Self {
        let tenant = tenant(&server, false).await;
        let body = template(&tenant, upstream.port(), 1, &HOSTS, options.default_injection.as_ref());
        let (status, published) = owner(&server, Method::POST, "/v1/templates", Some(body)).await;
        assert_eq!(status, 201, "{published}");
        let mut integration = execute::integration("exec", "tpl_exec", SECRET);
        if let Some(injection) = &options.injection {
            integration["injection"] = injection.clone();
        }
        let (status, created) =
            owner(&server, Method::POST, &format!("/v1/tenants/{tenant}/integrations"), Some(integration))
                .await;
        assert_eq!(status, 201, "{created}");
        let integration_id = created["integration_id"].as_str().unwrap().to_owned();
        let workload = enrolled(&server, &tenant, json!({})).await;
        let token = session_token(&server, &workload, None).await;
        Self { server, upstream, workload, token, tenant, integration_id, dir: dir.to_path_buf() }
    }

    /// A policy rule on this integration: `rule_type` for `action_group`/`method` on
    /// `api.example.test`, with extra top-level fields (`constraints`, `rate_limit`, …).
    pub async fn policy(&self, rule_type: &str, action_group: &str, method: &str, extra: Value) -> String {
        self.policy_on("api.example.test", rule_type, action_group, method, extra).await
    }

    /// Publishes version 2 of the fixture's template, whose hosts are [`HOSTS`] plus `extra_host`.
    pub async fn publish_with_host(&self, extra_host: &str) {
        let mut hosts = HOSTS.to_vec();
        hosts.push(extra_host);
        let (status, published) = owner(
            &self.server,
            Method::POST,
            "/v1/templates",
            Some(template(&self.tenant, self.upstream.port(), 2, &hosts, None)),
        )
        .await;
        assert_eq!(status, 201, "{published}");
    }

    /// [`Exec::policy`] for another host.
    pub async fn policy_on(
        &self,
        host: &str,
        rule_type: &str,
        action_group: &str,
        method: &str,
        extra: Value,
    ) -> String {
        let rule = execute::policy_rule(
            &self.tenant,
            &self.integration_id,
            rule_type,
            action_group,
            method,
            host,
            extra,
        );
        let (status, created) = owner(&self.server, Method::POST, "/v1/policies", Some(rule)).await;
        assert_eq!(status, 201, "{created}");
        created["policy_id"].as_str().unwrap().to_owned()
    }

    /// Allow `GET /v1/items` on `api.example.test`.
    pub async fn allow_reads(&self) -> String {
        self.policy("allow", "items_read", "GET", json!({})).await
    }

    pub fn url(&self, host: &str, path_and_query: &str) -> String {
        execute::url(host, self.upstream.port(), path_and_query)
    }

    /// A GET of `/v1/items` with `query` and `headers`.
    pub fn get(&self, query: &str, headers: &[(&str, &str)]) -> Value {
        execute::get(&self.url(API_HOST, &format!("/v1/items{query}")), headers)
    }

    /// A POST of `/v1/items` with a JSON body.
    pub fn post(&self, body: &Value) -> Value {
        execute::post_json(&self.url(API_HOST, "/v1/items"), body)
    }

    /// `POST /v1/execute` on `server` with the fixture's session.
    pub async fn execute_on(
        &self,
        server: &TestServer,
        request: Value,
        client_context: Option<Value>,
        correlation_id: &str,
    ) -> TestResponse {
        let body = execute::execute_body(&self.integration_id, request, client_context);
        self.raw_on(server, &body.to_string(), correlation_id).await
    }

    pub async fn execute(
        &self,
        request: Value,
        client_context: Option<Value>,
        correlation_id: &str,
    ) -> TestResponse {
        self.execute_on(&self.server, request, client_context, correlation_id).await
    }

    /// `POST /v1/execute` with a raw body.
    pub async fn raw_on(&self, server: &TestServer, body: &str, correlation_id: &str) -> TestResponse {
        let authorization = format!("Bearer {}", self.token);
        let headers = execute::execute_headers(&authorization, correlation_id);
        call(server, Some(&self.workload), Method::POST, "/v1/execute", &headers, body).await
    }

    /// A GET of `/v1/items` on `host`.
    pub fn get_on(&self, host: &str) -> Value {
        json!({"method": "GET", "url": self.url(host, "/v1/items")})
    }

    /// A second connection to the embedded database (raw SQL for failure tests).
    pub async fn db(&self) -> sqlx::SqlitePool {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(self.dir.join("steward.db"))
            .busy_timeout(std::time::Duration::from_secs(10));
        sqlx::SqlitePool::connect_with(options).await.unwrap()
    }

    /// The audit events of one correlation id, oldest first, as JSON.
    pub async fn events(&self, correlation_id: &str) -> Vec<Value> {
        let filter =
            AuditFilter { correlation_id: Some(correlation_id.to_owned()), ..AuditFilter::default() };
        let events = self
            .server
            .state
            .store
            .search_audit_events(&filter, None, AuditOrder::OldestFirst, 100)
            .await
            .unwrap();
        events.iter().map(|e| serde_json::to_value(e).unwrap()).collect()
    }

    /// `(event_type, decision, reason_code)` of each event of a correlation id.
    pub async fn event_kinds(&self, correlation_id: &str) -> Vec<(String, String, String)> {
        execute::event_kinds(&self.events(correlation_id).await)
    }
}

pub use steward_testkit::execute::kinds;

/// The decoded `upstream.body_base64` of a 200 answer.
pub fn upstream_body(response: &TestResponse) -> String {
    let body = response.json();
    let encoded = body["upstream"]["body_base64"].as_str().unwrap_or_default().to_owned();
    String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap()
}
