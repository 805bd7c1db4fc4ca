//! The embedded store's audit appender: one rusqlite connection on a thread of its own that writes
//! the audit writer's batches (decision 0025).
//!
//! Through sqlx, a batch was one multi-row INSERT: its text built, parsed and planned again for every
//! batch (the row count differs each time), every bound text copied into an owned value to cross to
//! sqlx's worker thread, and every statement a round trip to that thread. Here the single-row INSERT
//! is prepared once and stepped per event inside one `BEGIN IMMEDIATE … COMMIT`, on a thread that
//! does nothing else, with the batch handed over as one buffer.
//!
//! SQLite allows one writer at a time. The appender holds the store's sqlx writer connection while
//! a batch is written here, so the two writers take turns in the process instead of meeting SQLite's
//! busy handler, whose sleeps would stall both. It keeps that connection across back-to-back batches
//! (`AuditAppender::turn`): sqlx pings a connection on its worker thread every time it returns to the pool,
//! and under load that round trip held up every batch by ~0.4 ms.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use sqlx::SqlitePool;
use sqlx::pool::PoolConnection;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{BUSY_TIMEOUT, SqliteSynchronous, WRITER_AUTOCHECKPOINT_PAGES};
use crate::StoreError;
use crate::audit::StoredEvent;
use crate::sql::{AUDIT_INSERT_COLUMNS, AuditRow, map_sqlx};

/// Longest the appender keeps the writer connection through back-to-back batches before handing it
/// back to the pool, whose queue is fair: another write waits at most this plus one batch.
const MAX_TURN: Duration = Duration::from_millis(10);
/// The writer connection goes back to the pool once no batch followed for this long.
const IDLE_RELEASE: Duration = Duration::from_millis(2);

/// The single-row INSERT the appender keeps prepared.
fn insert_sql() -> String {
    format!(
        "INSERT INTO audit_events ({AUDIT_INSERT_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
    )
}

/// A batch of audit rows with every text column in one buffer, so handing it to the appender's
/// thread moves three allocations rather than a dozen per event (freeing memory allocated on
/// another thread is what the allocator does slowest).
#[derive(Debug)]
pub(super) struct PackedBatch {
    text: String,
    rows: Vec<PackedRow>,
}

/// The text columns of a row, in the order of [`PackedRow::texts`].
const TEXT_COLUMNS: usize = 12;

#[derive(Debug)]
struct PackedRow {
    seq: i64,
    occurred_at: i64,
    event_type: &'static str,
    decision: Option<&'static str>,
    /// event_id, chain_id, prev_hash, hash, writer_id, chain_tenant_id, tenant_id, workload_id,
    /// integration_id, action_group, correlation_id, request_id — ranges of [`PackedBatch::text`],
    /// `None` for NULL. The body's range is `body`.
    texts: [Option<Range<usize>>; TEXT_COLUMNS],
    body: Range<usize>,
}

impl PackedBatch {
    pub(super) fn pack(events: &[StoredEvent]) -> Self {
        let bytes: usize = events.iter().map(|e| e.body().len() + 256).sum();
        let mut batch =
            PackedBatch { text: String::with_capacity(bytes), rows: Vec::with_capacity(events.len()) };
        for stored in events {
            let row = AuditRow::of(stored);
            let columns: [Option<&str>; TEXT_COLUMNS] = [
                Some(row.event_id),
                Some(row.chain_id),
                Some(row.prev_hash),
                Some(row.hash),
                Some(row.writer_id),
                Some(row.chain_tenant_id),
                row.tenant_id,
                row.workload_id,
                row.integration_id,
                row.action_group,
                row.correlation_id,
                row.request_id,
            ];
            let texts = columns.map(|column| column.map(|text| batch.push(text)));
            let body = batch.push(row.body);
            batch.rows.push(PackedRow {
                seq: row.seq,
                occurred_at: row.occurred_at,
                event_type: row.event_type,
                decision: row.decision,
                texts,
                body,
            });
        }
        batch
    }

    fn push(&mut self, text: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push_str(text);
        start..self.text.len()
    }

    fn text(&self, range: &Option<Range<usize>>) -> Option<&str> {
        range.as_ref().map(|r| &self.text[r.clone()])
    }
}

enum Job {
    Append(PackedBatch, oneshot::Sender<Result<(), StoreError>>),
    Close(oneshot::Sender<()>),
}

/// The store's sqlx writer connection, and since when the appender holds it.
type HeldWriter = (PoolConnection<sqlx::Sqlite>, Instant);

/// Handle to the appender thread; the thread ends when this is closed or dropped.
#[derive(Debug)]
pub(super) struct AuditAppender {
    jobs: mpsc::Sender<Job>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// The store's sqlx writer connection while the appender holds it.
    turn: Arc<Mutex<Option<HeldWriter>>>,
    /// Batches written so far: an idle release only hands the connection back when none followed.
    /// Outside the lock, so the release checks that are moot (nearly all, under load) do not queue
    /// for it ahead of the next batch.
    batches: Arc<AtomicU64>,
}

impl AuditAppender {
    /// Opens the appender's connection to the (already migrated) database at `path` and starts its
    /// thread.
    pub(super) fn start(path: &Path, synchronous: SqliteSynchronous) -> Result<Self, StoreError> {
        let connection = open(path, synchronous)?;
        // One batch is in flight at a time (the caller holds the writer connection meanwhile).
        let (jobs, receiver) = mpsc::channel(1);
        let thread = std::thread::Builder::new()
            .name("steward-audit-appender".into())
            .spawn(move || run(connection, receiver))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the audit appender thread: {e}")))?;
        Ok(Self {
            jobs,
            thread: std::sync::Mutex::new(Some(thread)),
            turn: Arc::default(),
            batches: Arc::default(),
        })
    }

    /// Writes `batch` in one transaction, all rows or none, while holding `writer`'s connection.
    pub(super) async fn append(&self, writer: &SqlitePool, batch: PackedBatch) -> Result<(), StoreError> {
        let mut turn = self.turn.lock().await;
        if turn.as_ref().is_some_and(|(_, since)| since.elapsed() >= MAX_TURN) {
            // Other writes may be queued for the connection: back to the pool, then in line again.
            *turn = None;
        }
        if turn.is_none() {
            *turn = Some((writer.acquire().await.map_err(map_sqlx)?, Instant::now()));
        }
        let (done, result) = oneshot::channel();
        self.jobs.send(Job::Append(batch, done)).await.map_err(|_| closed())?;
        let result = result.await.map_err(|_| closed())?;
        let written = self.batches.fetch_add(1, Ordering::SeqCst) + 1;
        drop(turn);
        let (turn, batches) = (Arc::clone(&self.turn), Arc::clone(&self.batches));
        tokio::spawn(async move {
            tokio::time::sleep(IDLE_RELEASE).await;
            if batches.load(Ordering::SeqCst) != written {
                return;
            }
            let mut turn = turn.lock().await;
            // Checked again under the lock: a batch may have started meanwhile.
            if batches.load(Ordering::SeqCst) == written {
                *turn = None;
            }
        });
        result
    }

    /// Hands the writer connection back, then stops the thread once the batch in flight (if any) is
    /// written, and closes its connection.
    pub(super) async fn close(&self) {
        *self.turn.lock().await = None;
        let (done, closed) = oneshot::channel();
        if self.jobs.send(Job::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
        let thread = self.thread.lock().map(|mut t| t.take()).unwrap_or_default();
        if let Some(thread) = thread {
            // The thread has answered `Close`, so this join returns at once.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the embedded store is closed".into())
}

fn open(path: &Path, synchronous: SqliteSynchronous) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(map_rusqlite)?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(map_rusqlite)?;
    let synchronous = match synchronous {
        SqliteSynchronous::Normal => "NORMAL",
        SqliteSynchronous::Full => "FULL",
    };
    connection
        .execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; \
             PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT_PAGES};"
        ))
        .map_err(map_rusqlite)?;
    // Prepared now so a schema this binary does not know fails at open, not at the first event.
    connection.prepare_cached(&insert_sql()).map_err(map_rusqlite)?;
    Ok(connection)
}

fn run(mut connection: Connection, mut jobs: mpsc::Receiver<Job>) {
    let insert = insert_sql();
    while let Some(job) = jobs.blocking_recv() {
        match job {
            Job::Append(batch, done) => {
                let _ = done.send(write(&mut connection, &insert, &batch));
            }
            Job::Close(done) => {
                drop(connection);
                let _ = done.send(());
                return;
            }
        }
    }
}

fn write(connection: &mut Connection, insert: &str, batch: &PackedBatch) -> Result<(), StoreError> {
    // Dropped without commit (an error below), the transaction rolls back: nothing of the batch.
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_rusqlite)?;
    {
        let mut insert = tx.prepare_cached(insert).map_err(map_rusqlite)?;
        for row in &batch.rows {
            let [
                event_id,
                chain_id,
                prev_hash,
                hash,
                writer_id,
                chain_tenant_id,
                tenant_id,
                workload_id,
                integration_id,
                action_group,
                correlation_id,
                request_id,
            ] = &row.texts;
            insert
                .execute(params![
                    batch.text(event_id),
                    batch.text(chain_id),
                    row.seq,
                    batch.text(prev_hash),
                    batch.text(hash),
                    batch.text(writer_id),
                    batch.text(chain_tenant_id),
                    batch.text(tenant_id),
                    row.occurred_at,
                    batch.text(workload_id),
                    batch.text(integration_id),
                    row.event_type,
                    row.decision,
                    batch.text(action_group),
                    batch.text(correlation_id),
                    batch.text(request_id),
                    &batch.text[row.body.clone()],
                ])
                .map_err(map_rusqlite)?;
        }
    }
    tx.commit().map_err(map_rusqlite)
}

/// `map_sqlx`'s classification of SQLite's errors (busy, locked and I/O errors mean the store is not
/// usable right now, a uniqueness violation is a conflict), plus a file that cannot be opened, which
/// is unavailable too.
fn map_rusqlite(error: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match &error {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen => StoreError::Unavailable(error.to_string()),
            ErrorCode::ConstraintViolation
                if matches!(
                    failure.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                StoreError::Conflict(error.to_string())
            }
            _ => StoreError::Database(error.to_string()),
        },
        _ => StoreError::Database(error.to_string()),
    }
}
