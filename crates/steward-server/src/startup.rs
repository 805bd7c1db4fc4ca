//! Start-up: everything `serve` checks before it accepts a single connection, in an order that
//! fails closed and early — production rules, keyring, store (its lock before any port is bound),
//! Redis, the deployment's singletons, every KEK id the store references, TLS files, then the ports.
//! Each refusal is exit 78 with a message saying what to do.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use steward_coord::{Coordinator, EmbeddedCoordinator, RedisCoordinator};
use steward_crypto::{Keyring, KeyringSource, LoadedKeyring, SigningKey};
use steward_store::audit::AuditWriter;
use steward_store::{PostgresStore, SqliteStore, Store, StoreError};
use steward_types::SharedClock;
use tokio::net::TcpListener;

use crate::config::{LoadedConfig, Mode, SqliteSynchronous, StorageBackend};
use crate::exit::StartupError;
use crate::observability::metrics_handle;
use crate::services::audit::AuditHmac;
use crate::services::credentials::envelope::{
    ca_key_context, open_audit_key, open_record, signing_key_context,
};
use crate::services::execute::Egress;
use crate::services::keys::{ActiveKeySigner, ActiveSigningKey};
use crate::services::state::{AppState, AppStateInner};
use crate::tls::ReloadableCert;

/// The process environment, captured once and passed down (nothing below reads `std::env`).
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub vars: Vec<(String, String)>,
}

impl Environment {
    pub fn from_process() -> Self {
        Self { vars: std::env::vars().collect() }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `STEWARD_KEK_KEYRING`, the keyring JSON, when set and non-empty.
    pub fn kek_keyring(&self) -> Option<&str> {
        self.get("STEWARD_KEK_KEYRING").filter(|v| !v.trim().is_empty())
    }
}

/// How often audit checkpoints are written.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);

/// Idle upstream connections kept per (host, port, address): at least the expected number of
/// concurrent calls to one upstream (the pool's cost per check-in does not grow with it).
pub const POOL_MAX_IDLE_PER_KEY: usize = 256;

/// Opens the configured store, applying migrations. SQLite takes its lock here.
pub async fn open_store(loaded: &LoadedConfig) -> Result<Arc<dyn Store>, StartupError> {
    let storage = &loaded.config.storage;
    match storage.backend {
        StorageBackend::Sqlite => {
            let path = loaded.resolve(&storage.sqlite_path);
            let sync = match storage.sqlite_synchronous {
                SqliteSynchronous::Normal => steward_store::SqliteSynchronous::Normal,
                SqliteSynchronous::Full => steward_store::SqliteSynchronous::Full,
            };
            let store = SqliteStore::open(&path, sync).await.map_err(|e| match e {
                StoreError::Locked(dir) => StartupError::environment(format!(
                    "the data directory {dir} is in use by another steward process (its store is locked); stop \
                     that process or use another data directory"
                )),
                other => StartupError::environment(format!("cannot open the store {}: {other}", path.display())),
            })?;
            Ok(Arc::new(store))
        }
        StorageBackend::Postgres => {
            let store = PostgresStore::connect(&storage.postgres_url).await.map_err(|e| {
                StartupError::environment(format!(
                    "cannot use PostgreSQL at {}: {e}",
                    redact_url(&storage.postgres_url)
                ))
            })?;
            Ok(Arc::new(store))
        }
    }
}

/// A URL with any password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// The production rules of `spec/operations.md`.
pub fn check_production_rules(loaded: &LoadedConfig, keyring: &LoadedKeyring) -> Result<(), StartupError> {
    let config = &loaded.config;
    if config.mode != Mode::Production {
        return Ok(());
    }
    if let KeyringSource::File { path, mode } = &keyring.source
        && mode & 0o077 != 0
    {
        return Err(StartupError::environment(format!(
            "production mode: the KEK keyring file {} has mode {:o}; it must not be readable by group or others \
             (chmod 600), or pass the keyring in STEWARD_KEK_KEYRING",
            path.display(),
            mode & 0o777
        )));
    }
    if config.public_base_url().map(|u| u.scheme != "https").unwrap_or(true) {
        return Err(StartupError::environment("production mode: public_base_url must be https"));
    }
    if !config.admin.listen.ip().is_loopback() && !config.admin.tls_enabled() {
        return Err(StartupError::environment(format!(
            "production mode: the admin listener {} is not on loopback, so it needs admin.tls_cert and admin.tls_key",
            config.admin.listen
        )));
    }
    Ok(())
}

/// A Steward that passed every start-up check and holds its ports, ready to serve.
#[derive(Debug)]
pub struct Prepared {
    pub state: AppState,
    pub data_listener: TcpListener,
    pub admin_listener: TcpListener,
    pub data_cert: Arc<ReloadableCert>,
    pub admin_cert: Option<Arc<ReloadableCert>>,
    pub keyring_source: KeyringSource,
    pub kek_file: std::path::PathBuf,
}

impl Prepared {
    pub fn data_addr(&self) -> SocketAddr {
        self.data_listener.local_addr().unwrap_or(self.state.config.data_plane.listen)
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_listener.local_addr().unwrap_or(self.state.config.admin.listen)
    }
}

/// Runs every start-up check and binds the ports.
pub async fn prepare(
    loaded: LoadedConfig,
    env: &Environment,
    clock: SharedClock,
) -> Result<Prepared, StartupError> {
    let config = &loaded.config;
    let kek_path = loaded.resolve(&config.keys.kek_file);
    let keyring = Keyring::load(env.kek_keyring(), &kek_path).map_err(|e| {
        StartupError::environment(format!(
            "no usable KEK keyring ({e}); set STEWARD_KEK_KEYRING or keys.kek_file, or run steward init"
        ))
    })?;
    check_production_rules(&loaded, &keyring)?;
    if !config.egress.allow_cidrs.is_empty() {
        let cidrs: Vec<String> = config.egress.allow_cidrs.iter().map(ToString::to_string).collect();
        tracing::warn!(allow_cidrs = ?cidrs, "egress.allow_cidrs exempts these ranges from the SSRF denylist for every tenant.");
    }

    let store = open_store(&loaded).await?;
    let coord: Arc<dyn Coordinator> = match config.storage.backend {
        StorageBackend::Sqlite => Arc::new(EmbeddedCoordinator::new(Arc::clone(&clock))),
        StorageBackend::Postgres => {
            let redis =
                RedisCoordinator::connect(&config.storage.redis_url, &config.storage.redis_key_prefix)
                    .await
                    .map_err(|e| redis_refusal(&config.storage.redis_url, &e))?;
            redis.ping().await.map_err(|e| redis_refusal(&config.storage.redis_url, &e))?;
            Arc::new(redis)
        }
    };

    let deployment =
        store.deployment().await.map_err(|e| StartupError::environment(format!("store: {e}")))?.ok_or_else(
            || {
                StartupError::environment(
                    "the store was never initialized: run steward init (see docs/storage.md)",
                )
            },
        )?;
    let kek_counts =
        store.envelope_counts_by_kek().await.map_err(|e| StartupError::environment(format!("store: {e}")))?;
    let keyring_value = keyring.keyring.clone();
    if let Some(missing) = kek_counts.keys().find(|id| !keyring_value.contains(id)) {
        return Err(StartupError::environment(format!(
            "the store holds envelopes under KEK id {missing:?}, which the keyring does not have; add that key to \
             the keyring (keys: {:?})",
            keyring_value.key_ids().collect::<Vec<_>>()
        )));
    }
    let wrong_keyring = |what: &str| {
        StartupError::environment(format!(
            "the KEK keyring cannot open the {what}: it is not this deployment's keyring"
        ))
    };
    open_record(&keyring_value, &ca_key_context(), &deployment.ca_key)
        .map_err(|_| wrong_keyring("CA key"))?;
    let audit_key =
        open_audit_key(&keyring_value, &deployment.audit_key).map_err(|_| wrong_keyring("audit key"))?;
    let active = &deployment.active_signing_key;
    let signing_pkcs8 = open_record(&keyring_value, &signing_key_context(&active.kid), &active.private_key)
        .map_err(|_| wrong_keyring("manifest signing key"))?;
    let signing_key = SigningKey::from_pkcs8(active.kid.clone(), &signing_pkcs8)
        .map_err(|e| StartupError::environment(format!("manifest signing key: {e}")))?;

    let data_cert = ReloadableCert::load(
        loaded.resolve(&config.data_plane.tls_cert),
        loaded.resolve(&config.data_plane.tls_key),
    )
    .map_err(|e| StartupError::environment(format!("data plane TLS: {e}")))?;
    let admin_cert = if config.admin.tls_enabled() {
        Some(
            ReloadableCert::load(
                loaded.resolve(&config.admin.tls_cert),
                loaded.resolve(&config.admin.tls_key),
            )
            .map_err(|e| StartupError::environment(format!("admin TLS: {e}")))?,
        )
    } else {
        None
    };

    let data_listener = bind("data_plane.listen", config.data_plane.listen).await?;
    let admin_listener = bind("admin.listen", config.admin.listen).await?;
    let admin_is_loopback = config.admin.listen.ip().is_loopback();

    let writer_id = format!("wr_{}", uuid::Uuid::now_v7().simple());
    let signing_key = Arc::new(ActiveSigningKey::new(signing_key, clock.now()));
    let signer = Arc::new(ActiveKeySigner::new(signing_key.shared()));
    let egress = Arc::new(build_egress(&loaded)?);
    let audit_hmac = AuditHmac::new(&audit_key);
    let audit = AuditWriter::start(
        Arc::clone(&store),
        audit_key,
        writer_id,
        Arc::clone(&clock),
        signer,
        CHECKPOINT_INTERVAL,
    );

    let started_at = if coord.is_shared() { clock.now() } else { start_on_a_whole_second(&clock).await };
    let reads = Arc::new(crate::read_cache::ReadCache::new(Arc::clone(&store)));
    let state = AppState::new(AppStateInner {
        config: loaded.config.clone(),
        store,
        coord,
        keyring: Arc::new(ArcSwap::from_pointee(keyring_value)),
        audit,
        clock,
        metrics: metrics_handle(),
        ca_pem: deployment.ca_cert_pem.clone(),
        admin_is_loopback,
        started_at,
        signing_key,
        egress,
        audit_hmac,
        templates: crate::services::execute::cache::TemplateCache::default(),
        scrubbers: crate::services::execute::cache::ScrubberCache::new(),
        reads,
    });
    Ok(Prepared {
        state,
        data_listener,
        admin_listener,
        data_cert,
        admin_cert,
        keyring_source: keyring.source,
        kek_file: kek_path,
    })
}

/// Embedded mode keeps DPoP jtis in memory only, so proofs issued before the process started are
/// refused (`spec/data-plane.md`). A proof's `iat` has whole-second precision: were the start time
/// inside a second, a proof used by the previous process in that same second would pass again. So
/// the process waits for the next whole second (less than one) and that second is its start.
async fn start_on_a_whole_second(clock: &SharedClock) -> steward_types::Timestamp {
    let now = clock.now();
    let fraction = now.unix_micros().rem_euclid(1_000_000);
    if fraction == 0 {
        return now;
    }
    let wait = 1_000_000 - fraction;
    tokio::time::sleep(Duration::from_micros(u64::try_from(wait).unwrap_or(1_000_000))).await;
    steward_types::Timestamp::from_unix_seconds(now.unix_seconds() + 1).unwrap_or(now)
}

/// The execute pipeline's resolver and forwarder, from `egress.*`. An unreadable or unusable
/// `egress.extra_ca_files` entry refuses the start (exit 78).
fn build_egress(loaded: &LoadedConfig) -> Result<Egress, StartupError> {
    let egress = &loaded.config.egress;
    let mut extra_ca_pems = Vec::with_capacity(egress.extra_ca_files.len());
    for file in &egress.extra_ca_files {
        let path = loaded.resolve(file);
        let pem = std::fs::read_to_string(&path).map_err(|e| {
            StartupError::environment(format!("egress.extra_ca_files: cannot read {}: {e}", path.display()))
        })?;
        extra_ca_pems.push(pem);
    }
    let resolver = steward_egress::HickoryResolve::new(steward_egress::ResolverSettings {
        static_hosts: egress.static_hosts.iter().map(|(h, a)| (h.clone(), a.clone())).collect(),
        dns_servers: egress.dns_servers.clone(),
        dns_timeout: Duration::from_millis(u64::from(egress.dns_timeout_ms)),
    })
    .map_err(|e| StartupError::environment(format!("egress resolver: {e}")))?;
    let forwarder = steward_egress::Forwarder::new(steward_egress::ForwarderSettings {
        connect_timeout: Duration::from_millis(u64::from(egress.connect_timeout_ms)),
        total_timeout: Duration::from_millis(u64::from(egress.total_timeout_ms)),
        max_response_bytes: egress.max_response_bytes,
        allow_cidrs: egress.allow_cidrs.clone(),
        extra_ca_pems,
        // At least the data plane's concurrency, so concurrent calls to one upstream reuse their
        // connections instead of reopening them (issue 8: 4 942 upstream handshakes with 8).
        pool_max_idle_per_key: POOL_MAX_IDLE_PER_KEY,
        ..steward_egress::ForwarderSettings::default()
    })
    .map_err(|e| StartupError::environment(format!("egress.extra_ca_files: {e}")))?;
    Ok(Egress::new(Arc::new(resolver), forwarder))
}

fn redis_refusal(url: &str, error: &dyn std::fmt::Display) -> StartupError {
    StartupError::environment(format!("Redis at {} did not answer: {error}", redact_url(url)))
}

async fn bind(key: &str, address: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(address)
        .await
        .map_err(|e| StartupError::environment(format!("cannot listen on {address} ({key}): {e}")))
}
