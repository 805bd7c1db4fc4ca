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
        ClientError::Transport(error_chain(&error))
    }
}

/// An error's message followed by each of its sources that adds something: reqwest's own message
/// ("error sending request for url …") hides whether the connection was refused, timed out or failed
/// TLS verification.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
