//! The active manifest signing key (cached for at most 30 s, shared with the audit checkpoint
//! signer) and its automatic rotation. Sealing and opening records is
//! [`crate::services::credentials::envelope`].

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use arc_swap::ArcSwap;
use serde_json::json;
use steward_crypto::{Keyring, SigningKey};
use steward_store::audit::{Actor, AuditError, AuditEvent, CheckpointSigner, EventType};
use steward_store::{KeyRotationOutcome, SigningKeyRecord, StoreError};
use steward_types::{SigningKeyId, Timestamp};

use super::credentials::envelope::{SealError, open_record, seal_record, signing_key_context};
use super::state::AppState;

/// How long an instance keeps signing with the active key it last read from the store: a rotation
/// made by another instance is picked up within this bound (`spec/keys-and-audit.md`).
pub const SIGNING_KEY_CACHE_SECONDS: i64 = 30;

/// Signs audit checkpoints with whichever manifest signing key is active now.
#[derive(Debug, Clone)]
pub struct ActiveKeySigner {
    key: Arc<ArcSwap<SigningKey>>,
}

impl ActiveKeySigner {
    pub fn new(key: Arc<ArcSwap<SigningKey>>) -> Self {
        Self { key }
    }
}

impl CheckpointSigner for ActiveKeySigner {
    fn sign(&self, payload: &[u8]) -> Result<(String, String), String> {
        let (kid, mut signatures) = self.sign_all(&[payload.to_vec()])?;
        let jws = signatures.pop().ok_or_else(|| "no signature was made".to_owned())?;
        Ok((kid, jws))
    }

    /// One load of the active key for the whole checkpoint and its tenant checkpoints.
    fn sign_all(&self, payloads: &[Vec<u8>]) -> Result<(String, Vec<String>), String> {
        let key = self.key.load();
        let header = json!({"alg": "EdDSA", "kid": key.kid().as_str(), "typ": "steward-checkpoint+jws"});
        let signatures = payloads
            .iter()
            .map(|payload| key.sign_compact_jws(&header, payload).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((key.kid().as_str().to_owned(), signatures))
    }
}

/// Why the active signing key could not be read, or a rotation could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ActiveKeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("manifest signing key {kid}: {detail}")]
    Key { kid: String, detail: String },
    #[error("the store holds no deployment")]
    NoDeployment,
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// The store's active manifest signing key as this instance uses it: for manifests, and (through the
/// same [`ArcSwap`]) for audit checkpoints. Re-read from the store when older than
/// [`SIGNING_KEY_CACHE_SECONDS`], so instances never rotate each other's keys yet all follow a
/// rotation within 30 s.
#[derive(Debug)]
pub struct ActiveSigningKey {
    key: Arc<ArcSwap<SigningKey>>,
    /// When the store was last read (unix microseconds of the state's clock).
    checked_at: AtomicI64,
    /// One refresh at a time; concurrent callers wait for it and use its result.
    refreshing: tokio::sync::Mutex<()>,
}

impl ActiveSigningKey {
    pub fn new(key: SigningKey, now: Timestamp) -> Self {
        Self {
            key: Arc::new(ArcSwap::from_pointee(key)),
            checked_at: AtomicI64::new(now.unix_micros()),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The swap the checkpoint signer reads ([`ActiveKeySigner::new`]).
    pub fn shared(&self) -> Arc<ArcSwap<SigningKey>> {
        Arc::clone(&self.key)
    }

    /// The key in use now, without looking at the store.
    pub fn cached(&self) -> Arc<SigningKey> {
        self.key.load_full()
    }

    /// Uses `key` from now on (this instance just made it active).
    pub fn install(&self, key: SigningKey, now: Timestamp) {
        self.key.store(Arc::new(key));
        self.checked_at.store(now.unix_micros(), Ordering::SeqCst);
    }

    /// The active key, re-read from the store when the cached one is older than 30 s.
    pub async fn current(&self, state: &AppState) -> Result<Arc<SigningKey>, ActiveKeyError> {
        if !self.is_stale(state.clock.now()) {
            return Ok(self.cached());
        }
        self.refresh(state).await
    }

    /// Reads the active key from the store now (opening it only when it changed).
    pub async fn refresh(&self, state: &AppState) -> Result<Arc<SigningKey>, ActiveKeyError> {
        let _guard = self.refreshing.lock().await;
        let started = state.clock.now();
        let deployment = state.store.deployment().await?.ok_or(ActiveKeyError::NoDeployment)?;
        let active = deployment.active_signing_key;
        if active.kid != *self.cached().kid() {
            let key = open_signing_key(&state.keyring.load(), &active)?;
            tracing::info!(kid = %active.kid, "Now signing with the store's active manifest signing key.");
            self.key.store(Arc::new(key));
        }
        self.checked_at.store(started.unix_micros(), Ordering::SeqCst);
        Ok(self.cached())
    }

    fn is_stale(&self, now: Timestamp) -> bool {
        let checked = self.checked_at.load(Ordering::SeqCst);
        now.unix_micros().saturating_sub(checked) >= SIGNING_KEY_CACHE_SECONDS * 1_000_000
            || now.unix_micros() < checked
    }
}

/// Opens a stored signing key under its own AAD context.
pub fn open_signing_key(keyring: &Keyring, record: &SigningKeyRecord) -> Result<SigningKey, ActiveKeyError> {
    let pkcs8 = open_record(keyring, &signing_key_context(&record.kid), &record.private_key)?;
    SigningKey::from_pkcs8(record.kid.clone(), &pkcs8)
        .map_err(|e| ActiveKeyError::Key { kid: record.kid.to_string(), detail: e.to_string() })
}

/// A new signing key, sealed for the store, and its opened form.
pub fn new_signing_key(
    keyring: &Keyring,
    now: Timestamp,
) -> Result<(SigningKey, SigningKeyRecord), ActiveKeyError> {
    let kid = SigningKeyId::generate();
    let (key, pkcs8) = SigningKey::generate(kid.clone())
        .map_err(|e| ActiveKeyError::Key { kid: kid.to_string(), detail: e.to_string() })?;
    let sealed = seal_record(keyring, &signing_key_context(&kid), &pkcs8)?;
    let record = SigningKeyRecord {
        kid,
        public_key: key.public_key_raw().to_vec(),
        private_key: sealed,
        created_at: now,
        retired_at: None,
    };
    Ok((key, record))
}

/// A rotation this instance made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoRotation {
    pub kid: SigningKeyId,
    pub retired_kid: Option<SigningKeyId>,
}

/// Automatic rotation (`manifest.key_rotation_days`): when the store's active key is that old, a new
/// one becomes active, in one store transaction under the rotation lock, so of several instances
/// checking at once exactly one rotates. The rotating instance signs with the new key at once and
/// writes `key_rotated`; the others pick it up within 30 s. `None`: not due.
pub async fn rotate_manifest_key_if_due(state: &AppState) -> Result<Option<AutoRotation>, ActiveKeyError> {
    let now = state.clock.now();
    let max_age = i64::from(state.config.manifest.key_rotation_days) * 86_400;
    let (key, record) = new_signing_key(&state.keyring.load(), now)?;
    let kid = record.kid.clone();
    let outcome =
        state.store.rotate_signing_key_if_older_than(&record, now.plus_seconds(-max_age), now).await?;
    let KeyRotationOutcome::Rotated { retired } = outcome else {
        return Ok(None);
    };
    state.signing_key.install(key, now);
    let event = AuditEvent::new(EventType::KeyRotated, Actor::system(state.audit.writer_id()), now)
        .with_metadata("key", "manifest_signing_key".into())
        .with_metadata("kid", kid.as_str().into())
        .with_metadata("retired_kid", retired.as_ref().map(|k| k.as_str()).into())
        .with_metadata("trigger", "automatic".into())
        .with_metadata("key_rotation_days", state.config.manifest.key_rotation_days.into());
    state.audit.append(event).await?;
    tracing::info!(kid = %kid, retired_kid = ?retired.as_ref().map(|k| k.as_str()),
        "Manifest signing key rotated automatically.");
    Ok(Some(AutoRotation { kid, retired_kid: retired }))
}
