//! `steward init`: creates a data directory and a deployment (CA, audit key, manifest signing key,
//! owner token) in an empty store, or joins an existing shared deployment with its keyring. It never
//! overwrites a keyring or a store; `--force` only rewrites `steward.toml` and the TLS files.
//!
//! Ordering keeps the root secret safe: a generated keyring is written to disk *before* the
//! deployment it protects is committed, and removed again only if another `init` won the race. An
//! `init` that lost the race while holding a keyring it was given joins the winner's deployment when
//! that keyring opens it (decision 0007), exactly as a later `init` with that keyring would.

use std::path::{Path, PathBuf};

use steward_crypto::{Keyring, SigningKey, WorkloadCa, generate_audit_key, generate_token, hash_token};
use steward_store::{
    AdminRole, AdminTokenRecord, Deployment, InitOutcome, NewDeployment, SigningKeyRecord, Store,
};
use steward_types::{SharedClock, SigningKeyId, TokenId};

use crate::config::{self, InitChoices, LoadedConfig, PublicBaseUrl, StorageBackend};
use crate::exit::{ExitCode, StartupError};
use crate::files;
use crate::services::credentials::envelope::{ca_key_context, open_record, seal_record, signing_key_context};
use crate::services::identity::admin::ADMIN_TOKEN_PREFIX;
use crate::startup::{Environment, open_store};

/// What `steward init` was asked to do.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub data_dir: PathBuf,
    pub public_url: Option<String>,
    pub storage: StorageBackend,
    pub postgres_url: Option<String>,
    pub redis_url: Option<String>,
    pub kek_file: Option<PathBuf>,
    pub force: bool,
}

/// What `steward init` did, for the summary it prints.
#[derive(Debug, Clone)]
pub struct InitReport {
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    pub outcome: InitKind,
    /// Where the new owner token was written (only when a deployment was created).
    pub admin_token_path: Option<PathBuf>,
    pub written: Vec<PathBuf>,
    pub kept: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitKind {
    /// A new deployment was created in the store.
    Created,
    /// The store already held a deployment (shared: another instance created it); this directory
    /// now holds a server certificate from its CA.
    Joined,
}

/// Validity of the data plane's server certificate.
const SERVER_CERT_DAYS: u32 = 365;

pub async fn init(
    options: &InitOptions,
    env: &Environment,
    clock: SharedClock,
) -> Result<InitReport, StartupError> {
    if let Some(url) = &options.public_url {
        PublicBaseUrl::parse(url).map_err(|m| StartupError {
            exit: ExitCode::InvalidConfig,
            message: format!("--public-url: {m}"),
        })?;
    }
    let shared = match options.storage {
        StorageBackend::Sqlite => None,
        StorageBackend::Postgres => {
            let (Some(pg), Some(redis)) = (&options.postgres_url, &options.redis_url) else {
                return Err(StartupError {
                    exit: ExitCode::InvalidConfig,
                    message: "--storage postgres needs --postgres-url and --redis-url".into(),
                });
            };
            Some((pg.clone(), redis.clone()))
        }
    };
    let data_dir = &options.data_dir;
    files::create_private_dir(data_dir)
        .map_err(|e| StartupError::environment(format!("cannot create {}: {e}", data_dir.display())))?;
    let mut report = InitReport {
        data_dir: data_dir.clone(),
        config_path: data_dir.join("steward.toml"),
        outcome: InitKind::Created,
        admin_token_path: None,
        written: Vec::new(),
        kept: Vec::new(),
    };

    // 1. The configuration file.
    let config_path = report.config_path.clone();
    if options.force || !config_path.exists() {
        let text =
            config::default_config_toml(&InitChoices { public_base_url: options.public_url.clone(), shared });
        files::replace_file(&config_path, text.as_bytes(), 0o600).map_err(|e| io_error(&config_path, e))?;
        report.written.push(config_path.clone());
    } else {
        report.kept.push(config_path.clone());
    }
    let loaded = config::load(Some(&config_path), &[])?;

    // 2. The keyring we were given, if any: STEWARD_KEK_KEYRING, then --kek-file, then the data dir's.
    let kek_path = loaded.resolve(&loaded.config.keys.kek_file);
    let given = given_keyring(options, env, &kek_path)?;
    let keyring_from_env = env.kek_keyring().is_some();

    // 3. The store (SQLite takes its lock here: a running `serve` makes this exit 78).
    let store = open_store(&loaded).await?;
    let deployment =
        store.deployment().await.map_err(|e| StartupError::environment(format!("store: {e}")))?;

    let (keyring, deployment) = match deployment {
        Some(deployment) => {
            report.outcome = InitKind::Joined;
            let keyring = join_keyring(given, keyring_from_env, &deployment, &kek_path, &mut report)?;
            (keyring, deployment)
        }
        None => {
            let trust_domain = loaded.config.trust_domain.clone();
            match create_deployment(&*store, given, &kek_path, data_dir, &trust_domain, &clock, &mut report)
                .await?
            {
                Created::Here(keyring, deployment) => (keyring, *deployment),
                // Another `init` committed first; with a keyring of our own we join it instead.
                Created::Elsewhere(given) => {
                    report.outcome = InitKind::Joined;
                    let deployment = store
                        .deployment()
                        .await
                        .map_err(|e| StartupError::environment(format!("store: {e}")))?
                        .ok_or_else(|| {
                            StartupError::failure(
                                "another init reported a deployment the store does not hold",
                            )
                        })?;
                    let keyring = join_keyring(Some(given), keyring_from_env, &deployment, &kek_path, &mut report).map_err(|_| {
                        StartupError::environment(
                            "another steward init created this deployment at the same time, under another KEK \
                             keyring; run init again with that deployment's keyring (--kek-file or \
                             STEWARD_KEK_KEYRING) to join it",
                        )
                    })?;
                    (keyring, deployment)
                }
            }
        }
    };

    // 4. The CA certificate and the data plane's TLS files.
    let ca_path = data_dir.join("ca.crt");
    files::replace_file(&ca_path, deployment.ca_cert_pem.as_bytes(), 0o644)
        .map_err(|e| io_error(&ca_path, e))?;
    report.written.push(ca_path);
    write_server_cert(&loaded, &keyring, &deployment, options.force, &clock, &mut report)?;
    Ok(report)
}

fn given_keyring(
    options: &InitOptions,
    env: &Environment,
    kek_path: &Path,
) -> Result<Option<Keyring>, StartupError> {
    let bad = |source: &str, e: &dyn std::fmt::Display| StartupError::environment(format!("{source}: {e}"));
    if let Some(json) = env.kek_keyring() {
        return Keyring::parse_json(json).map(Some).map_err(|e| bad("STEWARD_KEK_KEYRING", &e));
    }
    for path in options.kek_file.iter().map(PathBuf::as_path).chain([kek_path]) {
        if path.exists() {
            let loaded = Keyring::load(None, path).map_err(|e| bad(&path.display().to_string(), &e))?;
            return Ok(Some(loaded.keyring));
        }
    }
    if let Some(path) = &options.kek_file {
        return Err(StartupError::environment(format!("--kek-file {} does not exist", path.display())));
    }
    Ok(None)
}

/// Joining: the keyring must be the deployment's (it must open the CA key). A keyring given by file
/// is copied into the data directory so `serve` finds it; one from the environment is not written.
fn join_keyring(
    given: Option<Keyring>,
    from_env: bool,
    deployment: &Deployment,
    kek_path: &Path,
    report: &mut InitReport,
) -> Result<Keyring, StartupError> {
    let Some(keyring) = given else {
        return Err(StartupError::environment(
            "this store already holds a Steward deployment; joining it needs its KEK keyring: pass \
             --kek-file FILE or set STEWARD_KEK_KEYRING",
        ));
    };
    open_record(&keyring, &ca_key_context(), &deployment.ca_key).map_err(|_| {
        StartupError::environment(
            "the given KEK keyring cannot open this deployment's CA key: it is not this deployment's keyring; \
             pass that deployment's keyring with --kek-file FILE or STEWARD_KEK_KEYRING to join it",
        )
    })?;
    // A keyring from the environment stays off this disk: `serve` reads it from the environment too.
    if !from_env {
        if kek_path.exists() {
            report.kept.push(kek_path.to_owned());
        } else {
            files::create_private(kek_path, keyring.to_json().as_bytes())
                .map_err(|e| io_error(kek_path, e))?;
            report.written.push(kek_path.to_owned());
        }
    }
    Ok(keyring)
}

/// Where the deployment came from when the store held none at first.
enum Created {
    /// This `init` created it, under this keyring.
    Here(Keyring, Box<Deployment>),
    /// Another `init` on the same database committed first; this one had been given a keyring
    /// (returned here), so it can try to join. Every file it wrote has been removed again.
    Elsewhere(Keyring),
}

async fn create_deployment(
    store: &dyn Store,
    given: Option<Keyring>,
    kek_path: &Path,
    data_dir: &Path,
    trust_domain: &str,
    clock: &SharedClock,
    report: &mut InitReport,
) -> Result<Created, StartupError> {
    let now = clock.now();
    let generated = given.is_none();
    let keyring = given.unwrap_or_else(Keyring::generate);
    let mut created_files = Vec::new();
    if generated {
        files::create_private(kek_path, keyring.to_json().as_bytes()).map_err(|e| io_error(kek_path, e))?;
        created_files.push(kek_path.to_owned());
    } else if !kek_path.exists() {
        files::create_private(kek_path, keyring.to_json().as_bytes()).map_err(|e| io_error(kek_path, e))?;
        created_files.push(kek_path.to_owned());
    }

    let seal_failed =
        |e: crate::services::credentials::envelope::SealError| StartupError::failure(e.to_string());
    let ca =
        WorkloadCa::generate(trust_domain, now).map_err(|e| StartupError::failure(format!("CA: {e}")))?;
    let ca_key = seal_record(&keyring, &ca_key_context(), &ca.private_key_pkcs8()).map_err(seal_failed)?;
    let audit_key = seal_record(
        &keyring,
        &crate::services::credentials::envelope::audit_key_context(),
        generate_audit_key().as_slice(),
    )
    .map_err(seal_failed)?;
    let kid = SigningKeyId::generate();
    let (signing_key, signing_pkcs8) =
        SigningKey::generate(kid.clone()).map_err(|e| StartupError::failure(format!("signing key: {e}")))?;
    let signing_record = SigningKeyRecord {
        kid: kid.clone(),
        public_key: signing_key.public_key_raw().to_vec(),
        private_key: seal_record(&keyring, &signing_key_context(&kid), &signing_pkcs8)
            .map_err(seal_failed)?,
        created_at: now,
        retired_at: None,
    };
    let token = generate_token(ADMIN_TOKEN_PREFIX);
    let owner_token = AdminTokenRecord {
        token_id: TokenId::generate(),
        name: "owner (steward init)".into(),
        role: AdminRole::Owner,
        tenant_ids: Vec::new(),
        token_hash: hash_token(token.expose()),
        created_at: now,
        expires_at: None,
        revoked_at: None,
    };
    let token_path = data_dir.join("admin-token");
    let _ = std::fs::remove_file(&token_path);
    files::create_private(&token_path, format!("{}\n", token.expose()).as_bytes())
        .map_err(|e| io_error(&token_path, e))?;
    created_files.push(token_path.clone());

    let new = NewDeployment {
        ca_cert_pem: ca.cert_pem().to_owned(),
        ca_key,
        audit_key,
        signing_key: signing_record,
        owner_token,
        created_at: now,
    };
    let outcome = store.initialize_deployment(new).await;
    match outcome {
        Ok(InitOutcome::Created) => {
            crate::builtin_templates::install_builtin_templates(store, now)
                .await
                .map_err(|e| StartupError::environment(format!("installing the built-in templates: {e}")))?;
        }
        Ok(InitOutcome::AlreadyInitialized) | Err(_) => {
            // This init's owner token was never stored, and the keyring it wrote protects nothing.
            for path in &created_files {
                let _ = std::fs::remove_file(path);
            }
            return match outcome {
                Err(e) => Err(StartupError::environment(format!("store: {e}"))),
                // A keyring we were given may be the winner's: the caller checks and joins.
                _ if !generated => Ok(Created::Elsewhere(keyring)),
                _ => Err(StartupError::environment(
                    "another steward init created this deployment at the same time; run init again with its \
                     keyring (--kek-file or STEWARD_KEK_KEYRING) to join it",
                )),
            };
        }
    }
    report.written.extend(created_files);
    report.admin_token_path = Some(token_path);
    let deployment = store
        .deployment()
        .await
        .map_err(|e| StartupError::environment(format!("store: {e}")))?
        .ok_or_else(|| StartupError::failure("the deployment vanished right after it was created"))?;
    Ok(Created::Here(keyring, Box::new(deployment)))
}

fn write_server_cert(
    loaded: &LoadedConfig,
    keyring: &Keyring,
    deployment: &Deployment,
    force: bool,
    clock: &SharedClock,
    report: &mut InitReport,
) -> Result<(), StartupError> {
    let cert_path = loaded.resolve(&loaded.config.data_plane.tls_cert);
    let key_path = loaded.resolve(&loaded.config.data_plane.tls_key);
    if !force && cert_path.exists() && key_path.exists() {
        report.kept.extend([cert_path, key_path]);
        return Ok(());
    }
    let ca_key = open_record(keyring, &ca_key_context(), &deployment.ca_key)
        .map_err(|e| StartupError::environment(format!("cannot open the CA key: {e}")))?;
    let ca = WorkloadCa::from_parts(&deployment.ca_cert_pem, &ca_key)
        .map_err(|e| StartupError::failure(format!("CA: {e}")))?;
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if let Ok(url) = loaded.config.public_base_url() {
        let host = url.bare_host().to_owned();
        if !names.contains(&host) {
            names.push(host);
        }
    }
    let issued = ca
        .issue_server_cert(&names, clock.now(), SERVER_CERT_DAYS)
        .map_err(|e| StartupError::failure(format!("server certificate: {e}")))?;
    for dir in [cert_path.parent(), key_path.parent()].into_iter().flatten() {
        files::create_private_dir(dir).map_err(|e| io_error(dir, e))?;
    }
    files::replace_file(&key_path, issued.key_pem.as_bytes(), 0o600).map_err(|e| io_error(&key_path, e))?;
    files::replace_file(&cert_path, issued.cert_pem.as_bytes(), 0o644)
        .map_err(|e| io_error(&cert_path, e))?;
    report.written.extend([cert_path, key_path]);
    Ok(())
}

fn io_error(path: &Path, error: std::io::Error) -> StartupError {
    StartupError::environment(format!("cannot write {}: {error}", path.display()))
}
