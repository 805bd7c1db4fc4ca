//! `steward doctor` against a real `steward serve`: a healthy data directory and identity pass (exit
//! 0, one `ok` line per check), and each broken case names what is wrong and the fix (exit 1).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use crate::common;

use std::path::Path;
use std::process::Output;

use common::*;
use http::Method;
use serde_json::json;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The line of `check` in the doctor's output.
fn line<'a>(text: &'a str, level: &str, check: &str) -> &'a str {
    let prefix = format!("{level:<4}  {check}:");
    text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no `{prefix}` line in:\n{text}"))
}

fn doctor(args: &[&str], cwd: &Path) -> Output {
    run(steward().current_dir(cwd).arg("doctor").args(args))
}

#[tokio::test]
async fn doctor_passes_a_healthy_data_dir_and_names_each_fault() {
    install_crypto_provider();
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("steward-data");
    let output = run(steward().args(["init", "--data-dir"]).arg(&data));
    assert!(output.status.success(), "{}", stderr(&output));
    let ports = Ports::new();
    write_ports(&data, &ports, Some(&format!("https://localhost:{}", ports.data)));
    let mut serve = steward();
    serve.args(["serve", "--config"]).arg(data.join("steward.toml"));
    let mut child = spawn_serving(serve, &ports).await;

    // Healthy, found as ./steward-data without flags.
    let output = doctor(&[], temp.path());
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(!text.contains("FAIL  "), "{text}");
    for check in [
        "steward.toml",
        "keyring",
        "admin-token",
        "data plane TLS key",
        "data plane certificate",
        "workload CA (ca.crt)",
        "store",
        "public_base_url",
        "data plane listener",
        "admin listener",
        "clock",
    ] {
        line(&text, "ok", check);
    }
    assert!(text.contains("ok    admin-token: accepted (role owner)"), "{text}");
    assert!(line(&text, "ok", "data plane certificate").contains("days left"), "{text}");
    assert!(text.trim_end().ends_with("0 FAIL"), "{text}");

    // A keyring readable by other users: FAIL with the chmod that fixes it.
    let kek = data.join("kek.json");
    set_mode(&kek, 0o644);
    let output = doctor(&["--data-dir", data.to_str().unwrap()], temp.path());
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let failed = line(&text, "FAIL", "keyring");
    assert!(failed.contains("0644") && failed.contains(&format!("chmod 600 {}", kek.display())), "{failed}");
    set_mode(&kek, 0o600);

    // A port that does not match: a warning that says which setting to change, not a failure.
    assert_eq!(terminate(&mut child).code(), Some(0));
    let output = doctor(&["--data-dir", data.to_str().unwrap()], temp.path());
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "the server is stopped: {text}");
    let failed = line(&text, "FAIL", "data plane listener");
    assert!(failed.contains("steward serve --config"), "{failed}");
    line(&text, "FAIL", "admin listener");

    // No data directory at all.
    let output = doctor(&["--data-dir", temp.path().join("nope").to_str().unwrap()], temp.path());
    assert_eq!(output.status.code(), Some(1));
    assert!(
        line(&stdout(&output), "FAIL", "data directory").contains("steward init --data-dir"),
        "{}",
        stdout(&output)
    );
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn doctor_checks_an_identity_against_the_broker() {
    let temp = tempfile::tempdir().unwrap();
    let WorkloadFixture {
        data,
        ports,
        broker_url,
        mut child,
        token,
        tenant_id: _,
        workload_id,
        enrollment_token,
    } = serve_with_workload(temp.path()).await;
    let identity = temp.path().join("agent");
    let output = run(steward()
        .args(["enroll", "--token", &enrollment_token, "--broker-url", &broker_url])
        .arg("--out")
        .arg(&identity)
        .arg("--ca-file")
        .arg(data.join("ca.crt")));
    assert!(output.status.success(), "{}", stderr(&output));

    // Healthy: every check ok; nothing is written into the identity.
    let before: Vec<_> = std::fs::read_dir(&identity).unwrap().map(|e| e.unwrap().file_name()).collect();
    let output = doctor(&["--identity", identity.to_str().unwrap()], temp.path());
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(!text.contains("FAIL  ") && !text.contains("warn  "), "{text}");
    assert!(line(&text, "ok", "key").contains("ECDSA P-256, PKCS#8"), "{text}");
    assert!(line(&text, "ok", "certificate").contains("days left"), "{text}");
    assert!(line(&text, "ok", "broker_url").contains(&broker_url), "{text}");
    assert!(line(&text, "ok", "broker").contains("over mTLS"), "{text}");
    line(&text, "ok", "clock");
    line(&text, "ok", "session");
    assert!(line(&text, "ok", "dpop").contains("not required"), "{text}");
    assert!(line(&text, "ok", "manifest").contains("verified"), "{text}");
    assert!(line(&text, "ok", "workload").contains(&workload_id), "{text}");
    let after: Vec<_> = std::fs::read_dir(&identity).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(before, after, "doctor writes nothing");

    // DPoP required for the workload: discovered and reported, still healthy.
    admin_api(
        &ports,
        &token,
        Method::PATCH,
        &format!("/v1/workloads/{workload_id}"),
        Some(json!({"dpop_required": true})),
    )
    .await;
    let output = doctor(&["--identity", identity.to_str().unwrap()], temp.path());
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(line(&text, "ok", "dpop").contains("--dpop"), "{text}");
    line(&text, "ok", "manifest");

    // A missing certificate: FAIL naming the file and how to enroll again.
    let broken = temp.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    for file in ["workload.key", "ca.crt", "broker_url"] {
        std::fs::copy(identity.join(file), broken.join(file)).unwrap();
    }
    let output = doctor(&["--identity", broken.to_str().unwrap()], temp.path());
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let failed = line(&text, "FAIL", "workload.crt");
    assert!(failed.contains("missing") && failed.contains("steward enroll"), "{failed}");

    // A revoked certificate: the broker's code and the fix.
    let certificates =
        admin_api(&ports, &token, Method::GET, &format!("/v1/workloads/{workload_id}/certificates"), None)
            .await;
    let serial = certificates["certificates"][0]["serial"].as_str().unwrap().to_owned();
    admin_api(
        &ports,
        &token,
        Method::POST,
        &format!("/v1/workloads/{workload_id}/certificates/{serial}/revoke"),
        None,
    )
    .await;
    let output = doctor(&["--identity", identity.to_str().unwrap()], temp.path());
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let failed = line(&text, "FAIL", "session");
    assert!(failed.contains("certificate_revoked") && failed.contains("steward enroll"), "{failed}");

    assert_eq!(terminate(&mut child).code(), Some(0));
}
