//! What can go wrong talking to Steward.

/// A failed client operation. `Broker` carries Steward's own error code and message.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("steward refused ({status} {code}): {message}")]
    Broker { status: u16, code: String, message: String, correlation_id: Option<String> },
    #[error("cannot reach steward: {0}")]
    Transport(String),
    #[error("unexpected answer from steward: {0}")]
    Protocol(String),
    #[error("identity files: {0}")]
    Identity(String),
    #[error("manifest verification failed: {0}")]
    Manifest(String),
}

impl ClientError {
    /// Steward's error code, when the broker answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Broker { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(error: reqwest::Error) -> Self {
        ClientError::Transport(error.to_string())
    }
}
