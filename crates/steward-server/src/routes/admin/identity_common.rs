//! What the identity resources (tokens, tenants, workloads) share: name and URL validation, the
//! JSON views of their records, and the not-found errors.

use serde::{Deserialize, Deserializer, Serialize};
use steward_store::{CertificateRecord, TenantRecord, WorkloadRecord};
use steward_types::{ErrorCode, TenantId, Timestamp};
use utoipa::ToSchema;

use crate::http::ApiError;
use crate::services::AppState;

/// The longest name of a token, tenant or workload.
pub const MAX_NAME_CHARS: usize = 128;

/// A name as stored: surrounding whitespace trimmed, then 1–128 characters, none of them control
/// characters (which would corrupt logs and terminal output).
pub fn validate_name(field: &str, name: &str) -> Result<String, ApiError> {
    let trimmed = name.trim();
    let length = trimmed.chars().count();
    if length == 0 || length > MAX_NAME_CHARS {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            format!("{field} must be 1-{MAX_NAME_CHARS} characters after trimming whitespace (got {length})"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// An approval webhook URL: absolute `https` with a host, no user info (credentials do not belong
/// in a URL that is shown on every tenant read), at most 2048 characters.
pub fn validate_webhook_url(url: &str) -> Result<String, ApiError> {
    let invalid =
        |why: &str| ApiError::new(ErrorCode::ValidationFailed, format!("approval_webhook_url {why}"));
    if url.len() > 2048 {
        return Err(invalid("must be at most 2048 characters"));
    }
    let uri: http::Uri = url.parse().map_err(|_| invalid("is not a valid URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(invalid("must be an https URL (or null)"));
    }
    let Some(authority) = uri.authority() else { return Err(invalid("must name a host")) };
    if authority.as_str().contains('@') {
        return Err(invalid("must not contain user info"));
    }
    if authority.host().is_empty() {
        return Err(invalid("must name a host"));
    }
    Ok(url.to_owned())
}

/// For PATCH bodies: a field that is absent (`None`), explicitly `null` (`Some(None)`), or set.
pub fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

pub fn tenant_not_found(tenant_id: &str) -> ApiError {
    ApiError::new(ErrorCode::TenantNotFound, format!("no tenant {tenant_id} exists"))
}

/// The tenant a path names, parsed at the edge: a malformed id is answered exactly like an unknown
/// one (404 `tenant_not_found`, the same message).
pub async fn known_tenant(state: &AppState, tenant_id: &str) -> Result<TenantRecord, ApiError> {
    let Ok(id) = TenantId::parse(tenant_id) else { return Err(tenant_not_found(tenant_id)) };
    state.store.tenant(&id).await?.ok_or_else(|| tenant_not_found(tenant_id))
}

pub fn workload_not_found(workload_id: &str) -> ApiError {
    ApiError::new(ErrorCode::WorkloadNotFound, format!("no workload {workload_id} exists"))
}

pub fn rfc3339(at: Timestamp) -> String {
    at.to_rfc3339()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub tenant_id: String,
    pub name: String,
    pub dpop_required: bool,
    pub approval_webhook_url: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&TenantRecord> for TenantView {
    fn from(t: &TenantRecord) -> Self {
        TenantView {
            tenant_id: t.tenant_id.to_string(),
            name: t.name.clone(),
            dpop_required: t.dpop_required,
            approval_webhook_url: t.approval_webhook_url.clone(),
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkloadView {
    pub workload_id: String,
    pub tenant_id: String,
    pub name: String,
    /// The identity in its client certificates: `spiffe://<trust domain>/tenants/<t>/workloads/<w>`.
    pub san_uri: String,
    pub enabled: bool,
    pub ip_allowlist: Vec<String>,
    pub dpop_required: bool,
    pub created_at: String,
    pub updated_at: String,
    /// Set once the workload was deleted (disabled for good).
    pub deleted_at: Option<String>,
}

impl From<&WorkloadRecord> for WorkloadView {
    fn from(w: &WorkloadRecord) -> Self {
        WorkloadView {
            workload_id: w.workload_id.to_string(),
            tenant_id: w.tenant_id.to_string(),
            name: w.name.clone(),
            san_uri: w.san_uri.clone(),
            enabled: w.enabled,
            ip_allowlist: w.ip_allowlist.clone(),
            dpop_required: w.dpop_required,
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
            deleted_at: w.deleted_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateView {
    /// Lowercase hex.
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    /// `x5t#S256`.
    pub thumbprint: String,
    pub revoked_at: Option<String>,
    /// When the chain of renewals began (the original enrollment).
    pub identity_started_at: String,
    pub issued_at: String,
}

impl From<&CertificateRecord> for CertificateView {
    fn from(c: &CertificateRecord) -> Self {
        CertificateView {
            serial: c.serial.clone(),
            not_before: rfc3339(c.not_before),
            not_after: rfc3339(c.not_after),
            thumbprint: c.thumbprint.clone(),
            revoked_at: c.revoked_at.map(rfc3339),
            identity_started_at: rfc3339(c.identity_started_at),
            issued_at: rfc3339(c.issued_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_name("name", "  agent 1 ").unwrap(), "agent 1");
        assert!(validate_name("name", "   ").is_err());
        assert!(validate_name("name", &"x".repeat(129)).is_err());
        assert!(validate_name("name", &"é".repeat(128)).is_ok());
        assert!(validate_name("name", "a\u{7}b").is_err());
    }

    #[test]
    fn webhook_urls_must_be_https_with_a_host() {
        assert!(validate_webhook_url("https://hooks.example/a?b=c").is_ok());
        for bad in ["http://hooks.example/", "hooks.example", "https://", "https://u:p@h.example/", "ftp://x"]
        {
            assert!(validate_webhook_url(bad).is_err(), "{bad}");
        }
    }
}
