//! Idempotency conformance: stored results of idempotent calls, against SQLite and PostgreSQL with
//! the same test bodies.

#![allow(clippy::unwrap_used, missing_debug_implementations)]

use crate::harness;

use harness::{Harness, envelope, t0};
use steward_store::{IdempotencyRecord, IdempotencyScope};
use steward_types::{IntegrationId, TenantId, WorkloadId};

backend_suite!(results_are_stored_once_read_back_and_replaced_only_after_expiry, scopes_are_isolated);

fn scope(key: &str) -> IdempotencyScope {
    IdempotencyScope {
        tenant_id: TenantId::parse("t_one").unwrap(),
        workload_id: WorkloadId::parse("w_one").unwrap(),
        integration_id: IntegrationId::parse("i_one").unwrap(),
        key: key.into(),
    }
}

fn record(key: &str, digest: &str, envelope_id: &str, created_after: i64, ttl: i64) -> IdempotencyRecord {
    let created_at = t0().plus_seconds(created_after);
    IdempotencyRecord {
        scope: scope(key),
        request_digest: digest.into(),
        response: envelope(envelope_id, "k1"),
        created_at,
        expires_at: created_at.plus_seconds(ttl),
    }
}

async fn results_are_stored_once_read_back_and_replaced_only_after_expiry(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    assert!(store.idempotency_record(&scope("k"), t0()).await?.is_none());
    assert!(store.store_idempotency_record(&record("k", "d1", "env_a", 0, 60), t0()).await?);
    let found = store.idempotency_record(&scope("k"), t0().plus_seconds(1)).await?.unwrap();
    assert_eq!(found.request_digest, "d1");
    assert_eq!(found.response.envelope_id, "env_a");
    assert_eq!(found.expires_at, t0().plus_seconds(60));

    // An unexpired record is kept; the second writer's envelope is not left behind.
    assert!(!store.store_idempotency_record(&record("k", "d2", "env_b", 2, 60), t0().plus_seconds(2)).await?);
    let counts = store.envelope_counts_by_kek().await?;
    assert_eq!(counts.get("k1"), Some(&1), "only env_a exists: {counts:?}");

    // After expiry it is invisible, and a new result replaces it (the old response shredded).
    assert!(store.idempotency_record(&scope("k"), t0().plus_seconds(60)).await?.is_none());
    assert!(
        store.store_idempotency_record(&record("k", "d3", "env_c", 61, 60), t0().plus_seconds(61)).await?
    );
    let found = store.idempotency_record(&scope("k"), t0().plus_seconds(62)).await?.unwrap();
    assert_eq!(found.request_digest, "d3");
    let live: Vec<String> =
        store.list_envelopes(None, 100).await?.into_iter().map(|e| e.envelope_id).collect();
    assert!(!live.contains(&"env_a".to_string()), "the expired response was shredded: {live:?}");
    Ok(())
}

async fn scopes_are_isolated(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    store.store_idempotency_record(&record("a", "d1", "env_a", 0, 60), t0()).await?;
    assert!(store.idempotency_record(&scope("b"), t0()).await?.is_none());
    let mut other = scope("a");
    other.workload_id = WorkloadId::parse("w_two").unwrap();
    assert!(store.idempotency_record(&other, t0()).await?.is_none());
    Ok(())
}
