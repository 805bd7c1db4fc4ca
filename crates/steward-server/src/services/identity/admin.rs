//! Admin bearer tokens: `Authorization: Bearer stw_adm_…`, stored as SHA-256 hashes, compared in
//! constant time, refused when unknown, revoked or expired.

use axum::http::{HeaderMap, header};
use steward_crypto::{hash_token, hashes_equal};
use steward_store::{AdminRole, AdminTokenRecord};
use steward_types::{ErrorCode, TenantId, TokenId};

use crate::http::ApiError;
use crate::services::AppState;

pub const ADMIN_TOKEN_PREFIX: &str = "stw_adm_";

/// The authenticated admin behind a request.
#[derive(Debug, Clone)]
pub struct AdminPrincipal {
    pub token_id: TokenId,
    pub name: String,
    pub role: AdminRole,
    pub tenant_ids: Vec<TenantId>,
}

/// Which roles may do what (`spec/control-plane.md`, the route × role matrix).
pub mod roles {
    use steward_store::AdminRole::{self, Admin, Auditor, Operator, Owner};

    /// Admin tokens, tenants (create, patch), `global` templates, install-builtin, manifest key rotation,
    /// KEK status and re-wrap.
    pub const OWNER: &[AdminRole] = &[Owner];
    /// Every read of tenants, workloads, integrations, templates, policies, approvals; whoami; keyset.
    pub const READ: &[AdminRole] = &[Owner, Admin, Operator, Auditor];
    /// Writes of workloads, integrations, policies and tenant templates; enrollment tokens; certificate
    /// and session revocation; approving with `rule`.
    pub const WRITE: &[AdminRole] = &[Owner, Admin];
    /// Approving `once`, denying and cancelling approvals.
    pub const DECIDE: &[AdminRole] = &[Owner, Admin, Operator];
    /// Audit events, verification and checkpoints.
    pub const AUDIT: &[AdminRole] = &[Owner, Admin, Auditor];
}

impl AdminPrincipal {
    /// Step 1 of the check order: the role (403 `admin_forbidden`).
    pub fn require(&self, allowed: &[AdminRole]) -> Result<(), ApiError> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::AdminForbidden,
                format!("the {} role may not do this", self.role.as_str()),
            ))
        }
    }

    /// Whether the token covers `tenant_id` (owners cover every tenant).
    pub fn covers(&self, tenant_id: &str) -> bool {
        self.role == AdminRole::Owner || self.tenant_ids.iter().any(|t| t.as_str() == tenant_id)
    }

    /// Step 2: a tenant named in the path, query or body must be one of the token's
    /// (403 `admin_tenant_forbidden`).
    pub fn require_tenant(&self, tenant_id: &str) -> Result<(), ApiError> {
        if self.covers(tenant_id) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::AdminTenantForbidden,
                format!("this token does not cover tenant {tenant_id}"),
            ))
        }
    }

    /// Step 3 for objects addressed by their own id: one of another tenant is reported exactly like a
    /// missing one (`not_found`), so ids of other tenants cannot be probed.
    pub fn visible<T>(
        &self,
        object: Option<T>,
        tenant_of: impl Fn(&T) -> &str,
        not_found: ApiError,
    ) -> Result<T, ApiError> {
        match object {
            Some(object) if self.covers(tenant_of(&object)) => Ok(object),
            _ => Err(not_found),
        }
    }

    /// The audit actor for this admin: its token id and role.
    pub fn actor(&self) -> steward_store::audit::Actor {
        steward_store::audit::Actor::admin(self.token_id.as_str(), self.role.as_str())
    }
}

/// Checks the request's admin token.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<AdminPrincipal, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::new(ErrorCode::AdminAuthMissing, "an admin bearer token is required"))?;
    let invalid =
        || ApiError::new(ErrorCode::AdminAuthInvalid, "the admin token is unknown, revoked or expired");
    let text = value.to_str().map_err(|_| invalid())?;
    let (scheme, token) = text.split_once(' ').ok_or_else(invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::new(ErrorCode::AdminAuthMissing, "use Authorization: Bearer <admin token>"));
    }
    let token = token.trim();
    if !token.starts_with(ADMIN_TOKEN_PREFIX) {
        return Err(invalid());
    }
    let hash = hash_token(token);
    let record: AdminTokenRecord = state.store.admin_token_by_hash(&hash).await?.ok_or_else(invalid)?;
    let now = state.clock.now();
    let usable = hashes_equal(&record.token_hash, &hash)
        && record.revoked_at.is_none()
        && record.expires_at.is_none_or(|expires| expires > now);
    if !usable {
        return Err(invalid());
    }
    Ok(AdminPrincipal {
        token_id: record.token_id,
        name: record.name,
        role: record.role,
        tenant_ids: record.tenant_ids,
    })
}
