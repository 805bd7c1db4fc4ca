//! The shared store: PostgreSQL, used by any number of Steward instances at once.
//!
//! Migrations run under sqlx's advisory lock, so instances starting together migrate once.
//! A short acquire timeout makes a dead database show up as `Unavailable` within about two seconds
//! instead of hanging requests.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::StoreError;
use crate::sql::{
    impl_catalog_store, impl_governance_store, impl_idempotency_store, impl_identity_store,
    impl_oauth2_store, impl_store, map_migrate, map_sqlx,
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
