//! What a newcomer reads in the first minutes: the "next steps" `steward init` prints follow the
//! configuration (one source of truth for ports and URLs), a public URL whose port differs from the
//! listener is warned about, a repeated `init --force` says what it did, and shell completions exist.

use crate::common;

use common::{run, stderr, steward};
use steward_testkit::free_port;

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn init_next_steps_follow_the_configuration_and_a_port_mismatch_is_warned() {
    let temp = tempfile::tempdir().unwrap();

    // --public-url on another port than the listener: the listener stays on 8081, the printed check
    // uses the listener, enrollment uses the public URL, and stderr warns with the fix.
    let dir = temp.path().join("public");
    let output =
        run(steward().args(["init", "--public-url", "https://localhost:28081", "--data-dir"]).arg(&dir));
    assert!(output.status.success(), "{}", stderr(&output));
    let (text, warning) = (stdout(&output), stderr(&output));
    assert!(text.contains("https://localhost:8081/healthz"), "{text}");
    assert!(text.contains("--broker-url https://localhost:28081"), "{text}");
    assert!(
        warning.contains("warning") && warning.contains("28081") && warning.contains("127.0.0.1:8081"),
        "{warning}"
    );
    assert!(warning.contains("data_plane.listen = \"127.0.0.1:28081\""), "names the setting: {warning}");

    // Listeners moved (the same STEWARD_* overlay serve applies): every printed address follows.
    let (data, admin) = (free_port().unwrap(), free_port().unwrap());
    let dir = temp.path().join("moved");
    let output = run(steward()
        .args(["init", "--data-dir"])
        .arg(&dir)
        .args(["--public-url", &format!("https://localhost:{data}")])
        .env("STEWARD_DATA_PLANE__LISTEN", format!("127.0.0.1:{data}"))
        .env("STEWARD_ADMIN__LISTEN", format!("127.0.0.1:{admin}")));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains(&format!("https://localhost:{data}/healthz")), "{text}");
    assert!(text.contains(&format!("http://127.0.0.1:{admin}/readyz")), "{text}");
    assert!(!text.contains(":8081") && !text.contains(":8080"), "no hard-coded port: {text}");
    assert!(!stderr(&output).contains("warning"), "ports agree: {}", stderr(&output));
}

#[test]
fn init_again_and_init_force_say_what_they_did() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let first = run(steward().args(["init", "--data-dir"]).arg(&dir));
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).contains("Created a new Steward deployment"), "{}", stdout(&first));

    for args in [&["init"][..], &["init", "--force"][..]] {
        let output = run(steward().args(args).arg("--data-dir").arg(&dir));
        assert!(output.status.success(), "{}", stderr(&output));
        let text = stdout(&output);
        assert!(!text.contains("Joined"), "{args:?} joined nothing: {text}");
        assert!(text.contains("already holds a Steward deployment"), "{args:?}: {text}");
        assert!(text.contains("keyring, store and owner token are unchanged"), "{args:?}: {text}");
        let rewrote_config = text.contains(&format!("wrote {}", dir.join("steward.toml").display()));
        assert_eq!(rewrote_config, args.contains(&"--force"), "{args:?}: {text}");
    }
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let output = run(steward().args(["completions", shell]));
        assert!(output.status.success(), "{shell}: {}", stderr(&output));
        let script = stdout(&output);
        for word in ["enroll", "admin", "doctor", "tenants", "--output"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    assert_eq!(run(steward().args(["completions", "tcsh"])).status.code(), Some(2));
}
