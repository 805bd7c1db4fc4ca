//! Steps 9, 13 and 14: the SSRF guard (resolve and classify every address of the canonical host),
//! the forwarder (only to a validated address, verified TLS, the response limits), and the scrubbing
//! of the secret and the injected value from the answer.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use steward_canon::CanonicalRequest;
use steward_egress::{EgressError, Needles, OutgoingRequest, ResolveError, ValidatedTarget, guard};
use steward_types::ErrorCode;

use crate::http::ApiError;
use crate::services::AppState;

/// An egress error as the client sees it: its spec code, a message without secrets.
pub fn egress_error(error: &EgressError) -> ApiError {
    let code = error.code();
    let message = match error {
        EgressError::InvalidRequest(_) | EgressError::Config(_) => return ApiError::internal(error),
        EgressError::AddressDenied { host, ip, .. } => address_denied(host, *ip, code),
        EgressError::Resolve(resolve) => format!("{resolve}; {}", resolve_fix(resolve)),
        other => other.to_string(),
    };
    ApiError::new(code, message)
}

/// A denied address and its fix: `egress.allow_cidrs` for the ranges an operator may exempt, never
/// for a metadata address (no setting reaches those).
fn address_denied(host: &str, ip: IpAddr, code: ErrorCode) -> String {
    let kind = match code {
        ErrorCode::ResolvedIpDeniedMetadataRange => {
            return format!(
                "host {host} resolves to {ip}, a cloud metadata address ({code}); Steward never connects there, \
                 and no setting changes that (egress.allow_cidrs does not apply to metadata addresses)"
            );
        }
        ErrorCode::ResolvedIpDeniedLoopback => "a loopback address",
        ErrorCode::ResolvedIpDeniedPrivateRange => "a private address",
        ErrorCode::ResolvedIpDeniedLinkLocal => "a link-local address",
        _ => "a reserved address",
    };
    let prefix = if ip.is_ipv4() { 32 } else { 128 };
    format!(
        "host {host} resolves to {ip}, {kind} ({code}), which Steward does not connect to unless the operator \
         exempts it: if {host} is an internal service you mean to reach, add \"{ip}/{prefix}\" (or its range) to \
         egress.allow_cidrs in steward.toml and restart Steward"
    )
}

/// What fixes a failed resolution: the operator's DNS servers or a static address for the name.
fn resolve_fix(error: &ResolveError) -> String {
    match error {
        ResolveError::Empty { host } => format!(
            "if {host} is a name only your network knows, give it an address with egress.static_hosts \
             ({{ \"{host}\" = [\"<ip>\"] }}) or point egress.dns_servers at a resolver that knows it"
        ),
        ResolveError::Failed { host, .. } | ResolveError::TimedOut { host } => format!(
            "check egress.dns_servers (empty means this machine's resolvers, from /etc/resolv.conf) and \
             egress.dns_timeout_ms, or give {host} a fixed address with egress.static_hosts"
        ),
    }
}

/// Step 9: every address of the canonical host, validated.
pub async fn check_target(
    state: &AppState,
    canonical: &CanonicalRequest,
) -> Result<ValidatedTarget, ApiError> {
    let resolver = state.egress.resolver.as_ref();
    match guard(canonical.host(), canonical.port(), resolver, &state.config.egress.allow_cidrs).await {
        Ok(target) => Ok(target),
        Err(error) => {
            let code = error.code();
            metrics::counter!("steward_ssrf_denials_total", "reason" => code.as_str()).increment(1);
            tracing::warn!(host = canonical.host(), reason_code = code.as_str(), detail = %error,
                "SSRF guard refused the destination.");
            Err(egress_error(&error))
        }
    }
}

/// Whether a forwarding error happened before anything could have reached the upstream (then the
/// idempotency key keeps no record): connecting, the TLS handshake, the peer re-check.
pub fn failed_before_send(error: &EgressError) -> bool {
    matches!(
        error,
        EgressError::Resolve(_)
            | EgressError::AddressDenied { .. }
            | EgressError::ConnectTimeout { .. }
            | EgressError::Tls { .. }
            | EgressError::InvalidRequest(_)
            | EgressError::Config(_)
    )
}

/// A forwarded and scrubbed answer.
#[derive(Debug)]
pub struct Delivered {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: bytes::Bytes,
    pub resolved_ip: IpAddr,
    pub latency_ms: u64,
    pub scrubbed: bool,
}

impl Delivered {
    /// The `upstream` object of the 200 answer.
    pub fn upstream_json(&self) -> Value {
        let headers: Vec<Value> =
            self.headers.iter().map(|(name, value)| json!({"name": name, "value": value})).collect();
        json!({
            "status_code": self.status,
            "headers": headers,
            "body_base64": STANDARD.encode(&self.body),
        })
    }
}

/// Which secret the needles come from: the scrubber cache keeps one scrubber per integration, for its
/// newest secret version.
#[derive(Debug, Clone, Copy)]
pub struct SecretVersion<'a> {
    pub integration_id: &'a str,
    pub version: u64,
}

/// Steps 13–14: sends `outgoing` to `target`, then scrubs every encoding of the needles (of `secret`)
/// from the answer's headers and body.
pub async fn send(
    state: &AppState,
    target: &ValidatedTarget,
    outgoing: &OutgoingRequest,
    canonical: &CanonicalRequest,
    needles: &Needles,
    secret: SecretVersion<'_>,
) -> Result<Delivered, EgressError> {
    let allowlist = canonical.group().response_header_allowlist();
    let outcome = state.egress.forwarder.forward(target, outgoing, allowlist).await;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            metrics::counter!("steward_upstream_errors_total", "reason" => error.code().as_str())
                .increment(1);
            return Err(error);
        }
    };
    metrics::histogram!("steward_upstream_latency_seconds").record(outcome.latency.as_secs_f64());
    let mut headers = outcome.headers;
    let mut body = outcome.body;
    let scrubber = state.scrubbers.get(secret.integration_id, secret.version, needles)?;
    let scrubbed = scrubber.scrub_response(&mut headers, &mut body);
    if scrubbed {
        metrics::counter!("steward_secret_scrubbed_total").increment(1);
    }
    Ok(Delivered {
        status: outcome.status,
        headers,
        body,
        resolved_ip: outcome.resolved_ip,
        latency_ms: u64::try_from(outcome.latency.as_millis()).unwrap_or(u64::MAX),
        scrubbed,
    })
}
