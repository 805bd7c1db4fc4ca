//! The tamper-evident audit log (`spec/keys-and-audit.md`, "Audit events"): the event record, hash
//! chains per (tenant, writer), the group-committing writer, signed checkpoints and verification.
//!
//! The store only keeps rows and refuses to change them; everything that makes the log trustworthy
//! (HMAC chaining under the audit key, checkpoints signed with the manifest key) happens here.

mod chain;
mod event;
mod jcs;
mod skim;
mod verify;
mod writer;

pub use chain::{
    ChainHead, Checkpoint, CheckpointSigner, GENESIS_HASH, StoredEvent, StoredRow, chain_id_for, compute_hash,
};
pub use event::{Actor, ActorType, AuditEvent, ChainLink, Decision, Destination, EventType, PolicyRef};
pub use verify::{VerifyReport, verify_tenant};
pub use writer::{AuditError, AuditWriter};
