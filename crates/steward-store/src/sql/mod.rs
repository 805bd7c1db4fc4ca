//! What the SQLite and PostgreSQL stores share: error mapping, row conversions, and one
//! implementation of the [`crate::Store`] methods whose SQL is the same in both dialects (`$N`
//! placeholders work in sqlx-sqlite too). Each backend supplies only its pools and the few statements
//! that differ.

pub(crate) mod catalog;
pub(crate) mod governance;
mod idempotency;
pub(crate) mod identity;
mod oauth2;
mod shared;

pub(crate) use catalog::impl_catalog_store;
pub(crate) use governance::impl_governance_store;
pub(crate) use idempotency::impl_idempotency_store;
pub(crate) use identity::impl_identity_store;
pub(crate) use oauth2::impl_oauth2_store;
pub(crate) use shared::impl_store;

use steward_types::Timestamp;

use crate::StoreError;

/// Maps a driver error: anything that means "the database is not there right now" becomes
/// [`StoreError::Unavailable`] (503 `storage_unavailable`), a uniqueness violation [`StoreError::Conflict`].
pub(crate) fn map_sqlx(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return StoreError::Conflict(db.message().to_owned());
            }
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // PostgreSQL: class 08 (connection exception), 57P01..57P03 (admin/crash shutdown,
            // cannot connect now), 53300 (too many connections). SQLite: 5 (BUSY), 6 (LOCKED), 10 (IOERR).
            let unavailable = code.starts_with("08")
                || code.starts_with("57P")
                || code == "53300"
                || code == "5"
                || code == "6"
                || code.starts_with("10");
            if unavailable {
                StoreError::Unavailable(error.to_string())
            } else {
                StoreError::Database(error.to_string())
            }
        }
        _ => StoreError::Database(error.to_string()),
    }
}

pub(crate) fn map_migrate(error: sqlx::migrate::MigrateError) -> StoreError {
    match error {
        sqlx::migrate::MigrateError::Execute(inner) => match map_sqlx(inner) {
            StoreError::Unavailable(message) => StoreError::Unavailable(message),
            other => StoreError::Migration(other.to_string()),
        },
        other => StoreError::Migration(other.to_string()),
    }
}

pub(crate) fn timestamp(micros: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_unix_micros(micros).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn opt_timestamp(micros: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    micros.map(timestamp).transpose()
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(crate) fn hash32(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes).map_err(|_| corrupt("a stored token hash is not 32 bytes"))
}
