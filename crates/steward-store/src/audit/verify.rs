//! Verification of a tenant's audit chains against the audit key and the latest checkpoints.

use std::collections::BTreeMap;

use serde::Serialize;
use steward_crypto::HmacKey;

use super::chain::{ChainHead, GENESIS_HASH, StoredRow};
use super::skim::SkimmedEvent;
use crate::{Store, StoreError};

/// Events read per round trip while walking a chain. At 10 M events 2 000 verified faster than
/// 1 000 on both backends (SQLite 177–189 k against 154–170 k events/s, PostgreSQL 201–216 k against 171–191 k) and
/// 4 000 no faster than 2 000 (`docs/performance.md`, "Verify").
const PAGE: u32 = 2000;

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
    let key = HmacKey::new(audit_key);
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
        // A chain id is `<tenant>/<writer>` (`chain_id_for`); the store finds a chain's events under its
        // tenant, so a chain whose id names another tenant does not belong here.
        if head.chain_id.strip_prefix(tenant_id).is_none_or(|rest| !rest.starts_with('/')) {
            report.ok = false;
            report.first_bad_event_id = Some(head.event_id.clone());
            return Ok(report);
        }
        let bad = verify_chain(
            store,
            &key,
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

/// Where the walk of one chain stands. Owned, so a page can be checked on another thread.
struct Walk {
    key: HmacKey,
    tenant_id: String,
    chain_id: String,
    checkpoint: Option<ChainHead>,
    expected_seq: i64,
    prev_hash: String,
    checkpoint_reached: bool,
    events_checked: u64,
    /// Reused buffer of the canonical form.
    scratch: Vec<u8>,
}

impl Walk {
    /// Checks `page`, the rows that follow the ones checked so far; returns the id of the first
    /// event that does not fit.
    fn check(&mut self, page: &[StoredRow]) -> Result<Option<String>, StoreError> {
        for row in page {
            self.events_checked += 1;
            let event = SkimmedEvent::parse(&row.body)?;
            let Some(chain) = &event.chain else {
                return Ok(Some(event.event_id.into_owned()));
            };
            let fits = chain.chain_id == self.chain_id
                && chain.seq == self.expected_seq
                && chain.prev_hash == self.prev_hash
                && event.chain_tenant() == self.tenant_id
                && steward_crypto::constant_time_eq(
                    &event.chain_hash(&self.key, &row.body, &mut self.scratch)?,
                    chain.hash.as_bytes(),
                );
            if !fits {
                return Ok(Some(event.event_id.into_owned()));
            }
            if let Some(head) = &self.checkpoint
                && head.seq == chain.seq
            {
                if head.hash != chain.hash {
                    return Ok(Some(event.event_id.into_owned()));
                }
                self.checkpoint_reached = true;
            }
            self.prev_hash.clear();
            self.prev_hash.push_str(&chain.hash);
            self.expected_seq += 1;
        }
        Ok(None)
    }
}

/// Walks one chain from seq 1; returns the id of the first event that does not fit.
///
/// Each page is checked on a blocking thread while this task reads the next one, so reading (the
/// database's thread, or the network) and hashing run on two cores at once. Checking the page on
/// this task instead, joined with the read, overlapped poorly: the read only started at its next
/// poll, after the check.
async fn verify_chain(
    store: &dyn Store,
    key: &HmacKey,
    tenant_id: &str,
    chain_id: &str,
    checkpoint: Option<&ChainHead>,
    report: &mut VerifyReport,
) -> Result<Option<String>, StoreError> {
    let mut walk = Walk {
        key: key.clone(),
        tenant_id: tenant_id.to_owned(),
        chain_id: chain_id.to_owned(),
        checkpoint: checkpoint.cloned(),
        expected_seq: 1,
        prev_hash: GENESIS_HASH.to_owned(),
        checkpoint_reached: false,
        events_checked: 0,
        scratch: Vec::with_capacity(2048),
    };
    // Start below every possible seq, so a row slipped in with seq <= 0 is seen (and rejected).
    let mut page = store.audit_chain_rows(chain_id, i64::MIN, PAGE).await?;
    let mut more = may_continue(&page);
    while let Some(last) = page.last() {
        let after = last.seq;
        let check = tokio::task::spawn_blocking(move || {
            let bad = walk.check(&page);
            (walk, bad)
        });
        let next = if more { read_ahead(store, chain_id, after).await } else { Ok((Vec::new(), false)) };
        let (checked, bad) =
            check.await.map_err(|e| StoreError::Database(format!("audit verification stopped: {e}")))?;
        walk = checked;
        report.events_checked += std::mem::take(&mut walk.events_checked);
        if let Some(event_id) = bad? {
            return Ok(Some(event_id));
        }
        (page, more) = next?;
    }
    if let Some(head) = checkpoint
        && !walk.checkpoint_reached
    {
        // The chain ends below what a checkpoint saw: its newest events were cut off.
        return Ok(Some(head.event_id.clone()));
    }
    Ok(None)
}

/// Whether the chain may go on after `page`: a short page is the chain's last.
fn may_continue(page: &[StoredRow]) -> bool {
    page.len() >= PAGE as usize
}

/// The rows of a chain after seq `after`, and whether there may be more: one page, and the page
/// after it read at the same time on a second reader connection, kept when it is the continuation.
///
/// The second read asks for the rows after `after + PAGE`. That is where the first page ends only if
/// the first holds exactly the seqs `after + 1 ..= after + PAGE` (full, and its last seq the
/// highest possible: seqs are unique); otherwise — a gap, the chain's end — the second page is
/// dropped and the walk goes on from wherever the first ended, so what is checked is the same as
/// reading one page at a time. Reading is what bounds verification (SQLite's thread, or the round
/// trip), and a second read at once puts the otherwise idle core to work.
async fn read_ahead(
    store: &dyn Store,
    chain_id: &str,
    after: i64,
) -> Result<(Vec<StoredRow>, bool), StoreError> {
    let Some(second_after) = after.checked_add(i64::from(PAGE)) else {
        let rows = store.audit_chain_rows(chain_id, after, PAGE).await?;
        let more = may_continue(&rows);
        return Ok((rows, more));
    };
    let (first, second) = tokio::join!(
        store.audit_chain_rows(chain_id, after, PAGE),
        store.audit_chain_rows(chain_id, second_after, PAGE)
    );
    let mut rows = first?;
    let contiguous = rows.len() == PAGE as usize && rows.last().is_some_and(|row| row.seq == second_after);
    if !contiguous {
        let more = may_continue(&rows);
        return Ok((rows, more));
    }
    let second = second?;
    let more = may_continue(&second);
    rows.extend(second);
    Ok((rows, more))
}
