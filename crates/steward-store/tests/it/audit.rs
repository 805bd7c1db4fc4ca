//! The audit log: round trips, append-only rows, the group-committing writer, verification and
//! checkpoints.

use std::sync::Arc;
use std::time::Duration;

use crate::harness::{AUDIT_KEY, Harness, TestSigner, at, t0, writer};
use steward_store::audit::{
    Actor, AuditError, AuditEvent, ChainLink, Checkpoint, Decision, Destination, EventType, GENESIS_HASH,
    PolicyRef, StoredEvent, chain_id_for, compute_hash, verify_tenant,
};

const HOUR: Duration = Duration::from_secs(3600);

fn execute_event(tenant: Option<&str>, n: i64) -> AuditEvent {
    let event = AuditEvent::new(EventType::Execute, Actor::workload("w_one"), at(t0().unix_micros() + n))
        .with_request_id(format!("req-{n}"))
        .with_correlation_id(format!("corr-{n}"))
        .with_workload("w_one")
        .with_integration("i_one")
        .with_decision(Decision::Allowed)
        .with_reason_code(format!("r{n}"))
        .with_action_group("openai_responses")
        .with_risk_tier("low")
        .with_destination(Destination {
            scheme: "https".into(),
            host: "api.openai.com".into(),
            port: 443,
            path_group: Some("openai_responses".into()),
        })
        .with_canonical_descriptor(serde_json::json!({"method": "POST", "query": {"a": "hmac:00"}}))
        .with_policy(PolicyRef {
            rule_id: Some("pol_1".into()),
            rule_type: Some("allow".into()),
            approval_id: None,
        })
        .with_metadata("n", serde_json::json!(n));
    match tenant {
        Some(tenant) => event.with_tenant(tenant),
        None => event,
    }
}

/// Writes `count` events for `tenant` and returns them as stored, in order.
async fn write_chain(
    h: &Harness,
    tenant: &str,
    count: i64,
) -> anyhow::Result<(Vec<StoredEvent>, Arc<TestSigner>)> {
    let signer = TestSigner::new();
    let w = writer(h.store(), signer.clone(), HOUR);
    let mut out = Vec::new();
    for n in 1..=count {
        out.push(w.append(execute_event(Some(tenant), n)).await?);
    }
    w.shutdown().await?;
    Ok((out, signer))
}

pub async fn audit_round_trip_in_seq_order(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let (written, _) = write_chain(&h, "t_one", 5).await?;
    let chain_id = written[0].chain().chain_id.clone();
    let read = store.audit_chain_events(&chain_id, 0, 100).await?;
    assert_eq!(read, written, "bodies, timestamps (microseconds) and chain links survive the round trip");
    for (i, stored) in read.iter().enumerate() {
        assert_eq!(stored.chain().seq, i as i64 + 1);
    }
    assert_eq!(read[0].chain().prev_hash, GENESIS_HASH);
    assert_eq!(read[0].event().timestamp.unix_micros() % 1_000_000, 123_458);
    let page = store.audit_chain_events(&chain_id, 2, 2).await?;
    assert_eq!(page.iter().map(|e| e.chain().seq).collect::<Vec<_>>(), [3, 4]);
    let heads = store.audit_chain_heads(Some("t_one")).await?;
    assert_eq!(heads, vec![written[4].as_head()]);
    assert!(store.audit_chain_heads(Some("t_other")).await?.is_empty());
    assert_eq!(store.audit_chain_heads(None).await?.len(), 1);

    // Every field is serialized, nulls included.
    let json = serde_json::to_value(read[0].event())?;
    for field in ["latency_ms", "upstream_status_code", "request_id", "metadata", "chain"] {
        assert!(json.as_object().is_some_and(|o| o.contains_key(field)), "{field} missing");
    }
    assert_eq!(json["event_type"], "execute");
    assert_eq!(json["decision"], "allowed");
    assert_eq!(json["actor"]["type"], "workload");
    assert!(json["timestamp"].as_str().is_some_and(|t| t.ends_with(".123458Z")), "{}", json["timestamp"]);
    Ok(())
}

pub async fn audit_rows_refuse_update_and_delete(h: Harness) -> anyhow::Result<()> {
    write_chain(&h, "t_one", 2).await?;
    assert!(h.raw("UPDATE audit_events SET reason_code = 'x'").await.is_err(), "UPDATE must fail");
    assert!(h.raw("DELETE FROM audit_events").await.is_err(), "DELETE must fail");
    assert!(h.raw("UPDATE audit_checkpoints SET kid = 'x'").await.is_err(), "checkpoint UPDATE must fail");
    assert!(h.raw("DELETE FROM audit_checkpoint_heads").await.is_err(), "checkpoint DELETE must fail");
    let heads = h.store().audit_chain_heads(Some("t_one")).await?;
    assert_eq!(heads[0].seq, 2, "nothing changed");
    Ok(())
}

pub async fn writer_group_commits_concurrent_appends(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let w = writer(store.clone(), TestSigner::new(), HOUR);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..300_i64 {
        let (w, store) = (w.clone(), store.clone());
        let tenant = ["t_a", "t_b", ""][(n % 3) as usize];
        tasks.spawn(async move {
            let event = execute_event((!tenant.is_empty()).then_some(tenant), n);
            let stored = w.append(event).await?;
            // Acknowledged means committed: a fresh read sees it.
            let chain = stored.chain();
            let read = store.audit_chain_events(&chain.chain_id, chain.seq - 1, 1).await?;
            anyhow::ensure!(read.first() == Some(&stored), "acknowledged event not readable");
            anyhow::Ok(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    w.shutdown().await?;
    for tenant in ["t_a", "t_b", "global"] {
        let report = verify_tenant(store.as_ref(), &AUDIT_KEY, tenant).await?;
        assert!(report.ok, "{tenant}: {report:?}");
        assert_eq!((report.chains_checked, report.events_checked), (1, 100), "{tenant}");
        let heads = store.audit_chain_heads(Some(tenant)).await?;
        assert_eq!(heads[0].seq, 100, "gapless chain of {tenant}");
        assert_eq!(heads[0].chain_id, chain_id_for(tenant, w.writer_id()));
    }
    assert!(matches!(w.append(execute_event(None, 1)).await, Err(AuditError::Closed)));
    Ok(())
}

pub async fn failed_batch_leaves_no_gap(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let w = writer(store.clone(), TestSigner::new(), HOUR);
    let first = w.append(execute_event(Some("t_one"), 1)).await?;
    // The same event id again: the store refuses the batch.
    let mut duplicate = execute_event(Some("t_one"), 2);
    duplicate.event_id = first.event().event_id.clone();
    assert!(matches!(w.append(duplicate).await, Err(AuditError::WriteFailed(_))));
    let next = w.append(execute_event(Some("t_one"), 3)).await?;
    assert_eq!(next.chain().seq, 2);
    assert_eq!(next.chain().prev_hash, first.chain().hash);
    w.shutdown().await?;
    let report = verify_tenant(store.as_ref(), &AUDIT_KEY, "t_one").await?;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.events_checked, 2);
    Ok(())
}

pub async fn verify_detects_edited_event(h: Harness) -> anyhow::Result<()> {
    let (events, _) = write_chain(&h, "t_one", 5).await?;
    let report = verify_tenant(h.store().as_ref(), &AUDIT_KEY, "t_one").await?;
    assert!(report.ok && report.events_checked == 5, "{report:?}");
    let victim = events[2].event().event_id.as_str();
    h.tamper(&format!(
        "UPDATE audit_events SET body = REPLACE(body, '\"reason_code\":\"r3\"', '\"reason_code\":\"forged\"') \
         WHERE event_id = '{victim}'"
    ))
    .await?;
    let report = verify_tenant(h.store().as_ref(), &AUDIT_KEY, "t_one").await?;
    assert!(!report.ok);
    assert_eq!(report.first_bad_event_id.as_deref(), Some(victim));
    Ok(())
}

/// Bodies written before decision 0024 (`serde_json` of the event, struct order) and canonical ones
/// (RFC 8785, what the writer stores now) in one chain: both verify, and an edit to either is found.
pub async fn verify_checks_legacy_and_canonical_bodies_alike(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let chain = chain_of("t_one", "wr_mixed", 6, |_| None)?;
    // Events 1–3 as an older release stored them, 4–6 as this one does.
    let mixed: Vec<StoredEvent> = chain
        .iter()
        .enumerate()
        .map(|(i, stored)| {
            if i < 3 {
                let legacy = serde_json::to_string(stored.event())?;
                assert_ne!(legacy, stored.body(), "the legacy body is another form");
                Ok(StoredEvent::from_body(&legacy, stored.writer_id().to_owned())?)
            } else {
                Ok(stored.clone())
            }
        })
        .collect::<anyhow::Result<_>>()?;
    store.append_audit_events(&mixed).await?;
    let report = verify_tenant(store.as_ref(), &AUDIT_KEY, "t_one").await?;
    assert!(report.ok && report.events_checked == 6, "{report:?}");
    assert_eq!(read_chain(store.as_ref(), &chain[0].chain().chain_id).await?, chain);

    // Edit one canonical and, in a second step, one legacy body: each is the first bad event.
    for victim in [4, 1] {
        let victim = chain[victim].event().event_id.as_str();
        h.tamper(&format!(
            "UPDATE audit_events SET body = REPLACE(body, '\"reason_code\":\"r', '\"reason_code\":\"x') \
             WHERE event_id = '{victim}'"
        ))
        .await?;
        let report = verify_tenant(store.as_ref(), &AUDIT_KEY, "t_one").await?;
        assert!(!report.ok, "{report:?}");
        assert_eq!(report.first_bad_event_id.as_deref(), Some(victim));
    }
    Ok(())
}

/// Chains longer than a page are read two pages at a time once they are contiguous; a gap in the
/// first page of such a read, or in the second, is still found at the event after it.
pub async fn verify_walks_long_chains_and_finds_gaps_in_any_page(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    // Three chains of 4 500 events: pages of 2 000 are 1–2 000, then 2 001–4 000 with 4 001–4 500
    // read at the same time.
    let tenants = ["t_long", "t_gap_first", "t_gap_second"];
    let mut chains = Vec::new();
    for tenant in tenants {
        let chain = chain_of(tenant, "wr_long", 4500, |_| None)?;
        for batch in chain.chunks(1500) {
            store.append_audit_events(batch).await?;
        }
        chains.push(chain);
    }
    for tenant in tenants {
        let report = verify_tenant(store.as_ref(), &AUDIT_KEY, tenant).await?;
        assert!(report.ok && report.events_checked == 4500, "{tenant}: {report:?}");
    }
    // Remove seq 2 500 (in the first page of a two-page read) and seq 4 200 (in the second).
    for (chain, seq) in [(&chains[1], 2500), (&chains[2], 4200)] {
        let chain_id = &chain[0].chain().chain_id;
        h.tamper(&format!("DELETE FROM audit_events WHERE chain_id = '{chain_id}' AND seq = {seq}")).await?;
        let tenant = chain[0].event().chain_tenant();
        let report = verify_tenant(store.as_ref(), &AUDIT_KEY, tenant).await?;
        assert!(!report.ok, "{tenant}: {report:?}");
        let after_gap = chain[seq as usize].event().event_id.as_str();
        assert_eq!(report.first_bad_event_id.as_deref(), Some(after_gap), "{tenant}");
    }
    let report = verify_tenant(store.as_ref(), &AUDIT_KEY, "t_long").await?;
    assert!(report.ok && report.events_checked == 4500, "{report:?}");
    Ok(())
}

pub async fn verify_detects_removed_event(h: Harness) -> anyhow::Result<()> {
    let (events, _) = write_chain(&h, "t_one", 5).await?;
    h.tamper(&format!("DELETE FROM audit_events WHERE event_id = '{}'", events[2].event().event_id)).await?;
    let report = verify_tenant(h.store().as_ref(), &AUDIT_KEY, "t_one").await?;
    assert!(!report.ok);
    assert_eq!(report.first_bad_event_id.as_deref(), Some(events[3].event().event_id.as_str()));
    Ok(())
}

pub async fn verify_detects_inserted_event(h: Harness) -> anyhow::Result<()> {
    let (events, _) = write_chain(&h, "t_one", 5).await?;
    let chain_id = events[0].chain().chain_id.clone();
    // Make room at seq 3, then insert an event that claims to follow seq 2. Without the audit key the
    // attacker cannot produce the right hash.
    for seq in [5, 4, 3] {
        h.tamper(&format!(
            "UPDATE audit_events SET seq = {} WHERE chain_id = '{chain_id}' AND seq = {seq}",
            seq + 1
        ))
        .await?;
    }
    let mut forged = execute_event(Some("t_one"), 99);
    forged.chain = Some(ChainLink {
        chain_id: chain_id.clone(),
        seq: 3,
        prev_hash: events[1].chain().hash.clone(),
        hash: String::new(),
    });
    let hash = compute_hash(&[9; 32], &forged)?;
    if let Some(chain) = forged.chain.as_mut() {
        chain.hash = hash;
    }
    let forged_id = forged.event_id.to_string();
    h.store().append_audit_events(&[StoredEvent::new(forged, events[0].writer_id().to_owned())?]).await?;
    let report = verify_tenant(h.store().as_ref(), &AUDIT_KEY, "t_one").await?;
    assert!(!report.ok);
    assert_eq!(report.first_bad_event_id, Some(forged_id));
    Ok(())
}

pub async fn verify_detects_cut_off_tail(h: Harness) -> anyhow::Result<()> {
    // The shutdown checkpoint recorded seq 5 as the head.
    let (events, _) = write_chain(&h, "t_one", 5).await?;
    let chain_id = events[0].chain().chain_id.clone();
    h.tamper(&format!("DELETE FROM audit_events WHERE chain_id = '{chain_id}' AND seq >= 4")).await?;
    let report = verify_tenant(h.store().as_ref(), &AUDIT_KEY, "t_one").await?;
    assert!(!report.ok, "{report:?}");
    assert_eq!(report.first_bad_event_id.as_deref(), Some(events[4].event().event_id.as_str()));

    // The whole chain removed: still detected from the checkpoint.
    h.tamper(&format!("DELETE FROM audit_events WHERE chain_id = '{chain_id}'")).await?;
    let report = verify_tenant(h.store().as_ref(), &AUDIT_KEY, "t_one").await?;
    assert!(!report.ok, "{report:?}");
    assert_eq!(report.first_bad_event_id.as_deref(), Some(events[4].event().event_id.as_str()));
    Ok(())
}

pub async fn verify_rejects_chain_forged_with_another_key(h: Harness) -> anyhow::Result<()> {
    // A complete, internally consistent chain, but hashed with a key that is not the audit key.
    let forged_key = [1_u8; 32];
    let chain_id = chain_id_for("t_one", "wr_forger");
    let mut prev = GENESIS_HASH.to_owned();
    let mut stored = Vec::new();
    for n in 1..=3 {
        let mut event = execute_event(Some("t_one"), n);
        event.chain = Some(ChainLink {
            chain_id: chain_id.clone(),
            seq: n,
            prev_hash: prev.clone(),
            hash: String::new(),
        });
        let hash = compute_hash(&forged_key, &event)?;
        if let Some(chain) = event.chain.as_mut() {
            chain.hash = hash.clone();
        }
        prev = hash;
        stored.push(StoredEvent::new(event, "wr_forger".to_owned())?);
    }
    h.store().append_audit_events(&stored).await?;
    assert!(
        verify_tenant(h.store().as_ref(), &forged_key, "t_one").await?.ok,
        "consistent under its own key"
    );
    let report = verify_tenant(h.store().as_ref(), &AUDIT_KEY, "t_one").await?;
    assert!(!report.ok);
    assert_eq!(report.first_bad_event_id.as_deref(), Some(stored[0].event().event_id.as_str()));
    Ok(())
}

pub async fn checkpoints_are_written_signed_and_listed(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let signer = TestSigner::new();
    let w = writer(store.clone(), signer.clone(), Duration::from_millis(100));
    let a = w.append(execute_event(Some("t_a"), 1)).await?;
    let g = w.append(execute_event(None, 2)).await?;
    // The periodic checkpoint (real time: the interval is 100 ms).
    let mut periodic = Vec::new();
    for _ in 0..50 {
        periodic = store.list_checkpoints(Some("t_a"), 10).await?;
        if !periodic.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(periodic.len(), 1, "one checkpoint, none while idle");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.list_checkpoints(None, 10).await?.len(), 1, "nothing written, no new checkpoint");

    let a2 = w.append(execute_event(Some("t_a"), 3)).await?;
    w.shutdown().await?;
    let all = store.list_checkpoints(None, 10).await?;
    assert_eq!(all.len(), 2, "the final checkpoint at shutdown");
    let last = &all[0];
    assert_eq!(last.writer_id, w.writer_id());
    assert_eq!(last.kid, "mk_test");
    assert_eq!(last.heads, {
        let mut heads = vec![a2.as_head(), g.as_head()];
        heads.sort_by(|x, y| x.chain_id.cmp(&y.chain_id));
        heads
    });
    let payload = signer.verify(&last.signature)?;
    assert_eq!(
        payload,
        Checkpoint::signed_payload(&last.checkpoint_id, &last.writer_id, last.created_at, &last.heads)
            .map_err(anyhow::Error::msg)?
    );
    // One tenant checkpoint per tenant, stored and read back: only that tenant's heads, signed.
    assert_eq!(last.tenant_signatures.keys().collect::<Vec<_>>(), vec!["global", "t_a"]);
    for (tenant, jws) in &last.tenant_signatures {
        let payload = signer.verify(jws)?;
        assert_eq!(
            payload,
            Checkpoint::tenant_payload(
                &last.checkpoint_id,
                &last.writer_id,
                last.created_at,
                tenant,
                &last.tenant_heads(tenant)
            )
            .map_err(anyhow::Error::msg)?
        );
        let signed: serde_json::Value = serde_json::from_slice(&payload)?;
        assert_eq!(signed["tenant_id"], tenant.as_str());
        let heads = signed["heads"].as_array().map(Vec::as_slice).unwrap_or_default();
        assert!(!heads.is_empty() && heads.iter().all(|h| h["tenant_id"] == tenant.as_str()), "{signed}");
    }
    assert_eq!(all[1].heads.iter().find(|x| x.tenant_id == "t_a"), Some(&a.as_head()));

    assert_eq!(store.list_checkpoints(Some("global"), 10).await?.len(), 2);
    assert!(store.list_checkpoints(Some("t_none"), 10).await?.is_empty());
    assert_eq!(store.list_checkpoints(None, 1).await?.len(), 1);
    assert_eq!(store.latest_checkpointed_heads("t_a").await?, vec![a2.as_head()]);
    Ok(())
}

/// `count` events of `tenant` chained by `writer_id` under the test audit key, as the writer would;
/// `event_id_of` may pick the event id of event `n`.
fn chain_of(
    tenant: &str,
    writer_id: &str,
    count: i64,
    event_id_of: impl Fn(i64) -> Option<steward_types::EventId>,
) -> anyhow::Result<Vec<StoredEvent>> {
    let chain_id = chain_id_for(tenant, writer_id);
    let mut prev = GENESIS_HASH.to_owned();
    let mut stored = Vec::new();
    for n in 1..=count {
        let mut event = execute_event(Some(tenant), n);
        if let Some(id) = event_id_of(n) {
            event.event_id = id;
        }
        event.chain = Some(ChainLink {
            chain_id: chain_id.clone(),
            seq: n,
            prev_hash: prev.clone(),
            hash: String::new(),
        });
        let hash = compute_hash(&AUDIT_KEY, &event)?;
        if let Some(chain) = event.chain.as_mut() {
            chain.hash = hash.clone();
        }
        prev = hash;
        stored.push(StoredEvent::new(event, writer_id.to_owned())?);
    }
    Ok(stored)
}

/// Every event of a chain, in order.
async fn read_chain(store: &dyn steward_store::Store, chain_id: &str) -> anyhow::Result<Vec<StoredEvent>> {
    let mut read: Vec<StoredEvent> = Vec::new();
    loop {
        let after = read.last().map_or(0, |e| e.chain().seq);
        let page = store.audit_chain_events(chain_id, after, 500).await?;
        if page.is_empty() {
            return Ok(read);
        }
        read.extend(page);
    }
}

pub async fn large_batches_are_written_whole_or_not_at_all(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    // More rows than one INSERT statement takes (512): several statements in one transaction.
    let chain = chain_of("t_one", "wr_bulk", 1200, |_| None)?;
    store.append_audit_events(&chain).await?;
    let report = verify_tenant(store.as_ref(), &AUDIT_KEY, "t_one").await?;
    assert!(report.ok && report.events_checked == 1200, "{report:?}");
    let read = read_chain(store.as_ref(), &chain[0].chain().chain_id).await?;
    assert_eq!(read, chain, "bodies and links survive the multi-row statements");

    // A batch whose last event repeats a stored event id is refused as a whole, in one statement and
    // in several.
    for count in [3, 700] {
        let existing = chain[0].event().event_id.clone();
        let batch = chain_of("t_two", "wr_bulk", count, |n| (n == count).then(|| existing.clone()))?;
        assert!(store.append_audit_events(&batch).await.is_err(), "{count} events");
        assert!(store.audit_chain_heads(Some("t_two")).await?.is_empty(), "{count} events: nothing written");
    }
    assert!(verify_tenant(store.as_ref(), &AUDIT_KEY, "t_one").await?.ok);
    Ok(())
}

pub async fn failed_batches_among_concurrent_appends_leave_no_gap(h: Harness) -> anyhow::Result<()> {
    let store = h.store();
    let w = writer(store.clone(), TestSigner::new(), HOUR);
    let first = w.append(execute_event(Some("t_one"), 0)).await?;
    // Many appends at once, the first of them repeating `first`'s event id. The batch holding it
    // fails, and the events that arrived while it was being written were already chained on top of
    // it: they must be chained again on the committed head.
    let mut tasks = tokio::task::JoinSet::new();
    for n in 1..=1500_i64 {
        let w = w.clone();
        let mut event = execute_event(Some("t_one"), n);
        let poisoned = n == 1;
        if poisoned {
            event.event_id = first.event().event_id.clone();
        }
        tasks.spawn(async move { (poisoned, w.append(event).await) });
    }
    let mut written = vec![first];
    let mut failed = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined? {
            (poisoned, Ok(stored)) => {
                assert!(!poisoned, "a repeated event id was acknowledged");
                written.push(stored);
            }
            (_, Err(AuditError::WriteFailed(_))) => failed += 1,
            (_, Err(other)) => return Err(other.into()),
        }
    }
    w.shutdown().await?;
    assert!(failed >= 1, "the poisoned event fails (with its batch)");
    // Every acknowledged event is stored exactly as acknowledged, at consecutive sequence numbers.
    written.sort_by_key(|e| e.chain().seq);
    let seqs: Vec<i64> = written.iter().map(|e| e.chain().seq).collect();
    assert_eq!(seqs, (1..=written.len() as i64).collect::<Vec<_>>());
    assert_eq!(read_chain(store.as_ref(), &written[0].chain().chain_id).await?, written);
    let report = verify_tenant(store.as_ref(), &AUDIT_KEY, "t_one").await?;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.events_checked, written.len() as u64);
    Ok(())
}

/// The embedded store writes audit batches on a connection of its own (decision 0025) while other
/// writes use the sqlx writer connection: under both at once, every write succeeds (neither meets
/// SQLite's busy handler), and once the store is closed an append is refused as unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_audit_batches_and_other_writes_take_turns() -> anyhow::Result<()> {
    use steward_store::{SqliteStore, SqliteSynchronous, Store as _, StoreError};
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("steward.db");
    let store = Arc::new(SqliteStore::open(&path, SqliteSynchronous::Normal).await?);
    let w = writer(store.clone(), TestSigner::new(), HOUR);
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..32i64 {
        let w = w.clone();
        tasks.spawn(async move {
            for n in 0..50 {
                w.append(execute_event(Some("t_one"), task * 1000 + n)).await?;
            }
            anyhow::Ok(())
        });
    }
    for token in 0..100u8 {
        let store = store.clone();
        tasks.spawn(async move {
            store
                .insert_admin_token(&crate::harness::admin_token(token, steward_store::AdminRole::Auditor))
                .await?;
            anyhow::Ok(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    w.shutdown().await?;
    let report = verify_tenant(store.as_ref(), &AUDIT_KEY, "t_one").await?;
    assert!(report.ok && report.events_checked == 32 * 50, "{report:?}");
    assert!(store.admin_token_by_hash(&[99; 32]).await?.is_some());

    store.close().await;
    let late = chain_of("t_two", "wr_late", 1, |_| None)?;
    let refused = store.append_audit_events(&late).await;
    assert!(matches!(refused, Err(StoreError::Unavailable(_))), "{refused:?}");
    drop(store);
    // Everything acknowledged is in the file.
    let again = SqliteStore::open(&path, SqliteSynchronous::Normal).await?;
    let report = verify_tenant(&again, &AUDIT_KEY, "t_one").await?;
    assert!(report.ok && report.events_checked == 32 * 50, "{report:?}");
    Ok(())
}
