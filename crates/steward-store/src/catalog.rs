//! The CatalogStore part of the storage API: template versions, integrations with their secret
//! versions (host and injection binding, crypto-shredding) and policies.
//! Implemented once for both backends by `sql::catalog::impl_catalog_store!`; tested by the shared
//! conformance suite (`tests/it/catalog_conformance.rs`).
//!
//! The store decides nothing about what a template or a rule *means*: it keeps their JSON as given
//! (already validated by `steward-canon` / `steward-policy`) and enforces only what needs a
//! transaction — version immutability, name uniqueness, one secret version at a time, shredding.

use async_trait::async_trait;
use serde_json::Value;
use steward_types::{IntegrationId, PolicyId, TenantId, Timestamp, WorkloadId};

use crate::{EnvelopeRecord, StoreError};

/// One published template version. `owner` is a tenant id or `global`; `body` the canonical (JCS)
/// JSON of the template as published, so two bodies are identical exactly when the strings are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateVersionRecord {
    pub owner: String,
    pub template_id: String,
    pub version: u64,
    pub provider: String,
    pub body: String,
    pub created_at: Timestamp,
}

/// What [`CatalogStore::publish_template`] did, in the spec's order of checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    Published,
    /// The same version with an identical body already exists (409 `template_version_exists`).
    VersionExists,
    /// The same version exists with a different body (409 `template_version_immutable`).
    VersionImmutable,
    /// The version is not higher than `latest` (400 `template_version_not_incremented`).
    NotIncremented {
        latest: u64,
    },
    /// Earlier versions name another provider (400 `template_provider_mismatch`).
    ProviderMismatch {
        provider: String,
    },
}

/// An integration as stored, with a summary of its current secret version (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationRecord {
    pub integration_id: IntegrationId,
    pub tenant_id: TenantId,
    pub name: String,
    pub provider: String,
    /// The tenant id or `global` whose template this integration is bound to.
    pub template_owner: String,
    pub template_id: String,
    /// `None`: follows the owner's latest version.
    pub template_version: Option<u64>,
    /// The integration's own injection, or `None` for the template's default.
    pub injection: Option<Value>,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Set when the integration was deleted (disabled for good, secrets shredded).
    pub deleted_at: Option<Timestamp>,
    /// The newest secret version (0 when none is left).
    pub secret_version: u64,
    pub secret_updated_at: Option<Timestamp>,
    pub bound_hosts: Vec<String>,
    /// The injection the newest secret version was written for (`None`: no secret, or a version
    /// written without one, which is never sent).
    pub bound_injection: Option<Value>,
}

/// A secret version to write: the sealed secret, what it may be sent to, and the OAuth2 settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSecretVersion {
    /// Chosen by the caller (the envelope's AAD names it); the store refuses a taken number with
    /// [`StoreError::Conflict`].
    pub version: u64,
    /// `api_key`, `oauth2_refresh_token` or `oauth2_client_credentials`.
    pub secret_type: String,
    pub envelope: EnvelopeRecord,
    /// The hosts this secret may ever be sent to.
    pub bound_hosts: Vec<String>,
    /// The injection (its JSON) this secret may ever be sent with: the effective one when it was
    /// written (the integration's, else the template's default, else bearer; bearer for OAuth2).
    pub bound_injection: Value,
    /// The `oauth2` block without its client secret.
    pub oauth2: Option<Value>,
    /// The OAuth2 client secret, sealed on its own.
    pub client_secret: Option<EnvelopeRecord>,
    pub created_at: Timestamp,
}

/// The current secret of an integration, as the execute pipeline needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersionRecord {
    pub integration_id: IntegrationId,
    pub version: u64,
    pub secret_type: String,
    pub envelope: EnvelopeRecord,
    pub bound_hosts: Vec<String>,
    /// `None` for a version written without one (by an instance older than migration 0008).
    pub bound_injection: Option<Value>,
    pub oauth2: Option<Value>,
    pub client_secret: Option<EnvelopeRecord>,
    pub created_at: Timestamp,
}

/// What [`CatalogStore::create_integration`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateIntegrationOutcome {
    Created,
    /// The tenant already has an integration of that name (409 `integration_name_conflict`).
    NameConflict,
}

/// A PATCH of an integration: `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntegrationPatch {
    pub enabled: Option<bool>,
    /// `Some(None)` removes the pin.
    pub template_version: Option<Option<u64>>,
    /// `Some(None)` falls back to the template's default injection.
    pub injection: Option<Option<Value>>,
}

/// A policy rule as stored. `rule` is the whole validated rule JSON; the scope columns are copies
/// for matching and filtering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    pub policy_id: PolicyId,
    pub tenant_id: TenantId,
    pub integration_id: IntegrationId,
    pub action_group: String,
    pub method: String,
    pub host: String,
    pub workload_id: Option<WorkloadId>,
    pub rule_type: String,
    pub rule: Value,
    pub created_at: Timestamp,
    /// Set when the rule was deleted; a disabled rule never matches and is kept for audit.
    pub disabled_at: Option<Timestamp>,
}

/// Which policies [`CatalogStore::list_policies`] returns (active ones only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyFilter {
    /// Only these tenants (`None`: every tenant).
    pub tenant_ids: Option<Vec<TenantId>>,
    pub integration_id: Option<IntegrationId>,
}

#[async_trait]
pub trait CatalogStore: Send + Sync {
    // ----- templates ------------------------------------------------------------------------------

    /// Publishes a template version atomically, applying the immutability rules in the spec's
    /// order. A concurrent publish of the same version loses with [`StoreError::Conflict`].
    async fn publish_template(&self, record: &TemplateVersionRecord) -> Result<PublishOutcome, StoreError>;

    /// One version of `owner`'s template `template_id`, or its latest when `version` is `None`.
    async fn template_version(
        &self,
        owner: &str,
        template_id: &str,
        version: Option<u64>,
    ) -> Result<Option<TemplateVersionRecord>, StoreError>;

    /// The latest version of every template of these owners (every owner when `None`), ordered by
    /// owner and id.
    async fn list_latest_templates(
        &self,
        owners: Option<&[String]>,
    ) -> Result<Vec<TemplateVersionRecord>, StoreError>;

    // ----- integrations ---------------------------------------------------------------------------

    /// Whether a tenant row exists (integrations and policies reference one).
    async fn catalog_tenant_exists(&self, tenant_id: &TenantId) -> Result<bool, StoreError>;

    /// Creates an integration with its first secret version in one transaction. The record's
    /// secret summary fields are ignored.
    async fn create_integration(
        &self,
        integration: &IntegrationRecord,
        secret: &NewSecretVersion,
    ) -> Result<CreateIntegrationOutcome, StoreError>;

    async fn integration(
        &self,
        integration_id: &IntegrationId,
    ) -> Result<Option<IntegrationRecord>, StoreError>;

    /// The integrations of these tenants (every tenant when `None`), in creation order.
    async fn list_integrations(
        &self,
        tenant_ids: Option<&[TenantId]>,
    ) -> Result<Vec<IntegrationRecord>, StoreError>;

    /// Applies a patch to a live (not deleted) integration; `None` when there is none.
    async fn update_integration(
        &self,
        integration_id: &IntegrationId,
        patch: &IntegrationPatch,
        now: Timestamp,
    ) -> Result<Option<IntegrationRecord>, StoreError>;

    /// Adds a secret version to a live integration; `false` when it is missing or deleted. A taken
    /// version number → [`StoreError::Conflict`] (a concurrent write won; the caller retries).
    async fn add_secret_version(
        &self,
        integration_id: &IntegrationId,
        secret: &NewSecretVersion,
    ) -> Result<bool, StoreError>;

    /// The newest secret version whose ciphertext still exists, or `None`.
    async fn current_secret(
        &self,
        integration_id: &IntegrationId,
    ) -> Result<Option<SecretVersionRecord>, StoreError>;

    /// Deletes an integration for good in one transaction: disabled, `deleted_at` set, and every
    /// envelope of its secret versions crypto-shredded (body wiped, `destroyed_at` set); rows are kept.
    /// `false` when it is missing or already deleted.
    async fn delete_integration(
        &self,
        integration_id: &IntegrationId,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    // ----- policies -------------------------------------------------------------------------------

    async fn insert_policy(&self, policy: &PolicyRecord) -> Result<(), StoreError>;

    async fn policy(&self, policy_id: &PolicyId) -> Result<Option<PolicyRecord>, StoreError>;

    /// Active policies matching the filter, in creation order.
    async fn list_policies(&self, filter: &PolicyFilter) -> Result<Vec<PolicyRecord>, StoreError>;

    /// The active rules of one (tenant, integration, action group), for evaluation.
    async fn active_policies(
        &self,
        tenant_id: &TenantId,
        integration_id: &IntegrationId,
        action_group: &str,
    ) -> Result<Vec<PolicyRecord>, StoreError>;

    /// Disables a rule (kept for audit); `false` when it is missing or already disabled.
    async fn disable_policy(&self, policy_id: &PolicyId, now: Timestamp) -> Result<bool, StoreError>;
}
