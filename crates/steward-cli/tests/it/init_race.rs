//! `steward init --storage postgres` run by several instances at once on one empty database, with the
//! real binary and the local PostgreSQL: those given the deployment's keyring all end up in one
//! deployment (one creates, the others join), those holding another keyring are refused with 78.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};

use common::*;
use http::Method;
use steward_server::services::credentials::envelope::{ca_key_context, open_record};
use steward_store::Store;
use steward_testkit::http_client::request;
use steward_testkit::{TestDatabase, unique_redis_prefix};

/// `steward init --storage postgres … --kek-file KEK --data-dir DIR`, started (not waited for).
fn spawn_init(database_url: &str, dir: &Path, kek: &Path) -> Child {
    shared_init(database_url, dir)
        .arg("--kek-file")
        .arg(kek)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn steward init")
}

fn keyring_file(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, steward_crypto::Keyring::generate().to_json()).unwrap();
    path
}

/// Starts `count` inits on one new database at once; their data dirs and outputs.
async fn race(temp: &Path, round: usize, keks: &[&Path]) -> (TestDatabase, Vec<(PathBuf, Output)>) {
    let database = TestDatabase::create().await.unwrap();
    let dirs: Vec<PathBuf> = (0..keks.len()).map(|i| temp.join(format!("round{round}-node{i}"))).collect();
    let children: Vec<Child> =
        dirs.iter().zip(keks).map(|(dir, kek)| spawn_init(&database.url, dir, kek)).collect();
    let outputs = children.into_iter().map(|child| child.wait_with_output().unwrap()).collect::<Vec<_>>();
    (database, dirs.into_iter().zip(outputs).collect())
}

#[tokio::test]
async fn racing_shared_inits_with_the_deployments_keyring_all_join_one_deployment() {
    install_crypto_provider();
    let temp = tempfile::tempdir().unwrap();
    let kek = keyring_file(temp.path(), "kek.json");
    let keyring = steward_crypto::Keyring::load(None, &kek).unwrap().keyring;
    for round in 0..5 {
        let (database, nodes) = race(temp.path(), round, &[&kek, &kek]).await;
        for (dir, output) in &nodes {
            assert!(
                output.status.success(),
                "round {round}: {} exited {:?}: {}",
                dir.display(),
                output.status.code(),
                stderr(output)
            );
        }
        let store = steward_store::PostgresStore::connect(&database.url).await.unwrap();
        let deployment = store.deployment().await.unwrap().unwrap();
        let creators = nodes.iter().filter(|(dir, _)| dir.join("admin-token").exists()).count();
        assert_eq!(creators, 1, "round {round}: exactly one init created the deployment and its owner token");
        let joined = nodes
            .iter()
            .filter(|(_, output)| String::from_utf8_lossy(&output.stdout).contains("Joined the existing"))
            .count();
        assert_eq!(joined, nodes.len() - 1, "round {round}: the others joined");
        for (dir, _) in &nodes {
            // What `init --join` writes: the shared CA, this instance's server certificate, the keyring.
            assert_eq!(std::fs::read_to_string(dir.join("ca.crt")).unwrap(), deployment.ca_cert_pem);
            assert!(dir.join("tls/server.crt").exists() && dir.join("tls/server.key").exists());
            assert_eq!(mode_of(&dir.join("kek.json")), 0o600);
            let held = steward_crypto::Keyring::load(None, &dir.join("kek.json")).unwrap().keyring;
            assert_eq!(held.to_json(), keyring.to_json());
            open_record(&held, &ca_key_context(), &deployment.ca_key).expect("the keyring opens the CA key");
            // The store opens with this data dir's configuration.
            let output = run(steward().args(["migrate", "--config"]).arg(dir.join("steward.toml")));
            assert!(output.status.success(), "round {round}: {}", stderr(&output));
        }
        if round == 0 {
            // Both instances serve the one deployment.
            for (dir, _) in &nodes {
                let ports = Ports::new();
                let mut command = steward();
                command
                    .args(["serve", "--config"])
                    .arg(dir.join("steward.toml"))
                    .env("STEWARD_STORAGE__REDIS_KEY_PREFIX", unique_redis_prefix());
                ports.apply(&mut command);
                let mut child = spawn_serving(command, &ports).await;
                let ready = request(ports.admin_addr(), None, Method::GET, "/readyz", &[], "").await.unwrap();
                assert_eq!(ready.status, 200, "{}", dir.display());
                let health =
                    request(ports.data_addr(), Some(&tls_for(dir)), Method::GET, "/healthz", &[], "")
                        .await
                        .unwrap();
                assert_eq!(health.status, 200);
                assert_eq!(terminate(&mut child).code(), Some(0));
            }
        }
    }
}

#[tokio::test]
async fn racing_shared_inits_with_another_keyring_still_exit_78() {
    install_crypto_provider();
    let temp = tempfile::tempdir().unwrap();
    let first = keyring_file(temp.path(), "first.json");
    let second = keyring_file(temp.path(), "second.json");
    for round in 0..3 {
        let (database, nodes) = race(temp.path(), round, &[&first, &second]).await;
        let store = steward_store::PostgresStore::connect(&database.url).await.unwrap();
        let deployment = store.deployment().await.unwrap().unwrap();
        let winners: Vec<_> = nodes.iter().filter(|(_, output)| output.status.success()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {nodes:?}");
        for (dir, output) in &nodes {
            if output.status.success() {
                assert_eq!(std::fs::read_to_string(dir.join("ca.crt")).unwrap(), deployment.ca_cert_pem);
                continue;
            }
            assert_eq!(output.status.code(), Some(78), "round {round}: {}", stderr(output));
            assert!(stderr(output).contains("--kek-file"), "the join hint: {}", stderr(output));
            // The loser keeps nothing: no owner token, no copy of a keyring that protects nothing.
            assert!(!dir.join("admin-token").exists());
            assert!(!dir.join("kek.json").exists());
            assert!(!dir.join("ca.crt").exists());
        }
    }
}

#[tokio::test]
async fn a_keyring_from_the_environment_is_never_written_when_joining() {
    install_crypto_provider();
    let temp = tempfile::tempdir().unwrap();
    let kek = keyring_file(temp.path(), "kek.json");
    let keyring_json = std::fs::read_to_string(&kek).unwrap();
    for round in 0..2 {
        let database = TestDatabase::create().await.unwrap();
        let dirs: Vec<PathBuf> = (0..2).map(|i| temp.path().join(format!("env{round}-node{i}"))).collect();
        // Both at once, the keyring only in STEWARD_KEK_KEYRING.
        let children: Vec<Child> = dirs
            .iter()
            .map(|dir| {
                shared_init(&database.url, dir)
                    .env("STEWARD_KEK_KEYRING", &keyring_json)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outputs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
        for (dir, output) in dirs.iter().zip(&outputs) {
            assert!(output.status.success(), "round {round}: {}", stderr(output));
            assert!(dir.join("ca.crt").exists());
            if String::from_utf8_lossy(&output.stdout).contains("Joined the existing") {
                assert!(
                    !dir.join("kek.json").exists(),
                    "round {round}: the joiner wrote the keyring to disk"
                );
            }
        }
    }
}
