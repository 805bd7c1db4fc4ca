//! The web console over plain HTTP (`spec/console.md`): security headers, the session cookie,
//! CSRF (403), roles and tenant scoping exactly as in the admin API, audit of console decisions
//! with the token as actor, sign-out and revocation, audit search/verify/export and inventory.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::console::{admin_token, csrf, get, post, sign_in};
use common::execute::{Exec, Options, SECRET};
use common::workload::owner;
use http::Method;
use serde_json::{Value, json};
use steward_store::governance::{AuditFilter, AuditOrder};

async fn fixture() -> (Exec, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let f = Exec::embedded(dir.path(), Options::default()).await;
    (f, dir)
}

/// A pending approval created by a real execute.
async fn pending_approval(f: &Exec, name: &str) -> String {
    let response = f.execute(f.post(&json!({"name": name})), None, &format!("c-{name}")).await;
    assert_eq!(response.status, 202, "{}", response.json());
    response.json()["approval_id"].as_str().unwrap().to_owned()
}

async fn approval_status(f: &Exec, approval_id: &str) -> String {
    let (_, view) = owner(&f.server, Method::GET, &format!("/v1/approvals/{approval_id}"), None).await;
    view["status"].as_str().unwrap().to_owned()
}

async fn events_of(f: &Exec, event_type: &str) -> Vec<Value> {
    let filter = AuditFilter::default();
    let events =
        f.server.state.store.search_audit_events(&filter, None, AuditOrder::OldestFirst, 1000).await.unwrap();
    events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .filter(|e| e["event_type"] == event_type)
        .collect()
}

#[track_caller]
fn assert_security_headers(headers: &reqwest::header::HeaderMap) {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let csp = header("content-security-policy");
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("x-content-type-options"), "nosniff");
}

#[tokio::test]
async fn headers_cookie_and_sign_in() {
    let (f, _dir) = fixture().await;
    let addr = f.server.admin_addr;

    let (status, headers, _) = get(addr, "/", None).await;
    assert_eq!((status, headers["location"].to_str().unwrap()), (303, "/ui/"));
    let (status, headers, _) = get(addr, "/ui/", None).await;
    assert_eq!((status, headers["location"].to_str().unwrap()), (303, "/ui/sign-in"));
    let (status, headers, page) = get(addr, "/ui/sign-in", None).await;
    assert_eq!(status, 200);
    assert_security_headers(&headers);
    assert!(page.contains(r#"name="token""#), "{page}");

    // A wrong token: 401, no cookie.
    let (status, set_cookie, _) = sign_in(addr, "stw_adm_not-a-token").await;
    assert_eq!((status, set_cookie), (401, None));

    // The owner token: a session cookie with the spec's attributes; the token is not in it.
    let token = f.server.owner_token();
    let (status, set_cookie, cookie) = sign_in(addr, &token).await;
    assert_eq!(status, 303);
    let set_cookie = set_cookie.unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(set_cookie.split("; ").any(|a| a == attribute), "{attribute} missing: {set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain-HTTP listener: no Secure: {set_cookie}");
    assert!(!set_cookie.contains(&token) && !set_cookie.contains("stw_adm_"), "{set_cookie}");
    let cookie = cookie.unwrap();

    // Every page: strict headers, no inline script, nothing from another host.
    for path in ["/ui/", "/ui/?tab=history", "/ui/audit", "/ui/inventory"] {
        let (status, headers, page) = get(addr, path, Some(&cookie)).await;
        assert_eq!(status, 200, "{path}: {page}");
        assert_security_headers(&headers);
        assert!(!page.contains(&token), "{path} shows the token");
        for script in page.split("<script").skip(1) {
            assert!(script.trim_start().starts_with("src=\"/ui/assets/"), "{path}: inline script: {script}");
        }
        assert!(!page.contains("http://") && !page.contains("https://api"), "{path}: external reference");
    }
    for (asset, kind) in [("console.js", "text/javascript"), ("console.css", "text/css")] {
        let (status, headers, body) = get(addr, &format!("/ui/assets/{asset}"), None).await;
        assert_eq!(status, 200);
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind));
        assert!(!body.contains("http://") && !body.contains("https://"), "{asset} loads from elsewhere");
        assert_security_headers(&headers);
    }
    f.server.stop().await;
}

#[tokio::test]
async fn csrf_origin_and_audit_of_a_console_decision() {
    let (f, _dir) = fixture().await;
    let addr = f.server.admin_addr;
    let approval = pending_approval(&f, "csrf").await;
    let (token_id, token) = admin_token(&f.server, "admin", &[&f.tenant]).await;
    let (_, _, cookie) = sign_in(addr, &token).await;
    let cookie = cookie.unwrap();
    let (_, _, page) = get(addr, "/ui/", Some(&cookie)).await;
    assert!(page.contains(&approval), "{page}");
    let csrf = csrf(&page);
    let deny = format!("/ui/approvals/{approval}/deny");

    // No CSRF token, a wrong one, no cookie, another origin: 403, and nothing changed.
    let (status, _, _) = post(addr, &deny, Some(&cookie), &[], &[]).await;
    assert_eq!(status, 403);
    let (status, _, body) = post(addr, &deny, Some(&cookie), &[("csrf", "wrong")], &[]).await;
    assert_eq!(status, 403);
    assert!(body.contains("console_csrf_invalid"), "{body}");
    let (status, _, _) = post(addr, &deny, None, &[("csrf", &csrf)], &[]).await;
    assert_eq!(status, 403);
    let (status, _, _) =
        post(addr, &deny, Some(&cookie), &[("csrf", &csrf)], &[("origin", "http://evil.example")]).await;
    assert_eq!(status, 403);
    let (status, _, _) =
        post(addr, &deny, Some(&cookie), &[("csrf", &csrf)], &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(status, 403);
    let (status, _, _) = post(addr, "/ui/sign-out", Some(&cookie), &[("csrf", "wrong")], &[]).await;
    assert_eq!(status, 403);
    assert_eq!(approval_status(&f, &approval).await, "pending");
    assert!(events_of(&f, "approval_decided").await.is_empty());

    // With the token: the API's decision, audited with the token as actor.
    let (status, headers, _) =
        post(addr, &deny, Some(&cookie), &[("csrf", &csrf), ("reason", "not today")], &[]).await;
    assert_eq!((status, headers["location"].to_str().unwrap()), (303, "/ui/?done=denied"));
    assert_eq!(approval_status(&f, &approval).await, "denied");
    let decided = events_of(&f, "approval_decided").await;
    assert_eq!(decided.len(), 1, "{decided:?}");
    assert_eq!(decided[0]["actor"]["id"], token_id.as_str(), "{}", decided[0]);
    assert_eq!(decided[0]["metadata"]["decision"], "denied");
    assert_eq!(decided[0]["metadata"]["reason"], "not today");
    f.server.stop().await;
}

#[tokio::test]
async fn roles_and_tenants_are_the_apis() {
    let (f, _dir) = fixture().await;
    let addr = f.server.admin_addr;
    let approval = pending_approval(&f, "roles").await;
    let decide_buttons = ["approve-once-", "approve-rule-", "deny-", "cancel-"];

    // Auditor: sees the approval (preview hidden, as in the API), no decision buttons, no toggles.
    let (_, auditor) = admin_token(&f.server, "auditor", &[&f.tenant]).await;
    let (_, _, cookie) = sign_in(addr, &auditor).await;
    let cookie = cookie.unwrap();
    let (_, _, page) = get(addr, "/ui/", Some(&cookie)).await;
    assert!(page.contains(&approval), "{page}");
    assert!(!page.contains("\"roles\""), "auditors do not see previews");
    for button in decide_buttons {
        assert!(!page.contains(&format!("id=\"{button}{approval}\"")), "{button} shown to an auditor");
    }
    let (_, _, inventory) = get(addr, "/ui/inventory", Some(&cookie)).await;
    assert!(inventory.contains(&f.workload.workload_id), "{inventory}");
    assert!(!inventory.contains("/disable\""), "toggles shown to an auditor");
    // A forged POST with the auditor's own valid CSRF token: the API refuses it (403 admin_forbidden).
    let csrf_token = csrf(&page);
    let (status, _, body) = post(
        addr,
        &format!("/ui/approvals/{approval}/approve-once"),
        Some(&cookie),
        &[("csrf", &csrf_token)],
        &[],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("admin_forbidden"), "{body}");
    let path = format!("/ui/inventory/workloads/{}/disable", f.workload.workload_id);
    let (status, _, body) = post(addr, &path, Some(&cookie), &[("csrf", &csrf_token)], &[]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(approval_status(&f, &approval).await, "pending");

    // Operator: approve once, but not as a rule; no audit (not an audit role).
    let (_, operator) = admin_token(&f.server, "operator", &[&f.tenant]).await;
    let (_, _, cookie) = sign_in(addr, &operator).await;
    let cookie = cookie.unwrap();
    let (_, _, page) = get(addr, "/ui/", Some(&cookie)).await;
    assert!(page.contains(&format!("id=\"approve-once-{approval}\"")), "{page}");
    assert!(!page.contains(&format!("id=\"approve-rule-{approval}\"")), "{page}");
    assert!(page.contains("roles"), "operators see the preview value");
    assert!(!page.contains("href=\"/ui/audit\""), "{page}");
    let (status, _, body) = get(addr, "/ui/audit", Some(&cookie)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("admin_forbidden"));
    let (status, _, body) = post(
        addr,
        &format!("/ui/approvals/{approval}/approve-rule"),
        Some(&cookie),
        &[("csrf", &csrf(&page))],
        &[],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(approval_status(&f, &approval).await, "pending");

    // A token of another tenant does not see it, and cannot decide it (not found, as in the API).
    let (status, other) = owner(&f.server, Method::POST, "/v1/tenants", Some(json!({"name": "other"}))).await;
    assert_eq!(status, 201);
    let (_, stranger) = admin_token(&f.server, "admin", &[other["tenant_id"].as_str().unwrap()]).await;
    let (_, _, cookie) = sign_in(addr, &stranger).await;
    let cookie = cookie.unwrap();
    let (_, _, page) = get(addr, "/ui/", Some(&cookie)).await;
    assert!(!page.contains(&approval), "{page}");
    let (status, _, _) =
        post(addr, &format!("/ui/approvals/{approval}/deny"), Some(&cookie), &[("csrf", &csrf(&page))], &[])
            .await;
    assert_eq!(status, 404);
    assert_eq!(approval_status(&f, &approval).await, "pending");
    f.server.stop().await;
}

#[tokio::test]
async fn sign_out_and_revocation_end_the_session() {
    let (f, _dir) = fixture().await;
    let addr = f.server.admin_addr;
    let (token_id, token) = admin_token(&f.server, "admin", &[&f.tenant]).await;

    // Sign-out: the cookie is cleared and the session is gone on the server.
    let (_, _, cookie) = sign_in(addr, &token).await;
    let cookie = cookie.unwrap();
    let (_, _, page) = get(addr, "/ui/", Some(&cookie)).await;
    let (status, headers, _) =
        post(addr, "/ui/sign-out", Some(&cookie), &[("csrf", &csrf(&page))], &[]).await;
    assert_eq!(status, 303);
    assert!(headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let (status, headers, _) = get(addr, "/ui/", Some(&cookie)).await;
    assert_eq!((status, headers["location"].to_str().unwrap()), (303, "/ui/sign-in"));

    // Revoking the token ends its sessions at the next request.
    let (_, _, cookie) = sign_in(addr, &token).await;
    let cookie = cookie.unwrap();
    let (status, _, _) = get(addr, "/ui/approvals/list", Some(&cookie)).await;
    assert_eq!(status, 200);
    let (status, body) =
        owner(&f.server, Method::DELETE, &format!("/v1/admin/tokens/{token_id}"), None).await;
    assert_eq!(status, 204, "{body}");
    let (status, _, _) = get(addr, "/ui/approvals/list", Some(&cookie)).await;
    assert_eq!(status, 401);
    let (status, headers, _) = get(addr, "/ui/", Some(&cookie)).await;
    assert_eq!((status, headers["location"].to_str().unwrap()), (303, "/ui/sign-in"));
    let (status, _, _) = sign_in(addr, &token).await;
    assert_eq!(status, 401);
    f.server.stop().await;
}

#[tokio::test]
async fn audit_search_verify_export_and_inventory() {
    let (f, _dir) = fixture().await;
    let addr = f.server.admin_addr;
    let approval = pending_approval(&f, "audit").await;
    let (_, token) = admin_token(&f.server, "admin", &[&f.tenant]).await;
    let (_, _, cookie) = sign_in(addr, &token).await;
    let cookie = cookie.unwrap();

    // Search with a filter of GET /v1/audit/events; each event's detail shows its chain position.
    let (status, _, page) =
        get(addr, &format!("/ui/audit?tenant_id={}&event_type=approval_created", f.tenant), Some(&cookie))
            .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&approval), "{page}");
    assert!(!page.contains("<td>execute</td>"), "the filter was not applied: {page}");
    assert!(page.contains("class=\"chain\""), "no chain position: {page}");

    // Pagination: more events than one page → a next link with the API's cursor that works.
    for n in 0..50 {
        f.policy("allow", "items_read", "GET", json!({"description": format!("p{n}")})).await;
    }
    let (_, _, first) = get(addr, &format!("/ui/audit?tenant_id={}", f.tenant), Some(&cookie)).await;
    let start = first
        .find("id=\"next-page\"")
        .map(|_| first.find("href=\"/ui/audit?").unwrap())
        .expect("a next page");
    let next = first[start + 6..].split('"').next().unwrap().replace("&amp;", "&");
    let (status, _, second) = get(addr, &next, Some(&cookie)).await;
    assert_eq!(status, 200, "{second}");
    assert!(second.contains("data-event="), "{second}");

    // Verify chain.
    let (status, _, page) =
        get(addr, &format!("/ui/audit/verify?tenant_id={}", f.tenant), Some(&cookie)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("data-ok=\"true\""), "{page}");

    // Export: JSON lines of the API, as a download.
    let (status, headers, body) = get(
        addr,
        &format!("/ui/audit/export?tenant_id={}&event_type=approval_created", f.tenant),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(headers["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let lines: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{body}");
    assert_eq!(lines[0]["policy"]["approval_id"], approval.as_str());

    // Inventory: tenant, workload with its certificate, integration (never the secret), template
    // groups and approval modes, policies; disabling a workload goes through PATCH and is audited.
    let (status, _, page) = get(addr, "/ui/inventory", Some(&cookie)).await;
    assert_eq!(status, 200, "{page}");
    for needle in [
        f.tenant.as_str(),
        &f.workload.workload_id,
        &f.integration_id,
        "items_write",
        "required",
        "api.example.test",
    ] {
        assert!(page.contains(needle), "{needle} missing");
    }
    assert!(page.contains("version 1"), "secret version: {page}");
    assert!(!page.contains(SECRET), "the secret is shown");
    let csrf_token = csrf(&page);
    let path = format!("/ui/inventory/workloads/{}/disable", f.workload.workload_id);
    let (status, _, body) =
        post(addr, &path, Some(&cookie), &[("csrf", &csrf_token), ("tenant_id", &f.tenant)], &[]).await;
    assert_eq!(status, 303, "{body}");
    let (_, workload) =
        owner(&f.server, Method::GET, &format!("/v1/workloads/{}", f.workload.workload_id), None).await;
    assert_eq!(workload["enabled"], false);
    let actions = events_of(&f, "admin_action").await;
    assert!(
        actions.iter().any(|e| e["metadata"]["action"].as_str().unwrap_or("").contains("workload")
            && e["actor"]["id"] != Value::Null),
        "{actions:?}"
    );
    f.server.stop().await;
}

#[tokio::test]
async fn the_cookie_is_secure_on_a_tls_admin_listener() {
    let dir = tempfile::tempdir().unwrap();
    common::init_data_dir(dir.path()).await;
    // The admin listener with TLS (the data plane's certificate, issued for localhost).
    let cert = dir.path().join("tls/server.crt").display().to_string();
    let key = dir.path().join("tls/server.key").display().to_string();
    let env = common::free_port_env(&[("STEWARD_ADMIN__TLS_CERT", &cert), ("STEWARD_ADMIN__TLS_KEY", &key)]);
    let server = common::TestServer::start(dir.path(), env).await.unwrap();
    let form = format!("token={}", server.owner_token());
    let response = steward_testkit::http_client::request(
        server.admin_addr,
        Some(&server.tls()),
        Method::POST,
        "/ui/sign-in",
        &[("content-type", "application/x-www-form-urlencoded")],
        form,
    )
    .await
    .unwrap();
    assert_eq!(response.status, 303, "{:?}", response.body);
    let set_cookie = response.headers["set-cookie"].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Secure"] {
        assert!(set_cookie.split("; ").any(|a| a == attribute), "{attribute} missing: {set_cookie}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_session_ends_after_twelve_hours() {
    let dir = tempfile::tempdir().unwrap();
    common::init_data_dir(dir.path()).await;
    let manual = std::sync::Arc::new(steward_types::ManualClock::starting_now());
    let server = common::TestServer::start_with_clock(dir.path(), common::free_port_env(&[]), manual.clone())
        .await
        .unwrap();
    let addr = server.admin_addr;
    let (_, _, cookie) = sign_in(addr, &server.owner_token()).await;
    let cookie = cookie.unwrap();
    manual.advance_seconds(12 * 3600 - 1);
    let (status, _, _) = get(addr, "/ui/", Some(&cookie)).await;
    assert_eq!(status, 200);
    manual.advance_seconds(1);
    let (status, headers, _) = get(addr, "/ui/", Some(&cookie)).await;
    assert_eq!((status, headers["location"].to_str().unwrap()), (303, "/ui/sign-in"));
    server.stop().await;
}
