//! Criterion benches of the execute path's hot spots, each alone: canonicalization of a typical
//! request, DPoP verification (ES256, EdDSA) with the replay check, envelope decryption, manifest
//! signing over a JCS payload, session lookup on SQLite, and audit append throughput through the
//! group-committing `AuditWriter` with many concurrent appenders (SQLite always; PostgreSQL when
//! `STEWARD_BENCH_POSTGRES=1`, on a private database of the local server via the testkit).
//! The response scrubber: building it, a cached lookup through the server's `ScrubberCache`, and
//! scrubbing a clean 1 KiB answer and 1 MiB JSON answers with and without the secret.
//! Policy evaluation with 10/100/1000 rules lives in `crates/steward-policy/benches/evaluate.rs`.
//!
//! `cargo bench -p steward-bench --bench hot_paths` (add `-- audit` etc. to filter).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, missing_debug_implementations)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use steward_canon::{CanonContext, ExecuteRequest, HeaderField, Method, Template, canonicalize};
use steward_coord::{Coordinator, EmbeddedCoordinator};
use steward_crypto::{
    DpopAlg, DpopExpectations, DpopKey, Keyring, SigningKey, open, seal, verify_dpop_proof,
};
use steward_store::audit::{
    Actor, AuditEvent, AuditWriter, CheckpointSigner, Decision, Destination, EventType,
};
use steward_store::{
    EnrollmentTokenRecord, SessionRecord, SqliteStore, SqliteSynchronous, Store, TenantRecord, WorkloadRecord,
};
use steward_testkit::templates::{self, group};
use steward_types::{
    Clock, EnrollmentTokenId, IntegrationId, SessionId, SharedClock, SigningKeyId, SystemClock, TenantId,
    Timestamp, WorkloadId,
};
use zeroize::Zeroizing;

const HTU: &str = "https://localhost:8081/v1/execute";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn now() -> Timestamp {
    SystemClock.now()
}

fn bench_template() -> Template {
    let template = templates::template("tpl_bench", "bench")
        .description("bench")
        .port(8443)
        .hosts(&["bench.upstream.test"])
        .group(
            group("bench_echo", &["POST"], &["^/v1/echo$"])
                .headers(&["content-type"])
                .response_headers(&["content-type", "x-request-id"])
                .json_body(1_048_576),
        )
        .build();
    Template::from_json(&template).unwrap()
}

/// A typical execute request: POST with a 1 KiB JSON body, one forwarded header.
fn canonicalization(c: &mut Criterion) {
    let template = bench_template();
    let ctx =
        CanonContext::new(TenantId::generate(), WorkloadId::generate(), IntegrationId::generate(), 2 << 20);
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(1014));
    let request = ExecuteRequest {
        method: Method::Post,
        url: "https://bench.upstream.test:8443/v1/echo".into(),
        headers: vec![HeaderField::new("content-type", "application/json")],
        body_base64: Some(STANDARD.encode(body)),
    };
    canonicalize(&request, &template, &ctx).unwrap();
    c.bench_function("canonicalize/post_1KiB_json", |b| {
        b.iter(|| canonicalize(black_box(&request), &template, &ctx).unwrap())
    });
}

/// Verification of a fresh session-bound proof, then the replay check the data plane does next.
fn dpop(c: &mut Criterion) {
    let rt = runtime();
    let clock: SharedClock = Arc::new(SystemClock);
    let coord = EmbeddedCoordinator::new(clock);
    let token = "stw_ses_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
    let mut group = c.benchmark_group("dpop_verify");
    for (name, key) in
        [("es256", DpopKey::generate_es256().unwrap()), ("eddsa", DpopKey::generate_ed25519().unwrap())]
    {
        let jkt = key.thumbprint().to_owned();
        let verify = |proof: &String| {
            verify_dpop_proof(
                &[proof.as_bytes()],
                &DpopExpectations {
                    method: "POST",
                    htu: HTU,
                    now_unix: now().unix_seconds(),
                    max_skew_seconds: 300,
                    not_before_unix: None,
                    access_token: Some(token),
                    expected_jkt: Some(&jkt),
                },
            )
            .unwrap()
        };
        let fresh = || {
            key.proof("POST", HTU, now().unix_seconds(), &uuid::Uuid::new_v4().to_string(), Some(token))
                .unwrap()
        };
        group.bench_function(format!("{name}/verify"), |b| {
            b.iter_batched(fresh, |proof| verify(&proof), BatchSize::SmallInput)
        });
        group.bench_function(format!("{name}/verify_and_replay_check"), |b| {
            b.iter_batched(
                fresh,
                |proof| {
                    let verified = verify(&proof);
                    let ttl = Duration::from_secs(verified.replay_ttl_seconds());
                    let first = rt.block_on(coord.remember_once(&verified.replay_key(), ttl)).unwrap();
                    assert!(first);
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
    // For reference: what the client pays to mint one proof.
    let key =
        DpopKey::from_pkcs8(DpopAlg::Es256, &DpopKey::generate_es256().unwrap().to_pkcs8().unwrap()).unwrap();
    c.bench_function("dpop_proof/es256/sign", |b| {
        b.iter(|| key.proof("POST", HTU, 1_700_000_000, "jti-1", Some(token)).unwrap())
    });
}

/// Decrypting an integration secret: unwrap the DEK with the KEK, then open the content.
fn envelope(c: &mut Criterion) {
    let keyring = Keyring::generate();
    let context = steward_crypto::EnvelopeContext::IntegrationSecret {
        tenant_id: "t_1".into(),
        integration_id: "i_1".into(),
        secret_version: 1,
    };
    let sealed = seal(&keyring, &context, b"sk-bench-0123456789abcdefghijklmnopqrstuvwxyz").unwrap();
    c.bench_function("envelope/open", |b| b.iter(|| open(&keyring, black_box(&context), &sealed).unwrap()));
}

/// A manifest-sized payload in RFC 8785 form, signed as a compact EdDSA JWS.
fn manifest_signing(c: &mut Criterion) {
    let (key, _) = SigningKey::generate(SigningKeyId::generate()).unwrap();
    let integrations: Vec<_> = (0..5)
        .map(|i| {
            json!({"integration_id": format!("i_{i:026}"), "provider": "openai", "template_id": "tpl_openai",
                   "template_version": 1, "groups": [{"group_id": "openai_responses", "method": "POST",
                   "host": "api.openai.com", "path_patterns": ["^/v1/responses$"], "approval": "none"}]})
        })
        .collect();
    let payload = json!({"iss": "https://localhost:8081", "sub": "spiffe://steward/tenants/t_1/workloads/w_1",
        "iat": 1_700_000_000, "exp": 1_700_000_300, "execute_url": HTU, "integrations": integrations});
    c.bench_function("manifest/jcs_and_sign", |b| {
        b.iter(|| {
            let bytes = serde_jcs::to_vec(black_box(&payload)).unwrap();
            key.sign_compact_jws(&json!({"typ": "steward-manifest+jws"}), &bytes).unwrap()
        })
    });
}

fn tenant() -> TenantRecord {
    TenantRecord {
        tenant_id: TenantId::generate(),
        name: format!("bench-{}", uuid::Uuid::new_v4()),
        dpop_required: false,
        approval_webhook_url: None,
        created_at: now(),
        updated_at: now(),
    }
}

fn workload(tenant: &TenantRecord) -> (WorkloadRecord, EnrollmentTokenRecord) {
    let workload_id = WorkloadId::generate();
    let record = WorkloadRecord {
        san_uri: format!("spiffe://steward/tenants/{}/workloads/{workload_id}", tenant.tenant_id),
        workload_id: workload_id.clone(),
        tenant_id: tenant.tenant_id.clone(),
        name: "agent".into(),
        enabled: true,
        ip_allowlist: vec![],
        dpop_required: false,
        created_at: now(),
        updated_at: now(),
        deleted_at: None,
    };
    let token = EnrollmentTokenRecord {
        token_id: EnrollmentTokenId::generate(),
        workload_id,
        token_hash: *uuid::Uuid::new_v4().as_bytes().repeat(2).first_chunk::<32>().unwrap(),
        created_at: now(),
        expires_at: now().plus_seconds(3600),
        used_at: None,
        superseded_at: None,
    };
    (record, token)
}

/// `session_by_hash` on SQLite with 10 000 sessions stored.
fn session_lookup(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (store, hashes) = rt.block_on(async {
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("steward.db"), SqliteSynchronous::Normal).await.unwrap(),
        );
        let tenant = tenant();
        store.insert_tenant(&tenant).await.unwrap();
        let (workload, token) = workload(&tenant);
        store.insert_workload(&workload, &token).await.unwrap();
        let mut hashes = Vec::new();
        for i in 0..10_000u32 {
            let mut hash = [0u8; 32];
            hash[..4].copy_from_slice(&i.to_be_bytes());
            hash[4..20].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            store
                .insert_session(&SessionRecord {
                    session_id: SessionId::generate(),
                    workload_id: workload.workload_id.clone(),
                    token_hash: hash,
                    scopes: vec!["execute".into()],
                    cert_thumbprint: "thumb".into(),
                    dpop_jkt: None,
                    created_at: now(),
                    expires_at: now().plus_seconds(900),
                    revoked_at: None,
                })
                .await
                .unwrap();
            hashes.push(hash);
        }
        (store, hashes)
    });
    let mut i = 0usize;
    c.bench_function("session_by_hash/sqlite_10k", |b| {
        b.iter(|| {
            i = (i + 7919) % hashes.len();
            rt.block_on(store.session_by_hash(&hashes[i])).unwrap().unwrap()
        })
    });
}

#[derive(Debug)]
struct Signer(aws_lc_rs::signature::Ed25519KeyPair);

impl CheckpointSigner for Signer {
    fn sign(&self, payload: &[u8]) -> Result<(String, String), String> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","kid":"mk_bench"}"#);
        let body = URL_SAFE_NO_PAD.encode(payload);
        let signature = self.0.sign(format!("{header}.{body}").as_bytes());
        Ok(("mk_bench".into(), format!("{header}.{body}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))))
    }
}

/// How the bench's events get their correlation ids.
#[derive(Debug, Clone, Copy)]
enum Correlation {
    /// What `spec/data-plane.md` gives a request without `x-correlation-id`: a UUIDv4, so the
    /// correlation index takes each event at a random place.
    Random,
    /// Time-ordered (UUIDv7): not what the spec says, measured to show what the random index costs.
    TimeOrdered,
}

fn execute_event(tenant: &str, n: u64, correlation: Correlation) -> AuditEvent {
    let correlation_id = match correlation {
        Correlation::Random => uuid::Uuid::new_v4(),
        Correlation::TimeOrdered => uuid::Uuid::now_v7(),
    };
    AuditEvent::new(EventType::Execute, Actor::workload("w_bench"), now())
        .with_tenant(tenant)
        .with_request_id(format!("req-{n}"))
        .with_correlation_id(correlation_id.to_string())
        .with_workload("w_bench")
        .with_integration("i_bench")
        .with_decision(Decision::Allowed)
        .with_action_group("bench_echo")
        .with_risk_tier("low")
        .with_destination(Destination {
            scheme: "https".into(),
            host: "bench.upstream.test".into(),
            port: 8443,
            path_group: Some("bench_echo".into()),
        })
        .with_canonical_descriptor(json!({"method": "POST", "path": "/v1/echo", "query": {}}))
        .with_latency_ms(1)
        .with_upstream_status_code(200)
}

/// `appenders` tasks append `iters` events in all through one writer; the time until the last
/// acknowledgement (each sent only after its batch committed) is the measurement.
fn append_all(
    rt: &tokio::runtime::Runtime,
    writer: &AuditWriter,
    appenders: u64,
    iters: u64,
    correlation: Correlation,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for a in 0..appenders {
            let writer = writer.clone();
            let share = iters / appenders + u64::from(a < iters % appenders);
            tasks.spawn(async move {
                for n in 0..share {
                    writer.append(execute_event("t_bench", n, correlation)).await.unwrap();
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        start.elapsed()
    })
}

fn audit_writer(store: Arc<dyn Store>) -> AuditWriter {
    AuditWriter::start(
        store,
        Zeroizing::new([7; 32]),
        format!("wr_bench{}", uuid::Uuid::new_v4().simple()),
        Arc::new(SystemClock),
        Arc::new(Signer(aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap())),
        Duration::from_secs(3600),
    )
}

/// Named stores an audit bench runs on.
type BenchStores = Vec<(&'static str, Arc<dyn Store>)>;

/// The stores the audit benches run on: an embedded SQLite store in `dir`, and with
/// `STEWARD_BENCH_POSTGRES=1` a PostgreSQL one in a database of its own (dropped with the guard).
fn audit_stores(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
) -> (BenchStores, Option<steward_testkit::TestDatabase>) {
    let mut stores: BenchStores = vec![(
        "sqlite",
        Arc::new(rt.block_on(SqliteStore::open(&dir.join("steward.db"), SqliteSynchronous::Normal)).unwrap()),
    )];
    let postgres = if std::env::var("STEWARD_BENCH_POSTGRES").is_ok_and(|v| v == "1") {
        let db = rt.block_on(steward_testkit::TestDatabase::create()).unwrap();
        let store = rt.block_on(steward_store::PostgresStore::connect(&db.url)).unwrap();
        stores.push(("postgres", Arc::new(store)));
        Some(db)
    } else {
        None
    };
    (stores, postgres)
}

fn audit_append(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (stores, _postgres) = audit_stores(&rt, dir.path());
    let mut group = c.benchmark_group("audit_append");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for (name, store) in &stores {
        let writer = rt.block_on(async { audit_writer(Arc::clone(store)) });
        for appenders in [1u64, 64, 256] {
            group.bench_function(format!("{name}/{appenders}_appenders"), |b| {
                b.iter_custom(|iters| {
                    append_all(&rt, &writer, appenders.min(iters.max(1)), iters, Correlation::Random)
                })
            });
        }
        // The same at 256 appenders with time-ordered correlation ids: what the one index keyed by a
        // random value costs (`docs/performance.md`, "Canonical bodies and the correlation index").
        group.bench_function(format!("{name}/256_appenders_time_ordered_correlation"), |b| {
            b.iter_custom(|iters| {
                append_all(&rt, &writer, 256.min(iters.max(1)), iters, Correlation::TimeOrdered)
            })
        });
        rt.block_on(writer.shutdown()).unwrap();
    }
    group.finish();
}

/// `GET /v1/audit/verify`'s work: 20 000 events of one tenant (written by the audit writer), verified
/// whole per iteration; events/s. SQLite, and PostgreSQL with `STEWARD_BENCH_POSTGRES=1`.
fn audit_verify(c: &mut Criterion) {
    const EVENTS: u64 = 20_000;
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (stores, _postgres) = audit_stores(&rt, dir.path());
    let mut group = c.benchmark_group("audit_verify");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(10);
    for (name, store) in &stores {
        let writer = rt.block_on(async { audit_writer(Arc::clone(store)) });
        append_all(&rt, &writer, 256, EVENTS, Correlation::Random);
        rt.block_on(writer.shutdown()).unwrap();
        group.bench_function(format!("{name}/20k_events"), |b| {
            b.iter(|| {
                let report = rt
                    .block_on(steward_store::audit::verify_tenant(store.as_ref(), &[7; 32], "t_bench"))
                    .unwrap();
                assert!(report.ok && report.events_checked == EVENTS, "{report:?}");
            })
        });
    }
    group.finish();
}

fn scrubber(c: &mut Criterion) {
    use steward_egress::Scrubber;
    use steward_server::services::execute::cache::ScrubberCache;
    let needles = bench_needles();
    let mut group = c.benchmark_group("scrubber");
    group.bench_function("new", |b| b.iter(|| Scrubber::new(black_box(&needles)).unwrap()));
    let cache = ScrubberCache::new();
    cache.get("int_bench", 1, &needles).unwrap();
    group.bench_function("cache_hit", |b| b.iter(|| cache.get("int_bench", 1, black_box(&needles)).unwrap()));
    let scrubber = Scrubber::new(&needles).unwrap();
    let body = serde_json::to_vec(&json!({ "data": "x".repeat(1000) })).unwrap();
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("scrub_1KiB_clean", |b| b.iter(|| scrubber.scrub(black_box(&body))));
    group.finish();
}

/// What an API-key injection produces: the secret and the full `authorization` value.
fn bench_needles() -> Vec<Zeroizing<Vec<u8>>> {
    let secret = b"sk_bench_0123456789abcdefghijklmnopqrstuv".to_vec();
    let mut bearer = b"Bearer ".to_vec();
    bearer.extend_from_slice(&secret);
    vec![Zeroizing::new(secret), Zeroizing::new(bearer)]
}

/// A 1 MiB JSON answer as APIs send them: records with ids, names, e-mail addresses, URLs with
/// percent-encoded queries, escaped quotes and slashes, and some `\u00XX` escapes.
fn json_body(target: usize) -> Vec<u8> {
    let mut out = b"{\"items\":[".to_vec();
    let mut n = 0u64;
    while out.len() < target - 400 {
        if n > 0 {
            out.push(b',');
        }
        let record = format!(
            r#"{{"id":{n},"name":"Customer {n} \"VIP\"","email":"user{n}@example.test","url":"https:\/\/api.example.test\/v1\/items\/{n}?q=caf%C3%A9+au+lait&page=2","note":"Caf\u00e9 order #{n}: 2 items, total {n}.50 EUR, shipped via express","created_at":"2025-01-01T00:00:00Z","tags":["a","b","c"]}}"#
        );
        out.extend_from_slice(record.as_bytes());
        n += 1;
    }
    out.extend_from_slice(b"]}");
    out
}

/// Scrubbing a 1 MiB answer: with no secret (what nearly every answer costs), with the secret
/// echoed three times (raw, percent-encoded in a mix, JSON-escaped), and an answer made of `\uXXXX`
/// escapes (the decoding matcher's busiest prefilter case).
fn scrub(c: &mut Criterion) {
    use steward_egress::Scrubber;
    let needles = bench_needles();
    let scrubber = Scrubber::new(&needles).unwrap();
    let clean = json_body(1 << 20);
    assert!(scrubber.scrub(&clean).is_none());
    let mut echoed = clean.clone();
    let echoes: [&[u8]; 3] = [
        b"sk_bench_0123456789abcdefghijklmnopqrstuv",
        b"Bearer%20sk_bench_0123456789%61%62%63defghijklmnopqrstuv",
        b"\\u0073k_bench_0123456789abcdefghijklmnopqrstu\\u0076",
    ];
    for (k, echo) in echoes.iter().enumerate() {
        let at = clean.len() / 4 * (k + 1);
        let at = at + clean[at..].iter().position(|&b| b == b'"').unwrap() + 1;
        echoed.splice(at..at, echo.iter().copied());
    }
    let redacted = scrubber.scrub(&echoed).unwrap();
    assert_eq!(redacted.windows(10).filter(|w| *w == b"[REDACTED]").count(), 3);
    let cyrillic: Vec<u8> = {
        let mut out = b"{\"text\":\"".to_vec();
        while out.len() < (1 << 20) - 16 {
            out.extend_from_slice(b"\\u041f\\u0440\\u0438\\u0432\\u0435\\u0442, ");
        }
        out.extend_from_slice(b"\"}");
        out
    };
    assert!(scrubber.scrub(&cyrillic).is_none());
    let mut group = c.benchmark_group("scrub");
    for (name, body) in [
        ("1MiB_json_clean", &clean),
        ("1MiB_json_3_secrets", &echoed),
        ("1MiB_json_unicode_escapes", &cyrillic),
    ] {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| b.iter(|| scrubber.scrub(black_box(body))));
    }
    group.finish();
}

criterion_group!(
    benches,
    scrubber,
    scrub,
    canonicalization,
    dpop,
    envelope,
    manifest_signing,
    session_lookup,
    audit_append,
    audit_verify
);
criterion_main!(benches);
