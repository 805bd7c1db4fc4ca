//! Step 8, approval required: the pending approval for the request's descriptor digest — reused
//! while one is pending, else created with the encrypted preview of the group's `approval_preview`
//! JSON pointers and the `proposed_rule` that `rule` mode would create. The store decides which
//! request creates it (a unique index over pending approvals), so a burst of identical requests on
//! any number of instances gets one approval and one `approval_created`.

use serde_json::{Map, Value};
use steward_canon::CanonicalRequest;
use steward_policy::{EvaluationInput, proposed_rule};
use steward_store::governance::{ApprovalRecord, NewApproval, PendingApproval};
use steward_types::ApprovalId;

use crate::http::ApiError;
use crate::services::AppState;
use crate::services::credentials::envelope::preview_context;
use crate::services::credentials::envelope::seal_record;

/// The pending approval for this request and whether it was created now. The read first is only a
/// shortcut for the common repeat (no write); the create is what is atomic.
pub async fn create_or_reuse(
    state: &AppState,
    canonical: &CanonicalRequest,
) -> Result<(ApprovalRecord, bool), ApiError> {
    let d = canonical.descriptor();
    let (tenant, workload, integration) = (d.tenant_id(), d.workload_id(), d.integration_id());
    let now = state.clock.now();
    if let Some(existing) = state
        .store
        .pending_approval_for_digest(tenant, workload, integration, canonical.digest(), now)
        .await?
    {
        return Ok((existing, false));
    }
    let approval_id = ApprovalId::generate();
    let preview = match preview_values(canonical) {
        Some(values) => {
            let plaintext = serde_json::to_vec(&values).map_err(ApiError::internal)?;
            let keyring = state.keyring.load();
            Some(
                seal_record(&keyring, &preview_context(tenant, &approval_id), &plaintext)
                    .map_err(ApiError::internal)?,
            )
        }
        None => None,
    };
    let proposed = proposed_rule(&EvaluationInput::from_canonical(canonical, None))
        .map_err(|e| ApiError::internal(format!("proposed rule: {e}")))?;
    let descriptor = serde_json::to_value(d).map_err(ApiError::internal)?;
    let approval = NewApproval {
        approval_id: approval_id.clone(),
        tenant_id: tenant.clone(),
        workload_id: workload.clone(),
        integration_id: integration.clone(),
        digest: canonical.digest().to_owned(),
        descriptor,
        preview,
        proposed_rule: proposed,
        created_at: now,
        expires_at: now.plus_seconds(i64::from(state.config.approval.pending_ttl_seconds)),
    };
    // Atomic in the store: of concurrent identical requests, on any instance, exactly one creates.
    match state.store.create_pending_approval(&approval).await? {
        PendingApproval::Created(record) => Ok((record, true)),
        PendingApproval::Existing(record) => Ok((record, false)),
    }
}

/// `{pointer: value}` for each of the group's `approval_preview` pointers into a JSON body (a missing
/// pointer shows as null); `None` when the group previews nothing or the body is not JSON.
fn preview_values(canonical: &CanonicalRequest) -> Option<Map<String, Value>> {
    let pointers = canonical.group().approval_preview();
    if pointers.is_empty() || canonical.body().is_empty() {
        return None;
    }
    let body: Value = serde_json::from_slice(canonical.body()).ok()?;
    Some(
        pointers
            .iter()
            .map(|pointer| (pointer.clone(), body.pointer(pointer).cloned().unwrap_or(Value::Null)))
            .collect(),
    )
}
