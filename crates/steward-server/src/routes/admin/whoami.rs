//! `GET /v1/admin/whoami`: the calling token's id, name, role and tenants.

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Admin, roles};
use crate::http::ApiError;
use crate::services::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    pub token_id: String,
    pub name: String,
    /// owner, admin, operator or auditor.
    pub role: String,
    /// The tenants this token covers (empty for owners, who cover all).
    pub tenant_ids: Vec<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(whoami))
}

/// Who is calling.
#[utoipa::path(get, path = "/v1/admin/whoami", tag = "tokens",
    responses((status = 200, body = WhoAmI), (status = 401, body = super::ErrorBody)))]
async fn whoami(Admin(principal): Admin) -> Result<Json<WhoAmI>, ApiError> {
    principal.require(roles::READ)?;
    Ok(Json(WhoAmI {
        token_id: principal.token_id.to_string(),
        name: principal.name,
        role: principal.role.as_str().to_owned(),
        tenant_ids: principal.tenant_ids.iter().map(ToString::to_string).collect(),
    }))
}
