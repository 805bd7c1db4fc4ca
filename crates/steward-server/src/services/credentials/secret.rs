//! Step 11: the integration's current secret, checked against the hosts and the injection it was
//! entered for and decrypted under its own AAD context. Any failure is 503
//! `integration_secret_unavailable` (a host or an injection the secret is not bound to: 403
//! `integration_hosts_changed`); there is never a fallback, so a request is never forwarded without
//! its credential.
//!
//! A [`Credential`] owns everything that depends on the secret's type: the injection it is sent
//! with (OAuth2: always `Authorization: Bearer <access token>`), the needles the scrubber needs, and
//! what an upstream 401 means ([`CredentialUse::upstream_status`]). The pipeline never asks which
//! type it holds.

use serde_json::Value;
use steward_canon::{CanonicalRequest, Injection};
use steward_egress::{Needles, OutgoingRequest};
use steward_store::catalog::IntegrationRecord;
use steward_types::ErrorCode;
use zeroize::Zeroizing;

use super::envelope::{open_record, secret_context};
use super::oauth2::{self, AccessToken};
use crate::http::ApiError;
use crate::services::AppState;

fn unavailable(integration: &IntegrationRecord, why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::IntegrationSecretUnavailable,
        format!("the secret of integration {} is unavailable: {why}", integration.integration_id),
    )
}

/// What step 11 produced: the plaintext to inject (wiped when dropped), the injection it is bound to
/// and, for an OAuth2 integration, its access token — injected as `Authorization: Bearer`, with the
/// access and refresh tokens as extra scrub needles, dropped on an upstream 401 ([`oauth2`]).
pub struct Credential {
    secret: Zeroizing<Vec<u8>>,
    injection: Injection,
    /// The secret version it came from (keys the scrubber cache).
    pub version: u64,
    oauth2: Option<AccessToken>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("version", &self.version)
            .field("injection", &self.injection)
            .field("oauth2", &self.oauth2)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// The injection this credential goes out with.
    pub fn injection(&self) -> &Injection {
        &self.injection
    }

    /// Injects the credential into the canonical request: the request to send, the needles to scrub
    /// from its answer (every encoding of the secret, the injected value and, for OAuth2, the
    /// refresh token and client secret), and what stays once the plaintext is gone. The plaintext
    /// is wiped here.
    pub fn inject(
        self,
        integration: &IntegrationRecord,
        canonical: &CanonicalRequest,
    ) -> Result<(OutgoingRequest, Needles, CredentialUse), ApiError> {
        let (outgoing, mut needles) =
            OutgoingRequest::from_canonical(canonical, &self.injection, &self.secret).map_err(|e| {
                tracing::error!(integration_id = %integration.integration_id, detail = %e, "The secret cannot be injected.");
                ApiError::new(
                    ErrorCode::IntegrationSecretUnavailable,
                    format!(
                        "the secret of integration {} cannot be injected as configured; an admin must write it again",
                        integration.integration_id
                    ),
                )
            })?;
        let Credential { oauth2, version, .. } = self;
        if let Some(token) = &oauth2 {
            needles.extend(token.needles().iter().cloned());
        }
        Ok((outgoing, needles, CredentialUse { integration: integration.clone(), version, oauth2 }))
    }
}

/// A credential after injection: no plaintext, only the bookkeeping the rest of the call needs.
#[derive(Debug)]
pub struct CredentialUse {
    integration: IntegrationRecord,
    /// The secret version sent (keys the scrubber cache).
    pub version: u64,
    oauth2: Option<AccessToken>,
}

impl CredentialUse {
    /// Metadata of the write-ahead `execute` event: for OAuth2, whether this call refreshed the
    /// access token (`token_refreshed`).
    pub fn audit_metadata(&self) -> Vec<(&'static str, Value)> {
        match &self.oauth2 {
            Some(token) => vec![("token_refreshed", token.refreshed.into())],
            None => Vec::new(),
        }
    }

    /// The upstream answered with `status`: a 401 drops a cached OAuth2 access token (the next call
    /// refreshes); the call is not retried. Nothing to do for other credentials.
    pub async fn upstream_status(&self, state: &AppState, status: u16) {
        if status == 401
            && let Some(token) = &self.oauth2
        {
            oauth2::drop_access_token(state, &self.integration, token).await;
        }
    }
}

/// The plaintext secret (wiped when dropped), or for OAuth2 integrations a usable access token.
/// `injection` is the effective injection of this request (the integration's, else the template's
/// default, else bearer); the secret must have been written for it.
pub async fn load(
    state: &AppState,
    integration: &IntegrationRecord,
    canonical: &CanonicalRequest,
    injection: &Injection,
) -> Result<Credential, ApiError> {
    let record = match state.reads.current_secret(&integration.integration_id).await {
        Ok(Some(record)) => record,
        Ok(None) => return Err(unavailable(integration, "no secret is stored; an admin must write one")),
        Err(error) => {
            tracing::warn!(integration_id = %integration.integration_id, detail = %error, "Secret could not be read.");
            return Err(unavailable(integration, "the store could not be read; retry later"));
        }
    };
    if !record.bound_hosts.iter().any(|h| h == canonical.host()) {
        return Err(ApiError::new(
            ErrorCode::IntegrationHostsChanged,
            format!(
                "the secret of integration {} was not entered for host {}; an admin must write the secret again \
                 to allow it",
                integration.integration_id,
                canonical.host()
            ),
        ));
    }
    // The injection is part of the binding: a secret is never sent in a way nobody who entered it
    // chose (a PATCH of the injection or the pin, a template version with another default). OAuth2
    // secrets always go out as `Authorization: Bearer <access token>`.
    let oauth2 = oauth2::is_oauth2(&record.secret_type);
    let expected = if oauth2 { oauth2::bearer_injection() } else { injection.clone() };
    let bound = record.bound_injection.as_ref().and_then(|value| Injection::from_json(value).ok());
    if bound.as_ref() != Some(&expected) {
        return Err(ApiError::new(
            ErrorCode::IntegrationHostsChanged,
            format!(
                "the secret of integration {} was not entered for its current injection (the integration's \
                 injection or its template changed since); an admin must write the secret again to allow it",
                integration.integration_id
            ),
        ));
    }
    if oauth2 {
        let token = oauth2::access_token(state, integration, &record)
            .await
            .map_err(|error| error.to_api(&integration.integration_id))?;
        let secret = Zeroizing::new(token.secret().to_vec());
        return Ok(Credential { secret, injection: expected, version: record.version, oauth2: Some(token) });
    }
    if record.secret_type != "api_key" {
        return Err(unavailable(integration, "its secret type is not supported"));
    }
    let keyring = state.keyring.load();
    let context = secret_context(&integration.tenant_id, &integration.integration_id, record.version);
    let secret = open_record(&keyring, &context, &record.envelope).map_err(|error| {
        tracing::error!(integration_id = %integration.integration_id, version = record.version, detail = %error,
            "The integration secret could not be decrypted.");
        unavailable(integration, "it could not be decrypted")
    })?;
    Ok(Credential { secret, injection: expected, version: record.version, oauth2: None })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::json;
    use steward_canon::{CanonContext, ExecuteRequest, HeaderField, Method, Template, canonicalize};
    use steward_types::{IntegrationId, TenantId, Timestamp, WorkloadId};

    use super::*;

    const SECRET: &[u8] = b"sk-test-0123456789";

    fn template() -> Template {
        Template::from_json(&json!({
            "template_id": "tpl_unit", "version": 1, "provider": "unit",
            "allowed_schemes": ["https"], "allowed_ports": [443], "allowed_hosts": ["api.example.com"],
            "redirect_policy": {"mode": "deny"},
            "path_groups": [{
                "group_id": "responses", "risk_tier": "low", "approval_mode": "none",
                "methods": ["POST"], "path_patterns": ["^/v1/responses$"], "query_allowlist": [],
                "header_forward_allowlist": ["content-type"],
                "body_policy": {"max_bytes": 1024, "content_types": ["application/json"]}
            }]
        }))
        .unwrap()
    }

    fn integration() -> IntegrationRecord {
        let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
        IntegrationRecord {
            integration_id: IntegrationId::parse("i_unit").unwrap(),
            tenant_id: TenantId::parse("t_unit").unwrap(),
            name: "unit".into(),
            provider: "unit".into(),
            template_owner: "global".into(),
            template_id: "tpl_unit".into(),
            template_version: None,
            injection: None,
            enabled: true,
            created_at: now,
            updated_at: now,
            deleted_at: None,
            secret_version: 3,
            secret_updated_at: Some(now),
            bound_hosts: vec!["api.example.com".into()],
            bound_injection: None,
        }
    }

    fn canonical(injection: &Injection) -> CanonicalRequest {
        let request = ExecuteRequest {
            method: Method::Post,
            url: "https://api.example.com/v1/responses".into(),
            headers: vec![HeaderField::new("content-type", "application/json")],
            body_base64: Some(STANDARD.encode(b"{}")),
        };
        let ctx = CanonContext::new(
            TenantId::parse("t_unit").unwrap(),
            WorkloadId::parse("w_unit").unwrap(),
            IntegrationId::parse("i_unit").unwrap(),
            1024,
        )
        .with_integration_injection(Some(injection.clone()));
        canonicalize(&request, &template(), &ctx).unwrap()
    }

    fn credential(injection: Injection) -> Credential {
        Credential { secret: Zeroizing::new(SECRET.to_vec()), injection, version: 3, oauth2: None }
    }

    fn has_needle(needles: &Needles, value: &[u8]) -> bool {
        needles.iter().any(|n| n.as_slice() == value)
    }

    #[test]
    fn header_injection_puts_the_secret_in_the_header_and_both_forms_in_the_needles() {
        let injection = oauth2::bearer_injection();
        let canonical = canonical(&injection);
        let (outgoing, needles, used) = credential(injection).inject(&integration(), &canonical).unwrap();
        assert!(format!("{outgoing:?}").contains("authorization"), "{outgoing:?}");
        assert!(has_needle(&needles, SECRET), "the raw secret is a needle");
        assert!(has_needle(&needles, b"Bearer sk-test-0123456789"), "the injected value is a needle");
        assert_eq!(used.version, 3);
        assert!(used.audit_metadata().is_empty(), "an API key adds no audit metadata");
        assert!(!format!("{used:?}").contains("sk-test"), "no plaintext after injection: {used:?}");
    }

    #[test]
    fn query_injection_keeps_the_secret_out_of_debug_and_in_the_needles() {
        let injection = Injection::from_json(&json!({"type": "query", "name": "key"})).unwrap();
        let canonical = canonical(&injection);
        let (outgoing, needles, _) = credential(injection).inject(&integration(), &canonical).unwrap();
        assert!(!format!("{outgoing:?}").contains("sk-test"), "Debug never shows the secret");
        assert!(has_needle(&needles, SECRET));
    }

    #[test]
    fn the_credential_debug_never_shows_the_secret() {
        let shown = format!("{:?}", credential(oauth2::bearer_injection()));
        assert!(!shown.contains("sk-test"), "{shown}");
    }
}
