//! Canonicalization of an execute request against its bound template: the nine steps of `pipeline.md`
//! "Canonicalization", first failure wins, producing a [`CanonicalRequest`] and its descriptor.

mod parts;
#[cfg(test)]
mod tests;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use steward_crypto::sha256;
use steward_types::{ErrorCode, IntegrationId, TenantId, WorkloadId};

pub use parts::QueryPair;

use crate::error::CanonError;
use crate::method::Method;
use crate::percent::{encoded_dot_segment, has_encoded_separator, normalize_percent, remove_dot_segments};
use crate::template::{Injection, PathGroup, RiskTier, Template};
use crate::{host, uri};

/// The execute body's `request` object, as received (unvalidated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    pub method: Method,
    pub url: String,
    #[serde(default)]
    pub headers: Vec<HeaderField>,
    /// Standard padded base64; absent for no body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
}

/// One request header as received; duplicates are allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderField {
    pub name: String,
    pub value: String,
}

impl HeaderField {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self { name: name.into(), value: value.into() }
    }
}

/// Who is calling and the limits and injection that apply, from outside the template.
#[derive(Debug, Clone)]
pub struct CanonContext {
    tenant_id: TenantId,
    workload_id: WorkloadId,
    integration_id: IntegrationId,
    max_request_body_bytes: u64,
    integration_injection: Option<Injection>,
    /// Forward mode streams answers: `text/event-stream` / `application/x-ndjson` are allowed.
    streaming_allowed: bool,
}

impl CanonContext {
    /// `max_request_body_bytes` is `egress.max_request_body_bytes`.
    pub fn new(
        tenant_id: TenantId,
        workload_id: WorkloadId,
        integration_id: IntegrationId,
        max_request_body_bytes: u64,
    ) -> Self {
        Self {
            tenant_id,
            workload_id,
            integration_id,
            max_request_body_bytes,
            integration_injection: None,
            streaming_allowed: false,
        }
    }

    /// Skips step 9: forward mode (`gateway.md` §1) streams answers, so an `accept` or
    /// `content-type` naming a streaming media type is allowed.
    pub fn allowing_streaming(mut self) -> Self {
        self.streaming_allowed = true;
        self
    }

    /// The integration's own injection, if it has one (else the template's default applies).
    pub fn with_integration_injection(mut self, injection: Option<Injection>) -> Self {
        self.integration_injection = injection;
        self
    }

    /// The injection in force: the integration's, else the template's default, else the default.
    pub fn effective_injection(&self, template: &Template) -> Injection {
        self.integration_injection
            .clone()
            .or_else(|| template.default_injection().cloned())
            .unwrap_or_default()
    }
}

/// The canonical request descriptor of `pipeline.md`, the input of policy, approvals and idempotency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestDescriptor {
    tenant_id: TenantId,
    workload_id: WorkloadId,
    integration_id: IntegrationId,
    template_id: String,
    template_version: u64,
    method: Method,
    canonical_url: String,
    action_group: String,
    risk_tier: RiskTier,
    normalized_headers: Vec<(String, String)>,
    query_keys: Vec<String>,
    body_sha256: Option<String>,
}

impl RequestDescriptor {
    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant_id
    }
    pub fn workload_id(&self) -> &WorkloadId {
        &self.workload_id
    }
    pub fn integration_id(&self) -> &IntegrationId {
        &self.integration_id
    }
    pub fn template_id(&self) -> &str {
        &self.template_id
    }
    pub fn template_version(&self) -> u64 {
        self.template_version
    }
    pub fn method(&self) -> Method {
        self.method
    }
    pub fn canonical_url(&self) -> &str {
        &self.canonical_url
    }
    pub fn action_group(&self) -> &str {
        &self.action_group
    }
    pub fn risk_tier(&self) -> RiskTier {
        self.risk_tier
    }
    /// Kept headers, `(lowercase name, trimmed value)`, sorted by name then value.
    pub fn normalized_headers(&self) -> &[(String, String)] {
        &self.normalized_headers
    }
    /// Distinct query keys, sorted.
    pub fn query_keys(&self) -> &[String] {
        &self.query_keys
    }
    /// Base64url (no padding) SHA-256 of the body; `None` without a body.
    pub fn body_sha256(&self) -> Option<&str> {
        self.body_sha256.as_deref()
    }
    /// The RFC 8785 (JCS) serialization that [`CanonicalRequest::digest`] hashes.
    pub fn to_jcs(&self) -> Result<String, CanonError> {
        serde_jcs::to_string(self).map_err(|e| {
            CanonError::new(ErrorCode::InternalError, format!("descriptor serialization failed: {e}"))
        })
    }
}

/// A request that passed canonicalization: only what may be sent, in canonical form.
#[derive(Debug, Clone)]
pub struct CanonicalRequest {
    method: Method,
    scheme: String,
    host: String,
    port: u16,
    default_port: bool,
    path: String,
    query: Vec<QueryPair>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    group: PathGroup,
    descriptor: RequestDescriptor,
    digest: String,
}

impl CanonicalRequest {
    pub fn method(&self) -> Method {
        self.method
    }
    /// Lowercase scheme.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }
    /// Normalized host; IPv6 literals in brackets (RFC 5952).
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The effective port (the scheme default when the URL had none).
    pub fn port(&self) -> u16 {
        self.port
    }
    /// Normalized path, never empty.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// Query pairs, percent-normalized, sorted by key (stable).
    pub fn query(&self) -> &[QueryPair] {
        &self.query
    }
    /// The query string without `?` (empty when there is none).
    pub fn query_string(&self) -> String {
        parts::serialize_query(&self.query)
    }
    /// Kept headers, `(lowercase name, trimmed value)`, sorted by name then value.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }
    /// The decoded body (empty without one).
    pub fn body(&self) -> &[u8] {
        &self.body
    }
    /// The matched path group.
    pub fn group(&self) -> &PathGroup {
        &self.group
    }
    pub fn descriptor(&self) -> &RequestDescriptor {
        &self.descriptor
    }
    /// Lowercase hex SHA-256 of the descriptor's RFC 8785 serialization.
    pub fn digest(&self) -> &str {
        &self.digest
    }
    /// `scheme://host[:port]path[?query]`, the default port dropped.
    pub fn canonical_url(&self) -> &str {
        &self.descriptor.canonical_url
    }
    /// This request as an execute `request` object; canonicalizing it again gives the same descriptor.
    pub fn to_execute_request(&self) -> ExecuteRequest {
        ExecuteRequest {
            method: self.method,
            url: self.descriptor.canonical_url.clone(),
            headers: self.headers.iter().map(|(n, v)| HeaderField::new(n, v)).collect(),
            body_base64: (!self.body.is_empty()).then(|| STANDARD.encode(&self.body)),
        }
    }
    /// True when the URL named the scheme's default port (or none), which the canonical URL omits.
    pub fn uses_default_port(&self) -> bool {
        self.default_port
    }
}

/// Runs the nine canonicalization steps; the first failure wins.
pub fn canonicalize(
    input: &ExecuteRequest,
    template: &Template,
    ctx: &CanonContext,
) -> Result<CanonicalRequest, CanonError> {
    // 1. URL.
    let raw = uri::parse(&input.url)?;
    // 2. Host and port.
    let host =
        host::normalize_host(raw.host).map_err(|why| CanonError::new(ErrorCode::RequestUrlInvalid, why))?;
    let explicit_port = uri::parse_port(raw.port)?;
    // 3. Scheme, host, port allowlists.
    if !template.schemes().contains(&raw.scheme) {
        return Err(CanonError::new(
            ErrorCode::RequestSchemeNotAllowed,
            format!("scheme {:?} is not allowed by template {}", raw.scheme, template.id()),
        ));
    }
    if !template.hosts().contains(&host) {
        return Err(CanonError::new(
            ErrorCode::RequestHostNotAllowed,
            format!("host {host:?} is not allowed by template {}", template.id()),
        ));
    }
    let default_port = default_port(&raw.scheme);
    let port = explicit_port.unwrap_or(default_port);
    if !template.ports().contains(&port) {
        return Err(CanonError::new(
            ErrorCode::RequestPortNotAllowed,
            format!("port {port} is not allowed by template {}", template.id()),
        ));
    }
    // 4. Path.
    let path = normalize_percent(raw.path)
        .map_err(|why| CanonError::new(ErrorCode::RequestPercentEncodingInvalid, format!("path: {why}")))?;
    let mut path = remove_dot_segments(&path);
    if path.is_empty() {
        path.push('/');
    }
    // An encoded separator must not hide a dot segment from an upstream that decodes it.
    if let Some(segment) = encoded_dot_segment(&path) {
        return Err(CanonError::new(
            ErrorCode::RequestPercentEncodingInvalid,
            format!(
                "path: segment {segment:?} hides a '.' or '..' segment behind an encoded '/' or '\\' \
                 (%2F, %5C); such paths are never forwarded"
            ),
        ));
    }
    // 5. Group.
    let group = template.select_group(input.method, &path).ok_or_else(|| {
        let hint = if has_encoded_separator(&path) {
            " (the path has an encoded '/' or '\\' (%2F, %5C) in a segment, which only a group with \
             constraints.allow_encoded_slashes admits)"
        } else {
            ""
        };
        CanonError::new(
            ErrorCode::NoMatchingGroup,
            format!("no path group of template {} admits {} {path}{hint}", template.id(), input.method),
        )
    })?;
    // 6. Query.
    let injection = ctx.effective_injection(template);
    let query = parts::canonical_query(raw.query, group, injection.query_key())?;
    // 7. Headers (the body is decoded early so framing can compare lengths; its errors wait for step 8).
    let decoded = input.body_base64.as_deref().map(|b64| STANDARD.decode(b64));
    let body_len = match &decoded {
        Some(Ok(body)) => Some(body.len()),
        Some(Err(_)) => None,
        None => Some(0),
    };
    let headers = parts::canonical_headers(&input.headers, group, body_len, injection.header_name())?;
    // 8. Body.
    let body = match decoded {
        None => Vec::new(),
        Some(Ok(body)) => body,
        Some(Err(e)) => {
            return Err(CanonError::new(
                ErrorCode::RequestBodyBase64Invalid,
                format!("body_base64 is not canonical standard padded base64: {e}"),
            ));
        }
    };
    parts::check_body(&body, &input.headers, group, ctx.max_request_body_bytes)?;
    // 9. Streaming (execute mode only).
    if !ctx.streaming_allowed {
        parts::check_streaming(&input.headers)?;
    }

    let port_part = if port == default_port { String::new() } else { format!(":{port}") };
    let query_string = parts::serialize_query(&query);
    let query_part = if query.is_empty() { String::new() } else { format!("?{query_string}") };
    let canonical_url = format!("{}://{host}{port_part}{path}{query_part}", raw.scheme);
    let mut query_keys: Vec<String> = query.iter().map(|p| p.key().to_owned()).collect();
    query_keys.dedup();
    let body_sha256 = (!body.is_empty()).then(|| URL_SAFE_NO_PAD.encode(sha256(&body)));
    let descriptor = RequestDescriptor {
        tenant_id: ctx.tenant_id.clone(),
        workload_id: ctx.workload_id.clone(),
        integration_id: ctx.integration_id.clone(),
        template_id: template.id().to_owned(),
        template_version: template.version(),
        method: input.method,
        canonical_url,
        action_group: group.id().to_owned(),
        risk_tier: group.risk_tier(),
        normalized_headers: headers.clone(),
        query_keys,
        body_sha256,
    };
    let digest = hex::encode(sha256(descriptor.to_jcs()?.as_bytes()));
    Ok(CanonicalRequest {
        method: input.method,
        scheme: raw.scheme,
        host,
        port,
        default_port: port == default_port,
        path,
        query,
        headers,
        body,
        group: group.clone(),
        descriptor,
        digest,
    })
}

/// The default port of a scheme the template allows (only `https` today).
fn default_port(scheme: &str) -> u16 {
    match scheme {
        "http" => 80,
        _ => 443,
    }
}
