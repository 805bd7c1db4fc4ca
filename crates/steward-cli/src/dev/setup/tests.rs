#![allow(clippy::unwrap_used)]

use std::path::Path;

use steward_server::config::{InitChoices, default_config_toml};

use super::*;

fn provider() -> Provider {
    Provider { host: "echo.steward.test".into(), listen: "127.0.0.1:18443".parse().unwrap() }
}

#[test]
fn the_egress_settings_land_in_the_generated_configuration_once_with_its_comments() {
    let original = default_config_toml(&InitChoices::default());
    let ca = Path::new("/tmp/dev/ca.crt");
    let (edited, lines) = egress_settings(&original, ca, &provider()).unwrap();
    assert!(edited.contains("# extra roots for upstream TLS (private CAs)"), "comments kept: {edited}");
    assert_eq!(
        lines,
        vec![
            "extra_ca_files = [\"/tmp/dev/ca.crt\"]".to_owned(),
            "allow_cidrs = [\"127.0.0.1/32\"]".to_owned(),
            "static_hosts = { \"echo.steward.test\" = [\"127.0.0.1\"] }".to_owned(),
        ]
    );
    // The configuration Steward loads has them.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.toml");
    std::fs::write(&path, &edited).unwrap();
    let loaded = config::load(Some(&path), &[]).unwrap();
    let egress = &loaded.config.egress;
    assert_eq!(egress.extra_ca_files, vec!["/tmp/dev/ca.crt".to_owned()]);
    assert_eq!(egress.allow_cidrs, vec!["127.0.0.1/32".parse().unwrap()]);
    assert_eq!(egress.static_hosts["echo.steward.test"], vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
    // A second run changes nothing.
    let (again, _) = egress_settings(&edited, ca, &provider()).unwrap();
    assert_eq!(again, edited);
}

#[test]
fn existing_entries_are_kept_and_a_static_hosts_table_is_extended() {
    let text = "[egress]\nallow_cidrs = [\"10.0.0.0/8\"]\n\n[egress.static_hosts]\n\"api.internal\" = [\"10.1.2.3\"]\n";
    let (edited, _) = egress_settings(text, Path::new("/ca.crt"), &provider()).unwrap();
    let parsed: toml::Table = edited.parse().unwrap();
    let egress = parsed["egress"].as_table().unwrap();
    assert_eq!(egress["allow_cidrs"].as_array().unwrap().len(), 2, "{edited}");
    let hosts = egress["static_hosts"].as_table().unwrap();
    assert_eq!(hosts["api.internal"][0].as_str(), Some("10.1.2.3"));
    assert_eq!(hosts["echo.steward.test"][0].as_str(), Some("127.0.0.1"));
}

#[test]
fn the_template_is_valid_and_the_certificate_names_the_host() {
    let template = template(&provider());
    let parsed = steward_canon::Template::from_json(&template).unwrap();
    assert_eq!(parsed.hosts(), ["echo.steward.test"]);
    let (ca, cert, key) = certificates("echo.steward.test").unwrap();
    assert!(ca.contains("BEGIN CERTIFICATE") && cert.contains("BEGIN CERTIFICATE"));
    assert!(key.contains("PRIVATE KEY"));
}

#[test]
fn host_names_are_checked() {
    assert_eq!(checked_host("Echo.Steward.Test.").unwrap(), "echo.steward.test");
    for bad in ["127.0.0.1", "localhost", "a..b", "-a.test", "a b.test", "::1"] {
        assert!(checked_host(bad).is_err(), "{bad}");
    }
}
