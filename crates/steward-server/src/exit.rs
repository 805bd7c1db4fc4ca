//! Process exit codes (`spec/operations.md`): 64 for an invalid configuration, 78 for a valid one the
//! environment cannot satisfy (production rules, keys, an uninitialized or locked store).

use crate::config::ConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// EX_USAGE: the configuration does not parse, has a wrong type or an out-of-range value.
    InvalidConfig = 64,
    /// EX_CONFIG: the environment cannot satisfy a valid configuration.
    Environment = 78,
    /// Anything else that stopped the process.
    Failure = 1,
}

/// Why Steward could not start (or a server-side command could not finish), with the exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StartupError {
    pub exit: ExitCode,
    pub message: String,
}

impl StartupError {
    pub fn environment(message: impl Into<String>) -> Self {
        Self { exit: ExitCode::Environment, message: message.into() }
    }

    pub fn failure(message: impl Into<String>) -> Self {
        Self { exit: ExitCode::Failure, message: message.into() }
    }

    pub fn code(&self) -> i32 {
        self.exit as i32
    }
}

impl From<ConfigError> for StartupError {
    fn from(error: ConfigError) -> Self {
        Self { exit: ExitCode::InvalidConfig, message: error.to_string() }
    }
}
