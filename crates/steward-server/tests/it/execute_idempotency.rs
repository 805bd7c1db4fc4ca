//! Idempotent execute: replay with `idempotent-replayed` and the current correlation id (nothing
//! forwarded, no rate-limit token), conflict (with a completed or an in-progress request), in
//! progress, the stored post-send error — in embedded mode and in shared mode across two instances
//! (PostgreSQL + Redis).

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::TestServer;
use common::execute::{Exec, Options, upstream_body};
use serde_json::json;
use steward_testkit::Reply;

fn key(k: &str) -> Option<serde_json::Value> {
    Some(json!({"idempotency_key": k, "source": "test"}))
}

fn timeout_env() -> Options {
    Options {
        env: vec![("STEWARD_EGRESS__TOTAL_TIMEOUT_MS".to_owned(), "2500".to_owned())],
        ..Options::default()
    }
}

/// Every idempotency case; `other` is a second instance (or the same one in embedded mode).
async fn scenario(f: &Exec, other: &TestServer) {
    f.allow_reads().await;
    f.policy(
        "rate_limit",
        "items_read",
        "GET",
        json!({"rate_limit": {"max_requests": 2, "interval_seconds": 3600}}),
    )
    .await;

    // An invalid key.
    let response = f.execute(f.get("", &[]), key("has space"), "i-invalid").await;
    assert_eq!((response.status, response.json()["error"].clone()), (400, json!("idempotency_key_invalid")));

    // Completed, then replayed (on the other instance): same answer, current correlation id.
    f.upstream.respond(201, &[("content-type", "application/json")], br#"{"id":7}"#);
    let first = f.execute(f.get("?q=1", &[]), key("key-1"), "i-first").await;
    assert_eq!(first.status, 200, "{}", first.json());
    assert!(first.headers.get("idempotent-replayed").is_none());
    let replay = f.execute_on(other, f.get("?q=1", &[]), key("key-1"), "i-replay").await;
    assert_eq!(replay.status, 200, "{}", replay.json());
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.headers["x-correlation-id"], "i-replay");
    assert_eq!(replay.json()["correlation_id"], "i-replay");
    assert_eq!(replay.json()["upstream"], first.json()["upstream"]);
    assert_eq!(upstream_body(&replay), r#"{"id":7}"#);
    assert_eq!(f.upstream.count(), 1);
    let events = f.events("i-replay").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0]["event_type"].clone(), events[0]["decision"].clone()),
        (json!("execute"), json!("allowed"))
    );
    assert_eq!(events[0]["metadata"]["replayed"], true);
    assert_eq!(events[0]["metadata"]["original_correlation_id"], "i-first");

    // A different request under the same key: conflict, before anything else.
    let conflict = f.execute(f.get("?q=2", &[]), key("key-1"), "i-conflict").await;
    assert_eq!((conflict.status, conflict.json()["error"].clone()), (409, json!("idempotency_key_conflict")));

    // The replay took no rate-limit token: one of the two is left.
    let response = f.execute(f.get("?q=3", &[]), None, "i-token").await;
    assert_eq!(response.status, 200, "{}", response.json());
    assert_eq!(f.upstream.count(), 2);
}

/// In progress on one instance → 409 on the other: `idempotency_key_conflict` for a different
/// request under the key (conflict is checked first), `idempotency_request_in_progress` for the
/// same one; the post-send timeout is stored and replayed.
async fn in_progress(f: &Exec, other: &TestServer) {
    f.allow_reads().await;
    f.upstream.set(Reply::Hang);
    let slow = f.execute(f.get("", &[]), key("key-slow"), "p-slow");
    let others = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let different = f.execute_on(other, f.get("?q=other", &[]), key("key-slow"), "p-different").await;
        let same = f.execute_on(other, f.get("", &[]), key("key-slow"), "p-second").await;
        (different, same)
    };
    let (slow, (different, second)) = tokio::join!(slow, others);
    assert_eq!((slow.status, slow.json()["error"].clone()), (504, json!("upstream_timeout")));
    assert_eq!(
        (different.status, different.json()["error"].clone()),
        (409, json!("idempotency_key_conflict")),
        "{}",
        different.json()
    );
    assert_eq!(
        (second.status, second.json()["error"].clone()),
        (409, json!("idempotency_request_in_progress")),
        "{}",
        second.json()
    );
    assert_eq!(f.upstream.count(), 1);
    // The error after send is stored and replayed.
    f.upstream.respond(200, &[], b"");
    let replay = f.execute_on(other, f.get("", &[]), key("key-slow"), "p-replay").await;
    assert_eq!((replay.status, replay.json()["error"].clone()), (504, json!("upstream_timeout")));
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.json()["correlation_id"], "p-replay");
    assert_eq!(f.upstream.count(), 1);
    // A refusal before sending leaves no record: the same key works once allowed.
    let refused = f.execute(f.post(&json!({"name": "n"})), key("key-early"), "p-early").await;
    assert_eq!(refused.status, 202, "{}", refused.json());
}

/// An upstream header value in a refused answer is never echoed: not in the 502, not in the stored
/// error replayed under the idempotency key, not in the audit events.
#[tokio::test]
async fn refused_encodings_keep_upstream_header_values_out_of_errors_and_replays() {
    const MARKER: &str = "x-marker-5be2d0";
    let dir = tempfile::tempdir().unwrap();
    let f = Exec::embedded(dir.path(), Options::default()).await;
    f.allow_reads().await;
    f.upstream.respond(200, &[("content-type", "application/json"), ("content-encoding", MARKER)], b"{}");
    let first = f.execute(f.get("", &[]), key("key-encoding"), "e-first").await;
    assert_eq!(
        (first.status, first.json()["error"].clone()),
        (502, json!("upstream_encoding_not_supported"))
    );
    let message = first.json()["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("content-encoding"), "{message}");
    assert!(!first.json().to_string().contains(MARKER), "{}", first.json());
    let replay = f.execute(f.get("", &[]), key("key-encoding"), "e-replay").await;
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(
        (replay.status, replay.json()["error"].clone()),
        (502, json!("upstream_encoding_not_supported"))
    );
    assert!(!replay.json().to_string().contains(MARKER), "{}", replay.json());
    assert_eq!(f.upstream.count(), 1);
    for correlation in ["e-first", "e-replay"] {
        for event in f.events(correlation).await {
            assert!(!event.to_string().contains(MARKER), "{event}");
        }
    }
    f.server.stop().await;
}

#[tokio::test]
async fn embedded_replay_conflict_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let f = Exec::embedded(dir.path(), Options::default()).await;
    scenario(&f, &f.server).await;
    f.server.stop().await;
}

#[tokio::test]
async fn embedded_in_progress_and_stored_errors() {
    let dir = tempfile::tempdir().unwrap();
    let f = Exec::embedded(dir.path(), timeout_env()).await;
    in_progress(&f, &f.server).await;
    f.server.stop().await;
}

#[tokio::test]
async fn shared_replay_conflict_and_tokens_across_instances() {
    let database = steward_testkit::TestDatabase::create().await.unwrap();
    let temp = tempfile::tempdir().unwrap();
    let (f, second) = Exec::shared(temp.path(), &database.url, Options::default()).await;
    scenario(&f, &second).await;
    second.stop().await;
    f.server.stop().await;
}

#[tokio::test]
async fn shared_in_progress_and_stored_errors_across_instances() {
    let database = steward_testkit::TestDatabase::create().await.unwrap();
    let temp = tempfile::tempdir().unwrap();
    let (f, second) = Exec::shared(temp.path(), &database.url, timeout_env()).await;
    in_progress(&f, &second).await;
    second.stop().await;
    f.server.stop().await;
}
