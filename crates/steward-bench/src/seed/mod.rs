//! `--seed-scale F` (issue 18): a store already holding F × (10 000 tenants, 50 000 integrations,
//! 200 000 policy rules, 10 000 000 audit events), so execute can be measured against a full store
//! as well as an empty one.
//!
//! A seed is a whole deployment: a data directory made by `bootstrap::init` (configuration, KEK
//! keyring, CA, owner token; for SQLite the database too) plus, in shared mode, the PostgreSQL
//! database `stwbench_seed_<scale>` on the server of `--postgres-url`. It is written through the
//! store's traits before any Steward runs ([`catalog`], then the audit events), and kept under
//! `--seed-dir` (default: the system temp dir) as `stwbench-seed-<backend>-<scale>/`, with a
//! `seed.json` manifest written last. A later run with the same scale and backend reuses it after
//! checking that it is whole: the manifest is complete, the keyring in the directory opens the
//! deployment's CA key (so the keyring and the data belong together), and the bench's integration
//! is there. Anything else is removed and seeded again.
//!
//! Each run works on a private copy ([`RunCopy`]: the directory copied, the database copied with
//! `CREATE DATABASE … TEMPLATE`), so runs never see each other's audit events, sessions or
//! workloads — measured: used in place, the seed's audit tables grew run after run and the seeded
//! figure drifted down with them. The read cache needs nothing special: it starts empty in every
//! child and follows the store's change counter, which the seeding moved through the same triggers
//! as any admin write.

pub mod audit;
pub mod catalog;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use steward_crypto::Keyring;
use steward_server::bootstrap::{InitOptions, init};
use steward_server::config::{self, LoadedConfig, StorageBackend};
use steward_server::services::credentials::envelope::{ca_key_context, open_record};
use steward_server::startup::Environment;
use steward_store::{Deployment, PostgresStore, SqliteStore, SqliteSynchronous, Store};
use steward_types::{Clock, SystemClock, Timestamp};

use crate::seed::catalog::{CatalogCounts, CatalogSeed};

/// The manifest's format; a seed of another format is seeded again.
const MANIFEST_FORMAT: u32 = 1;
/// Audit events at F = 1.0.
const AUDIT_EVENTS_AT_FULL_SCALE: f64 = 10_000_000.0;

/// What to seed and where.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub scale: f64,
    /// How many audit events to seed instead of `scale × 10 M` (`--seed-audit-events`; 0 measures the
    /// catalog alone). A seed with another count is kept apart from the default one.
    pub audit_events: Option<u64>,
    /// The directory that holds the seeds (`--seed-dir`).
    pub root: PathBuf,
    /// Shared mode: the server (any database on it) and Redis.
    pub postgres_url: Option<String>,
    pub redis_url: Option<String>,
}

/// `seed.json`: what a seed holds and how long it took to make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedManifest {
    pub format: u32,
    pub scale: f64,
    pub backend: String,
    /// Shared mode: the seed's database.
    pub database: Option<String>,
    pub counts: CatalogCounts,
    pub audit_events: u64,
    pub bench_tenant_id: String,
    pub bench_integration_id: String,
    /// `(stage, rows, seconds)`.
    pub stages: Vec<(String, u64, f64)>,
    pub seeding_seconds: f64,
}

/// A seed ready for a run.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub dir: PathBuf,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    pub manifest: SeedManifest,
    /// Whether an existing seed was reused (else it was just made).
    pub reused: bool,
    /// How long checking (reuse) or seeding took now.
    pub prepare_seconds: f64,
}

impl Seeded {
    /// One line for the report: where the seed is and what it cost.
    pub fn describe(&self) -> String {
        let m = &self.manifest;
        format!(
            "seed F={} ({}): {} tenants, {} integrations, {} rules, {} audit events at {}{}; {} (seeding took {:.1} s{})",
            m.scale,
            m.backend,
            m.counts.tenants,
            m.counts.integrations,
            m.counts.policies,
            m.audit_events,
            self.dir.display(),
            m.database.as_ref().map(|d| format!(" + database {d}")).unwrap_or_default(),
            if self.reused { "reused" } else { "made now" },
            m.seeding_seconds,
            m.stages.iter().map(|(s, n, t)| format!("; {s}: {n} in {t:.1} s")).collect::<String>(),
        )
    }
}

/// `0.001` → `0_001`: the scale as it appears in directory and database names.
pub fn scale_key(scale: f64) -> String {
    format!("{scale}").replace(['.', '-', '+'], "_")
}

/// The seed's name in directory and database names: its scale, plus its audit event count when that
/// is not the scale's.
pub fn seed_key(options: &SeedOptions) -> String {
    let scale = scale_key(options.scale);
    match options.audit_events {
        Some(events) if events != audit_events_at(options.scale) => format!("{scale}_audit{events}"),
        _ => scale,
    }
}

/// The audit events of scale F.
pub fn audit_events_at(scale: f64) -> u64 {
    (AUDIT_EVENTS_AT_FULL_SCALE * scale).round().max(0.0) as u64
}

/// `url` with its database replaced by `database` (query string kept).
pub fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Makes sure a seed of `options.scale` exists (reusing a whole one) and returns it. Prints where it
/// is and how long it took on stderr.
pub async fn prepare(options: &SeedOptions) -> Result<Seeded> {
    if !(options.scale.is_finite() && options.scale > 0.0) {
        bail!("--seed-scale must be above 0");
    }
    let backend = match (&options.postgres_url, &options.redis_url) {
        (Some(_), Some(_)) => "postgres",
        (None, None) => "sqlite",
        _ => bail!("--postgres-url and --redis-url go together"),
    };
    let key = seed_key(options);
    let dir = options.root.join(format!("stwbench-seed-{backend}-{key}"));
    let database = (backend == "postgres").then(|| format!("stwbench_seed_{key}"));
    let started = Instant::now();
    let clock = SystemClock;
    let mut seeded = Seeded {
        data_dir: dir.join("steward-data"),
        config_path: dir.join("steward-data").join("steward.toml"),
        dir: dir.clone(),
        manifest: SeedManifest {
            format: MANIFEST_FORMAT,
            scale: options.scale,
            backend: backend.to_owned(),
            database: database.clone(),
            counts: CatalogCounts::at_scale(options.scale),
            audit_events: options.audit_events.unwrap_or_else(|| audit_events_at(options.scale)),
            bench_tenant_id: String::new(),
            bench_integration_id: String::new(),
            stages: Vec::new(),
            seeding_seconds: 0.0,
        },
        reused: false,
        prepare_seconds: 0.0,
    };
    match reusable(&seeded, options).await {
        Ok(manifest) => {
            seeded.manifest = manifest;
            seeded.reused = true;
            seeded.prepare_seconds = started.elapsed().as_secs_f64();
            eprintln!("steward-bench: {}", seeded.describe());
            return Ok(seeded);
        }
        Err(why) if dir.exists() => {
            eprintln!(
                "steward-bench: the seed at {} is not reusable ({why:#}); seeding again",
                dir.display()
            );
        }
        Err(_) => {}
    }

    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let seed_url = match (&options.postgres_url, &database) {
        (Some(url), Some(database)) => Some(recreate_database(url, database).await?),
        _ => None,
    };
    eprintln!(
        "steward-bench: seeding F={} ({backend}) into {}{} …",
        options.scale,
        dir.display(),
        database.as_ref().map(|d| format!(" + database {d}")).unwrap_or_default()
    );
    seeded.config_path = init_deployment(&seeded.data_dir, seed_url, options.redis_url.clone()).await?;

    let opened = open(&seeded.config_path).await?;
    let outcome = seed_into(&opened, &mut seeded.manifest, clock.now()).await;
    opened.close().await;
    outcome?;
    if let (Some(url), Some(database)) = (&options.postgres_url, &database) {
        admin_sql(url, &format!("ALTER DATABASE \"{database}\" RESET synchronous_commit")).await?;
    }
    seeded.manifest.seeding_seconds = started.elapsed().as_secs_f64();
    let text = serde_json::to_string_pretty(&seeded.manifest)?;
    let manifest_path = dir.join("seed.json");
    std::fs::write(dir.join("seed.json.tmp"), text)?;
    std::fs::rename(dir.join("seed.json.tmp"), &manifest_path)?;
    seeded.prepare_seconds = seeded.manifest.seeding_seconds;
    eprintln!("steward-bench: {}", seeded.describe());
    Ok(seeded)
}

/// A private copy of a seed for one run, so that no run sees another's writes (audit events,
/// sessions, workloads): the data directory copied into the run's temp directory, and in shared mode
/// the database copied with `CREATE DATABASE … TEMPLATE` (dropped by [`RunCopy::remove`]).
#[derive(Debug)]
pub struct RunCopy {
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    /// `(server URL, database)` of the copied database.
    database: Option<(String, String)>,
}

impl RunCopy {
    pub async fn make(seeded: &Seeded, work_dir: &Path, postgres_url: Option<&str>) -> Result<RunCopy> {
        let started = Instant::now();
        let data_dir = work_dir.join("seeded-data");
        copy_dir(&seeded.data_dir, &data_dir)?;
        let config_path = data_dir.join("steward.toml");
        let mut database = None;
        if let (Some(url), Some(seed_db)) = (postgres_url, &seeded.manifest.database) {
            let name = format!("stwbench_run_{}", uuid::Uuid::new_v4().simple());
            admin_sql(url, &format!("CREATE DATABASE \"{name}\" TEMPLATE \"{seed_db}\"")).await?;
            database = Some((url.to_owned(), name.clone()));
            let text = std::fs::read_to_string(&config_path)?;
            let loaded = config::load(Some(&config_path), &[]).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let old = &loaded.config.storage.postgres_url;
            if old.is_empty() || !text.contains(old.as_str()) {
                bail!("the seed's steward.toml names no PostgreSQL URL to replace");
            }
            std::fs::write(&config_path, text.replace(old.as_str(), &replace_database(old, &name)))?;
        }
        eprintln!(
            "steward-bench: copied the seed for this run in {:.1} s{}",
            started.elapsed().as_secs_f64(),
            database.as_ref().map(|(_, d)| format!(" (database {d})")).unwrap_or_default()
        );
        Ok(RunCopy { data_dir, config_path, database })
    }

    /// Drops the copied database (the directory goes with the run's temp directory).
    pub async fn remove(self) -> Result<()> {
        if let Some((url, name)) = &self.database {
            admin_sql(url, &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await?;
        }
        Ok(())
    }
}

/// Copies a directory tree, leaving out SQLite's lock file.
/// `steward init` of a seed's deployment into `data_dir` (SQLite, or PostgreSQL at `postgres_url`
/// with Redis at `redis_url`); the harness overrides the listeners and public URL when it runs
/// Steward on it. Returns the path of its `steward.toml`.
pub async fn init_deployment(
    data_dir: &Path,
    postgres_url: Option<String>,
    redis_url: Option<String>,
) -> Result<PathBuf> {
    let report = init(
        &InitOptions {
            data_dir: data_dir.to_owned(),
            public_url: Some("https://localhost:8443".into()),
            storage: if postgres_url.is_some() { StorageBackend::Postgres } else { StorageBackend::Sqlite },
            postgres_url,
            redis_url,
            kek_file: None,
            force: false,
        },
        &Environment { vars: Vec::new() },
        Arc::new(SystemClock),
    )
    .await
    .map_err(|e| anyhow::anyhow!("steward init: {}", e.message))?;
    Ok(report.config_path)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if !entry.file_name().to_string_lossy().ends_with(".lock") {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Drops and creates `database` on the server of `url`, with `synchronous_commit = off` while it
/// is seeded (see [`admin_sql`]); returns the database's URL.
async fn recreate_database(url: &str, database: &str) -> Result<String> {
    admin_sql(url, &format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)")).await?;
    admin_sql(url, &format!("CREATE DATABASE \"{database}\"")).await?;
    // Every change-counter trigger updates one row, so concurrent seeding transactions queue on its
    // lock and, with synchronous commits, on one WAL flush each. The seed is rebuilt from scratch
    // when anything is wrong with it, so it need not be durable while it is written; the setting is
    // reset once seeding is done, before any Steward runs on it.
    admin_sql(url, &format!("ALTER DATABASE \"{database}\" SET synchronous_commit = off")).await?;
    Ok(replace_database(url, database))
}

/// One statement on the `postgres` database of the server of `url`.
async fn admin_sql(url: &str, sql: &str) -> Result<()> {
    let admin_url = replace_database(url, "postgres");
    let mut conn =
        PgConnection::connect(&admin_url).await.with_context(|| format!("connecting to {admin_url}"))?;
    sqlx::query(sql).execute(&mut conn).await.with_context(|| sql.to_owned())?;
    conn.close().await.ok();
    Ok(())
}

/// A seed's manifest, when the seed is whole and its keyring opens its deployment.
async fn reusable(seeded: &Seeded, options: &SeedOptions) -> Result<SeedManifest> {
    let text = std::fs::read_to_string(seeded.dir.join("seed.json")).context("no complete seed.json")?;
    let manifest: SeedManifest = serde_json::from_str(&text).context("seed.json")?;
    let expected = &seeded.manifest;
    if manifest.format != MANIFEST_FORMAT
        || manifest.scale != expected.scale
        || manifest.backend != expected.backend
        || manifest.database != expected.database
        || manifest.counts != expected.counts
        || manifest.audit_events != expected.audit_events
    {
        bail!("seed.json describes another seed");
    }
    if options.postgres_url.is_some() {
        // Refuses a seed directory whose database points at another server.
        let loaded = config::load(Some(&seeded.config_path), &[]).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let wanted = replace_database(options.postgres_url.as_deref().unwrap_or_default(), "");
        let have = replace_database(&loaded.config.storage.postgres_url, "");
        if wanted != have {
            bail!("the seed's database is on {have}, not {wanted}");
        }
    }
    let opened = open(&seeded.config_path).await?;
    let check = async {
        let integration = opened
            .store
            .integration(&steward_types::IntegrationId::parse(&manifest.bench_integration_id)?)
            .await?
            .context("the bench's integration is missing")?;
        if integration.tenant_id.as_str() != manifest.bench_tenant_id {
            bail!("the bench's integration belongs to another tenant");
        }
        Ok(())
    }
    .await;
    opened.close().await;
    check?;
    Ok(manifest)
}

/// A seed's store, opened with its keyring (checked against the deployment).
struct Opened {
    store: Arc<dyn Store>,
    sqlite: Option<Arc<SqliteStore>>,
    postgres: Option<Arc<PostgresStore>>,
    keyring: Keyring,
    deployment: Deployment,
    loaded: LoadedConfig,
}

impl Opened {
    /// Closes the pools, so the SQLite WAL is checkpointed and its lock released for the child.
    async fn close(self) {
        if let Some(store) = &self.sqlite {
            store.close().await;
        }
        if let Some(store) = &self.postgres {
            store.close().await;
        }
    }
}

async fn open(config_path: &Path) -> Result<Opened> {
    let loaded = config::load(Some(config_path), &[]).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let kek_path = loaded.resolve(&loaded.config.keys.kek_file);
    let keyring = Keyring::load(None, &kek_path)
        .with_context(|| format!("loading the keyring {}", kek_path.display()))?
        .keyring;
    let (store, sqlite, postgres): (Arc<dyn Store>, _, _) = match loaded.config.storage.backend {
        StorageBackend::Sqlite => {
            let path = loaded.resolve(&loaded.config.storage.sqlite_path);
            let store = Arc::new(SqliteStore::open(&path, SqliteSynchronous::Normal).await?);
            (store.clone(), Some(store), None)
        }
        StorageBackend::Postgres => {
            let store = Arc::new(PostgresStore::connect(&loaded.config.storage.postgres_url).await?);
            (store.clone(), None, Some(store))
        }
    };
    let deployment = store.deployment().await?.context("the store holds no deployment")?;
    open_record(&keyring, &ca_key_context(), &deployment.ca_key)
        .map_err(|_| anyhow::anyhow!("the keyring in the seed directory does not open its deployment"))?;
    Ok(Opened { store, sqlite, postgres, keyring, deployment, loaded })
}

async fn seed_into(opened: &Opened, manifest: &mut SeedManifest, now: Timestamp) -> Result<()> {
    let stages = std::sync::Mutex::new(Vec::new());
    let progress = |stage: &str, rows: u64, seconds: f64| {
        eprintln!("steward-bench:   {stage}: {rows} in {seconds:.1} s");
        if let Ok(mut stages) = stages.lock() {
            stages.push((stage.to_owned(), rows, seconds));
        }
    };
    let catalog = catalog::seed_catalog(
        Arc::clone(&opened.store),
        &opened.keyring,
        &opened.loaded.config.trust_domain,
        manifest.counts,
        now,
        &progress,
    )
    .await?;
    manifest.bench_tenant_id = catalog.bench_tenant_id.clone();
    manifest.bench_integration_id = catalog.bench_integration_id.clone();
    let started = Instant::now();
    let context = AuditSeedContext {
        store: Arc::clone(&opened.store),
        keyring: &opened.keyring,
        deployment: &opened.deployment,
        catalog: &catalog,
    };
    let written = seed_audit_events(&context, manifest.audit_events).await?;
    let seconds = started.elapsed().as_secs_f64();
    progress("audit events", written, seconds);
    manifest.audit_events = written;
    manifest.stages = stages.into_inner().unwrap_or_default();
    Ok(())
}

/// What the audit generator gets: the seed's store, its keyring and deployment (audit key, signing
/// key), and every seeded tenant with its workload and integrations.
pub struct AuditSeedContext<'a> {
    pub store: Arc<dyn Store>,
    pub keyring: &'a Keyring,
    pub deployment: &'a Deployment,
    pub catalog: &'a CatalogSeed,
}

impl std::fmt::Debug for AuditSeedContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSeedContext")
            .field("backend", &self.store.backend())
            .field("tenants", &self.catalog.tenants.len())
            .finish_non_exhaustive()
    }
}

/// The share of all audit events the first tenant (the bench's own) holds: at F = 1.0, 1.2 million,
/// so verifying one tenant's chain walks a large chain.
pub const BIG_TENANT_SHARE: f64 = 0.12;

/// Appends `target` audit events over the seeded tenants through the deployment's own audit writer
/// ([`audit::seed_audit_events`]: real chains, HMAC'd with the audit key, checkpointed with the
/// signing key), the first tenant holding [`BIG_TENANT_SHARE`] of them. Returns how many it wrote.
pub async fn seed_audit_events(context: &AuditSeedContext<'_>, target: u64) -> Result<u64> {
    if target == 0 {
        return Ok(0);
    }
    let tenants = context
        .catalog
        .tenants
        .iter()
        .map(|tenant| audit::AuditTenant {
            tenant_id: tenant.tenant_id.clone(),
            workload_ids: vec![tenant.workload_id.clone()],
            integration_ids: tenant.integrations.clone(),
        })
        .collect();
    let spec =
        audit::AuditSeedSpec { tenants, total: target, big_tenant_share: BIG_TENANT_SHARE, first_index: 0 };
    let writer = audit::open_seed_writer(Arc::clone(&context.store), context.keyring).await?;
    let report = audit::seed_audit_events(&writer, &spec, &|_| {}).await?;
    writer.shutdown().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(report.appended)
}

#[cfg(test)]
mod tests;
