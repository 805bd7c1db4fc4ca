//! Configuration: one typed struct, loaded once from defaults → TOML file → environment overlay,
//! unknown keys rejected, then checked for ranges (`spec/operations.md`).
//!
//! Errors here are *invalid configuration* (exit 64, the message names the key). Whether the
//! environment can satisfy a valid configuration (keys, store, production rules) is checked later,
//! at start-up, and is exit 78.

mod env;
mod model;
mod template;

#[cfg(test)]
mod tests;

pub use env::environment_overlay;
pub use model::*;
pub use template::{InitChoices, default_config_toml};

use std::path::{Path, PathBuf};

/// An invalid configuration. Exit code 64.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct ConfigError {
    /// The dotted key, e.g. `data_plane.listen` (empty when the whole file failed to parse).
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

/// A loaded configuration and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    /// The directory relative paths resolve against (the config file's directory).
    pub base_dir: PathBuf,
    pub file: Option<PathBuf>,
}

impl LoadedConfig {
    /// Resolves a path from the configuration against the config file's directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() { path.to_path_buf() } else { self.base_dir.join(path) }
    }
}

/// Loads `file` (if any), overlays `env` (the process environment, passed in so tests never mutate
/// it), and validates.
pub fn load(file: Option<&Path>, env: &[(String, String)]) -> Result<LoadedConfig, ConfigError> {
    let (table, base_dir) = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::new("", format!("cannot read {}: {e}", path.display())))?;
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                ConfigError::new("", format!("{} is not valid TOML: {}", path.display(), e.message()))
            })?;
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
            (table, dir)
        }
        None => (toml::Table::new(), PathBuf::from(".")),
    };
    let config = from_table(table, env)?;
    Ok(LoadedConfig { config, base_dir, file: file.map(Path::to_path_buf) })
}

/// The configuration from defaults and the environment alone (no file).
pub fn from_environment(env: &[(String, String)]) -> Result<Config, ConfigError> {
    from_table(toml::Table::new(), env)
}

/// Merges the environment into `table`, deserializes strictly and validates.
pub fn from_table(mut table: toml::Table, env: &[(String, String)]) -> Result<Config, ConfigError> {
    environment_overlay(&mut table, env)?;
    let deserializer = toml::Value::Table(table);
    let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let message = e.into_inner().to_string();
        ConfigError::new(if key == "." { String::new() } else { key }, message)
    })?;
    config.validate()?;
    Ok(config)
}
