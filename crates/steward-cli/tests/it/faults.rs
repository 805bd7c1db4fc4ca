//! Failures of what shared mode depends on, each test with its own PostgreSQL cluster and its own
//! `redis-server` (so stopping them disturbs no other test): Redis down (also under execute load),
//! PostgreSQL down, `kill -9` and SIGTERM under load, and several instances starting at once.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use crate::cluster;
use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cluster::execute::Exec;
use cluster::{Cluster, Workload, code, proof};
use common::install_crypto_provider;
use http::Method;
use serde_json::json;
use sqlx::Connection;
use steward_crypto::DpopKey;
use steward_testkit::http_client::{request, tls_stream};
use steward_testkit::{PrivatePostgres, PrivateRedis, Reply, TestUpstream};
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

/// A private deployment of `count` nodes reaching a local HTTPS upstream, with extra environment,
/// started, and an execute fixture provisioned through node 0.
async fn private_exec_cluster(
    count: usize,
    env: &[(&str, &str)],
) -> (PrivatePostgres, PrivateRedis, Cluster, Exec) {
    let (postgres, redis, mut cluster) = private_cluster(count).await;
    let upstream = TestUpstream::start().await.unwrap();
    cluster.route_to(&upstream);
    for (name, value) in env {
        cluster.env(name, value);
    }
    cluster.start_all().await;
    let exec = Exec::provision(&cluster, 0, upstream).await;
    (postgres, redis, cluster, exec)
}

/// What clients saw of one execute call.
#[derive(Debug, Clone)]
struct Outcome {
    correlation_id: String,
    node: usize,
    /// The status, or `None` when the connection failed.
    status: Option<u16>,
    /// When it was sent.
    at: Instant,
}

/// Plain (bearer, no rate limit, no idempotency key) executes in `workers` loops until `stop`, each
/// tagged `?tag={correlation id}`, round-robin over `nodes`.
fn execute_load(
    cluster: Arc<Cluster>,
    exec: Arc<Exec>,
    nodes: Vec<usize>,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Outcome>> {
    tokio::spawn(async move {
        let loops = (0..workers).map(|w| {
            let (cluster, exec, nodes, stop) = (&cluster, &exec, &nodes, &stop);
            async move {
                let mut outcomes = Vec::new();
                let mut n = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    let node = nodes[(w + n) % nodes.len()];
                    let cid = format!("load-{w}-{n}");
                    n += 1;
                    let at = Instant::now();
                    let response =
                        exec.execute(cluster, node, exec.get(&format!("?tag={cid}")), None, &cid).await;
                    let status = response.as_ref().ok().map(|r| r.status);
                    if status.is_none() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    outcomes.push(Outcome { correlation_id: cid, node, status, at });
                }
                outcomes
            }
        });
        futures::future::join_all(loops).await.into_iter().flatten().collect()
    })
}

#[tokio::test]
async fn redis_down_under_execute_load_fails_closed_only_what_needs_it_and_recovers_without_restart() {
    let (_postgres, mut redis, cluster, f) = private_exec_cluster(1, &[]).await;
    f.allow_reads(&cluster, 0).await;
    // A rate limit on calls with exactly the query key `q` (the load's calls use `tag`).
    f.policy(
        &cluster,
        0,
        "rate_limit",
        "items_read",
        "GET",
        json!({"scope": {"query_keys": ["q"]}, "rate_limit": {"max_requests": 1000, "interval_seconds": 60}}),
    )
    .await;
    let key = DpopKey::generate_es256().unwrap();
    let bound =
        cluster.session(0, &f.workload, Some(&proof(&key, "POST", "/v1/session", None))).await.unwrap();
    assert_eq!(bound.status, 200, "{}", bound.json());
    let dpop_token = bound.json()["session_token"].as_str().unwrap().to_owned();

    // Every kind works while Redis is up.
    let kinds = |round: &str| {
        let (cluster, f, key, dpop_token) = (&cluster, &f, &key, &dpop_token);
        let round = round.to_owned();
        async move {
            let dpop = f
                .execute_dpop(
                    cluster,
                    0,
                    key,
                    dpop_token,
                    f.get(&format!("?tag=dpop-{round}")),
                    &format!("dpop-{round}"),
                )
                .await
                .unwrap();
            let limited = f
                .execute(cluster, 0, f.get(&format!("?q=rl-{round}")), None, &format!("rl-{round}"))
                .await
                .unwrap();
            let keyed = f
                .execute(
                    cluster,
                    0,
                    f.get(&format!("?tag=key-{round}")),
                    Some(&format!("key-{round}")),
                    &format!("key-{round}"),
                )
                .await
                .unwrap();
            [("dpop", dpop), ("rate-limited", limited), ("keyed", keyed)]
        }
    };
    for (what, response) in kinds("before").await {
        assert_eq!(response.status, 200, "{what}: {}", response.json());
    }

    let cluster = Arc::new(cluster);
    let f = Arc::new(f);
    let stop = Arc::new(AtomicBool::new(false));
    let load = execute_load(Arc::clone(&cluster), Arc::clone(&f), vec![0], 2, Arc::clone(&stop));
    tokio::time::sleep(Duration::from_millis(500)).await;

    redis.stop();
    let stopped_at = Instant::now();
    let upstream_before = f.upstream.count();
    let (cluster_ref, f_ref) = (&*cluster, &*f);
    let kinds = |round: &str| {
        let (key, dpop_token) = (&key, &dpop_token);
        let round = round.to_owned();
        async move {
            let dpop = f_ref
                .execute_dpop(
                    cluster_ref,
                    0,
                    key,
                    dpop_token,
                    f_ref.get(&format!("?tag=dpop-{round}")),
                    &format!("dpop-{round}"),
                )
                .await
                .unwrap();
            let limited = f_ref
                .execute(cluster_ref, 0, f_ref.get(&format!("?q=rl-{round}")), None, &format!("rl-{round}"))
                .await
                .unwrap();
            let keyed = f_ref
                .execute(
                    cluster_ref,
                    0,
                    f_ref.get(&format!("?tag=key-{round}")),
                    Some(&format!("key-{round}")),
                    &format!("key-{round}"),
                )
                .await
                .unwrap();
            [("dpop", dpop), ("rate-limited", limited), ("keyed", keyed)]
        }
    };
    // What needs Redis fails closed…
    for (what, response) in kinds("down").await {
        assert_eq!(code(&response), (503, "coordination_unavailable".into()), "{what}: {}", response.json());
    }
    // …and reached nobody upstream.
    for received in f.upstream.received() {
        let tag = received.query("tag").or(received.query("q")).unwrap_or("");
        assert!(!tag.ends_with("-down"), "{} was forwarded while Redis was down", received.target);
    }
    // A plain execute is served (executed) while Redis is down.
    let plain = f.execute(&cluster, 0, f.get("?tag=plain-down"), None, "plain-down").await.unwrap();
    assert_eq!(plain.status, 200, "{}", plain.json());
    assert_eq!(plain.json()["status"], "executed", "{}", plain.json());
    assert!(f.upstream.count() > upstream_before);
    let (status, ready) = readyz(&cluster).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["checks"], json!({"store": "ok", "redis": "error"}));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Redis returns (empty): every kind recovers without a restart.
    redis.start_again().await.unwrap();
    let returned_at = Instant::now();
    let mut round = 0;
    eventually("every kind of execute again", Duration::from_secs(15), || {
        round += 1;
        let round = format!("up{round}");
        let kinds = &kinds;
        async move { kinds(&round).await.iter().all(|(_, response)| response.status == 200) }
    })
    .await;
    let (status, ready) = readyz(&cluster).await;
    assert_eq!(status, 200, "{ready}");

    stop.store(true, Ordering::SeqCst);
    let outcomes = load.await.unwrap();
    let bad: Vec<_> = outcomes.iter().filter(|o| o.status != Some(200)).collect();
    assert!(bad.is_empty(), "plain executes must be served throughout: {bad:?}");
    let during = outcomes.iter().filter(|o| o.at > stopped_at && o.at < returned_at).count();
    assert!(during > 0, "the load ran while Redis was down: {outcomes:?}");
    assert_eq!(cluster.nodes[0].terminate().await.code(), Some(0));
}

#[tokio::test]
async fn kill_9_under_execute_load_loses_no_audit_event_and_leaves_no_idempotency_key_locked() {
    // Lock TTL = total timeout + 15 s = 17 s.
    const LOCK_TTL: Duration = Duration::from_secs(17);
    let (_postgres, _redis, cluster, f) =
        private_exec_cluster(2, &[("STEWARD_EGRESS__TOTAL_TIMEOUT_MS", "2000")]).await;
    f.allow_reads(&cluster, 0).await;
    // The keyed call the victim has in flight when it dies hangs upstream.
    f.upstream.respond_with(|r| if r.target.contains("in-flight") { Reply::Hang } else { Reply::ok() });
    let (survivor, victim) = (0, 1);

    let cluster = Arc::new(cluster);
    let f = Arc::new(f);
    let stop = Arc::new(AtomicBool::new(false));
    let load =
        execute_load(Arc::clone(&cluster), Arc::clone(&f), vec![survivor, victim], 4, Arc::clone(&stop));
    eventually("load on both instances", Duration::from_secs(20), || {
        let f = &f;
        async move { f.upstream.count() >= 20 }
    })
    .await;

    // An idempotent call in flight on the victim (forwarded, so its key is locked)…
    let in_flight = {
        let (cluster, f) = (Arc::clone(&cluster), Arc::clone(&f));
        tokio::spawn(async move {
            f.execute(&cluster, victim, f.get("?q=in-flight"), Some("key-in-flight"), "in-flight-victim")
                .await
        })
    };
    eventually("the in-flight call reaches the upstream", Duration::from_secs(10), || {
        let f = &f;
        async move { f.upstream.received().iter().any(|r| r.query("q") == Some("in-flight")) }
    })
    .await;
    let forwarded_at = Instant::now();
    // …when the victim is killed.
    cluster.nodes[victim].signal("KILL");
    let status = cluster.nodes[victim].wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), None, "killed by a signal");
    let cut = in_flight.await.unwrap();
    assert!(cut.is_err() || cut.as_ref().unwrap().status != 200, "{cut:?}");
    f.upstream.set(Reply::ok());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::SeqCst);
    let outcomes = load.await.unwrap();

    // The key stays locked (in progress) until its TTL, never beyond it: then the call executes.
    let retry = || {
        let (cluster, f) = (&cluster, &f);
        async move {
            f.execute(cluster, survivor, f.get("?q=in-flight"), Some("key-in-flight"), "in-flight-retry")
                .await
                .unwrap()
        }
    };
    loop {
        let response = retry().await;
        if response.status == 200 {
            assert!(
                forwarded_at.elapsed() > LOCK_TTL - Duration::from_secs(3),
                "the lock was gone too early: {:?}",
                forwarded_at.elapsed()
            );
            break;
        }
        assert_eq!(code(&response), (409, "idempotency_request_in_progress".into()), "{}", response.json());
        assert!(
            forwarded_at.elapsed() < LOCK_TTL + Duration::from_secs(3),
            "the key is still locked {:?} after the killed instance took it",
            forwarded_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let replay = retry().await;
    assert_eq!(replay.headers["idempotent-replayed"], "true", "{}", replay.json());

    // Audit, read through the survivor: every call a client saw executed has its `execute` event…
    let executes = f.events_of_type(&cluster, survivor, "execute").await;
    let allowed: std::collections::BTreeSet<String> = executes
        .iter()
        .filter(|e| e["decision"] == "allowed" && e["metadata"]["replayed"] != true)
        .map(|e| e["correlation_id"].as_str().unwrap().to_owned())
        .collect();
    let executed: Vec<_> = outcomes.iter().filter(|o| o.status == Some(200)).collect();
    assert!(executed.iter().any(|o| o.node == victim), "the victim served load before it died");
    for outcome in &executed {
        assert!(allowed.contains(&outcome.correlation_id), "no execute event for {outcome:?}");
        let events = f.events(&cluster, survivor, &outcome.correlation_id).await;
        assert!(
            events.iter().any(|e| e["event_type"] == "execute" && e["decision"] == "allowed"),
            "{outcome:?}: {events:?}"
        );
    }
    // …and no call reached the upstream without one (write-ahead): each load call is tagged with
    // its correlation id; the two in-flight calls share one tag and have two events.
    let received = f.upstream.received();
    for request in &received {
        if let Some(tag) = request.query("tag") {
            assert!(allowed.contains(tag), "{tag} reached the upstream without an execute event");
        }
    }
    let in_flight_calls = received.iter().filter(|r| r.query("q") == Some("in-flight")).count();
    assert_eq!(in_flight_calls, 2);
    assert!(allowed.contains("in-flight-victim") && allowed.contains("in-flight-retry"), "{allowed:?}");
    assert!(received.len() <= allowed.len(), "{} upstream calls, {} events", received.len(), allowed.len());

    // The chains verify: the killed writer's simply ends.
    let verify = f.verify(&cluster, survivor).await;
    assert!(verify["chains_checked"].as_u64().unwrap() >= 2, "{verify}");
    let (status, global) =
        cluster.admin(survivor, Method::GET, "/v1/audit/verify?tenant_id=global", None).await;
    assert_eq!(status, 200, "{global}");
    assert_eq!(global["ok"], true, "{global}");
    assert_eq!(cluster.nodes[survivor].terminate().await.code(), Some(0));
}
