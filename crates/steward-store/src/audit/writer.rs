//! The audit writer: one background task per process that chains events and group-commits them.
//!
//! Callers send events over a channel and wait for an acknowledgement that is only sent after the
//! batch holding their event committed. While one batch commits, new events queue up and go into the
//! next transaction together, so many concurrent requests cost one commit, not one each.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use steward_types::{CheckpointId, SharedClock};
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

use super::chain::{
    ChainHead, Checkpoint, CheckpointSigner, GENESIS_HASH, StoredEvent, chain_id_for, compute_hash,
};
use super::event::{AuditEvent, ChainLink};
use crate::Store;

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
    Append(Box<AuditEvent>, Ack),
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
            audit_key,
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
    audit_key: Zeroizing<[u8; 32]>,
    writer_id: String,
    clock: SharedClock,
    signer: Arc<dyn CheckpointSigner>,
    /// Committed heads by chain tenant.
    heads: BTreeMap<String, Head>,
    /// Whether events were committed since the last checkpoint.
    dirty: bool,
}

impl WriterTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, checkpoint_every: Duration) {
        let mut ticker = tokio::time::interval(checkpoint_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick of an interval fires immediately; nothing to checkpoint yet.
        ticker.tick().await;
        loop {
            tokio::select! {
                command = rx.recv() => {
                    let Some(command) = command else {
                        // Every handle is gone: checkpoint what was written, then stop.
                        let _ = self.checkpoint().await;
                        return;
                    };
                    let mut batch = Vec::new();
                    let mut shutdown = None;
                    match command {
                        Command::Append(event, ack) => batch.push((*event, ack)),
                        Command::Shutdown(ack) => shutdown = Some(ack),
                    }
                    // Take whatever else is already queued, up to the cap: the group commit.
                    while shutdown.is_none() && batch.len() < BATCH_CAP {
                        match rx.try_recv() {
                            Ok(Command::Append(event, ack)) => batch.push((*event, ack)),
                            Ok(Command::Shutdown(ack)) => shutdown = Some(ack),
                            Err(_) => break,
                        }
                    }
                    if !batch.is_empty() {
                        self.commit(batch).await;
                    }
                    if let Some(ack) = shutdown {
                        rx.close();
                        // Anything that slipped in before the close is still written.
                        let mut rest = Vec::new();
                        while let Ok(command) = rx.try_recv() {
                            match command {
                                Command::Append(event, ack) => rest.push((*event, ack)),
                                Command::Shutdown(other) => { let _ = other.send(Ok(())); }
                            }
                        }
                        if !rest.is_empty() {
                            self.commit(rest).await;
                        }
                        let _ = ack.send(self.checkpoint().await);
                        return;
                    }
                }
                _ = ticker.tick() => {
                    if let Err(error) = self.checkpoint().await {
                        tracing::warn!(%error, writer_id = %self.writer_id, "Audit checkpoint failed; will retry.");
                    }
                }
            }
        }
    }

    /// Chains `batch` on top of the committed heads, writes it in one transaction, then acknowledges.
    /// The heads only advance when the commit succeeded, so a failed batch leaves no gap.
    async fn commit(&mut self, batch: Vec<(AuditEvent, Ack)>) {
        let mut tentative = self.heads.clone();
        let mut stored = Vec::with_capacity(batch.len());
        let mut acks = Vec::with_capacity(batch.len());
        for (mut event, ack) in batch {
            let tenant = event.chain_tenant().to_owned();
            let (seq, prev_hash) = match tentative.get(&tenant) {
                Some(head) => (head.seq + 1, head.hash.clone()),
                None => (1, GENESIS_HASH.to_owned()),
            };
            event.chain = Some(ChainLink {
                chain_id: chain_id_for(&tenant, &self.writer_id),
                seq,
                prev_hash,
                hash: String::new(),
            });
            let hashed = compute_hash(&self.audit_key, &event).and_then(|hash| {
                if let Some(chain) = event.chain.as_mut() {
                    chain.hash = hash.clone();
                }
                StoredEvent::new(event, self.writer_id.clone()).map(|s| (s, hash))
            });
            match hashed {
                Ok((event, hash)) => {
                    tentative
                        .insert(tenant, Head { seq, hash, event_id: event.event().event_id.to_string() });
                    stored.push(event);
                    acks.push(ack);
                }
                Err(error) => {
                    // Only this event is refused; it took no sequence number (tentative is unchanged).
                    let _ = ack.send(Err(AuditError::WriteFailed(error.to_string())));
                }
            }
        }
        if stored.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        match self.store.append_audit_events(&stored).await {
            Ok(()) => {
                self.heads = tentative;
                self.dirty = true;
                tracing::debug!(
                    batch = stored.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "Audit batch committed."
                );
                for (event, ack) in stored.into_iter().zip(acks) {
                    let _ = ack.send(Ok(event));
                }
            }
            Err(error) => {
                tracing::error!(%error, batch = stored.len(), "Audit batch could not be written.");
                let message = error.to_string();
                for ack in acks {
                    let _ = ack.send(Err(AuditError::WriteFailed(message.clone())));
                }
            }
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
        let payload = Checkpoint::signed_payload(&checkpoint_id, &self.writer_id, created_at, &heads)
            .map_err(AuditError::WriteFailed)?;
        let (kid, signature) = self.signer.sign(&payload).map_err(AuditError::WriteFailed)?;
        let checkpoint = Checkpoint {
            checkpoint_id,
            writer_id: self.writer_id.clone(),
            created_at,
            heads,
            kid,
            signature,
        };
        self.store
            .insert_checkpoint(&checkpoint)
            .await
            .map_err(|e| AuditError::WriteFailed(e.to_string()))?;
        self.dirty = false;
        Ok(())
    }
}
