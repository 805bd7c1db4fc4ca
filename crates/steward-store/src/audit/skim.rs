//! What verification reads of a stored event, and its chain hash, without building the event.
//!
//! Verifying a chain recomputes every event's hash. Parsing each body into an [`AuditEvent`] and
//! writing its canonical form again was most of the cost (issue 18). Bodies written since decision
//! 0024 are already that canonical form, with the link's `hash` member added: taking the member out
//! again gives the exact bytes that were hashed. So verification reads only the few members it
//! checks ([`SkimmedEvent`]) and hashes the stored bytes around the `hash` member.
//!
//! Why this is as strong as recomputing from the parsed event: an HMAC under the audit key only
//! matches bytes the writer hashed, so if the hash of "the body without that member" matches, the
//! body *is* the writer's body (the one member taken out is the one that was put in, at the one
//! place the top-level `chain` holds it, see [`SkimmedEvent::chain_hash`]). A body that is not in
//! that form (written before 0024, or altered) takes the full path: parse, canonicalize, hash.

use std::borrow::Cow;
use std::sync::LazyLock;

use memchr::memmem;
use serde::Deserialize;
use steward_crypto::HmacKey;

use super::chain::{chain_hash, hash_canonical, write_link};
use super::{AuditEvent, StoredEvent};
use crate::StoreError;

/// Where a top-level link can start in a canonical body; searched once per body, then each place is
/// compared with the whole expected link. Built once: building a searcher costs more than using it.
static CHAIN_MEMBER: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"chain\":{\"chain_id\":"));

/// The members of a stored body that verification checks; every other member is skipped unread.
#[derive(Debug, Deserialize)]
pub(crate) struct SkimmedEvent<'a> {
    #[serde(borrow)]
    pub event_id: Cow<'a, str>,
    #[serde(borrow, default)]
    pub tenant_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub chain: Option<SkimmedLink<'a>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SkimmedLink<'a> {
    #[serde(borrow)]
    pub chain_id: Cow<'a, str>,
    pub seq: i64,
    #[serde(borrow)]
    pub prev_hash: Cow<'a, str>,
    #[serde(borrow)]
    pub hash: Cow<'a, str>,
}

impl<'a> SkimmedEvent<'a> {
    /// Reads the checked members of `body`. A body that is not a JSON object with them is corrupt,
    /// as it is for [`StoredEvent::from_body`].
    pub(crate) fn parse(body: &'a str) -> Result<Self, StoreError> {
        serde_json::from_str(body)
            .map_err(|e| StoreError::Corrupt(format!("audit event body does not parse: {e}")))
    }

    /// The tenant whose chain this event belongs to, as [`AuditEvent::chain_tenant`].
    pub(crate) fn chain_tenant(&self) -> &str {
        self.tenant_id.as_deref().unwrap_or(steward_types::GLOBAL_TENANT)
    }

    /// The chain hash of the event stored as `body` (this skim of it), in lowercase hex: what
    /// [`super::compute_hash`] gives for the parsed event. `scratch` is reused between calls.
    pub(crate) fn chain_hash(
        &self,
        key: &HmacKey,
        body: &str,
        scratch: &mut Vec<u8>,
    ) -> Result<[u8; 64], StoreError> {
        let link = self
            .chain
            .as_ref()
            .ok_or_else(|| StoreError::Corrupt(format!("audit event {} has no chain link", self.event_id)))?;
        // The top-level link as the canonical form writes it, `"chain":{"chain_id":…,"hash":…,…}`.
        // Inside a string every `"` is escaped, so these bytes can only be JSON structure: the
        // top-level `chain` member, or a member of some nested object spelled the same. Only when
        // they occur exactly once is the body hashed in place. Should a nested copy be the one found
        // (the top-level link then being written some other way), the bytes hashed are not the
        // writer's and the hash does not match, which is the right answer for such a body.
        scratch.clear();
        scratch.extend_from_slice(b"\"chain\":");
        let hash_from = scratch.len() + b"{\"chain_id\":".len();
        write_link(scratch, &link.chain_id, Some(&link.hash), &link.prev_hash, link.seq)?;
        let hash_from = hash_from + json_str_len(&scratch[hash_from..]);
        // `,"hash":"…"` follows the chain id; it is the one piece that was not hashed.
        let hash_len = b",\"hash\":".len() + json_str_len(&scratch[hash_from + b",\"hash\":".len()..]);
        let bytes = body.as_bytes();
        let mut places = CHAIN_MEMBER.find_iter(bytes).filter(|&at| bytes[at..].starts_with(scratch));
        match (places.next(), places.next()) {
            (Some(at), None) => {
                let cut = at + hash_from;
                let tag = hash_canonical(key, &link.prev_hash, &[&bytes[..cut], &bytes[cut + hash_len..]]);
                let mut hex = [0; 64];
                hex::encode_to_slice(tag, &mut hex).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(hex)
            }
            // Not in the canonical form: a body from before decision 0024 (or an altered one).
            _ => {
                let event: AuditEvent = StoredEvent::from_body(body, String::new())?.into_event();
                let hash = chain_hash(key, &event, scratch)?;
                <[u8; 64]>::try_from(hash.as_bytes())
                    .map_err(|_| StoreError::Corrupt("a chain hash is not 64 hex digits".to_owned()))
            }
        }
    }
}

/// The length in bytes of the JSON string `serde_json` wrote at the start of `text` (its quotes
/// included): up to the first `"` not escaped by a backslash.
fn json_str_len(text: &[u8]) -> usize {
    let mut i = 1;
    while i < text.len() {
        match text[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    text.len()
}
