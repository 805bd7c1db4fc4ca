//! `init`, `serve`, `migrate` and `keys generate-kek`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use steward_crypto::Keyring;
use steward_server::bootstrap::{InitKind, InitOptions, InitReport, init as run_init};
use steward_server::config::{self, LoadedConfig, Mode, StorageBackend};
use steward_server::startup::{Environment, open_store};
use steward_server::{ExitCode, StartupError, files, runtime};
use steward_types::{SharedClock, SystemClock};

/// The data directory `serve` uses without `--config`.
const DEFAULT_DATA_DIR: &str = "steward-data";

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

pub async fn init(options: InitOptions) -> Result<(), StartupError> {
    let env = Environment::from_process();
    let report = run_init(&options, &env, clock()).await?;
    print_init_report(&report);
    Ok(())
}

fn print_init_report(report: &InitReport) {
    let mut out = std::io::stdout().lock();
    let dir = report.data_dir.display();
    // Every address printed below comes from the configuration `serve` will read (with the same
    // STEWARD_* overlay), so a changed listener or public URL is never contradicted here.
    let env = Environment::from_process();
    let loaded = config::load(Some(&report.config_path), &env.vars).ok();
    let kek_path = loaded.as_ref().map(|l| l.resolve(&l.config.keys.kek_file));
    let kek_kept = kek_path.is_some_and(|kek| report.kept.contains(&kek));
    let _ = match report.outcome {
        InitKind::Created => writeln!(out, "Created a new Steward deployment in {dir}."),
        // The data directory was initialized before: its keyring, store and owner token stay.
        InitKind::Joined if kek_kept => writeln!(
            out,
            "{dir} already holds a Steward deployment: its keyring, store and owner token are unchanged."
        ),
        InitKind::Joined => {
            writeln!(out, "Joined the existing Steward deployment; this instance's files are in {dir}.")
        }
    };
    for path in &report.written {
        let _ = writeln!(out, "  wrote {}", path.display());
    }
    for path in &report.kept {
        let _ = writeln!(out, "  kept  {}", path.display());
    }
    let Some(loaded) = loaded else {
        let _ = writeln!(out, "\nNext steps: steward serve --config {}", report.config_path.display());
        return;
    };
    let config = &loaded.config;
    if let Some(mismatch) = crate::urls::port_mismatch(config, &report.config_path) {
        eprintln!("steward: warning: {}.\nsteward: {}.", mismatch.detail, mismatch.fix);
    }
    let default_dir =
        report.data_dir.strip_prefix(".").unwrap_or(&report.data_dir) == Path::new(DEFAULT_DATA_DIR);
    let admin_flags = if default_dir { String::new() } else { format!(" --data-dir {dir}") };
    let _ = writeln!(out, "\nNext steps:");
    let _ = writeln!(out, "  1. Start it:        steward serve --config {}", report.config_path.display());
    match &report.admin_token_path {
        Some(path) => {
            let _ = writeln!(out, "  2. Owner token:     {} (keep it secret)", path.display());
        }
        None => {
            let _ = writeln!(out, "  2. Admin tokens:    use a token of the existing deployment");
        }
    }
    let _ = writeln!(
        out,
        "  3. Check it:        curl --cacert {dir}/ca.crt {}/healthz\n                      curl {}/readyz",
        crate::urls::data_plane_local_url(config),
        crate::urls::admin_url(&config.admin),
    );
    let _ = writeln!(out, "                      steward doctor --data-dir {dir}");
    let _ = writeln!(out, "  4. Create a tenant: steward admin{admin_flags} tenants create --name acme");
    let _ = writeln!(
        out,
        "     then a workload:  steward admin{admin_flags} workloads create --tenant t_… --name agent-1"
    );
    let _ = writeln!(
        out,
        "     and enroll it:    steward enroll --token stw_enr_… --out agent --ca-file {dir}/ca.crt --broker-url {}",
        config.public_base_url.trim_end_matches('/')
    );
    let _ = writeln!(out, "     (docs/quickstart.md walks through the rest.)");
}

/// Loads the configuration `serve`, `migrate` and `keys` use.
fn load_config(config: Option<&Path>, env: &Environment) -> Result<LoadedConfig, StartupError> {
    let path =
        config.map(Path::to_path_buf).unwrap_or_else(|| Path::new(DEFAULT_DATA_DIR).join("steward.toml"));
    if !path.exists() {
        return Err(StartupError::environment(format!(
            "no configuration at {}: run steward init --data-dir DIR, or pass --config FILE",
            path.display()
        )));
    }
    Ok(config::load(Some(&path), &env.vars)?)
}

pub async fn serve(config_path: Option<PathBuf>) -> Result<(), StartupError> {
    let env = Environment::from_process();
    if config_path.is_none() && !Path::new(DEFAULT_DATA_DIR).exists() {
        // Auto-init only in development: the mode can only come from the environment here.
        let mode = config::from_environment(&env.vars)?.mode;
        if mode == Mode::Production {
            return Err(StartupError::environment(
                "production mode: serve needs --config FILE (no automatic init in production)",
            ));
        }
        eprintln!("steward: no ./{DEFAULT_DATA_DIR} yet; creating it (development mode).");
        let report = run_init(
            &InitOptions {
                data_dir: PathBuf::from(DEFAULT_DATA_DIR),
                public_url: None,
                storage: StorageBackend::Sqlite,
                postgres_url: None,
                redis_url: None,
                kek_file: None,
                force: false,
            },
            &env,
            clock(),
        )
        .await?;
        print_init_report(&report);
    }
    let loaded = load_config(config_path.as_deref(), &env)?;
    runtime::serve_until_terminated(loaded, &env, clock()).await
}

pub async fn migrate(config_path: Option<PathBuf>) -> Result<(), StartupError> {
    let env = Environment::from_process();
    let loaded = load_config(config_path.as_deref(), &env)?;
    let store = open_store(&loaded).await?;
    println!("Migrations applied ({} store).", store.backend());
    Ok(())
}

pub fn generate_kek(config_path: Option<PathBuf>, activate: bool) -> Result<(), StartupError> {
    let env = Environment::from_process();
    let loaded = load_config(config_path.as_deref(), &env)?;
    let path = loaded.resolve(&loaded.config.keys.kek_file);
    let mut keyring = Keyring::load(None, &path)
        .map_err(|e| {
            StartupError::environment(format!("cannot read the keyring file {}: {e}", path.display()))
        })?
        .keyring;
    let id = keyring.add_generated_key();
    if activate {
        keyring
            .set_active(&id)
            .map_err(|e| StartupError { exit: ExitCode::Failure, message: e.to_string() })?;
    }
    files::replace_file(&path, keyring.to_json().as_bytes(), 0o600)
        .map_err(|e| StartupError::environment(format!("cannot write {}: {e}", path.display())))?;
    let state = if activate { "active" } else { "inactive" };
    println!("Added KEK {id} ({state}) to {}.", path.display());
    if !activate {
        println!(
            "Once every instance has the new keyring (SIGHUP re-reads it), activate it with --activate."
        );
    }
    Ok(())
}
