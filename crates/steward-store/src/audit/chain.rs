//! Hash chains and checkpoints: how an event's `chain.hash` is computed, what the store keeps per
//! event, and the signed record of chain heads that makes cutting off a chain's tail detectable.

use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};
use steward_types::{CheckpointId, Timestamp};

use super::event::{AuditEvent, ChainLink};
use crate::StoreError;

/// `prev_hash` of the first event of every chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event as stored: the event (with `chain` filled) and the writer that chained it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    event: AuditEvent,
    writer_id: String,
}

impl StoredEvent {
    /// Wraps a chained event. Fails when `event.chain` is missing: an unchained event is never stored.
    pub fn new(event: AuditEvent, writer_id: String) -> Result<Self, StoreError> {
        if event.chain.is_none() {
            return Err(StoreError::Corrupt(format!("audit event {} has no chain link", event.event_id)));
        }
        Ok(Self { event, writer_id })
    }

    /// Parses a stored body (the JSON written by [`StoredEvent::body_json`]).
    pub fn from_body(body: &str, writer_id: String) -> Result<Self, StoreError> {
        let event: AuditEvent = serde_json::from_str(body)
            .map_err(|e| StoreError::Corrupt(format!("audit event body does not parse: {e}")))?;
        Self::new(event, writer_id)
    }

    pub fn event(&self) -> &AuditEvent {
        &self.event
    }

    pub fn into_event(self) -> AuditEvent {
        self.event
    }

    pub fn writer_id(&self) -> &str {
        &self.writer_id
    }

    pub fn chain(&self) -> &ChainLink {
        // `new` is the only constructor and refuses events without a chain.
        self.event.chain.as_ref().expect("a StoredEvent always carries its chain link")
    }

    /// The full event JSON kept in the `body` column.
    pub fn body_json(&self) -> Result<String, StoreError> {
        serde_json::to_string(&self.event)
            .map_err(|e| StoreError::Corrupt(format!("audit event does not serialize: {e}")))
    }

    /// The head this event would be if it were the newest of its chain.
    pub fn as_head(&self) -> ChainHead {
        let chain = self.chain();
        ChainHead {
            chain_id: chain.chain_id.clone(),
            tenant_id: self.event.chain_tenant().to_owned(),
            writer_id: self.writer_id.clone(),
            seq: chain.seq,
            hash: chain.hash.clone(),
            event_id: self.event.event_id.to_string(),
        }
    }
}

/// The newest event of one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub chain_id: String,
    /// The chain's tenant (`global` for events without one).
    pub tenant_id: String,
    pub writer_id: String,
    pub seq: i64,
    pub hash: String,
    pub event_id: String,
}

/// A writer's signed statement of its chain heads at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub checkpoint_id: CheckpointId,
    pub writer_id: String,
    pub created_at: Timestamp,
    /// Sorted by `chain_id`.
    pub heads: Vec<ChainHead>,
    /// The manifest signing key that signed it.
    pub kid: String,
    /// Compact JWS over [`Checkpoint::signed_payload`].
    pub signature: String,
}

impl Checkpoint {
    /// What the signature covers: the RFC 8785 serialization of
    /// `{checkpoint_id, writer_id, created_at, heads}` — the heads plus enough context that a signed
    /// checkpoint cannot be replayed as another writer's or another moment's.
    pub fn signed_payload(
        checkpoint_id: &CheckpointId,
        writer_id: &str,
        created_at: Timestamp,
        heads: &[ChainHead],
    ) -> Result<Vec<u8>, String> {
        let payload = serde_json::json!({
            "checkpoint_id": checkpoint_id,
            "writer_id": writer_id,
            "created_at": created_at,
            "heads": heads,
        });
        serde_jcs::to_vec(&payload).map_err(|e| e.to_string())
    }
}

/// Signs checkpoints. The server implements it with the active manifest signing key.
pub trait CheckpointSigner: Send + Sync + std::fmt::Debug {
    /// Returns `(kid, compact JWS)` over `payload`.
    fn sign(&self, payload: &[u8]) -> Result<(String, String), String>;
}

/// `hex(HMAC-SHA256(key, prev_hash ‖ "\n" ‖ JCS(event without chain.hash)))`. `event.chain` must
/// hold the link's `chain_id`, `seq` and `prev_hash`; its `hash` is ignored.
pub fn compute_hash(audit_key: &[u8; 32], event: &AuditEvent) -> Result<String, StoreError> {
    let chain = event
        .chain
        .as_ref()
        .ok_or_else(|| StoreError::Corrupt(format!("audit event {} has no chain link", event.event_id)))?;
    let mut value = serde_json::to_value(event)
        .map_err(|e| StoreError::Corrupt(format!("audit event does not serialize: {e}")))?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| StoreError::Corrupt("audit event is not a JSON object".to_owned()))?;
    object.insert(
        "chain".to_owned(),
        serde_json::json!({"chain_id": chain.chain_id, "seq": chain.seq, "prev_hash": chain.prev_hash}),
    );
    let canonical = serde_jcs::to_vec(&value)
        .map_err(|e| StoreError::Corrupt(format!("audit event is not JCS-able: {e}")))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, audit_key);
    let mut context = hmac::Context::with_key(&key);
    context.update(chain.prev_hash.as_bytes());
    context.update(b"\n");
    context.update(&canonical);
    Ok(hex::encode(context.sign().as_ref()))
}

/// The id of the chain of `tenant_id` written by `writer_id`. Deterministic, so a reader can tell which
/// writer and tenant a chain belongs to without another table.
pub fn chain_id_for(tenant_id: &str, writer_id: &str) -> String {
    format!("{tenant_id}/{writer_id}")
}

#[cfg(test)]
mod tests;
