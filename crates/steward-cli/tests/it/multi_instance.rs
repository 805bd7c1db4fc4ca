//! Shared mode with several real `steward serve` processes on one PostgreSQL database and one Redis
//! prefix: what one instance does, every other one sees (sessions, revocations, DPoP jtis, disabled
//! workloads, manifest keys, KEK rotation, policies), execute state is shared (rate-limit buckets,
//! once approvals, idempotency keys), and the audit chains of every writer verify afterwards.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use crate::cluster;
use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use cluster::execute::{Exec, retry_after};
use cluster::{Cluster, code, proof, read_keyring, until_all, write_keyring};
use common::install_crypto_provider;
use http::Method;
use serde_json::json;
use steward_crypto::DpopKey;
use steward_testkit::{Reply, TestDatabase, TestUpstream, redis_url};
use steward_types::Clock;

/// Freshness across instances (`spec/data-plane.md`): within 1 s.
const FRESH: Duration = Duration::from_secs(1);

async fn cluster(count: usize) -> (TestDatabase, Cluster) {
    install_crypto_provider();
    let database = TestDatabase::create().await.unwrap();
    let mut cluster = Cluster::init(&database.url, &redis_url(), count);
    cluster.start_all().await;
    (database, cluster)
}

#[tokio::test]
async fn a_session_from_one_instance_works_on_all_and_its_revocation_on_another_stops_it_everywhere() {
    let (_db, cluster) = cluster(3).await;
    let tenant = cluster.tenant(0).await;
    cluster.integration(1, &tenant).await;
    let workload = cluster.workload(2, 0, &tenant).await;

    let token = cluster.session_token(0, &workload).await;
    for i in 0..3 {
        let manifest = cluster.manifest(i, &workload, &token).await.unwrap();
        assert_eq!(manifest.status, 200, "node {i}: {}", manifest.json());
    }

    let path = format!("/v1/workloads/{}/sessions/revoke", workload.workload_id);
    let (status, revoked) = cluster.admin(1, Method::POST, &path, None).await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["revoked"], 1);
    let took = until_all(&cluster, FRESH, |i| {
        let cluster = &cluster;
        let (workload, token) = (&workload, &token);
        async move {
            let response = cluster.manifest(i, workload, token).await.unwrap();
            code(&response) == (401, "session_invalid".into())
        }
    })
    .await;
    assert!(took <= FRESH, "{took:?}");
    for node in &cluster.nodes {
        assert_eq!(node.terminate().await.code(), Some(0));
    }
}

#[tokio::test]
async fn a_dpop_proof_accepted_by_one_instance_is_a_replay_on_every_other() {
    let (_db, cluster) = cluster(3).await;
    let tenant = cluster.tenant(0).await;
    cluster.integration(0, &tenant).await;
    let workload = cluster.workload(0, 1, &tenant).await;
    let key = DpopKey::generate_es256().unwrap();

    // On the session route.
    let session_proof = proof(&key, "POST", "/v1/session", None);
    let first = cluster.session(1, &workload, Some(&session_proof)).await.unwrap();
    assert_eq!(first.status, 200, "{}", first.json());
    assert_eq!(first.json()["dpop_jkt"], key.thumbprint());
    for i in [0, 2, 1] {
        let again = cluster.session(i, &workload, Some(&session_proof)).await.unwrap();
        assert_eq!(code(&again), (401, "dpop_replay".into()), "node {i}");
    }

    // On a session-protected route, with the bound session.
    let token = first.json()["session_token"].as_str().unwrap().to_owned();
    let path = format!("/v1/workloads/{}/manifest", workload.workload_id);
    let manifest_proof = proof(&key, "GET", &path, Some(&token));
    let authorization = format!("DPoP {token}");
    let headers = [("authorization", authorization.as_str()), ("dpop", manifest_proof.as_str())];
    let accepted = cluster.data(2, Some(&workload), Method::GET, &path, &headers, "").await.unwrap();
    assert_eq!(accepted.status, 200, "{}", accepted.json());
    for i in [0, 1, 2] {
        let again = cluster.data(i, Some(&workload), Method::GET, &path, &headers, "").await.unwrap();
        assert_eq!(code(&again), (401, "dpop_replay".into()), "node {i}");
    }
    // A fresh proof is fine anywhere.
    let fresh = proof(&key, "GET", &path, Some(&token));
    let headers = [("authorization", authorization.as_str()), ("dpop", fresh.as_str())];
    let ok = cluster.data(0, Some(&workload), Method::GET, &path, &headers, "").await.unwrap();
    assert_eq!(ok.status, 200, "{}", ok.json());
    for node in &cluster.nodes {
        assert_eq!(node.terminate().await.code(), Some(0));
    }
}

#[tokio::test]
async fn a_workload_disabled_through_one_instance_is_refused_by_all_within_a_second() {
    let (_db, cluster) = cluster(3).await;
    let tenant = cluster.tenant(0).await;
    let workload = cluster.workload(0, 0, &tenant).await;
    for i in 0..3 {
        let response = cluster.session(i, &workload, None).await.unwrap();
        assert_eq!(response.status, 200, "node {i}: {}", response.json());
    }
    let path = format!("/v1/workloads/{}", workload.workload_id);
    let (status, body) = cluster.admin(2, Method::PATCH, &path, Some(json!({"enabled": false}))).await;
    assert_eq!(status, 200, "{body}");
    let took = until_all(&cluster, FRESH, |i| {
        let (cluster, workload) = (&cluster, &workload);
        async move {
            let response = cluster.session(i, workload, None).await.unwrap();
            code(&response) == (401, "workload_disabled".into())
        }
    })
    .await;
    assert!(took <= FRESH, "{took:?}");

    // Enabled again through another instance: served everywhere again.
    let (status, _) = cluster.admin(0, Method::PATCH, &path, Some(json!({"enabled": true}))).await;
    assert_eq!(status, 200);
    until_all(&cluster, FRESH, |i| {
        let (cluster, workload) = (&cluster, &workload);
        async move { cluster.session(i, workload, None).await.unwrap().status == 200 }
    })
    .await;
    for node in &cluster.nodes {
        assert_eq!(node.terminate().await.code(), Some(0));
    }
}

#[tokio::test]
async fn a_manifest_key_rotated_on_one_instance_is_used_by_all_within_the_cache_bound() {
    let (_db, cluster) = cluster(3).await;
    let tenant = cluster.tenant(0).await;
    cluster.integration(0, &tenant).await;
    let workload = cluster.workload(0, 0, &tenant).await;
    let token = cluster.session_token(0, &workload).await;
    let kid_on = |i: usize| {
        let (cluster, workload, token) = (&cluster, &workload, &token);
        async move {
            let response = cluster.manifest(i, workload, token).await.unwrap();
            assert_eq!(response.status, 200, "{}", response.json());
            (response.json()["signature"]["kid"].as_str().unwrap().to_owned(), response.json())
        }
    };
    let (old_kid, _) = kid_on(0).await;

    let (status, rotated) = cluster.admin(1, Method::POST, "/v1/keys/manifest/rotate", None).await;
    assert_eq!(status, 200, "{rotated}");
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_eq!(rotated["retired_kid"], old_kid.as_str());
    // The rotating instance signs with the new key at once.
    assert_eq!(kid_on(1).await.0, new_kid);

    // The others within the 30 s cache bound (`keys::SIGNING_KEY_CACHE_SECONDS`); meanwhile every
    // manifest, whichever key signed it, verifies against every instance's keyset.
    let bound = Duration::from_secs(30) + Duration::from_secs(2);
    let took = until_all(&cluster, bound, |i| {
        let (cluster, workload, new_kid) = (&cluster, &workload, &new_kid);
        let kid_on = &kid_on;
        async move {
            let (kid, document) = kid_on(i).await;
            for j in 0..3 {
                let keyset =
                    cluster.data(j, Some(workload), Method::GET, "/v1/keys/manifest", &[], "").await.unwrap();
                let now = steward_types::SystemClock.now();
                steward_client::verify_manifest(&document, &keyset.json(), &workload.workload_id, now)
                    .unwrap_or_else(|e| panic!("manifest of node {i} against keyset of node {j}: {e}"));
            }
            kid == *new_kid
        }
    })
    .await;
    assert!(took <= bound, "{took:?}");
    for node in &cluster.nodes {
        assert_eq!(node.terminate().await.code(), Some(0));
    }
}

/// Sessions and manifests on every node in a loop until `stop`; every failure is recorded.
fn background_load(
    cluster: Arc<Cluster>,
    workloads: Vec<cluster::Workload>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut failures = Vec::new();
        let mut round = 0usize;
        while !stop.load(Ordering::SeqCst) {
            let i = round % cluster.nodes.len();
            let j = (round + 1) % cluster.nodes.len();
            let workload = &workloads[round % workloads.len()];
            round += 1;
            let token = match cluster.session(i, workload, None).await {
                Ok(response) if response.status == 200 => {
                    response.json()["session_token"].as_str().unwrap().to_owned()
                }
                Ok(response) => {
                    failures.push(format!("session on node {i}: {} {}", response.status, response.json()));
                    continue;
                }
                Err(error) => {
                    failures.push(format!("session on node {i}: {error:#}"));
                    continue;
                }
            };
            match cluster.manifest(j, workload, &token).await {
                Ok(response) if response.status == 200 => {
                    done.fetch_add(1, Ordering::SeqCst);
                }
                Ok(response) => {
                    failures.push(format!("manifest on node {j}: {} {}", response.status, response.json()))
                }
                Err(error) => failures.push(format!("manifest on node {j}: {error:#}")),
            }
        }
        failures
    })
}

/// Waits until the load made `more` further successful rounds.
async fn progress(done: &AtomicUsize, more: usize) {
    let target = done.load(Ordering::SeqCst) + more;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while done.load(Ordering::SeqCst) < target {
        assert!(std::time::Instant::now() < deadline, "the background load stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_kek_rotation_across_instances_completes_under_load_and_every_writers_chain_verifies() {
    let (_db, cluster) = cluster(3).await;
    let tenant = cluster.tenant(0).await;
    cluster.integration(0, &tenant).await;
    let mut workloads = Vec::new();
    for i in 0..3 {
        workloads.push(cluster.workload(i, i, &tenant).await);
    }
    let (status, before) = cluster.admin(0, Method::GET, "/v1/keys/kek", None).await;
    assert_eq!(status, 200, "{before}");
    let old_kek = before["active_key_id"].as_str().unwrap().to_owned();
    assert!(before["envelopes_by_key_id"][&old_kek].as_u64().unwrap() > 0, "{before}");

    let keyrings = cluster.keyring_files();
    let cluster = Arc::new(cluster);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let load = background_load(Arc::clone(&cluster), workloads.clone(), Arc::clone(&stop), Arc::clone(&done));
    progress(&done, 5).await;

    let sighup_all = |expected: usize| {
        let cluster = Arc::clone(&cluster);
        async move {
            for node in &cluster.nodes {
                node.signal("HUP");
            }
            for node in &cluster.nodes {
                node.wait_for_log("\"what\":\"keyring\"", expected, Duration::from_secs(10)).await;
            }
        }
    };
    let reloaded = 0;

    // 1. Add a new, inactive key to every instance's keyring (one generated key, copied everywhere).
    let output = common::run(
        common::steward()
            .args(["keys", "generate-kek", "--config"])
            .arg(cluster.nodes[0].dir.join("steward.toml")),
    );
    assert!(output.status.success(), "{}", common::stderr(&output));
    let mut keyring = read_keyring(&keyrings[0]);
    assert_eq!(keyring["active"], old_kek.as_str());
    let new_kek = keyring["keys"].as_object().unwrap().keys().find(|id| **id != old_kek).unwrap().clone();
    for path in &keyrings[1..] {
        write_keyring(path, &keyring);
    }
    sighup_all(reloaded + 1).await;
    progress(&done, 5).await;

    // 2. Activate it everywhere.
    keyring["active"] = json!(new_kek);
    for path in &keyrings {
        write_keyring(path, &keyring);
    }
    sighup_all(reloaded + 2).await;
    progress(&done, 5).await;

    // 3. Re-wrap every envelope under the new key (through one instance).
    let (status, rewrapped) = cluster.admin(1, Method::POST, "/v1/keys/kek/rewrap", Some(json!({}))).await;
    assert_eq!(status, 200, "{rewrapped}");
    assert!(rewrapped["rewrapped"].as_u64().unwrap() > 0, "{rewrapped}");
    let (_, usage) = cluster.admin(2, Method::GET, "/v1/keys/kek", None).await;
    assert_eq!(usage["active_key_id"], new_kek.as_str());
    assert_eq!(
        usage["envelopes_by_key_id"].get(&old_kek).and_then(|v| v.as_u64()).unwrap_or(0),
        0,
        "{usage}"
    );
    progress(&done, 5).await;

    // 4. Remove the old key everywhere.
    keyring["keys"].as_object_mut().unwrap().remove(&old_kek);
    for path in &keyrings {
        write_keyring(path, &keyring);
    }
    sighup_all(reloaded + 3).await;
    progress(&done, 5).await;

    // Sealing and opening still work on every instance: a manifest key rotation seals a new key
    // (under the new KEK) that another instance opens.
    let (status, rotated) = cluster.admin(0, Method::POST, "/v1/keys/manifest/rotate", None).await;
    assert_eq!(status, 200, "{rotated}");
    progress(&done, 10).await;

    stop.store(true, Ordering::SeqCst);
    let failures = load.await.unwrap();
    assert!(failures.is_empty(), "{} failed requests during the rotation: {failures:#?}", failures.len());
    let rounds = done.load(Ordering::SeqCst);
    assert!(rounds >= 35, "{rounds}");

    // Audit: two instances stop (writing their final checkpoints); the third verifies every chain of
    // the tenant — one per writer — against the checkpoints.
    let mut cluster = Arc::into_inner(cluster).expect("the load task is done");
    for i in [1, 2] {
        assert_eq!(cluster.nodes[i].terminate().await.code(), Some(0));
    }
    let (status, verify) =
        cluster.admin(0, Method::GET, &format!("/v1/audit/verify?tenant_id={tenant}"), None).await;
    assert_eq!(status, 200, "{verify}");
    assert_eq!(verify["ok"], true, "{verify}");
    assert!(verify["chains_checked"].as_u64().unwrap() >= 3, "one chain per writer: {verify}");
    assert!(verify["events_checked"].as_u64().unwrap() >= u64::try_from(rounds * 2).unwrap(), "{verify}");
    let (status, checkpoints) =
        cluster.admin(0, Method::GET, &format!("/v1/audit/checkpoints?tenant_id={tenant}"), None).await;
    assert_eq!(status, 200, "{checkpoints}");
    let writers: std::collections::BTreeSet<_> = checkpoints["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["writer_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(writers.len() >= 2, "the stopped instances wrote final checkpoints: {checkpoints}");
    let (status, global) = cluster.admin(0, Method::GET, "/v1/audit/verify?tenant_id=global", None).await;
    assert_eq!(status, 200, "{global}");
    assert_eq!(global["ok"], true, "{global}");

    // An instance restarted with the new keyring alone starts (no envelope is left under the old key).
    cluster.start(1).await;
    for i in [0, 1] {
        assert_eq!(cluster.nodes[i].terminate().await.code(), Some(0));
    }
}

/// A deployment of `count` nodes whose egress reaches a local HTTPS upstream, with extra
/// environment, and an execute fixture provisioned through node 0.
async fn exec_cluster(count: usize, env: &[(&str, &str)]) -> (TestDatabase, Cluster, Exec) {
    install_crypto_provider();
    let database = TestDatabase::create().await.unwrap();
    let mut cluster = Cluster::init(&database.url, &redis_url(), count);
    let upstream = TestUpstream::start().await.unwrap();
    cluster.route_to(&upstream);
    for (name, value) in env {
        cluster.env(name, value);
    }
    cluster.start_all().await;
    let exec = Exec::provision(&cluster, 0, upstream).await;
    (database, cluster, exec)
}

async fn terminate_all(cluster: &Cluster) {
    for node in &cluster.nodes {
        assert_eq!(node.terminate().await.code(), Some(0), "{}", node.log());
    }
}

#[tokio::test]
async fn rate_limit_buckets_are_shared_n_allowed_in_total_across_instances() {
    const N: usize = 5;
    let (_db, cluster, f) = exec_cluster(3, &[]).await;
    f.allow_reads(&cluster, 0).await;
    let rule = f
        .policy(
            &cluster,
            1,
            "rate_limit",
            "items_read",
            "GET",
            json!({"rate_limit": {"max_requests": N, "interval_seconds": 3600}}),
        )
        .await;

    // 5 × N concurrent calls, spread round-robin over the three instances.
    let calls = (0..5 * N).map(|n| {
        let (cluster, f) = (&cluster, &f);
        async move {
            let cid = format!("rl-{n}");
            (n % 3, f.execute(cluster, n % 3, f.get(&format!("?q={cid}")), None, &cid).await.unwrap())
        }
    });
    let responses = futures::future::join_all(calls).await;
    let allowed: Vec<_> = responses.iter().filter(|(_, r)| r.status == 200).collect();
    assert_eq!(allowed.len(), N, "{:?}", responses.iter().map(|(i, r)| (i, r.status)).collect::<Vec<_>>());
    for (i, response) in responses.iter().filter(|(_, r)| r.status != 200) {
        assert_eq!(code(response), (429, "policy_rate_limited".into()), "node {i}: {}", response.json());
        let retry = retry_after(response).unwrap_or_else(|| panic!("no retry-after: {:?}", response.headers));
        assert!((1..=3600).contains(&retry), "{retry}");
    }
    // The throttled instances were not only the one that happened to drain the bucket.
    let throttled_nodes: std::collections::BTreeSet<_> =
        responses.iter().filter(|(_, r)| r.status == 429).map(|(i, _)| *i).collect();
    assert!(throttled_nodes.len() >= 2, "{throttled_nodes:?}");
    assert_eq!(f.upstream.count(), N);

    // Still empty on every instance afterwards, each refusal naming the rule.
    for i in 0..3 {
        let cid = format!("rl-after-{i}");
        let response = f.execute(&cluster, i, f.get("?q=after"), None, &cid).await.unwrap();
        assert_eq!(code(&response), (429, "policy_rate_limited".into()), "node {i}");
        let events = f.events(&cluster, (i + 1) % 3, &cid).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(
            (events[0]["event_type"].as_str(), events[0]["decision"].as_str()),
            (Some("execute"), Some("throttled"))
        );
        assert_eq!(events[0]["policy"]["rule_id"], rule.as_str());
    }
    assert_eq!(f.upstream.count(), N);
    terminate_all(&cluster).await;
}

#[tokio::test]
async fn an_approval_decided_through_another_instance_is_consumed_exactly_once_by_ten_spread_retries() {
    let (_db, cluster, f) = exec_cluster(3, &[]).await;
    let request = f.post(&json!({"name": "race"}));
    let response = f.execute(&cluster, 0, request.clone(), None, "ap-202").await.unwrap();
    assert_eq!(response.status, 202, "{}", response.json());
    let approval_id = response.json()["approval_id"].as_str().unwrap().to_owned();

    // Decided through another instance's admin API.
    let path = format!("/v1/approvals/{approval_id}/approve");
    let (status, decided) = cluster.admin(1, Method::POST, &path, Some(json!({"mode": "once"}))).await;
    assert_eq!(status, 200, "{decided}");
    for i in 0..3 {
        let (_, view) = cluster.admin(i, Method::GET, &format!("/v1/approvals/{approval_id}"), None).await;
        assert_eq!(view["status"], "approved", "node {i}: {view}");
    }

    // Ten concurrent retries spread over all three instances.
    let calls = (0..10).map(|n| {
        let (cluster, f, request) = (&cluster, &f, request.clone());
        async move { f.execute(cluster, n % 3, request, None, &format!("ap-race-{n}")).await.unwrap() }
    });
    let responses = futures::future::join_all(calls).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 202), "{statuses:?}");
    assert_eq!(f.upstream.count(), 1);
    assert_eq!(f.upstream.received()[0].body, json!({"name": "race"}).to_string().into_bytes());

    let mut consumed = Vec::new();
    for (n, status) in statuses.iter().enumerate() {
        let kinds = f.event_kinds(&cluster, n % 3, &format!("ap-race-{n}")).await;
        if kinds.iter().any(|(t, _, _)| t == "approval_consumed") {
            consumed.push(n);
            assert_eq!(*status, 200, "the winner executed: {kinds:?}");
        }
    }
    assert_eq!(consumed.len(), 1, "{consumed:?}");
    assert_eq!(f.events_of_type(&cluster, 2, "approval_consumed").await.len(), 1);
    let (_, view) = cluster.admin(2, Method::GET, &format!("/v1/approvals/{approval_id}"), None).await;
    assert_eq!(view["status"], "executed", "{view}");
    terminate_all(&cluster).await;
}

#[tokio::test]
async fn idempotency_keys_hold_across_instances() {
    let (_db, cluster, f) = exec_cluster(3, &[]).await;
    f.allow_reads(&cluster, 0).await;

    // Completed on one instance, replayed on the others.
    let first = f.execute(&cluster, 0, f.get("?q=one"), Some("key-one"), "id-first").await.unwrap();
    assert_eq!(first.status, 200, "{}", first.json());
    assert!(first.headers.get("idempotent-replayed").is_none());
    for i in [1, 2] {
        let cid = format!("id-replay-{i}");
        let replay = f.execute(&cluster, i, f.get("?q=one"), Some("key-one"), &cid).await.unwrap();
        assert_eq!(replay.status, 200, "node {i}: {}", replay.json());
        assert_eq!(replay.headers["idempotent-replayed"], "true", "node {i}");
        assert_eq!(replay.json()["correlation_id"], cid.as_str());
        assert_eq!(replay.json()["upstream"], first.json()["upstream"]);
        let events = f.events(&cluster, 0, &cid).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["metadata"]["replayed"], true);
        assert_eq!(events[0]["metadata"]["original_correlation_id"], "id-first");
    }
    // Another request under the key: a conflict on any instance.
    let conflict = f.execute(&cluster, 2, f.get("?q=two"), Some("key-one"), "id-conflict").await.unwrap();
    assert_eq!(code(&conflict), (409, "idempotency_key_conflict".into()));
    assert_eq!(f.upstream.count(), 1);

    // Concurrent duplicates spread over the instances while the first is in flight (forwarded, the
    // upstream takes 1.5 s to answer): none is forwarded, each is in progress or — once the first
    // completed — a replay.
    f.upstream.set(Reply::ok().after(Duration::from_millis(1500)));
    let first = f.execute(&cluster, 0, f.get("?q=dup"), Some("key-dup"), "id-dup-first");
    let duplicates = async {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while f.upstream.count() < 2 {
            assert!(std::time::Instant::now() < deadline, "the first call never reached the upstream");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let calls = (0..9).map(|n| {
            let (cluster, f) = (&cluster, &f);
            async move {
                let cid = format!("id-dup-{n}");
                f.execute(cluster, n % 3, f.get("?q=dup"), Some("key-dup"), &cid).await.unwrap()
            }
        });
        futures::future::join_all(calls).await
    };
    let (first, responses) = tokio::join!(first, duplicates);
    let first = first.unwrap();
    assert_eq!(first.status, 200, "{}", first.json());
    assert!(first.headers.get("idempotent-replayed").is_none());
    let mut in_progress = 0;
    for response in &responses {
        let outcome = code(response);
        let replayed = response.status == 200 && response.headers["idempotent-replayed"] == "true";
        in_progress += usize::from(outcome == (409, "idempotency_request_in_progress".into()));
        assert!(
            replayed || outcome == (409, "idempotency_request_in_progress".into()),
            "{outcome:?} {}",
            response.json()
        );
    }
    assert!(in_progress > 0, "no duplicate overlapped the first call");
    assert_eq!(f.upstream.count(), 2);
    // Once completed, a replay everywhere.
    for i in 0..3 {
        let replay = f
            .execute(&cluster, i, f.get("?q=dup"), Some("key-dup"), &format!("id-dup-after-{i}"))
            .await
            .unwrap();
        assert_eq!(replay.status, 200, "{}", replay.json());
        assert_eq!(replay.headers["idempotent-replayed"], "true");
    }
    assert_eq!(f.upstream.count(), 2);
    terminate_all(&cluster).await;
}

#[tokio::test]
async fn a_policy_deleted_through_one_instance_is_enforced_by_all_within_a_second() {
    let (_db, cluster, f) = exec_cluster(3, &[]).await;
    let allow = f.allow_reads(&cluster, 0).await;
    for i in 0..3 {
        let response = f.execute(&cluster, i, f.get("?q=before"), None, &format!("pol-{i}")).await.unwrap();
        assert_eq!(response.status, 200, "node {i}: {}", response.json());
    }
    let (status, body) = cluster.admin(1, Method::DELETE, &format!("/v1/policies/{allow}"), None).await;
    assert!(status == 200 || status == 204, "{status} {body}");
    let took = until_all(&cluster, FRESH, |i| {
        let (cluster, f) = (&cluster, &f);
        async move {
            let response = f.execute(cluster, i, f.get("?q=after"), None, "pol-after").await.unwrap();
            code(&response) == (403, "policy_default_deny".into())
        }
    })
    .await;
    assert!(took <= FRESH, "{took:?}");
    // And it stays enforced.
    let calls_before = f.upstream.count();
    for i in 0..3 {
        let response = f.execute(&cluster, i, f.get("?q=later"), None, "pol-later").await.unwrap();
        assert_eq!(code(&response), (403, "policy_default_deny".into()), "node {i}");
    }
    assert_eq!(f.upstream.count(), calls_before);
    terminate_all(&cluster).await;
}

#[tokio::test]
async fn audit_chains_and_checkpoints_of_every_writer_verify_after_concurrent_execute_load() {
    const WORKERS: usize = 6;
    const CALLS: usize = 10;
    let (_db, cluster, f) = exec_cluster(3, &[]).await;
    f.allow_reads(&cluster, 0).await;
    let workers = (0..WORKERS).map(|w| {
        let (cluster, f) = (&cluster, &f);
        async move {
            let mut failures = Vec::new();
            for n in 0..CALLS {
                let cid = format!("load-{w}-{n}");
                let i = (w + n) % 3;
                match f.execute(cluster, i, f.get(&format!("?q={cid}")), None, &cid).await {
                    Ok(response) if response.status == 200 => {}
                    Ok(response) => {
                        failures.push(format!("{cid} on {i}: {} {}", response.status, response.json()))
                    }
                    Err(error) => failures.push(format!("{cid} on {i}: {error:#}")),
                }
            }
            failures
        }
    });
    let failures: Vec<String> = futures::future::join_all(workers).await.into_iter().flatten().collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(f.upstream.count(), WORKERS * CALLS);

    // Every call has its two events, whichever instance served it, visible through any instance.
    let executes = f.events_of_type(&cluster, 1, "execute").await;
    let results = f.events_of_type(&cluster, 2, "execute_result").await;
    assert_eq!(executes.len(), WORKERS * CALLS);
    assert_eq!(results.len(), WORKERS * CALLS);
    for received in f.upstream.received() {
        let cid = received.query("q").unwrap();
        assert!(executes.iter().any(|e| e["correlation_id"] == cid && e["decision"] == "allowed"), "{cid}");
    }

    // Two instances stop (final checkpoints); every chain — one per writer — verifies through each
    // instance still running.
    for i in [1, 2] {
        assert_eq!(cluster.nodes[i].terminate().await.code(), Some(0));
    }
    let verify = f.verify(&cluster, 0).await;
    assert!(verify["chains_checked"].as_u64().unwrap() >= 3, "one chain per writer: {verify}");
    assert!(
        verify["events_checked"].as_u64().unwrap() >= u64::try_from(2 * WORKERS * CALLS).unwrap(),
        "{verify}"
    );
    let (status, checkpoints) =
        cluster.admin(0, Method::GET, &format!("/v1/audit/checkpoints?tenant_id={}", f.tenant), None).await;
    assert_eq!(status, 200, "{checkpoints}");
    let writers: std::collections::BTreeSet<_> = checkpoints["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["writer_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(writers.len() >= 2, "the stopped instances wrote final checkpoints: {checkpoints}");
    assert_eq!(cluster.nodes[0].terminate().await.code(), Some(0));
}
