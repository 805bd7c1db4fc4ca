//! `steward init`, `serve`, `migrate` and `keys generate-kek` as a user runs them: the real binary,
//! real files, real ports, the real embedded store and the local PostgreSQL and Redis.

use crate::common;

use std::path::Path;

use base64::Engine;
use common::*;
use http::Method;
use steward_store::Store;
use steward_testkit::http_client::request;
use steward_testkit::{TestDatabase, redis_url, unique_redis_prefix};

fn init_embedded(dir: &Path) {
    let output = run(steward().args(["init", "--data-dir"]).arg(dir));
    assert!(output.status.success(), "init failed: {}", stderr(&output));
}

#[test]
fn init_creates_every_file_with_its_mode_and_never_overwrites_keys_or_store() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let output = run(steward().args(["init", "--data-dir"]).arg(&dir));
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("admin-token"), "{stdout}");

    assert_eq!(mode_of(&dir), 0o700);
    for (file, mode) in
        [("kek.json", 0o600), ("admin-token", 0o600), ("tls/server.key", 0o600), ("steward.toml", 0o600)]
    {
        assert_eq!(mode_of(&dir.join(file)), mode, "{file}");
    }
    for file in ["ca.crt", "tls/server.crt", "steward.db"] {
        assert!(dir.join(file).exists(), "{file}");
    }
    let token = std::fs::read_to_string(dir.join("admin-token")).unwrap();
    assert!(token.trim().starts_with("stw_adm_") && token.trim().len() == 8 + 43, "{token}");

    let kek_before = std::fs::read(dir.join("kek.json")).unwrap();
    let cert_before = std::fs::read(dir.join("tls/server.crt")).unwrap();
    let output = run(steward().args(["init", "--data-dir"]).arg(&dir));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(dir.join("kek.json")).unwrap(), kek_before, "the keyring is never overwritten");
    assert_eq!(
        std::fs::read(dir.join("tls/server.crt")).unwrap(),
        cert_before,
        "TLS files kept without --force"
    );
    assert_eq!(std::fs::read_to_string(dir.join("admin-token")).unwrap(), token, "no second owner token");

    let output = run(steward().args(["init", "--force", "--data-dir"]).arg(&dir));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(dir.join("kek.json")).unwrap(), kek_before, "--force never touches the keyring");
    assert_ne!(
        std::fs::read(dir.join("tls/server.crt")).unwrap(),
        cert_before,
        "--force re-issues the certificate"
    );
}

#[tokio::test]
async fn serve_auto_inits_serves_both_listeners_refuses_a_second_instance_and_stops_cleanly() {
    install_crypto_provider();
    let cwd = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let mut command = steward();
    command.arg("serve").current_dir(cwd.path());
    ports.apply(&mut command);
    let mut child = spawn_serving(command, &ports).await;
    let data_dir = cwd.path().join("steward-data");
    assert!(data_dir.join("steward.db").exists());

    let health = request(ports.data_addr(), Some(&tls_for(&data_dir)), Method::GET, "/healthz", &[], "")
        .await
        .unwrap();
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");

    // A second serve on the same data directory exits 78 naming it, before binding any port.
    let other_ports = Ports::new();
    let mut second = steward();
    second.arg("serve").current_dir(cwd.path());
    other_ports.apply(&mut second);
    let output = run(&mut second);
    assert_eq!(output.status.code(), Some(78), "{}", stderr(&output));
    assert!(stderr(&output).contains("steward-data"), "{}", stderr(&output));

    // SIGTERM: stop accepting, drain, exit 0 (the final checkpoint itself is covered in-process by
    // steward-server's `graceful_stop_writes_the_final_checkpoint`).
    let status = terminate(&mut child);
    assert_eq!(status.code(), Some(0));

    // A restart reuses the directory (same CA, same token).
    let token = std::fs::read_to_string(data_dir.join("admin-token")).unwrap();
    let mut again = steward();
    again.arg("serve").current_dir(cwd.path());
    ports.apply(&mut again);
    let mut child = spawn_serving(again, &ports).await;
    let health = request(ports.data_addr(), Some(&tls_for(&data_dir)), Method::GET, "/healthz", &[], "")
        .await
        .unwrap();
    assert_eq!(health.status, 200);
    assert_eq!(std::fs::read_to_string(data_dir.join("admin-token")).unwrap(), token);
    assert_eq!(terminate(&mut child).code(), Some(0));
}

#[test]
fn invalid_configuration_exits_64_naming_the_key() {
    let temp = tempfile::tempdir().unwrap();
    init_embedded(temp.path());
    let config = temp.path().join("steward.toml");

    let output =
        run(steward().args(["serve", "--config"]).arg(&config).env("STEWARD_MANIFEST__TTL_SECONDS", "301"));
    assert_eq!(output.status.code(), Some(64), "{}", stderr(&output));
    assert!(stderr(&output).contains("manifest.ttl_seconds"), "{}", stderr(&output));

    let output =
        run(steward().args(["serve", "--config"]).arg(&config).env("STEWARD_DATA_PLANE__LISTEN", "nowhere"));
    assert_eq!(output.status.code(), Some(64));
    assert!(stderr(&output).contains("data_plane.listen"), "{}", stderr(&output));

    let text = std::fs::read_to_string(&config).unwrap().replace("[log]", "[log]\ncolour = true");
    std::fs::write(&config, text).unwrap();
    let output = run(steward().args(["serve", "--config"]).arg(&config));
    assert_eq!(output.status.code(), Some(64));
    assert!(stderr(&output).contains("colour"), "{}", stderr(&output));
}

#[test]
fn an_envelope_under_a_kek_missing_from_the_keyring_stops_startup_with_78() {
    let temp = tempfile::tempdir().unwrap();
    init_embedded(temp.path());
    let other_key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let keyring = format!("{{\"active\":\"k9\",\"keys\":{{\"k9\":\"{other_key}\"}}}}");
    std::fs::write(temp.path().join("kek.json"), keyring).unwrap();
    let ports = Ports::new();
    let mut command = steward();
    command.args(["serve", "--config"]).arg(temp.path().join("steward.toml"));
    ports.apply(&mut command);
    let output = run(&mut command);
    assert_eq!(output.status.code(), Some(78), "{}", stderr(&output));
    assert!(stderr(&output).contains("\"k1\""), "the message names the missing KEK id: {}", stderr(&output));
}

#[test]
fn production_rules_exit_78() {
    // No configuration and no auto-init in production.
    let cwd = tempfile::tempdir().unwrap();
    let output = run(steward().arg("serve").current_dir(cwd.path()).env("STEWARD_MODE", "production"));
    assert_eq!(output.status.code(), Some(78), "{}", stderr(&output));
    assert!(!cwd.path().join("steward-data").exists());

    // A keyring file readable by others.
    let temp = tempfile::tempdir().unwrap();
    init_embedded(temp.path());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(temp.path().join("kek.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let ports = Ports::new();
    let mut command = steward();
    command
        .args(["serve", "--config"])
        .arg(temp.path().join("steward.toml"))
        .env("STEWARD_MODE", "production");
    ports.apply(&mut command);
    let output = run(&mut command);
    assert_eq!(output.status.code(), Some(78), "{}", stderr(&output));
    assert!(stderr(&output).contains("kek.json"), "{}", stderr(&output));

    // http public URL.
    let mut command = steward();
    command
        .args(["serve", "--config"])
        .arg(temp.path().join("steward.toml"))
        .env("STEWARD_MODE", "production")
        .env("STEWARD_KEK_KEYRING", std::fs::read_to_string(temp.path().join("kek.json")).unwrap())
        .env("STEWARD_PUBLIC_BASE_URL", "http://localhost:8081");
    ports.apply(&mut command);
    let output = run(&mut command);
    assert_eq!(output.status.code(), Some(78), "{}", stderr(&output));
    assert!(stderr(&output).contains("public_base_url"), "{}", stderr(&output));
}

#[test]
fn keys_generate_kek_adds_an_inactive_key_then_activates() {
    let temp = tempfile::tempdir().unwrap();
    init_embedded(temp.path());
    let config = temp.path().join("steward.toml");
    let output = run(steward().args(["keys", "generate-kek", "--config"]).arg(&config));
    assert!(output.status.success(), "{}", stderr(&output));
    let keyring = steward_crypto::Keyring::load(None, &temp.path().join("kek.json")).unwrap();
    assert_eq!(keyring.keyring.active_id(), "k1");
    assert!(keyring.keyring.contains("k2"));
    assert_eq!(mode_of(&temp.path().join("kek.json")), 0o600);

    let output = run(steward().args(["keys", "generate-kek", "--activate", "--config"]).arg(&config));
    assert!(output.status.success(), "{}", stderr(&output));
    let keyring = steward_crypto::Keyring::load(None, &temp.path().join("kek.json")).unwrap();
    assert_eq!(keyring.keyring.active_id(), "k3");

    // The store's envelopes are still under k1, which is still in the keyring: migrate and start work.
    let output = run(steward().args(["migrate", "--config"]).arg(&config));
    assert!(output.status.success(), "{}", stderr(&output));
}

#[tokio::test]
async fn shared_init_creates_once_joins_with_the_keyring_and_serves_with_redis() {
    install_crypto_provider();
    let database = TestDatabase::create().await.unwrap();
    let temp = tempfile::tempdir().unwrap();
    let first = temp.path().join("first");
    let second = temp.path().join("second");
    let shared_args = |dir: &Path| shared_init(&database.url, dir);

    let output = run(&mut shared_args(&first));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(first.join("admin-token").exists());
    assert!(!first.join("steward.db").exists(), "shared mode has no embedded store");

    // Joining without the keyring is refused.
    let output = run(&mut shared_args(&second));
    assert_eq!(output.status.code(), Some(78), "{}", stderr(&output));
    assert!(stderr(&output).contains("--kek-file"), "{}", stderr(&output));

    // With it, the second instance joins: same CA, no new owner token.
    let output = run(shared_args(&second).arg("--kek-file").arg(first.join("kek.json")));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(first.join("ca.crt")).unwrap(), std::fs::read(second.join("ca.crt")).unwrap());
    assert!(!second.join("admin-token").exists());
    assert_eq!(mode_of(&second.join("kek.json")), 0o600);

    // The joined instance serves, and reports Redis in /readyz.
    let ports = Ports::new();
    let mut command = steward();
    command
        .args(["serve", "--config"])
        .arg(second.join("steward.toml"))
        .env("STEWARD_STORAGE__REDIS_KEY_PREFIX", unique_redis_prefix());
    ports.apply(&mut command);
    let mut child = spawn_serving(command, &ports).await;
    let ready = request(ports.admin_addr(), None, Method::GET, "/readyz", &[], "").await.unwrap();
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["checks"], serde_json::json!({"store": "ok", "redis": "ok"}));
    let health =
        request(ports.data_addr(), Some(&tls_for(&second)), Method::GET, "/healthz", &[], "").await.unwrap();
    assert_eq!(health.status, 200);
    assert_eq!(terminate(&mut child).code(), Some(0));
}

#[tokio::test]
async fn concurrent_shared_inits_on_an_empty_database_create_exactly_one_deployment() {
    let database = TestDatabase::create().await.unwrap();
    let temp = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..3)
        .map(|i| {
            shared_init(&database.url, &temp.path().join(format!("node{i}")))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let created: Vec<_> = (0..3).filter(|i| outputs[*i].status.success()).collect();
    assert_eq!(created.len(), 1, "exactly one init creates the deployment: {outputs:?}");
    for (i, output) in outputs.iter().enumerate() {
        if !output.status.success() {
            assert_eq!(output.status.code(), Some(78), "{}", stderr(output));
            assert!(
                !temp.path().join(format!("node{i}/kek.json")).exists(),
                "a loser leaves no keyring behind"
            );
        }
    }
    let store = steward_store::PostgresStore::connect(&database.url).await.unwrap();
    let deployment = store.deployment().await.unwrap().unwrap();
    let winner_ca = std::fs::read_to_string(temp.path().join(format!("node{}/ca.crt", created[0]))).unwrap();
    assert_eq!(deployment.ca_cert_pem, winner_ca);
}

#[test]
fn serve_on_an_uninitialized_database_exits_78() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let database = runtime.block_on(TestDatabase::create()).unwrap();
    let temp = tempfile::tempdir().unwrap();
    // A complete shared configuration whose database never saw `init`.
    let keyring = steward_crypto::Keyring::generate();
    std::fs::write(temp.path().join("kek.json"), keyring.to_json().as_bytes()).unwrap();
    let config = format!(
        "[storage]\nbackend = \"postgres\"\npostgres_url = \"{}\"\nredis_url = \"{}\"\n",
        database.url,
        redis_url()
    );
    std::fs::write(temp.path().join("steward.toml"), config).unwrap();
    let ports = Ports::new();
    let mut command = steward();
    command.args(["serve", "--config"]).arg(temp.path().join("steward.toml"));
    ports.apply(&mut command);
    let output = run(&mut command);
    assert_eq!(output.status.code(), Some(78), "{}", stderr(&output));
    assert!(stderr(&output).contains("steward init"), "{}", stderr(&output));
    drop(runtime);
}

#[tokio::test]
async fn sighup_reloads_the_tls_files_and_the_keyring() {
    install_crypto_provider();
    let temp = tempfile::tempdir().unwrap();
    init_embedded(temp.path());
    let ports = Ports::new();
    let mut command = steward();
    command.args(["serve", "--config"]).arg(temp.path().join("steward.toml"));
    ports.apply(&mut command);
    let mut child = spawn_serving(command, &ports).await;

    // Replace the server certificate with one from another CA, and add a KEK to the keyring file.
    let other = steward_testkit::pki::TestCa::new("replacement").unwrap();
    let leaf = other.server_cert(&["localhost"]).unwrap();
    std::fs::write(temp.path().join("tls/server.crt"), &leaf.cert_pem).unwrap();
    std::fs::write(temp.path().join("tls/server.key"), &leaf.key_pem).unwrap();
    let output =
        run(steward().args(["keys", "generate-kek", "--config"]).arg(temp.path().join("steward.toml")));
    assert!(output.status.success(), "{}", stderr(&output));

    let new_ca = steward_testkit::http_client::TlsOptions {
        ca_pem: other.cert_pem.clone(),
        server_name: "localhost".into(),
        client: None,
    };
    assert!(request(ports.data_addr(), Some(&new_ca), Method::GET, "/healthz", &[], "").await.is_err());
    let status = std::process::Command::new("kill").arg("-HUP").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    let mut reloaded = false;
    for _ in 0..50 {
        if let Ok(response) =
            request(ports.data_addr(), Some(&new_ca), Method::GET, "/healthz", &[], "").await
        {
            reloaded = response.status == 200;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(reloaded, "after SIGHUP the data plane presents the new certificate");
    assert_eq!(terminate(&mut child).code(), Some(0));
    let mut logs = String::new();
    use std::io::Read;
    child.stderr.take().unwrap().read_to_string(&mut logs).unwrap();
    assert!(logs.contains("\"what\":\"keyring\""), "the keyring was re-read: {logs}");
}
