//! The catalog admin API over real HTTP against a real server: templates (built-ins, every
//! validation code, version rules, roles), integrations (binding, secrets, injection, host binding,
//! crypto-shredding, roles and tenant scope), policies (validation, lifecycle, roles), audit values,
//! and a known secret found nowhere it must not be.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::TestServer;
use http::Method;
use serde_json::{Value, json};
use steward_testkit::http_client::TestResponse;
use steward_testkit::templates::{self, group};

/// A server with two tenants and tokens of every role for tenant A.
struct Fixture {
    server: TestServer,
    owner: String,
    a: String,
    b: String,
    admin_a: String,
    operator_a: String,
    auditor_a: String,
}

impl Fixture {
    async fn new(dir: &std::path::Path) -> Self {
        common::logs::captured();
        let server = TestServer::init_and_start(dir).await;
        let owner = server.owner_token();
        let mut fixture = Fixture {
            server,
            owner,
            a: String::new(),
            b: String::new(),
            admin_a: String::new(),
            operator_a: String::new(),
            auditor_a: String::new(),
        };
        fixture.a = fixture.tenant("tenant-a").await;
        fixture.b = fixture.tenant("tenant-b").await;
        fixture.admin_a = fixture.token("admin").await;
        fixture.operator_a = fixture.token("operator").await;
        fixture.auditor_a = fixture.token("auditor").await;
        fixture
    }

    async fn tenant(&self, name: &str) -> String {
        let created = self.call(&self.owner, Method::POST, "/v1/tenants", Some(json!({"name": name}))).await;
        assert_eq!(created.status, 201, "{}", created.json());
        created.json()["tenant_id"].as_str().unwrap().to_owned()
    }

    async fn token(&self, role: &str) -> String {
        let body = json!({"name": format!("{role}-a"), "role": role, "tenant_ids": [self.a]});
        let created = self.call(&self.owner, Method::POST, "/v1/admin/tokens", Some(body)).await;
        assert_eq!(created.status, 201, "{}", created.json());
        created.json()["token"].as_str().unwrap().to_owned()
    }

    async fn call(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> TestResponse {
        self.server.admin(method, path, Some(token), body).await
    }

    /// Creates an api_key integration on `template_id` in `tenant` (as the owner).
    async fn integration(&self, tenant: &str, name: &str, template_id: &str, provider: &str) -> Value {
        let body = json!({
            "name": name, "provider": provider, "template_id": template_id,
            "secret": {"type": "api_key", "value": "sk-test-integration-0001"},
        });
        let created = self
            .call(&self.owner, Method::POST, &format!("/v1/tenants/{tenant}/integrations"), Some(body))
            .await;
        assert_eq!(created.status, 201, "{}", created.json());
        created.json()
    }
}

#[track_caller]
fn expect_error(response: &TestResponse, status: u16, code: &str) {
    let body = response.json();
    assert_eq!((response.status, body["error"].as_str().unwrap_or("")), (status, code), "{body}");
    assert!(!body["message"].as_str().unwrap_or("").is_empty(), "{body}");
}

fn template(id: &str, version: u64, provider: &str) -> Value {
    templates::template(id, provider)
        .version(version)
        .hosts(&["api.example.com"])
        .group(group("items_read", &["GET"], &["^/v1/items$"]).headers(&["accept"]))
        .build()
}

#[tokio::test]
async fn builtins_are_installed_by_init_and_install_builtin_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::new(dir.path()).await;
    let listed = f.call(&f.owner, Method::GET, "/v1/templates?tenant_id=global", None).await;
    assert_eq!(listed.status, 200);
    let ids: Vec<String> = listed.json()["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["template_id"].as_str().unwrap().to_owned())
        .collect();
    let builtins = [
        "tpl_anthropic",
        "tpl_github",
        "tpl_gmail",
        "tpl_google_calendar",
        "tpl_mcp_remote",
        "tpl_openai",
        "tpl_slack",
    ];
    assert_eq!(ids, builtins);

    for body in [None, Some(json!({}))] {
        let again = f.call(&f.owner, Method::POST, "/v1/templates/install-builtin", body).await;
        assert_eq!(again.status, 200, "{}", again.json());
        assert_eq!(again.json()["installed"], json!([]));
        assert_eq!(again.json()["already_present"].as_array().unwrap().len(), builtins.len());
    }
    for token in [&f.admin_a, &f.operator_a, &f.auditor_a] {
        let refused = f.call(token, Method::POST, "/v1/templates/install-builtin", None).await;
        expect_error(&refused, 403, "admin_forbidden");
    }

    let one = f.call(&f.auditor_a, Method::GET, "/v1/templates/tpl_anthropic/versions/1", None).await;
    assert_eq!(one.status, 200);
    let body = one.json();
    assert_eq!((body["tenant_id"].as_str(), body["provider"].as_str()), (Some("global"), Some("anthropic")));
    assert_eq!(body["template"]["default_injection"]["name"], "x-api-key");
    let groups = body["template"]["path_groups"].as_array().unwrap();
    assert!(
        groups
            .iter()
            .any(|g| g["header_forward_allowlist"].as_array().unwrap().contains(&json!("anthropic-version")))
    );

    let slack = f.call(&f.owner, Method::GET, "/v1/templates/tpl_slack/versions/1", None).await.json();
    assert_eq!(slack["template"]["path_groups"][0]["approval_mode"], "required");
    assert_eq!(slack["template"]["path_groups"][0]["approval_preview"], json!(["/channel", "/text"]));
    let gmail = f.call(&f.owner, Method::GET, "/v1/templates/tpl_gmail/versions/1", None).await.json();
    let send = gmail["template"]["path_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group_id"] == "gmail_send")
        .unwrap()
        .clone();
    assert_eq!(
        (send["risk_tier"].as_str(), send["approval_mode"].as_str()),
        (Some("high"), Some("required"))
    );

    let missing = f.call(&f.owner, Method::GET, "/v1/templates/tpl_openai/versions/7", None).await;
    expect_error(&missing, 404, "template_version_not_found");
    let not_number = f.call(&f.owner, Method::GET, "/v1/templates/tpl_openai/versions/x", None).await;
    expect_error(&not_number, 400, "path_param_invalid");
    let bad_query = f.call(&f.owner, Method::GET, "/v1/templates?nope=1", None).await;
    expect_error(&bad_query, 400, "query_invalid");
    let unauthenticated = f.server.admin(Method::GET, "/v1/templates", None, None).await;
    expect_error(&unauthenticated, 401, "admin_auth_missing");
    f.server.stop().await;
}

#[tokio::test]
async fn every_template_validation_code_comes_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::new(dir.path()).await;
    let group = |patch: Value| {
        let mut t = template("tpl_bad", 1, "p");
        for (k, v) in patch.as_object().unwrap() {
            t["path_groups"][0][k] = v.clone();
        }
        t
    };
    let top = |key: &str, value: Value| {
        let mut t = template("tpl_bad", 1, "p");
        t[key] = value;
        t
    };
    let mut two_groups = template("tpl_bad", 1, "p");
    let first = two_groups["path_groups"][0].clone();
    two_groups["path_groups"].as_array_mut().unwrap().push(first);
    let cases: Vec<(Value, &str)> = vec![
        (top("unknown_field", json!(1)), "template_invalid"),
        (top("template_id", json!("openai")), "template_invalid"),
        (top("allowed_schemes", json!(["http"])), "template_invalid"),
        (top("redirect_policy", json!({"mode": "follow"})), "template_invalid"),
        (top("allowed_hosts", json!(["exa mple.com"])), "template_host_invalid"),
        (top("allowed_hosts", json!(["*.example.com"])), "template_host_wildcard_forbidden"),
        (
            top("allowed_hosts", json!(["api.example.com", "API.example.com."])),
            "template_allowlist_duplicate",
        ),
        (top("allowed_ports", json!([443, 443])), "template_allowlist_duplicate"),
        (two_groups, "template_group_duplicate"),
        (group(json!({"path_patterns": ["/v1/items"]})), "template_path_pattern_unanchored"),
        (group(json!({"path_patterns": ["^/.*$"]})), "template_path_pattern_overbroad"),
        (group(json!({"path_patterns": ["^/v1/(items$"]})), "template_path_pattern_invalid"),
        (group(json!({"header_forward_allowlist": ["authorization"]})), "template_header_allowlist_invalid"),
        (group(json!({"header_forward_allowlist": ["bad header"]})), "template_header_allowlist_invalid"),
        (group(json!({"header_forward_allowlist": ["accept", "Accept"]})), "template_allowlist_duplicate"),
        (group(json!({"risk_tier": "extreme"})), "template_invalid"),
        (group(json!({"approval_preview": ["model"]})), "template_invalid"),
        (
            top("default_injection", json!({"type": "header", "name": "cookie", "format": "{secret}"})),
            "validation_failed",
        ),
    ];
    for (body, code) in cases {
        let response = f.call(&f.owner, Method::POST, "/v1/templates", Some(body.clone())).await;
        expect_error(&response, 400, code);
    }
    let not_object = f.call(&f.owner, Method::POST, "/v1/templates", Some(json!([1]))).await;
    expect_error(&not_object, 400, "request_body_schema_invalid");
    let bad_owner = f.call(&f.owner, Method::POST, "/v1/templates", Some(json!({"tenant_id": 5}))).await;
    expect_error(&bad_owner, 400, "request_body_schema_invalid");

    // Version rules, in the spec's order, for a tenant template.
    let publish = |body: Value| f.call(&f.owner, Method::POST, "/v1/templates", Some(body));
    let mut v1 = template("tpl_items", 1, "items");
    v1["tenant_id"] = json!(f.a);
    let created = publish(v1.clone()).await;
    assert_eq!(created.status, 201, "{}", created.json());
    assert_eq!(created.json(), json!({"tenant_id": f.a, "template_id": "tpl_items", "version": 1}));
    expect_error(&publish(v1.clone()).await, 409, "template_version_exists");
    let mut changed = v1.clone();
    changed["description"] = json!("changed");
    expect_error(&publish(changed).await, 409, "template_version_immutable");
    let mut v3 = template("tpl_items", 3, "items");
    v3["tenant_id"] = json!(f.a);
    assert_eq!(publish(v3).await.status, 201);
    let mut v2 = template("tpl_items", 2, "items");
    v2["tenant_id"] = json!(f.a);
    expect_error(&publish(v2).await, 400, "template_version_not_incremented");
    let mut other_provider = template("tpl_items", 4, "other");
    other_provider["tenant_id"] = json!(f.a);
    expect_error(&publish(other_provider).await, 400, "template_provider_mismatch");
    // The same id under `global` is another version line.
    assert_eq!(publish(template("tpl_items", 1, "other")).await.status, 201);
    let latest =
        f.call(&f.owner, Method::GET, &format!("/v1/templates?tenant_id={}", f.a), None).await.json();
    let mine = latest["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant_id"] == json!(f.a))
        .unwrap()
        .clone();
    assert_eq!(mine["version"], 3);
    let old = f
        .call(&f.owner, Method::GET, &format!("/v1/templates/tpl_items/versions/1?tenant_id={}", f.a), None)
        .await;
    assert_eq!(old.status, 200, "every published version stays readable");
    f.server.stop().await;
}

#[tokio::test]
async fn template_roles_and_tenant_scope() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::new(dir.path()).await;
    let with_tenant = |tenant: &str, id: &str| {
        let mut t = template(id, 1, "p");
        t["tenant_id"] = json!(tenant);
        t
    };
    let ok = f.call(&f.admin_a, Method::POST, "/v1/templates", Some(with_tenant(&f.a, "tpl_mine"))).await;
    assert_eq!(ok.status, 201, "{}", ok.json());
    let global =
        f.call(&f.admin_a, Method::POST, "/v1/templates", Some(template("tpl_global", 1, "p"))).await;
    expect_error(&global, 403, "admin_forbidden");
    let other =
        f.call(&f.admin_a, Method::POST, "/v1/templates", Some(with_tenant(&f.b, "tpl_theirs"))).await;
    expect_error(&other, 403, "admin_tenant_forbidden");
    // Role before tenant, tenant before body.
    for token in [&f.operator_a, &f.auditor_a] {
        let refused = f.call(token, Method::POST, "/v1/templates", Some(with_tenant(&f.b, "tpl_x"))).await;
        expect_error(&refused, 403, "admin_forbidden");
    }
    let mut invalid_other = with_tenant(&f.b, "tpl_x");
    invalid_other["allowed_hosts"] = json!(["*"]);
    expect_error(
        &f.call(&f.admin_a, Method::POST, "/v1/templates", Some(invalid_other)).await,
        403,
        "admin_tenant_forbidden",
    );
    let missing_tenant =
        f.call(&f.owner, Method::POST, "/v1/templates", Some(with_tenant("t_missing", "tpl_x"))).await;
    expect_error(&missing_tenant, 404, "tenant_not_found");
    assert_eq!(
        f.call(&f.owner, Method::POST, "/v1/templates", Some(with_tenant(&f.b, "tpl_theirs"))).await.status,
        201
    );

    // Reads: every role; lists limited to global plus the token's tenants.
    for token in [&f.admin_a, &f.operator_a, &f.auditor_a] {
        let listed = f.call(token, Method::GET, "/v1/templates", None).await;
        assert_eq!(listed.status, 200);
        let owners: Vec<Value> =
            listed.json()["templates"].as_array().unwrap().iter().map(|t| t["tenant_id"].clone()).collect();
        assert!(owners.contains(&json!(f.a)) && !owners.contains(&json!(f.b)), "{owners:?}");
        let theirs = f
            .call(token, Method::GET, &format!("/v1/templates/tpl_theirs/versions/1?tenant_id={}", f.b), None)
            .await;
        expect_error(&theirs, 403, "admin_tenant_forbidden");
        let listed_b = f.call(token, Method::GET, &format!("/v1/templates?tenant_id={}", f.b), None).await;
        expect_error(&listed_b, 403, "admin_tenant_forbidden");
    }
    let everything = f.call(&f.owner, Method::GET, "/v1/templates", None).await.json();
    // The built-ins plus the two tenant templates.
    let expected = steward_server::builtin_templates::BUILTIN_TEMPLATES.len() + 2;
    assert_eq!(everything["templates"].as_array().unwrap().len(), expected);
    f.server.stop().await;
}

#[tokio::test]
async fn integration_lifecycle_with_secret_versions_and_crypto_shredding() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::new(dir.path()).await;
    let state = &f.server.state;
    let envelopes_before = state.store.list_envelopes(None, 1000).await.unwrap().len();
    let created = f.integration(&f.a, "openai", "tpl_openai", "openai").await;
    let id = created["integration_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("i_"));
    assert_eq!(created["tenant_id"], json!(f.a));
    assert_eq!(created["template_owner"], "global");
    assert_eq!(created["template_version"], Value::Null);
    assert_eq!(created["injection"], Value::Null);
    assert_eq!(created["enabled"], true);
    assert_eq!(created["secret_version"], 1);
    assert_eq!(created["bound_hosts"], json!(["api.openai.com"]));
    assert!(created["secret_updated_at"].is_string() && created["created_at"].is_string());
    assert_eq!(state.store.list_envelopes(None, 1000).await.unwrap().len(), envelopes_before + 1);

    let path = format!("/v1/integrations/{id}");
    let dup = json!({"name": "openai", "provider": "openai", "template_id": "tpl_openai",
        "secret": {"type": "api_key", "value": "sk-another-secret-01"}});
    let conflict =
        f.call(&f.admin_a, Method::POST, &format!("/v1/tenants/{}/integrations", f.a), Some(dup)).await;
    expect_error(&conflict, 409, "integration_name_conflict");
    for (body, code) in [
        (
            json!({"name": "x", "provider": "openai", "template_id": "tpl_nope", "secret": {"type": "api_key", "value": "abcdefgh"}}),
            "template_not_found",
        ),
        (
            json!({"name": "x", "provider": "openai", "template_id": "tpl_openai", "template_version": 9, "secret": {"type": "api_key", "value": "abcdefgh"}}),
            "template_not_found",
        ),
        (
            json!({"name": "x", "provider": "anthropic", "template_id": "tpl_openai", "secret": {"type": "api_key", "value": "abcdefgh"}}),
            "validation_failed",
        ),
        (
            json!({"name": " ", "provider": "openai", "template_id": "tpl_openai", "secret": {"type": "api_key", "value": "abcdefgh"}}),
            "validation_failed",
        ),
        (
            json!({"name": "x", "provider": "openai", "template_id": "tpl_openai", "secret": {"type": "api_key", "value": "abcdefgh"}, "extra": 1}),
            "request_body_schema_invalid",
        ),
    ] {
        let refused =
            f.call(&f.owner, Method::POST, &format!("/v1/tenants/{}/integrations", f.a), Some(body)).await;
        expect_error(&refused, 400, code);
    }
    let no_tenant =
        f.call(&f.owner, Method::POST, "/v1/tenants/t_missing/integrations", Some(json!({}))).await;
    expect_error(&no_tenant, 404, "tenant_not_found");

    let listed = f.call(&f.operator_a, Method::GET, &format!("/v1/tenants/{}/integrations", f.a), None).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json()["integrations"].as_array().unwrap().len(), 1);
    assert_eq!(f.call(&f.auditor_a, Method::GET, &path, None).await.json(), created);

    let patch = json!({"enabled": false, "template_version": 1, "injection": {"type": "header", "name": "X-Key", "format": "k {secret}"}});
    let patched = f.call(&f.admin_a, Method::PATCH, &path, Some(patch)).await;
    assert_eq!(patched.status, 200, "{}", patched.json());
    let body = patched.json();
    assert_eq!((body["enabled"].clone(), body["template_version"].clone()), (json!(false), json!(1)));
    assert_eq!(body["injection"], json!({"type": "header", "name": "x-key", "format": "k {secret}"}));
    let unpin = f
        .call(
            &f.admin_a,
            Method::PATCH,
            &path,
            Some(json!({"template_version": null, "injection": null, "enabled": true})),
        )
        .await
        .json();
    assert_eq!(
        (unpin["template_version"].clone(), unpin["injection"].clone(), unpin["enabled"].clone()),
        (Value::Null, Value::Null, json!(true))
    );
    expect_error(
        &f.call(&f.admin_a, Method::PATCH, &path, Some(json!({"template_version": 5}))).await,
        400,
        "template_not_found",
    );
    expect_error(
        &f.call(
            &f.admin_a,
            Method::PATCH,
            &path,
            Some(json!({"injection": {"type": "header", "name": "host"}})),
        )
        .await,
        400,
        "validation_failed",
    );
    expect_error(
        &f.call(&f.admin_a, Method::PATCH, &path, Some(json!({"secret": 1}))).await,
        400,
        "request_body_schema_invalid",
    );

    let rotated = f
        .call(
            &f.admin_a,
            Method::PUT,
            &format!("{path}/secret"),
            Some(json!({"type": "api_key", "value": "sk-rotated-secret-02"})),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.json());
    assert_eq!(rotated.json()["secret_version"], 2);
    let current = state
        .store
        .current_secret(&steward_types::IntegrationId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((current.version, current.bound_hosts.clone()), (2, vec!["api.openai.com".to_owned()]));
    expect_error(
        &f.call(
            &f.admin_a,
            Method::PUT,
            &format!("{path}/secret"),
            Some(json!({"type": "api_key", "value": "short"})),
        )
        .await,
        400,
        "secret_invalid",
    );

    let deleted = f.call(&f.admin_a, Method::DELETE, &path, None).await;
    assert_eq!(deleted.status, 204);
    let after = f.call(&f.owner, Method::GET, &path, None).await.json();
    assert_eq!(after["enabled"], false);
    assert!(after["deleted_at"].is_string());
    // Crypto-shredded: both secret versions' ciphertexts are gone, the rows remain.
    assert_eq!(state.store.list_envelopes(None, 1000).await.unwrap().len(), envelopes_before);
    assert_eq!(
        state.store.current_secret(&steward_types::IntegrationId::parse(&id).unwrap()).await.unwrap(),
        None
    );
    expect_error(&f.call(&f.owner, Method::DELETE, &path, None).await, 404, "integration_not_found");
    expect_error(
        &f.call(&f.owner, Method::PATCH, &path, Some(json!({"enabled": true}))).await,
        404,
        "integration_not_found",
    );
    expect_error(
        &f.call(
            &f.owner,
            Method::PUT,
            &format!("{path}/secret"),
            Some(json!({"type": "api_key", "value": "sk-rotated-secret-03"})),
        )
        .await,
        404,
        "integration_not_found",
    );
    expect_error(
        &f.call(&f.owner, Method::GET, "/v1/integrations/i_missing", None).await,
        404,
        "integration_not_found",
    );
    expect_error(
        &f.call(&f.owner, Method::GET, "/v1/integrations/not-an-id", None).await,
        404,
        "integration_not_found",
    );
    f.server.stop().await;
}

#[tokio::test]
async fn secret_injection_and_oauth2_validation() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::new(dir.path()).await;
    let path = format!("/v1/tenants/{}/integrations", f.a);
    let base = |n: usize| {
        json!({"name": format!("i{n}"), "provider": "openai", "template_id": "tpl_openai",
        "secret": {"type": "api_key", "value": "sk-valid-secret-1234"}})
    };
    let with = |n: usize, key: &str, value: Value| {
        let mut body = base(n);
        body[key] = value;
        body
    };
    let oauth = json!({"token_url": "https://Auth.Example.com/oauth/token", "client_id": "client-1",
        "client_secret": "client-secret-value", "scopes": ["read", "write"], "auth_method": "client_secret_basic"});
    let refresh = json!({"type": "oauth2_refresh_token", "value": "refresh-token-value-1"});
    let mut cases: Vec<(Value, &str)> = vec![
        (with(1, "secret", json!({"type": "api_key", "value": "short"})), "secret_invalid"),
        (with(2, "secret", json!({"type": "api_key", "value": "non-ascii-é-secret"})), "secret_invalid"),
        (with(3, "secret", json!({"type": "api_key", "value": "tab\tinside-secret"})), "secret_invalid"),
        (with(4, "secret", json!({"type": "password", "value": "long-enough-secret"})), "secret_invalid"),
        (with(5, "secret", json!({"type": "api_key", "value": 12345678})), "secret_invalid"),
        (with(6, "oauth2", oauth.clone()), "validation_failed"),
        (with(7, "secret", refresh.clone()), "validation_failed"),
    ];
    for name in [
        "host",
        "content-length",
        "transfer-encoding",
        "cookie",
        "dpop",
        "x-steward-anything",
        "connection",
        "bad name",
    ] {
        cases.push((
            with(8, "injection", json!({"type": "header", "name": name, "format": "{secret}"})),
            "validation_failed",
        ));
    }
    cases.push((
        with(9, "injection", json!({"type": "header", "name": "x-key", "format": "no placeholder"})),
        "validation_failed",
    ));
    cases.push((with(9, "injection", json!({"type": "cookie", "name": "x"})), "validation_failed"));
    for (key, value) in [
        ("token_url", json!("http://auth.example.com/token")),
        ("token_url", json!("https://user:pw@auth.example.com/token")),
        ("auth_method", json!("private_key_jwt")),
        ("scopes", json!("read")),
        ("client_id", json!("")),
        ("extra", json!(1)),
    ] {
        let mut block = oauth.clone();
        block[key] = value;
        let mut body = with(10, "secret", refresh.clone());
        body["oauth2"] = block;
        cases.push((body, "validation_failed"));
    }
    let mut short_client = oauth.clone();
    short_client["client_secret"] = json!("tiny");
    let mut body = with(11, "secret", refresh.clone());
    body["oauth2"] = short_client;
    cases.push((body, "secret_invalid"));
    let mut credentials =
        with(12, "secret", json!({"type": "oauth2_client_credentials", "value": "client-secret-value"}));
    credentials["oauth2"] = oauth.clone();
    cases.push((credentials, "validation_failed"));
    for (body, code) in cases {
        let refused = f.call(&f.admin_a, Method::POST, &path, Some(body.clone())).await;
        expect_error(&refused, 400, code);
    }
    let listed = f.call(&f.owner, Method::GET, &path, None).await.json();
    assert_eq!(listed["integrations"], json!([]), "no refused write left anything behind");

    // Valid forms: each injection type, and an OAuth2 refresh token bound to the token host too.
    for (n, injection) in [
        json!({"type": "header", "name": "x-api-key", "format": "{secret}"}),
        json!({"type": "basic", "username": "api"}),
        json!({"type": "query", "name": "key"}),
    ]
    .into_iter()
    .enumerate()
    {
        let created =
            f.call(&f.admin_a, Method::POST, &path, Some(with(20 + n, "injection", injection.clone()))).await;
        assert_eq!(created.status, 201, "{}", created.json());
        assert_eq!(created.json()["injection"], injection);
    }
    let mut oauth_body = with(30, "secret", refresh);
    oauth_body["oauth2"] = oauth;
    let created = f.call(&f.admin_a, Method::POST, &path, Some(oauth_body)).await;
    assert_eq!(created.status, 201, "{}", created.json());
    assert_eq!(created.json()["bound_hosts"], json!(["api.openai.com", "auth.example.com"]));
    let id = created.json()["integration_id"].as_str().unwrap().to_owned();
    let secret = f
        .server
        .state
        .store
        .current_secret(&steward_types::IntegrationId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(secret.secret_type, "oauth2_refresh_token");
    assert!(secret.client_secret.is_some());
    assert_eq!(secret.oauth2.unwrap()["auth_method"], "client_secret_basic");
    f.server.stop().await;
}

#[tokio::test]
async fn a_tenant_template_never_reroutes_an_existing_integration() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::new(dir.path()).await;
    let before = f.integration(&f.a, "openai", "tpl_openai", "openai").await;
    let id = before["integration_id"].as_str().unwrap().to_owned();
    let mut shadow = template("tpl_openai", 1, "openai");
    shadow["allowed_hosts"] = json!(["evil.example.com"]);
    shadow["tenant_id"] = json!(f.a);
    assert_eq!(f.call(&f.admin_a, Method::POST, "/v1/templates", Some(shadow)).await.status, 201);

    let after = f.call(&f.owner, Method::GET, &format!("/v1/integrations/{id}"), None).await.json();
    assert_eq!(after["template_owner"], "global");
    assert_eq!(after["bound_hosts"], json!(["api.openai.com"]));
    let rotated = f
        .call(
            &f.owner,
            Method::PUT,
            &format!("/v1/integrations/{id}/secret"),
            Some(json!({"type": "api_key", "value": "sk-rotated-value-99"})),
        )
        .await;
    assert_eq!(
        rotated.json()["bound_hosts"],
        json!(["api.openai.com"]),
        "a rewrite follows the integration's own binding"
    );
    // New integrations of that tenant bind to its own template; other tenants still get the global one.
    let mine = f.integration(&f.a, "openai-2", "tpl_openai", "openai").await;
    assert_eq!(
        (mine["template_owner"].clone(), mine["bound_hosts"].clone()),
        (json!(f.a), json!(["evil.example.com"]))
    );
    let theirs = f.integration(&f.b, "openai", "tpl_openai", "openai").await;
    assert_eq!(theirs["template_owner"], "global");
    f.server.stop().await;
}

#[tokio::test]
async fn integration_roles_and_tenant_scope() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::new(dir.path()).await;
    let in_a = f.integration(&f.a, "a", "tpl_openai", "openai").await;
    let in_b = f.integration(&f.b, "b", "tpl_openai", "openai").await;
    let a_path = format!("/v1/integrations/{}", in_a["integration_id"].as_str().unwrap());
    let b_path = format!("/v1/integrations/{}", in_b["integration_id"].as_str().unwrap());
    let body = json!({"name": "n", "provider": "openai", "template_id": "tpl_openai", "secret": {"type": "api_key", "value": "sk-valid-secret-1234"}});
    let create_b = format!("/v1/tenants/{}/integrations", f.b);
    let create_a = format!("/v1/tenants/{}/integrations", f.a);
    // Writes: owner and admin only, role checked first.
    for token in [&f.operator_a, &f.auditor_a] {
        expect_error(
            &f.call(token, Method::POST, &create_b, Some(body.clone())).await,
            403,
            "admin_forbidden",
        );
        expect_error(
            &f.call(token, Method::POST, &create_a, Some(body.clone())).await,
            403,
            "admin_forbidden",
        );
        expect_error(
            &f.call(token, Method::PATCH, &a_path, Some(json!({"enabled": false}))).await,
            403,
            "admin_forbidden",
        );
        expect_error(
            &f.call(token, Method::PUT, &format!("{a_path}/secret"), Some(json!({}))).await,
            403,
            "admin_forbidden",
        );
        expect_error(&f.call(token, Method::DELETE, &a_path, None).await, 403, "admin_forbidden");
    }
    // Tenant before body: a bad body for another tenant is still a tenant refusal.
    expect_error(
        &f.call(&f.admin_a, Method::POST, &create_b, Some(json!({"bad": 1}))).await,
        403,
        "admin_tenant_forbidden",
    );
    expect_error(&f.call(&f.admin_a, Method::GET, &create_b, None).await, 403, "admin_tenant_forbidden");
    // Another tenant's integration by id looks exactly like a missing one, before the body.
    for (method, path, body) in [
        (Method::GET, b_path.clone(), None),
        (Method::PATCH, b_path.clone(), Some(json!({"bad": 1}))),
        (Method::PUT, format!("{b_path}/secret"), Some(json!({"bad": 1}))),
        (Method::DELETE, b_path.clone(), None),
    ] {
        expect_error(&f.call(&f.admin_a, method, &path, body).await, 404, "integration_not_found");
    }
    // Reads: every role within its tenant.
    for token in [&f.admin_a, &f.operator_a, &f.auditor_a] {
        assert_eq!(f.call(token, Method::GET, &a_path, None).await.status, 200);
        assert_eq!(f.call(token, Method::GET, &create_a, None).await.status, 200);
    }
    let created = f.call(&f.admin_a, Method::POST, &create_a, Some(body)).await;
    assert_eq!(created.status, 201);
    assert_eq!(f.call(&f.admin_a, Method::PATCH, &a_path, Some(json!({"enabled": false}))).await.status, 200);
    f.server.stop().await;
}

fn rule(tenant: &str, integration: &str) -> Value {
    json!({
        "rule_type": "allow",
        "scope": {"tenant_id": tenant, "integration_id": integration, "action_group": "openai_responses",
                  "method": "post", "host": "api.openai.com"},
        "description": "agents may call responses"
    })
}

#[tokio::test]
async fn policy_lifecycle_validation_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::new(dir.path()).await;
    let ia =
        f.integration(&f.a, "a", "tpl_openai", "openai").await["integration_id"].as_str().unwrap().to_owned();
    let ib =
        f.integration(&f.b, "b", "tpl_openai", "openai").await["integration_id"].as_str().unwrap().to_owned();

    let created = f.call(&f.admin_a, Method::POST, "/v1/policies", Some(rule(&f.a, &ia))).await;
    assert_eq!(created.status, 201, "{}", created.json());
    let body = created.json();
    let policy_id = body["policy_id"].as_str().unwrap().to_owned();
    assert!(policy_id.starts_with("pol_"));
    assert_eq!(body["scope"]["method"], "POST");
    assert_eq!((body["rule_type"].as_str(), body["enabled"].as_bool()), (Some("allow"), Some(true)));
    assert_eq!(body["bypass_template_approval"], false);
    assert!(body["created_at"].is_string());
    let path = format!("/v1/policies/{policy_id}");
    assert_eq!(f.call(&f.auditor_a, Method::GET, &path, None).await.json(), body);

    let mut limited = rule(&f.a, &ia);
    limited["rule_type"] = json!("rate_limit");
    limited["rate_limit"] = json!({"max_requests": 5, "interval_seconds": 60});
    let limited = f.call(&f.owner, Method::POST, "/v1/policies", Some(limited)).await;
    assert_eq!(limited.status, 201, "{}", limited.json());
    assert_eq!(limited.json()["rate_limit"]["per"], "workload");
    let rule_b = f.call(&f.owner, Method::POST, "/v1/policies", Some(rule(&f.b, &ib))).await.json();

    let listed = f.call(&f.operator_a, Method::GET, "/v1/policies", None).await.json();
    assert_eq!(listed["policies"].as_array().unwrap().len(), 2, "only tenant A's");
    let by_integration =
        f.call(&f.owner, Method::GET, &format!("/v1/policies?integration_id={ib}"), None).await.json();
    assert_eq!(by_integration["policies"].as_array().unwrap().len(), 1);
    let by_tenant =
        f.call(&f.owner, Method::GET, &format!("/v1/policies?tenant_id={}", f.a), None).await.json();
    assert_eq!(by_tenant["policies"].as_array().unwrap().len(), 2);
    expect_error(
        &f.call(&f.admin_a, Method::GET, &format!("/v1/policies?tenant_id={}", f.b), None).await,
        403,
        "admin_tenant_forbidden",
    );
    let b_path = format!("/v1/policies/{}", rule_b["policy_id"].as_str().unwrap());
    expect_error(&f.call(&f.admin_a, Method::GET, &b_path, None).await, 404, "policy_not_found");
    expect_error(&f.call(&f.admin_a, Method::DELETE, &b_path, None).await, 404, "policy_not_found");

    // Validation, each naming its field.
    let edit = |pointer: &str, value: Value| {
        let mut r = rule(&f.a, &ia);
        *r.pointer_mut(pointer).unwrap() = value;
        r
    };
    let mut with_limit_on_allow = rule(&f.a, &ia);
    with_limit_on_allow["rate_limit"] = json!({"max_requests": 1, "interval_seconds": 1});
    let mut bypass_on_deny = edit("/rule_type", json!("deny"));
    bypass_on_deny["bypass_template_approval"] = json!(true);
    let mut unsorted = rule(&f.a, &ia);
    unsorted["scope"]["query_keys"] = json!(["b", "a"]);
    let cases: Vec<(Value, &str)> = vec![
        (edit("/rule_type", json!("maybe")), "rule_type"),
        (edit("/scope/method", json!("TRACE")), "scope.method"),
        (edit("/scope/host", json!("https://api.openai.com")), "scope.host"),
        (edit("/scope/host", json!("api.openai.com:443")), "scope.host"),
        (edit("/scope/action_group", json!(" ")), "scope.action_group"),
        (edit("/scope/integration_id", json!("i_unknown")), "scope.integration_id"),
        (edit("/scope/integration_id", json!(ib.clone())), "scope.integration_id"),
        (edit("/scope/action_group", json!("gmail_send")), "scope.action_group"),
        (edit("/rule_type", json!("rate_limit")), "rate_limit"),
        (with_limit_on_allow, "rate_limit"),
        (bypass_on_deny, "bypass_template_approval"),
        (unsorted, "scope.query_keys"),
    ];
    for (body, field) in cases {
        let refused = f.call(&f.admin_a, Method::POST, "/v1/policies", Some(body.clone())).await;
        expect_error(&refused, 400, "policy_invalid");
        let message = refused.json()["message"].as_str().unwrap().to_owned();
        assert!(message.starts_with(field), "{message} should name {field}");
    }
    // Roles and tenant scope.
    for token in [&f.operator_a, &f.auditor_a] {
        expect_error(
            &f.call(token, Method::POST, "/v1/policies", Some(rule(&f.a, &ia))).await,
            403,
            "admin_forbidden",
        );
        expect_error(&f.call(token, Method::DELETE, &path, None).await, 403, "admin_forbidden");
    }
    expect_error(
        &f.call(&f.admin_a, Method::POST, "/v1/policies", Some(rule(&f.b, &ib))).await,
        403,
        "admin_tenant_forbidden",
    );

    assert_eq!(f.call(&f.admin_a, Method::DELETE, &path, None).await.status, 204);
    let disabled = f.call(&f.admin_a, Method::GET, &path, None).await.json();
    assert_eq!(disabled["enabled"], false);
    assert!(disabled["disabled_at"].is_string());
    let listed = f.call(&f.admin_a, Method::GET, "/v1/policies", None).await.json();
    assert_eq!(listed["policies"].as_array().unwrap().len(), 1);
    expect_error(&f.call(&f.admin_a, Method::DELETE, &path, None).await, 404, "policy_not_found");
    expect_error(
        &f.call(&f.admin_a, Method::GET, "/v1/policies/pol_missing", None).await,
        404,
        "policy_not_found",
    );
    f.server.stop().await;
}

/// Every admin_action body of the deployment, oldest first per chain.
async fn audit_bodies(server: &TestServer) -> Vec<Value> {
    let store = &server.state.store;
    let mut bodies = Vec::new();
    for head in store.audit_chain_heads(None).await.unwrap() {
        for event in store.audit_chain_events(&head.chain_id, 0, 10_000).await.unwrap() {
            bodies.push(serde_json::from_str(&event.body_json().unwrap()).unwrap());
        }
    }
    bodies
}

#[tokio::test]
async fn admin_actions_are_audited_with_new_values_for_templates_and_policies() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::new(dir.path()).await;
    let mut t = template("tpl_audited", 1, "p");
    t["tenant_id"] = json!(f.a);
    assert_eq!(f.call(&f.admin_a, Method::POST, "/v1/templates", Some(t)).await.status, 201);
    let ia =
        f.integration(&f.a, "a", "tpl_openai", "openai").await["integration_id"].as_str().unwrap().to_owned();
    let policy = f.call(&f.admin_a, Method::POST, "/v1/policies", Some(rule(&f.a, &ia))).await.json();
    let bodies = audit_bodies(&f.server).await;
    let action = |name: &str| {
        bodies
            .iter()
            .find(|b| b["event_type"] == "admin_action" && b["metadata"]["action"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} event"))
    };
    let published = action("template.publish");
    assert_eq!(published["tenant_id"], json!(f.a));
    assert_eq!(published["metadata"]["value"]["template_id"], "tpl_audited");
    assert_eq!(published["metadata"]["role"], "admin");
    let created = action("policy.create");
    assert_eq!(created["metadata"]["value"]["policy_id"], policy["policy_id"]);
    assert_eq!(created["metadata"]["value"]["scope"]["method"], "POST");
    assert_eq!(action("integration.create")["metadata"]["targets"]["integration_id"], json!(ia));
    f.server.stop().await;
}

#[tokio::test]
async fn a_known_secret_appears_in_no_response_audit_event_or_log() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::new(dir.path()).await;
    let secrets = ["sk-KNOWN-secret-value-4242", "sk-ROTATED-secret-value-4343", "CLIENT-secret-value-4444"];
    let path = format!("/v1/tenants/{}/integrations", f.a);
    let mut responses = Vec::new();
    let created = f
        .call(
            &f.admin_a,
            Method::POST,
            &path,
            Some(json!({"name": "known", "provider": "openai",
        "template_id": "tpl_openai", "secret": {"type": "api_key", "value": secrets[0]}})),
        )
        .await;
    assert_eq!(created.status, 201);
    let id = created.json()["integration_id"].as_str().unwrap().to_owned();
    responses.push(created);
    let item = format!("/v1/integrations/{id}");
    responses.push(
        f.call(
            &f.admin_a,
            Method::PUT,
            &format!("{item}/secret"),
            Some(json!({"type": "oauth2_refresh_token",
        "value": secrets[1], "oauth2": {"token_url": "https://auth.example.com/token", "client_id": "c",
        "client_secret": secrets[2], "scopes": [], "auth_method": "client_secret_post"}})),
        )
        .await,
    );
    // Refused writes must not echo it either, whatever shape it came in.
    for bad in [
        json!({"name": "x", "provider": "openai", "template_id": "tpl_openai", "secret": secrets[0]}),
        json!({"name": "x", "provider": "openai", "template_id": "tpl_openai", "secret": {"type": secrets[0], "value": secrets[0]}}),
        json!({"name": "x", "provider": "openai", "template_id": "tpl_openai", "secret": {"type": "api_key", "value": secrets[0], secrets[1]: 1}}),
        json!({"name": "known", "provider": "openai", "template_id": "tpl_openai", "secret": {"type": "api_key", "value": secrets[0]}}),
        json!({"name": "x", "provider": "openai", "template_id": "tpl_openai", "secret": {"type": "api_key", "value": format!("{}\u{7}", secrets[0])}}),
    ] {
        let refused = f.call(&f.admin_a, Method::POST, &path, Some(bad)).await;
        assert!(refused.status >= 400);
        responses.push(refused);
    }
    responses.push(
        f.call(
            &f.admin_a,
            Method::PUT,
            &format!("{item}/secret"),
            Some(json!({"type": "api_key", "value": secrets[0], "x": 1})),
        )
        .await,
    );
    responses.push(f.call(&f.admin_a, Method::PATCH, &item, Some(json!({"enabled": false}))).await);
    for token in [&f.owner, &f.admin_a, &f.operator_a, &f.auditor_a] {
        responses.push(f.call(token, Method::GET, &item, None).await);
        responses.push(f.call(token, Method::GET, &path, None).await);
        responses.push(f.call(token, Method::GET, "/v1/templates", None).await);
        responses.push(f.call(token, Method::GET, "/v1/policies", None).await);
    }
    responses.push(f.call(&f.admin_a, Method::DELETE, &item, None).await);
    responses.push(f.call(&f.owner, Method::GET, &item, None).await);

    let mut haystacks: Vec<String> =
        responses.iter().map(|r| format!("{:?} {}", r.headers, String::from_utf8_lossy(&r.body))).collect();
    haystacks.extend(audit_bodies(&f.server).await.iter().map(Value::to_string));
    let envelopes = f.server.state.store.list_envelopes(None, 1000).await.unwrap();
    haystacks.extend(envelopes.iter().map(|e| format!("{} {}", e.aad, e.body)));
    f.server.stop().await;
    haystacks.push(common::logs::text());
    assert!(haystacks.last().unwrap().contains("Request handled."), "the log capture works");
    for secret in secrets {
        for (i, text) in haystacks.iter().enumerate() {
            assert!(!text.contains(secret), "secret found in haystack {i}: {text}");
        }
    }
}
