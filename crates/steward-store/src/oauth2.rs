//! The `OAuth2Store` part of the storage API: the cached access token of each OAuth2 integration and
//! the cross-instance refresh lease (`spec/pipeline.md` "OAuth2 integrations").
//!
//! One row per integration (`oauth2_tokens`): the access token as an envelope, the secret version it
//! was obtained with (a token obtained with an older version is never used), its expiry, and a lease
//! (`refresh_lease_holder`, `refresh_lease_until`) taken by compare-and-set so exactly one instance
//! talks to the token endpoint at a time while the others poll and then use its result. A refresh
//! that failed leaves its OAuth error code (`last_error`, never a token) so waiters report it instead
//! of asking the token endpoint again.
//!
//! A lease instead of `pg_advisory_xact_lock`: the holder makes an HTTP call while holding it, and a
//! transaction (and a pooled connection) held open across that call would be worse than a row that
//! expires by itself if its holder dies.

use async_trait::async_trait;
use steward_types::{IntegrationId, Timestamp};

use crate::catalog::NewSecretVersion;
use crate::{EnvelopeRecord, StoreError};

/// A cached access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2TokenRecord {
    pub integration_id: IntegrationId,
    /// The secret version (refresh token or client secret) the token was obtained with.
    pub secret_version: u64,
    /// The sealed access token.
    pub access_token: EnvelopeRecord,
    /// When the token endpoint said it expires (`obtained_at + expires_in`); callers stop using it
    /// 60 s earlier.
    pub expires_at: Timestamp,
    pub obtained_at: Timestamp,
}

/// The row of one integration: its cached token (if any) and the refresh lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2TokenState {
    pub token: Option<OAuth2TokenRecord>,
    pub lease_holder: Option<String>,
    pub lease_until: Option<Timestamp>,
    /// The OAuth error code of the last failed refresh (cleared by a successful one).
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
}

/// What [`OAuth2Store::store_oauth2_token`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreTokenOutcome {
    /// The token (and the rotated secret version, when given) is stored; the lease is released.
    Stored,
    /// The rotated secret version's number is taken (an admin wrote a new secret meanwhile): nothing
    /// was stored, the lease is released.
    SecretVersionTaken,
    /// The integration is missing or deleted: nothing was stored.
    IntegrationGone,
}

#[async_trait]
pub trait OAuth2Store: Send + Sync {
    /// The integration's row, or `None` when no token was ever cached nor lease taken.
    async fn oauth2_token_state(
        &self,
        integration_id: &IntegrationId,
    ) -> Result<Option<OAuth2TokenState>, StoreError>;

    /// Takes the refresh lease until `until` when it is free, expired (`<= now`) or already `holder`'s.
    /// Returns whether `holder` holds it now.
    async fn take_oauth2_refresh_lease(
        &self,
        integration_id: &IntegrationId,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Releases `holder`'s lease (a no-op when someone else holds it), recording `error` (an OAuth
    /// error code) when the refresh failed.
    async fn release_oauth2_refresh_lease(
        &self,
        integration_id: &IntegrationId,
        holder: &str,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// In one transaction: the rotated refresh token as a new secret version (when given; its number
    /// must be the next one), the new access token (the previous one crypto-shredded), the lease
    /// released if `holder` has it, and the last error cleared.
    async fn store_oauth2_token(
        &self,
        token: &OAuth2TokenRecord,
        holder: &str,
        rotated: Option<&NewSecretVersion>,
    ) -> Result<StoreTokenOutcome, StoreError>;

    /// Drops the cached token if it is still the one sealed in `envelope_id` (a newer one obtained
    /// meanwhile is kept), shredding its envelope. Returns whether it was dropped.
    async fn drop_oauth2_token(
        &self,
        integration_id: &IntegrationId,
        envelope_id: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
}
