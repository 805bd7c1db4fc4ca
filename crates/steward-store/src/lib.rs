//! Durable storage for Steward: the [`Store`] trait, its SQLite (embedded) and PostgreSQL (shared)
//! implementations, their migrations (`migrations/sqlite`, `migrations/postgres`), and the audit
//! hash chain with its group-committing writer.
//!
//! This crate owns *where* data lives and the integrity of the audit log. It must not decide policy,
//! parse HTTP, or hold a KEK: everything secret reaches it already sealed as an envelope
//! ([`EnvelopeRecord`]), and it never sees a plaintext secret, token or key — except the audit key,
//! which the audit writer needs to compute chain HMACs and which the caller passes in decrypted.
//!
//! Freshness: there is no cache in this crate. Every read goes to the database, so a change made by
//! one instance (disabling, revocation, policy and template updates) is visible to every other
//! instance at its next read, well inside the spec's 1 s bound.

pub mod audit;
pub mod catalog;
mod error;
pub mod governance;
pub mod idempotency;
pub mod identity;
pub mod oauth2;
mod postgres;
mod records;
mod sql;
mod sqlite;

pub use catalog::CatalogStore;
pub use error::StoreError;
pub use governance::GovernanceStore;
pub use idempotency::{IdempotencyRecord, IdempotencyScope, IdempotencyStore};
pub use identity::{
    CertificateRecord, EnrollmentTokenRecord, IdentityStore, KeyRotationOutcome, RecentSessions,
    RecordCertificateOutcome, RevokeAdminTokenOutcome, SessionInsertOutcome, SessionRecord, TenantRecord,
    WorkloadRecord,
};
pub use oauth2::{OAuth2Store, OAuth2TokenRecord, OAuth2TokenState, StoreTokenOutcome};
pub use postgres::PostgresStore;
pub use records::*;
pub use sqlite::{CHECKPOINT_EVERY as SQLITE_CHECKPOINT_EVERY, SqliteStore, SqliteSynchronous};

use std::collections::BTreeMap;

use async_trait::async_trait;

/// Everything durable. One implementation per backend; both pass the same conformance suite.
#[async_trait]
pub trait Store:
    identity::IdentityStore
    + catalog::CatalogStore
    + governance::GovernanceStore
    + idempotency::IdempotencyStore
    + oauth2::OAuth2Store
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
    /// A cheap round trip, for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The change counter: a number that moves forward, in the same transaction, with every change
    /// to a record the data plane may cache (tenants, workloads, certificates, sessions, template
    /// versions, integrations, secrets and their envelopes, policies, approval decisions). Inserts
    /// of new identities, sessions and pending approvals do not move it. Polled by each instance's
    /// read cache (`docs/storage.md`, "Freshness across instances").
    async fn change_counter(&self) -> Result<i64, StoreError>;

    /// Which backend this is (`"sqlite"` or `"postgres"`), for logs and `/readyz`.
    fn backend(&self) -> &'static str;

    // ----- deployment bootstrap ------------------------------------------------------------------

    /// The deployment's singletons (CA, audit key, active manifest signing key), or `None` when
    /// `steward init` never ran against this store.
    async fn deployment(&self) -> Result<Option<Deployment>, StoreError>;

    /// Creates the deployment atomically: all of it or nothing. On PostgreSQL this runs under an
    /// advisory lock, so two `steward init` racing on one empty database create exactly one CA; the
    /// loser gets [`InitOutcome::AlreadyInitialized`] and nothing it passed is written.
    async fn initialize_deployment(&self, init: NewDeployment) -> Result<InitOutcome, StoreError>;

    // ----- envelopes (every secret in the store) --------------------------------------------------

    /// How many live (not destroyed) envelopes each KEK id protects.
    async fn envelope_counts_by_kek(&self) -> Result<BTreeMap<String, u64>, StoreError>;

    /// Live envelopes in `envelope_id` order, after `after` (exclusive), at most `limit`.
    async fn list_envelopes(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<EnvelopeRecord>, StoreError>;

    /// Replaces an envelope's body and KEK id if it is still under `expected_kek_id` (compare and
    /// set, for re-wrapping while other instances run). Returns whether it was replaced.
    async fn replace_envelope(
        &self,
        envelope_id: &str,
        expected_kek_id: &str,
        new: &EnvelopeRecord,
    ) -> Result<bool, StoreError>;

    // ----- admin tokens -------------------------------------------------------------------------

    async fn insert_admin_token(&self, token: &AdminTokenRecord) -> Result<(), StoreError>;

    /// The token whose SHA-256 is `token_hash`, whatever its state (the caller checks revocation and
    /// expiry, comparing hashes in constant time).
    async fn admin_token_by_hash(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<AdminTokenRecord>, StoreError>;

    // ----- audit ----------------------------------------------------------------------------------

    /// Appends a batch of already-chained events in one transaction: all or none. The database
    /// refuses UPDATE and DELETE on these rows (triggers).
    async fn append_audit_events(&self, events: &[audit::StoredEvent]) -> Result<(), StoreError>;

    /// The newest event of every chain, only the chains of `tenant_id` (`global` for events without
    /// a tenant) when given, in `chain_id` order.
    async fn audit_chain_heads(&self, tenant_id: Option<&str>) -> Result<Vec<audit::ChainHead>, StoreError>;

    /// The rows of one chain with `seq > after_seq`, in `seq` order, at most `limit`, as stored:
    /// verification reads them without parsing every body.
    async fn audit_chain_rows(
        &self,
        chain_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<audit::StoredRow>, StoreError>;

    /// [`Store::audit_chain_rows`], each row's body parsed.
    async fn audit_chain_events(
        &self,
        chain_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<audit::StoredEvent>, StoreError> {
        self.audit_chain_rows(chain_id, after_seq, limit)
            .await?
            .into_iter()
            .map(audit::StoredRow::parse)
            .collect()
    }

    async fn insert_checkpoint(&self, checkpoint: &audit::Checkpoint) -> Result<(), StoreError>;

    /// Checkpoints newest first; only those covering `tenant_id` when given.
    async fn list_checkpoints(
        &self,
        tenant_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<audit::Checkpoint>, StoreError>;

    /// For every chain of `tenant_id` that any checkpoint covers, the highest head a checkpoint
    /// recorded (the one verification compares the chain against), in `chain_id` order.
    async fn latest_checkpointed_heads(&self, tenant_id: &str) -> Result<Vec<audit::ChainHead>, StoreError>;
}
