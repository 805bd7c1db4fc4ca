//! The one error type of the storage layer.

/// What went wrong in the store. The HTTP edge maps `Unavailable` to 503 `storage_unavailable`;
/// `Conflict` and `NotFound` are answered by the caller with the resource's own code.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or did not answer (connection refused, pool timeout, I/O).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness constraint refused the write (e.g. a name already taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Another process holds the embedded store's lock.
    #[error("the data directory {0} is in use by another steward process")]
    Locked(String),
    /// Migrations failed or the schema is newer than this binary.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A row did not decode into its record type: a bug or a tampered database.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Anything else the driver reported.
    #[error("database error: {0}")]
    Database(String),
}
