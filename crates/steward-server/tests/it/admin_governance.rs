//! Governance admin API over real HTTP: approvals, audit search/export/verification/checkpoints,
//! manifest keys and the KEK, with the role matrix and tenant-scope refusals of these routes, and the
//! approval webhook against a local HTTPS server.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use crate::common;

use common::admin_call as call;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestServer, free_port_env};
use http::Method;
use serde_json::{Value, json};
use steward_crypto::{Keyring, generate_token};
use steward_server::services::approvals::webhook::{
    Delivery, SIGNATURE_HEADER, WebhookSender, signature_header,
};
use steward_server::services::credentials::envelope::{preview_context, seal_record};
use steward_store::audit::{Actor, AuditEvent, Decision, EventType};
use steward_store::governance::NewApproval;
use steward_store::{AdminRole, AdminTokenRecord};
use steward_types::{ApprovalId, IntegrationId, TenantId, TokenId, WorkloadId};

/// Tokens of every role; the non-owners cover only `t_one`.
struct Tokens {
    owner: String,
    admin: String,
    operator: String,
    auditor: String,
}

async fn token(server: &TestServer, role: AdminRole, tenants: &[&str]) -> String {
    let secret = generate_token("stw_adm_");
    let record = AdminTokenRecord {
        token_id: TokenId::generate(),
        name: format!("{}-token", role.as_str()),
        role,
        tenant_ids: tenants.iter().map(|t| TenantId::parse(t).unwrap()).collect(),
        token_hash: secret.hash(),
        created_at: server.state.clock.now(),
        expires_at: None,
        revoked_at: None,
    };
    server.state.store.insert_admin_token(&record).await.unwrap();
    secret.expose().to_owned()
}

async fn tokens(server: &TestServer) -> Tokens {
    Tokens {
        owner: server.owner_token(),
        admin: token(server, AdminRole::Admin, &["t_one"]).await,
        operator: token(server, AdminRole::Operator, &["t_one"]).await,
        auditor: token(server, AdminRole::Auditor, &["t_one"]).await,
    }
}

/// A second connection to the embedded database, for fixtures the governance routes do not create
/// (tenants, workloads, integrations) and for checking the rows decisions write.
async fn db(server: &TestServer) -> sqlx::SqlitePool {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(server.data_dir.join("steward.db"))
        .busy_timeout(Duration::from_secs(10));
    sqlx::SqlitePool::connect_with(options).await.unwrap()
}

async fn seed_tenants(server: &TestServer) -> sqlx::SqlitePool {
    let pool = db(server).await;
    let now = server.state.clock.now().unix_micros();
    for name in ["one", "two"] {
        for sql in [
            format!(
                "INSERT INTO tenants (tenant_id, name, created_at, updated_at) VALUES ('t_{name}', '{name}', {now}, {now})"
            ),
            format!(
                "INSERT INTO workloads (workload_id, tenant_id, name, san_uri, created_at, updated_at) \
                 VALUES ('w_{name}', 't_{name}', 'agent', 'spiffe://steward/tenants/t_{name}/workloads/w_{name}', {now}, {now})"
            ),
            format!(
                "INSERT INTO integrations (integration_id, tenant_id, name, provider, template_owner, template_id, \
                 injection, created_at, updated_at) VALUES ('i_{name}', 't_{name}', 'openai', 'openai', 'global', \
                 'tpl_openai', '{{}}', {now}, {now})"
            ),
        ] {
            sqlx::query(&sql).execute(&pool).await.unwrap();
        }
    }
    pool
}

/// A pending approval of `tenant` (as the execute pipeline will create it), with a sealed preview.
async fn approval(server: &TestServer, tenant: &str, ttl_seconds: i64) -> String {
    let id = ApprovalId::generate();
    let tenant_id = format!("t_{tenant}");
    let preview = json!({"/model": "gpt-4.1", "/input": "summarize the report"});
    let sealed = seal_record(
        &server.state.keyring.load(),
        &preview_context(&TenantId::parse(&tenant_id).unwrap(), &id),
        preview.to_string().as_bytes(),
    )
    .unwrap();
    let now = server.state.clock.now();
    let scope = json!({"tenant_id": tenant_id, "integration_id": format!("i_{tenant}"), "workload_id": format!("w_{tenant}"),
        "action_group": "openai_responses", "method": "POST", "host": "api.openai.com",
        "template_id": "tpl_openai", "template_version": 1, "query_keys": []});
    server
        .state
        .store
        .insert_approval(&NewApproval {
            approval_id: id.clone(),
            tenant_id: TenantId::parse(&tenant_id).unwrap(),
            workload_id: WorkloadId::parse(&format!("w_{tenant}")).unwrap(),
            integration_id: IntegrationId::parse(&format!("i_{tenant}")).unwrap(),
            digest: format!("digest-{}", id.as_str()),
            descriptor: json!({"tenant_id": tenant_id, "method": "POST", "canonical_url": "https://api.openai.com/v1/responses",
                "action_group": "openai_responses", "risk_tier": "high",
                "normalized_headers": {"content-type": "application/json"}, "query_keys": [], "body_sha256": "abc"}),
            preview: Some(sealed),
            proposed_rule: json!({"rule_type": "allow", "scope": scope}),
            created_at: now,
            expires_at: now.plus_seconds(ttl_seconds),
        })
        .await
        .unwrap();
    id.to_string()
}

fn code(answer: &(u16, Value)) -> (u16, &str) {
    (answer.0, answer.1["error"].as_str().unwrap_or(""))
}

async fn events_of(server: &TestServer, event_type: &str) -> Vec<Value> {
    let token = server.owner_token();
    let (status, body) = call(
        server,
        Method::GET,
        &format!("/v1/audit/events?event_type={event_type}&limit=1000"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_read_decide_and_honour_roles_and_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let pool = seed_tenants(&server).await;
    let t = tokens(&server).await;
    let a1 = approval(&server, "one", 300).await;
    let a2 = approval(&server, "two", 300).await;

    // Read: every role; the preview is decrypted for approvers only.
    let (status, got) = call(&server, Method::GET, &format!("/v1/approvals/{a1}"), &t.operator, None).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["status"], "pending");
    assert_eq!(got["preview"]["/model"], "gpt-4.1");
    assert_eq!(got["descriptor"]["action_group"], "openai_responses");
    assert_eq!(got["proposed_rule"]["rule_type"], "allow");
    let (_, audited) = call(&server, Method::GET, &format!("/v1/approvals/{a1}"), &t.auditor, None).await;
    assert_eq!((audited["preview"].clone(), audited["preview_redacted"].clone()), (Value::Null, json!(true)));

    // Tenant scope: another tenant's approval is missing; naming its tenant is forbidden.
    let other = call(&server, Method::GET, &format!("/v1/approvals/{a2}"), &t.admin, None).await;
    assert_eq!(code(&other), (404, "approval_not_found"));
    let other = call(
        &server,
        Method::POST,
        &format!("/v1/approvals/{a2}/approve"),
        &t.admin,
        Some(json!({"mode": "once"})),
    )
    .await;
    assert_eq!(code(&other), (404, "approval_not_found"));
    assert_eq!(
        code(&call(&server, Method::GET, "/v1/approvals/apr_missing", &t.owner, None).await),
        (404, "approval_not_found")
    );
    assert_eq!(
        code(&call(&server, Method::GET, "/v1/approvals/nonsense", &t.owner, None).await),
        (404, "approval_not_found")
    );
    let forbidden = call(&server, Method::GET, "/v1/approvals?tenant_id=t_two", &t.admin, None).await;
    assert_eq!(code(&forbidden), (403, "admin_tenant_forbidden"));
    let (_, mine) = call(&server, Method::GET, "/v1/approvals", &t.admin, None).await;
    let ids: Vec<&str> =
        mine["approvals"].as_array().unwrap().iter().map(|a| a["approval_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![a1.as_str()], "unfiltered lists are limited to the token's tenants");
    let (_, all) = call(&server, Method::GET, "/v1/approvals?status=pending", &t.owner, None).await;
    assert_eq!(all["approvals"].as_array().unwrap().len(), 2);
    let bad = call(&server, Method::GET, "/v1/approvals?status=maybe", &t.owner, None).await;
    assert_eq!(code(&bad), (400, "query_invalid"));
    assert_eq!(
        code(&call(&server, Method::GET, "/v1/approvals?color=red", &t.owner, None).await),
        (400, "query_invalid")
    );

    // Role matrix: the auditor decides nothing; the operator approves once but not as a rule.
    let path = format!("/v1/approvals/{a1}/approve");
    for verb in ["approve", "deny", "cancel"] {
        let refused = call(
            &server,
            Method::POST,
            &format!("/v1/approvals/{a1}/{verb}"),
            &t.auditor,
            Some(json!({"mode": "once"})),
        )
        .await;
        assert_eq!(code(&refused), (403, "admin_forbidden"), "{verb}");
    }
    let refused = call(&server, Method::POST, &path, &t.operator, Some(json!({"mode": "rule"}))).await;
    assert_eq!(code(&refused), (403, "admin_forbidden"));
    // Body checks come after role, tenant and existence.
    assert_eq!(
        code(&call(&server, Method::POST, &path, &t.operator, Some(json!({"mode": "twice"}))).await).0,
        400
    );
    let constrained =
        call(&server, Method::POST, &path, &t.operator, Some(json!({"mode": "once", "constraints": {}})))
            .await;
    assert_eq!(code(&constrained), (400, "request_body_schema_invalid"));
    let (status, once) = call(&server, Method::POST, &path, &t.operator, Some(json!({"mode": "once"}))).await;
    assert_eq!(status, 200, "{once}");
    assert_eq!(once, json!({"approval_id": a1, "status": "approved"}));
    let again = call(&server, Method::POST, &path, &t.admin, Some(json!({"mode": "once"}))).await;
    assert_eq!(code(&again), (409, "approval_not_pending"));
    let (_, got) = call(&server, Method::GET, &format!("/v1/approvals/{a1}"), &t.owner, None).await;
    assert_eq!((got["status"].clone(), got["mode"].clone()), (json!("approved"), json!("once")));

    // An approved once approval can be canceled (operator), then nothing else.
    let (status, canceled) =
        call(&server, Method::POST, &format!("/v1/approvals/{a1}/cancel"), &t.operator, None).await;
    assert_eq!((status, canceled["status"].clone()), (200, json!("canceled")));
    let again = call(&server, Method::POST, &format!("/v1/approvals/{a1}/cancel"), &t.operator, None).await;
    assert_eq!(code(&again), (409, "approval_not_pending"));

    // rule: the exact allow rule with bypass_template_approval, in the policies table.
    let a3 = approval(&server, "one", 300).await;
    let (status, rule) = call(
        &server,
        Method::POST,
        &format!("/v1/approvals/{a3}/approve"),
        &t.admin,
        Some(json!({"mode": "rule", "constraints": {"max_body_bytes": 1000}})),
    )
    .await;
    assert_eq!(status, 200, "{rule}");
    assert_eq!(rule["status"], "approved");
    let policy_id = rule["policy_id"].as_str().unwrap().to_owned();
    assert!(policy_id.starts_with("pol_"));
    let row: (String, String, String, String, String, Option<String>, String) = sqlx::query_as(
        "SELECT tenant_id, integration_id, action_group, method, host, workload_id, rule FROM policies WHERE policy_id = $1",
    )
    .bind(&policy_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(&row.0, "t_one");
    assert_eq!(
        (row.2.as_str(), row.3.as_str(), row.4.as_str()),
        ("openai_responses", "POST", "api.openai.com")
    );
    assert_eq!(row.5.as_deref(), Some("w_one"));
    let stored: Value = serde_json::from_str(&row.6).unwrap();
    assert_eq!(stored["rule_type"], "allow");
    assert_eq!(stored["bypass_template_approval"], true);
    assert_eq!(stored["constraints"]["max_body_bytes"], 1000);
    assert_eq!(stored["scope"]["template_id"], "tpl_openai");
    let cancel_rule =
        call(&server, Method::POST, &format!("/v1/approvals/{a3}/cancel"), &t.admin, None).await;
    assert_eq!(code(&cancel_rule), (409, "approval_not_pending"), "a rule approval is never canceled");

    // deny: the exact deny rule.
    let a4 = approval(&server, "one", 300).await;
    let (status, denied) = call(
        &server,
        Method::POST,
        &format!("/v1/approvals/{a4}/deny"),
        &t.operator,
        Some(json!({"reason": "no"})),
    )
    .await;
    assert_eq!((status, denied["status"].clone()), (200, json!("denied")));
    let deny_rule: (String, String) =
        sqlx::query_as("SELECT rule_type, rule FROM policies WHERE policy_id = $1")
            .bind(denied["policy_id"].as_str().unwrap())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(deny_rule.0, "deny");
    // Stored normalized, like any policy: no bypass, no constraints.
    let stored: Value = serde_json::from_str(&deny_rule.1).unwrap();
    assert_eq!(stored["bypass_template_approval"], false, "{stored}");
    assert!(stored["constraints"].is_null(), "{stored}");
    let extra = call(
        &server,
        Method::POST,
        &format!("/v1/approvals/{a4}/deny"),
        &t.operator,
        Some(json!({"why": 1})),
    )
    .await;
    assert_eq!(code(&extra), (400, "request_body_schema_invalid"), "the body is judged before the state");

    // Every decision wrote approval_decided with its actor and policy.
    let decided = events_of(&server, "approval_decided").await;
    assert_eq!(decided.len(), 4, "{decided:?}");
    let rule_event = decided.iter().find(|e| e["metadata"]["mode"] == "rule").unwrap();
    assert_eq!(rule_event["metadata"]["policy_id"], policy_id.as_str());
    assert_eq!(rule_event["policy"]["approval_id"], a3.as_str());
    assert_eq!(rule_event["actor"]["type"], "admin");
    assert_eq!(rule_event["tenant_id"], "t_one");
    assert_eq!(rule_event["decision"], "allowed");
    for event in &decided {
        assert!(!event.to_string().contains("summarize the report"), "previews never reach the audit log");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_expiry_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    common::init_data_dir(dir.path()).await;
    let env = free_port_env(&[
        ("STEWARD_APPROVAL__PENDING_TTL_SECONDS", "10"),
        ("STEWARD_APPROVAL__APPROVED_TTL_SECONDS", "10"),
    ]);
    let server = TestServer::start(dir.path(), env).await.unwrap();
    let _pool = seed_tenants(&server).await;
    let owner = server.owner_token();
    let ttl = i64::from(server.state.config.approval.pending_ttl_seconds);
    assert_eq!(ttl, 10);

    // Expired while pending: shown as expired, no longer decidable.
    let lapsed = approval(&server, "one", -1).await;
    let (_, got) = call(&server, Method::GET, &format!("/v1/approvals/{lapsed}"), &owner, None).await;
    assert_eq!(got["status"], "expired");
    for (verb, body) in [("approve", Some(json!({"mode": "once"}))), ("deny", None), ("cancel", None)] {
        let refused =
            call(&server, Method::POST, &format!("/v1/approvals/{lapsed}/{verb}"), &owner, body).await;
        assert_eq!(code(&refused), (409, "approval_not_pending"), "{verb}");
    }
    let (_, expired) = call(&server, Method::GET, "/v1/approvals?status=expired", &owner, None).await;
    assert_eq!(expired["approvals"].as_array().unwrap().len(), 1);

    // Approved once: lapses after approval.approved_ttl_seconds.
    let once = approval(&server, "one", ttl).await;
    let (status, _) = call(
        &server,
        Method::POST,
        &format!("/v1/approvals/{once}/approve"),
        &owner,
        Some(json!({"mode": "once"})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, got) = call(&server, Method::GET, &format!("/v1/approvals/{once}"), &owner, None).await;
    let created = steward_types::Timestamp::parse_rfc3339(got["decided_at"].as_str().unwrap()).unwrap();
    let expires = steward_types::Timestamp::parse_rfc3339(got["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires.unix_micros() - created.unix_micros(), 10_000_000);
    tokio::time::sleep(Duration::from_millis(10_200)).await;
    let (_, got) = call(&server, Method::GET, &format!("/v1/approvals/{once}"), &owner, None).await;
    assert_eq!(got["status"], "expired");
    let refused = call(&server, Method::POST, &format!("/v1/approvals/{once}/cancel"), &owner, None).await;
    assert_eq!(code(&refused), (409, "approval_not_pending"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_search_pages_streams_and_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let t = tokens(&server).await;
    let start = server.state.clock.now();
    for i in 0..30 {
        let tenant = if i % 3 == 0 { "t_two" } else { "t_one" };
        let mut event = AuditEvent::new(EventType::Execute, Actor::workload("w_x"), start.plus_millis(i))
            .with_tenant(tenant)
            .with_workload(format!("w_{i}"))
            .with_integration("i_one")
            .with_action_group("openai_responses")
            .with_correlation_id(format!("corr-{i}"));
        if i % 2 == 0 {
            event = event.with_decision(Decision::Denied);
        }
        server.state.audit.append(event).await.unwrap();
    }

    // Role: the operator reads no audit; the auditor does.
    assert_eq!(
        code(&call(&server, Method::GET, "/v1/audit/events", &t.operator, None).await),
        (403, "admin_forbidden")
    );
    assert_eq!(
        code(&call(&server, Method::GET, "/v1/audit/verify?tenant_id=t_one", &t.operator, None).await),
        (403, "admin_forbidden")
    );
    assert_eq!(
        code(&call(&server, Method::GET, "/v1/audit/checkpoints", &t.operator, None).await),
        (403, "admin_forbidden")
    );
    assert_eq!(
        code(&call(&server, Method::GET, "/v1/audit/events?tenant_id=t_two", &t.auditor, None).await),
        (403, "admin_tenant_forbidden")
    );

    // Pages of 7, newest first, until next_cursor is null.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/audit/events?event_type=execute&limit=7&cursor={c}"),
            None => "/v1/audit/events?event_type=execute&limit=7".to_owned(),
        };
        let (status, page) = call(&server, Method::GET, &path, &t.owner, None).await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 7);
        seen.extend(events.iter().map(|e| e["workload_id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..30).rev().map(|i| format!("w_{i}")).collect();
    assert_eq!(seen, expected);

    // Filters and the token's tenant scope.
    let count = |path: String, token: String| {
        let server = &server;
        async move {
            let (status, body) = call(server, Method::GET, &path, &token, None).await;
            assert_eq!(status, 200, "{path}: {body}");
            body["events"].as_array().unwrap().len()
        }
    };
    assert_eq!(count("/v1/audit/events?event_type=execute&limit=1000".into(), t.auditor.clone()).await, 20);
    assert_eq!(count("/v1/audit/events?tenant_id=t_two&limit=1000".into(), t.owner.clone()).await, 10);
    assert_eq!(
        count("/v1/audit/events?decision=denied&event_type=execute&limit=1000".into(), t.owner.clone()).await,
        15
    );
    assert_eq!(count("/v1/audit/events?workload_id=w_4".into(), t.owner.clone()).await, 1);
    assert_eq!(count("/v1/audit/events?correlation_id=corr-5".into(), t.admin.clone()).await, 1);
    assert_eq!(
        count("/v1/audit/events?correlation_id=corr-3".into(), t.admin.clone()).await,
        0,
        "t_two's event"
    );
    assert_eq!(
        count(
            "/v1/audit/events?integration_id=i_one&action_group=openai_responses&limit=1000".into(),
            t.owner.clone()
        )
        .await,
        30
    );
    let since = start.plus_millis(10).to_rfc3339();
    let until = start.plus_millis(20).to_rfc3339();
    assert_eq!(
        count(format!("/v1/audit/events?event_type=execute&since={since}&until={until}"), t.owner.clone())
            .await,
        10
    );

    // Invalid queries.
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "event_type=lunch",
        "decision=maybe",
        "since=yesterday",
        "cursor=%21%21",
        "format=xml",
        "colour=blue",
    ] {
        let answer = call(&server, Method::GET, &format!("/v1/audit/events?{bad}"), &t.owner, None).await;
        assert_eq!(code(&answer), (400, "query_invalid"), "{bad}");
    }

    // JSON lines: every match, oldest first, streamed.
    let response = server
        .admin(
            Method::GET,
            "/v1/audit/events?format=jsonl&event_type=execute&tenant_id=t_one",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = std::str::from_utf8(&response.body)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 20);
    assert_eq!(lines[0]["workload_id"], "w_1");
    assert_eq!(lines[19]["workload_id"], "w_29");

    // Verification after activity.
    let (status, report) =
        call(&server, Method::GET, "/v1/audit/verify?tenant_id=t_one", &t.auditor, None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], true);
    assert_eq!(report["events_checked"], 20);
    assert!(report.get("first_bad_event_id").is_none());
    assert_eq!(
        code(&call(&server, Method::GET, "/v1/audit/verify", &t.owner, None).await),
        (400, "query_invalid")
    );
    assert_eq!(
        code(&call(&server, Method::GET, "/v1/audit/verify?tenant_id=t_two", &t.auditor, None).await),
        (403, "admin_tenant_forbidden")
    );
    let (_, global) = call(&server, Method::GET, "/v1/audit/verify?tenant_id=global", &t.owner, None).await;
    assert_eq!(global["ok"], true);

    // Checkpoints: written at shutdown; a tenant-scoped token sees only its heads.
    server.stop().await;
    let server = TestServer::start(dir.path(), free_port_env(&[])).await.unwrap();
    let (status, all) = call(&server, Method::GET, "/v1/audit/checkpoints", &t.owner, None).await;
    assert_eq!(status, 200, "{all}");
    let checkpoint = &all["checkpoints"][0];
    assert_eq!(checkpoint["tenant_id"], Value::Null);
    assert!(checkpoint["heads"].as_array().unwrap().len() >= 2);
    assert!(checkpoint["signature"].as_str().unwrap().split('.').count() == 3);
    let (_, scoped) = call(&server, Method::GET, "/v1/audit/checkpoints", &t.auditor, None).await;
    let heads = scoped["checkpoints"][0]["heads"].as_array().unwrap();
    assert!(heads.iter().all(|h| h["tenant_id"] == "t_one"), "{scoped}");
    assert_eq!(scoped["checkpoints"][0]["tenant_id"], "t_one");
    let (_, filtered) =
        call(&server, Method::GET, "/v1/audit/checkpoints?tenant_id=t_two", &t.owner, None).await;
    assert!(
        filtered["checkpoints"][0]["heads"].as_array().unwrap().iter().all(|h| h["tenant_id"] == "t_two")
    );
    let (_, report) = call(&server, Method::GET, "/v1/audit/verify?tenant_id=t_one", &t.owner, None).await;
    assert_eq!(report["ok"], true, "{report}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_keyset_rotation_and_caching() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::init_and_start(dir.path()).await;
    let t = tokens(&server).await;

    let first = server.admin(Method::GET, "/v1/keys/manifest", Some(&t.auditor), None).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.headers["cache-control"], "public, max-age=60");
    let etag = first.headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.len() == 66, "{etag}");
    let keys = first.json()["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["crv"], "Ed25519");
    assert_eq!(keys[0]["alg"], "EdDSA");
    assert_eq!(keys[0]["use"], "sig");
    assert!(keys[0]["kid"].as_str().unwrap().starts_with("mk_"));
    let bearer = format!("Bearer {}", t.operator);
    let cached = steward_testkit::http_client::request(
        server.admin_addr,
        None,
        Method::GET,
        "/v1/keys/manifest",
        &[("authorization", &bearer), ("if-none-match", &etag)],
        "",
    )
    .await
    .unwrap();
    assert_eq!(cached.status, 304);
    assert_eq!(cached.headers["etag"].to_str().unwrap(), etag);
    assert!(cached.body.is_empty());

    // Rotation: owner only; the keyset then holds the new active key and the retired one.
    for token in [&t.admin, &t.operator, &t.auditor] {
        let refused = call(&server, Method::POST, "/v1/keys/manifest/rotate", token, None).await;
        assert_eq!(code(&refused), (403, "admin_forbidden"));
    }
    let unknown =
        call(&server, Method::POST, "/v1/keys/manifest/rotate", &t.owner, Some(json!({"x": 1}))).await;
    assert_eq!(code(&unknown), (400, "request_body_schema_invalid"));
    let (status, rotated) = call(&server, Method::POST, "/v1/keys/manifest/rotate", &t.owner, None).await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["retired_kid"], keys[0]["kid"]);
    let after = server.admin(Method::GET, "/v1/keys/manifest", Some(&t.owner), None).await;
    assert_ne!(after.headers["etag"].to_str().unwrap(), etag);
    let kids: Vec<Value> =
        after.json()["keys"].as_array().unwrap().iter().map(|k| k["kid"].clone()).collect();
    assert_eq!(kids, vec![rotated["kid"].clone(), keys[0]["kid"].clone()]);
    let stored = server.state.store.deployment().await.unwrap().unwrap();
    assert_eq!(stored.active_signing_key.kid.as_str(), rotated["kid"].as_str().unwrap());
    let rotated_events = events_of(&server, "key_rotated").await;
    assert_eq!(rotated_events.len(), 1);
    assert_eq!(rotated_events[0]["metadata"]["kid"], rotated["kid"]);
    assert_eq!(rotated_events[0]["actor"]["type"], "admin");

    // KEK endpoints are owner-only too.
    for token in [&t.admin, &t.operator, &t.auditor] {
        assert_eq!(
            code(&call(&server, Method::GET, "/v1/keys/kek", token, None).await),
            (403, "admin_forbidden")
        );
        assert_eq!(
            code(&call(&server, Method::POST, "/v1/keys/kek/rewrap", token, None).await),
            (403, "admin_forbidden")
        );
    }
    server.stop().await;

    // The new key survives a restart (the store's active key is the one start-up opens).
    let server = TestServer::start(dir.path(), free_port_env(&[])).await.unwrap();
    let (_, again) = call(&server, Method::GET, "/v1/keys/manifest", &t.owner, None).await;
    assert_eq!(again["keys"][0]["kid"], rotated["kid"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrap_moves_every_envelope_to_the_active_kek() {
    let dir = tempfile::tempdir().unwrap();
    common::init_data_dir(dir.path()).await;
    // `steward keys generate-kek --activate`: k1 stays for reading, the new key is active.
    let kek_path = dir.path().join("kek.json");
    let mut keyring = Keyring::parse_json(&std::fs::read_to_string(&kek_path).unwrap()).unwrap();
    let old = keyring.active_id().to_owned();
    let new = keyring.add_generated_key();
    keyring.set_active(&new).unwrap();
    keyring.rewrite_file(&kek_path).unwrap();

    let server = TestServer::start(dir.path(), free_port_env(&[])).await.unwrap();
    let owner = server.owner_token();
    let (status, before) = call(&server, Method::GET, "/v1/keys/kek", &owner, None).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["active_key_id"], new.as_str());
    let old_count = before["envelopes_by_key_id"][old.as_str()].as_u64().unwrap();
    assert!(old_count >= 3, "{before}");

    let (status, done) = call(&server, Method::POST, "/v1/keys/kek/rewrap", &owner, None).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["rewrapped"].as_u64().unwrap(), old_count);
    let (_, after) = call(&server, Method::GET, "/v1/keys/kek", &owner, None).await;
    assert_eq!(after["envelopes_by_key_id"], json!({new.as_str(): old_count}));
    let (_, again) = call(&server, Method::POST, "/v1/keys/kek/rewrap", &owner, Some(json!({}))).await;
    assert_eq!(again["rewrapped"], 0, "idempotent");
    let rotated = events_of(&server, "key_rotated").await;
    assert_eq!(rotated.len(), 2);
    server.stop().await;

    // The old key can go: the deployment starts with the new key alone.
    let mut only_new = Keyring::parse_json(&std::fs::read_to_string(&kek_path).unwrap()).unwrap();
    let json_text = only_new.to_json().to_string();
    let mut value: Value = serde_json::from_str(&json_text).unwrap();
    value["keys"].as_object_mut().unwrap().remove(&old);
    only_new = Keyring::parse_json(&value.to_string()).unwrap();
    only_new.rewrite_file(&kek_path).unwrap();
    let server = TestServer::start(dir.path(), free_port_env(&[])).await.unwrap();
    let (_, status_now) = call(&server, Method::GET, "/v1/keys/kek", &owner, None).await;
    assert_eq!(status_now["envelopes_by_key_id"], json!({new.as_str(): old_count}));
    server.stop().await;
}

/// A local HTTPS server (test CA certificate for localhost) recording each request; answers the
/// first `fail_first` requests with 500.
async fn webhook_receiver(
    fail_first: usize,
) -> (u16, String, Arc<Mutex<Vec<(http::HeaderMap, bytes::Bytes)>>>) {
    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use rustls::pki_types::pem::PemObject;

    common::install_crypto_provider();
    let ca = steward_testkit::pki::TestCa::new("webhook test CA").unwrap();
    let leaf = ca.server_cert(&["hooks.example.test"]).unwrap();
    let chain = rustls::pki_types::CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<(http::HeaderMap, bytes::Bytes)>>> = Arc::default();
    let recorded = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            let recorded = Arc::clone(&recorded);
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let recorded = Arc::clone(&recorded);
                    async move {
                        let headers = request.headers().clone();
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let n = {
                            let mut seen = recorded.lock().unwrap();
                            seen.push((headers, body));
                            seen.len()
                        };
                        let status = if n <= fail_first { 500 } else { 204 };
                        Ok::<_, hyper::Error>(
                            http::Response::builder()
                                .status(status)
                                .body(http_body_util::Full::new(bytes::Bytes::new()))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, ca.cert_pem, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_webhook_is_signed_retried_and_carries_no_headers() {
    let (port, ca_pem, seen) = webhook_receiver(2).await;
    let dir = tempfile::tempdir().unwrap();
    common::init_data_dir(dir.path()).await;
    // The webhook leaves through the SSRF-guarded egress, like execute: the receiver is reached
    // through static_hosts and trusted through extra_ca_files.
    let ca_file = dir.path().join("webhook-ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let ca_files = format!("[{:?}]", ca_file.display().to_string());
    let url = format!("https://hooks.example.test:{port}/deployment-hook");
    let env = free_port_env(&[
        ("STEWARD_APPROVAL__WEBHOOK_URL", url.as_str()),
        ("STEWARD_APPROVAL__WEBHOOK_SECRET", "s3cret-webhook-key"),
        ("STEWARD_EGRESS__STATIC_HOSTS", r#"{"hooks.example.test"=["127.0.0.1"]}"#),
        ("STEWARD_EGRESS__ALLOW_CIDRS", r#"["127.0.0.1/32"]"#),
        ("STEWARD_EGRESS__EXTRA_CA_FILES", ca_files.as_str()),
    ]);
    let server = TestServer::start(dir.path(), env).await.unwrap();
    let pool = seed_tenants(&server).await;
    let id = approval(&server, "two", 300).await;
    let record = server.state.store.get_approval(&ApprovalId::parse(&id).unwrap()).await.unwrap().unwrap();

    let sender = WebhookSender::default().with_retry_delays(vec![Duration::from_millis(50); 3]);
    let delivery = sender.send_approval_created(&server.state, &record).await.unwrap();
    assert_eq!(delivery, Delivery::Delivered { attempts: 3 }, "two 500s, then success");
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 3);
    let (headers, body) = &requests[2];
    assert_eq!(
        headers[SIGNATURE_HEADER].to_str().unwrap(),
        signature_header(b"s3cret-webhook-key", body),
        "sha256=<hex HMAC of the body>"
    );
    assert!(headers[SIGNATURE_HEADER].to_str().unwrap().starts_with("sha256="));
    let payload: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(payload["approval_id"], id.as_str());
    assert_eq!(payload["tenant_id"], "t_two");
    assert_eq!(payload["preview"]["/model"], "gpt-4.1");
    assert_eq!(payload["request"]["canonical_url"], "https://api.openai.com/v1/responses");
    assert!(payload["request"].get("normalized_headers").is_none(), "never headers");
    assert!(payload["request"].get("body_sha256").is_none());

    // A tenant URL wins over the deployment's; a non-https URL is refused, never called.
    sqlx::query(
        "UPDATE tenants SET approval_webhook_url = 'http://localhost:1/plain' WHERE tenant_id = 't_two'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let refused = sender.send_approval_created(&server.state, &record).await;
    assert!(
        matches!(refused, Err(steward_server::services::approvals::webhook::WebhookError::NotHttps(_))),
        "{refused:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 3);

    // A tenant admin cannot point webhooks at the metadata service (or any denied address): the SSRF
    // guard refuses it, once, without retries.
    sqlx::query(
        "UPDATE tenants SET approval_webhook_url = 'https://169.254.169.254/latest/hook' WHERE tenant_id = 't_two'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let guarded = sender.send_approval_created(&server.state, &record).await;
    assert!(
        matches!(&guarded, Err(steward_server::services::approvals::webhook::WebhookError::Refused(code)) if code == "resolved_ip_denied_metadata_range"),
        "{guarded:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 3, "nothing sent to a refused destination");
    server.stop().await;
}
