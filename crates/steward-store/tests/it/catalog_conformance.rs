//! Catalog conformance: template versions, integrations with secret versions (host binding,
//! crypto-shredding) and policies, against SQLite and PostgreSQL with the same test bodies.

#![allow(clippy::unwrap_used, missing_debug_implementations)]

use crate::harness;

use std::collections::BTreeMap;

use harness::{Harness, envelope, t0};
use serde_json::json;
use steward_store::StoreError;
use steward_store::catalog::{
    CreateIntegrationOutcome, IntegrationPatch, IntegrationRecord, NewSecretVersion, PolicyFilter,
    PolicyRecord, PublishOutcome, TemplateVersionRecord,
};
use steward_types::{IntegrationId, PolicyId, TenantId};

backend_suite!(
    template_versions_are_immutable_in_the_spec_order,
    latest_templates_are_listed_per_owner,
    integrations_carry_their_secret_versions_and_names_are_unique,
    patching_an_integration_keeps_its_secret_binding,
    deleting_an_integration_shreds_every_ciphertext_and_keeps_rows,
    policies_insert_list_and_disable,
    catalog_changes_move_the_change_counter,
);

fn template(owner: &str, id: &str, version: u64, provider: &str, body: &str) -> TemplateVersionRecord {
    TemplateVersionRecord {
        owner: owner.into(),
        template_id: id.into(),
        version,
        provider: provider.into(),
        body: body.into(),
        created_at: t0(),
    }
}

async fn tenant(h: &Harness, id: &str) -> TenantId {
    h.raw(&format!(
        "INSERT INTO tenants (tenant_id, name, dpop_required, approval_webhook_url, created_at, updated_at) \
         VALUES ('{id}', '{id}-name', FALSE, NULL, 1, 1)"
    ))
    .await
    .unwrap();
    TenantId::parse(id).unwrap()
}

fn integration(tenant: &TenantId, name: &str) -> IntegrationRecord {
    IntegrationRecord {
        integration_id: IntegrationId::generate(),
        tenant_id: tenant.clone(),
        name: name.into(),
        provider: "openai".into(),
        template_owner: "global".into(),
        template_id: "tpl_openai".into(),
        template_version: None,
        injection: None,
        enabled: true,
        created_at: t0(),
        updated_at: t0(),
        deleted_at: None,
        secret_version: 0,
        secret_updated_at: None,
        bound_hosts: vec![],
        bound_injection: None,
    }
}

fn secret(tag: &str, version: u64, hosts: &[&str], oauth2: bool) -> NewSecretVersion {
    NewSecretVersion {
        version,
        secret_type: if oauth2 { "oauth2_refresh_token" } else { "api_key" }.into(),
        envelope: envelope(&format!("env_{tag}_{version}"), "k1"),
        bound_hosts: hosts.iter().map(|h| h.to_string()).collect(),
        bound_injection: json!({"type": "header", "name": format!("x-{tag}"), "format": "{secret}"}),
        oauth2: oauth2.then(|| json!({"token_url": "https://auth.example.com/token", "client_id": "c"})),
        client_secret: oauth2.then(|| envelope(&format!("env_{tag}_{version}_client"), "k1")),
        created_at: t0().plus_seconds(version as i64),
    }
}

pub async fn template_versions_are_immutable_in_the_spec_order(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let v2 = template("global", "tpl_a", 2, "openai", r#"{"v":2}"#);
    assert_eq!(store.publish_template(&v2).await?, PublishOutcome::Published);
    assert_eq!(store.publish_template(&v2).await?, PublishOutcome::VersionExists);
    let changed = template("global", "tpl_a", 2, "openai", r#"{"v":2,"x":1}"#);
    assert_eq!(store.publish_template(&changed).await?, PublishOutcome::VersionImmutable);
    // Same version with another provider: immutability is checked first.
    let other_provider = template("global", "tpl_a", 2, "anthropic", r#"{"v":2,"p":1}"#);
    assert_eq!(store.publish_template(&other_provider).await?, PublishOutcome::VersionImmutable);
    let older = template("global", "tpl_a", 1, "anthropic", r#"{"v":1}"#);
    assert_eq!(store.publish_template(&older).await?, PublishOutcome::NotIncremented { latest: 2 });
    let mismatch = template("global", "tpl_a", 3, "anthropic", r#"{"v":3}"#);
    assert_eq!(
        store.publish_template(&mismatch).await?,
        PublishOutcome::ProviderMismatch { provider: "openai".into() }
    );
    let v3 = template("global", "tpl_a", 3, "openai", r#"{"v":3}"#);
    assert_eq!(store.publish_template(&v3).await?, PublishOutcome::Published);
    // Another owner has its own version line.
    let tenant_v1 = template("t_one", "tpl_a", 1, "other", r#"{"t":1}"#);
    assert_eq!(store.publish_template(&tenant_v1).await?, PublishOutcome::Published);

    assert_eq!(store.template_version("global", "tpl_a", None).await?, Some(v3.clone()));
    assert_eq!(store.template_version("global", "tpl_a", Some(2)).await?, Some(v2));
    assert_eq!(store.template_version("global", "tpl_a", Some(9)).await?, None);
    assert_eq!(store.template_version("t_one", "tpl_a", None).await?, Some(tenant_v1));
    assert_eq!(store.template_version("t_two", "tpl_a", None).await?, None);

    // Racing publishes of one version: one wins, the others see it.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6 {
        let store = store.clone();
        tasks.spawn(async move {
            store.publish_template(&template("global", "tpl_race", 1, "p", &format!("{{\"i\":{i}}}"))).await
        });
    }
    let mut published = 0;
    while let Some(outcome) = tasks.join_next().await {
        match outcome? {
            Ok(PublishOutcome::Published) => published += 1,
            Ok(PublishOutcome::VersionImmutable) | Err(StoreError::Conflict(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(published, 1);
    Ok(())
}

pub async fn latest_templates_are_listed_per_owner(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    for (owner, id, v) in
        [("global", "tpl_a", 1), ("global", "tpl_a", 2), ("global", "tpl_b", 1), ("t_one", "tpl_a", 5)]
    {
        store.publish_template(&template(owner, id, v, "p", &format!("{{\"v\":{v}}}"))).await?;
    }
    let all = store.list_latest_templates(None).await?;
    let summary: Vec<_> = all.iter().map(|t| (t.owner.as_str(), t.template_id.as_str(), t.version)).collect();
    assert_eq!(summary, vec![("global", "tpl_a", 2), ("global", "tpl_b", 1), ("t_one", "tpl_a", 5)]);
    let global = store.list_latest_templates(Some(&["global".to_owned()])).await?;
    assert_eq!(global.len(), 2);
    let tenant = store.list_latest_templates(Some(&["t_one".to_owned(), "t_two".to_owned()])).await?;
    assert_eq!(tenant.len(), 1);
    assert!(store.list_latest_templates(Some(&[])).await?.is_empty());
    Ok(())
}

pub async fn integrations_carry_their_secret_versions_and_names_are_unique(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let t = tenant(&h, "t_one").await;
    let other = tenant(&h, "t_two").await;
    assert!(store.catalog_tenant_exists(&TenantId::parse("t_one").unwrap()).await?);
    assert!(!store.catalog_tenant_exists(&TenantId::parse("t_nope").unwrap()).await?);

    let first = integration(&t, "openai");
    let s1 = secret("a", 1, &["api.openai.com"], false);
    assert_eq!(store.create_integration(&first, &s1).await?, CreateIntegrationOutcome::Created);
    let got = store.integration(&first.integration_id).await?.unwrap();
    assert_eq!(got.secret_version, 1);
    assert_eq!(got.secret_updated_at, Some(s1.created_at));
    assert_eq!(got.bound_hosts, vec!["api.openai.com".to_owned()]);
    assert_eq!(got.bound_injection.as_ref(), Some(&s1.bound_injection));
    assert_eq!(got.name, "openai");
    assert_eq!(got.injection, None);

    // Same name in the same tenant: refused, nothing written (its envelope neither).
    let dup = integration(&t, "openai");
    let before = store.envelope_counts_by_kek().await?;
    assert_eq!(
        store.create_integration(&dup, &secret("dup", 1, &["x"], false)).await?,
        CreateIntegrationOutcome::NameConflict
    );
    assert_eq!(store.envelope_counts_by_kek().await?, before);
    assert_eq!(store.integration(&dup.integration_id).await?, None);
    // Same name in another tenant: fine.
    let elsewhere = integration(&other, "openai");
    let created = store.create_integration(&elsewhere, &secret("b", 1, &["api.openai.com"], false)).await?;
    assert_eq!(created, CreateIntegrationOutcome::Created);

    // A second secret version, with OAuth2 settings and a client secret of its own.
    let s2 = secret("a", 2, &["api.openai.com", "auth.example.com"], true);
    assert!(store.add_secret_version(&first.integration_id, &s2).await?);
    let current = store.current_secret(&first.integration_id).await?.unwrap();
    assert_eq!(current.version, 2);
    assert_eq!(current.envelope, s2.envelope);
    assert_eq!(current.client_secret, s2.client_secret);
    assert_eq!(current.oauth2, s2.oauth2);
    assert_eq!(current.bound_hosts, s2.bound_hosts);
    assert_eq!(current.bound_injection.as_ref(), Some(&s2.bound_injection));
    assert_eq!(current.secret_type, "oauth2_refresh_token");
    // A taken version number is a conflict.
    let taken = store.add_secret_version(&first.integration_id, &secret("c", 2, &["x"], false)).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    assert!(
        !store
            .add_secret_version(&IntegrationId::parse("i_missing").unwrap(), &secret("d", 1, &["x"], false))
            .await?
    );

    let listed = store.list_integrations(Some(&[TenantId::parse("t_one").unwrap()])).await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].secret_version, 2);
    assert_eq!(store.list_integrations(None).await?.len(), 2);
    assert!(store.list_integrations(Some(&[])).await?.is_empty());
    Ok(())
}

pub async fn patching_an_integration_keeps_its_secret_binding(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let t = tenant(&h, "t_one").await;
    let record = integration(&t, "gh");
    let written = secret("p", 1, &["api.github.com"], false);
    store.create_integration(&record, &written).await?;
    let id = &record.integration_id;
    let later = t0().plus_seconds(60);
    let patch = IntegrationPatch {
        enabled: Some(false),
        template_version: Some(Some(3)),
        injection: Some(Some(json!({"type": "query", "name": "key"}))),
    };
    let patched = store.update_integration(id, &patch, later).await?.unwrap();
    assert!(!patched.enabled);
    assert_eq!(patched.template_version, Some(3));
    assert_eq!(patched.injection, Some(json!({"type": "query", "name": "key"})));
    assert_eq!(patched.updated_at, later);
    assert_eq!(patched.bound_hosts, vec!["api.github.com".to_owned()]);
    assert_eq!(patched.bound_injection.as_ref(), Some(&written.bound_injection), "bound as written");
    let unpin =
        IntegrationPatch { template_version: Some(None), injection: Some(None), ..Default::default() };
    let unpinned = store.update_integration(id, &unpin, later).await?.unwrap();
    assert_eq!((unpinned.template_version, unpinned.injection, unpinned.enabled), (None, None, false));
    assert_eq!(
        store.update_integration(&IntegrationId::parse("i_missing").unwrap(), &unpin, later).await?,
        None
    );
    Ok(())
}

pub async fn deleting_an_integration_shreds_every_ciphertext_and_keeps_rows(
    h: Harness,
) -> anyhow::Result<()> {
    let store = h.store();
    let t = tenant(&h, "t_one").await;
    let doomed = integration(&t, "doomed");
    let kept = integration(&t, "kept");
    store.create_integration(&doomed, &secret("doomed", 1, &["h"], false)).await?;
    store.add_secret_version(&doomed.integration_id, &secret("doomed", 2, &["h", "auth"], true)).await?;
    store.create_integration(&kept, &secret("kept", 1, &["h"], false)).await?;
    assert_eq!(store.envelope_counts_by_kek().await?, BTreeMap::from([("k1".to_owned(), 4)]));

    let at = t0().plus_seconds(100);
    assert!(store.delete_integration(&doomed.integration_id, at).await?);
    assert!(!store.delete_integration(&doomed.integration_id, at).await?, "deleting twice");
    // Only the kept integration's envelope is live; the doomed ones are not listed nor counted.
    assert_eq!(store.envelope_counts_by_kek().await?, BTreeMap::from([("k1".to_owned(), 1)]));
    let live = store.list_envelopes(None, 100).await?;
    assert_eq!(live.iter().map(|e| e.envelope_id.as_str()).collect::<Vec<_>>(), vec!["env_kept_1"]);
    assert_eq!(store.current_secret(&doomed.integration_id).await?, None);
    assert!(store.current_secret(&kept.integration_id).await?.is_some());

    let row = store.integration(&doomed.integration_id).await?.unwrap();
    assert_eq!(row.deleted_at, Some(at));
    assert!(!row.enabled);
    assert_eq!(row.secret_version, 2, "rows are kept");
    // A deleted integration takes no new secret and no patch.
    assert!(!store.add_secret_version(&doomed.integration_id, &secret("doomed", 3, &["h"], false)).await?);
    let enable = IntegrationPatch { enabled: Some(true), ..Default::default() };
    assert_eq!(store.update_integration(&doomed.integration_id, &enable, at).await?, None);
    // A re-wrap cannot resurrect a shredded envelope.
    let replaced = store.replace_envelope("env_doomed_1", "k1", &envelope("env_doomed_1", "k2")).await?;
    assert!(!replaced);
    Ok(())
}

pub async fn policies_insert_list_and_disable(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let t1 = tenant(&h, "t_one").await;
    let t2 = tenant(&h, "t_two").await;
    let i1 = integration(&t1, "a");
    let i2 = integration(&t2, "b");
    store.create_integration(&i1, &secret("i1", 1, &["h"], false)).await?;
    store.create_integration(&i2, &secret("i2", 1, &["h"], false)).await?;
    let policy = |tenant: &TenantId, integration: &IntegrationRecord, group: &str, n: i64| PolicyRecord {
        policy_id: PolicyId::generate(),
        tenant_id: tenant.clone(),
        integration_id: integration.integration_id.clone(),
        action_group: group.into(),
        method: "POST".into(),
        host: "api.openai.com".into(),
        workload_id: None,
        rule_type: "allow".into(),
        rule: json!({"rule_type": "allow", "scope": {"action_group": group}}),
        created_at: t0().plus_seconds(n),
        disabled_at: None,
    };
    let p1 = policy(&t1, &i1, "g1", 1);
    let p2 = policy(&t1, &i1, "g2", 2);
    let p3 = policy(&t2, &i2, "g1", 3);
    for p in [&p1, &p2, &p3] {
        store.insert_policy(p).await?;
    }
    assert_eq!(store.policy(&p1.policy_id).await?, Some(p1.clone()));
    assert_eq!(
        store.list_policies(&PolicyFilter::default()).await?,
        vec![p1.clone(), p2.clone(), p3.clone()]
    );
    let only_t1 =
        PolicyFilter { tenant_ids: Some(vec![TenantId::parse("t_one").unwrap()]), ..Default::default() };
    assert_eq!(store.list_policies(&only_t1).await?, vec![p1.clone(), p2.clone()]);
    let by_integration = PolicyFilter { tenant_ids: None, integration_id: Some(i2.integration_id.clone()) };
    assert_eq!(store.list_policies(&by_integration).await?, vec![p3.clone()]);
    let none = PolicyFilter { tenant_ids: Some(vec![]), ..Default::default() };
    assert!(store.list_policies(&none).await?.is_empty());
    assert_eq!(
        store.active_policies(&TenantId::parse("t_one").unwrap(), &i1.integration_id, "g1").await?,
        vec![p1.clone()]
    );

    let at = t0().plus_seconds(50);
    assert!(store.disable_policy(&p1.policy_id, at).await?);
    assert!(!store.disable_policy(&p1.policy_id, at).await?);
    assert_eq!(store.policy(&p1.policy_id).await?.unwrap().disabled_at, Some(at));
    assert_eq!(store.list_policies(&only_t1).await?, vec![p2]);
    assert!(
        store.active_policies(&TenantId::parse("t_one").unwrap(), &i1.integration_id, "g1").await?.is_empty()
    );
    Ok(())
}

/// Every catalog change the data plane's read cache could hold stale moves the change counter, in
/// the same transaction: a new template version (it changes "latest"), a new secret version, an
/// integration patch or deletion, a new or disabled policy.
pub async fn catalog_changes_move_the_change_counter(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let t = tenant(&h, "t_one").await;
    let record = integration(&t, "a");
    store.create_integration(&record, &secret("a", 1, &["h"], false)).await?;
    let id = &record.integration_id;
    let mut last = store.change_counter().await?;
    let mut check = async |what: &str| -> anyhow::Result<()> {
        let now = store.change_counter().await?;
        assert!(now > last, "{what} must move the change counter ({last} → {now})");
        last = now;
        Ok(())
    };
    store.publish_template(&template("global", "tpl_c", 1, "openai", r#"{"v":1}"#)).await?;
    check("a new template version").await?;
    assert!(store.add_secret_version(id, &secret("a", 2, &["h"], false)).await?);
    check("a new secret version").await?;
    let patch = IntegrationPatch { enabled: Some(false), ..Default::default() };
    store.update_integration(id, &patch, t0().plus_seconds(1)).await?;
    check("an integration patch").await?;
    let policy = PolicyRecord {
        policy_id: PolicyId::generate(),
        tenant_id: t.clone(),
        integration_id: record.integration_id.clone(),
        action_group: "g".into(),
        method: "POST".into(),
        host: "h".into(),
        workload_id: None,
        rule_type: "allow".into(),
        rule: json!({"rule_type": "allow", "scope": {"action_group": "g"}}),
        created_at: t0(),
        disabled_at: None,
    };
    store.insert_policy(&policy).await?;
    check("a new policy").await?;
    assert!(store.disable_policy(&policy.policy_id, t0().plus_seconds(2)).await?);
    check("disabling a policy").await?;
    assert!(store.delete_integration(id, t0().plus_seconds(3)).await?);
    check("deleting an integration").await?;
    Ok(())
}
