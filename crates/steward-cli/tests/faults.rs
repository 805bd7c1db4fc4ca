//! Failures of what shared mode depends on, each test with its own PostgreSQL cluster and its own
//! `redis-server` (so stopping them disturbs no other test): Redis down, PostgreSQL down, SIGTERM
//! under load, and several instances starting at once.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod cluster;
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cluster::{Cluster, Workload, code, proof};
use common::install_crypto_provider;
use http::Method;
use sqlx::Connection;
use steward_crypto::DpopKey;
use steward_testkit::http_client::{request, tls_stream};
use steward_testkit::{PrivatePostgres, PrivateRedis};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A private PostgreSQL and Redis, and a deployment of `count` nodes on them (not started).
async fn private_cluster(count: usize) -> (PrivatePostgres, PrivateRedis, Cluster) {
    install_crypto_provider();
    let (postgres, redis) = tokio::join!(PrivatePostgres::start(), PrivateRedis::start());
    let (postgres, redis) = (postgres.unwrap(), redis.unwrap());
    let url = postgres.create_database("steward").await.unwrap();
    let cluster = Cluster::init(&url, &redis.url(), count);
    (postgres, redis, cluster)
}

/// A tenant with an integration and a workload.
async fn workload(cluster: &Cluster) -> Workload {
    let tenant = cluster.tenant(0).await;
    cluster.integration(0, &tenant).await;
    cluster.workload(0, 0, &tenant).await
}

async fn readyz(cluster: &Cluster) -> (u16, serde_json::Value) {
    let response =
        request(cluster.nodes[0].ports.admin_addr(), None, Method::GET, "/readyz", &[], "").await.unwrap();
    (response.status, response.json())
}

/// Polls `check` until it holds (fails after `within`); returns how long it took.
async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn redis_down_fails_only_dpop_closed_and_service_recovers_without_restart() {
    let (_postgres, mut redis, mut cluster) = private_cluster(1).await;
    cluster.start(0).await;
    let workload = workload(&cluster).await;
    let key = DpopKey::generate_es256().unwrap();
    let bound = cluster.session(0, &workload, Some(&proof(&key, "POST", "/v1/session", None))).await.unwrap();
    assert_eq!(bound.status, 200, "{}", bound.json());

    redis.stop();
    // Requests that need Redis (a DPoP jti check) fail closed…
    let refused =
        cluster.session(0, &workload, Some(&proof(&key, "POST", "/v1/session", None))).await.unwrap();
    assert_eq!(code(&refused), (503, "coordination_unavailable".into()), "{}", refused.json());
    // …everything else is served: sessions without DPoP, manifests, admin reads.
    let token = cluster.session_token(0, &workload).await;
    let manifest = cluster.manifest(0, &workload, &token).await.unwrap();
    assert_eq!(manifest.status, 200, "{}", manifest.json());
    let (status, tenants) = cluster.admin(0, Method::GET, "/v1/tenants", None).await;
    assert_eq!(status, 200, "{tenants}");
    let (status, ready) = readyz(&cluster).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["checks"], serde_json::json!({"store": "ok", "redis": "error"}));

    // Redis returns (empty): service recovers by itself.
    redis.start_again().await.unwrap();
    eventually("DPoP sessions again", Duration::from_secs(15), || {
        let (cluster, workload, key) = (&cluster, &workload, &key);
        async move {
            let response =
                cluster.session(0, workload, Some(&proof(key, "POST", "/v1/session", None))).await.unwrap();
            response.status == 200
        }
    })
    .await;
    let (status, ready) = readyz(&cluster).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(cluster.nodes[0].terminate().await.code(), Some(0));
}

#[tokio::test]
async fn postgres_down_answers_storage_unavailable_and_service_recovers_without_restart() {
    let (mut postgres, _redis, mut cluster) = private_cluster(1).await;
    cluster.start(0).await;
    let workload = workload(&cluster).await;
    let token = cluster.session_token(0, &workload).await;

    postgres.stop().unwrap();
    let started = Instant::now();
    let session = cluster.session(0, &workload, None).await.unwrap();
    assert_eq!(code(&session), (503, "storage_unavailable".into()), "{}", session.json());
    let manifest = cluster.manifest(0, &workload, &token).await.unwrap();
    assert_eq!(code(&manifest), (503, "storage_unavailable".into()), "{}", manifest.json());
    let admin = cluster.try_admin(0, Method::GET, "/v1/tenants", None).await.unwrap();
    assert_eq!(code(&admin), (503, "storage_unavailable".into()), "{}", admin.json());
    assert!(started.elapsed() < Duration::from_secs(15), "failures are quick: {:?}", started.elapsed());
    let (status, ready) = readyz(&cluster).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["checks"]["store"], "error", "{ready}");
    // The process keeps running and healthy (only not ready).
    let health =
        request(cluster.nodes[0].ports.admin_addr(), None, Method::GET, "/healthz", &[], "").await.unwrap();
    assert_eq!(health.status, 200);

    postgres.start_again().await.unwrap();
    eventually("sessions again", Duration::from_secs(15), || {
        let (cluster, workload) = (&cluster, &workload);
        async move { cluster.session(0, workload, None).await.unwrap().status == 200 }
    })
    .await;
    // The session issued before the outage survived it.
    let manifest = cluster.manifest(0, &workload, &token).await.unwrap();
    assert_eq!(manifest.status, 200, "{}", manifest.json());
    let (status, ready) = readyz(&cluster).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(cluster.nodes[0].terminate().await.code(), Some(0));
}

async fn checkpoint_count(url: &str) -> i64 {
    let mut conn = sqlx::postgres::PgConnection::connect(url).await.unwrap();
    let (count,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM audit_checkpoints").fetch_one(&mut conn).await.unwrap();
    conn.close().await.ok();
    count
}

#[tokio::test]
async fn sigterm_under_load_finishes_in_flight_requests_refuses_new_ones_and_writes_a_final_checkpoint() {
    let (_postgres, _redis, mut cluster) = private_cluster(1).await;
    cluster.start(0).await;
    let workload = workload(&cluster).await;
    let cluster = Arc::new(cluster);

    // Load: sessions in a loop on fresh connections. Every answer must be a 200; once the listener
    // closed, connections are refused (an error), never a 5xx.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (cluster, workload, stop) = (Arc::clone(&cluster), workload.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let (mut ok, mut refused, mut bad) = (0usize, 0usize, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                match cluster.session(0, &workload, None).await {
                    Ok(response) if response.status == 200 => ok += 1,
                    Ok(response) => bad.push(format!("{} {}", response.status, response.json())),
                    Err(_) => {
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (ok, refused, bad)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = checkpoint_count(&cluster.postgres_url).await;

    // One request in flight: headers sent, body not yet.
    let tls = cluster.tls(Some(&workload));
    let mut in_flight = tls_stream(cluster.nodes[0].ports.data_addr(), &tls).await.unwrap();
    in_flight
        .write_all(b"POST /v1/session HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n")
        .await
        .unwrap();
    in_flight.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // SIGTERM while the load runs and the request is in flight.
    let node = &cluster.nodes[0];
    node.signal("TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // New connections are refused once the listener closed (the process is still draining).
    let refused = cluster.session(0, &workload, None).await;
    assert!(refused.is_err(), "a new connection after SIGTERM: {refused:?}");
    // The in-flight request finishes.
    in_flight.write_all(b"{}").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), in_flight.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "the in-flight request: {answer}");
    assert!(answer.contains("session_token"), "{answer}");

    let status = node.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "{}", node.log());
    stop.store(true, Ordering::SeqCst);
    let (ok, refused, bad) = load.await.unwrap();
    assert!(bad.is_empty(), "answers other than 200 during the stop: {bad:?}");
    assert!(ok > 0 && refused > 0, "ok {ok}, refused {refused}");
    let log = node.log();
    assert!(log.contains("\"event\":\"stopped\""), "{log}");
    assert!(checkpoint_count(&cluster.postgres_url).await > before, "a final checkpoint was written");
}

#[tokio::test]
async fn instances_starting_at_once_on_an_initialized_database_all_become_healthy() {
    let (_postgres, _redis, mut cluster) = private_cluster(3).await;
    for i in 0..3 {
        cluster.spawn(i);
    }
    for i in 0..3 {
        cluster.wait_healthy(i).await;
    }
    let tenant = cluster.tenant(1).await;
    let workload = cluster.workload(2, 0, &tenant).await;
    for i in 0..3 {
        let (status, ready) = {
            let response =
                request(cluster.nodes[i].ports.admin_addr(), None, Method::GET, "/readyz", &[], "")
                    .await
                    .unwrap();
            (response.status, response.json())
        };
        assert_eq!(status, 200, "node {i}: {ready}");
        let session = cluster.session(i, &workload, None).await.unwrap();
        assert_eq!(session.status, 200, "node {i}: {}", session.json());
    }
    for node in &cluster.nodes {
        assert_eq!(node.terminate().await.code(), Some(0));
    }
}
