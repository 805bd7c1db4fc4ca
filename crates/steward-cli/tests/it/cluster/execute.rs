//! Execute across a deployment: a real local HTTPS upstream ([`TestUpstream`]) behind
//! `api.example.test` (reached through `egress.static_hosts` on 127.0.0.1, trusted through
//! `egress.extra_ca_files`), a tenant template for its host and port, an integration, an enrolled
//! workload with a bearer session, and helpers for policies, execute calls and audit reads through
//! any node. The JSON of all of it is [`steward_testkit::execute`]'s, shared with the server's
//! in-process execute fixture; reaching the nodes is this module's.

use http::Method;
use serde_json::{Value, json};
use steward_crypto::DpopKey;
use steward_testkit::execute::{self, API_HOST};
use steward_testkit::http_client::TestResponse;
use steward_testkit::{Reply, TestUpstream};

use super::{Cluster, Workload, proof};

/// The integration secret every fixture writes.
pub const SECRET: &str = "sk-live-cluster-secret-0001";

impl Cluster {
    /// Routes every node's egress to `upstream` (call before the nodes start).
    pub fn route_to(&mut self, upstream: &TestUpstream) {
        for (name, value) in execute::egress_env(upstream, self._temp.path()) {
            self.env(&name, &value);
        }
    }

    /// Adds an environment variable for every node started from now on.
    pub fn env(&mut self, name: &str, value: &str) {
        self.extra_env.push((name.to_owned(), value.to_owned()));
    }
}

/// What an execute test needs, provisioned through one node.
pub struct Exec {
    pub upstream: TestUpstream,
    pub tenant: String,
    pub integration_id: String,
    pub workload: Workload,
    pub token: String,
}

/// The tenant template: `items_read` (GET, query `q`), `items_write` (POST, approval required).
fn template(tenant: &str, port: u16) -> Value {
    let read = (&["q", "tag"][..], &["accept"][..], &["content-type"][..]);
    execute::items_template("tpl_cluster", "cluster", tenant, port, read).build()
}

impl Exec {
    /// A tenant with the template, an integration and a workload, created through node `i`.
    pub async fn provision(cluster: &Cluster, i: usize, upstream: TestUpstream) -> Self {
        let tenant = cluster.tenant(i).await;
        let (status, published) =
            cluster.admin(i, Method::POST, "/v1/templates", Some(template(&tenant, upstream.port()))).await;
        assert_eq!(status, 201, "{published}");
        let integration = execute::integration("cluster", "tpl_cluster", SECRET);
        let (status, created) = cluster
            .admin(i, Method::POST, &format!("/v1/tenants/{tenant}/integrations"), Some(integration))
            .await;
        assert_eq!(status, 201, "{created}");
        let integration_id = created["integration_id"].as_str().unwrap().to_owned();
        let workload = cluster.workload(i, i, &tenant).await;
        let token = cluster.session_token(i, &workload).await;
        Self { upstream, tenant, integration_id, workload, token }
    }

    /// A policy rule on the integration for `action_group`/`method` on `api.example.test`, with extra
    /// top-level fields (`rate_limit`, …; a `scope` object is merged into the scope), created through
    /// node `i`; its id.
    pub async fn policy(
        &self,
        cluster: &Cluster,
        i: usize,
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
            API_HOST,
            extra,
        );
        let (status, created) = cluster.admin(i, Method::POST, "/v1/policies", Some(rule)).await;
        assert_eq!(status, 201, "{created}");
        created["policy_id"].as_str().unwrap().to_owned()
    }

    /// Allows `GET /v1/items` (through node `i`).
    pub async fn allow_reads(&self, cluster: &Cluster, i: usize) -> String {
        self.policy(cluster, i, "allow", "items_read", "GET", json!({})).await
    }

    /// A GET of `/v1/items{query}` (`query` empty or `?q=…` / `?tag=…`: the upstream sees it, so a
    /// test can tag each call).
    pub fn get(&self, query: &str) -> Value {
        execute::get(&execute::url(API_HOST, self.upstream.port(), &format!("/v1/items{query}")), &[])
    }

    /// A POST of `/v1/items` with a JSON body (approval required by the template).
    pub fn post(&self, body: &Value) -> Value {
        execute::post_json(&execute::url(API_HOST, self.upstream.port(), "/v1/items"), body)
    }

    fn body(&self, request: Value, idempotency_key: Option<&str>) -> String {
        let context = idempotency_key.map(|key| json!({"idempotency_key": key, "source": "cluster-test"}));
        execute::execute_body(&self.integration_id, request, context).to_string()
    }

    /// `POST /v1/execute` on node `i` with the bearer session.
    pub async fn execute(
        &self,
        cluster: &Cluster,
        i: usize,
        request: Value,
        idempotency_key: Option<&str>,
        correlation_id: &str,
    ) -> anyhow::Result<TestResponse> {
        let authorization = format!("Bearer {}", self.token);
        let headers = execute::execute_headers(&authorization, correlation_id);
        let body = self.body(request, idempotency_key);
        cluster.data(i, Some(&self.workload), Method::POST, "/v1/execute", &headers, &body).await
    }

    /// `POST /v1/execute` on node `i` with a DPoP-bound session (`token` bound to `key`).
    pub async fn execute_dpop(
        &self,
        cluster: &Cluster,
        i: usize,
        key: &DpopKey,
        token: &str,
        request: Value,
        correlation_id: &str,
    ) -> anyhow::Result<TestResponse> {
        let authorization = format!("DPoP {token}");
        let dpop = proof(key, "POST", "/v1/execute", Some(token));
        let headers = [
            ("authorization", authorization.as_str()),
            ("dpop", dpop.as_str()),
            ("content-type", "application/json"),
            ("x-correlation-id", correlation_id),
        ];
        let body = self.body(request, None);
        cluster.data(i, Some(&self.workload), Method::POST, "/v1/execute", &headers, &body).await
    }

    /// The audit events of one correlation id (read through node `i`), oldest first.
    pub async fn events(&self, cluster: &Cluster, i: usize, correlation_id: &str) -> Vec<Value> {
        let path =
            format!("/v1/audit/events?tenant_id={}&correlation_id={correlation_id}&limit=1000", self.tenant);
        let (status, page) = cluster.admin(i, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        let mut events = page["events"].as_array().unwrap().clone();
        events.reverse();
        events
    }

    /// `(event_type, decision, reason_code)` of each event of a correlation id, oldest first.
    pub async fn event_kinds(
        &self,
        cluster: &Cluster,
        i: usize,
        correlation_id: &str,
    ) -> Vec<(String, String, String)> {
        execute::event_kinds(&self.events(cluster, i, correlation_id).await)
    }

    /// Every event of the tenant of one type (read through node `i`, all pages).
    pub async fn events_of_type(&self, cluster: &Cluster, i: usize, event_type: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path =
                format!("/v1/audit/events?tenant_id={}&event_type={event_type}&limit=1000", self.tenant);
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let (status, page) = cluster.admin(i, Method::GET, &path, None).await;
            assert_eq!(status, 200, "{page}");
            events.extend(page["events"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return events,
            }
        }
    }

    /// `GET /v1/audit/verify` of the tenant through node `i`: the verdict must be ok.
    pub async fn verify(&self, cluster: &Cluster, i: usize) -> Value {
        let (status, verify) =
            cluster.admin(i, Method::GET, &format!("/v1/audit/verify?tenant_id={}", self.tenant), None).await;
        assert_eq!(status, 200, "{verify}");
        assert_eq!(verify["ok"], true, "{verify}");
        verify
    }

    pub fn set_upstream(&self, reply: Reply) {
        self.upstream.set(reply);
    }
}

/// The `retry-after` of an answer, if any.
pub fn retry_after(response: &TestResponse) -> Option<u64> {
    response.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}
