//! The policy branches of execute end to end: default deny, allow, deny + violation, constraint
//! failure, approvals (`once`, `rule`, `deny`) through the admin API, exactly-once consumption under
//! ten concurrent retries, one pending approval for a burst of identical requests (embedded and
//! across two instances), and rate limits (429 with `retry-after`, all or none across two rules).

#![allow(clippy::unwrap_used)]

use crate::common;

use common::execute::{Exec, Options, expect, fixture, kinds};
use common::workload::owner;
use http::Method;
use serde_json::{Value, json};
use steward_store::governance::{ApprovalFilter, ApprovalStatus};

#[tokio::test]
async fn default_deny_allow_deny_and_constraints() {
    let (f, _dir) = fixture(&[]).await;
    let response = f.execute(f.get("", &[]), None, "c-default").await;
    expect(&response, 403, "policy_default_deny");
    // The message names the command that allows it, with the real integration id and group.
    let message = response.json()["message"].as_str().unwrap().to_owned();
    let command =
        format!("steward admin policies allow --integration {} --group items_read", f.integration_id);
    assert!(message.contains(&command), "{message}");
    assert!(!message.contains(common::execute::SECRET), "{message}");
    assert_eq!(f.event_kinds("c-default").await, kinds(&[("execute", "denied", "policy_default_deny")]));
    assert_eq!(f.upstream.count(), 0);

    // An allow rule whose constraint fails.
    f.policy("allow", "items_read", "GET", json!({"constraints": {"allowed_query_keys": ["q"]}})).await;
    let response = f.execute(f.get("?limit=1", &[]), None, "c-constraint").await;
    expect(&response, 403, "policy_constraint_failed");
    assert_eq!(f.upstream.count(), 0);
    let response = f.execute(f.get("?q=1", &[]), None, "c-allow").await;
    assert_eq!(response.status, 200, "{}", response.json());
    assert_eq!(f.upstream.count(), 1);

    // A deny rule wins over the allow rule and writes a violation.
    let deny = f.policy("deny", "items_read", "GET", json!({})).await;
    let response = f.execute(f.get("?q=1", &[]), None, "c-deny").await;
    expect(&response, 403, "policy_deny");
    assert_eq!(
        f.event_kinds("c-deny").await,
        kinds(&[("execute", "denied", "policy_deny"), ("violation", "denied", "policy_deny")])
    );
    assert_eq!(f.events("c-deny").await[1]["policy"]["rule_id"], deny.as_str());
    assert_eq!(f.upstream.count(), 1);
    f.server.stop().await;
}

async fn approve(f: &Exec, approval_id: &str, body: Value) -> Value {
    let (status, decided) =
        owner(&f.server, Method::POST, &format!("/v1/approvals/{approval_id}/approve"), Some(body)).await;
    assert_eq!(status, 200, "{decided}");
    decided
}

#[tokio::test]
async fn approval_once_then_deny() {
    let (f, _dir) = fixture(&[]).await;
    let request = f.post(&json!({"name": "first", "size": 1}));

    // Template approval required → 202 with a new approval; the same request reuses it.
    let response = f.execute(request.clone(), None, "c-202").await;
    assert_eq!(response.status, 202, "{}", response.json());
    let body = response.json();
    assert_eq!(body["status"], "approval_required");
    assert_eq!(body["correlation_id"], "c-202");
    assert_eq!(
        body["summary"],
        json!({"integration_id": f.integration_id, "action_group": "items_write", "risk_tier": "high",
               "destination_host": "api.example.test", "method": "POST", "path": "/v1/items"})
    );
    let approval_id = body["approval_id"].as_str().unwrap().to_owned();
    assert!(body["expires_at"].is_string());
    assert_eq!(
        f.event_kinds("c-202").await,
        kinds(&[
            ("execute", "approval_required", "template_approval_required"),
            ("approval_created", "approval_required", "template_approval_required"),
        ])
    );
    let again = f.execute(request.clone(), None, "c-202b").await;
    assert_eq!(again.json()["approval_id"], approval_id.as_str());
    assert_eq!(
        f.event_kinds("c-202b").await,
        kinds(&[("execute", "approval_required", "template_approval_required")])
    );
    // The approver sees the preview.
    let (_, view) = owner(&f.server, Method::GET, &format!("/v1/approvals/{approval_id}"), None).await;
    assert_eq!(view["preview"]["/name"], "first", "{view}");
    assert_eq!(f.upstream.count(), 0);

    // Approve once → the retry executes, consuming it; the next retry needs a new approval.
    approve(&f, &approval_id, json!({"mode": "once"})).await;
    let response = f.execute(request.clone(), None, "c-once").await;
    assert_eq!(response.status, 200, "{}", response.json());
    assert_eq!(f.upstream.count(), 1);
    assert_eq!(f.upstream.last().body, json!({"name": "first", "size": 1}).to_string().into_bytes());
    assert_eq!(
        f.event_kinds("c-once").await,
        kinds(&[
            ("approval_consumed", "allowed", "approval_once"),
            ("execute", "allowed", "approval_once"),
            ("execute_result", "", ""),
        ])
    );
    let (_, view) = owner(&f.server, Method::GET, &format!("/v1/approvals/{approval_id}"), None).await;
    assert_eq!(view["status"], "executed");
    let response = f.execute(request.clone(), None, "c-after").await;
    assert_eq!(response.status, 202, "{}", response.json());
    let second = response.json()["approval_id"].as_str().unwrap().to_owned();
    assert_ne!(second, approval_id);

    // Deny it: the exact deny rule makes repeats policy_deny + violation.
    let (status, denied) =
        owner(&f.server, Method::POST, &format!("/v1/approvals/{second}/deny"), None).await;
    assert_eq!(status, 200, "{denied}");
    let response = f.execute(request, None, "c-denied").await;
    expect(&response, 403, "policy_deny");
    assert_eq!(
        f.event_kinds("c-denied").await,
        kinds(&[("execute", "denied", "policy_deny"), ("violation", "denied", "policy_deny")])
    );
    assert_eq!(f.upstream.count(), 1);
    f.server.stop().await;
}

#[tokio::test]
async fn a_rule_approval_allows_later_calls_of_the_class() {
    let (f, _dir) = fixture(&[]).await;
    let response = f.execute(f.post(&json!({"name": "a"})), None, "r-202").await;
    assert_eq!(response.status, 202, "{}", response.json());
    let approval_id = response.json()["approval_id"].as_str().unwrap().to_owned();
    let decided = approve(&f, &approval_id, json!({"mode": "rule"})).await;
    assert!(decided["policy_id"].is_string(), "{decided}");
    // The rule bypasses the template floor for this class: other bodies too, again and again.
    for (n, name) in ["a", "b", "c"].into_iter().enumerate() {
        let response = f.execute(f.post(&json!({"name": name})), None, &format!("r-{n}")).await;
        assert_eq!(response.status, 200, "{}", response.json());
        assert_eq!(f.events(&format!("r-{n}")).await[0]["policy"]["rule_id"], decided["policy_id"]);
    }
    assert_eq!(f.upstream.count(), 3);
    f.server.stop().await;
}

#[tokio::test]
async fn ten_concurrent_retries_of_a_once_approval_execute_exactly_once() {
    let (f, _dir) = fixture(&[]).await;
    let request = f.post(&json!({"name": "race"}));
    let response = f.execute(request.clone(), None, "c-race").await;
    assert_eq!(response.status, 202, "{}", response.json());
    let approval_id = response.json()["approval_id"].as_str().unwrap().to_owned();
    approve(&f, &approval_id, json!({"mode": "once"})).await;

    let calls = (0..10).map(|n| {
        let request = request.clone();
        let f = &f;
        async move { f.execute(request, None, &format!("c-race-{n}")).await }
    });
    let responses = futures::future::join_all(calls).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 202), "{statuses:?}");
    assert_eq!(f.upstream.count(), 1);
    let mut consumed = 0;
    for n in 0..10 {
        consumed += f
            .event_kinds(&format!("c-race-{n}"))
            .await
            .iter()
            .filter(|(t, _, _)| t == "approval_consumed")
            .count();
    }
    assert_eq!(consumed, 1);
    f.server.stop().await;
}

/// A burst of identical requests that need approval, spread over `servers`: every answer is 202
/// with the same approval, the store holds exactly one pending approval, and exactly one
/// `approval_created` event was written.
async fn burst_needing_approval(f: &Exec, servers: &[&common::TestServer]) {
    const BURST: usize = 16;
    let request = f.post(&json!({"name": "burst"}));
    let calls = (0..BURST).map(|n| {
        let request = request.clone();
        let server = servers[n % servers.len()];
        async move { f.execute_on(server, request, None, &format!("c-burst-{n}")).await }
    });
    let responses = futures::future::join_all(calls).await;
    let mut ids = std::collections::BTreeSet::new();
    for response in &responses {
        assert_eq!(response.status, 202, "{}", response.json());
        ids.insert(response.json()["approval_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "one approval for one descriptor: {ids:?}");
    let filter = ApprovalFilter {
        tenant_ids: Some(vec![steward_types::TenantId::parse(&f.tenant).unwrap()]),
        status: Some(ApprovalStatus::Pending),
        now: f.server.state.clock.now(),
    };
    let pending = f.server.state.store.list_approvals(&filter, 100).await.unwrap();
    let pending: Vec<String> = pending.iter().map(|a| a.approval_id.to_string()).collect();
    assert_eq!(pending, ids.iter().cloned().collect::<Vec<_>>());
    let mut created = 0;
    for n in 0..BURST {
        let kinds = f.event_kinds(&format!("c-burst-{n}")).await;
        assert_eq!(
            kinds[0],
            ("execute".into(), "approval_required".into(), "template_approval_required".into())
        );
        created += kinds.iter().filter(|(t, _, _)| t == "approval_created").count();
    }
    assert_eq!(created, 1);
    assert_eq!(f.upstream.count(), 0);
}

#[tokio::test]
async fn a_burst_of_identical_requests_gets_one_pending_approval() {
    let (f, _dir) = fixture(&[]).await;
    burst_needing_approval(&f, &[&f.server]).await;
    f.server.stop().await;
}

#[tokio::test]
async fn a_burst_across_two_instances_gets_one_pending_approval() {
    let database = steward_testkit::TestDatabase::create().await.unwrap();
    let temp = tempfile::tempdir().unwrap();
    let (f, second) = Exec::shared(temp.path(), &database.url, Options::default()).await;
    burst_needing_approval(&f, &[&f.server, &second]).await;
    second.stop().await;
    f.server.stop().await;
}

#[tokio::test]
async fn rate_limits_are_all_or_none() {
    let (f, _dir) = fixture(&[]).await;
    f.allow_reads().await;
    let wide = f
        .policy(
            "rate_limit",
            "items_read",
            "GET",
            json!({"rate_limit": {"max_requests": 2, "interval_seconds": 3600}}),
        )
        .await;
    let narrow = f
        .policy(
            "rate_limit",
            "items_read",
            "GET",
            json!({"rate_limit": {"max_requests": 1, "interval_seconds": 3600, "per": "rule"}}),
        )
        .await;
    let response = f.execute(f.get("", &[]), None, "c-rl-1").await;
    assert_eq!(response.status, 200, "{}", response.json());
    // The narrow bucket is empty: throttled, and the wide one is not charged.
    let response = f.execute(f.get("", &[]), None, "c-rl-2").await;
    expect(&response, 429, "policy_rate_limited");
    let retry_after: u64 = response.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    assert_eq!(f.event_kinds("c-rl-2").await, kinds(&[("execute", "throttled", "policy_rate_limited")]));
    assert_eq!(f.upstream.count(), 1);
    let (status, _) = owner(&f.server, Method::DELETE, &format!("/v1/policies/{narrow}"), None).await;
    assert!(status == 200 || status == 204, "{status}");
    // The wide bucket still has its second token, then it is empty.
    let response = f.execute(f.get("", &[]), None, "c-rl-3").await;
    assert_eq!(response.status, 200, "{}", response.json());
    let response = f.execute(f.get("", &[]), None, "c-rl-4").await;
    expect(&response, 429, "policy_rate_limited");
    assert_eq!(f.events("c-rl-4").await[0]["policy"]["rule_id"], wide.as_str());
    assert_eq!(f.upstream.count(), 2);
    f.server.stop().await;
}
