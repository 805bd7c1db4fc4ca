//! Conformance of the GovernanceStore part of the storage API (approvals, audit search, signing key
//! rotation): every test runs against SQLite and PostgreSQL, as in `conformance`.

use crate::harness;

use std::sync::Arc;
use std::time::Duration;

use harness::{Harness, TestSigner, at, envelope, new_deployment, t0, writer};
use serde_json::json;
use steward_store::audit::{Actor, AuditEvent, Decision, EventType};
use steward_store::governance::{
    ApprovalDecision, ApprovalFilter, ApprovalMode, ApprovalStatus, AuditCursor, AuditFilter, AuditOrder,
    DecisionOutcome, NewApproval, NewPolicyRow, PendingApproval,
};
use steward_store::{SigningKeyRecord, Store, StoreError};
use steward_types::{
    ApprovalId, IntegrationId, PolicyId, SigningKeyId, TenantId, Timestamp, TokenId, WorkloadId,
};

backend_suite!(
    approvals_insert_get_and_computed_status,
    approvals_list_filters_by_tenant_and_status,
    approvals_decide_once_rule_and_deny,
    approvals_cancel_and_consume,
    approvals_concurrent_decisions_one_wins,
    approvals_concurrent_creates_make_one_pending,
    approvals_create_reuses_supersedes_and_follows_decisions,
    audit_search_filters_and_pages,
    signing_key_rotation_keeps_one_active,
    approved_once_presence_and_the_change_counter,
);

/// Two tenants with one workload and one integration each: `t_one`/`w_one`/`i_one`, `t_two`/….
async fn seed(h: &Harness) -> anyhow::Result<()> {
    let now = t0().unix_micros();
    for name in ["one", "two"] {
        h.raw(&format!(
            "INSERT INTO tenants (tenant_id, name, created_at, updated_at) VALUES ('t_{name}', '{name}', {now}, {now}); \
             INSERT INTO workloads (workload_id, tenant_id, name, san_uri, created_at, updated_at) \
               VALUES ('w_{name}', 't_{name}', 'agent', 'spiffe://steward/x', {now}, {now}); \
             INSERT INTO integrations (integration_id, tenant_id, name, provider, template_owner, template_id, \
               injection, created_at, updated_at) \
               VALUES ('i_{name}', 't_{name}', 'openai', 'openai', 'global', 'tpl_openai', '{{}}', {now}, {now});"
        ))
        .await?;
    }
    h.raw("UPDATE tenants SET approval_webhook_url = 'https://hooks.example/one' WHERE tenant_id = 't_one'")
        .await?;
    Ok(())
}

fn proposed_rule(tenant: &str) -> serde_json::Value {
    json!({
        "rule_type": "allow",
        "scope": {"tenant_id": format!("t_{tenant}"), "integration_id": format!("i_{tenant}"),
                  "action_group": "openai_responses", "method": "POST", "host": "api.openai.com",
                  "workload_id": format!("w_{tenant}")},
    })
}

/// The (tenant, workload, integration) ids `seed` creates for `tenant`.
fn ids(tenant: &str) -> (TenantId, WorkloadId, IntegrationId) {
    (
        TenantId::parse(&format!("t_{tenant}")).expect("a valid id"),
        WorkloadId::parse(&format!("w_{tenant}")).expect("a valid id"),
        IntegrationId::parse(&format!("i_{tenant}")).expect("a valid id"),
    )
}

fn new_approval(tenant: &str, created_at: Timestamp, ttl_seconds: i64) -> NewApproval {
    let id = ApprovalId::generate();
    NewApproval {
        approval_id: id.clone(),
        tenant_id: ids(tenant).0,
        workload_id: ids(tenant).1,
        integration_id: ids(tenant).2,
        digest: format!("sha256:{}", id.as_str()),
        descriptor: json!({"method": "POST", "host": "api.openai.com", "path": "/v1/responses"}),
        preview: Some(envelope(&format!("env_preview_{}", id.as_str()), "k1")),
        proposed_rule: proposed_rule(tenant),
        created_at,
        expires_at: created_at.plus_seconds(ttl_seconds),
    }
}

fn policy_row(tenant: &str, rule_type: &str, now: Timestamp) -> NewPolicyRow {
    NewPolicyRow {
        policy_id: PolicyId::generate(),
        tenant_id: TenantId::parse(&format!("t_{tenant}")).expect("a valid id"),
        integration_id: IntegrationId::parse(&format!("i_{tenant}")).expect("a valid id"),
        action_group: "openai_responses".into(),
        method: "POST".into(),
        host: "api.openai.com".into(),
        workload_id: Some(WorkloadId::parse(&format!("w_{tenant}")).expect("a valid id")),
        rule_type: rule_type.into(),
        rule: proposed_rule(tenant),
        created_at: now,
    }
}

fn decision(id: &ApprovalId, outcome: DecisionOutcome, at: Timestamp) -> ApprovalDecision {
    ApprovalDecision {
        approval_id: id.clone(),
        outcome,
        policy: None,
        decided_by: TokenId::parse("tok_admin").expect("a valid id"),
        reason: None,
        decided_at: at,
        expires_at: None,
    }
}

async fn approvals_insert_get_and_computed_status(h: Harness) -> anyhow::Result<()> {
    seed(&h).await?;
    let store = h.store();
    let approval = new_approval("one", t0(), 300);
    store.insert_approval(&approval).await?;
    let got = store.get_approval(&approval.approval_id).await?.expect("inserted");
    assert_eq!(got.tenant_id, TenantId::parse("t_one").expect("a valid id"));
    assert_eq!(got.descriptor, approval.descriptor);
    assert_eq!(got.proposed_rule, approval.proposed_rule);
    assert_eq!(got.preview, approval.preview);
    assert_eq!((got.created_at, got.expires_at), (approval.created_at, approval.expires_at));
    assert_eq!(got.status_at(t0()), ApprovalStatus::Pending);
    assert_eq!(got.status_at(t0().plus_seconds(299)), ApprovalStatus::Pending);
    assert_eq!(got.status_at(t0().plus_seconds(300)), ApprovalStatus::Expired);
    assert_eq!(store.get_approval(&ApprovalId::generate()).await?, None);

    // The same digest finds the pending approval until it expires.
    let found = store
        .pending_approval_for_digest(
            &ids("one").0,
            &ids("one").1,
            &ids("one").2,
            &approval.digest,
            t0().plus_seconds(10),
        )
        .await?;
    assert_eq!(found.map(|a| a.approval_id), Some(approval.approval_id.clone()));
    let lapsed = store
        .pending_approval_for_digest(
            &ids("one").0,
            &ids("one").1,
            &ids("one").2,
            &approval.digest,
            t0().plus_seconds(300),
        )
        .await?;
    assert_eq!(lapsed, None);

    // Expired approvals cannot be decided.
    let late = decision(
        &approval.approval_id,
        DecisionOutcome::Approved(ApprovalMode::Once),
        t0().plus_seconds(300),
    );
    assert!(!store.decide_approval(&late).await?);
    assert_eq!(
        store.approval_webhook_url(&TenantId::parse("t_one").expect("a valid id")).await?.as_deref(),
        Some("https://hooks.example/one")
    );
    assert_eq!(store.approval_webhook_url(&TenantId::parse("t_two").expect("a valid id")).await?, None);
    assert_eq!(store.approval_webhook_url(&TenantId::parse("t_missing").expect("a valid id")).await?, None);
    Ok(())
}

async fn approvals_list_filters_by_tenant_and_status(h: Harness) -> anyhow::Result<()> {
    seed(&h).await?;
    let store = h.store();
    let pending = new_approval("one", t0(), 300);
    let expired = new_approval("one", t0().plus_seconds(-600), 300);
    let other = new_approval("two", t0().plus_seconds(1), 300);
    for a in [&pending, &expired, &other] {
        store.insert_approval(a).await?;
    }
    let now = t0().plus_seconds(5);
    let list = |tenant_ids: Option<Vec<&str>>, status| {
        let store = Arc::clone(&store);
        let filter = ApprovalFilter {
            tenant_ids: tenant_ids
                .map(|ids| ids.into_iter().map(|id| TenantId::parse(id).expect("a valid id")).collect()),
            status,
            now,
        };
        async move {
            let found = store.list_approvals(&filter, 100).await?;
            Ok::<_, StoreError>(found.into_iter().map(|a| a.approval_id).collect::<Vec<_>>())
        }
    };
    // Newest first.
    assert_eq!(
        list(None, None).await?,
        vec![other.approval_id.clone(), pending.approval_id.clone(), expired.approval_id.clone()]
    );
    assert_eq!(
        list(Some(vec!["t_one"]), None).await?,
        vec![pending.approval_id.clone(), expired.approval_id.clone()]
    );
    assert_eq!(list(Some(vec![]), None).await?, Vec::<ApprovalId>::new());
    assert_eq!(
        list(Some(vec!["t_one"]), Some(ApprovalStatus::Pending)).await?,
        vec![pending.approval_id.clone()]
    );
    assert_eq!(list(None, Some(ApprovalStatus::Expired)).await?, vec![expired.approval_id.clone()]);
    assert_eq!(list(None, Some(ApprovalStatus::Denied)).await?, Vec::<ApprovalId>::new());
    assert_eq!(
        store.list_approvals(&ApprovalFilter { tenant_ids: None, status: None, now }, 1).await?.len(),
        1
    );
    Ok(())
}

async fn approvals_decide_once_rule_and_deny(h: Harness) -> anyhow::Result<()> {
    seed(&h).await?;
    let store = h.store();
    let now = t0().plus_seconds(1);

    // once: approved until the approved TTL lapses.
    let once = new_approval("one", t0(), 300);
    store.insert_approval(&once).await?;
    let mut d = decision(&once.approval_id, DecisionOutcome::Approved(ApprovalMode::Once), now);
    d.expires_at = Some(now.plus_seconds(3600));
    assert!(store.decide_approval(&d).await?);
    assert!(!store.decide_approval(&d).await?, "a second decision loses");
    let got = store.get_approval(&once.approval_id).await?.expect("approval");
    assert_eq!(got.mode, Some(ApprovalMode::Once));
    assert_eq!(got.decided_by.as_ref().map(TokenId::as_str), Some("tok_admin"));
    assert_eq!(got.decided_at, Some(now));
    assert_eq!(got.expires_at, now.plus_seconds(3600));
    assert_eq!(got.status_at(now.plus_seconds(3599)), ApprovalStatus::Approved);
    assert_eq!(got.status_at(now.plus_seconds(3600)), ApprovalStatus::Expired);

    // rule: creates the policy row in the same transaction; never expires.
    let rule = new_approval("one", t0(), 300);
    store.insert_approval(&rule).await?;
    let mut d = decision(&rule.approval_id, DecisionOutcome::Approved(ApprovalMode::Rule), now);
    let policy = policy_row("one", "allow", now);
    d.policy = Some(policy.clone());
    assert!(store.decide_approval(&d).await?);
    let got = store.get_approval(&rule.approval_id).await?.expect("approval");
    assert_eq!(got.policy_id.as_ref(), Some(&policy.policy_id));
    assert_eq!(got.status_at(now.plus_seconds(10 * 86_400)), ApprovalStatus::Approved);

    // deny: a policy insert that fails rolls the decision back.
    let denied = new_approval("one", t0(), 300);
    store.insert_approval(&denied).await?;
    let mut d = decision(&denied.approval_id, DecisionOutcome::Denied, now);
    d.policy = Some(NewPolicyRow {
        integration_id: IntegrationId::parse("i_missing").expect("a valid id"),
        ..policy_row("one", "deny", now)
    });
    assert!(store.decide_approval(&d).await.is_err(), "a foreign key violation fails the decision");
    assert_eq!(
        store.get_approval(&denied.approval_id).await?.expect("approval").status_at(now),
        ApprovalStatus::Pending,
        "nothing half-written"
    );
    d.policy = Some(policy_row("one", "deny", now));
    d.reason = Some("not this one".into());
    assert!(store.decide_approval(&d).await?);
    let got = store.get_approval(&denied.approval_id).await?.expect("approval");
    assert_eq!(got.status_at(now), ApprovalStatus::Denied);
    assert_eq!(got.reason.as_deref(), Some("not this one"));
    assert_eq!(got.mode, None);
    Ok(())
}

async fn approvals_cancel_and_consume(h: Harness) -> anyhow::Result<()> {
    seed(&h).await?;
    let store = h.store();
    let now = t0().plus_seconds(1);
    let pending = new_approval("one", t0(), 300);
    store.insert_approval(&pending).await?;
    assert!(
        store
            .cancel_approval(
                &pending.approval_id,
                &TokenId::parse("tok_op").expect("a valid id"),
                Some("typo"),
                now
            )
            .await?
    );
    assert!(
        !store
            .cancel_approval(&pending.approval_id, &TokenId::parse("tok_op").expect("a valid id"), None, now)
            .await?
    );
    assert_eq!(
        store.get_approval(&pending.approval_id).await?.expect("a").status_at(now),
        ApprovalStatus::Canceled
    );

    // An approved once can be canceled until consumed; consumption happens once.
    let once = new_approval("one", t0(), 300);
    store.insert_approval(&once).await?;
    let mut d = decision(&once.approval_id, DecisionOutcome::Approved(ApprovalMode::Once), now);
    d.expires_at = Some(now.plus_seconds(60));
    assert!(store.decide_approval(&d).await?);
    let consumed = new_approval("one", t0(), 300);
    store.insert_approval(&consumed).await?;
    assert!(
        store
            .decide_approval(&ApprovalDecision { approval_id: consumed.approval_id.clone(), ..d.clone() })
            .await?
    );
    assert!(!store.consume_approval(&consumed.approval_id, now.plus_seconds(60)).await?, "expired");
    assert!(store.consume_approval(&consumed.approval_id, now).await?);
    assert!(!store.consume_approval(&consumed.approval_id, now).await?, "only once");
    assert_eq!(
        store.get_approval(&consumed.approval_id).await?.expect("a").status_at(now),
        ApprovalStatus::Executed
    );
    assert!(
        !store
            .cancel_approval(&consumed.approval_id, &TokenId::parse("tok_op").expect("a valid id"), None, now)
            .await?,
        "consumed"
    );
    assert!(
        !store
            .cancel_approval(
                &once.approval_id,
                &TokenId::parse("tok_op").expect("a valid id"),
                None,
                now.plus_seconds(60)
            )
            .await?,
        "expired"
    );
    assert!(
        store
            .cancel_approval(&once.approval_id, &TokenId::parse("tok_op").expect("a valid id"), None, now)
            .await?
    );

    // A rule approval is never canceled or consumed.
    let rule = new_approval("one", t0(), 300);
    store.insert_approval(&rule).await?;
    let mut d = decision(&rule.approval_id, DecisionOutcome::Approved(ApprovalMode::Rule), now);
    d.policy = Some(policy_row("one", "allow", now));
    assert!(store.decide_approval(&d).await?);
    assert!(
        !store
            .cancel_approval(&rule.approval_id, &TokenId::parse("tok_op").expect("a valid id"), None, now)
            .await?
    );
    assert!(!store.consume_approval(&rule.approval_id, now).await?);
    Ok(())
}

/// `new_approval` for one fixed descriptor digest.
fn same_digest(created_at: Timestamp, ttl_seconds: i64) -> NewApproval {
    NewApproval { digest: "sha256:one-descriptor".into(), ..new_approval("one", created_at, ttl_seconds) }
}

async fn approvals_concurrent_creates_make_one_pending(h: Harness) -> anyhow::Result<()> {
    seed(&h).await?;
    let store = h.store();
    let attempts: Vec<NewApproval> = (0..20).map(|i| same_digest(t0().plus_millis(i), 300)).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for approval in &attempts {
        let (store, approval) = (Arc::clone(&store), approval.clone());
        tasks.spawn(async move { store.create_pending_approval(&approval).await });
    }
    let mut created = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    while let Some(done) = tasks.join_next().await {
        let outcome = done??;
        ids.insert(outcome.record().approval_id.clone());
        if let PendingApproval::Created(record) = outcome {
            created.push(record.approval_id);
        }
    }
    assert_eq!(created.len(), 1, "exactly one creates: {created:?}");
    assert_eq!(ids.into_iter().collect::<Vec<_>>(), created, "every caller gets that one");
    let filter =
        ApprovalFilter { tenant_ids: None, status: Some(ApprovalStatus::Pending), now: t0().plus_seconds(1) };
    let pending: Vec<ApprovalId> =
        store.list_approvals(&filter, 100).await?.into_iter().map(|a| a.approval_id).collect();
    assert_eq!(pending, created);
    // The losers wrote nothing: neither their approval nor their preview envelope.
    let envelopes: Vec<String> =
        store.list_envelopes(None, 1000).await?.into_iter().map(|e| e.envelope_id).collect();
    for approval in &attempts {
        let won = approval.approval_id == created[0];
        assert_eq!(store.get_approval(&approval.approval_id).await?.is_some(), won);
        let preview = approval.preview.as_ref().map(|p| p.envelope_id.clone()).unwrap_or_default();
        assert_eq!(envelopes.contains(&preview), won, "{preview}");
    }
    Ok(())
}

async fn approvals_create_reuses_supersedes_and_follows_decisions(h: Harness) -> anyhow::Result<()> {
    seed(&h).await?;
    let store = h.store();
    let first = same_digest(t0(), 300);
    let created = store.create_pending_approval(&first).await?;
    assert!(matches!(&created, PendingApproval::Created(r) if r.approval_id == first.approval_id));
    assert_eq!(created.record().preview, first.preview);
    assert_eq!(created.record().status_at(t0()), ApprovalStatus::Pending);

    // While it is pending, the same digest gets it back, whoever asks.
    let again = store.create_pending_approval(&same_digest(t0().plus_seconds(10), 300)).await?;
    assert!(
        matches!(&again, PendingApproval::Existing(r) if r.approval_id == first.approval_id),
        "{again:?}"
    );
    // Another digest, another tenant: their own.
    let other = new_approval("one", t0().plus_seconds(10), 300);
    assert!(matches!(store.create_pending_approval(&other).await?, PendingApproval::Created(_)));
    let two = NewApproval { digest: first.digest.clone(), ..new_approval("two", t0().plus_seconds(10), 300) };
    assert!(matches!(store.create_pending_approval(&two).await?, PendingApproval::Created(_)));
    // A plain insert of a second live pending approval of the digest is refused by the database.
    let duplicate = same_digest(t0().plus_seconds(20), 300);
    assert!(matches!(store.insert_approval(&duplicate).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.get_approval(&duplicate.approval_id).await?, None);

    // Once it expired, a new one supersedes it; the old one still reads as expired.
    let later = same_digest(t0().plus_seconds(300), 300);
    let replaced = store.create_pending_approval(&later).await?;
    assert!(matches!(&replaced, PendingApproval::Created(r) if r.approval_id == later.approval_id));
    let old = store.get_approval(&first.approval_id).await?.expect("kept");
    assert_eq!(old.status_at(t0().plus_seconds(301)), ApprovalStatus::Expired);
    let found = store
        .pending_approval_for_digest(
            &ids("one").0,
            &ids("one").1,
            &ids("one").2,
            &first.digest,
            t0().plus_seconds(301),
        )
        .await?;
    assert_eq!(found.map(|a| a.approval_id), Some(later.approval_id.clone()));
    assert!(
        !store
            .decide_approval(&decision(&first.approval_id, DecisionOutcome::Denied, t0().plus_seconds(301)))
            .await?,
        "a superseded approval stays expired"
    );

    // Decided, it is no longer pending: the next request of the digest gets a new one.
    let deny = decision(&later.approval_id, DecisionOutcome::Denied, t0().plus_seconds(310));
    assert!(store.decide_approval(&deny).await?);
    let after = same_digest(t0().plus_seconds(320), 300);
    assert!(matches!(store.create_pending_approval(&after).await?, PendingApproval::Created(_)));
    Ok(())
}

async fn approvals_concurrent_decisions_one_wins(h: Harness) -> anyhow::Result<()> {
    seed(&h).await?;
    let store = h.store();
    let approval = new_approval("one", t0(), 300);
    store.insert_approval(&approval).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = Arc::clone(&store);
        let id = approval.approval_id.clone();
        tasks.spawn(async move {
            let now = t0().plus_seconds(1);
            // Decisions race (approve vs deny): exactly one leaves `pending`. (A cancel may follow
            // an approved `once` legitimately, so cancels are not part of this race.)
            if i % 2 == 0 {
                store.decide_approval(&decision(&id, DecisionOutcome::Denied, now)).await
            } else {
                let mut d = decision(&id, DecisionOutcome::Approved(ApprovalMode::Once), now);
                d.expires_at = Some(now.plus_seconds(60));
                store.decide_approval(&d).await
            }
        });
    }
    let mut wins = 0;
    while let Some(joined) = tasks.join_next().await {
        if joined?? {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
    Ok(())
}

async fn audit_search_filters_and_pages(h: Harness) -> anyhow::Result<()> {
    let store: Arc<dyn Store> = h.store();
    let audit = writer(Arc::clone(&store), TestSigner::new(), Duration::from_secs(3600));
    let mut ids = Vec::new();
    for i in 0..25_i64 {
        let tenant = if i % 5 == 0 { "t_two" } else { "t_one" };
        // Three events share each timestamp, so the keyset's event id tie-break matters.
        let mut event = AuditEvent::new(
            EventType::Execute,
            Actor::workload("w_one"),
            at(1_795_000_000_000_000 + (i / 3)),
        )
        .with_tenant(tenant)
        .with_workload(format!("w_{i}"))
        .with_correlation_id(format!("corr-{}", i % 2))
        .with_action_group("openai_responses");
        if i % 4 == 0 {
            event = event.with_decision(Decision::Denied);
        }
        ids.push(event.event_id.to_string());
        audit.append(event).await?;
    }
    audit
        .append(AuditEvent::new(EventType::KeyRotated, Actor::system("x"), at(1_795_000_000_000_100)))
        .await?;

    // Newest first, across pages of 4, without gaps or repeats.
    let all = AuditFilter::default();
    let mut seen = Vec::new();
    let mut cursor: Option<AuditCursor> = None;
    loop {
        let page = store.search_audit_events(&all, cursor.as_ref(), AuditOrder::NewestFirst, 4).await?;
        if page.is_empty() {
            break;
        }
        let last = page.last().expect("non-empty");
        cursor = Some(AuditCursor { timestamp: last.timestamp, event_id: last.event_id.to_string() });
        seen.extend(page.into_iter().map(|e| (e.timestamp, e.event_id.to_string())));
    }
    assert_eq!(seen.len(), 26);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first, ties by event id");

    // Oldest first.
    let oldest = store.search_audit_events(&all, None, AuditOrder::OldestFirst, 1000).await?;
    assert_eq!(oldest.first().map(|e| e.timestamp), Some(at(1_795_000_000_000_000)));
    assert_eq!(oldest.last().map(|e| e.event_type), Some(EventType::KeyRotated));

    // Filters.
    let count = |filter: AuditFilter| {
        let store = Arc::clone(&store);
        async move {
            store.search_audit_events(&filter, None, AuditOrder::NewestFirst, 1000).await.map(|v| v.len())
        }
    };
    assert_eq!(count(AuditFilter { tenant_id: Some("t_two".into()), ..Default::default() }).await?, 5);
    assert_eq!(
        count(AuditFilter { tenant_ids: Some(vec!["t_one".into()]), ..Default::default() }).await?,
        20
    );
    assert_eq!(count(AuditFilter { tenant_ids: Some(vec![]), ..Default::default() }).await?, 0);
    assert_eq!(count(AuditFilter { workload_id: Some("w_3".into()), ..Default::default() }).await?, 1);
    assert_eq!(count(AuditFilter { decision: Some("denied".into()), ..Default::default() }).await?, 7);
    assert_eq!(count(AuditFilter { event_type: Some("key_rotated".into()), ..Default::default() }).await?, 1);
    assert_eq!(count(AuditFilter { correlation_id: Some("corr-1".into()), ..Default::default() }).await?, 12);
    assert_eq!(
        count(AuditFilter { action_group: Some("openai_responses".into()), ..Default::default() }).await?,
        25
    );
    assert_eq!(count(AuditFilter { integration_id: Some("i_x".into()), ..Default::default() }).await?, 0);
    let window = AuditFilter {
        since: Some(at(1_795_000_000_000_001)),
        until: Some(at(1_795_000_000_000_003)),
        ..Default::default()
    };
    assert_eq!(count(window).await?, 6, "since inclusive, until exclusive");
    let found = store
        .search_audit_events(
            &AuditFilter { workload_id: Some("w_7".into()), ..Default::default() },
            None,
            AuditOrder::NewestFirst,
            10,
        )
        .await?;
    assert_eq!(found[0].event_id.to_string(), ids[7]);
    assert!(found[0].chain.is_some(), "events come back with their chain link");
    audit.shutdown().await?;
    Ok(())
}

async fn signing_key_rotation_keeps_one_active(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let deployment = new_deployment("rot");
    store.initialize_deployment(deployment.clone()).await?;
    let first = deployment.signing_key.kid.clone();
    let key = |tag: &str, created_at: Timestamp| SigningKeyRecord {
        kid: SigningKeyId::generate(),
        public_key: vec![9; 32],
        private_key: envelope(&format!("env_mk_{tag}"), "k1"),
        created_at,
        retired_at: None,
    };
    let second = key("second", t0().plus_seconds(10));
    assert_eq!(store.rotate_signing_key(&second, t0().plus_seconds(10)).await?, Some(first.clone()));
    let active = store.deployment().await?.expect("deployment").active_signing_key;
    assert_eq!(active.kid, second.kid);

    let published = store.published_signing_keys(t0()).await?;
    let kids: Vec<_> = published.iter().map(|k| k.kid.clone()).collect();
    assert_eq!(kids, vec![second.kid.clone(), first.clone()]);
    assert_eq!(published[1].retired_at, Some(t0().plus_seconds(10)));
    assert_eq!(published[0].private_key, second.private_key);
    // Once the retired key is older than the window, only the active key is published.
    let only = store.published_signing_keys(t0().plus_seconds(10)).await?;
    assert_eq!(only.iter().map(|k| k.kid.clone()).collect::<Vec<_>>(), vec![second.kid.clone()]);

    // Concurrent rotations: the database keeps exactly one active key.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..4 {
        let store = Arc::clone(&store);
        let next = key(&format!("race{i}"), t0().plus_seconds(20));
        tasks.spawn(async move { store.rotate_signing_key(&next, t0().plus_seconds(20)).await });
    }
    while let Some(joined) = tasks.join_next().await {
        // A loser sees a conflict (PostgreSQL) or simply runs after the winner (SQLite).
        match joined? {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(other) => return Err(other.into()),
        }
    }
    let active: Vec<_> = store
        .published_signing_keys(t0().plus_seconds(1000))
        .await?
        .into_iter()
        .filter(|k| k.retired_at.is_none())
        .collect();
    assert_eq!(active.len(), 1);
    Ok(())
}

/// `has_approved_once` answers per (tenant, workload, integration) whatever the digest; approving
/// and consuming move the change counter (the read cache keeps that answer), a pending approval
/// does not.
async fn approved_once_presence_and_the_change_counter(h: Harness) -> anyhow::Result<()> {
    seed(&h).await?;
    let store = h.store();
    let now = t0().plus_seconds(1);
    let has = async |tenant: &str, at: Timestamp| {
        store.has_approved_once(&ids(tenant).0, &ids(tenant).1, &ids(tenant).2, at).await
    };
    let start = store.change_counter().await?;
    let once = new_approval("one", t0(), 300);
    store.insert_approval(&once).await?;
    assert_eq!(store.change_counter().await?, start, "a pending approval does not move the counter");
    assert!(!has("one", now).await?, "pending is not approved");

    let mut d = decision(&once.approval_id, DecisionOutcome::Approved(ApprovalMode::Once), now);
    d.expires_at = Some(now.plus_seconds(60));
    assert!(store.decide_approval(&d).await?);
    let approved = store.change_counter().await?;
    assert!(approved > start, "approving moves the counter");
    assert!(has("one", now).await?);
    assert!(!has("two", now).await?, "another tenant's approval is not this one's");
    assert!(!has("one", now.plus_seconds(60)).await?, "an expired approval does not count");

    assert!(store.consume_approval(&once.approval_id, now).await?);
    assert!(store.change_counter().await? > approved, "consuming moves the counter");
    assert!(!has("one", now).await?, "a consumed approval does not count");
    Ok(())
}
