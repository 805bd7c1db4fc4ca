//! OAuth2 integrations against a local OAuth2 provider over HTTPS (reached through
//! `egress.static_hosts`, trusted through `egress.extra_ca_files`): token acquisition, caching,
//! expiry, one refresh across two instances, refresh-token rotation, failures, both client
//! authentication methods, the upstream 401, and that no token ever shows in a response, a log line
//! or an audit event.

#![allow(clippy::unwrap_used)]

use crate::common;
mod provider;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::workload::{Workload, call, enrolled, owner, session_token, tenant};
use common::{TestServer, clock, embedded_options, free_port_env, install_crypto_provider};
use http::Method;
use provider::{API_HOST, Provider, TOKEN_HOST, TokenMode};
use serde_json::{Value, json};
use steward_server::bootstrap::init;
use steward_server::services::credentials::oauth2::{AccessToken, OAuthError, access_token};
use steward_server::startup::Environment;
use steward_store::governance::{AuditFilter, AuditOrder};
use steward_testkit::http_client::TestResponse;
use steward_testkit::templates::{self, group};
use steward_types::{ManualClock, SharedClock};

const REFRESH_TOKEN: &str = "rt-initial-refresh-token-0001";
const CLIENT_SECRET: &str = "cs-client-secret-value-0001";
const CLIENT_ID: &str = "steward-test-client";

// ----- fixture ------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `oauth2_refresh_token` with a client secret, `client_secret_post`.
    RefreshPost,
    /// `oauth2_client_credentials`, `client_secret_basic`.
    CredentialsBasic,
    /// `oauth2_client_credentials`, `client_secret_post`.
    CredentialsPost,
}

struct Fixture {
    server: TestServer,
    provider: Provider,
    integration_id: String,
    workload: Workload,
    session: Mutex<String>,
}

fn egress_env(dir: &Path, provider: &Provider, extra: &[(&str, &str)]) -> Environment {
    let ca = dir.join("provider-ca.pem");
    std::fs::write(&ca, &provider.ca_pem).unwrap();
    let hosts = format!(r#"{{"{TOKEN_HOST}"=["127.0.0.1"], "{API_HOST}"=["127.0.0.1"]}}"#);
    let ca_files = format!("[{:?}]", ca.display().to_string());
    let mut vars = vec![
        ("STEWARD_EGRESS__STATIC_HOSTS", hosts.as_str()),
        ("STEWARD_EGRESS__ALLOW_CIDRS", r#"["127.0.0.1/32"]"#),
        ("STEWARD_EGRESS__EXTRA_CA_FILES", ca_files.as_str()),
    ];
    vars.extend_from_slice(extra);
    free_port_env(&vars)
}

impl Fixture {
    async fn embedded(dir: &Path, kind: Kind, clock: SharedClock, extra: &[(&str, &str)]) -> Self {
        common::logs::captured();
        install_crypto_provider();
        let provider = Provider::start().await;
        init(&embedded_options(dir), &Environment::default(), common::clock()).await.unwrap();
        let server =
            TestServer::start_with_clock(dir, egress_env(dir, &provider, extra), clock).await.unwrap();
        Self::provision(server, provider, kind).await
    }

    /// Two instances on one PostgreSQL + Redis deployment; provisioned through the first.
    async fn shared(temp: &Path, database_url: &str, kind: Kind) -> (Self, TestServer) {
        use steward_testkit::unique_redis_prefix;
        common::logs::captured();
        install_crypto_provider();
        let provider = Provider::start().await;
        let (first_dir, second_dir) = (temp.join("first"), temp.join("second"));
        common::init_shared_pair(database_url, &first_dir, &second_dir).await;
        let prefix = unique_redis_prefix();
        let extra = [("STEWARD_STORAGE__REDIS_KEY_PREFIX", prefix.as_str())];
        let first = TestServer::start(&first_dir, egress_env(&first_dir, &provider, &extra)).await.unwrap();
        let mut second =
            TestServer::start(&second_dir, egress_env(&second_dir, &provider, &extra)).await.unwrap();
        second.data_dir = first_dir.clone();
        (Self::provision(first, provider, kind).await, second)
    }

    async fn provision(server: TestServer, provider: Provider, kind: Kind) -> Self {
        let tenant = tenant(&server, false).await;
        let template = templates::template("tpl_mail", "mail")
            .tenant(&tenant)
            .port(provider.addr.port())
            .hosts(&[API_HOST])
            .group(
                group("mail_read", &["GET"], &["^/v1/messages$"])
                    .headers(&["accept"])
                    .response_headers(&["content-type"]),
            )
            .build();
        let (status, published) = owner(&server, Method::POST, "/v1/templates", Some(template)).await;
        assert_eq!(status, 201, "{published}");
        let (secret, oauth2) = match kind {
            Kind::RefreshPost => (
                json!({"type": "oauth2_refresh_token", "value": REFRESH_TOKEN}),
                json!({"token_url": provider.token_url(), "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                       "scopes": ["mail.read", "mail.labels"], "auth_method": "client_secret_post"}),
            ),
            Kind::CredentialsBasic | Kind::CredentialsPost => (
                json!({"type": "oauth2_client_credentials", "value": CLIENT_SECRET}),
                json!({"token_url": provider.token_url(), "client_id": CLIENT_ID, "scopes": ["mail.read"],
                       "auth_method": if kind == Kind::CredentialsBasic { "client_secret_basic" } else { "client_secret_post" }}),
            ),
        };
        let body = json!({"name": format!("mail-{}", uuid::Uuid::new_v4().simple()), "provider": "mail",
            "template_id": "tpl_mail", "secret": secret, "oauth2": oauth2});
        let (status, created) =
            owner(&server, Method::POST, &format!("/v1/tenants/{tenant}/integrations"), Some(body)).await;
        assert_eq!(status, 201, "{created}");
        let integration_id = created["integration_id"].as_str().unwrap().to_owned();
        let rule = json!({"rule_type": "allow", "scope": {"tenant_id": tenant, "integration_id": integration_id,
            "action_group": "mail_read", "method": "GET", "host": API_HOST}});
        let (status, created) = owner(&server, Method::POST, "/v1/policies", Some(rule)).await;
        assert_eq!(status, 201, "{created}");
        let workload = enrolled(&server, &tenant, json!({})).await;
        let session = session_token(&server, &workload, None).await;
        Self { server, provider, integration_id, workload, session: Mutex::new(session) }
    }

    /// `access_token` on `server` for the integration's current secret version.
    async fn token_on(&self, server: &TestServer) -> Result<AccessToken, OAuthError> {
        let store = &server.state.store;
        let integration = store
            .integration(&steward_types::IntegrationId::parse(&self.integration_id).unwrap())
            .await
            .unwrap()
            .unwrap();
        let secret = store
            .current_secret(&steward_types::IntegrationId::parse(&self.integration_id).unwrap())
            .await
            .unwrap()
            .unwrap();
        access_token(&server.state, &integration, &secret).await
    }

    async fn token(&self) -> Result<AccessToken, OAuthError> {
        self.token_on(&self.server).await
    }

    async fn secret_version(&self) -> u64 {
        self.server
            .state
            .store
            .current_secret(&steward_types::IntegrationId::parse(&self.integration_id).unwrap())
            .await
            .unwrap()
            .unwrap()
            .version
    }

    /// `POST /v1/execute` of `GET /v1/messages` on `server`.
    async fn execute_on(&self, server: &TestServer, correlation_id: &str) -> TestResponse {
        let url = format!("https://{API_HOST}:{}/v1/messages", self.provider.addr.port());
        let body = json!({"integration_id": self.integration_id, "request": {"method": "GET", "url": url}});
        let authorization = format!("Bearer {}", self.session.lock().unwrap());
        let headers = [
            ("authorization", authorization.as_str()),
            ("content-type", "application/json"),
            ("x-correlation-id", correlation_id),
        ];
        call(server, Some(&self.workload), Method::POST, "/v1/execute", &headers, &body.to_string()).await
    }

    /// A new session (after the manual clock jumped past the old one's expiry).
    async fn renew_session(&self) {
        let session = session_token(&self.server, &self.workload, None).await;
        *self.session.lock().unwrap() = session;
    }

    async fn execute(&self, correlation_id: &str) -> TestResponse {
        self.execute_on(&self.server, correlation_id).await
    }

    async fn events(&self, correlation_id: &str) -> Vec<Value> {
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

    async fn all_events_text(&self) -> String {
        let filter = AuditFilter::default();
        let events = self
            .server
            .state
            .store
            .search_audit_events(&filter, None, AuditOrder::OldestFirst, 1000)
            .await
            .unwrap();
        serde_json::to_string(&events).unwrap()
    }

    /// Every secret and token of this fixture: none may ever appear outside Steward's store.
    fn secrets(&self) -> Vec<String> {
        let mut all = self.provider.issued();
        all.push(REFRESH_TOKEN.to_owned());
        all.push(CLIENT_SECRET.to_owned());
        all
    }
}

fn text(token: &AccessToken) -> String {
    String::from_utf8(token.secret().to_vec()).unwrap()
}

#[track_caller]
fn unavailable(result: Result<AccessToken, OAuthError>, reason: &str) -> OAuthError {
    let error = result.expect_err("no token may be returned");
    assert_eq!(error.reason(), reason, "{error:?}");
    error
}

#[track_caller]
fn expect_error(response: &TestResponse, status: u16, code: &str) -> String {
    let body = response.json();
    assert_eq!((response.status, body["error"].as_str().unwrap_or("")), (status, code), "{body}");
    body["message"].as_str().unwrap_or("").to_owned()
}

// ----- tests --------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_use_fetches_later_calls_reuse_and_expiry_refreshes_once() {
    let dir = tempfile::tempdir().unwrap();
    let manual = Arc::new(ManualClock::starting_now());
    let f = Fixture::embedded(dir.path(), Kind::RefreshPost, manual.clone(), &[]).await;

    let first = f.token().await.unwrap();
    assert!(first.refreshed);
    assert_eq!(f.provider.token_count(), 1);
    let request = &f.provider.token_requests()[0];
    assert_eq!(request.target, "/token");
    assert_eq!(request.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(request.header("accept"), Some("application/json"));
    assert_eq!(request.header("authorization"), None);
    assert_eq!(request.field("grant_type").as_deref(), Some("refresh_token"));
    assert_eq!(request.field("refresh_token").as_deref(), Some(REFRESH_TOKEN));
    assert_eq!(request.field("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(request.field("client_secret").as_deref(), Some(CLIENT_SECRET));
    assert_eq!(request.field("scope").as_deref(), Some("mail.read mail.labels"));

    // Later calls reuse it, until 60 s before it expires.
    manual.advance_seconds(3600 - 61);
    let again = f.token().await.unwrap();
    assert!(!again.refreshed);
    assert_eq!(text(&again), text(&first));
    assert_eq!(f.provider.token_count(), 1);

    // Then ten concurrent calls cause exactly one refresh, and all get the new token.
    manual.advance_seconds(2);
    f.provider.set_token_mode(TokenMode::Issue {
        expires_in: 3600,
        rotate: false,
        delay: Duration::from_millis(300),
    });
    let calls: Vec<_> = (0..10).map(|_| f.token()).collect();
    let results = futures::future::join_all(calls).await;
    assert_eq!(f.provider.token_count(), 2, "exactly one refresh");
    let tokens: Vec<AccessToken> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(tokens.iter().filter(|t| t.refreshed).count(), 1);
    let fresh = f.provider.current_access_token().unwrap();
    assert!(tokens.iter().all(|t| text(t) == fresh));
    assert_ne!(fresh, text(&first));
    f.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_calls_on_two_instances_cause_exactly_one_refresh() {
    let database = steward_testkit::TestDatabase::create().await.unwrap();
    let temp = tempfile::tempdir().unwrap();
    let (f, second) = Fixture::shared(temp.path(), &database.url, Kind::RefreshPost).await;
    f.provider.set_token_mode(TokenMode::Issue {
        expires_in: 3600,
        rotate: true,
        delay: Duration::from_millis(400),
    });
    let calls: Vec<_> =
        (0..10).map(|n| if n % 2 == 0 { f.token_on(&f.server) } else { f.token_on(&second) }).collect();
    let tokens: Vec<AccessToken> =
        futures::future::join_all(calls).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(f.provider.token_count(), 1, "one refresh across both instances");
    assert_eq!(tokens.iter().filter(|t| t.refreshed).count(), 1);
    let issued = f.provider.current_access_token().unwrap();
    assert!(tokens.iter().all(|t| text(t) == issued));
    // The rotation happened once: one new secret version.
    assert_eq!(f.secret_version().await, 2);

    // End to end on both instances: the cached token is injected, nothing is refreshed.
    for (n, server) in [&f.server, &second].into_iter().enumerate() {
        let response = f.execute_on(server, &format!("c-shared-{n}")).await;
        assert_eq!(response.status, 200, "{}", response.json());
    }
    assert_eq!(f.provider.token_count(), 1);
    assert!(
        f.provider
            .api_requests()
            .iter()
            .all(|r| r.header("authorization") == Some(&format!("Bearer {issued}")))
    );
    second.stop().await;
    f.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_refresh_token_is_stored_and_used_next_time() {
    let dir = tempfile::tempdir().unwrap();
    let manual = Arc::new(ManualClock::starting_now());
    let f = Fixture::embedded(dir.path(), Kind::RefreshPost, manual.clone(), &[]).await;
    f.provider.issue(3600, true);
    assert_eq!(f.secret_version().await, 1);
    assert!(f.token().await.unwrap().refreshed);
    let rotated = f.provider.issued()[1].clone();
    assert!(rotated.starts_with("rt-rotated-"));
    assert_eq!(f.secret_version().await, 2, "the rotated refresh token is a new secret version");
    let secret = f
        .server
        .state
        .store
        .current_secret(&steward_types::IntegrationId::parse(&f.integration_id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        secret.bound_hosts.contains(&TOKEN_HOST.to_owned())
            && secret.bound_hosts.contains(&API_HOST.to_owned())
    );
    assert!(secret.client_secret.is_some(), "the client secret moved to the new version");
    // The admin API reports the new version, never the token.
    let (status, read) =
        owner(&f.server, Method::GET, &format!("/v1/integrations/{}", f.integration_id), None).await;
    assert_eq!(status, 200, "{read}");
    assert!(!read.to_string().contains(&rotated));

    // Next refresh uses the rotated refresh token (and still the client secret).
    manual.advance_seconds(3600);
    assert!(f.token().await.unwrap().refreshed);
    let request = f.provider.token_requests()[1].clone();
    assert_eq!(request.field("refresh_token"), Some(rotated));
    assert_eq!(request.field("client_secret").as_deref(), Some(CLIENT_SECRET));
    assert_eq!(f.secret_version().await, 3);
    f.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_failures_are_503_and_nothing_is_injected() {
    let dir = tempfile::tempdir().unwrap();
    let manual = Arc::new(ManualClock::starting_now());
    let f = Fixture::embedded(dir.path(), Kind::RefreshPost, manual.clone(), &[]).await;

    // A server error, then a malformed answer: retried on the next call each time.
    f.provider.fail(503, json!({"error": "invalid_grant"}));
    unavailable(f.token().await, "http_503");
    f.provider.set_token_mode(TokenMode::Fail { status: 200, body: r#"{"token_type":"Bearer"}"#.into() });
    unavailable(f.token().await, "invalid_token_response");
    f.provider.fail(400, json!({"error": "temporarily_unavailable", "error_description": "try later"}));
    unavailable(f.token().await, "temporarily_unavailable");
    assert_eq!(f.provider.token_count(), 3);

    // invalid_grant: 503 naming it, the upstream never called, and the endpoint not hammered.
    f.provider.fail(
        400,
        json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),
    );
    let response = f.execute("c-invalid-grant").await;
    let message = expect_error(&response, 503, "integration_secret_unavailable");
    assert!(message.contains("invalid_grant"), "{message}");
    assert!(f.provider.api_requests().is_empty(), "the upstream was never called");
    let events = f.events("c-invalid-grant").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event_type"], "execute");
    assert_eq!(events[0]["decision"], "denied");
    assert_eq!(events[0]["reason_code"], "integration_secret_unavailable");
    let count = f.provider.token_count();
    let again = f.execute("c-invalid-grant-2").await;
    expect_error(&again, 503, "integration_secret_unavailable");
    assert_eq!(f.provider.token_count(), count, "a permanent refusal is held for a while");
    // After the hold, the endpoint is asked again (and now answers).
    manual.advance_seconds(31);
    f.provider.issue(3600, false);
    assert_eq!(f.execute("c-recovered").await.status, 200);
    assert_eq!(f.provider.token_count(), count + 1);
    f.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_token_endpoint_gives_503_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::embedded(
        dir.path(),
        Kind::RefreshPost,
        clock(),
        &[("STEWARD_EGRESS__TOTAL_TIMEOUT_MS", "1500")],
    )
    .await;
    f.provider.set_token_mode(TokenMode::Hang);
    let started = Instant::now();
    let response = f.execute("c-hang").await;
    let message = expect_error(&response, 503, "integration_secret_unavailable");
    assert!(message.contains("upstream_timeout"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(f.provider.api_requests().is_empty());
    f.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_401_drops_the_token_without_retrying_and_the_next_call_refreshes() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::embedded(dir.path(), Kind::RefreshPost, clock(), &[]).await;
    let ok = f.execute("c-first").await;
    assert_eq!(ok.status, 200, "{}", ok.json());
    assert_eq!((f.provider.token_count(), f.provider.api_requests().len()), (1, 1));

    // The provider revokes the token: the 401 is passed through, once, not retried.
    f.provider.set_api_unauthorized(true);
    let refused = f.execute("c-401").await;
    assert_eq!(refused.status, 200, "{}", refused.json());
    assert_eq!(refused.json()["upstream"]["status_code"], 401);
    assert_eq!(f.provider.api_requests().len(), 2, "the call is not retried");
    assert_eq!(f.provider.token_count(), 1, "no refresh within the call");

    // The next call refreshes and uses the new token.
    f.provider.set_api_unauthorized(false);
    let next = f.execute("c-after").await;
    assert_eq!(next.status, 200, "{}", next.json());
    assert_eq!(f.provider.token_count(), 2);
    let fresh = f.provider.current_access_token().unwrap();
    assert_eq!(
        f.provider.api_requests()[2].header("authorization"),
        Some(format!("Bearer {fresh}").as_str())
    );
    let events = f.events("c-after").await;
    let intent = events.iter().find(|e| e["event_type"] == "execute").unwrap();
    assert_eq!(intent["metadata"]["token_refreshed"], true, "{intent}");
    let events = f.events("c-401").await;
    let intent = events.iter().find(|e| e["event_type"] == "execute").unwrap();
    assert_eq!(intent["metadata"]["token_refreshed"], false, "{intent}");
    f.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_work_with_both_auth_methods() {
    for kind in [Kind::CredentialsBasic, Kind::CredentialsPost] {
        let dir = tempfile::tempdir().unwrap();
        let f = Fixture::embedded(dir.path(), kind, clock(), &[]).await;
        let response = f.execute("c-cc").await;
        assert_eq!(response.status, 200, "{kind:?}: {}", response.json());
        let request = f.provider.token_requests()[0].clone();
        assert_eq!(request.field("grant_type").as_deref(), Some("client_credentials"));
        assert_eq!(request.field("scope").as_deref(), Some("mail.read"));
        assert_eq!(request.field("refresh_token"), None);
        match kind {
            Kind::CredentialsBasic => {
                let expected = format!("Basic {}", STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")));
                assert_eq!(request.header("authorization"), Some(expected.as_str()));
                assert_eq!(request.field("client_secret"), None);
                assert_eq!(request.field("client_id"), None);
            }
            _ => {
                assert_eq!(request.header("authorization"), None);
                assert_eq!(request.field("client_id").as_deref(), Some(CLIENT_ID));
                assert_eq!(request.field("client_secret").as_deref(), Some(CLIENT_SECRET));
            }
        }
        let fresh = f.provider.current_access_token().unwrap();
        assert_eq!(
            f.provider.api_requests()[0].header("authorization"),
            Some(format!("Bearer {fresh}").as_str())
        );
        // Client credentials never rotate anything.
        assert_eq!(f.secret_version().await, 1);
        f.server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_appears_in_any_response_log_line_or_audit_event() {
    let dir = tempfile::tempdir().unwrap();
    let manual = Arc::new(ManualClock::starting_now());
    let f = Fixture::embedded(dir.path(), Kind::RefreshPost, manual.clone(), &[]).await;
    f.provider.issue(3600, true);
    let mut bodies = Vec::new();
    // The provider echoes the access token in its answer: Steward scrubs it.
    let response = f.execute("c-leak-1").await;
    assert_eq!(response.status, 200, "{}", response.json());
    let upstream = String::from_utf8(
        STANDARD.decode(response.json()["upstream"]["body_base64"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert!(upstream.contains("[REDACTED]"), "{upstream}");
    let events = f.events("c-leak-1").await;
    let result = events.iter().find(|e| e["event_type"] == "execute_result").unwrap();
    assert_eq!(result["metadata"]["secret_scrubbed"], true, "{result}");
    bodies.push(format!("{:?} {}", response.headers, response.json()));
    // Failures too: their messages name the OAuth error only.
    manual.advance_seconds(3600);
    f.renew_session().await;
    f.provider.fail(400, json!({"error": "invalid_grant", "error_description": REFRESH_TOKEN}));
    let refused = f.execute("c-leak-2").await;
    expect_error(&refused, 503, "integration_secret_unavailable");
    bodies.push(format!("{:?} {}", refused.headers, refused.json()));
    let (_, integration) =
        owner(&f.server, Method::GET, &format!("/v1/integrations/{}", f.integration_id), None).await;
    bodies.push(integration.to_string());

    let audit = f.all_events_text().await;
    let logs = common::logs::text();
    assert!(logs.contains("OAuth2"), "the log capture works");
    let secrets = f.secrets();
    assert!(secrets.len() >= 4, "{}", secrets.len());
    for secret in &secrets {
        for body in &bodies {
            assert!(!body.contains(secret.as_str()), "a response holds a token: {body}");
        }
        assert!(!audit.contains(secret.as_str()), "an audit event holds a token");
        assert!(!logs.contains(secret.as_str()), "a log line holds a token");
    }
    f.server.stop().await;
}

/// The built-in `tpl_gmail` and `tpl_google_calendar` templates (port 443, Google's hosts) work with
/// OAuth2 integrations: the provider listens on 127.0.0.1:443 with a certificate for those hosts,
/// reached through `egress.static_hosts` exactly as Google would be through DNS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_google_templates_work_with_oauth2_integrations() {
    common::logs::captured();
    install_crypto_provider();
    let provider =
        Provider::start_with("127.0.0.1:443", &["gmail.googleapis.com", "www.googleapis.com"]).await;
    let dir = tempfile::tempdir().unwrap();
    init(&embedded_options(dir.path()), &Environment::default(), common::clock()).await.unwrap();
    let ca = dir.path().join("provider-ca.pem");
    std::fs::write(&ca, &provider.ca_pem).unwrap();
    let hosts = format!(
        r#"{{"{TOKEN_HOST}"=["127.0.0.1"], "gmail.googleapis.com"=["127.0.0.1"], "www.googleapis.com"=["127.0.0.1"]}}"#
    );
    let ca_files = format!("[{:?}]", ca.display().to_string());
    let env = free_port_env(&[
        ("STEWARD_EGRESS__STATIC_HOSTS", hosts.as_str()),
        ("STEWARD_EGRESS__ALLOW_CIDRS", r#"["127.0.0.1/32"]"#),
        ("STEWARD_EGRESS__EXTRA_CA_FILES", ca_files.as_str()),
    ]);
    let server = TestServer::start(dir.path(), env).await.unwrap();
    let tenant = tenant(&server, false).await;
    let workload = enrolled(&server, &tenant, json!({})).await;
    let session = session_token(&server, &workload, None).await;

    let cases = [
        ("tpl_gmail", "gmail_read", "gmail.googleapis.com", "/gmail/v1/users/me/messages?q=from%3Aboss"),
        ("tpl_google_calendar", "calendar_read", "www.googleapis.com", "/calendar/v3/users/me/calendarList"),
    ];
    for (template_id, group, host, path) in cases {
        let body = json!({"name": template_id, "provider": "google", "template_id": template_id,
            "secret": {"type": "oauth2_refresh_token", "value": REFRESH_TOKEN},
            "oauth2": {"token_url": provider.token_url(), "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                       "scopes": ["https://www.googleapis.com/auth/gmail.readonly"], "auth_method": "client_secret_post"}});
        let (status, created) =
            owner(&server, Method::POST, &format!("/v1/tenants/{tenant}/integrations"), Some(body)).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["template_owner"], "global", "bound to the built-in template");
        let integration_id = created["integration_id"].as_str().unwrap().to_owned();
        let rule = json!({"rule_type": "allow", "scope": {"tenant_id": tenant, "integration_id": integration_id,
            "action_group": group, "method": "GET", "host": host}});
        let (status, created) = owner(&server, Method::POST, "/v1/policies", Some(rule)).await;
        assert_eq!(status, 201, "{created}");

        let execute = json!({"integration_id": integration_id,
            "request": {"method": "GET", "url": format!("https://{host}{path}"),
                        "headers": [{"name": "accept", "value": "application/json"}]}});
        let authorization = format!("Bearer {session}");
        let headers = [("authorization", authorization.as_str()), ("content-type", "application/json")];
        let response =
            call(&server, Some(&workload), Method::POST, "/v1/execute", &headers, &execute.to_string()).await;
        assert_eq!(response.status, 200, "{template_id}: {}", String::from_utf8_lossy(&response.body));
        let answer = response.json();
        assert_eq!(answer["upstream"]["status_code"], 200, "{template_id}: {answer}");
        let received = provider.api_requests().pop().unwrap();
        assert!(received.target.starts_with(path.split('?').next().unwrap()), "{}", received.target);
        let current = provider.current_access_token().unwrap();
        assert_eq!(received.header("authorization"), Some(format!("Bearer {current}").as_str()));
        // The echoed access token never reaches the workload.
        let body =
            String::from_utf8(STANDARD.decode(answer["upstream"]["body_base64"].as_str().unwrap()).unwrap())
                .unwrap();
        assert!(!body.contains(&current), "{body}");
    }
    server.stop().await;
}
