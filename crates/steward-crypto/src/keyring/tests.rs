use std::os::unix::fs::PermissionsExt;

use super::*;

const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // bytes 0..32
const K2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="; // bytes 32..64

fn two_keys() -> String {
    format!(r#"{{"active":"k2","keys":{{"k1":"{K1}","k2":"{K2}"}}}}"#)
}

#[test]
fn generate_has_one_active_key() {
    let ring = Keyring::generate();
    assert_eq!(ring.active_id(), "k1");
    assert_eq!(ring.key_ids().collect::<Vec<_>>(), ["k1"]);
    assert!(ring.contains("k1"));
}

#[test]
fn parse_and_to_json_round_trip() {
    let ring = Keyring::parse_json(&two_keys()).unwrap();
    assert_eq!(ring.active_id(), "k2");
    assert_eq!(ring.key("k1").unwrap()[31], 31);
    let again = Keyring::parse_json(&ring.to_json()).unwrap();
    assert_eq!(again.active_id(), "k2");
    assert_eq!(again.key("k1"), ring.key("k1"));
    assert_eq!(again.key("k2"), ring.key("k2"));

    let generated = Keyring::generate();
    let reparsed = Keyring::parse_json(&generated.to_json()).unwrap();
    assert_eq!(reparsed.key("k1"), generated.key("k1"));
}

#[test]
fn parse_rejects_bad_keyrings_without_showing_keys() {
    let cases = [
        format!(r#"{{"active":"k9","keys":{{"k1":"{K1}"}}}}"#),
        r#"{"active":"k1","keys":{"k1":"AAEC"}}"#.to_owned(),
        r#"{"active":"k1","keys":{"k1":"not base64 at all!"}}"#.to_owned(),
        format!(r#"{{"active":"k 1","keys":{{"k 1":"{K1}"}}}}"#),
        format!(r#"{{"active":"","keys":{{"":"{K1}"}}}}"#),
        format!(r#"{{"active":"k1","keys":{{"k1":"{K1}"}},"extra":1}}"#),
        r#"{"active":"k1","keys":{"k1":12345678901234567890}}"#.to_owned(),
        r#"{"active":"k1","keys":{}}"#.to_owned(),
        "not json".to_owned(),
        String::new(),
    ];
    for case in cases {
        let err = Keyring::parse_json(&case).unwrap_err().to_string();
        assert!(!err.contains(K1) && !err.contains("AAEC") && !err.contains("12345678"), "{err}");
    }
    let long_id = "a".repeat(65);
    assert!(matches!(
        Keyring::parse_json(&format!(r#"{{"active":"{long_id}","keys":{{"{long_id}":"{K1}"}}}}"#)),
        Err(KeyringError::InvalidKeyId(_))
    ));
}

#[test]
fn debug_shows_ids_only() {
    let ring = Keyring::parse_json(&two_keys()).unwrap();
    let debug = format!("{ring:?}");
    assert!(debug.contains("k1") && debug.contains("k2"), "{debug}");
    assert!(!debug.contains("AAEC") && !debug.contains("[0, 1, 2"), "{debug}");
}

#[test]
fn add_generated_key_takes_the_next_id_and_stays_inactive() {
    let mut ring = Keyring::parse_json(&two_keys()).unwrap();
    assert_eq!(ring.add_generated_key(), "k3");
    assert_eq!(ring.active_id(), "k2");
    assert_ne!(ring.key("k3"), ring.key("k2"));
    let mut custom =
        Keyring::parse_json(&format!(r#"{{"active":"main","keys":{{"main":"{K1}","k7":"{K2}"}}}}"#)).unwrap();
    assert_eq!(custom.add_generated_key(), "k8");
}

#[test]
fn set_active_requires_an_existing_key() {
    let mut ring = Keyring::generate();
    let id = ring.add_generated_key();
    ring.set_active(&id).unwrap();
    assert_eq!(ring.active_id(), "k2");
    assert!(matches!(ring.set_active("k9"), Err(KeyringError::UnknownKey(_))));
    assert_eq!(ring.active_id(), "k2");
}

#[test]
fn load_prefers_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek.json");
    Keyring::generate().write_new_file(&path).unwrap();

    let loaded = Keyring::load(Some(&two_keys()), &path).unwrap();
    assert_eq!(loaded.source, KeyringSource::Env);
    assert_eq!(loaded.keyring.active_id(), "k2");
    assert!(loaded.meets_production_rule());
    assert!(!loaded.source.is_private_file());

    assert!(matches!(Keyring::load(Some("{}"), &path), Err(KeyringError::InEnv(_))));
}

#[test]
fn load_reads_the_file_and_reports_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek.json");
    let ring = Keyring::generate();
    ring.write_new_file(&path).unwrap();

    let loaded = Keyring::load(None, &path).unwrap();
    assert_eq!(loaded.keyring.key("k1"), ring.key("k1"));
    assert_eq!(loaded.source, KeyringSource::File { path: path.clone(), mode: 0o600 });
    assert!(loaded.source.is_private_file());
    assert!(loaded.meets_production_rule());

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let loaded = Keyring::load(None, &path).unwrap();
    assert!(!loaded.source.is_private_file());
    assert!(!loaded.meets_production_rule());
}

#[test]
fn load_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    assert!(matches!(Keyring::load(None, &missing), Err(KeyringError::Missing { .. })));

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"active":"k1","keys":{}}"#).unwrap();
    let err = Keyring::load(None, &bad).unwrap_err();
    assert!(matches!(err, KeyringError::InFile { .. }));
    assert!(err.to_string().contains("bad.json"), "{err}");
}

#[test]
fn write_new_file_is_0600_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek.json");
    Keyring::generate().write_new_file(&path).unwrap();
    let before = std::fs::read(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o600);

    let err = Keyring::generate().write_new_file(&path).unwrap_err();
    assert!(matches!(err, KeyringError::AlreadyExists { .. }));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // No temporary files left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn rewrite_file_replaces_atomically_with_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek.json");
    let mut ring = Keyring::generate();
    ring.write_new_file(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();

    let new_id = ring.add_generated_key();
    ring.rewrite_file(&path).unwrap();
    let loaded = Keyring::load(None, &path).unwrap();
    assert!(loaded.keyring.contains(&new_id));
    assert_eq!(loaded.keyring.active_id(), "k1");
    assert!(loaded.source.is_private_file());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
