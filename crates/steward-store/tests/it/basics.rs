//! Deployment bootstrap, envelopes and admin tokens.

use std::collections::BTreeMap;
use std::sync::Arc;

use steward_store::{AdminRole, InitOutcome, StoreError};

use crate::harness::{Harness, admin_token, envelope, hash_for, new_deployment};

pub async fn initialize_deployment_once(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    assert_eq!(store.deployment().await?, None);
    let first = new_deployment("first");
    assert_eq!(store.initialize_deployment(first.clone()).await?, InitOutcome::Created);

    let got = store.deployment().await?.expect("deployment after init");
    assert_eq!(got.ca_cert_pem, first.ca_cert_pem);
    assert_eq!(got.ca_key, first.ca_key);
    assert_eq!(got.audit_key, first.audit_key);
    assert_eq!(got.active_signing_key, first.signing_key);
    assert_eq!(got.created_at, first.created_at);
    let owner = store.admin_token_by_hash(&first.owner_token.token_hash).await?.expect("owner token");
    assert_eq!(owner, first.owner_token);

    // A second init writes nothing: no CA, envelopes or token of its own.
    let second = new_deployment("second");
    assert_eq!(store.initialize_deployment(second.clone()).await?, InitOutcome::AlreadyInitialized);
    assert_eq!(store.deployment().await?.expect("still there").ca_cert_pem, first.ca_cert_pem);
    assert_eq!(store.envelope_counts_by_kek().await?, BTreeMap::from([("k1".to_owned(), 3)]));
    assert_eq!(store.admin_token_by_hash(&hash_for("second")).await?, None);
    store.ping().await?;
    Ok(())
}

pub async fn concurrent_initializations_create_one(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = Arc::clone(&store);
        tasks.spawn(
            async move { (i, store.initialize_deployment(new_deployment(&format!("race{i}"))).await) },
        );
    }
    let mut created = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (i, outcome) = joined?;
        if outcome? == InitOutcome::Created {
            created.push(i);
        }
    }
    assert_eq!(created.len(), 1, "exactly one initialization wins: {created:?}");
    let winner = new_deployment(&format!("race{}", created[0]));
    assert_eq!(store.deployment().await?.expect("deployment").ca_cert_pem, winner.ca_cert_pem);
    assert_eq!(store.envelope_counts_by_kek().await?.get("k1"), Some(&3));
    Ok(())
}

pub async fn envelopes_count_list_and_compare_and_set(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    store.initialize_deployment(new_deployment("env")).await?;
    let all = store.list_envelopes(None, 100).await?;
    let ids: Vec<_> = all.iter().map(|e| e.envelope_id.as_str()).collect();
    assert_eq!(ids, ["env_env_audit", "env_env_ca", "env_env_mk"]);
    let page = store.list_envelopes(Some("env_env_audit"), 1).await?;
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].envelope_id, "env_env_ca");

    let rewrapped = envelope("env_env_ca", "k2");
    assert!(store.replace_envelope("env_env_ca", "k1", &rewrapped).await?);
    // The compare fails now: another instance already re-wrapped it.
    assert!(!store.replace_envelope("env_env_ca", "k1", &envelope("env_env_ca", "k3")).await?);
    assert!(!store.replace_envelope("env_missing", "k1", &envelope("env_missing", "k2")).await?);
    assert_eq!(
        store.envelope_counts_by_kek().await?,
        BTreeMap::from([("k1".to_owned(), 2), ("k2".to_owned(), 1)])
    );
    let deployment = store.deployment().await?.expect("deployment");
    assert_eq!(deployment.ca_key.kek_id, "k2");
    assert_eq!(deployment.ca_key.body, rewrapped.body);
    assert_eq!(deployment.ca_key.aad, envelope("env_env_ca", "k1").aad, "the AAD never changes");
    Ok(())
}

pub async fn admin_tokens_insert_and_lookup(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let token = admin_token(42, AdminRole::Operator);
    store.insert_admin_token(&token).await?;
    assert_eq!(store.admin_token_by_hash(&[42; 32]).await?, Some(token.clone()));
    assert_eq!(store.admin_token_by_hash(&[43; 32]).await?, None);
    let duplicate = admin_token(42, AdminRole::Auditor);
    assert!(matches!(store.insert_admin_token(&duplicate).await, Err(StoreError::Conflict(_))));
    Ok(())
}
