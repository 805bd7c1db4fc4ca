//! `steward-bench audit-scale`: audit search and verification with millions of events in the store
//! (issue 18, decision 0022).
//!
//! 1. A store keyed by backend and scale is kept under `--seed-dir` (SQLite: a data directory;
//!    PostgreSQL: the database `stwbench_audit_<scale>` next to `--postgres-url`'s, created when
//!    missing, with a data directory for its config and keyring). When it was fully seeded before it
//!    is reused as is; an interrupted seeding resumes where it stopped (`seed-progress.json`).
//! 2. Seeding (`seed::audit`): `scale × 10 000 000` events through an audit writer on the store —
//!    real chains and checkpoints — over `scale × 10 000` tenants, the first holding
//!    `--big-tenant-share` of them.
//! 3. A Steward child on that store; then, through its admin API with the owner token:
//!    `GET /v1/audit/events` with each filter alone (values drawn uniformly from what was seeded),
//!    newest first, `limit=100`, following `next_cursor` for `--pages` pages — p50/p99/max per
//!    filter — and `GET /v1/audit/verify?tenant_id=<big tenant>` (events/s).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use steward_server::config;
use steward_server::startup::open_store;
use steward_types::Timestamp;

use crate::pki::BenchCa;
use crate::seed::audit::{
    ACTION_GROUPS, AuditSeedReport, AuditSeedSpec, AuditTenant, EVENT_TYPES, SPAN_MICROS, START_MICROS,
    correlation_id, open_seed_writer, seed_audit_events,
};
use crate::steward::{self, StewardOptions};

/// Events at scale 1.0.
pub const EVENTS_AT_SCALE_1: f64 = 10_000_000.0;
/// Tenants at scale 1.0.
pub const TENANTS_AT_SCALE_1: f64 = 10_000.0;
/// Workloads and integrations per seeded tenant (50 000 integrations at scale 1.0).
const PER_TENANT: usize = 5;

#[derive(Debug, Clone)]
pub struct AuditScaleOptions {
    pub scale: f64,
    pub seed_dir: PathBuf,
    pub big_tenant_share: f64,
    pub postgres_url: Option<String>,
    pub redis_url: Option<String>,
    /// Searches per filter (each followed through `pages` pages).
    pub queries: usize,
    pub pages: usize,
    /// Runs of `GET /v1/audit/verify` of the big tenant.
    pub verify_runs: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct FilterLatency {
    pub filter: String,
    pub requests: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub events_returned: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyRun {
    pub events_checked: u64,
    pub chains_checked: u64,
    pub ok: bool,
    pub seconds: f64,
    pub events_per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditScaleReport {
    pub backend: String,
    pub scale: f64,
    pub events: u64,
    pub tenants: usize,
    pub big_tenant_id: String,
    pub store_dir: PathBuf,
    /// This run's seeding (absent when a seeded store was reused).
    pub seeding: Option<AuditSeedReport>,
    pub search: Vec<FilterLatency>,
    pub verify: Vec<VerifyRun>,
}

impl AuditScaleReport {
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "audit at scale: {} events over {} tenants ({}; big tenant {}), store {}\n",
            self.events,
            self.tenants,
            self.backend,
            self.big_tenant_id,
            self.store_dir.display()
        );
        match &self.seeding {
            Some(s) => out.push_str(&format!(
                "seeding: {} events in {:.1} s ({:.0} events/s)\n",
                s.appended, s.seconds, s.events_per_second
            )),
            None => out.push_str("seeding: reused the seeded store\n"),
        }
        out.push_str("GET /v1/audit/events (limit 100, newest first, with paging):\n");
        out.push_str(&format!(
            "  {:<16} {:>8} {:>9} {:>9} {:>9} {:>9}\n",
            "filter", "requests", "p50 ms", "p99 ms", "max ms", "events"
        ));
        for f in &self.search {
            out.push_str(&format!(
                "  {:<16} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9}\n",
                f.filter, f.requests, f.p50_ms, f.p99_ms, f.max_ms, f.events_returned
            ));
        }
        for v in &self.verify {
            out.push_str(&format!(
                "GET /v1/audit/verify: ok={} {} events in {} chains, {:.2} s, {:.0} events/s\n",
                v.ok, v.events_checked, v.chains_checked, v.seconds, v.events_per_second
            ));
        }
        out
    }
}

/// The seeded tenants at `scale`: `t_seed00000` is the big one.
pub fn seed_tenants(scale: f64) -> Vec<AuditTenant> {
    let n = ((TENANTS_AT_SCALE_1 * scale).round() as usize).max(2);
    (0..n).map(|k| AuditTenant::synthetic(&format!("t_seed{k:05}"), PER_TENANT, PER_TENANT)).collect()
}

/// `0.1` → `0_1`: a name part for files and databases.
fn scale_tag(scale: f64) -> String {
    format!("{scale}").replace(['.', '-'], "_")
}

#[derive(Debug, Serialize, Deserialize)]
struct Progress {
    done: u64,
    total: u64,
    finished: bool,
    report: Option<AuditSeedReport>,
}

fn read_progress(path: &Path) -> Option<Progress> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn write_progress(path: &Path, progress: &Progress) {
    if let Ok(text) = serde_json::to_string_pretty(progress) {
        let _ = std::fs::write(path, text);
    }
}

/// The URL of database `name` on the server of `url` (its path replaced).
fn database_url(url: &str, name: &str) -> Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").context("--postgres-url is not a URL")? + 3;
    let path_start = base[scheme_end..].find('/').map(|p| p + scheme_end).unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

/// Creates database `name` on the server of `url` when missing.
async fn ensure_database(url: &str, name: &str) -> Result<()> {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url).await.context("connecting to --postgres-url")?;
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut conn)
        .await?;
    if exists.is_none() {
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await?;
    }
    conn.close().await?;
    Ok(())
}

/// Seeds (or resumes seeding) the store of `data_dir`, which `init` prepared, while no Steward runs.
async fn seed(data_dir: &Path, spec: AuditSeedSpec, progress_path: &Path) -> Result<AuditSeedReport> {
    let (store, keyring) = open_seeded_store(data_dir).await?;
    let writer = open_seed_writer(Arc::clone(&store), &keyring).await?;
    let total = spec.total;
    let path = progress_path.to_owned();
    let report = seed_audit_events(&writer, &spec, &move |done| {
        write_progress(&path, &Progress { done, total, finished: false, report: None });
        eprintln!("steward-bench: seeded {done} of {total} audit events");
    })
    .await;
    writer.shutdown().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(writer);
    drop(store);
    // The writer task's and the pools' connections close in the background; SQLite's lock file is
    // released with the store.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    report
}

/// A seeded store, ready for a Steward child.
#[derive(Debug)]
pub struct Prepared {
    /// The seeded store's directory (its `steward-data` is the data directory).
    pub work: PathBuf,
    pub steward_options: StewardOptions,
    pub tenants: Vec<AuditTenant>,
    pub total: u64,
    /// This run's seeding; `None` when a fully seeded store was reused.
    pub seeding: Option<AuditSeedReport>,
}

/// Finds or makes the seeded store of `options`' backend and scale: reused when fully seeded, else
/// `init` (idempotent: a second run joins the deployment the first created) and seeding from the
/// first event not yet written. No Steward may run on it meanwhile.
pub async fn prepare(options: &AuditScaleOptions) -> Result<Prepared> {
    if options.scale.is_nan() || options.scale <= 0.0 {
        bail!("--seed-scale must be above 0");
    }
    let backend = if options.postgres_url.is_some() { "postgres" } else { "sqlite" };
    let tag = scale_tag(options.scale);
    let work = options.seed_dir.join(format!("audit-{backend}-{tag}"));
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let postgres_url = match &options.postgres_url {
        Some(url) => {
            let name = format!("stwbench_audit_{tag}");
            ensure_database(url, &name).await?;
            Some(database_url(url, &name)?)
        }
        None => None,
    };
    // The upstream CA file only has to exist and parse: no execute goes out in this mode.
    let ca_file = work.join("upstream-ca.crt");
    if !ca_file.exists() {
        std::fs::write(&ca_file, BenchCa::new()?.cert_pem)?;
    }
    let steward_options = StewardOptions {
        postgres_url: postgres_url.clone(),
        redis_url: options.redis_url.clone(),
        upstream_ca_file: ca_file,
        seeded: None,
        session_ttl_seconds: None,
    };
    let tenants = seed_tenants(options.scale);
    let total = (EVENTS_AT_SCALE_1 * options.scale).round() as u64;
    let progress_path = work.join("seed-progress.json");
    let previous = read_progress(&progress_path);
    if previous.as_ref().is_some_and(|p| p.finished && p.total == total) {
        eprintln!("steward-bench: reusing the seeded store {}", work.display());
        return Ok(Prepared { work, steward_options, tenants, total, seeding: None });
    }
    let data_dir = work.join("steward-data");
    crate::seed::init_deployment(&data_dir, postgres_url.clone(), options.redis_url.clone()).await?;
    let first_index = previous.map(|p| p.done).unwrap_or(0);
    let spec = AuditSeedSpec {
        tenants: tenants.clone(),
        total,
        big_tenant_share: options.big_tenant_share,
        first_index,
    };
    eprintln!(
        "steward-bench: seeding {} audit events into {} (from event {first_index})",
        total - first_index,
        work.display()
    );
    let report = seed(&data_dir, spec, &progress_path).await?;
    if let Some(url) = &postgres_url {
        // What autovacuum would do a little later: statistics for the planner after a bulk load.
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::query("ANALYZE audit_events").execute(&mut conn).await?;
        conn.close().await?;
    }
    write_progress(
        &progress_path,
        &Progress { done: total, total, finished: true, report: Some(report.clone()) },
    );
    eprintln!(
        "steward-bench: seeded {} events in {:.1} s ({:.0}/s)",
        report.appended, report.seconds, report.events_per_second
    );
    Ok(Prepared { work, steward_options, tenants, total, seeding: Some(report) })
}

/// Prepares the seeded store, starts Steward on it and measures.
pub async fn run(options: &AuditScaleOptions) -> Result<AuditScaleReport> {
    let prepared = prepare(options).await?;
    let process = steward::launch(&prepared.work, &prepared.steward_options).await?;
    let result = measure(&process.admin, options, &prepared.tenants, prepared.total).await;
    process.stop().await?;
    let (search, verify) = result?;
    Ok(AuditScaleReport {
        backend: if options.postgres_url.is_some() { "postgres" } else { "sqlite" }.into(),
        scale: options.scale,
        events: prepared.total,
        tenants: prepared.tenants.len(),
        big_tenant_id: prepared.tenants[0].tenant_id.clone(),
        store_dir: prepared.work,
        seeding: prepared.seeding,
        search,
        verify,
    })
}

/// The query string of one search (without cursor and limit).
fn filter_query(filter: &str, rng: &mut u64, tenants: &[AuditTenant], total: u64) -> String {
    let mut next = |n: u64| -> u64 {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng % n.max(1)
    };
    let tenant = &tenants[next(tenants.len() as u64) as usize];
    let time = |offset: u64| {
        Timestamp::from_unix_micros(START_MICROS + offset as i64).map(|t| t.to_string()).unwrap_or_default()
    };
    match filter {
        "tenant_id" => format!("tenant_id={}", tenant.tenant_id),
        "tenant_id(big)" => format!("tenant_id={}", tenants[0].tenant_id),
        "workload_id" => {
            format!("workload_id={}", tenant.workload_ids[next(tenant.workload_ids.len() as u64) as usize])
        }
        "integration_id" => format!(
            "integration_id={}",
            tenant.integration_ids[next(tenant.integration_ids.len() as u64) as usize]
        ),
        "event_type" => {
            format!("event_type={}", EVENT_TYPES[next(EVENT_TYPES.len() as u64) as usize].0.as_str())
        }
        "decision" => {
            format!("decision={}", ["allowed", "denied", "approval_required", "throttled"][next(4) as usize])
        }
        "action_group" => {
            format!("action_group={}", ACTION_GROUPS[next(ACTION_GROUPS.len() as u64) as usize])
        }
        "correlation_id" => format!("correlation_id={}", correlation_id(next(total / 2), total)),
        "since" => format!("since={}", time(next(SPAN_MICROS as u64))),
        "until" => format!("until={}", time(next(SPAN_MICROS as u64))),
        "since+until" => {
            let from = next(SPAN_MICROS as u64);
            format!("since={}&until={}", time(from), time(from + 3_600_000_000))
        }
        _ => String::new(),
    }
}

/// Every filter measured, each alone.
pub const FILTERS: [&str; 12] = [
    "tenant_id",
    "tenant_id(big)",
    "workload_id",
    "integration_id",
    "event_type",
    "decision",
    "action_group",
    "correlation_id",
    "since",
    "until",
    "since+until",
    "none",
];

async fn measure(
    admin: &crate::admin::AdminClient,
    options: &AuditScaleOptions,
    tenants: &[AuditTenant],
    total: u64,
) -> Result<(Vec<FilterLatency>, Vec<VerifyRun>)> {
    let mut rng = 0x2545_F491_4F6C_DD1D_u64;
    // One unmeasured search per filter first (connection set-up, statement caches).
    for filter in FILTERS {
        let query = filter_query(filter, &mut rng, tenants, total);
        admin.call("GET", &format!("/v1/audit/events?limit=100&{query}"), None).await?;
    }
    let mut search = Vec::new();
    for filter in FILTERS {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
        let mut returned = 0u64;
        for _ in 0..options.queries {
            let query = filter_query(filter, &mut rng, tenants, total);
            let mut cursor: Option<String> = None;
            for _ in 0..options.pages.max(1) {
                let path = match &cursor {
                    Some(cursor) => format!("/v1/audit/events?limit=100&{query}&cursor={cursor}"),
                    None => format!("/v1/audit/events?limit=100&{query}"),
                };
                let started = Instant::now();
                let (status, body) = admin.call("GET", &path, None).await?;
                let micros = started.elapsed().as_micros() as u64;
                if status != 200 {
                    bail!("GET {path} answered {status}: {body}");
                }
                histogram.record(micros.max(1))?;
                returned += body["events"].as_array().map(Vec::len).unwrap_or(0) as u64;
                cursor = body["next_cursor"].as_str().map(str::to_owned);
                if cursor.is_none() {
                    break;
                }
            }
        }
        search.push(FilterLatency {
            filter: filter.to_owned(),
            requests: histogram.len(),
            p50_ms: histogram.value_at_quantile(0.50) as f64 / 1000.0,
            p99_ms: histogram.value_at_quantile(0.99) as f64 / 1000.0,
            max_ms: histogram.max() as f64 / 1000.0,
            events_returned: returned,
        });
    }
    let mut verify = Vec::new();
    for _ in 0..options.verify_runs.max(1) {
        let started = Instant::now();
        let (status, body) =
            admin.call("GET", &format!("/v1/audit/verify?tenant_id={}", tenants[0].tenant_id), None).await?;
        let seconds = started.elapsed().as_secs_f64();
        if status != 200 {
            bail!("GET /v1/audit/verify answered {status}: {body}");
        }
        let events_checked = body["events_checked"].as_u64().unwrap_or(0);
        verify.push(VerifyRun {
            events_checked,
            chains_checked: body["chains_checked"].as_u64().unwrap_or(0),
            ok: body["ok"].as_bool() == Some(true),
            seconds,
            events_per_second: events_checked as f64 / seconds.max(1e-9),
        });
    }
    Ok((search, verify))
}

/// For tests: the report's JSON.
pub fn to_json(report: &AuditScaleReport) -> Value {
    serde_json::to_value(report).unwrap_or(Value::Null)
}

/// Opens the seeded store of a data directory with its keyring (no Steward may run on it).
pub async fn open_seeded_store(
    data_dir: &Path,
) -> Result<(Arc<dyn steward_store::Store>, steward_crypto::Keyring)> {
    let loaded =
        config::load(Some(&data_dir.join("steward.toml")), &[]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let kek_path = loaded.resolve(&loaded.config.keys.kek_file);
    let keyring = steward_crypto::Keyring::load(None, &kek_path).map_err(|e| anyhow::anyhow!("{e}"))?.keyring;
    let store = open_store(&loaded).await.map_err(|e| anyhow::anyhow!("{}", e.message))?;
    Ok((store, keyring))
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_server::services::credentials::envelope::open_audit_key;
    use steward_store::audit::verify_tenant;
    use steward_store::governance::{AuditFilter, AuditOrder};

    #[test]
    fn names_and_urls() {
        assert_eq!(scale_tag(0.1), "0_1");
        assert_eq!(scale_tag(1.0), "1");
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "stwbench_audit_1")
                .unwrap(),
            "postgres://postgres@127.0.0.1:5432/stwbench_audit_1?sslmode=disable"
        );
        assert_eq!(database_url("postgres://u@h", "db").unwrap(), "postgres://u@h/db");
        assert_eq!(seed_tenants(0.0003).len(), 3);
        assert_eq!(seed_tenants(1.0).len(), 10_000);
        assert_eq!(seed_tenants(1.0).iter().map(|t| t.integration_ids.len()).sum::<usize>(), 50_000);
    }

    /// A tiny store seeded for real (init, the audit writer, chains, checkpoints), reused by a second
    /// run, and verifiable; its searches find what was generated.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tiny_seeded_store_is_verifiable_and_reused() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let options = AuditScaleOptions {
            scale: 0.0003,
            seed_dir: dir.path().to_owned(),
            big_tenant_share: 0.5,
            postgres_url: None,
            redis_url: None,
            queries: 1,
            pages: 1,
            verify_runs: 1,
        };
        let first = prepare(&options).await?;
        let seeding = first.seeding.context("the first run seeds")?;
        assert_eq!((seeding.appended, first.total), (3000, 3000));
        let again = prepare(&options).await?;
        assert!(again.seeding.is_none(), "a fully seeded store is reused");

        let (store, keyring) = open_seeded_store(&again.work.join("steward-data")).await?;
        let deployment = store.deployment().await?.context("deployment")?;
        let audit_key =
            open_audit_key(&keyring, &deployment.audit_key).map_err(|e| anyhow::anyhow!("{e}"))?;
        let big = &again.tenants[0].tenant_id;
        let report = verify_tenant(store.as_ref(), &audit_key, big).await?;
        assert!(report.ok, "{report:?}");
        // Half the requests (two events each) are the big tenant's, give or take.
        assert!((1200..=1800).contains(&report.events_checked), "{report:?}");
        let mut all = 0;
        for tenant in &again.tenants {
            let filter = AuditFilter { tenant_id: Some(tenant.tenant_id.clone()), ..AuditFilter::default() };
            let mut cursor = None;
            loop {
                let page = store
                    .search_audit_events(&filter, cursor.as_ref(), AuditOrder::NewestFirst, 1000)
                    .await?;
                all += page.len();
                match page.last() {
                    Some(last) if page.len() == 1000 => {
                        cursor = Some(steward_store::governance::AuditCursor {
                            timestamp: last.timestamp,
                            event_id: last.event_id.to_string(),
                        })
                    }
                    _ => break,
                }
            }
        }
        assert_eq!(all, 3000);
        // Request pairs share a correlation id.
        let filter = AuditFilter { correlation_id: Some(correlation_id(7, 3000)), ..AuditFilter::default() };
        assert_eq!(store.search_audit_events(&filter, None, AuditOrder::NewestFirst, 10).await?.len(), 2);
        Ok(())
    }
}
