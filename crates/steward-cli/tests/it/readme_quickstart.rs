//! The README's quickstart, run verbatim: the shell block of its "Five minutes" section marked as
//! tested is extracted and run with bash in an empty directory, `steward` on `PATH`, against the
//! local HTTPS echo provider the block itself sets up (`steward dev echo-provider`). It must reach an
//! executed call (the provider received the injected key; the agent saw it scrubbed) and an approval
//! (a call answered "approval required" with exit 3, approved once by the operator, then executed).
//! `docs/quickstart.md` carries the same block, byte for byte.
//!
//! Ports: the block writes none of Steward's ports; the test gives this run free ones through the
//! `STEWARD_*` overlay every command reads (`STEWARD_DATA_PLANE__LISTEN`, `STEWARD_ADMIN__LISTEN`,
//! `STEWARD_PUBLIC_BASE_URL`, `STEWARD_BROKER_URL`). The provider's URL is written in the block with
//! port 8443, so the provider listens on 8443 of a loopback address of its own (a random
//! 127.x.y.z, `STEWARD_DEV_ECHO_LISTEN`): runs in parallel, or a service on 127.0.0.1:8443, never
//! collide (decision 0011).

use crate::common;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::free_port;

/// What every answer of the echo provider carries.
const ECHO_MARK: &str = r#""echo":"steward dev echo-provider""#;

/// The marker line right before the tested block.
const MARKER: &str = "<!-- This block is run verbatim by crates/steward-cli/tests/readme_quickstart.rs. -->";

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The fenced `sh` block after `MARKER` in the `## Five minutes` section of `text`.
fn quickstart_block(text: &str) -> String {
    let section_start = text.find("\n## Five minutes\n").expect("README has a \"Five minutes\" section");
    let section = &text[section_start + 1..];
    let section = match section[3..].find("\n## ") {
        Some(end) => &section[..end + 3],
        None => section,
    };
    let marked = section.find(MARKER).expect("the Five minutes section marks its tested block");
    let after = &section[marked + MARKER.len()..];
    let body =
        after.trim_start_matches('\n').strip_prefix("```sh\n").expect("the marker is followed by ```sh");
    let end = body.find("\n```").expect("the block is closed");
    format!("{}\n", &body[..end])
}

/// A loopback address of this run's own (127.x.y.z) where port 8443 is free.
fn own_loopback_for_8443() -> Ipv4Addr {
    for _ in 0..64 {
        // 127.100.0.1 – 127.255.255.254, random: far from 127.0.0.1, where people run things.
        let [a, b, c, ..] = uuid::Uuid::new_v4().into_bytes();
        let ip = Ipv4Addr::new(127, 100 + a % 156, b, c.clamp(1, 254));
        if TcpListener::bind(SocketAddr::from((ip, 8443))).is_ok() {
            return ip;
        }
    }
    panic!("no loopback address with port 8443 free");
}

/// `kill -TERM -- -<pgid>`: the block's background servers share the bash process group (through
/// kill(1), so the test needs no unsafe code). Then waits until none is left.
fn terminate_group(pgid: u32) {
    let _ = Command::new("kill").args(["-TERM", "--"]).arg(format!("-{pgid}")).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    // `kill -0` succeeds while any process of the group lives.
    while Command::new("kill")
        .args(["-0", "--"])
        .arg(format!("-{pgid}"))
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        if Instant::now() > deadline {
            let _ = Command::new("kill").args(["-KILL", "--"]).arg(format!("-{pgid}")).status();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_readme_quickstart_reaches_an_executed_call_and_an_approval() {
    let readme = std::fs::read_to_string(repository().join("README.md")).unwrap();
    let block = quickstart_block(&readme);
    let quickstart = std::fs::read_to_string(repository().join("docs/quickstart.md")).unwrap();
    assert!(
        quickstart.contains(&format!("```sh\n{block}```")),
        "docs/quickstart.md must carry the README's tested block unchanged"
    );
    for line in block.lines().map(|l| l.split('#').next().unwrap_or("")) {
        assert!(
            !line.contains(":8080") && !line.contains(":8081"),
            "a command hard-codes a Steward port: {line}"
        );
    }

    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let (data, admin) = (free_port().unwrap(), free_port().unwrap());
    let echo_ip = own_loopback_for_8443();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_steward")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    // Every failing command is reported with its status; the approval step is the only one allowed.
    let script = format!("trap 'echo \"quickstart-error: exit $? at line $LINENO\" >&2' ERR\n{block}");
    std::fs::write(dir.join("quickstart.sh"), &script).unwrap();
    let stdout_path = dir.join("stdout.txt");
    let stderr_path = dir.join("stderr.txt");

    let mut bash = Command::new("bash");
    bash.arg("quickstart.sh").current_dir(dir).stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("STEWARD_") {
            bash.env_remove(name);
        }
    }
    bash.env("PATH", &path)
        .env("STEWARD_DATA_PLANE__LISTEN", format!("127.0.0.1:{data}"))
        .env("STEWARD_ADMIN__LISTEN", format!("127.0.0.1:{admin}"))
        .env("STEWARD_PUBLIC_BASE_URL", format!("https://localhost:{data}"))
        .env("STEWARD_BROKER_URL", format!("https://localhost:{data}"))
        .env("STEWARD_DEV_ECHO_LISTEN", format!("{echo_ip}:8443"))
        .env("STEWARD_LOG__FORMAT", "json")
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    std::os::unix::process::CommandExt::process_group(&mut bash, 0);
    let mut child = bash.spawn().expect("bash runs");
    let pgid = child.id();

    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // The servers the block left running in the background.
    terminate_group(pgid);
    let out = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let context = format!("--- stdout\n{out}\n--- stderr\n{err}");
    let status = status.unwrap_or_else(|| panic!("the quickstart did not finish in 300 s\n{context}"));
    assert!(status.success(), "bash: {status}\n{context}");

    // Exactly one command failed: the call that needs an approval, with exit 3.
    let failures: Vec<&str> = err.lines().filter(|l| l.starts_with("quickstart-error:")).collect();
    assert_eq!(failures.len(), 1, "{failures:?}\n{context}");
    assert!(failures[0].starts_with("quickstart-error: exit 3 "), "{failures:?}\n{context}");
    assert!(err.contains("steward: approval required (apr_"), "{context}");

    // The executed call: the provider received the injected key (its log names the scheme and the
    // length only); the echo the agent got has it scrubbed.
    let secret = std::fs::read_to_string(dir.join("key.txt")).unwrap().trim().to_owned();
    let injected = format!("authorization: Bearer <{} characters>", secret.chars().count());
    let provider_log: Vec<&str> = out.lines().filter(|l| l.starts_with("echo-provider: ")).collect();
    assert_eq!(
        provider_log,
        vec![
            format!("echo-provider: GET /v1/echo?q=hello — {injected}"),
            format!("echo-provider: POST /v1/messages — {injected}"),
        ],
        "one read, and one write only after its approval\n{context}"
    );
    let echoes: Vec<serde_json::Value> =
        out.lines().filter(|l| l.contains(ECHO_MARK)).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(echoes.len(), 2, "{context}");
    let authorization = |echo: &serde_json::Value| {
        echo["headers"].as_array().unwrap().iter().find(|h| h["name"] == "authorization").unwrap()["value"]
            .clone()
    };
    assert_eq!((echoes[0]["method"].as_str(), echoes[0]["query"].as_str()), (Some("GET"), Some("q=hello")));
    assert_eq!(authorization(&echoes[0]), "[REDACTED]");
    assert_eq!(
        (echoes[1]["method"].as_str(), echoes[1]["body"].as_str()),
        (Some("POST"), Some(r#"{"text":"hello"}"#))
    );
    assert_eq!(authorization(&echoes[1]), "[REDACTED]");
    assert!(!out.contains(&secret) && !err.contains(&secret), "the key leaked into the output\n{context}");

    // The doctor was happy, and the audit trail has the approval and both results.
    assert!(out.contains(" 0 FAIL"), "{context}");
    for event in ["enrollment", "approval_created", "approval_decided", "approval_consumed", "execute_result"]
    {
        assert!(out.contains(event), "audit tail lacks {event}\n{context}");
    }
}
