//! Idempotency (`spec/pipeline.md`, "Idempotency"): scope (tenant, workload, integration, key),
//! fingerprint = the descriptor digest. Step 6 looks a completed result up (a different fingerprint
//! is a conflict, checked first; the same one is replayed); step 10 takes the in-progress lock in
//! the coordination service (`egress.total_timeout_ms` + 15 s), which records the fingerprint of
//! its holder, so a different request meeting a held lock is a conflict too and only the same
//! request is "in progress"; step 16 stores the result, sealed, for `idempotency.ttl_seconds`, and
//! releases the lock. Requests that fail before anything was sent leave no record.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use steward_coord::{LockAttempt, LockToken};
use steward_crypto::EnvelopeContext;
use steward_store::{IdempotencyRecord, IdempotencyScope};
use steward_types::{ErrorCode, IntegrationId, TenantId, WorkloadId};

use crate::http::ApiError;
use crate::services::AppState;
use crate::services::credentials::envelope::{open_record, seal_record};

/// Extra lock lifetime beyond the total upstream timeout.
const LOCK_MARGIN: Duration = Duration::from_secs(15);

/// `^[A-Za-z0-9._:-]{1,128}$`.
pub fn key_is_valid(key: &str) -> bool {
    (1..=128).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// One request's idempotency key with its scope.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub scope: IdempotencyScope,
}

impl IdempotencyKey {
    pub fn new(
        tenant_id: &TenantId,
        workload_id: &WorkloadId,
        integration_id: &IntegrationId,
        key: &str,
    ) -> Self {
        Self {
            scope: IdempotencyScope {
                tenant_id: tenant_id.clone(),
                workload_id: workload_id.clone(),
                integration_id: integration_id.clone(),
                key: key.to_owned(),
            },
        }
    }

    fn lock_key(&self) -> String {
        let s = &self.scope;
        format!("idem:{}:{}:{}:{}", s.tenant_id, s.workload_id, s.integration_id, s.key)
    }

    fn context(&self) -> EnvelopeContext {
        let s = &self.scope;
        EnvelopeContext::IdempotentResponse {
            tenant_id: s.tenant_id.to_string(),
            workload_id: s.workload_id.to_string(),
            integration_id: s.integration_id.to_string(),
            idempotency_key: s.key.clone(),
        }
    }
}

/// A result as stored (sealed) and replayed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredResponse {
    /// The HTTP status of the original answer.
    pub status: u16,
    /// The correlation id of the original request (recorded in the replay's audit event).
    pub correlation_id: String,
    /// The executed answer (`{"status":"executed",…}`) …
    pub body: Option<Value>,
    /// … or the error (code and message) of a failure after the request was sent.
    pub error: Option<StoredError>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredError {
    pub code: String,
    pub message: String,
}

/// What step 6 found.
#[derive(Debug)]
pub enum Lookup {
    /// No completed result: go on.
    Fresh,
    /// A completed result with the same fingerprint.
    Replay(StoredResponse),
}

/// 409 `idempotency_key_conflict`: the key belongs to a request with another fingerprint.
fn conflict(key: &IdempotencyKey) -> ApiError {
    ApiError::new(
        ErrorCode::IdempotencyKeyConflict,
        format!(
            "idempotency key {:?} was already used for a different request; use a new key for a new request",
            key.scope.key
        ),
    )
}

/// Step 6 (and the re-check under the lock): a completed result for the key. A different fingerprint
/// → 409 `idempotency_key_conflict`.
pub async fn lookup(state: &AppState, key: &IdempotencyKey, digest: &str) -> Result<Lookup, ApiError> {
    let now = state.clock.now();
    let Some(record) = state.store.idempotency_record(&key.scope, now).await? else {
        return Ok(Lookup::Fresh);
    };
    if record.request_digest != digest {
        return Err(conflict(key));
    }
    let keyring = state.keyring.load();
    let plaintext = open_record(&keyring, &key.context(), &record.response).map_err(ApiError::internal)?;
    let stored: StoredResponse = serde_json::from_slice(&plaintext).map_err(ApiError::internal)?;
    Ok(Lookup::Replay(stored))
}

/// Step 10: the in-progress lock, registered with this request's fingerprint. Held by a request
/// with a different fingerprint → 409 `idempotency_key_conflict` (conflict is checked first); by
/// the same request (or one whose fingerprint is unknown) → 409 `idempotency_request_in_progress`.
pub async fn reserve(state: &AppState, key: &IdempotencyKey, digest: &str) -> Result<LockToken, ApiError> {
    let ttl = Duration::from_millis(u64::from(state.config.egress.total_timeout_ms)) + LOCK_MARGIN;
    match state.coord.try_lock(&key.lock_key(), digest, ttl).await? {
        LockAttempt::Acquired(token) => Ok(token),
        LockAttempt::Held { fingerprint: Some(holder) } if holder != digest => Err(conflict(key)),
        LockAttempt::Held { .. } => Err(ApiError::new(
            ErrorCode::IdempotencyRequestInProgress,
            format!(
                "a request with idempotency key {:?} is in progress; retry after it completes",
                key.scope.key
            ),
        )),
    }
}

/// Releases the lock (failures are logged: the lock expires on its own).
pub async fn release(state: &AppState, key: &IdempotencyKey, token: &LockToken) {
    if let Err(error) = state.coord.unlock(&key.lock_key(), token).await {
        tracing::warn!(detail = %error, "Could not release an idempotency lock; it will expire.");
    }
}

/// Step 16: stores the sealed result for `idempotency.ttl_seconds`. Failures are logged (the call
/// already happened; the answer is still returned).
pub async fn complete(state: &AppState, key: &IdempotencyKey, digest: &str, response: &StoredResponse) {
    let now = state.clock.now();
    let result = async {
        let plaintext = serde_json::to_vec(response).map_err(|e| e.to_string())?;
        let keyring = state.keyring.load();
        let sealed = seal_record(&keyring, &key.context(), &plaintext).map_err(|e| e.to_string())?;
        let record = IdempotencyRecord {
            scope: key.scope.clone(),
            request_digest: digest.to_owned(),
            response: sealed,
            created_at: now,
            expires_at: now.plus_seconds(i64::from(state.config.idempotency.ttl_seconds)),
        };
        state.store.store_idempotency_record(&record, now).await.map_err(|e| e.to_string())
    }
    .await;
    match result {
        Ok(true) => {}
        Ok(false) => tracing::warn!("An idempotent result was already stored for this key; kept the first."),
        Err(detail) => {
            metrics::counter!("steward_idempotency_store_failures_total").increment(1);
            tracing::error!(%detail, "Could not store an idempotent result; a retry will execute again.");
        }
    }
}
