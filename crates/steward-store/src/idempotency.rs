//! The `IdempotencyStore` part of the storage API: completed results of idempotent execute calls
//! (`spec/pipeline.md`, "Idempotency"). Only finished calls are stored — the in-progress lock lives
//! in the coordination service — and the stored response is an envelope.

use async_trait::async_trait;
use steward_types::{IntegrationId, TenantId, Timestamp, WorkloadId};

use crate::{EnvelopeRecord, StoreError};

/// (tenant, workload, integration, key): the scope of one idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyScope {
    pub tenant_id: TenantId,
    pub workload_id: WorkloadId,
    pub integration_id: IntegrationId,
    pub key: String,
}

/// A stored result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub scope: IdempotencyScope,
    /// The canonical descriptor digest the result belongs to (the fingerprint).
    pub request_digest: String,
    /// The sealed response (status, headers, body or error) to replay.
    pub response: EnvelopeRecord,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// The unexpired result stored for `scope`, if any.
    async fn idempotency_record(
        &self,
        scope: &IdempotencyScope,
        now: Timestamp,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Stores a result (its envelope in the same transaction). An expired record of the same scope is
    /// replaced (its envelope destroyed); an unexpired one is kept and `false` returned.
    async fn store_idempotency_record(
        &self,
        record: &IdempotencyRecord,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
}
