//! The data plane's read cache (`steward_server::read_cache`) against a real PostgreSQL database
//! shared by two store handles, as two instances share it: what it serves, when a change made
//! elsewhere reaches it (the change counter), and that it never serves without a recent poll.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use steward_server::read_cache::{ReadCache, SERVE_FOR};
use steward_store::{PostgresStore, Store, TenantRecord};
use steward_testkit::TestDatabase;
use steward_types::{TenantId, Timestamp};

struct Instances {
    _db: TestDatabase,
    /// The instance whose cache is under test.
    here: Arc<dyn Store>,
    /// Another instance writing to the same database.
    elsewhere: Arc<dyn Store>,
}

async fn instances() -> Instances {
    let db = TestDatabase::create().await.unwrap();
    let here: Arc<dyn Store> = Arc::new(PostgresStore::connect(&db.url).await.unwrap());
    let elsewhere: Arc<dyn Store> = Arc::new(PostgresStore::connect(&db.url).await.unwrap());
    Instances { _db: db, here, elsewhere }
}

fn tenant(dpop_required: bool) -> TenantRecord {
    let at = Timestamp::from_unix_micros(1_700_000_000_000_000).unwrap();
    TenantRecord {
        tenant_id: TenantId::parse("t_cache").unwrap(),
        name: "cache".to_owned(),
        dpop_required,
        approval_webhook_url: None,
        created_at: at,
        updated_at: at,
    }
}

async fn cached_dpop(cache: &ReadCache) -> bool {
    cache
        .tenant(&TenantId::parse("t_cache").unwrap())
        .await
        .unwrap()
        .expect("the tenant exists")
        .dpop_required
}

#[tokio::test]
async fn a_change_made_elsewhere_is_served_after_the_next_poll_and_not_before() {
    let i = instances().await;
    i.elsewhere.insert_tenant(&tenant(false)).await.unwrap();
    let cache = ReadCache::new(Arc::clone(&i.here));
    cache.poll().await.unwrap();
    assert!(!cached_dpop(&cache).await);

    // Changed through the other handle: this cache still holds the record it read (that is the
    // point of it) until its next poll sees the counter move.
    assert!(i.elsewhere.update_tenant(&tenant(true)).await.unwrap());
    assert!(!cached_dpop(&cache).await, "served from the cache until the next poll");
    cache.poll().await.unwrap();
    assert!(cached_dpop(&cache).await, "the poll saw the counter move and dropped the entry");

    // A poll that finds the counter where it was keeps the entries.
    cache.poll().await.unwrap();
    let counter = i.here.change_counter().await.unwrap();
    cache.poll().await.unwrap();
    assert_eq!(i.here.change_counter().await.unwrap(), counter);
    assert!(cached_dpop(&cache).await);
}

#[tokio::test]
async fn a_local_invalidation_takes_effect_at_once() {
    let i = instances().await;
    i.here.insert_tenant(&tenant(false)).await.unwrap();
    let cache = ReadCache::new(Arc::clone(&i.here));
    cache.poll().await.unwrap();
    assert!(!cached_dpop(&cache).await);
    assert!(i.here.update_tenant(&tenant(true)).await.unwrap());
    cache.invalidate();
    assert!(cached_dpop(&cache).await, "what this instance changed is read again at once");
}

#[tokio::test]
async fn without_a_recent_poll_every_read_goes_to_the_store() {
    let i = instances().await;
    i.elsewhere.insert_tenant(&tenant(false)).await.unwrap();
    let cache = ReadCache::new(Arc::clone(&i.here));
    // Never polled: nothing is served from memory.
    assert!(!cached_dpop(&cache).await);
    assert!(i.elsewhere.update_tenant(&tenant(true)).await.unwrap());
    assert!(cached_dpop(&cache).await, "no poll yet: the store answers");

    // Polled once, then no poll for longer than SERVE_FOR (a store that stopped answering looks
    // like this): the cache stops serving rather than serve something older than the bound.
    cache.poll().await.unwrap();
    assert!(cached_dpop(&cache).await);
    assert!(i.elsewhere.update_tenant(&tenant(false)).await.unwrap());
    assert!(cached_dpop(&cache).await, "within SERVE_FOR of the poll: cached");
    tokio::time::sleep(SERVE_FOR + std::time::Duration::from_millis(50)).await;
    assert!(!cached_dpop(&cache).await, "past SERVE_FOR without a poll: read from the store");
}

#[tokio::test]
async fn records_that_were_not_found_are_not_cached() {
    let i = instances().await;
    let cache = ReadCache::new(Arc::clone(&i.here));
    cache.poll().await.unwrap();
    assert_eq!(cache.tenant(&TenantId::parse("t_cache").unwrap()).await.unwrap(), None);
    // Inserting does not move the counter, and must not need to: "not found" was never kept.
    let before = i.here.change_counter().await.unwrap();
    i.elsewhere.insert_tenant(&tenant(false)).await.unwrap();
    assert_eq!(i.here.change_counter().await.unwrap(), before);
    assert!(cache.tenant(&TenantId::parse("t_cache").unwrap()).await.unwrap().is_some());
}
