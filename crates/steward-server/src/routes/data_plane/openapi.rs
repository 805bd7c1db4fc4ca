//! The data plane's OpenAPI document: every workload-facing route with its request body, its answers,
//! its headers and the identity it needs, generated from the handlers' `#[utoipa::path]` annotations
//! ([`super::api`] registers each route with its description, so a route cannot be added without
//! one). Served without authentication at `GET /v1/openapi.json` on the data plane listener; the
//! admin listener serves its own document at the same path. They are two documents because both
//! listeners have `/v1/approvals/{approval_id}` and `/v1/keys/manifest`, with different answers.
//!
//! The schemas below describe answers the handlers build as JSON values (execute, manifests,
//! health); `tests/data_plane_openapi.rs` checks real answers of a running server against them, so
//! they cannot drift from what the handlers send.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, Required, Type};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::routes::admin::ErrorBody;

/// The request header (and response header) that carries the correlation id.
const CORRELATION_HEADER: &str = "x-correlation-id";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Steward data plane API",
        description = "The workload-facing API: enrollment (a one-time token and a CSR for a client \
            certificate), sessions, protected calls (execute), approvals, signed manifests, the manifest \
            keyset, health. HTTPS only; the TLS layer requests a client certificate issued by the workload \
            CA, and each route says whether it needs one (security `mtls`) and a session (`session`, with \
            a `DPoP` proof when the session is DPoP-bound or the workload requires DPoP). Every error is \
            `{\"error\", \"message\", \"correlation_id\"}` with a stable code from docs/errors.md. The admin \
            API is a separate document, served at the same path on the admin listener (docs/admin.md)."
    ),
    modifiers(&DataPlaneSecurity),
    components(schemas(ErrorBody)),
    tags(
        (name = "enrollment", description = "A client certificate from a one-time enrollment token, and its renewal."),
        (name = "sessions", description = "Short-lived session tokens bound to the client certificate (and a DPoP key)."),
        (name = "execute", description = "Protected calls and the approvals they may need."),
        (name = "manifests", description = "Signed routing manifests and the keyset that verifies them."),
        (name = "health", description = "Liveness and readiness, without authentication."),
    )
)]
pub(super) struct DataPlaneDoc;

/// The three ways a data-plane request proves who sends it.
struct DataPlaneSecurity;

impl Modify for DataPlaneSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "mtls",
            SecurityScheme::MutualTls {
                description: Some(
                    "A client certificate issued by the workload CA (POST /v1/enroll), carrying the URI SAN \
                     spiffe://<trust_domain>/tenants/<tenant_id>/workloads/<workload_id> and the clientAuth \
                     extended key usage."
                        .into(),
                ),
                extensions: None,
            },
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("stw_sess_…")
                    .description(Some(
                        "`Authorization: Bearer <session_token>` from POST /v1/session. A DPoP-bound session is \
                         sent as `Authorization: DPoP <session_token>` with a `DPoP` proof instead.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "dpop",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "DPoP",
                "A DPoP proof (RFC 9449): a compact JWS with typ dpop+jwt, htm and htu of this request (htu = \
                 public_base_url + path), iat, a fresh jti and, with a session token, ath. Required for \
                 DPoP-bound sessions and for workloads or tenants that require DPoP.",
            ))),
        );
    }
}

/// Completes the document once every route is in it: `x-correlation-id` on every operation, an
/// optional request header echoed on every answer.
pub(super) fn finish(openapi: &mut utoipa::openapi::OpenApi) {
    let string = || ObjectBuilder::new().schema_type(Type::String).build();
    for item in openapi.paths.paths.values_mut() {
        let operations =
            [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.head, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            add_correlation_id(operation, string());
        }
    }
}

fn add_correlation_id(operation: &mut Operation, schema: utoipa::openapi::Object) {
    let parameter = ParameterBuilder::new()
        .name(CORRELATION_HEADER)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Any 1–128 visible ASCII characters; otherwise the server makes a UUIDv4. Echoed in the \
             x-correlation-id response header, in error bodies, execute answers and audit events.",
        ))
        .schema(Some(schema.clone()))
        .build();
    operation.parameters.get_or_insert_with(Vec::new).push(parameter);
    for response in operation.responses.responses.values_mut() {
        if let utoipa::openapi::RefOr::T(response) = response {
            response.headers.insert(
                CORRELATION_HEADER.into(),
                HeaderBuilder::new()
                    .schema(schema.clone())
                    .description(Some("The request's correlation id."))
                    .build(),
            );
        }
    }
}

/// The call a workload wants made (`request` of `POST /v1/execute`).
#[derive(Debug, serde::Serialize, ToSchema)]
#[schema(as = ExecuteRequest)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequestSchema {
    /// GET, HEAD, POST, PUT, PATCH or DELETE.
    pub method: String,
    /// The provider's absolute URL, as the workload would have called it.
    #[schema(example = "https://api.openai.com/v1/responses")]
    pub url: String,
    /// Request headers, in order; duplicates allowed. Only the template's allowlisted headers are sent.
    #[serde(default)]
    pub headers: Vec<HeaderFieldSchema>,
    /// The body, standard padded base64; omitted for no body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
}

/// One header.
#[derive(Debug, serde::Serialize, ToSchema)]
#[schema(as = HeaderField)]
#[serde(deny_unknown_fields)]
pub struct HeaderFieldSchema {
    pub name: String,
    pub value: String,
}

/// 200: the call was made; `upstream` is the provider's answer (4xx and 5xx included), with the
/// secret scrubbed.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ExecutedResponse {
    /// `executed`.
    #[schema(example = "executed")]
    pub status: String,
    pub correlation_id: String,
    pub upstream: UpstreamResponse,
}

/// The provider's answer.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct UpstreamResponse {
    pub status_code: u16,
    /// Lowercase names, upstream order, duplicates kept; only the group's response allowlist.
    pub headers: Vec<HeaderFieldSchema>,
    /// Standard base64; `""` when empty.
    pub body_base64: String,
}

/// 202: a person must approve this call first. Poll `GET /v1/approvals/{approval_id}`, then send the
/// same request again.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ApprovalRequiredResponse {
    /// `approval_required`.
    #[schema(example = "approval_required")]
    pub status: String,
    pub approval_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: steward_types::Timestamp,
    pub correlation_id: String,
    pub summary: crate::services::approvals::ApprovalSummary,
}

/// A signed routing manifest: which outbound calls the workload's interceptor sends through Steward.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Manifest {
    /// 1.
    pub manifest_version: u32,
    pub workload_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub issued_at: steward_types::Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: steward_types::Timestamp,
    /// `<public_base_url>/v1/execute`.
    pub broker_execute_url: String,
    pub dpop_required: bool,
    pub dpop_ath_required: bool,
    /// One rule per enabled integration of the tenant.
    pub match_rules: Vec<ManifestRule>,
    pub signature: ManifestSignature,
}

/// The calls of one integration.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ManifestRule {
    pub integration_id: String,
    /// The integration's name: the gateway's route `/{name}/…` and the MCP tool prefix.
    pub name: String,
    pub provider: String,
    /// The template's path groups, as workload-side tools see them (`spec/gateway.md` §2).
    pub groups: Vec<ManifestGroup>,
    #[serde(rename = "match")]
    pub match_: ManifestMatch,
    pub rewrite: ManifestRewrite,
}

/// One path group of an integration's template.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ManifestGroup {
    pub group_id: String,
    pub description: Option<String>,
    pub methods: Vec<String>,
    pub path_patterns: Vec<String>,
    pub query_allowlist: Vec<String>,
    pub header_forward_allowlist: Vec<String>,
    /// `low | medium | high`
    pub risk_tier: String,
    /// `none | required`
    pub approval_mode: String,
}

/// What a call must look like to be sent through Steward.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ManifestMatch {
    pub hosts: Vec<String>,
    pub schemes: Vec<String>,
    pub ports: Vec<u16>,
    /// Every path pattern of the integration's template (anchored regular expressions).
    pub path_groups: Vec<String>,
}

/// How to send it: `{"mode": "execute", "send_intended_url": true}`.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ManifestRewrite {
    pub mode: String,
    pub send_intended_url: bool,
}

/// A compact JWS (header `{"alg":"EdDSA","kid":…,"typ":"broker-manifest+jws"}`) over the RFC 8785
/// (JCS) form of the manifest without `signature`; verify it with the key `kid` of
/// `GET /v1/keys/manifest`.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ManifestSignature {
    /// `EdDSA`.
    pub alg: String,
    pub kid: String,
    pub jws: String,
}

/// `GET /healthz`.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// `GET /readyz`: 200 when ready, 503 otherwise.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    pub status: String,
    pub checks: ReadinessChecks,
}

/// What `/readyz` checked (within one second each).
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ReadinessChecks {
    /// `ok` or `error`.
    pub store: String,
    /// `ok` or `error` in shared mode, `absent` in embedded mode.
    pub redis: String,
}

/// A refusal of Steward's own in forward mode (`/v1/forward/…`), in the shape the OpenAI and Anthropic
/// SDKs parse; sent with `steward-error: <code>`.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ForwardError {
    /// `error`.
    #[serde(rename = "type")]
    #[schema(example = "error")]
    pub kind: String,
    pub error: ForwardErrorDetail,
}

/// The refusal: its code (twice, for both SDK families), a message and the correlation id; for
/// `approval_required` also the approval.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ForwardErrorDetail {
    /// The code, e.g. `policy_deny`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The same code.
    pub code: String,
    pub message: String,
    pub correlation_id: String,
    /// `approval_required` only: `apr_…` (also in `steward-approval-id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// `approval_required` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<steward_types::Timestamp>,
    /// `approval_required` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<crate::services::approvals::ApprovalSummary>,
}
