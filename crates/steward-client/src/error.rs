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
    /// The message with its causes: reqwest's own ("error sending request for url …") hides whether
    /// the connection was refused, timed out or failed TLS verification.
    fn from(error: reqwest::Error) -> Self {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        ClientError::Transport(text)
    }
}
