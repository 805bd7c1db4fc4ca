//! The IdentityStore part of the storage API: admin tokens (list, revoke, owner count), tenants,
//! workloads, enrollment tokens, issued certificates and sessions.
//! Implemented once for both backends by `sql::identity::impl_identity_store!`; tested by the
//! identity conformance suite (`tests/it/identity_conformance.rs`).
//!
//! Every method that changes more than one row does so in one transaction, and every check that
//! guards a change (the last owner token, an unused enrollment token, an enabled workload) runs in
//! the transaction that makes the change, so concurrent instances cannot both pass it.

use async_trait::async_trait;
use steward_types::{EnrollmentTokenId, SessionId, SigningKeyId, TenantId, Timestamp, TokenId, WorkloadId};

use crate::{AdminTokenRecord, SigningKeyRecord, StoreError};

/// A tenant: an isolated customer or team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    pub tenant_id: TenantId,
    /// Unique across the deployment.
    pub name: String,
    pub dpop_required: bool,
    /// An `https` URL or nothing.
    pub approval_webhook_url: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A workload of a tenant, identified on the data plane by the URI SAN `san_uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadRecord {
    pub workload_id: WorkloadId,
    pub tenant_id: TenantId,
    /// Unique within the tenant.
    pub name: String,
    pub san_uri: String,
    pub enabled: bool,
    /// IP addresses and CIDRs as the admin wrote them (validated before they reach the store);
    /// empty means any address.
    pub ip_allowlist: Vec<String>,
    pub dpop_required: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Set by a delete: the workload is disabled for good; the row stays for audit.
    pub deleted_at: Option<Timestamp>,
}

impl WorkloadRecord {
    /// Whether the workload may act: enabled and not deleted.
    pub fn is_active(&self) -> bool {
        self.enabled && self.deleted_at.is_none()
    }
}

/// A one-time enrollment token (only its SHA-256 is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentTokenRecord {
    pub token_id: EnrollmentTokenId,
    pub workload_id: WorkloadId,
    pub token_hash: [u8; 32],
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    /// Set when a newer token was issued for the workload (or the workload was deleted).
    pub superseded_at: Option<Timestamp>,
}

/// A client certificate the CA issued to a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    /// Lowercase hex.
    pub serial: String,
    pub workload_id: WorkloadId,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    /// `x5t#S256`.
    pub thumbprint: String,
    /// When the chain of renewals this certificate belongs to started (the original enrollment).
    pub identity_started_at: Timestamp,
    pub issued_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A data-plane session (issued by `POST /v1/session`; only its token's SHA-256 is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub session_id: SessionId,
    pub workload_id: WorkloadId,
    pub token_hash: [u8; 32],
    pub scopes: Vec<String>,
    pub cert_thumbprint: String,
    pub dpop_jkt: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// What revoking an admin token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeAdminTokenOutcome {
    /// Revoked now, or already revoked before (nothing changed).
    Revoked,
    NotFound,
    /// It is the last active (unrevoked, unexpired) owner token; nothing changed.
    LastOwner,
}

/// What recording an issued certificate did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordCertificateOutcome {
    /// The certificate is recorded (and the enrollment token, if any, consumed).
    Recorded,
    /// The enrollment token was used, superseded or expired by the time of the write (a concurrent
    /// enrollment won); nothing was written.
    TokenUnusable,
    /// The workload is unknown, disabled or deleted; nothing was written.
    WorkloadInactive,
}

/// The sessions a workload created inside a window (the per-workload session rate limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecentSessions {
    pub count: u64,
    /// The oldest session in the window: the limit lifts when it leaves the window.
    pub oldest: Option<Timestamp>,
}

/// What [`IdentityStore::insert_session_limited`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionInsertOutcome {
    Inserted,
    /// The workload already has `max` sessions in the window; nothing was written.
    LimitReached(RecentSessions),
    /// The workload is unknown, disabled or deleted; nothing was written.
    WorkloadInactive,
}

/// What [`IdentityStore::rotate_signing_key_if_older_than`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRotationOutcome {
    /// The new key is active; the previous one (if any) retired.
    Rotated { retired: Option<SigningKeyId> },
    /// The active key is younger than the threshold (another instance may just have rotated it);
    /// nothing was written.
    NotDue,
}

#[async_trait]
pub trait IdentityStore: Send + Sync {
    // ----- admin tokens ---------------------------------------------------------------------------

    /// Every admin token, in creation order.
    async fn list_admin_tokens(&self) -> Result<Vec<AdminTokenRecord>, StoreError>;

    /// Revokes a token at `now`, refusing (atomically with the revocation) when it is the last
    /// active owner token.
    async fn revoke_admin_token(
        &self,
        token_id: &TokenId,
        now: Timestamp,
    ) -> Result<RevokeAdminTokenOutcome, StoreError>;

    // ----- tenants --------------------------------------------------------------------------------

    /// A name already taken gives [`StoreError::Conflict`].
    async fn insert_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError>;

    async fn tenant(&self, tenant_id: &TenantId) -> Result<Option<TenantRecord>, StoreError>;

    /// Every tenant, in creation order (the caller limits it to what the admin may see).
    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError>;

    /// Writes name, flags, webhook URL and `updated_at`. Returns whether the tenant exists; a name
    /// already taken gives [`StoreError::Conflict`].
    async fn update_tenant(&self, tenant: &TenantRecord) -> Result<bool, StoreError>;

    // ----- workloads ------------------------------------------------------------------------------

    /// Creates a workload and its first enrollment token together. A name already taken in the
    /// tenant gives [`StoreError::Conflict`].
    async fn insert_workload(
        &self,
        workload: &WorkloadRecord,
        token: &EnrollmentTokenRecord,
    ) -> Result<(), StoreError>;

    async fn workload(&self, workload_id: &WorkloadId) -> Result<Option<WorkloadRecord>, StoreError>;

    /// The workloads of a tenant (deleted ones included), in creation order.
    async fn list_workloads(&self, tenant_id: &TenantId) -> Result<Vec<WorkloadRecord>, StoreError>;

    /// Writes `enabled`, `ip_allowlist`, `dpop_required` and `updated_at` of a workload that is not
    /// deleted. Returns whether it was written.
    async fn update_workload(&self, workload: &WorkloadRecord) -> Result<bool, StoreError>;

    /// Deletes a workload for good in one transaction: disabled with `deleted_at`, its sessions and
    /// certificates revoked, its unused enrollment tokens superseded; rows kept. Returns false when
    /// the workload is unknown; deleting a deleted workload changes nothing and returns true.
    async fn delete_workload(&self, workload_id: &WorkloadId, now: Timestamp) -> Result<bool, StoreError>;

    // ----- enrollment tokens and certificates -----------------------------------------------------

    /// Issues a new enrollment token: every earlier unused token of the workload is superseded in
    /// the same transaction. Returns false (nothing written) when the workload is unknown or deleted.
    async fn issue_enrollment_token(&self, token: &EnrollmentTokenRecord) -> Result<bool, StoreError>;

    async fn enrollment_token_by_hash(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<EnrollmentTokenRecord>, StoreError>;

    /// Records an issued certificate in one transaction that also consumes `enrollment_token_id`
    /// (when given: only if unused, not superseded and unexpired at `now`) and checks that the
    /// workload is active. Of two concurrent uses of one token exactly one is `Recorded`.
    async fn record_certificate(
        &self,
        enrollment_token_id: Option<&EnrollmentTokenId>,
        certificate: &CertificateRecord,
        now: Timestamp,
    ) -> Result<RecordCertificateOutcome, StoreError>;

    async fn certificate(&self, serial: &str) -> Result<Option<CertificateRecord>, StoreError>;

    async fn certificate_by_thumbprint(
        &self,
        thumbprint: &str,
    ) -> Result<Option<CertificateRecord>, StoreError>;

    /// The certificates of a workload, oldest first.
    async fn list_certificates(&self, workload_id: &WorkloadId)
    -> Result<Vec<CertificateRecord>, StoreError>;

    /// Revokes one certificate of a workload at `now` (an earlier revocation time is kept). Returns
    /// the certificate after the change, or `None` when the workload has no such certificate.
    async fn revoke_certificate(
        &self,
        workload_id: &WorkloadId,
        serial: &str,
        now: Timestamp,
    ) -> Result<Option<CertificateRecord>, StoreError>;

    // ----- sessions -------------------------------------------------------------------------------

    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError>;

    async fn session_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError>;

    /// Revokes every unrevoked session of a workload; returns how many.
    async fn revoke_workload_sessions(
        &self,
        workload_id: &WorkloadId,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// How many sessions the workload created after `since` (exclusive), and the oldest of them.
    async fn recent_sessions(
        &self,
        workload_id: &WorkloadId,
        since: Timestamp,
    ) -> Result<RecentSessions, StoreError>;

    /// Inserts a session unless its workload already created `max` sessions after `since`, or is no
    /// longer active. The count and the insert run in one transaction that first locks the workload
    /// row, so concurrent instances can never together exceed `max`.
    async fn insert_session_limited(
        &self,
        session: &SessionRecord,
        since: Timestamp,
        max: u64,
    ) -> Result<SessionInsertOutcome, StoreError>;

    // ----- manifest signing keys (automatic rotation) ---------------------------------------------

    /// Automatic rotation under the rotation lock (PostgreSQL: a transaction-scoped advisory lock;
    /// SQLite: the single writer): if the active key was created at or before `created_before`,
    /// `new` becomes the active key and the old one is retired at `now`, all in one transaction.
    /// Otherwise nothing is written ([`KeyRotationOutcome::NotDue`]), so of several instances
    /// checking at once exactly one rotates.
    async fn rotate_signing_key_if_older_than(
        &self,
        new: &SigningKeyRecord,
        created_before: Timestamp,
        now: Timestamp,
    ) -> Result<KeyRotationOutcome, StoreError>;
}
