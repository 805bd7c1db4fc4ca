//! `impl_identity_store!`: the SQL of [`crate::identity::IdentityStore`] for both backends.
//!
//! Row locks instead of isolation levels: where a check must hold until its write commits (the
//! last owner token, a workload that must still be active), the transaction first runs a no-op
//! `UPDATE` on the rows the check reads. PostgreSQL then serializes concurrent transactions on
//! those rows (under READ COMMITTED each later statement sees what the winner committed), and
//! SQLite's single writer connection serializes every write transaction anyway.

use sqlx::{ColumnIndex, Decode, Row, Type};
use steward_types::{EnrollmentTokenId, SessionId, TenantId, Timestamp, TokenId, WorkloadId};

use crate::identity::{
    CertificateRecord, EnrollmentTokenRecord, SessionRecord, TenantRecord, WorkloadRecord,
};
use crate::sql::{corrupt, hash32, opt_timestamp, timestamp};
use crate::{AdminRole, AdminTokenRecord, StoreError};

/// One typed column of a row; a decoding failure means a corrupt row.
fn get<'r, R, T>(row: &'r R, column: &str) -> Result<T, StoreError>
where
    R: Row,
    T: Decode<'r, R::Database> + Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
{
    row.try_get(column).map_err(corrupt)
}

fn json_list<'r, R, T: serde::de::DeserializeOwned>(row: &'r R, column: &str) -> Result<Vec<T>, StoreError>
where
    R: Row,
    String: Decode<'r, R::Database> + Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
{
    let text: String = get(row, column)?;
    serde_json::from_str(&text).map_err(corrupt)
}

fn micros<'r, R>(row: &'r R, column: &str) -> Result<Timestamp, StoreError>
where
    R: Row,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
{
    timestamp(get(row, column)?)
}

fn opt_micros<'r, R>(row: &'r R, column: &str) -> Result<Option<Timestamp>, StoreError>
where
    R: Row,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
{
    opt_timestamp(get(row, column)?)
}

pub(crate) fn to_json(list: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(list).map_err(corrupt)
}

pub(crate) fn admin_token_from_row<'r, R>(row: &'r R) -> Result<AdminTokenRecord, StoreError>
where
    R: Row,
    TokenId: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
{
    let role: String = get(row, "role")?;
    Ok(AdminTokenRecord {
        token_id: get(row, "token_id")?,
        name: get(row, "name")?,
        role: AdminRole::parse(&role).ok_or_else(|| corrupt(format!("unknown admin role {role:?}")))?,
        tenant_ids: json_list(row, "tenant_ids")?,
        token_hash: hash32(get(row, "token_hash")?)?,
        created_at: micros(row, "created_at")?,
        expires_at: opt_micros(row, "expires_at")?,
        revoked_at: opt_micros(row, "revoked_at")?,
    })
}

pub(crate) fn tenant_from_row<'r, R>(row: &'r R) -> Result<TenantRecord, StoreError>
where
    R: Row,
    TenantId: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
{
    Ok(TenantRecord {
        tenant_id: get(row, "tenant_id")?,
        name: get(row, "name")?,
        dpop_required: get(row, "dpop_required")?,
        approval_webhook_url: get(row, "approval_webhook_url")?,
        created_at: micros(row, "created_at")?,
        updated_at: micros(row, "updated_at")?,
    })
}

pub(crate) fn workload_from_row<'r, R>(row: &'r R) -> Result<WorkloadRecord, StoreError>
where
    R: Row,
    TenantId: Decode<'r, R::Database> + Type<R::Database>,
    WorkloadId: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
{
    Ok(WorkloadRecord {
        workload_id: get(row, "workload_id")?,
        tenant_id: get(row, "tenant_id")?,
        name: get(row, "name")?,
        san_uri: get(row, "san_uri")?,
        enabled: get(row, "enabled")?,
        ip_allowlist: json_list(row, "ip_allowlist")?,
        dpop_required: get(row, "dpop_required")?,
        created_at: micros(row, "created_at")?,
        updated_at: micros(row, "updated_at")?,
        deleted_at: opt_micros(row, "deleted_at")?,
    })
}

pub(crate) fn enrollment_token_from_row<'r, R>(row: &'r R) -> Result<EnrollmentTokenRecord, StoreError>
where
    R: Row,
    EnrollmentTokenId: Decode<'r, R::Database> + Type<R::Database>,
    WorkloadId: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
{
    Ok(EnrollmentTokenRecord {
        token_id: get(row, "token_id")?,
        workload_id: get(row, "workload_id")?,
        token_hash: hash32(get(row, "token_hash")?)?,
        created_at: micros(row, "created_at")?,
        expires_at: micros(row, "expires_at")?,
        used_at: opt_micros(row, "used_at")?,
        superseded_at: opt_micros(row, "superseded_at")?,
    })
}

pub(crate) fn certificate_from_row<'r, R>(row: &'r R) -> Result<CertificateRecord, StoreError>
where
    R: Row,
    WorkloadId: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
{
    Ok(CertificateRecord {
        serial: get(row, "serial")?,
        workload_id: get(row, "workload_id")?,
        not_before: micros(row, "not_before")?,
        not_after: micros(row, "not_after")?,
        thumbprint: get(row, "thumbprint")?,
        identity_started_at: micros(row, "identity_started_at")?,
        issued_at: micros(row, "issued_at")?,
        revoked_at: opt_micros(row, "revoked_at")?,
    })
}

pub(crate) fn session_from_row<'r, R>(row: &'r R) -> Result<SessionRecord, StoreError>
where
    R: Row,
    SessionId: Decode<'r, R::Database> + Type<R::Database>,
    WorkloadId: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
{
    Ok(SessionRecord {
        session_id: get(row, "session_id")?,
        workload_id: get(row, "workload_id")?,
        token_hash: hash32(get(row, "token_hash")?)?,
        scopes: json_list(row, "scopes")?,
        cert_thumbprint: get(row, "cert_thumbprint")?,
        dpop_jkt: get(row, "dpop_jkt")?,
        created_at: micros(row, "created_at")?,
        expires_at: micros(row, "expires_at")?,
        revoked_at: opt_micros(row, "revoked_at")?,
    })
}

pub(crate) const TOKEN_COLUMNS: &str =
    "token_id, name, role, tenant_ids, token_hash, created_at, expires_at, revoked_at";
pub(crate) const TENANT_COLUMNS: &str =
    "tenant_id, name, dpop_required, approval_webhook_url, created_at, updated_at";
pub(crate) const WORKLOAD_COLUMNS: &str = "workload_id, tenant_id, name, san_uri, enabled, ip_allowlist, \
     dpop_required, created_at, updated_at, deleted_at";
pub(crate) const ENROLLMENT_COLUMNS: &str =
    "token_id, workload_id, token_hash, created_at, expires_at, used_at, superseded_at";
pub(crate) const CERTIFICATE_COLUMNS: &str =
    "serial, workload_id, not_before, not_after, thumbprint, identity_started_at, issued_at, revoked_at";
pub(crate) const SESSION_COLUMNS: &str = "session_id, workload_id, token_hash, scopes, cert_thumbprint, \
     dpop_jkt, created_at, expires_at, revoked_at";

macro_rules! impl_identity_store {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn identity_insert_enrollment_token_tx(
                tx: &mut sqlx::Transaction<'_, $db>,
                token: &$crate::identity::EnrollmentTokenRecord,
            ) -> Result<(), $crate::StoreError> {
                sqlx::query(
                    "INSERT INTO enrollment_tokens (token_id, workload_id, token_hash, created_at, expires_at, \
                     used_at, superseded_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(token.token_id.as_str())
                .bind(token.workload_id.as_str())
                .bind(&token.token_hash[..])
                .bind(token.created_at.unix_micros())
                .bind(token.expires_at.unix_micros())
                .bind(token.used_at.map(|t| t.unix_micros()))
                .bind(token.superseded_at.map(|t| t.unix_micros()))
                .execute(&mut **tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::identity::IdentityStore for $store {
            async fn list_admin_tokens(&self) -> Result<Vec<$crate::AdminTokenRecord>, $crate::StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM admin_tokens ORDER BY created_at, token_id",
                    $crate::sql::identity::TOKEN_COLUMNS
                ))
                .fetch_all(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                rows.iter().map($crate::sql::identity::admin_token_from_row).collect()
            }

            async fn revoke_admin_token(
                &self,
                token_id: &steward_types::TokenId,
                now: steward_types::Timestamp,
            ) -> Result<$crate::identity::RevokeAdminTokenOutcome, $crate::StoreError> {
                use $crate::identity::RevokeAdminTokenOutcome;
                let mut tx = self.writer().begin().await.map_err($crate::sql::map_sqlx)?;
                // Serialize revocations on the deployment's single row first: locking the owner rows
                // alone lets two transactions take them in different orders on PostgreSQL (deadlock).
                sqlx::query("UPDATE deployment SET created_at = created_at WHERE id = 1")
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                // Then every owner row (a store without a deployment row still serializes here), so
                // two revocations of the last two owners never both pass the count below.
                sqlx::query("UPDATE admin_tokens SET role = role WHERE role = 'owner'")
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                let row = sqlx::query(&format!(
                    "SELECT {} FROM admin_tokens WHERE token_id = $1",
                    $crate::sql::identity::TOKEN_COLUMNS
                ))
                .bind(token_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                let Some(row) = row else {
                    tx.rollback().await.map_err($crate::sql::map_sqlx)?;
                    return Ok(RevokeAdminTokenOutcome::NotFound);
                };
                let token = $crate::sql::identity::admin_token_from_row(&row)?;
                if token.revoked_at.is_some() {
                    tx.rollback().await.map_err($crate::sql::map_sqlx)?;
                    return Ok(RevokeAdminTokenOutcome::Revoked);
                }
                let active = token.expires_at.is_none_or(|expires| expires > now);
                if token.role == $crate::AdminRole::Owner && active {
                    use sqlx::Row as _;
                    let others: i64 = sqlx::query(
                        "SELECT COUNT(*) AS n FROM admin_tokens WHERE role = 'owner' AND revoked_at IS NULL \
                         AND (expires_at IS NULL OR expires_at > $1) AND token_id <> $2",
                    )
                    .bind(now.unix_micros())
                    .bind(token_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err($crate::sql::map_sqlx)?
                    .try_get("n")
                    .map_err($crate::sql::corrupt)?;
                    if others == 0 {
                        tx.rollback().await.map_err($crate::sql::map_sqlx)?;
                        return Ok(RevokeAdminTokenOutcome::LastOwner);
                    }
                }
                sqlx::query("UPDATE admin_tokens SET revoked_at = $1 WHERE token_id = $2")
                    .bind(now.unix_micros())
                    .bind(token_id)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                tx.commit().await.map_err($crate::sql::map_sqlx)?;
                Ok(RevokeAdminTokenOutcome::Revoked)
            }

            async fn insert_tenant(
                &self,
                tenant: &$crate::identity::TenantRecord,
            ) -> Result<(), $crate::StoreError> {
                sqlx::query(
                    "INSERT INTO tenants (tenant_id, name, dpop_required, approval_webhook_url, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(tenant.tenant_id.as_str())
                .bind(&tenant.name)
                .bind(tenant.dpop_required)
                .bind(tenant.approval_webhook_url.as_deref())
                .bind(tenant.created_at.unix_micros())
                .bind(tenant.updated_at.unix_micros())
                .execute(self.writer())
                .await
                .map_err($crate::sql::map_sqlx)?;
                Ok(())
            }

            async fn tenant(
                &self,
                tenant_id: &steward_types::TenantId,
            ) -> Result<Option<$crate::identity::TenantRecord>, $crate::StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {} FROM tenants WHERE tenant_id = $1",
                    $crate::sql::identity::TENANT_COLUMNS
                ))
                .bind(tenant_id)
                .fetch_optional(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                row.as_ref().map($crate::sql::identity::tenant_from_row).transpose()
            }

            async fn list_tenants(&self) -> Result<Vec<$crate::identity::TenantRecord>, $crate::StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM tenants ORDER BY created_at, tenant_id",
                    $crate::sql::identity::TENANT_COLUMNS
                ))
                .fetch_all(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                rows.iter().map($crate::sql::identity::tenant_from_row).collect()
            }

            async fn update_tenant(
                &self,
                tenant: &$crate::identity::TenantRecord,
            ) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query(
                    "UPDATE tenants SET name = $1, dpop_required = $2, approval_webhook_url = $3, updated_at = $4 \
                     WHERE tenant_id = $5",
                )
                .bind(&tenant.name)
                .bind(tenant.dpop_required)
                .bind(tenant.approval_webhook_url.as_deref())
                .bind(tenant.updated_at.unix_micros())
                .bind(tenant.tenant_id.as_str())
                .execute(self.writer())
                .await
                .map_err($crate::sql::map_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_workload(
                &self,
                workload: &$crate::identity::WorkloadRecord,
                token: &$crate::identity::EnrollmentTokenRecord,
            ) -> Result<(), $crate::StoreError> {
                let allowlist = $crate::sql::identity::to_json(&workload.ip_allowlist)?;
                let mut tx = self.writer().begin().await.map_err($crate::sql::map_sqlx)?;
                sqlx::query(
                    "INSERT INTO workloads (workload_id, tenant_id, name, san_uri, enabled, ip_allowlist, \
                     dpop_required, created_at, updated_at, deleted_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(workload.workload_id.as_str())
                .bind(workload.tenant_id.as_str())
                .bind(&workload.name)
                .bind(&workload.san_uri)
                .bind(workload.enabled)
                .bind(allowlist)
                .bind(workload.dpop_required)
                .bind(workload.created_at.unix_micros())
                .bind(workload.updated_at.unix_micros())
                .bind(workload.deleted_at.map(|t| t.unix_micros()))
                .execute(&mut *tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                Self::identity_insert_enrollment_token_tx(&mut tx, token).await?;
                tx.commit().await.map_err($crate::sql::map_sqlx)
            }

            async fn workload(
                &self,
                workload_id: &steward_types::WorkloadId,
            ) -> Result<Option<$crate::identity::WorkloadRecord>, $crate::StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {} FROM workloads WHERE workload_id = $1",
                    $crate::sql::identity::WORKLOAD_COLUMNS
                ))
                .bind(workload_id)
                .fetch_optional(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                row.as_ref().map($crate::sql::identity::workload_from_row).transpose()
            }

            async fn list_workloads(
                &self,
                tenant_id: &steward_types::TenantId,
            ) -> Result<Vec<$crate::identity::WorkloadRecord>, $crate::StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM workloads WHERE tenant_id = $1 ORDER BY created_at, workload_id",
                    $crate::sql::identity::WORKLOAD_COLUMNS
                ))
                .bind(tenant_id)
                .fetch_all(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                rows.iter().map($crate::sql::identity::workload_from_row).collect()
            }

            async fn update_workload(
                &self,
                workload: &$crate::identity::WorkloadRecord,
            ) -> Result<bool, $crate::StoreError> {
                let allowlist = $crate::sql::identity::to_json(&workload.ip_allowlist)?;
                let done = sqlx::query(
                    "UPDATE workloads SET enabled = $1, ip_allowlist = $2, dpop_required = $3, updated_at = $4 \
                     WHERE workload_id = $5 AND deleted_at IS NULL",
                )
                .bind(workload.enabled)
                .bind(allowlist)
                .bind(workload.dpop_required)
                .bind(workload.updated_at.unix_micros())
                .bind(workload.workload_id.as_str())
                .execute(self.writer())
                .await
                .map_err($crate::sql::map_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_workload(
                &self,
                workload_id: &steward_types::WorkloadId,
                now: steward_types::Timestamp,
            ) -> Result<bool, $crate::StoreError> {
                let at = now.unix_micros();
                let mut tx = self.writer().begin().await.map_err($crate::sql::map_sqlx)?;
                let exists = sqlx::query("SELECT workload_id FROM workloads WHERE workload_id = $1")
                    .bind(workload_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                if exists.is_none() {
                    tx.rollback().await.map_err($crate::sql::map_sqlx)?;
                    return Ok(false);
                }
                let statements = [
                    "UPDATE workloads SET enabled = $3, deleted_at = $1, updated_at = $1 \
                     WHERE workload_id = $2 AND deleted_at IS NULL",
                    "UPDATE sessions SET revoked_at = $1 WHERE workload_id = $2 AND revoked_at IS NULL",
                    "UPDATE issued_certificates SET revoked_at = $1 WHERE workload_id = $2 AND revoked_at IS NULL",
                    "UPDATE enrollment_tokens SET superseded_at = $1 \
                     WHERE workload_id = $2 AND used_at IS NULL AND superseded_at IS NULL",
                ];
                for (i, statement) in statements.into_iter().enumerate() {
                    let query = sqlx::query(statement).bind(at).bind(workload_id);
                    // Only the first statement has the `enabled` parameter.
                    let query = if i == 0 { query.bind(false) } else { query };
                    query.execute(&mut *tx).await.map_err($crate::sql::map_sqlx)?;
                }
                tx.commit().await.map_err($crate::sql::map_sqlx)?;
                Ok(true)
            }

            async fn issue_enrollment_token(
                &self,
                token: &$crate::identity::EnrollmentTokenRecord,
            ) -> Result<bool, $crate::StoreError> {
                let mut tx = self.writer().begin().await.map_err($crate::sql::map_sqlx)?;
                // Locks the workload row: a concurrent delete either ran before (nothing written
                // here) or waits until this token exists, and then supersedes it.
                let live = sqlx::query(
                    "UPDATE workloads SET updated_at = updated_at WHERE workload_id = $1 AND deleted_at IS NULL",
                )
                .bind(token.workload_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                if live.rows_affected() != 1 {
                    tx.rollback().await.map_err($crate::sql::map_sqlx)?;
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE enrollment_tokens SET superseded_at = $1 \
                     WHERE workload_id = $2 AND used_at IS NULL AND superseded_at IS NULL",
                )
                .bind(token.created_at.unix_micros())
                .bind(token.workload_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                Self::identity_insert_enrollment_token_tx(&mut tx, token).await?;
                tx.commit().await.map_err($crate::sql::map_sqlx)?;
                Ok(true)
            }

            async fn enrollment_token_by_hash(
                &self,
                token_hash: &[u8; 32],
            ) -> Result<Option<$crate::identity::EnrollmentTokenRecord>, $crate::StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {} FROM enrollment_tokens WHERE token_hash = $1",
                    $crate::sql::identity::ENROLLMENT_COLUMNS
                ))
                .bind(&token_hash[..])
                .fetch_optional(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                row.as_ref().map($crate::sql::identity::enrollment_token_from_row).transpose()
            }

            async fn record_certificate(
                &self,
                enrollment_token_id: Option<&steward_types::EnrollmentTokenId>,
                certificate: &$crate::identity::CertificateRecord,
                now: steward_types::Timestamp,
            ) -> Result<$crate::identity::RecordCertificateOutcome, $crate::StoreError> {
                use $crate::identity::RecordCertificateOutcome;
                let mut tx = self.writer().begin().await.map_err($crate::sql::map_sqlx)?;
                // The workload row first (the same lock order as delete_workload).
                let live = sqlx::query(
                    "UPDATE workloads SET updated_at = updated_at \
                     WHERE workload_id = $1 AND enabled = $2 AND deleted_at IS NULL",
                )
                .bind(certificate.workload_id.as_str())
                .bind(true)
                .execute(&mut *tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                if live.rows_affected() != 1 {
                    tx.rollback().await.map_err($crate::sql::map_sqlx)?;
                    return Ok(RecordCertificateOutcome::WorkloadInactive);
                }
                if let Some(token_id) = enrollment_token_id {
                    // A conditional update: of two concurrent uses, the second waits for the first
                    // to commit, then finds `used_at` set and changes nothing.
                    let consumed = sqlx::query(
                        "UPDATE enrollment_tokens SET used_at = $1 WHERE token_id = $2 AND workload_id = $3 \
                         AND used_at IS NULL AND superseded_at IS NULL AND expires_at > $1",
                    )
                    .bind(now.unix_micros())
                    .bind(token_id)
                    .bind(certificate.workload_id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                    if consumed.rows_affected() != 1 {
                        tx.rollback().await.map_err($crate::sql::map_sqlx)?;
                        return Ok(RecordCertificateOutcome::TokenUnusable);
                    }
                }
                sqlx::query(
                    "INSERT INTO issued_certificates (serial, workload_id, not_before, not_after, thumbprint, \
                     identity_started_at, issued_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&certificate.serial)
                .bind(certificate.workload_id.as_str())
                .bind(certificate.not_before.unix_micros())
                .bind(certificate.not_after.unix_micros())
                .bind(&certificate.thumbprint)
                .bind(certificate.identity_started_at.unix_micros())
                .bind(certificate.issued_at.unix_micros())
                .bind(certificate.revoked_at.map(|t| t.unix_micros()))
                .execute(&mut *tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                tx.commit().await.map_err($crate::sql::map_sqlx)?;
                Ok(RecordCertificateOutcome::Recorded)
            }

            async fn certificate(
                &self,
                serial: &str,
            ) -> Result<Option<$crate::identity::CertificateRecord>, $crate::StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {} FROM issued_certificates WHERE serial = $1",
                    $crate::sql::identity::CERTIFICATE_COLUMNS
                ))
                .bind(serial)
                .fetch_optional(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                row.as_ref().map($crate::sql::identity::certificate_from_row).transpose()
            }

            async fn certificate_by_thumbprint(
                &self,
                thumbprint: &str,
            ) -> Result<Option<$crate::identity::CertificateRecord>, $crate::StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {} FROM issued_certificates WHERE thumbprint = $1",
                    $crate::sql::identity::CERTIFICATE_COLUMNS
                ))
                .bind(thumbprint)
                .fetch_optional(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                row.as_ref().map($crate::sql::identity::certificate_from_row).transpose()
            }

            async fn list_certificates(
                &self,
                workload_id: &steward_types::WorkloadId,
            ) -> Result<Vec<$crate::identity::CertificateRecord>, $crate::StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM issued_certificates WHERE workload_id = $1 ORDER BY issued_at, serial",
                    $crate::sql::identity::CERTIFICATE_COLUMNS
                ))
                .bind(workload_id)
                .fetch_all(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                rows.iter().map($crate::sql::identity::certificate_from_row).collect()
            }

            async fn revoke_certificate(
                &self,
                workload_id: &steward_types::WorkloadId,
                serial: &str,
                now: steward_types::Timestamp,
            ) -> Result<Option<$crate::identity::CertificateRecord>, $crate::StoreError> {
                let mut tx = self.writer().begin().await.map_err($crate::sql::map_sqlx)?;
                sqlx::query(
                    "UPDATE issued_certificates SET revoked_at = $1 \
                     WHERE serial = $2 AND workload_id = $3 AND revoked_at IS NULL",
                )
                .bind(now.unix_micros())
                .bind(serial)
                .bind(workload_id)
                .execute(&mut *tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                let row = sqlx::query(&format!(
                    "SELECT {} FROM issued_certificates WHERE serial = $1 AND workload_id = $2",
                    $crate::sql::identity::CERTIFICATE_COLUMNS
                ))
                .bind(serial)
                .bind(workload_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                let certificate = row.as_ref().map($crate::sql::identity::certificate_from_row).transpose()?;
                tx.commit().await.map_err($crate::sql::map_sqlx)?;
                Ok(certificate)
            }

            async fn insert_session(
                &self,
                session: &$crate::identity::SessionRecord,
            ) -> Result<(), $crate::StoreError> {
                let scopes = $crate::sql::identity::to_json(&session.scopes)?;
                sqlx::query(
                    "INSERT INTO sessions (session_id, workload_id, token_hash, scopes, cert_thumbprint, \
                     dpop_jkt, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(session.session_id.as_str())
                .bind(session.workload_id.as_str())
                .bind(&session.token_hash[..])
                .bind(scopes)
                .bind(&session.cert_thumbprint)
                .bind(session.dpop_jkt.as_deref())
                .bind(session.created_at.unix_micros())
                .bind(session.expires_at.unix_micros())
                .bind(session.revoked_at.map(|t| t.unix_micros()))
                .execute(self.writer())
                .await
                .map_err($crate::sql::map_sqlx)?;
                Ok(())
            }

            async fn session_by_hash(
                &self,
                token_hash: &[u8; 32],
            ) -> Result<Option<$crate::identity::SessionRecord>, $crate::StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {} FROM sessions WHERE token_hash = $1",
                    $crate::sql::identity::SESSION_COLUMNS
                ))
                .bind(&token_hash[..])
                .fetch_optional(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                row.as_ref().map($crate::sql::identity::session_from_row).transpose()
            }

            async fn revoke_workload_sessions(
                &self,
                workload_id: &steward_types::WorkloadId,
                now: steward_types::Timestamp,
            ) -> Result<u64, $crate::StoreError> {
                let done =
                    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE workload_id = $2 AND revoked_at IS NULL")
                        .bind(now.unix_micros())
                        .bind(workload_id)
                        .execute(self.writer())
                        .await
                        .map_err($crate::sql::map_sqlx)?;
                Ok(done.rows_affected())
            }

            async fn recent_sessions(
                &self,
                workload_id: &steward_types::WorkloadId,
                since: steward_types::Timestamp,
            ) -> Result<$crate::identity::RecentSessions, $crate::StoreError> {
                let row = sqlx::query(
                    "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM sessions \
                     WHERE workload_id = $1 AND created_at > $2",
                )
                .bind(workload_id)
                .bind(since.unix_micros())
                .fetch_one(self.reader())
                .await
                .map_err($crate::sql::map_sqlx)?;
                $crate::sql::identity::recent_from_row(&row)
            }

            async fn insert_session_limited(
                &self,
                session: &$crate::identity::SessionRecord,
                since: steward_types::Timestamp,
                max: u64,
            ) -> Result<$crate::identity::SessionInsertOutcome, $crate::StoreError> {
                use $crate::identity::SessionInsertOutcome;
                let mut tx = self.writer().begin().await.map_err($crate::sql::map_sqlx)?;
                // The workload row first: concurrent inserts for one workload queue here, so each
                // one counts what the previous one committed.
                let live = sqlx::query(
                    "UPDATE workloads SET updated_at = updated_at \
                     WHERE workload_id = $1 AND enabled = $2 AND deleted_at IS NULL",
                )
                .bind(session.workload_id.as_str())
                .bind(true)
                .execute(&mut *tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                if live.rows_affected() != 1 {
                    tx.rollback().await.map_err($crate::sql::map_sqlx)?;
                    return Ok(SessionInsertOutcome::WorkloadInactive);
                }
                let row = sqlx::query(
                    "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM sessions \
                     WHERE workload_id = $1 AND created_at > $2",
                )
                .bind(session.workload_id.as_str())
                .bind(since.unix_micros())
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                let recent = $crate::sql::identity::recent_from_row(&row)?;
                if recent.count >= max {
                    tx.rollback().await.map_err($crate::sql::map_sqlx)?;
                    return Ok(SessionInsertOutcome::LimitReached(recent));
                }
                let scopes = $crate::sql::identity::to_json(&session.scopes)?;
                sqlx::query(
                    "INSERT INTO sessions (session_id, workload_id, token_hash, scopes, cert_thumbprint, \
                     dpop_jkt, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(session.session_id.as_str())
                .bind(session.workload_id.as_str())
                .bind(&session.token_hash[..])
                .bind(scopes)
                .bind(&session.cert_thumbprint)
                .bind(session.dpop_jkt.as_deref())
                .bind(session.created_at.unix_micros())
                .bind(session.expires_at.unix_micros())
                .bind(session.revoked_at.map(|t| t.unix_micros()))
                .execute(&mut *tx)
                .await
                .map_err($crate::sql::map_sqlx)?;
                tx.commit().await.map_err($crate::sql::map_sqlx)?;
                Ok(SessionInsertOutcome::Inserted)
            }

            async fn rotate_signing_key_if_older_than(
                &self,
                new: &$crate::SigningKeyRecord,
                created_before: steward_types::Timestamp,
                now: steward_types::Timestamp,
            ) -> Result<$crate::identity::KeyRotationOutcome, $crate::StoreError> {
                use sqlx::Row as _;
                use $crate::identity::KeyRotationOutcome;
                let mut tx = self.writer().begin().await.map_err($crate::sql::map_sqlx)?;
                // The rotation lock: held until this transaction ends. An instance that waited for it
                // then reads the key the winner committed, finds it young, and writes nothing.
                Self::lock_key_rotation(&mut tx).await?;
                let active = sqlx::query("SELECT kid, created_at FROM manifest_signing_keys WHERE active")
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err($crate::sql::map_sqlx)?;
                let old_kid = match active {
                    Some(row) => {
                        let created_at: i64 = row.try_get("created_at").map_err($crate::sql::corrupt)?;
                        if created_at > created_before.unix_micros() {
                            tx.rollback().await.map_err($crate::sql::map_sqlx)?;
                            return Ok(KeyRotationOutcome::NotDue);
                        }
                        Some(row.try_get("kid").map_err($crate::sql::corrupt)?)
                    }
                    None => None,
                };
                Self::activate_signing_key_tx(&mut tx, new, now).await?;
                tx.commit().await.map_err($crate::sql::map_sqlx)?;
                Ok(KeyRotationOutcome::Rotated { retired: old_kid })
            }
        }
    };
}

pub(crate) use impl_identity_store;

/// `COUNT(*) AS n, MIN(created_at) AS oldest` of the session rate limit.
pub(crate) fn recent_from_row<'r, R>(row: &'r R) -> Result<crate::identity::RecentSessions, StoreError>
where
    R: Row,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
{
    let count: i64 = get(row, "n")?;
    Ok(crate::identity::RecentSessions {
        count: u64::try_from(count).map_err(corrupt)?,
        oldest: opt_micros(row, "oldest")?,
    })
}
