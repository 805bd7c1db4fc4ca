//! Verification of a tenant's audit chains against the audit key and the latest checkpoints.

use std::collections::BTreeMap;

use serde::Serialize;

use super::chain::{ChainHead, GENESIS_HASH, compute_hash};
use crate::{Store, StoreError};

/// Events read per round trip while walking a chain.
const PAGE: u32 = 1000;

/// The answer of `GET /v1/audit/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub chains_checked: u64,
    pub events_checked: u64,
    /// The first event (in chain order, chains in id order) that does not fit; for a chain cut off
    /// below a checkpoint, the id of the checkpointed head that is missing.
    pub first_bad_event_id: Option<String>,
}

/// Recomputes every chain of `tenant_id` (use `global` for events without a tenant) and compares each
/// chain with the head the newest checkpoint recorded for it.
pub async fn verify_tenant(
    store: &dyn Store,
    audit_key: &[u8; 32],
    tenant_id: &str,
) -> Result<VerifyReport, StoreError> {
    let mut heads = store.audit_chain_heads(Some(tenant_id)).await?;
    heads.sort_by(|a, b| a.chain_id.cmp(&b.chain_id));
    let checkpointed: BTreeMap<String, ChainHead> = store
        .latest_checkpointed_heads(tenant_id)
        .await?
        .into_iter()
        .map(|head| (head.chain_id.clone(), head))
        .collect();

    let mut report =
        VerifyReport { ok: true, chains_checked: 0, events_checked: 0, first_bad_event_id: None };
    for head in &heads {
        report.chains_checked += 1;
        let bad = verify_chain(
            store,
            audit_key,
            tenant_id,
            &head.chain_id,
            checkpointed.get(&head.chain_id),
            &mut report,
        )
        .await?;
        if let Some(event_id) = bad {
            report.ok = false;
            report.first_bad_event_id = Some(event_id);
            return Ok(report);
        }
    }
    // A checkpointed chain with no events left at all was removed entirely.
    for (chain_id, head) in &checkpointed {
        if !heads.iter().any(|h| &h.chain_id == chain_id) {
            report.ok = false;
            report.first_bad_event_id = Some(head.event_id.clone());
            return Ok(report);
        }
    }
    Ok(report)
}

/// Walks one chain from seq 1; returns the id of the first event that does not fit.
async fn verify_chain(
    store: &dyn Store,
    audit_key: &[u8; 32],
    tenant_id: &str,
    chain_id: &str,
    checkpoint: Option<&ChainHead>,
    report: &mut VerifyReport,
) -> Result<Option<String>, StoreError> {
    let mut expected_seq = 1_i64;
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut checkpoint_reached = false;
    // Start below every possible seq, so a row slipped in with seq <= 0 is seen (and rejected).
    let mut after = i64::MIN;
    loop {
        let page = store.audit_chain_events(chain_id, after, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for stored in &page {
            report.events_checked += 1;
            let event = stored.event();
            let chain = stored.chain();
            let fits = chain.chain_id == chain_id
                && chain.seq == expected_seq
                && chain.prev_hash == prev_hash
                && event.chain_tenant() == tenant_id
                && steward_crypto::constant_time_eq(
                    compute_hash(audit_key, event)?.as_bytes(),
                    chain.hash.as_bytes(),
                );
            if !fits {
                return Ok(Some(event.event_id.to_string()));
            }
            if let Some(head) = checkpoint
                && head.seq == chain.seq
            {
                if head.hash != chain.hash {
                    return Ok(Some(event.event_id.to_string()));
                }
                checkpoint_reached = true;
            }
            prev_hash = chain.hash.clone();
            after = chain.seq;
            expected_seq += 1;
        }
    }
    if let Some(head) = checkpoint
        && !checkpoint_reached
    {
        // The chain ends below what a checkpoint saw: its newest events were cut off.
        return Ok(Some(head.event_id.clone()));
    }
    Ok(None)
}
