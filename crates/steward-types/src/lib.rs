//! Steward's shared vocabulary: typed ids, timestamps, the injectable [`Clock`] and the one
//! [`ErrorCode`] enum whose string forms are the codes of `spec/errors.md`.
//!
//! This crate does no I/O and depends on nothing heavier than `serde`, `time` and `uuid`; every other
//! crate may depend on it, it depends on none of them.

mod clock;
mod error_code;
mod ids;
mod timestamp;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error_code::ErrorCode;
pub use ids::{
    ApprovalId, CheckpointId, EnrollmentTokenId, EventId, IdError, IntegrationId, PolicyId, RequestId,
    SessionId, SigningKeyId, TenantId, TokenId, WorkloadId,
};
pub use timestamp::Timestamp;

/// The tenant id under which templates visible to every tenant are stored.
pub const GLOBAL_TENANT: &str = "global";
