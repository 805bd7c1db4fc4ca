//! Migration 0009 (audit storage, decision 0022) on a database that already holds audit events, on
//! SQLite and PostgreSQL: the events keep their chains (verification still passes), searches by
//! every filter find them, and new events append on top.

use std::borrow::Cow;
use std::path::Path;

use crate::harness::{AUDIT_KEY, TestSigner, at, t0, writer};
use steward_store::audit::{
    Actor, AuditEvent, ChainLink, Decision, EventType, GENESIS_HASH, StoredEvent, chain_id_for, compute_hash,
    verify_tenant,
};
use steward_store::governance::{AuditFilter, AuditOrder};
use steward_store::{PostgresStore, SqliteStore, SqliteSynchronous, Store};

/// Applies the migrations of `dir` older than 0009, as a database last migrated before it.
async fn migrate_before_0009<'c, A>(dir: &str, connection: A) -> anyhow::Result<()>
where
    A: sqlx::Acquire<'c>,
    <A::Connection as std::ops::Deref>::Target: sqlx::migrate::Migrate,
{
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dir);
    let mut migrator = sqlx::migrate::Migrator::new(path).await?;
    migrator.migrations = Cow::Owned(migrator.migrations.iter().filter(|m| m.version < 9).cloned().collect());
    migrator.run(connection).await?;
    Ok(())
}

/// `count` events of `tenant` chained by writer `wr_old` as an older Steward stored them.
fn old_chain(tenant: &str, count: i64) -> anyhow::Result<Vec<StoredEvent>> {
    let mut prev = GENESIS_HASH.to_owned();
    let mut out = Vec::new();
    for seq in 1..=count {
        let group = if seq % 2 == 0 { "openai_responses" } else { "github_issues_read" };
        let mut event =
            AuditEvent::new(EventType::Execute, Actor::workload("w_old"), at(t0().unix_micros() + seq))
                .with_tenant(tenant)
                .with_request_id(format!("req-{seq}"))
                .with_correlation_id(format!("corr-{tenant}-{seq}"))
                .with_workload("w_old")
                .with_integration("i_old")
                .with_decision(Decision::Allowed)
                .with_action_group(group);
        event.chain = Some(ChainLink {
            chain_id: chain_id_for(tenant, "wr_old"),
            seq,
            prev_hash: prev.clone(),
            hash: String::new(),
        });
        let hash = compute_hash(&AUDIT_KEY, &event)?;
        if let Some(chain) = event.chain.as_mut() {
            chain.hash.clone_from(&hash);
        }
        prev = hash;
        out.push(StoredEvent::new(event, "wr_old".to_owned())?);
    }
    Ok(out)
}

/// The INSERT of the schema before 0009 (the columns every version has).
fn insert_sql(stored: &StoredEvent) -> String {
    let e = stored.event();
    let c = stored.chain();
    let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
    format!(
        "INSERT INTO audit_events (event_id, chain_id, seq, prev_hash, hash, writer_id, chain_tenant_id, tenant_id, \
         occurred_at, workload_id, integration_id, event_type, decision, action_group, correlation_id, request_id, body) \
         VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});",
        q(e.event_id.as_str()),
        q(&c.chain_id),
        c.seq,
        q(&c.prev_hash),
        q(&c.hash),
        q(stored.writer_id()),
        q(e.chain_tenant()),
        q(e.tenant_id.as_deref().unwrap_or_default()),
        e.timestamp.unix_micros(),
        q(e.workload_id.as_deref().unwrap_or_default()),
        q(e.integration_id.as_deref().unwrap_or_default()),
        q(e.event_type.as_str()),
        q(e.decision.map(|d| d.as_str()).unwrap_or_default()),
        q(e.action_group.as_deref().unwrap_or_default()),
        q(e.correlation_id.as_deref().unwrap_or_default()),
        q(e.request_id.as_deref().unwrap_or_default()),
        q(stored.body()),
    )
}

fn fixture() -> anyhow::Result<String> {
    let mut sql = String::new();
    for stored in old_chain("t_one", 25)?.iter().chain(old_chain("t_two", 4)?.iter()) {
        sql.push_str(&insert_sql(stored));
        sql.push('\n');
    }
    Ok(sql)
}

async fn check(store: std::sync::Arc<dyn Store>) -> anyhow::Result<()> {
    let report = verify_tenant(store.as_ref(), &AUDIT_KEY, "t_one").await?;
    assert!(report.ok, "{report:?}");
    assert_eq!((report.chains_checked, report.events_checked), (1, 25));
    let report = verify_tenant(store.as_ref(), &AUDIT_KEY, "t_two").await?;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.events_checked, 4);

    // Every filter still finds the migrated events, newest first.
    let by_group = AuditFilter { action_group: Some("openai_responses".into()), ..AuditFilter::default() };
    let page = store.search_audit_events(&by_group, None, AuditOrder::NewestFirst, 100).await?;
    assert_eq!(page.len(), 12 + 2);
    assert!(page.windows(2).all(|w| w[0].timestamp >= w[1].timestamp));
    let by_tenant = AuditFilter { tenant_id: Some("t_one".into()), ..AuditFilter::default() };
    assert_eq!(store.search_audit_events(&by_tenant, None, AuditOrder::NewestFirst, 100).await?.len(), 25);
    let by_correlation =
        AuditFilter { correlation_id: Some("corr-t_one-7".into()), ..AuditFilter::default() };
    let found = store.search_audit_events(&by_correlation, None, AuditOrder::NewestFirst, 100).await?;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].request_id.as_deref(), Some("req-7"));

    // A new writer appends its own chain on top; both chains verify.
    let w = writer(store.clone(), TestSigner::new(), std::time::Duration::from_secs(3600));
    for n in 0..3 {
        w.append(
            AuditEvent::new(EventType::Execute, Actor::workload("w_old"), at(t0().unix_micros() + 100 + n))
                .with_tenant("t_one"),
        )
        .await?;
    }
    w.shutdown().await?;
    let report = verify_tenant(store.as_ref(), &AUDIT_KEY, "t_one").await?;
    assert!(report.ok, "{report:?}");
    assert_eq!((report.chains_checked, report.events_checked), (2, 28));

    // (tenant, chain, seq) stays unique: an event cannot take a place that is already taken.
    assert!(store.append_audit_events(&old_chain("t_one", 1)?).await.is_err(), "seq 1 of wr_old exists");
    Ok(())
}

#[tokio::test]
async fn sqlite_migration_0009_keeps_existing_audit_chains_verifiable() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("steward.db");
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await?;
        migrate_before_0009("sqlite", &pool).await?;
        sqlx::raw_sql(&fixture()?).execute(&pool).await?;
        pool.close().await;
    }
    let store = std::sync::Arc::new(SqliteStore::open(&path, SqliteSynchronous::Normal).await?);
    check(store.clone()).await?;
    store.close().await;
    Ok(())
}

#[tokio::test]
async fn postgres_migration_0009_keeps_existing_audit_chains_verifiable() -> anyhow::Result<()> {
    let database = steward_testkit::TestDatabase::create().await?;
    {
        let pool = sqlx::PgPool::connect(&database.url).await?;
        migrate_before_0009("postgres", &pool).await?;
        sqlx::raw_sql(&fixture()?).execute(&pool).await?;
        pool.close().await;
    }
    let store = std::sync::Arc::new(PostgresStore::connect(&database.url).await?);
    check(store.clone()).await?;
    store.close().await;
    Ok(())
}
