//! Rules made by `rule` approvals are validated like any policy, and a stored rule that no longer
//! validates (written by an older version, or edited in the database) fails its action group closed
//! with `policy_deny` instead of answering 500 to every call of the group.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::execute::{Exec, expect, fixture, kinds};
use common::workload::owner;
use http::Method;
use serde_json::{Value, json};

async fn policies(f: &Exec) -> Vec<Value> {
    let path = format!("/v1/policies?integration_id={}", f.integration_id);
    let (status, list) = owner(&f.server, Method::GET, &path, None).await;
    assert_eq!(status, 200, "{list}");
    list["policies"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_rule_approval_with_invalid_constraints_is_refused_and_changes_nothing() {
    let (f, _dir) = fixture(&[]).await;
    let request = f.post(&json!({"name": "a"}));
    let response = f.execute(request.clone(), None, "r-202").await;
    assert_eq!(response.status, 202, "{}", response.json());
    let approval_id = response.json()["approval_id"].as_str().unwrap().to_owned();
    let approve = format!("/v1/approvals/{approval_id}/approve");

    for constraints in [
        json!({"colour": "blue"}),
        json!({"max_body_bytes": "lots"}),
        json!({"body_json": [{"pointer": "no-slash", "equals": 1}]}),
        json!({"allowed_query_keys": ["b", "a", "a"]}),
    ] {
        let (status, refused) = owner(
            &f.server,
            Method::POST,
            &approve,
            Some(json!({"mode": "rule", "constraints": constraints})),
        )
        .await;
        assert_eq!(
            (status, refused["error"].as_str().unwrap()),
            (400, "policy_invalid"),
            "{constraints}: {refused}"
        );
        assert!(refused["message"].as_str().unwrap().starts_with("constraints"), "{refused}");
    }
    // Nothing was stored: the approval is still pending, no rule, no decision event.
    let (_, view) = owner(&f.server, Method::GET, &format!("/v1/approvals/{approval_id}"), None).await;
    assert_eq!(view["status"], "pending", "{view}");
    assert_eq!(view["policy_id"], Value::Null);
    assert!(policies(&f).await.is_empty());
    let (_, decided) =
        owner(&f.server, Method::GET, "/v1/audit/events?event_type=approval_decided", None).await;
    assert_eq!(decided["events"], json!([]));
    // The group still answers as before (not 500).
    let again = f.execute(request.clone(), None, "r-202b").await;
    assert_eq!(again.status, 202, "{}", again.json());

    // Valid constraints are accepted and stored normalized.
    let (status, decided) = owner(
        &f.server,
        Method::POST,
        &approve,
        Some(json!({"mode": "rule", "constraints": {"max_body_bytes": 1000}})),
    )
    .await;
    assert_eq!(status, 200, "{decided}");
    let stored = policies(&f).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["policy_id"], decided["policy_id"]);
    assert_eq!(stored[0]["constraints"]["max_body_bytes"], 1000);
    let response = f.execute(request, None, "r-allowed").await;
    assert_eq!(response.status, 200, "{}", response.json());
    f.server.stop().await;
}

#[tokio::test]
async fn a_stored_rule_that_no_longer_validates_denies_its_group_instead_of_500() {
    let (f, _dir) = fixture(&[]).await;
    let rule = f.allow_reads().await;
    let response = f.execute(f.get("", &[]), None, "s-ok").await;
    assert_eq!(response.status, 200, "{}", response.json());

    // An older version stored unvalidated constraints; the database holds a rule that fails validation.
    let db = f.db().await;
    let (text,): (String,) = sqlx::query_as("SELECT rule FROM policies WHERE policy_id = ?")
        .bind(&rule)
        .fetch_one(&db)
        .await
        .unwrap();
    let mut broken: Value = serde_json::from_str(&text).unwrap();
    broken["constraints"] = json!({"colour": "blue"});
    sqlx::query("UPDATE policies SET rule = ? WHERE policy_id = ?")
        .bind(broken.to_string())
        .bind(&rule)
        .execute(&db)
        .await
        .unwrap();

    // Within the read cache's bound, every call of the group is refused with policy_deny naming the rule.
    let mut response = f.execute(f.get("", &[]), None, "s-broken-0").await;
    for n in 1..40 {
        if response.status != 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        response = f.execute(f.get("", &[]), None, &format!("s-broken-{n}")).await;
    }
    expect(&response, 403, "policy_deny");
    assert!(response.json()["message"].as_str().unwrap().contains(&rule), "{}", response.json());
    let correlation = response.json()["correlation_id"].as_str().unwrap().to_owned();
    assert_eq!(
        f.event_kinds(&correlation).await,
        kinds(&[("execute", "denied", "policy_deny"), ("violation", "denied", "policy_deny")])
    );
    assert_eq!(f.events(&correlation).await[0]["policy"]["rule_id"], rule.as_str());
    let served = f.upstream.count();
    let response = f.execute(f.get("", &[]), None, "s-broken-again").await;
    expect(&response, 403, "policy_deny");
    assert_eq!(f.upstream.count(), served, "nothing is forwarded while the rule cannot be evaluated");

    // A rule column that is not even JSON fails closed the same way.
    sqlx::query("UPDATE policies SET rule = 'not json' WHERE policy_id = ?")
        .bind(&rule)
        .execute(&db)
        .await
        .unwrap();
    let mut response = f.execute(f.get("", &[]), None, "s-garbled-0").await;
    for n in 1..40 {
        if response.status == 403 && response.json()["message"].as_str().unwrap_or("").contains("read") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        response = f.execute(f.get("", &[]), None, &format!("s-garbled-{n}")).await;
    }
    expect(&response, 403, "policy_deny");
    assert_eq!(f.upstream.count(), served);

    // Once the admin deletes the broken rule (and adds a good one), the group works again.
    sqlx::query("UPDATE policies SET rule = ? WHERE policy_id = ?")
        .bind(broken.to_string())
        .bind(&rule)
        .execute(&db)
        .await
        .unwrap();
    let (status, _) = owner(&f.server, Method::DELETE, &format!("/v1/policies/{rule}"), None).await;
    assert_eq!(status, 204);
    f.allow_reads().await;
    let response = f.execute(f.get("", &[]), None, "s-fixed").await;
    assert_eq!(response.status, 200, "{}", response.json());
    f.server.stop().await;
}
