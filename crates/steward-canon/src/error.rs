//! The two error types of this crate. Each carries the exact spec [`ErrorCode`] the HTTP edge maps to a
//! status, and a message for people naming what was wrong.

use steward_types::ErrorCode;

/// A template (or injection) rejected on publish: the spec code and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", .code.as_str())]
pub struct TemplateError {
    code: ErrorCode,
    message: String,
}

impl TemplateError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// The stable error code of `spec/errors.md`.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// What was wrong, for people.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// An execute request rejected by canonicalization: the spec code and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", .code.as_str())]
pub struct CanonError {
    code: ErrorCode,
    message: String,
}

impl CanonError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// The stable error code of `spec/errors.md`.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// What was wrong, for people.
    pub fn message(&self) -> &str {
        &self.message
    }
}
