//! Audit (`spec/control-plane.md`, `spec/keys-and-audit.md` "Audit events"): search with filters and
//! an opaque keyset cursor, `format=jsonl` streaming, chain verification and signed checkpoints.
//!
//! Tenant scoping: a token that does not cover every tenant only ever sees events of its tenants
//! (events without a tenant, such as key rotations, are owner-only), and only its tenants' own signed
//! checkpoints (see [`checkpoints`], decision 0007).

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use steward_store::AdminRole;
use steward_store::audit::{ChainHead, Checkpoint, Decision, EventType, verify_tenant};
use steward_store::governance::{AuditCursor, AuditFilter, AuditOrder};
use steward_types::{ErrorCode, Timestamp};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::approvals::{query_invalid, scope};
use super::{Admin, AdminPrincipal, roles};
use crate::http::ApiError;
use crate::services::AppState;
use crate::services::credentials::envelope::open_audit_key;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;
/// Events per store round trip while streaming JSON lines.
const STREAM_PAGE: u32 = 500;
const MAX_CHECKPOINTS: u32 = 100;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    tenant_id: Option<String>,
    workload_id: Option<String>,
    integration_id: Option<String>,
    /// One of the audit event types (`execute`, `approval_decided`, `admin_action`, …).
    event_type: Option<String>,
    /// allowed, denied, approval_required or throttled.
    decision: Option<String>,
    action_group: Option<String>,
    correlation_id: Option<String>,
    /// RFC 3339, inclusive.
    since: Option<String>,
    /// RFC 3339, exclusive.
    until: Option<String>,
    /// 1–1000, default 100 (ignored with `format=jsonl`).
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `json` (default, one page newest first) or `jsonl` (every match, oldest first, streamed).
    format: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// Audit events (`spec/keys-and-audit.md`), newest first.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TenantQuery {
    /// A tenant id, or `global` (owners) for events without a tenant.
    tenant_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyView {
    pub ok: bool,
    pub chains_checked: u64,
    pub events_checked: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_event_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointView {
    pub checkpoint_id: String,
    pub writer_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Null for a whole checkpoint (every chain head of the writer); a tenant id for that tenant's
    /// own checkpoint, which lists only its heads and is signed on its own.
    pub tenant_id: Option<String>,
    /// The chain heads the signature covers, all of them.
    #[schema(value_type = Vec<Object>)]
    pub heads: Vec<Value>,
    /// The manifest signing key that signed it (see `GET /v1/keys/manifest`).
    pub kid: String,
    /// Compact JWS (EdDSA, `typ: steward-checkpoint+jws`) whose payload is the RFC 8785 form of
    /// `{checkpoint_id, writer_id, created_at, heads}` for a whole checkpoint, or
    /// `{checkpoint_id, writer_id, created_at, tenant_id, heads}` for a tenant's.
    pub signature: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointList {
    pub checkpoints: Vec<CheckpointView>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events)).routes(routes!(verify)).routes(routes!(checkpoints))
}

/// Searches audit events, newest first, one page at a time; `format=jsonl` streams every match
/// oldest first as `application/x-ndjson`.
#[utoipa::path(get, path = "/v1/audit/events", tag = "audit", params(EventsQuery),
    responses((status = 200, body = EventPage), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
async fn events(
    State(state): State<AppState>,
    Admin(principal): Admin,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    principal.require(roles::AUDIT)?;
    let Query(query) = query.map_err(query_invalid)?;
    let filter = filter_from(&principal, &query)?;
    let jsonl = match query.format.as_deref() {
        None | Some("json") => false,
        Some("jsonl") => true,
        Some(other) => return Err(invalid(format!("format must be json or jsonl, got {other:?}"))),
    };
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => text.parse::<u32>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
            invalid(format!("limit must be an integer from 1 to {MAX_LIMIT}, got {text:?}"))
        })?,
    };
    let cursor = query.cursor.as_deref().map(decode_cursor).transpose()?;
    if jsonl {
        if cursor.is_some() {
            return Err(invalid("cursor cannot be combined with format=jsonl, which streams every match"));
        }
        return Ok(stream_jsonl(state, filter));
    }
    let mut page =
        state.store.search_audit_events(&filter, cursor.as_ref(), AuditOrder::NewestFirst, limit + 1).await?;
    let more = page.len() > limit as usize;
    page.truncate(limit as usize);
    let next_cursor = match page.last() {
        Some(last) if more => Some(encode_cursor(&AuditCursor {
            timestamp: last.timestamp,
            event_id: last.event_id.to_string(),
        })?),
        _ => None,
    };
    let events =
        page.iter().map(serde_json::to_value).collect::<Result<Vec<_>, _>>().map_err(ApiError::internal)?;
    Ok(Json(EventPage { events, next_cursor }).into_response())
}

/// Recomputes every chain of a tenant and compares it with the newest checkpoints.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", params(TenantQuery),
    responses((status = 200, body = VerifyView), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
async fn verify(
    State(state): State<AppState>,
    Admin(principal): Admin,
    query: Result<Query<TenantQuery>, QueryRejection>,
) -> Result<Json<VerifyView>, ApiError> {
    principal.require(roles::AUDIT)?;
    let Query(query) = query.map_err(query_invalid)?;
    let tenant_id = query.tenant_id.ok_or_else(|| invalid("tenant_id is required"))?;
    principal.require_tenant(&tenant_id)?;
    let deployment =
        state.store.deployment().await?.ok_or_else(|| ApiError::internal("the store holds no deployment"))?;
    let audit_key =
        open_audit_key(&state.keyring.load(), &deployment.audit_key).map_err(ApiError::internal)?;
    let report = verify_tenant(state.store.as_ref(), &audit_key, &tenant_id).await?;
    if !report.ok {
        tracing::error!(%tenant_id, first_bad_event_id = report.first_bad_event_id.as_deref(),
            "Audit chain verification failed: the audit log was altered.");
    }
    Ok(Json(VerifyView {
        ok: report.ok,
        chains_checked: report.chains_checked,
        events_checked: report.events_checked,
        first_bad_event_id: report.first_bad_event_id,
    }))
}

/// Signed chain heads, newest first (at most 100 checkpoints). An owner's unfiltered request gets
/// whole checkpoints; a token scoped to tenants, or a request filtered with `tenant_id`, gets the
/// tenant checkpoints of those tenants only — each lists one tenant's heads and carries its own
/// signature by the same key, so no field (signed payload included) names another tenant's chain.
#[utoipa::path(get, path = "/v1/audit/checkpoints", tag = "audit", params(TenantQuery),
    responses((status = 200, body = CheckpointList), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
async fn checkpoints(
    State(state): State<AppState>,
    Admin(principal): Admin,
    query: Result<Query<TenantQuery>, QueryRejection>,
) -> Result<Json<CheckpointList>, ApiError> {
    principal.require(roles::AUDIT)?;
    let Query(query) = query.map_err(query_invalid)?;
    if let Some(tenant_id) = &query.tenant_id {
        principal.require_tenant(tenant_id)?;
    }
    let whole = query.tenant_id.is_none() && principal.role == AdminRole::Owner;
    // A token of one tenant asks the store for that tenant's checkpoints only, so other tenants'
    // activity cannot push its own out of the newest 100.
    let store_filter = match (&query.tenant_id, principal.tenant_ids.as_slice()) {
        (Some(tenant_id), _) => Some(tenant_id.as_str()),
        (None, [only]) if !whole => Some(only.as_str()),
        _ => None,
    };
    let list = state.store.list_checkpoints(store_filter, MAX_CHECKPOINTS).await?;
    let shown = |tenant: &str| match &query.tenant_id {
        Some(only) => tenant == only,
        None => principal.covers(tenant),
    };
    let mut checkpoints = Vec::new();
    for checkpoint in list {
        if whole {
            checkpoints.push(whole_view(checkpoint)?);
        } else {
            checkpoints.extend(tenant_views(&checkpoint, &shown)?);
        }
    }
    Ok(Json(CheckpointList { checkpoints }))
}

fn heads_json(heads: &[ChainHead]) -> Result<Vec<Value>, ApiError> {
    heads.iter().map(serde_json::to_value).collect::<Result<_, _>>().map_err(ApiError::internal)
}

fn whole_view(checkpoint: Checkpoint) -> Result<CheckpointView, ApiError> {
    Ok(CheckpointView {
        heads: heads_json(&checkpoint.heads)?,
        checkpoint_id: checkpoint.checkpoint_id.to_string(),
        writer_id: checkpoint.writer_id,
        created_at: checkpoint.created_at,
        tenant_id: None,
        kid: checkpoint.kid,
        signature: checkpoint.signature,
    })
}

/// The tenant checkpoints of `checkpoint` for the tenants shown. A checkpoint written before tenant
/// checkpoints existed has no tenant signature and is left out: its only signature covers every
/// tenant's heads.
fn tenant_views(
    checkpoint: &Checkpoint,
    shown: &dyn Fn(&str) -> bool,
) -> Result<Vec<CheckpointView>, ApiError> {
    let mut views = Vec::new();
    for tenant in checkpoint.tenants() {
        if !shown(tenant) {
            continue;
        }
        let Some(signature) = checkpoint.tenant_signatures.get(tenant) else {
            continue;
        };
        views.push(CheckpointView {
            checkpoint_id: checkpoint.checkpoint_id.to_string(),
            writer_id: checkpoint.writer_id.clone(),
            created_at: checkpoint.created_at,
            tenant_id: Some(tenant.to_owned()),
            heads: heads_json(&checkpoint.tenant_heads(tenant))?,
            kid: checkpoint.kid.clone(),
            signature: signature.clone(),
        });
    }
    Ok(views)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::QueryInvalid, message)
}

/// Validates the filters (400 `query_invalid`) and applies the token's tenant scope.
fn filter_from(principal: &AdminPrincipal, query: &EventsQuery) -> Result<AuditFilter, ApiError> {
    let tenant_ids = scope(principal, query.tenant_id.as_deref())?;
    if let Some(event_type) = &query.event_type
        && !EVENT_TYPES.iter().any(|t| t.as_str() == event_type)
    {
        let known: Vec<&str> = EVENT_TYPES.iter().map(|t| t.as_str()).collect();
        return Err(invalid(format!("event_type must be one of {}, got {event_type:?}", known.join(", "))));
    }
    if let Some(decision) = &query.decision
        && !DECISIONS.iter().any(|d| d.as_str() == decision)
    {
        return Err(invalid(format!(
            "decision must be allowed, denied, approval_required or throttled, got {decision:?}"
        )));
    }
    let time = |name: &str, value: &Option<String>| -> Result<Option<Timestamp>, ApiError> {
        value
            .as_deref()
            .map(|text| {
                Timestamp::parse_rfc3339(text)
                    .map_err(|_| invalid(format!("{name} must be an RFC 3339 time, got {text:?}")))
            })
            .transpose()
    };
    Ok(AuditFilter {
        tenant_ids: if query.tenant_id.is_some() {
            None
        } else {
            tenant_ids.map(|ids| ids.iter().map(ToString::to_string).collect())
        },
        tenant_id: query.tenant_id.clone(),
        workload_id: query.workload_id.clone(),
        integration_id: query.integration_id.clone(),
        event_type: query.event_type.clone(),
        decision: query.decision.clone(),
        action_group: query.action_group.clone(),
        correlation_id: query.correlation_id.clone(),
        since: time("since", &query.since)?,
        until: time("until", &query.until)?,
    })
}

const EVENT_TYPES: [EventType; 12] = [
    EventType::SessionIssued,
    EventType::Execute,
    EventType::ExecuteResult,
    EventType::ApprovalCreated,
    EventType::ApprovalDecided,
    EventType::ApprovalConsumed,
    EventType::ApprovalExpired,
    EventType::Violation,
    EventType::ManifestIssued,
    EventType::Enrollment,
    EventType::AdminAction,
    EventType::KeyRotated,
];

const DECISIONS: [Decision; 4] =
    [Decision::Allowed, Decision::Denied, Decision::ApprovalRequired, Decision::Throttled];

/// The cursor is opaque to clients: base64url of the JSON keyset position.
fn encode_cursor(cursor: &AuditCursor) -> Result<String, ApiError> {
    let json = serde_json::to_vec(cursor).map_err(ApiError::internal)?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

fn decode_cursor(text: &str) -> Result<AuditCursor, ApiError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| invalid("cursor is not a cursor this API returned"))
}

/// Streams every match oldest first, one page of the store at a time, so memory stays bounded
/// however large the log is. A store failure mid-stream ends the body with an error (the client sees
/// a truncated transfer, never a silently short one).
fn stream_jsonl(state: AppState, filter: AuditFilter) -> Response {
    let pages = futures::stream::unfold(Some(None::<AuditCursor>), move |position| {
        let state = state.clone();
        let filter = filter.clone();
        async move {
            let cursor = position?;
            let page = match state
                .store
                .search_audit_events(&filter, cursor.as_ref(), AuditOrder::OldestFirst, STREAM_PAGE)
                .await
            {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(detail = %error, "Audit export stopped: the store failed.");
                    return Some((Err(std::io::Error::other("the store failed during the export")), None));
                }
            };
            if page.is_empty() {
                return None;
            }
            let next = if page.len() < STREAM_PAGE as usize {
                None
            } else {
                page.last().map(|last| {
                    Some(AuditCursor { timestamp: last.timestamp, event_id: last.event_id.to_string() })
                })
            };
            let mut chunk = Vec::new();
            for event in &page {
                if let Err(error) = serde_json::to_writer(&mut chunk, event) {
                    return Some((Err(std::io::Error::other(error.to_string())), None));
                }
                chunk.push(b'\n');
            }
            Some((Ok::<_, std::io::Error>(bytes::Bytes::from(chunk)), next))
        }
    });
    let mut response = Response::new(Body::from_stream(pages));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    response
}
