//! The workload side of Steward, for Rust programs and the `steward` CLI: enrollment (the private key
//! is generated here and never leaves the workload), a session cache that refreshes before expiry,
//! DPoP proofs, `POST /v1/execute`, approval polling, and manifest fetching with signature
//! verification against the published keyset.
//!
//! This crate talks only to a Steward data plane, over mTLS, verifying the broker with the workload
//! CA certificate. It must not hold provider credentials (it never sees any) and must not trust a
//! manifest it could not verify.

mod error;
mod execute;
mod forward;
mod http;
mod identity;
mod manifest;
mod session;

pub mod enroll;

pub use error::{ClientError, error_chain};
pub use execute::{
    ApprovalStatus, ApprovalSummary, ClientContext, ExecuteCall, ExecuteOutcome, ExecuteRequest,
    ExecutedResponse, HeaderField,
};
pub use forward::{BodyStream, ByteStream, ForwardBody, ForwardResponse, ForwardTarget, has_dot_segment};
pub use http::operator_client;
pub use identity::{BROKER_URL_FILE, Identity, KeyType, read_broker_url};
pub use manifest::{Manifest, ManifestGroup, MatchRule, verify_manifest};
pub use session::{BrokerClient, HealthProbe, SessionInfo};
