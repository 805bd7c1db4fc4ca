//! The shared store: PostgreSQL, used by any number of Steward instances at once.
//!
//! Migrations run under sqlx's advisory lock, so instances starting together migrate once.
//! A short acquire timeout makes a dead database show up as `Unavailable` within about two seconds
//! instead of hanging requests.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::StoreError;
use crate::sql::{
    AUDIT_INSERT_COLUMNS, AuditRow, impl_catalog_store, impl_governance_store, impl_idempotency_store,
    impl_identity_store, impl_oauth2_store, impl_store, map_migrate, map_sqlx,
};

/// How long a request waits for a connection before the store reports itself unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_CONNECTIONS: u32 = 16;
/// Key of the advisory lock that serializes `initialize_deployment` ("STEWINIT").
const INIT_LOCK_KEY: i64 = 0x5354_4557_494e_4954;
/// Key of the advisory lock that serializes automatic manifest key rotation ("STEWROTK").
const ROTATION_LOCK_KEY: i64 = 0x5354_4557_524f_544b;

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects and applies migrations.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(map_sqlx)?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await.map_err(map_migrate)?;
        Ok(PostgresStore { pool })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs raw SQL (several statements allowed, simple query protocol) on one pooled connection,
    /// bypassing every check of this crate. For the conformance suite's tamper tests only.
    #[doc(hidden)]
    pub async fn raw_sql_unchecked(&self, sql: &str) -> Result<(), StoreError> {
        sqlx::raw_sql(sql).execute(&self.pool).await.map_err(map_sqlx)?;
        Ok(())
    }

    /// Writes a batch of chained audit events in one transaction ([`crate::Store::append_audit_events`]).
    async fn append_audit_rows(&self, events: &[crate::audit::StoredEvent]) -> Result<(), StoreError> {
        // Rows per INSERT: 17 parameters a row keeps one statement under PostgreSQL's 65 535, and it
        // covers a whole batch of the audit writer.
        const MAX_ROWS: usize = 512;
        /// One multi-row INSERT of `rows`. Not kept prepared: its text differs with the row count,
        /// and hundreds of shapes would evict every other statement from the statement cache.
        fn insert(rows: &[crate::audit::StoredEvent]) -> sqlx::QueryBuilder<'_, sqlx::Postgres> {
            let mut insert =
                sqlx::QueryBuilder::new(format!("INSERT INTO audit_events ({AUDIT_INSERT_COLUMNS}) "));
            insert.push_values(rows, |mut bind, stored| {
                let row = AuditRow::of(stored);
                bind.push_bind(row.event_id)
                    .push_bind(row.chain_id)
                    .push_bind(row.seq)
                    .push_bind(row.prev_hash)
                    .push_bind(row.hash)
                    .push_bind(row.writer_id)
                    .push_bind(row.chain_tenant_id)
                    .push_bind(row.tenant_id)
                    .push_bind(row.occurred_at)
                    .push_bind(row.workload_id)
                    .push_bind(row.integration_id)
                    .push_bind(row.event_type)
                    .push_bind(row.decision)
                    .push_bind(row.action_group)
                    .push_bind(row.correlation_id)
                    .push_bind(row.request_id)
                    .push_bind(row.body);
            });
            insert
        }
        // Every statement is a round trip, and under load each costs far more waiting than
        // executing. One statement is atomic on its own, so a batch that fits in one needs no BEGIN
        // and COMMIT around it.
        if events.len() <= MAX_ROWS {
            insert(events).build().persistent(false).execute(&self.pool).await.map_err(map_sqlx)?;
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(map_sqlx)?;
        for chunk in events.chunks(MAX_ROWS) {
            insert(chunk).build().persistent(false).execute(&mut *tx).await.map_err(map_sqlx)?;
        }
        tx.commit().await.map_err(map_sqlx)
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// Serializes concurrent `steward init` runs on one database until the transaction ends.
    async fn lock_deployment(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(INIT_LOCK_KEY)
            .execute(&mut **tx)
            .await
            .map_err(map_sqlx)?;
        Ok(())
    }

    /// Serializes automatic manifest key rotations across instances until the transaction ends.
    async fn lock_key_rotation(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(ROTATION_LOCK_KEY)
            .execute(&mut **tx)
            .await
            .map_err(map_sqlx)?;
        Ok(())
    }
}

impl_store!(PostgresStore, sqlx::Postgres, "postgres");
impl_identity_store!(PostgresStore, sqlx::Postgres);
impl_catalog_store!(PostgresStore, sqlx::Postgres);
impl_governance_store!(PostgresStore, sqlx::Postgres);
impl_idempotency_store!(PostgresStore, sqlx::Postgres);
impl_oauth2_store!(PostgresStore, sqlx::Postgres);
