//! `steward doctor --data-dir DIR`: the server side. The configuration, the files `init` wrote and
//! their modes, certificate expiry, and whether the listeners of that configuration answer.

use std::path::Path;
use std::time::Duration;

use steward_server::config::{self, LoadedConfig, StorageBackend};
use steward_server::startup::Environment;

use super::{Report, check_expiry, check_skew, mode_of, private_file, read_cert};
use crate::urls;

pub(super) async fn check(dir: &Path, report: &mut Report) {
    let shown = dir.display();
    let Some(mode) = mode_of(dir).filter(|_| dir.is_dir()) else {
        report.fail(
            "data directory",
            format!("no data directory at {shown}"),
            format!(
                "create one with steward init --data-dir {shown}, or point at yours with --data-dir DIR \
                 (or check a workload identity with --identity DIR)"
            ),
        );
        return;
    };
    if mode & 0o077 != 0 {
        report.warn(
            "data directory",
            format!("{shown} has mode {mode:04o}: other users can list it"),
            format!("chmod 700 {shown}"),
        );
    } else {
        report.ok("data directory", format!("{shown}, mode {mode:04o}"));
    }

    let config_path = dir.join("steward.toml");
    if !config_path.is_file() {
        report.fail(
            "steward.toml",
            format!("{} is missing", config_path.display()),
            format!("steward init --data-dir {shown} writes it (keys and store are never overwritten)"),
        );
        return;
    }
    let env = Environment::from_process();
    let loaded = match config::load(Some(&config_path), &env.vars) {
        Ok(loaded) => loaded,
        Err(error) => {
            report.fail(
                "steward.toml",
                error,
                format!("edit {} (every key is described in docs/configuration.md)", config_path.display()),
            );
            return;
        }
    };
    match mode_of(&config_path) {
        Some(mode) if mode & 0o077 != 0 => report.warn(
            "steward.toml",
            format!("valid, but mode {mode:04o}: it may hold a database URL or webhook secret"),
            format!("chmod 600 {}", config_path.display()),
        ),
        _ => report.ok("steward.toml", format!("valid ({} mode)", mode_name(&loaded))),
    }

    check_keyring(&loaded, &env, report);
    let token_path = dir.join("admin-token");
    if !private_file(report, "admin-token", &token_path, "the owner token") {
        report.warn(
            "admin-token",
            format!(
                "{} is missing (an instance that joined a shared deployment has none)",
                token_path.display()
            ),
            "use a token of the deployment: steward admin --token-file FILE, or create one with \
             steward admin tokens create",
        );
    }
    check_tls_files(&loaded, dir, report);
    if loaded.config.storage.backend == StorageBackend::Sqlite {
        let db = loaded.resolve(&loaded.config.storage.sqlite_path);
        if db.is_file() {
            report.ok("store", format!("embedded store {}", db.display()));
        } else {
            report.fail(
                "store",
                format!("{} is missing", db.display()),
                format!(
                    "restore it from the backup taken with kek.json; for a new deployment, steward init \
                     --data-dir {shown}"
                ),
            );
        }
    }
    if let Some(mismatch) = urls::port_mismatch(&loaded.config, &config_path) {
        report.warn("public_base_url", mismatch.detail, mismatch.fix);
    } else {
        report.ok(
            "public_base_url",
            format!("{} (port matches data_plane.listen)", loaded.config.public_base_url),
        );
    }
    check_listeners(&loaded, dir, &token_path, report).await;
}

fn mode_name(loaded: &LoadedConfig) -> &'static str {
    match loaded.config.mode {
        config::Mode::Production => "production",
        config::Mode::Development => "development",
    }
}

fn check_keyring(loaded: &LoadedConfig, env: &Environment, report: &mut Report) {
    if let Some(json) = env.kek_keyring() {
        match steward_crypto::Keyring::parse_json(json) {
            Ok(keyring) => {
                report.ok("keyring", format!("from STEWARD_KEK_KEYRING, active KEK {}", keyring.active_id()))
            }
            Err(error) => report.fail(
                "keyring",
                format!("STEWARD_KEK_KEYRING: {error}"),
                "set it to the keyring JSON (kek.json)",
            ),
        }
        return;
    }
    let path = loaded.resolve(&loaded.config.keys.kek_file);
    if !path.is_file() {
        report.fail(
            "keyring",
            format!("{} is missing: the store cannot be read without it", path.display()),
            "restore kek.json from your backup (or set STEWARD_KEK_KEYRING)",
        );
        return;
    }
    match steward_crypto::Keyring::load(None, &path) {
        Ok(loaded_keyring) => {
            let active = loaded_keyring.keyring.active_id().to_owned();
            match mode_of(&path) {
                Some(mode) if mode & 0o077 != 0 => report.fail(
                    "keyring",
                    format!(
                        "{} has mode {mode:04o}: the KEK keyring (the root secret) is readable by other users",
                        path.display()
                    ),
                    format!("chmod 600 {}", path.display()),
                ),
                mode => report.ok(
                    "keyring",
                    format!("{}, mode {:04o}, active KEK {active}", path.display(), mode.unwrap_or(0)),
                ),
            }
        }
        Err(error) => report.fail("keyring", error, format!("restore {} from your backup", path.display())),
    }
}

fn check_tls_files(loaded: &LoadedConfig, dir: &Path, report: &mut Report) {
    let reissue = format!(
        "steward init --force --data-dir {} re-issues it from the workload CA (keyring and store untouched); \
         then kill -HUP the server",
        dir.display()
    );
    let cert_path = loaded.resolve(&loaded.config.data_plane.tls_cert);
    let key_path = loaded.resolve(&loaded.config.data_plane.tls_key);
    if !private_file(report, "data plane TLS key", &key_path, "the server's private key") {
        report.fail("data plane TLS key", format!("{} is missing", key_path.display()), &reissue);
    }
    match read_cert(&cert_path) {
        Ok(cert) => check_expiry(report, "data plane certificate", &cert, 0.1, &reissue),
        Err(error) => report.fail("data plane certificate", error, &reissue),
    }
    let ca_path = dir.join("ca.crt");
    match read_cert(&ca_path) {
        Ok(cert) => check_expiry(
            report,
            "workload CA (ca.crt)",
            &cert,
            0.1,
            "plan a new deployment's CA: workloads trust only this one (docs/operations.md)",
        ),
        Err(error) => report.fail(
            "workload CA (ca.crt)",
            error,
            format!("steward init --data-dir {} writes it again from the store", dir.display()),
        ),
    }
    if loaded.config.admin.tls_enabled() {
        let admin_cert = loaded.resolve(&loaded.config.admin.tls_cert);
        match read_cert(&admin_cert) {
            Ok(cert) => check_expiry(
                report,
                "admin certificate",
                &cert,
                0.1,
                "replace admin.tls_cert and kill -HUP the server",
            ),
            Err(error) => report.fail("admin certificate", error, "fix admin.tls_cert in steward.toml"),
        }
    }
}

async fn check_listeners(loaded: &LoadedConfig, dir: &Path, token_path: &Path, report: &mut Report) {
    let start = format!("start it: steward serve --config {}", dir.join("steward.toml").display());
    let ca = std::fs::read_to_string(dir.join("ca.crt")).ok();
    let timeout = Duration::from_secs(5);

    // The data plane, verified with the workload CA as a workload would.
    let data_url = format!("{}/healthz", urls::data_plane_local_url(&loaded.config));
    match steward_client::operator_client(ca.as_deref(), timeout) {
        Ok(client) => match client.get(&data_url).send().await {
            Ok(response) if response.status().is_success() => {
                let date = response.headers().get("date").and_then(|v| v.to_str().ok()).map(str::to_owned);
                report
                    .ok("data plane listener", format!("{data_url} answers {}", response.status().as_u16()));
                check_skew(report, date.as_deref(), "the server");
            }
            Ok(response) => report.fail(
                "data plane listener",
                format!("{data_url} answers {}", response.status().as_u16()),
                "see the server's log (stderr of steward serve)",
            ),
            Err(error) => report.fail(
                "data plane listener",
                format!("{data_url}: {}", steward_client::error_chain(&error)),
                &start,
            ),
        },
        Err(error) => report.fail("data plane listener", error, "check ca.crt"),
    }

    // The admin listener: readiness, then whether the admin-token is accepted.
    let admin_url = urls::admin_url(&loaded.config.admin);
    let client = match steward_client::operator_client(None, timeout) {
        Ok(client) => client,
        Err(error) => return report.fail("admin listener", error, "check the admin TLS settings"),
    };
    match client.get(format!("{admin_url}/readyz")).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            if status == 200 {
                report.ok("admin listener", format!("{admin_url}/readyz answers 200"));
            } else {
                report.fail(
                    "admin listener",
                    format!(
                        "{admin_url}/readyz answers {status}: {}",
                        body.chars().take(200).collect::<String>()
                    ),
                    "a dependency is down (store or Redis): see the checks above and the server's log",
                );
                return;
            }
        }
        Err(error) => {
            report.fail(
                "admin listener",
                format!("{admin_url}: {}", steward_client::error_chain(&error)),
                &start,
            );
            return;
        }
    }
    let Ok(token) = std::fs::read_to_string(token_path) else { return };
    let answer = client
        .get(format!("{admin_url}/v1/admin/whoami"))
        .header("authorization", format!("Bearer {}", token.trim()))
        .send()
        .await;
    match answer {
        Ok(response) if response.status().is_success() => {
            let me: serde_json::Value = response.json().await.unwrap_or_default();
            report.ok("admin-token", format!("accepted (role {})", me["role"].as_str().unwrap_or("?")));
        }
        Ok(response) => {
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            report.fail(
                "admin-token",
                format!("refused: {status} {}", body["error"].as_str().unwrap_or("unknown_error")),
                "the token was revoked or expired: create one with another owner token \
                 (steward admin tokens create --role owner --name …) and write it to admin-token",
            );
        }
        Err(error) => report.fail("admin-token", steward_client::error_chain(&error), &start),
    }
}
