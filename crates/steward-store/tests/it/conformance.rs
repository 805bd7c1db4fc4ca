//! The core of the storage conformance suite (basics, audit): one set of tests, run against the
//! SQLite store (temporary directory) and the PostgreSQL store (a fresh database on the test server). Backend-specific
//! behaviour (the SQLite lock file, PostgreSQL concurrency and reachability) is tested at the end.

use std::time::{Duration, Instant};

use steward_store::{InitOutcome, PostgresStore, SqliteStore, SqliteSynchronous, Store, StoreError};
use steward_testkit::TestDatabase;

use crate::harness;

backend_suite!(
    basics::initialize_deployment_once,
    basics::concurrent_initializations_create_one,
    basics::envelopes_count_list_and_compare_and_set,
    basics::admin_tokens_insert_and_lookup,
    audit::audit_round_trip_in_seq_order,
    audit::audit_rows_refuse_update_and_delete,
    audit::writer_group_commits_concurrent_appends,
    audit::failed_batch_leaves_no_gap,
    audit::verify_detects_edited_event,
    audit::verify_checks_legacy_and_canonical_bodies_alike,
    audit::verify_walks_long_chains_and_finds_gaps_in_any_page,
    audit::verify_detects_removed_event,
    audit::verify_detects_inserted_event,
    audit::verify_detects_cut_off_tail,
    audit::verify_rejects_chain_forged_with_another_key,
    audit::checkpoints_are_written_signed_and_listed,
    audit::large_batches_are_written_whole_or_not_at_all,
    audit::failed_batches_among_concurrent_appends_leave_no_gap,
);

#[tokio::test]
async fn sqlite_second_open_is_locked_and_reopen_migrates_idempotently() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("steward.db");
    let first = SqliteStore::open(&path, SqliteSynchronous::Full).await?;
    first.initialize_deployment(harness::new_deployment("lock")).await?;
    match SqliteStore::open(&path, SqliteSynchronous::Normal).await {
        Err(StoreError::Locked(named)) => assert_eq!(named, dir.path().display().to_string()),
        other => panic!("expected Locked, got {other:?}"),
    }
    // A second process is refused too (the lock is an OS file lock, not process state).
    let status = std::process::Command::new("flock")
        .args(["--nonblock", "--exclusive"])
        .arg(format!("{}.lock", path.display()))
        .arg("true")
        .status();
    if let Ok(status) = status {
        assert!(!status.success(), "another process must not get the lock");
    }
    first.close().await;
    drop(first);
    // Re-opening runs the migrator again: nothing to do, data intact.
    let again = SqliteStore::open(&path, SqliteSynchronous::Normal).await?;
    assert!(again.deployment().await?.is_some());
    assert_eq!(again.backend(), "sqlite");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_connects_migrate_once() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let url = db.url.clone();
        tasks.spawn(async move { PostgresStore::connect(&url).await });
    }
    let mut stores = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        stores.push(joined??);
    }
    let again = PostgresStore::connect(&db.url).await?;
    assert_eq!(again.backend(), "postgres");
    assert_eq!(again.initialize_deployment(harness::new_deployment("pg")).await?, InitOutcome::Created);
    // Separate pools (as separate instances would have) racing to initialize: one CA.
    let mut inits = tokio::task::JoinSet::new();
    for (i, store) in stores.into_iter().enumerate() {
        inits.spawn(
            async move { store.initialize_deployment(harness::new_deployment(&format!("pg{i}"))).await },
        );
    }
    while let Some(joined) = inits.join_next().await {
        assert_eq!(joined??, InitOutcome::AlreadyInitialized);
    }
    again.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_separate_instances_race_to_one_ca() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let mut stores = Vec::new();
    for _ in 0..5 {
        stores.push(PostgresStore::connect(&db.url).await?);
    }
    let mut inits = tokio::task::JoinSet::new();
    for (i, store) in stores.iter().cloned().enumerate() {
        inits.spawn(
            async move { store.initialize_deployment(harness::new_deployment(&format!("r{i}"))).await },
        );
    }
    let mut created = 0;
    while let Some(joined) = inits.join_next().await {
        if joined?? == InitOutcome::Created {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    assert_eq!(stores[0].envelope_counts_by_kek().await?.get("k1"), Some(&3));
    Ok(())
}

#[tokio::test]
async fn postgres_unreachable_is_unavailable_quickly() {
    let started = Instant::now();
    let result = PostgresStore::connect("postgres://postgres@127.0.0.1:1/x").await;
    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn sqlite_checkpoints_the_wal_off_the_writer() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("steward.db");
    let store = SqliteStore::open(&path, SqliteSynchronous::Normal).await?;
    let before = std::fs::metadata(&path)?.len();
    // ~2 MiB of committed pages: far below the writer's own automatic checkpoint (64 MiB), so only
    // the checkpointer can move them from the WAL into the database file.
    store
        .raw_sql_unchecked(
            "CREATE TABLE filler (x BLOB); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
             INSERT INTO filler SELECT randomblob(1000) FROM n;",
        )
        .await?;
    // Many checkpoint intervals, with room for a loaded machine.
    let deadline = Instant::now() + (steward_store::SQLITE_CHECKPOINT_EVERY * 50).max(Duration::from_secs(5));
    loop {
        let now = std::fs::metadata(&path)?.len();
        if now >= before + 2_000_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the WAL was not checkpointed: database file {before} → {now} bytes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.close().await;
    Ok(())
}
