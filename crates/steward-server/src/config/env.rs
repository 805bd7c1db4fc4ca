//! The environment overlay: `STEWARD_<SECTION>__<KEY>` for the known sections and `STEWARD_MODE`,
//! `STEWARD_PUBLIC_BASE_URL`, `STEWARD_TRUST_DOMAIN` for the top-level keys. Every other `STEWARD_*`
//! variable (the keyring, the CLI's and tests' own) is not configuration and is ignored here.

use super::{ConfigError, SECTIONS, TOP_LEVEL_KEYS};

/// Applies the overlay to `table`. A value is read as a TOML value when it parses as one (so arrays
/// and tables work), else as a string. An unknown key of a known section is left in the table, where
/// strict deserialization rejects it naming the key.
pub fn environment_overlay(table: &mut toml::Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("STEWARD_") else { continue };
        let value = parse_value(raw);
        if let Some((section, key)) = rest.split_once("__") {
            let section = section.to_ascii_lowercase();
            if !SECTIONS.contains(&section.as_str()) {
                continue;
            }
            let key = key.to_ascii_lowercase();
            let entry =
                table.entry(section.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(section_table) = entry else {
                return Err(ConfigError::new(section, "must be a table"));
            };
            section_table.insert(key, value);
        } else {
            let key = rest.to_ascii_lowercase();
            if TOP_LEVEL_KEYS.contains(&key.as_str()) {
                table.insert(key, value);
            }
        }
    }
    Ok(())
}

fn parse_value(raw: &str) -> toml::Value {
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut parsed) => parsed.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}
