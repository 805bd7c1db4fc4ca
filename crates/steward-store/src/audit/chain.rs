//! Hash chains and checkpoints: how an event's `chain.hash` is computed, what the store keeps per
//! event, and the signed record of chain heads that makes cutting off a chain's tail detectable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use steward_crypto::HmacKey;
use steward_types::{CheckpointId, Timestamp};

use super::event::{AuditEvent, ChainLink};
use super::jcs;
use crate::StoreError;

/// `prev_hash` of the first event of every chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event as stored: the event (with `chain` filled), the writer that chained it, and its body JSON.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    event: AuditEvent,
    writer_id: String,
    /// The RFC 8785 form of `event`, `chain` and its `hash` included ([`canonical_body`]), made
    /// once when the event is linked so the store does not serialize it a second time. Bodies
    /// stored before decision 0024 are `serde_json` of the event, which parses the same.
    body: String,
}

/// The body is a function of the event, so equality is the event's and the writer's.
impl PartialEq for StoredEvent {
    fn eq(&self, other: &Self) -> bool {
        self.event == other.event && self.writer_id == other.writer_id
    }
}

impl StoredEvent {
    /// Wraps a chained event. Fails when `event.chain` is missing: an unchained event is never stored.
    pub fn new(event: AuditEvent, writer_id: String) -> Result<Self, StoreError> {
        let Some(link) = &event.chain else {
            return Err(StoreError::Corrupt(format!("audit event {} has no chain link", event.event_id)));
        };
        let mut canonical = Vec::with_capacity(1024);
        let chain_at = jcs::write_unchained_event(&mut canonical, &event)?;
        let body = canonical_body(&canonical, chain_at, link)?;
        Ok(Self { event, writer_id, body })
    }

    /// Parses a stored body (the JSON written by [`StoredEvent::body_json`], or by releases before
    /// decision 0024, `serde_json` of the event). The body is kept as stored.
    pub fn from_body(body: &str, writer_id: String) -> Result<Self, StoreError> {
        let event: AuditEvent = serde_json::from_str(body)
            .map_err(|e| StoreError::Corrupt(format!("audit event body does not parse: {e}")))?;
        if event.chain.is_none() {
            return Err(StoreError::Corrupt(format!("audit event {} has no chain link", event.event_id)));
        }
        Ok(Self { event, writer_id, body: body.to_owned() })
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
        Ok(self.body.clone())
    }

    /// [`StoredEvent::body_json`] without the copy.
    pub fn body(&self) -> &str {
        &self.body
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

/// One row of a chain as the store keeps it, its body not parsed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    /// The `seq` column (the body holds the event's own).
    pub seq: i64,
    pub writer_id: String,
    pub body: String,
}

impl StoredRow {
    /// The event the body holds ([`StoredEvent::from_body`]).
    pub fn parse(self) -> Result<StoredEvent, StoreError> {
        StoredEvent::from_body(&self.body, self.writer_id)
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
///
/// It is signed twice over, with the same key at the same moment: once whole ([`Checkpoint::signature`],
/// every head of the writer) and once per tenant ([`Checkpoint::tenant_signatures`], that tenant's
/// heads only). A reader scoped to some tenants is shown only their tenant checkpoints, so no field
/// it receives — signed payloads included — names another tenant's chain (decision 0007).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub checkpoint_id: CheckpointId,
    pub writer_id: String,
    pub created_at: Timestamp,
    /// Sorted by `chain_id`.
    pub heads: Vec<ChainHead>,
    /// The manifest signing key that signed it (the whole checkpoint and every tenant's).
    pub kid: String,
    /// Compact JWS over [`Checkpoint::signed_payload`].
    pub signature: String,
    /// Tenant id → compact JWS over [`Checkpoint::tenant_payload`] of that tenant's heads. Empty
    /// for checkpoints written before tenant checkpoints existed.
    #[serde(default)]
    pub tenant_signatures: BTreeMap<String, String>,
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

    /// What a tenant's signature covers: the RFC 8785 serialization of
    /// `{checkpoint_id, writer_id, created_at, tenant_id, heads}` with only that tenant's heads. The
    /// `tenant_id` member (absent from [`Checkpoint::signed_payload`]) keeps a tenant checkpoint from
    /// passing for a whole one ("this writer had no other chain").
    pub fn tenant_payload(
        checkpoint_id: &CheckpointId,
        writer_id: &str,
        created_at: Timestamp,
        tenant_id: &str,
        heads: &[ChainHead],
    ) -> Result<Vec<u8>, String> {
        if let Some(other) = heads.iter().find(|head| head.tenant_id != tenant_id) {
            return Err(format!("chain {} is not a chain of tenant {tenant_id}", other.chain_id));
        }
        let payload = serde_json::json!({
            "checkpoint_id": checkpoint_id,
            "writer_id": writer_id,
            "created_at": created_at,
            "tenant_id": tenant_id,
            "heads": heads,
        });
        serde_jcs::to_vec(&payload).map_err(|e| e.to_string())
    }

    /// The heads of `tenant_id` (sorted by `chain_id`, as [`Checkpoint::heads`]).
    pub fn tenant_heads(&self, tenant_id: &str) -> Vec<ChainHead> {
        self.heads.iter().filter(|head| head.tenant_id == tenant_id).cloned().collect()
    }

    /// The tenants with a head in this checkpoint, sorted, each once.
    pub fn tenants(&self) -> Vec<&str> {
        let tenants: std::collections::BTreeSet<&str> =
            self.heads.iter().map(|head| head.tenant_id.as_str()).collect();
        tenants.into_iter().collect()
    }
}

/// Signs checkpoints. The server implements it with the active manifest signing key.
pub trait CheckpointSigner: Send + Sync + std::fmt::Debug {
    /// Returns `(kid, compact JWS)` over `payload`.
    fn sign(&self, payload: &[u8]) -> Result<(String, String), String>;

    /// Signs every payload with one key: `(kid, one compact JWS per payload, in order)`. The default
    /// signs them one by one and fails should the key change in between (a rotation at that very
    /// moment: the writer tries again at its next checkpoint); implementations that can hold one key
    /// for the whole batch override it.
    fn sign_all(&self, payloads: &[Vec<u8>]) -> Result<(String, Vec<String>), String> {
        let mut kid: Option<String> = None;
        let mut signatures = Vec::with_capacity(payloads.len());
        for payload in payloads {
            let (this_kid, signature) = self.sign(payload)?;
            match &kid {
                Some(first) if *first != this_kid => {
                    return Err(format!("the signing key changed from {first} to {this_kid} while signing"));
                }
                Some(_) => {}
                None => kid = Some(this_kid),
            }
            signatures.push(signature);
        }
        let kid = kid.ok_or_else(|| "nothing to sign".to_owned())?;
        Ok((kid, signatures))
    }
}

/// A head as the `heads` column of `audit_checkpoints` keeps it: the head and, alongside, the
/// signature of its tenant's checkpoint (absent in rows written before tenant checkpoints existed,
/// which therefore still parse). One chain per (tenant, writer) means one head per tenant in a
/// checkpoint, so each signature is stored once.
#[derive(Debug, Serialize, Deserialize)]
struct StoredHead {
    #[serde(flatten)]
    head: ChainHead,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant_signature: Option<String>,
}

impl Checkpoint {
    /// The JSON of the `heads` column: [`Checkpoint::heads`] with the tenant signatures.
    pub fn heads_column(&self) -> Result<String, StoreError> {
        let stored: Vec<StoredHead> = self
            .heads
            .iter()
            .map(|head| StoredHead {
                head: head.clone(),
                tenant_signature: self.tenant_signatures.get(&head.tenant_id).cloned(),
            })
            .collect();
        serde_json::to_string(&stored)
            .map_err(|e| StoreError::Corrupt(format!("checkpoint heads do not serialize: {e}")))
    }

    /// Splits a `heads` column back into the heads and the tenant signatures.
    pub fn parse_heads_column(text: &str) -> Result<(Vec<ChainHead>, BTreeMap<String, String>), StoreError> {
        let stored: Vec<StoredHead> = serde_json::from_str(text)
            .map_err(|e| StoreError::Corrupt(format!("checkpoint heads do not parse: {e}")))?;
        let mut signatures = BTreeMap::new();
        let mut heads = Vec::with_capacity(stored.len());
        for StoredHead { head, tenant_signature } in stored {
            if let Some(signature) = tenant_signature {
                signatures.insert(head.tenant_id.clone(), signature);
            }
            heads.push(head);
        }
        Ok((heads, signatures))
    }
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
    let mut context = HmacKey::new(audit_key).context();
    context.update(chain.prev_hash.as_bytes());
    context.update(b"\n");
    context.update(&canonical);
    Ok(hex::encode(context.finish()))
}

/// An event serialized once, before it has a place in a chain: its RFC 8785 form with a hole where
/// `chain` goes. The audit writer builds it on the appending caller's task, so the one writer task
/// only fills the hole with the link and runs the HMAC instead of serializing every event itself.
///
/// Filling the hole gives exactly the bytes [`compute_hash`] hashes: that is JCS of the event's JSON
/// value with `chain` replaced by `{chain_id, seq, prev_hash}`, and JCS sorts object keys without
/// looking at the values and writes a value the same wherever it sits, so only the bytes of the
/// `chain` value differ from the canonical form with `chain: null` ([`jcs::write_unchained_event`]).
/// Filling it with the whole link, hash included, gives the stored body ([`canonical_body`]).
#[derive(Debug)]
pub(crate) struct Unchained {
    /// The event, its `chain` cleared.
    event: AuditEvent,
    /// JCS of the event with `chain: null`.
    canonical: Vec<u8>,
    /// Byte offset of that `null` in `canonical`.
    chain_at: usize,
}

/// Room kept in a canonical form for its link: the JSON of two hashes, the chain id and the sequence
/// number, so filling the hole does not reallocate.
const LINK_ROOM: usize = 320;

fn link_error(error: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("audit chain link does not serialize: {error}"))
}

impl Unchained {
    pub(crate) fn new(mut event: AuditEvent) -> Result<Self, StoreError> {
        event.chain = None;
        let mut canonical = Vec::with_capacity(1024 + LINK_ROOM);
        let chain_at = jcs::write_unchained_event(&mut canonical, &event)?;
        Ok(Self { event, canonical, chain_at })
    }

    pub(crate) fn event(&self) -> &AuditEvent {
        &self.event
    }

    /// Places the event at `seq` of `chain_id` after `prev_hash` and hashes it under `key` (the audit
    /// key): the same hash [`compute_hash`] gives for the event with that link.
    pub(crate) fn link(
        self,
        key: &HmacKey,
        chain_id: String,
        seq: i64,
        prev_hash: String,
        writer_id: String,
    ) -> Result<StoredEvent, StoreError> {
        let Unchained { mut event, canonical, chain_at } = self;
        let hash = link_hash(key, &canonical, chain_at, &chain_id, seq, &prev_hash)?;
        let link = ChainLink { chain_id, seq, prev_hash, hash };
        let body = canonical_body(&canonical, chain_at, &link)?;
        event.chain = Some(link);
        Ok(StoredEvent { event, writer_id, body })
    }
}

/// Appends the JCS form of a chain link: `{chain_id, hash, prev_hash, seq}` (keys in sorted order,
/// strings escaped as `serde_json` does, the integer in plain digits), without `hash` when it is
/// `None` — the link as [`compute_hash`] hashes it.
pub(super) fn write_link(
    out: &mut Vec<u8>,
    chain_id: &str,
    hash: Option<&str>,
    prev_hash: &str,
    seq: i64,
) -> Result<(), StoreError> {
    out.extend_from_slice(b"{\"chain_id\":");
    jcs::write_str(out, chain_id)?;
    if let Some(hash) = hash {
        out.extend_from_slice(b",\"hash\":");
        jcs::write_str(out, hash)?;
    }
    out.extend_from_slice(b",\"prev_hash\":");
    jcs::write_str(out, prev_hash)?;
    out.extend_from_slice(b",\"seq\":");
    serde_json::to_writer(&mut *out, &seq).map_err(link_error)?;
    out.push(b'}');
    Ok(())
}

/// The body stored for an event whose canonical form with `chain: null` is `canonical` (that `null`
/// at `chain_at`): the canonical form with the whole link, hash included (decision 0024). Removing
/// the link's `hash` member gives back the bytes that were hashed, which is what lets verification
/// check a stored event without parsing it ([`super::skim`]).
fn canonical_body(canonical: &[u8], chain_at: usize, link: &ChainLink) -> Result<String, StoreError> {
    let (before, after) = canonical.split_at(chain_at);
    let mut body = Vec::with_capacity(canonical.len() + LINK_ROOM);
    body.extend_from_slice(before);
    write_link(&mut body, &link.chain_id, Some(&link.hash), &link.prev_hash, link.seq)?;
    body.extend_from_slice(&after["null".len()..]);
    // Every piece came from `serde_json`'s writers, so this only checks what is already true.
    String::from_utf8(body).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The chain hash of an event whose canonical form with `chain: null` is `canonical` (that `null` at
/// `chain_at`) once placed at `seq` of `chain_id` after `prev_hash`: the bytes [`compute_hash`]
/// hashes, written without building a JSON value.
fn link_hash(
    key: &HmacKey,
    canonical: &[u8],
    chain_at: usize,
    chain_id: &str,
    seq: i64,
    prev_hash: &str,
) -> Result<String, StoreError> {
    let mut unhashed = Vec::with_capacity(160);
    write_link(&mut unhashed, chain_id, None, prev_hash, seq)?;
    let (before, after) = canonical.split_at(chain_at);
    Ok(hex::encode(hash_canonical(key, prev_hash, &[before, &unhashed, &after["null".len()..]])))
}

/// `HMAC(key, prev_hash ‖ "\n" ‖ parts…)`: the chain hash of an event whose canonical form (its link
/// without `hash`) is the concatenation of `parts`, as [`compute_hash`] defines it.
pub(super) fn hash_canonical(key: &HmacKey, prev_hash: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut context = key.context();
    context.update(prev_hash.as_bytes());
    context.update(b"\n");
    for part in parts {
        context.update(part);
    }
    context.finish()
}

/// [`compute_hash`] with the crate's own RFC 8785 writer ([`jcs::write_unchained_event`]) and a key
/// set up once by the caller: the same hash (the tests compare them), without the JSON value and
/// `serde_jcs`'s buffering. Verification runs it on every event; `scratch` is reused between calls.
pub(crate) fn chain_hash(
    key: &HmacKey,
    event: &AuditEvent,
    scratch: &mut Vec<u8>,
) -> Result<String, StoreError> {
    let chain = event
        .chain
        .as_ref()
        .ok_or_else(|| StoreError::Corrupt(format!("audit event {} has no chain link", event.event_id)))?;
    scratch.clear();
    let chain_at = jcs::write_unchained_event(scratch, event)?;
    link_hash(key, scratch, chain_at, &chain.chain_id, chain.seq, &chain.prev_hash)
}

/// The id of the chain of `tenant_id` written by `writer_id`. Deterministic, so a reader can tell which
/// writer and tenant a chain belongs to without another table.
pub fn chain_id_for(tenant_id: &str, writer_id: &str) -> String {
    format!("{tenant_id}/{writer_id}")
}

#[cfg(test)]
mod tests;
