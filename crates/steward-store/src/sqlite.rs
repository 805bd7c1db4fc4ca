//! The embedded store: one SQLite file in WAL mode, one writer connection and a pool of readers.
//!
//! SQLite allows one writer at a time; giving it exactly one connection turns writer contention into
//! queueing in the pool instead of `SQLITE_BUSY` errors, while readers proceed concurrently (WAL).
//! A lock file next to the database keeps a second Steward process off the same file.
//!
//! WAL checkpoints (copying committed pages from the WAL into the database file) run on a connection
//! of their own every [`CHECKPOINT_EVERY`], not on the writer: a checkpoint inside a commit would
//! hold every queued write (the audit writer's group commits first) for its whole duration.
//!
//! Audit batches are written by [`audit_appender`], on a rusqlite connection of its own, while the
//! sqlx writer connection is held: the process still has one writer at a time.

mod audit_appender;

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use self::audit_appender::{AuditAppender, PackedBatch};
use crate::StoreError;
use crate::sql::{
    impl_catalog_store, impl_governance_store, impl_idempotency_store, impl_identity_store,
    impl_oauth2_store, impl_store, map_migrate, map_sqlx,
};

/// How long a statement waits for a lock held by another connection before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Concurrent readers; reads are short, so a handful covers many requests.
const READERS: u32 = 8;
/// How often the checkpointer copies the WAL into the database file (PASSIVE: it never waits for,
/// nor blocks, the writer or the readers). Short on purpose: after each completed checkpoint the
/// writer restarts the WAL and must fsync its new header, and that fsync stalls every queued commit
/// for as long as the dirty data takes to reach the disk — small and often beats large and rare
/// (measured in `docs/performance.md`: of 5 s, 500 ms, 100 ms and 20 ms, 20 ms gave the best tail
/// at 500 requests/s and the best throughput).
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(20);
/// WAL pages after which the writer checkpoints by itself (SQLite's automatic checkpoint): only a
/// backstop should the checkpointer fall behind; 16 384 pages of 4 KiB is 64 MiB of WAL.
const WRITER_AUTOCHECKPOINT_PAGES: &str = "16384";

/// `storage.sqlite_synchronous`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteSynchronous {
    /// Durable against a crash of the process (WAL), not against power loss.
    #[default]
    Normal,
    /// Durable against power loss too: fsync on every commit.
    Full,
}

#[derive(Debug)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    checkpointer: Checkpointer,
    audit_appender: AuditAppender,
    path: PathBuf,
    /// Held (locked) for the store's lifetime; the OS releases it when the process dies.
    _lock: File,
}

impl SqliteStore {
    /// Takes the data directory's lock, opens (creating if needed) the database at `path` and applies
    /// migrations. Another live store on the same file, in this process or another, gives
    /// [`StoreError::Locked`] naming the directory.
    pub async fn open(path: &Path, synchronous: SqliteSynchronous) -> Result<SqliteStore, StoreError> {
        let lock = take_lock(path).await?;
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(map_sqlx)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match synchronous {
                SqliteSynchronous::Normal => sqlx::sqlite::SqliteSynchronous::Normal,
                SqliteSynchronous::Full => sqlx::sqlite::SqliteSynchronous::Full,
            })
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // No pool pings a connection before lending it (`test_before_acquire`): a local file does
        // not hang up, and each ping is a round trip to the connection's worker thread.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone().pragma("wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES))
            .await
            .map_err(map_sqlx)?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await.map_err(map_migrate)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone().read_only(true).create_if_missing(false))
            .await
            .map_err(map_sqlx)?;
        let checkpointer = Checkpointer::start(options).await?;
        let audit_appender = AuditAppender::start(path, synchronous)?;
        Ok(SqliteStore { writer, reader, checkpointer, audit_appender, path: path.to_owned(), _lock: lock })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes both pools (waiting for checked-out connections), so the WAL is checkpointed now.
    pub async fn close(&self) {
        self.checkpointer.task.abort();
        self.checkpointer.pool.close().await;
        self.audit_appender.close().await;
        self.reader.close().await;
        self.writer.close().await;
    }

    /// Runs raw SQL (several statements allowed) on the writer connection, bypassing every check of
    /// this crate. For the conformance suite's tamper tests only; never call it from the server.
    #[doc(hidden)]
    pub async fn raw_sql_unchecked(&self, sql: &str) -> Result<(), StoreError> {
        sqlx::raw_sql(sql).execute(&self.writer).await.map_err(map_sqlx)?;
        Ok(())
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// Writes a batch of chained audit events in one transaction ([`crate::Store::append_audit_events`])
    /// on the audit appender's connection. The appender holds the sqlx writer connection meanwhile,
    /// so no other write of this store meets the batch's transaction.
    async fn append_audit_rows(&self, events: &[crate::audit::StoredEvent]) -> Result<(), StoreError> {
        // Packed before taking the writer, which other writes may be waiting for.
        let batch = PackedBatch::pack(events);
        self.audit_appender.append(&self.writer, batch).await
    }

    /// Nothing to do: the single writer connection already serializes every write transaction, and
    /// the lock file keeps other processes out.
    async fn lock_deployment(_tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>) -> Result<(), StoreError> {
        Ok(())
    }

    /// Nothing to do, for the same reason: one writer connection, one process.
    async fn lock_key_rotation(_tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>) -> Result<(), StoreError> {
        Ok(())
    }
}

impl_store!(SqliteStore, sqlx::Sqlite, "sqlite");

/// The task that checkpoints the WAL every [`CHECKPOINT_EVERY`] on its own connection; stopped when
/// the store is closed or dropped.
#[derive(Debug)]
struct Checkpointer {
    pool: SqlitePool,
    task: tokio::task::JoinHandle<()>,
}

impl Checkpointer {
    async fn start(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.create_if_missing(false))
            .await
            .map_err(map_sqlx)?;
        let task = tokio::spawn(checkpoint_regularly(pool.clone()));
        Ok(Self { pool, task })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn checkpoint_regularly(pool: SqlitePool) {
    let mut ticker = tokio::time::interval(CHECKPOINT_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            // The writer's own automatic checkpoint still bounds the WAL.
            tracing::warn!(%error, "WAL checkpoint failed; retrying.");
        }
    }
}

/// Locks `<db>.lock` exclusively. The lock belongs to the open file description, so a second open in
/// the same process conflicts too.
/// How long `open` keeps trying a held lock before reporting it. The lock is released when its file
/// is closed, but a process that forks a child keeps the descriptor (and so the lock) alive in the
/// child until that child's `exec` closes it — a brief window in which a store just dropped still
/// looks locked. A second Steward holds the lock for good and is reported after this grace.
const LOCK_GRACE: Duration = Duration::from_millis(1500);

async fn take_lock(path: &Path) -> Result<File, StoreError> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut lock_name = path.as_os_str().to_owned();
    lock_name.push(".lock");
    let file = File::options().create(true).truncate(false).write(true).open(&lock_name).map_err(|e| {
        StoreError::Unavailable(format!("cannot open lock file {}: {e}", Path::new(&lock_name).display()))
    })?;
    let deadline = tokio::time::Instant::now() + LOCK_GRACE;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(TryLockError::WouldBlock) => return Err(StoreError::Locked(dir.display().to_string())),
            Err(TryLockError::Error(e)) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot lock {}: {e}",
                    Path::new(&lock_name).display()
                )));
            }
        }
    }
}

impl_identity_store!(SqliteStore, sqlx::Sqlite);
impl_catalog_store!(SqliteStore, sqlx::Sqlite);
impl_governance_store!(SqliteStore, sqlx::Sqlite);
impl_idempotency_store!(SqliteStore, sqlx::Sqlite);
impl_oauth2_store!(SqliteStore, sqlx::Sqlite);
