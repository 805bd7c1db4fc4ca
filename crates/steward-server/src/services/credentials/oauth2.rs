//! OAuth2 integrations (`spec/pipeline.md` "OAuth2 integrations"): access tokens Steward obtains
//! itself — RFC 6749 §6 refresh or §4.4 client credentials — through the SSRF guard and the
//! forwarder (so the upstream TLS rules, timeouts and size limits all apply), cached as envelopes
//! until `expires_in − 60 s`, refreshed one integration at a time across every instance, with a
//! rotated refresh token stored as a new secret version in the same transaction as the new access
//! token.
//!
//! Cross-instance coordination is a lease row in the store ([`steward_store::OAuth2Store`]): the
//! caller that takes it talks to the token endpoint; everyone else polls the row and uses the
//! winner's token (or reports the winner's OAuth error). A lease whose holder died expires after
//! `egress.total_timeout_ms + 15 s`.
//!
//! Fail closed: every failure is an [`OAuthError`] (503 `integration_secret_unavailable` naming the
//! OAuth error code, or 403 `integration_hosts_changed`), and an expired or unobtainable token is
//! never returned. Tokens and secrets never reach a message, a log line or an audit event.

mod endpoint;

use std::time::Duration;

use serde_json::json;
use steward_canon::Injection;
use steward_crypto::EnvelopeContext;
use steward_egress::{EgressError, Needles, OutgoingRequest, guard};
use steward_store::catalog::{IntegrationRecord, NewSecretVersion, SecretVersionRecord};
use steward_store::{OAuth2TokenRecord, OAuth2TokenState, StoreTokenOutcome};
use steward_types::{ErrorCode, IntegrationId, TenantId, Timestamp};
use zeroize::Zeroizing;

pub use endpoint::{DEFAULT_EXPIRES_IN_SECONDS, Grant};
use endpoint::{OAuth2Config, Refused, parse_answer, token_request};

use crate::http::ApiError;
use crate::services::AppState;
use crate::services::credentials::envelope::{client_secret_context, secret_context};
use crate::services::credentials::envelope::{open_record, seal_record};

/// A cached token is used until this long before it expires.
pub const EXPIRY_MARGIN_SECONDS: i64 = 60;
/// After a permanent refusal (`invalid_grant`, `invalid_client`, …) the endpoint is asked again at
/// most this often with the same secret version; calls in between fail at once with the same code.
pub const PERMANENT_ERROR_HOLD_SECONDS: i64 = 30;
/// How often a caller waiting for another instance's refresh looks at the store.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// The lease outlives the token call by this much (the holder also writes to the store).
const LEASE_MARGIN_SECONDS: i64 = 15;

/// The AAD context of a cached access token: bound to the integration and to the secret version it
/// was obtained with.
pub fn access_token_context(
    tenant_id: &TenantId,
    integration_id: &IntegrationId,
    secret_version: u64,
) -> EnvelopeContext {
    EnvelopeContext::IntegrationOAuth2AccessToken {
        tenant_id: tenant_id.as_str().to_owned(),
        integration_id: integration_id.as_str().to_owned(),
        secret_version,
    }
}

/// The injection of every OAuth2 integration: `Authorization: Bearer <access token>`.
pub fn bearer_injection() -> Injection {
    #[allow(clippy::expect_used)]
    Injection::from_json(&json!({"type": "header", "name": "authorization", "format": "Bearer {secret}"}))
        .expect("the built-in Bearer injection is valid")
}

/// Whether a secret type is one of the OAuth2 ones.
pub fn is_oauth2(secret_type: &str) -> bool {
    Grant::from_secret_type(secret_type).is_some()
}

/// A usable access token. The value is wiped when dropped; `Debug` never shows it.
pub struct AccessToken {
    value: Zeroizing<String>,
    /// Whether this call obtained it from the token endpoint (`metadata.token_refreshed`).
    pub refreshed: bool,
    /// When the token endpoint said it expires.
    pub expires_at: Timestamp,
    /// The cached envelope it came from or was stored in (`None`: not cached, e.g. a rotation that
    /// lost to an admin's write) — what an upstream 401 drops.
    envelope_id: Option<String>,
    /// Everything the scrubber must also remove from answers: the access token, the refresh
    /// token(s) and the client secret.
    needles: Needles,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("refreshed", &self.refreshed)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl AccessToken {
    /// The token, to inject with [`bearer_injection`].
    pub fn secret(&self) -> &[u8] {
        self.value.as_bytes()
    }

    /// Extra scrub needles (the injection adds the token and `Bearer <token>` itself).
    pub fn needles(&self) -> &Needles {
        &self.needles
    }
}

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthError {
    /// The token URL's host is not among the hosts the secret version was entered for.
    HostsChanged { host: String },
    /// 503 `integration_secret_unavailable`; `reason` is an OAuth error code (`invalid_grant`) or
    /// Steward's own (`http_503`, `upstream_timeout`, `invalid_token_response`, …), never a token.
    Unavailable { reason: String, detail: String },
}

impl OAuthError {
    fn unavailable(reason: impl Into<String>, detail: impl Into<String>) -> Self {
        OAuthError::Unavailable { reason: reason.into(), detail: detail.into() }
    }

    /// The short reason (for logs, metrics and the audit).
    pub fn reason(&self) -> &str {
        match self {
            OAuthError::HostsChanged { .. } => "integration_hosts_changed",
            OAuthError::Unavailable { reason, .. } => reason,
        }
    }

    /// The client's error for integration `integration_id`.
    pub fn to_api(&self, integration_id: &IntegrationId) -> ApiError {
        match self {
            OAuthError::HostsChanged { host } => ApiError::new(
                ErrorCode::IntegrationHostsChanged,
                format!(
                    "the secret of integration {integration_id} was not entered for the OAuth2 token host {host}; \
                     an admin must write the secret again to allow it"
                ),
            ),
            OAuthError::Unavailable { reason, detail } => ApiError::new(
                ErrorCode::IntegrationSecretUnavailable,
                format!("no OAuth2 access token for integration {integration_id} ({reason}): {detail}"),
            ),
        }
    }
}

/// The access token to inject for `integration`, whose current secret version is `secret`: the
/// cached one while it is more than 60 s from expiry, else a fresh one (taking the refresh lease, or
/// waiting for whoever holds it and using its result).
pub async fn access_token(
    state: &AppState,
    integration: &IntegrationRecord,
    secret: &SecretVersionRecord,
) -> Result<AccessToken, OAuthError> {
    let result = obtain(state, integration, secret).await;
    match &result {
        Ok(token) if token.refreshed => {
            metrics::counter!("steward_oauth2_refreshes_total", "outcome" => "ok").increment(1);
        }
        Ok(_) => {}
        Err(error) => {
            metrics::counter!("steward_oauth2_refreshes_total", "outcome" => error.reason().to_owned())
                .increment(1);
            tracing::warn!(integration_id = %integration.integration_id, reason = error.reason(),
                "No OAuth2 access token could be had; the request is refused.");
        }
    }
    result
}

/// An upstream 401 with `token`: the cached token is dropped (if it is still the cached one), so the
/// next call refreshes. The call itself is not retried.
pub async fn drop_access_token(state: &AppState, integration: &IntegrationRecord, token: &AccessToken) {
    let Some(envelope_id) = &token.envelope_id else { return };
    let now = state.clock.now();
    match state.store.drop_oauth2_token(&integration.integration_id, envelope_id, now).await {
        Ok(dropped) => {
            tracing::info!(integration_id = %integration.integration_id, dropped,
                "The upstream refused the OAuth2 access token (401); the next call refreshes it.");
        }
        Err(error) => {
            tracing::warn!(integration_id = %integration.integration_id, detail = %error,
                "The refused OAuth2 access token could not be dropped; it is used until it expires.");
        }
    }
}

/// Everything one acquisition needs, checked and decrypted once.
struct Prepared<'a> {
    state: &'a AppState,
    integration: &'a IntegrationRecord,
    secret: &'a SecretVersionRecord,
    grant: Grant,
    config: OAuth2Config,
}

async fn obtain(
    state: &AppState,
    integration: &IntegrationRecord,
    secret: &SecretVersionRecord,
) -> Result<AccessToken, OAuthError> {
    let grant = Grant::from_secret_type(&secret.secret_type)
        .ok_or_else(|| OAuthError::unavailable("not_oauth2", "the secret is not an OAuth2 secret"))?;
    let config = secret.oauth2.as_ref().and_then(OAuth2Config::from_stored).ok_or_else(|| {
        OAuthError::unavailable(
            "invalid_oauth2_config",
            "the stored oauth2 block is unusable; an admin must write the secret again",
        )
    })?;
    // Invariant 8: the refresh token and client secret only ever go to the host they were entered for.
    if !secret.bound_hosts.contains(&config.token_host) {
        return Err(OAuthError::HostsChanged { host: config.token_host });
    }
    let p = Prepared { state, integration, secret, grant, config };
    let id = &integration.integration_id;
    let store_error = |e: steward_store::StoreError| {
        tracing::warn!(integration_id = id.as_str(), detail = %e, "OAuth2 token state could not be read.");
        OAuthError::unavailable("storage_unavailable", "the token cache could not be read; retry later")
    };

    let started = state.clock.now();
    let row = state.store.oauth2_token_state(id).await.map_err(store_error)?;
    if let Some(token) = p.usable(row.as_ref(), started, None)? {
        return Ok(token);
    }
    if let Some(row) = &row {
        p.held_down(row, started)?;
    }

    let holder = format!("lease_{}", uuid::Uuid::new_v4().simple());
    let total = Duration::from_millis(u64::from(state.config.egress.total_timeout_ms));
    let lease_seconds =
        i64::try_from(total.as_secs()).unwrap_or(i64::MAX / 2).saturating_add(LEASE_MARGIN_SECONDS);
    // Waiting is bounded: a holder that died leaves a lease that expires after `lease_seconds`.
    let give_up =
        tokio::time::Instant::now() + Duration::from_secs(u64::try_from(lease_seconds).unwrap_or(60) + 5);
    loop {
        let now = state.clock.now();
        let taken = state
            .store
            .take_oauth2_refresh_lease(id, &holder, now, now.plus_seconds(lease_seconds))
            .await
            .map_err(store_error)?;
        if taken {
            // Someone may have stored a token between our read and the lease.
            let row = state.store.oauth2_token_state(id).await;
            if let Ok(row) = &row
                && let Some(token) = p.usable(row.as_ref(), now, Some(started))?
            {
                let _ = state.store.release_oauth2_refresh_lease(id, &holder, None, now).await;
                return Ok(token);
            }
            return p.refresh(&holder).await;
        }
        // Another caller (here or on another instance) is refreshing: wait for its result.
        tokio::time::sleep(POLL_INTERVAL).await;
        let now = state.clock.now();
        let row = state.store.oauth2_token_state(id).await.map_err(store_error)?;
        if let Some(token) = p.usable(row.as_ref(), now, Some(started))? {
            return Ok(token);
        }
        if let Some(row) = &row
            && row.lease_holder.is_none()
            && let (Some(code), Some(at)) = (&row.last_error, row.last_error_at)
            && at >= started
        {
            return Err(OAuthError::unavailable(
                code.clone(),
                "the token endpoint refused the refresh another request made just now",
            ));
        }
        if tokio::time::Instant::now() >= give_up {
            return Err(OAuthError::unavailable(
                "refresh_in_progress",
                "another refresh of this integration's token did not finish in time; retry later",
            ));
        }
    }
}

impl Prepared<'_> {
    fn tenant(&self) -> &TenantId {
        &self.integration.tenant_id
    }

    fn integration_id(&self) -> &IntegrationId {
        &self.integration.integration_id
    }

    /// The cached token of `row` if it belongs to the current secret version and is fresh: more than
    /// the margin from expiry, or — for a caller that waited since `waited_since` for another's
    /// refresh — obtained since then and not expired.
    fn usable(
        &self,
        row: Option<&OAuth2TokenState>,
        now: Timestamp,
        waited_since: Option<Timestamp>,
    ) -> Result<Option<AccessToken>, OAuthError> {
        let Some(token) = row.and_then(|r| r.token.as_ref()) else { return Ok(None) };
        // A token of an older secret version is never used. A newer one was obtained with a secret
        // written (or rotated by a refresh) after this caller read its version: it is the current one.
        if token.secret_version < self.secret.version {
            return Ok(None);
        }
        let fresh = token.expires_at.plus_seconds(-EXPIRY_MARGIN_SECONDS) > now
            || waited_since.is_some_and(|since| token.obtained_at >= since && token.expires_at > now);
        if !fresh {
            return Ok(None);
        }
        let keyring = self.state.keyring.load();
        let context = access_token_context(self.tenant(), self.integration_id(), token.secret_version);
        let plain = open_record(&keyring, &context, &token.access_token).map_err(|e| {
            tracing::error!(integration_id = %self.integration_id(), detail = %e, "The cached OAuth2 access token could not be decrypted.");
            OAuthError::unavailable("token_cache_unreadable", "the cached access token could not be decrypted")
        })?;
        let value = Zeroizing::new(String::from_utf8(plain.to_vec()).map_err(|_| {
            OAuthError::unavailable("token_cache_unreadable", "the cached access token is not text")
        })?);
        let mut needles = self.secret_needles()?;
        needles.push(Zeroizing::new(value.as_bytes().to_vec()));
        Ok(Some(AccessToken {
            value,
            refreshed: false,
            expires_at: token.expires_at,
            envelope_id: Some(token.access_token.envelope_id.clone()),
            needles,
        }))
    }

    /// A permanent refusal with this secret version, recent enough: fail without asking again.
    fn held_down(&self, row: &OAuth2TokenState, now: Timestamp) -> Result<(), OAuthError> {
        if let (Some(code), Some(at)) = (&row.last_error, row.last_error_at)
            && is_permanent(code)
            && at >= self.secret.created_at
            && at.plus_seconds(PERMANENT_ERROR_HOLD_SECONDS) > now
        {
            return Err(OAuthError::unavailable(
                code.clone(),
                "the token endpoint refused this integration's credential; an admin must write the secret again",
            ));
        }
        Ok(())
    }

    /// The secret version's plaintexts: the secret itself and the separate client secret.
    fn open_secrets(&self) -> Result<(Zeroizing<String>, Option<Zeroizing<String>>), OAuthError> {
        let keyring = self.state.keyring.load();
        let unreadable = |what: &str| {
            tracing::error!(integration_id = %self.integration_id(), version = self.secret.version, what,
                "An OAuth2 secret could not be decrypted.");
            OAuthError::unavailable("secret_unreadable", format!("the {what} could not be decrypted"))
        };
        let context = secret_context(self.tenant(), self.integration_id(), self.secret.version);
        let secret =
            open_record(&keyring, &context, &self.secret.envelope).map_err(|_| unreadable("secret"))?;
        let secret = Zeroizing::new(String::from_utf8(secret.to_vec()).map_err(|_| unreadable("secret"))?);
        let client_secret = match &self.secret.client_secret {
            Some(record) => {
                let context =
                    client_secret_context(self.tenant(), self.integration_id(), self.secret.version);
                let plain =
                    open_record(&keyring, &context, record).map_err(|_| unreadable("client secret"))?;
                Some(Zeroizing::new(
                    String::from_utf8(plain.to_vec()).map_err(|_| unreadable("client secret"))?,
                ))
            }
            None => None,
        };
        Ok((secret, client_secret))
    }

    fn secret_needles(&self) -> Result<Needles, OAuthError> {
        let (secret, client_secret) = self.open_secrets()?;
        let mut needles: Needles = vec![Zeroizing::new(secret.as_bytes().to_vec())];
        if let Some(client_secret) = client_secret {
            needles.push(Zeroizing::new(client_secret.as_bytes().to_vec()));
        }
        Ok(needles)
    }

    /// Holding the lease: asks the token endpoint, stores the result, releases the lease.
    async fn refresh(&self, holder: &str) -> Result<AccessToken, OAuthError> {
        let id = self.integration_id();
        let outcome = self.exchange_and_store(holder).await;
        if let Err(error) = &outcome {
            let now = self.state.clock.now();
            let code = match error {
                OAuthError::Unavailable { reason, .. } => Some(reason.as_str()),
                OAuthError::HostsChanged { .. } => None,
            };
            if let Err(e) = self.state.store.release_oauth2_refresh_lease(id, holder, code, now).await {
                tracing::warn!(integration_id = id.as_str(), detail = %e, "The OAuth2 refresh lease could not be released; it expires by itself.");
            }
        }
        outcome
    }

    async fn exchange_and_store(&self, holder: &str) -> Result<AccessToken, OAuthError> {
        let state = self.state;
        let (secret, client_secret) = self.open_secrets()?;
        let request =
            token_request(&self.config, self.grant, &secret, client_secret.as_ref().map(|s| s.as_str()));
        let outgoing = OutgoingRequest::new(
            "POST",
            &self.config.path,
            &self.config.query,
            request.headers,
            bytes::Bytes::copy_from_slice(request.body.as_bytes()),
        )
        .map_err(|e| egress_failure(&self.config.token_host, &e))?;
        drop(request.body);
        let target = guard(
            &self.config.token_host,
            self.config.token_port,
            state.egress.resolver.as_ref(),
            &state.config.egress.allow_cidrs,
        )
        .await
        .map_err(|e| egress_failure(&self.config.token_host, &e))?;
        let answer = state
            .egress
            .forwarder
            .forward(&target, &outgoing, &[])
            .await
            .map_err(|e| egress_failure(&self.config.token_host, &e))?;
        drop(outgoing);
        let parsed = parse_answer(answer.status, &answer.body);
        // The body held the token in clear; it is not kept.
        drop(answer);
        let parsed = parsed.map_err(|Refused { code, permanent }| {
            let detail = if permanent {
                "the token endpoint refused this integration's credential; an admin must write the secret again"
            } else {
                "the token endpoint gave no usable access token; retry later"
            };
            OAuthError::unavailable(code, detail)
        })?;

        let now = state.clock.now();
        let keyring = state.keyring.load();
        let seal_failed = |e: crate::services::credentials::envelope::SealError| {
            tracing::error!(integration_id = %self.integration_id(), detail = %e, "An OAuth2 token could not be sealed.");
            OAuthError::unavailable("seal_failed", "the new token could not be encrypted")
        };
        // A refresh token different from the one used was rotated: it becomes the next secret version.
        let rotated = match (&parsed.refresh_token, self.grant) {
            (Some(new), Grant::RefreshToken) if new.as_str() != secret.as_str() => {
                let version = self.secret.version + 1;
                let envelope = seal_record(
                    &keyring,
                    &secret_context(self.tenant(), self.integration_id(), version),
                    new.as_bytes(),
                )
                .map_err(seal_failed)?;
                let client_secret = match &client_secret {
                    Some(cs) => Some(
                        seal_record(
                            &keyring,
                            &client_secret_context(self.tenant(), self.integration_id(), version),
                            cs.as_bytes(),
                        )
                        .map_err(seal_failed)?,
                    ),
                    None => None,
                };
                Some(NewSecretVersion {
                    version,
                    secret_type: self.secret.secret_type.clone(),
                    envelope,
                    bound_hosts: self.secret.bound_hosts.clone(),
                    bound_injection: bearer_injection().to_json(),
                    oauth2: self.secret.oauth2.clone(),
                    client_secret,
                    created_at: now,
                })
            }
            _ => None,
        };
        let version = rotated.as_ref().map_or(self.secret.version, |r| r.version);
        let envelope = seal_record(
            &keyring,
            &access_token_context(self.tenant(), self.integration_id(), version),
            parsed.access_token.as_bytes(),
        )
        .map_err(seal_failed)?;
        let envelope_id = envelope.envelope_id.clone();
        let record = OAuth2TokenRecord {
            integration_id: self.integration_id().clone(),
            secret_version: version,
            access_token: envelope,
            expires_at: now.plus_seconds(parsed.expires_in),
            obtained_at: now,
        };
        let stored = state.store.store_oauth2_token(&record, holder, rotated.as_ref()).await;
        let mut needles: Needles = vec![
            Zeroizing::new(parsed.access_token.as_bytes().to_vec()),
            Zeroizing::new(secret.as_bytes().to_vec()),
        ];
        if let Some(new) = &parsed.refresh_token {
            needles.push(Zeroizing::new(new.as_bytes().to_vec()));
        }
        if let Some(cs) = &client_secret {
            needles.push(Zeroizing::new(cs.as_bytes().to_vec()));
        }
        let envelope_id = match stored {
            Ok(StoreTokenOutcome::Stored) => {
                if rotated.is_some() {
                    tracing::info!(integration_id = %self.integration_id(), version,
                        "The token endpoint rotated the refresh token; stored as a new secret version.");
                }
                Some(envelope_id)
            }
            Ok(StoreTokenOutcome::SecretVersionTaken) => {
                // An admin wrote a new secret while this refresh ran: theirs wins. The token is good
                // for this call, but it is not cached.
                tracing::warn!(integration_id = %self.integration_id(),
                    "A rotated refresh token was not stored: an admin wrote a new secret meanwhile.");
                None
            }
            Ok(StoreTokenOutcome::IntegrationGone) => {
                return Err(OAuthError::unavailable("integration_deleted", "the integration was deleted"));
            }
            Err(e) => {
                tracing::error!(integration_id = %self.integration_id(), detail = %e, rotated = rotated.is_some(),
                    "A new OAuth2 token could not be stored.");
                return Err(OAuthError::unavailable(
                    "storage_unavailable",
                    "the new token could not be stored; retry later",
                ));
            }
        };
        Ok(AccessToken {
            value: parsed.access_token,
            refreshed: true,
            expires_at: record.expires_at,
            envelope_id,
            needles,
        })
    }
}

fn is_permanent(code: &str) -> bool {
    matches!(
        code,
        "invalid_grant"
            | "invalid_client"
            | "unauthorized_client"
            | "unsupported_grant_type"
            | "invalid_scope"
    )
}

/// A guard or forwarder failure on the way to the token endpoint, as an OAuth error whose reason is
/// the egress code (`upstream_timeout`, `resolved_ip_denied_*`, `upstream_network_error`, …).
fn egress_failure(host: &str, error: &EgressError) -> OAuthError {
    let code = error.code();
    tracing::warn!(token_host = host, reason_code = code.as_str(), detail = %error,
        "The OAuth2 token endpoint could not be reached.");
    let detail = match error {
        EgressError::AddressDenied { ip, .. } => {
            format!(
                "the token host {host} resolves to {ip}, which is in a denied range; Steward never connects there"
            )
        }
        EgressError::TotalTimeout { .. } | EgressError::ConnectTimeout { .. } => {
            format!("the token endpoint at {host} did not answer in time")
        }
        _ => format!("the token endpoint at {host} could not be reached"),
    };
    OAuthError::unavailable(code.as_str(), detail)
}
