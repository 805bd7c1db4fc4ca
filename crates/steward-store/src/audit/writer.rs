//! The audit writer: one background task per process that chains events and group-commits them.
//!
//! Callers send events over a channel and wait for an acknowledgement that is only sent after the
//! batch holding their event committed. While one batch commits, new events queue up and go into the
//! next transaction together, so many concurrent requests cost one commit, not one each.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use steward_crypto::HmacKey;
use steward_types::{CheckpointId, SharedClock};
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

use super::chain::{
    ChainHead, Checkpoint, CheckpointSigner, GENESIS_HASH, StoredEvent, Unchained, chain_id_for,
};
use super::event::AuditEvent;
use crate::{Store, StoreError};

/// Most events in one transaction: bounds the time one commit holds the writer connection.
const BATCH_CAP: usize = 512;
/// Queue depth before `append` waits for room (back-pressure instead of unbounded memory).
const QUEUE_DEPTH: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store refused the batch holding this event; nothing of the batch was written.
    #[error("the audit record could not be written: {0}")]
    WriteFailed(String),
    /// The writer was shut down (or its task ended) before the event could be written.
    #[error("the audit writer is closed")]
    Closed,
}

type Ack = oneshot::Sender<Result<StoredEvent, AuditError>>;

enum Command {
    Append(Box<Unchained>, Ack),
    Shutdown(oneshot::Sender<Result<(), AuditError>>),
}

/// Handle to the audit writer task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditWriter {
    tx: mpsc::Sender<Command>,
    writer_id: Arc<str>,
}

impl AuditWriter {
    /// Starts the writer task on the current tokio runtime. `writer_id` must be unique per running
    /// process (chains are per tenant and writer); `checkpoint_every` is 60 s in production.
    pub fn start(
        store: Arc<dyn Store>,
        audit_key: Zeroizing<[u8; 32]>,
        writer_id: String,
        clock: SharedClock,
        signer: Arc<dyn CheckpointSigner>,
        checkpoint_every: Duration,
    ) -> AuditWriter {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let task = WriterTask {
            store,
            audit_key: HmacKey::new(audit_key.as_ref()),
            writer_id: writer_id.clone(),
            clock,
            signer,
            heads: BTreeMap::new(),
            dirty: false,
        };
        tokio::spawn(task.run(rx, checkpoint_every));
        AuditWriter { tx, writer_id: writer_id.into() }
    }

    pub fn writer_id(&self) -> &str {
        &self.writer_id
    }

    /// Chains and durably stores `event`; returns once the transaction holding it committed.
    /// Any `chain` the caller set is replaced.
    pub async fn append(&self, event: AuditEvent) -> Result<StoredEvent, AuditError> {
        // Serializing does not depend on the chain, so it happens here, on the caller's task, in
        // parallel with other callers; the single writer task only links and hashes.
        let event = Unchained::new(event).map_err(|e| AuditError::WriteFailed(e.to_string()))?;
        let (ack, wait) = oneshot::channel();
        self.tx.send(Command::Append(Box::new(event), ack)).await.map_err(|_| AuditError::Closed)?;
        wait.await.map_err(|_| AuditError::Closed)?
    }

    /// Writes everything queued before this call, then a final checkpoint (when anything was written
    /// since the last one), and stops the task. Appends after this fail with [`AuditError::Closed`].
    pub async fn shutdown(&self) -> Result<(), AuditError> {
        let (ack, wait) = oneshot::channel();
        self.tx.send(Command::Shutdown(ack)).await.map_err(|_| AuditError::Closed)?;
        wait.await.map_err(|_| AuditError::Closed)?
    }
}

/// Where a chain stands: the last committed link.
#[derive(Debug, Clone)]
struct Head {
    seq: i64,
    hash: String,
    event_id: String,
}

struct WriterTask {
    store: Arc<dyn Store>,
    /// The HMAC key of the chains, set up once (aws-lc cleanses it when dropped).
    audit_key: HmacKey,
    writer_id: String,
    clock: SharedClock,
    signer: Arc<dyn CheckpointSigner>,
    /// Committed heads by chain tenant.
    heads: BTreeMap<String, Head>,
    /// Whether events were committed since the last checkpoint.
    dirty: bool,
}

/// Events chained on top of some heads, to be written in one transaction.
struct Batch {
    stored: Vec<StoredEvent>,
    acks: Vec<Ack>,
    /// The head of every chain once this batch is committed.
    heads: BTreeMap<String, Head>,
}

impl Batch {
    fn on(heads: BTreeMap<String, Head>) -> Self {
        Batch { stored: Vec::new(), acks: Vec::new(), heads }
    }

    fn len(&self) -> usize {
        self.stored.len()
    }

    fn is_empty(&self) -> bool {
        self.stored.is_empty()
    }
}

/// What the channel has told the writer besides events.
#[derive(Default)]
struct Intake {
    /// Every handle is gone.
    closed: bool,
    /// A shutdown was asked for: take no more events, finish, checkpoint, then acknowledge this.
    shutdown: Option<oneshot::Sender<Result<(), AuditError>>>,
}

impl Intake {
    fn accepting(&self) -> bool {
        !self.closed && self.shutdown.is_none()
    }
}

impl WriterTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, checkpoint_every: Duration) {
        let mut ticker = tokio::time::interval(checkpoint_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick of an interval fires immediately; nothing to checkpoint yet.
        ticker.tick().await;
        loop {
            let command = tokio::select! {
                command = rx.recv() => command,
                _ = ticker.tick() => {
                    self.periodic_checkpoint().await;
                    continue;
                }
            };
            let mut intake = Intake::default();
            let mut batch = Batch::on(self.heads.clone());
            self.accept(&mut batch, command, &mut intake);
            // Take whatever else is already queued, up to the cap: the group commit.
            self.take_queued(&mut rx, &mut batch, &mut intake);
            // Write batches back to back. While one is in the database, what arrives is chained on
            // top of it, so chaining the next batch overlaps writing this one instead of waiting for
            // it; the heads still only advance when a write succeeded. A committed batch's events are
            // acknowledged once the next write has been handed to the store, not before: the store
            // gets its next batch first, the callers their acknowledgements right after.
            let mut unacknowledged: Option<Batch> = None;
            while !batch.is_empty() {
                let mut next = Batch::on(batch.heads.clone());
                let mut tick = false;
                let started = Instant::now();
                let result = {
                    let write = self.store.append_audit_events(&batch.stored);
                    tokio::pin!(write);
                    loop {
                        tokio::select! {
                            biased;
                            result = &mut write => break result,
                            // Polled after `write` has been handed to the store (its first poll).
                            () = std::future::ready(()), if unacknowledged.is_some() => {
                                acknowledge(unacknowledged.take());
                            }
                            command = rx.recv(), if intake.accepting() && next.len() < BATCH_CAP => {
                                self.accept(&mut next, command, &mut intake);
                            }
                            _ = ticker.tick(), if !tick => tick = true,
                        }
                    }
                };
                // The write finished before the branch above ran (a store that never waits).
                acknowledge(unacknowledged.take());
                if let Some(written) = self.settle(batch, result, started) {
                    unacknowledged = Some(written);
                } else {
                    // `next` was chained on top of events that were not written: chain it again on
                    // the committed heads, so the failed batch leaves no gap.
                    next = self.rechain(next);
                }
                self.take_queued(&mut rx, &mut next, &mut intake);
                if tick {
                    acknowledge(unacknowledged.take());
                    self.periodic_checkpoint().await;
                }
                batch = next;
            }
            acknowledge(unacknowledged);
            if let Some(ack) = intake.shutdown {
                rx.close();
                // Anything that slipped in before the close is still written.
                let mut rest = Batch::on(self.heads.clone());
                while let Ok(command) = rx.try_recv() {
                    match command {
                        Command::Append(event, ack) => self.chain(&mut rest, *event, ack),
                        Command::Shutdown(other) => {
                            let _ = other.send(Ok(()));
                        }
                    }
                }
                if !rest.is_empty() {
                    let started = Instant::now();
                    let result = self.store.append_audit_events(&rest.stored).await;
                    acknowledge(self.settle(rest, result, started));
                }
                let _ = ack.send(self.checkpoint().await);
                return;
            }
            if intake.closed {
                // Every handle is gone: checkpoint what was written, then stop.
                let _ = self.checkpoint().await;
                return;
            }
        }
    }

    /// Handles one message from the channel (`None`: every handle is gone).
    fn accept(&self, batch: &mut Batch, command: Option<Command>, intake: &mut Intake) {
        match command {
            Some(Command::Append(event, ack)) => self.chain(batch, *event, ack),
            Some(Command::Shutdown(ack)) => intake.shutdown = Some(ack),
            None => intake.closed = true,
        }
    }

    /// Adds what is already queued to `batch`, up to the cap, without waiting.
    fn take_queued(&self, rx: &mut mpsc::Receiver<Command>, batch: &mut Batch, intake: &mut Intake) {
        while intake.accepting() && batch.len() < BATCH_CAP {
            match rx.try_recv() {
                Ok(command) => self.accept(batch, Some(command), intake),
                // Closed is seen by the next `recv`.
                Err(_) => break,
            }
        }
    }

    /// Chains `event` at the end of `batch`, on top of its heads.
    fn chain(&self, batch: &mut Batch, event: Unchained, ack: Ack) {
        let tenant = event.event().chain_tenant().to_owned();
        let (seq, prev_hash) = match batch.heads.get(&tenant) {
            Some(head) => (head.seq + 1, head.hash.clone()),
            None => (1, GENESIS_HASH.to_owned()),
        };
        let chain_id = chain_id_for(&tenant, &self.writer_id);
        match event.link(&self.audit_key, chain_id, seq, prev_hash, self.writer_id.clone()) {
            Ok(event) => {
                let head = Head {
                    seq,
                    hash: event.chain().hash.clone(),
                    event_id: event.event().event_id.to_string(),
                };
                batch.heads.insert(tenant, head);
                batch.stored.push(event);
                batch.acks.push(ack);
            }
            Err(error) => {
                // Only this event is refused; it took no sequence number (the heads are unchanged).
                let _ = ack.send(Err(AuditError::WriteFailed(error.to_string())));
            }
        }
    }

    /// Chains the events of `unwritten` again, on top of the committed heads.
    fn rechain(&self, unwritten: Batch) -> Batch {
        let mut batch = Batch::on(self.heads.clone());
        for (stored, ack) in unwritten.stored.into_iter().zip(unwritten.acks) {
            match Unchained::new(stored.into_event()) {
                Ok(event) => self.chain(&mut batch, event, ack),
                Err(error) => {
                    let _ = ack.send(Err(AuditError::WriteFailed(error.to_string())));
                }
            }
        }
        batch
    }

    /// Settles the write of `batch`: on success its heads become the committed ones and it is
    /// returned, for [`acknowledge`]; on failure every event of it is answered with the error here.
    fn settle(
        &mut self,
        mut batch: Batch,
        result: Result<(), StoreError>,
        started: Instant,
    ) -> Option<Batch> {
        match result {
            Ok(()) => {
                self.heads = std::mem::take(&mut batch.heads);
                self.dirty = true;
                tracing::debug!(
                    batch = batch.stored.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "Audit batch committed."
                );
                Some(batch)
            }
            Err(error) => {
                tracing::error!(%error, batch = batch.stored.len(), "Audit batch could not be written.");
                let message = error.to_string();
                for ack in batch.acks {
                    let _ = ack.send(Err(AuditError::WriteFailed(message.clone())));
                }
                None
            }
        }
    }

    async fn periodic_checkpoint(&mut self) {
        if let Err(error) = self.checkpoint().await {
            tracing::warn!(%error, writer_id = %self.writer_id, "Audit checkpoint failed; will retry.");
        }
    }

    /// Signs and stores the current heads if anything was written since the last checkpoint.
    async fn checkpoint(&mut self) -> Result<(), AuditError> {
        if !self.dirty {
            return Ok(());
        }
        let heads: Vec<ChainHead> = self
            .heads
            .iter()
            .map(|(tenant, head)| ChainHead {
                chain_id: chain_id_for(tenant, &self.writer_id),
                tenant_id: tenant.clone(),
                writer_id: self.writer_id.clone(),
                seq: head.seq,
                hash: head.hash.clone(),
                event_id: head.event_id.clone(),
            })
            .collect();
        let mut heads = heads;
        heads.sort_by(|a, b| a.chain_id.cmp(&b.chain_id));
        let checkpoint_id = CheckpointId::generate();
        let created_at = self.clock.now();
        // The whole checkpoint first, then one per tenant with only that tenant's heads, all signed
        // with one key.
        let mut checkpoint = Checkpoint {
            checkpoint_id,
            writer_id: self.writer_id.clone(),
            created_at,
            heads,
            kid: String::new(),
            signature: String::new(),
            tenant_signatures: Default::default(),
        };
        let tenants: Vec<String> = checkpoint.tenants().into_iter().map(str::to_owned).collect();
        let mut payloads = Vec::with_capacity(1 + tenants.len());
        payloads.push(
            Checkpoint::signed_payload(
                &checkpoint.checkpoint_id,
                &self.writer_id,
                created_at,
                &checkpoint.heads,
            )
            .map_err(AuditError::WriteFailed)?,
        );
        for tenant in &tenants {
            payloads.push(
                Checkpoint::tenant_payload(
                    &checkpoint.checkpoint_id,
                    &self.writer_id,
                    created_at,
                    tenant,
                    &checkpoint.tenant_heads(tenant),
                )
                .map_err(AuditError::WriteFailed)?,
            );
        }
        let (kid, signatures) = self.signer.sign_all(&payloads).map_err(AuditError::WriteFailed)?;
        if signatures.len() != payloads.len() {
            return Err(AuditError::WriteFailed(format!(
                "the signer returned {} signatures for {} payloads",
                signatures.len(),
                payloads.len()
            )));
        }
        let mut signatures = signatures.into_iter();
        checkpoint.kid = kid;
        checkpoint.signature = signatures.next().unwrap_or_default();
        checkpoint.tenant_signatures = tenants.into_iter().zip(signatures).collect();
        self.store
            .insert_checkpoint(&checkpoint)
            .await
            .map_err(|e| AuditError::WriteFailed(e.to_string()))?;
        self.dirty = false;
        Ok(())
    }
}

/// Answers every event of a committed batch (from [`WriterTask::settle`]) with its stored form.
fn acknowledge(committed: Option<Batch>) {
    if let Some(batch) = committed {
        for (event, ack) in batch.stored.into_iter().zip(batch.acks) {
            let _ = ack.send(Ok(event));
        }
    }
}
