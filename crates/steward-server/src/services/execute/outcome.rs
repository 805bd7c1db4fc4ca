//! How an execute request ended, fully bookkept (its audit events written, its metrics counted):
//! each surface only renders it. The envelope route renders JSON with 202 for an approval; forward
//! mode renders its own error shape with 403 for an approval (`spec/gateway.md` §1).

use axum::http::{HeaderValue, header};
use serde_json::{Value, json};
use steward_store::governance::ApprovalRecord;
use steward_types::ErrorCode;

use super::forward::Delivered;
use super::idempotency::StoredResponse;
use crate::http::ApiError;

/// The end of one execute request.
#[derive(Debug)]
pub enum Outcome {
    /// Forwarded and answered (whatever the upstream's status); `execute` and `execute_result`
    /// written.
    Executed(Executed),
    /// The stored answer of an earlier request with the same idempotency key (step 6); `execute`
    /// allowed with `replayed: true` written. Render with the *current* correlation id.
    Replayed(StoredResponse),
    /// Policy denied (step 8): `execute` denied (and `violation` for `policy_deny`) written.
    Denied(ApiError),
    /// A person must approve first (step 8): the pending approval (new when `created`).
    ApprovalRequired { approval: Box<ApprovalRecord>, created: bool },
    /// An empty rate-limit bucket (step 8): `execute` throttled written.
    Throttled { retry_after_seconds: u64 },
    /// Sent, but no answer came (timeout, broken connection, refused redirect, …); the
    /// `execute_result` event carries the code.
    UpstreamFailed(ApiError),
    /// Any other refusal (steps 1–12), already audited when it is a decision
    /// ([`crate::services::audit::is_decision`]); also an audit write that failed.
    Refused(ApiError),
}

impl Outcome {
    /// `steward_execute_total`'s `decision` label.
    pub fn decision(&self) -> &'static str {
        match self {
            Outcome::Executed(_) | Outcome::Replayed(_) | Outcome::UpstreamFailed(_) => "allowed",
            Outcome::ApprovalRequired { .. } => "approval_required",
            Outcome::Throttled { .. } => "throttled",
            Outcome::Denied(_) | Outcome::Refused(_) => "denied",
        }
    }

    /// The error of a refusal, the way every surface states it (code, message, `retry-after`);
    /// `None` for `Executed`, `Replayed` and `ApprovalRequired`, which each surface renders itself.
    pub fn error(&self) -> Option<ApiError> {
        match self {
            Outcome::Denied(error) | Outcome::UpstreamFailed(error) | Outcome::Refused(error) => {
                Some(error.clone())
            }
            Outcome::Throttled { retry_after_seconds } => Some(throttled_error(*retry_after_seconds)),
            Outcome::Executed(_) | Outcome::Replayed(_) | Outcome::ApprovalRequired { .. } => None,
        }
    }
}

/// 429 `policy_rate_limited` with `retry-after`.
pub fn throttled_error(retry_after_seconds: u64) -> ApiError {
    let mut error = ApiError::new(
        ErrorCode::PolicyRateLimited,
        format!("rate limit reached for this action; retry after {retry_after_seconds} s"),
    );
    if let Ok(value) = HeaderValue::from_str(&retry_after_seconds.to_string()) {
        error = error.with_header(header::RETRY_AFTER, value);
    }
    error
}

/// A forwarded and scrubbed answer, buffered.
#[derive(Debug)]
pub struct Executed {
    pub delivered: Delivered,
}

impl Executed {
    /// The envelope's 200 body, `{"status":"executed","correlation_id":…,"upstream":{…}}`; also what
    /// the idempotency record stores.
    pub fn envelope_json(&self, correlation_id: &str) -> Value {
        json!({
            "status": "executed",
            "correlation_id": correlation_id,
            "upstream": self.delivered.upstream_json(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_states_its_error_and_the_decision_label_follows_the_outcome() {
        let throttled = Outcome::Throttled { retry_after_seconds: 3 };
        assert_eq!(throttled.decision(), "throttled");
        let error = throttled.error().unwrap_or_else(|| ApiError::internal("none"));
        assert_eq!(error.code, ErrorCode::PolicyRateLimited);
        assert!(error.headers.iter().any(|(name, value)| name == header::RETRY_AFTER && value == "3"));

        let denied = Outcome::Denied(ApiError::new(ErrorCode::PolicyDeny, "denied by rule"));
        assert_eq!(denied.decision(), "denied");
        assert_eq!(denied.error().map(|e| e.code), Some(ErrorCode::PolicyDeny));

        let failed = Outcome::UpstreamFailed(ApiError::new(ErrorCode::UpstreamTimeout, "slow"));
        assert_eq!(failed.decision(), "allowed", "the call was allowed and sent");
        assert_eq!(failed.error().map(|e| e.code), Some(ErrorCode::UpstreamTimeout));
    }
}
