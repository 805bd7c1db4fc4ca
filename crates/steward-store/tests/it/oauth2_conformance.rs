//! OAuth2 conformance: the cached access token, the refresh lease and the atomic rotation of a
//! refresh token, against SQLite and PostgreSQL with the same test bodies.

#![allow(clippy::unwrap_used, missing_debug_implementations)]

use crate::harness;

use harness::{Harness, envelope, t0};
use serde_json::json;
use steward_store::catalog::{IntegrationRecord, NewSecretVersion};
use steward_store::{OAuth2TokenRecord, StoreTokenOutcome};
use steward_types::{IntegrationId, TenantId, Timestamp};

backend_suite!(
    tokens_are_cached_replaced_and_dropped,
    the_refresh_lease_is_compare_and_set,
    a_failed_refresh_leaves_its_error_for_waiters,
    a_rotated_refresh_token_is_stored_atomically_with_the_access_token,
    a_rotation_that_lost_to_an_admin_write_stores_nothing,
    deleting_the_integration_shreds_the_cached_token,
    concurrent_lease_takers_get_exactly_one_lease,
);

async fn integration(h: &Harness) -> IntegrationId {
    let tenant = TenantId::generate().to_string();
    h.raw(&format!(
        "INSERT INTO tenants (tenant_id, name, dpop_required, approval_webhook_url, created_at, updated_at) \
         VALUES ('{tenant}', '{tenant}-name', FALSE, NULL, 1, 1)"
    ))
    .await
    .unwrap();
    let record = IntegrationRecord {
        integration_id: IntegrationId::generate(),
        tenant_id: TenantId::parse(&tenant).unwrap(),
        name: "gmail".into(),
        provider: "google".into(),
        template_owner: "global".into(),
        template_id: "tpl_gmail".into(),
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
    };
    h.store().create_integration(&record, &secret(record.integration_id.as_str(), 1)).await.unwrap();
    record.integration_id
}

fn secret(tag: &str, version: u64) -> NewSecretVersion {
    NewSecretVersion {
        version,
        secret_type: "oauth2_refresh_token".into(),
        envelope: envelope(&format!("env_{tag}_rt_{version}"), "k1"),
        bound_hosts: vec!["gmail.googleapis.com".into(), "oauth2.googleapis.com".into()],
        bound_injection: json!({"type": "header", "name": "authorization", "format": "Bearer {secret}"}),
        oauth2: Some(json!({"token_url": "https://oauth2.googleapis.com/token", "client_id": "c"})),
        client_secret: Some(envelope(&format!("env_{tag}_cs_{version}"), "k1")),
        created_at: t0().plus_seconds(version as i64),
    }
}

fn token(integration: &IntegrationId, version: u64, envelope_id: &str, at: Timestamp) -> OAuth2TokenRecord {
    OAuth2TokenRecord {
        integration_id: integration.clone(),
        secret_version: version,
        access_token: envelope(envelope_id, "k1"),
        expires_at: at.plus_seconds(3600),
        obtained_at: at,
    }
}

async fn live_envelopes(h: &Harness) -> Vec<String> {
    h.store().list_envelopes(None, 1000).await.unwrap().into_iter().map(|e| e.envelope_id).collect()
}

async fn tokens_are_cached_replaced_and_dropped(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let id = integration(&h).await;
    assert!(store.oauth2_token_state(&id).await?.is_none());

    assert!(store.take_oauth2_refresh_lease(&id, "a", t0(), t0().plus_seconds(30)).await?);
    let first = token(&id, 1, "env_at_1", t0());
    assert_eq!(store.store_oauth2_token(&first, "a", None).await?, StoreTokenOutcome::Stored);
    let state = store.oauth2_token_state(&id).await?.unwrap();
    assert_eq!(state.token.as_ref(), Some(&first));
    assert_eq!(state.lease_holder, None, "storing released the lease");
    assert_eq!(state.lease_until, None);

    // A newer token replaces it; the old ciphertext is shredded.
    let second = token(&id, 1, "env_at_2", t0().plus_seconds(10));
    assert_eq!(store.store_oauth2_token(&second, "b", None).await?, StoreTokenOutcome::Stored);
    assert_eq!(store.oauth2_token_state(&id).await?.unwrap().token, Some(second));
    let live = live_envelopes(&h).await;
    assert!(!live.contains(&"env_at_1".to_owned()) && live.contains(&"env_at_2".to_owned()), "{live:?}");

    // Dropping names the token it saw: a stale drop keeps the newer one.
    assert!(!store.drop_oauth2_token(&id, "env_at_1", t0().plus_seconds(11)).await?);
    assert!(store.oauth2_token_state(&id).await?.unwrap().token.is_some());
    assert!(store.drop_oauth2_token(&id, "env_at_2", t0().plus_seconds(11)).await?);
    assert_eq!(store.oauth2_token_state(&id).await?.unwrap().token, None);
    assert!(!live_envelopes(&h).await.contains(&"env_at_2".to_owned()), "the dropped token is shredded");
    Ok(())
}

async fn the_refresh_lease_is_compare_and_set(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let id = integration(&h).await;
    let until = t0().plus_seconds(30);
    assert!(store.take_oauth2_refresh_lease(&id, "a", t0(), until).await?);
    assert!(!store.take_oauth2_refresh_lease(&id, "b", t0().plus_seconds(1), until).await?, "held by a");
    assert!(store.take_oauth2_refresh_lease(&id, "a", t0().plus_seconds(1), until).await?, "a may renew");
    let state = store.oauth2_token_state(&id).await?.unwrap();
    assert_eq!(state.lease_holder.as_deref(), Some("a"));
    assert_eq!(state.lease_until, Some(until));

    // Releasing by someone else is a no-op; by the holder frees it.
    store.release_oauth2_refresh_lease(&id, "b", None, t0().plus_seconds(2)).await?;
    assert!(!store.take_oauth2_refresh_lease(&id, "b", t0().plus_seconds(2), until).await?);
    store.release_oauth2_refresh_lease(&id, "a", None, t0().plus_seconds(2)).await?;
    assert!(store.take_oauth2_refresh_lease(&id, "b", t0().plus_seconds(2), until).await?);

    // An expired lease (its holder died) is taken over.
    assert!(
        !store.take_oauth2_refresh_lease(&id, "c", until.plus_seconds(-1), until.plus_seconds(60)).await?
    );
    assert!(store.take_oauth2_refresh_lease(&id, "c", until, until.plus_seconds(60)).await?);
    assert_eq!(store.oauth2_token_state(&id).await?.unwrap().lease_holder.as_deref(), Some("c"));
    Ok(())
}

async fn a_failed_refresh_leaves_its_error_for_waiters(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let id = integration(&h).await;
    assert!(store.take_oauth2_refresh_lease(&id, "a", t0(), t0().plus_seconds(30)).await?);
    store.release_oauth2_refresh_lease(&id, "a", Some("invalid_grant"), t0().plus_seconds(1)).await?;
    let state = store.oauth2_token_state(&id).await?.unwrap();
    assert_eq!(state.last_error.as_deref(), Some("invalid_grant"));
    assert_eq!(state.last_error_at, Some(t0().plus_seconds(1)));
    assert_eq!(state.lease_holder, None);
    assert!(state.token.is_none());

    // A successful refresh clears it.
    assert!(store.take_oauth2_refresh_lease(&id, "b", t0().plus_seconds(2), t0().plus_seconds(30)).await?);
    store.store_oauth2_token(&token(&id, 1, "env_ok", t0().plus_seconds(3)), "b", None).await?;
    let state = store.oauth2_token_state(&id).await?.unwrap();
    assert_eq!((state.last_error, state.last_error_at), (None, None));
    Ok(())
}

async fn a_rotated_refresh_token_is_stored_atomically_with_the_access_token(
    h: Harness,
) -> anyhow::Result<()> {
    let store = h.store();
    let id = integration(&h).await;
    assert!(store.take_oauth2_refresh_lease(&id, "a", t0(), t0().plus_seconds(30)).await?);
    let rotated = secret(id.as_str(), 2);
    let access = token(&id, 2, "env_at_rot", t0().plus_seconds(5));
    assert_eq!(store.store_oauth2_token(&access, "a", Some(&rotated)).await?, StoreTokenOutcome::Stored);
    let current = store.current_secret(&id).await?.unwrap();
    assert_eq!(current.version, 2);
    assert_eq!(current.envelope.envelope_id, rotated.envelope.envelope_id);
    assert_eq!(current.bound_hosts, rotated.bound_hosts);
    assert_eq!(
        current.client_secret.as_ref().map(|e| e.envelope_id.as_str()),
        Some(rotated.client_secret.as_ref().unwrap().envelope_id.as_str())
    );
    let state = store.oauth2_token_state(&id).await?.unwrap();
    assert_eq!(state.token.unwrap().secret_version, 2);
    assert_eq!(store.integration(&id).await?.unwrap().secret_version, 2);
    Ok(())
}

async fn a_rotation_that_lost_to_an_admin_write_stores_nothing(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let id = integration(&h).await;
    assert!(store.take_oauth2_refresh_lease(&id, "a", t0(), t0().plus_seconds(30)).await?);
    // An admin writes version 2 while the refresh (with version 1) is in flight.
    assert!(store.add_secret_version(&id, &secret(&format!("{id}_admin"), 2)).await?);
    let mut rotated = secret(id.as_str(), 2);
    rotated.envelope = envelope("env_rot_lost", "k1");
    rotated.client_secret = Some(envelope("env_rot_lost_cs", "k1"));
    let access = token(&id, 2, "env_at_lost", t0().plus_seconds(5));
    assert_eq!(
        store.store_oauth2_token(&access, "a", Some(&rotated)).await?,
        StoreTokenOutcome::SecretVersionTaken
    );
    let current = store.current_secret(&id).await?.unwrap();
    assert_eq!(current.envelope.envelope_id, format!("env_{id}_admin_rt_2"), "the admin's secret stays");
    let state = store.oauth2_token_state(&id).await?.unwrap();
    assert!(state.token.is_none(), "no access token was stored");
    assert_eq!(state.lease_holder, None, "the lease was released");
    let live = live_envelopes(&h).await;
    assert!(!live.iter().any(|e| e.starts_with("env_rot_lost") || e == "env_at_lost"), "{live:?}");
    Ok(())
}

async fn deleting_the_integration_shreds_the_cached_token(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let id = integration(&h).await;
    store.store_oauth2_token(&token(&id, 1, "env_at_doomed", t0()), "a", None).await?;
    assert!(live_envelopes(&h).await.contains(&"env_at_doomed".to_owned()));
    assert!(store.delete_integration(&id, t0().plus_seconds(1)).await?);
    assert!(!live_envelopes(&h).await.contains(&"env_at_doomed".to_owned()));
    assert!(store.oauth2_token_state(&id).await?.unwrap().token.is_none());
    // Nothing more is stored for a deleted integration.
    assert_eq!(
        store.store_oauth2_token(&token(&id, 1, "env_at_late", t0().plus_seconds(2)), "a", None).await?,
        StoreTokenOutcome::IntegrationGone
    );
    Ok(())
}

async fn concurrent_lease_takers_get_exactly_one_lease(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let id = integration(&h).await;
    let mut tasks = Vec::new();
    for n in 0..16 {
        let (store, id) = (store.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            store.take_oauth2_refresh_lease(&id, &format!("holder-{n}"), t0(), t0().plus_seconds(30)).await
        }));
    }
    let mut won = 0;
    for task in tasks {
        if task.await?? {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    Ok(())
}
