use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn from_text(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    from_table(text.parse().unwrap(), &env(vars))
}

#[test]
fn defaults_match_the_spec() {
    let config = from_text("", &[]).unwrap();
    assert_eq!(config.mode, Mode::Development);
    assert_eq!(config.public_base_url, "https://localhost:8081");
    assert_eq!(config.data_plane.listen.to_string(), "127.0.0.1:8081");
    assert_eq!(config.admin.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.data_plane.max_body_bytes, 1_048_576);
    assert_eq!(config.storage.backend, StorageBackend::Sqlite);
    assert_eq!(config.session.default_ttl_seconds, 900);
    assert_eq!(config.egress.total_timeout_ms, 15_000);
    assert_eq!(config.manifest.ttl_seconds, 300);
}

#[test]
fn the_written_template_parses_to_the_defaults() {
    let text = default_config_toml(&InitChoices::default());
    let config = from_text(&text, &[]).unwrap();
    let defaults = Config::default();
    assert_eq!(serde_json::to_value(&config).unwrap(), serde_json::to_value(&defaults).unwrap());
}

#[test]
fn unknown_keys_in_the_file_are_rejected_by_name() {
    let err = from_text("[data_plane]\nlisten_addr = \"1.2.3.4:1\"\n", &[]).unwrap_err();
    assert!(err.to_string().contains("listen_addr"), "{err}");
    let err = from_text("[nonsense]\nx = 1\n", &[]).unwrap_err();
    assert!(err.to_string().contains("nonsense"), "{err}");
}

#[test]
fn wrong_types_and_ranges_name_the_key() {
    let err = from_text("[data_plane]\nlisten = \"not an address\"\n", &[]).unwrap_err();
    assert_eq!(err.key, "data_plane.listen");
    let err = from_text("[manifest]\nttl_seconds = 301\n", &[]).unwrap_err();
    assert_eq!(err.key, "manifest.ttl_seconds");
    let err = from_text("[session]\ndefault_ttl_seconds = \"x\"\n", &[]).unwrap_err();
    assert_eq!(err.key, "session.default_ttl_seconds");
    let err = from_text("mode = \"staging\"\n", &[]).unwrap_err();
    assert_eq!(err.key, "mode");
}

#[test]
fn identical_listen_addresses_are_invalid() {
    let err = from_text("[admin]\nlisten = \"127.0.0.1:8081\"\n", &[]).unwrap_err();
    assert_eq!(err.key, "admin.listen");
}

#[test]
fn environment_overrides_the_file_with_toml_values() {
    let config = from_text(
        "[data_plane]\nlisten = \"127.0.0.1:9000\"\n",
        &[
            ("STEWARD_DATA_PLANE__LISTEN", "0.0.0.0:8443"),
            ("STEWARD_EGRESS__ALLOW_CIDRS", "[\"127.0.0.1/32\"]"),
            ("STEWARD_EGRESS__STATIC_HOSTS", "{ \"api.example.test\" = [\"127.0.0.1\"] }"),
            ("STEWARD_MODE", "production"),
            ("STEWARD_SESSION__MAX_PER_MINUTE", "5"),
        ],
    )
    .unwrap();
    assert_eq!(config.data_plane.listen.to_string(), "0.0.0.0:8443");
    assert_eq!(config.egress.allow_cidrs.len(), 1);
    assert_eq!(config.egress.static_hosts["api.example.test"][0].to_string(), "127.0.0.1");
    assert_eq!(config.mode, Mode::Production);
    assert_eq!(config.session.max_per_minute, 5);
}

#[test]
fn environment_unknown_key_of_a_known_section_is_an_error_and_others_are_ignored() {
    let err = from_text("", &[("STEWARD_DATA_PLANE__LISTN", "1")]).unwrap_err();
    assert!(err.to_string().contains("listn"), "{err}");
    from_text(
        "",
        &[
            ("STEWARD_KEK_KEYRING", "{}"),
            ("STEWARD_ADMIN_TOKEN", "x"),
            ("STEWARD_TEST_REDIS_URL", "y"),
            ("HOME", "/"),
        ],
    )
    .unwrap();
}

#[test]
fn shared_mode_needs_both_urls() {
    let err = from_text("[storage]\nbackend = \"postgres\"\n", &[]).unwrap_err();
    assert_eq!(err.key, "storage.postgres_url");
    let err =
        from_text("[storage]\nbackend = \"postgres\"\npostgres_url = \"postgres://x/y\"\n", &[]).unwrap_err();
    assert_eq!(err.key, "storage.redis_url");
}

#[test]
fn public_base_url_rules() {
    assert_eq!(PublicBaseUrl::parse("https://Example.COM:443/").unwrap().origin(), "https://example.com");
    assert_eq!(PublicBaseUrl::parse("https://localhost:8081").unwrap().origin(), "https://localhost:8081");
    assert_eq!(PublicBaseUrl::parse("https://[::1]:8081").unwrap().bare_host(), "::1");
    for bad in ["ftp://x", "https://", "https://x/path", "https://u@x", "x"] {
        assert!(PublicBaseUrl::parse(bad).is_err(), "{bad}");
    }
    let err = from_text("public_base_url = \"https://a/b\"\n", &[]).unwrap_err();
    assert_eq!(err.key, "public_base_url");
}

#[test]
fn listener_limits_have_their_defaults_and_ranges() {
    let config = from_text("", &[]).unwrap();
    assert_eq!(config.data_plane.header_read_timeout_ms, 10_000);
    assert_eq!(config.data_plane.idle_timeout_ms, 60_000);
    assert_eq!(config.data_plane.max_connections_per_ip, 1000);
    for key in ["header_read_timeout_ms", "idle_timeout_ms", "max_connections_per_ip"] {
        let err = from_text(&format!("[data_plane]\n{key} = 0\n"), &[]).unwrap_err();
        assert_eq!(err.key, format!("data_plane.{key}"), "{err}");
        let var = format!("STEWARD_DATA_PLANE__{}", key.to_ascii_uppercase());
        let err = from_text("", &[(var.as_str(), "0")]).unwrap_err();
        assert_eq!(err.key, format!("data_plane.{key}"), "{err}");
    }
    let config = from_text(
        "[data_plane]\nheader_read_timeout_ms = 300\nidle_timeout_ms = 500\nmax_connections_per_ip = 2\n",
        &[],
    )
    .unwrap();
    assert_eq!(config.data_plane.header_read_timeout_ms, 300);
    assert_eq!(config.data_plane.idle_timeout_ms, 500);
    assert_eq!(config.data_plane.max_connections_per_ip, 2);
}

#[test]
fn forward_mode_limits_have_their_defaults_ranges_and_typed_view() {
    let config = from_text("", &[]).unwrap();
    assert_eq!(config.data_plane.max_forward_body_bytes, 33_554_432);
    assert_eq!(config.egress.max_stream_bytes, 1_073_741_824);
    assert_eq!(config.egress.stream_idle_timeout_ms, 120_000);
    assert_eq!(config.egress.max_stream_seconds, 1800);
    assert_eq!(
        config.egress.stream_limits(),
        StreamLimits {
            max_bytes: 1_073_741_824,
            idle_timeout: std::time::Duration::from_secs(120),
            max_duration: std::time::Duration::from_secs(1800),
        }
    );
    // Out of range, from the file or the environment: the message names the key and the range.
    for (section, key, bad) in [
        ("data_plane", "max_forward_body_bytes", "0"),
        ("data_plane", "max_forward_body_bytes", "1073741825"),
        ("egress", "max_stream_bytes", "1023"),
        ("egress", "stream_idle_timeout_ms", "0"),
        ("egress", "stream_idle_timeout_ms", "3600001"),
        ("egress", "max_stream_seconds", "0"),
        ("egress", "max_stream_seconds", "86401"),
    ] {
        let err = from_text(&format!("[{section}]\n{key} = {bad}\n"), &[]).unwrap_err();
        assert_eq!(err.key, format!("{section}.{key}"), "{err}");
        assert!(err.message.contains("out of range"), "{err}");
        let var = format!("STEWARD_{}__{}", section.to_ascii_uppercase(), key.to_ascii_uppercase());
        let err = from_text("", &[(var.as_str(), bad)]).unwrap_err();
        assert_eq!(err.key, format!("{section}.{key}"), "{err}");
    }
    let err = from_text("[egress]\nmax_stream_seconds = \"long\"\n", &[]).unwrap_err();
    assert_eq!(err.key, "egress.max_stream_seconds");
    let err = from_text("[egress]\nmax_stream_bytes = -1\n", &[]).unwrap_err();
    assert_eq!(err.key, "egress.max_stream_bytes");
    // Set from the file and overridden by the environment.
    let config = from_text(
        "[data_plane]\nmax_forward_body_bytes = 4096\n[egress]\nmax_stream_bytes = 2048\nstream_idle_timeout_ms = 250\n",
        &[("STEWARD_EGRESS__MAX_STREAM_SECONDS", "5"), ("STEWARD_DATA_PLANE__MAX_FORWARD_BODY_BYTES", "8192")],
    )
    .unwrap();
    assert_eq!(config.data_plane.max_forward_body_bytes, 8192);
    let limits = config.egress.stream_limits();
    assert_eq!(limits.max_bytes, 2048);
    assert_eq!(limits.idle_timeout, std::time::Duration::from_millis(250));
    assert_eq!(limits.max_duration, std::time::Duration::from_secs(5));
}
