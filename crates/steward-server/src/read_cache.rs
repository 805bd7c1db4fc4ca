//! The data plane's read cache (issue 8, `docs/decisions/0004-read-cache.md`): the read-mostly
//! records every request needs — session, certificate, workload, tenant, integration, template
//! version, current secret, compiled policy set, "any approved `once` approval?" — kept in process so
//! a request does not pay a store round trip for each.
//!
//! Freshness (the spec's 1 s bound for disabling, revocation, allowlist, policy and template changes):
//!
//! - Every such change moves the store's change counter in the same transaction (triggers, see
//!   migration 0006). A poller reads the counter every [`POLL_EVERY`]; when it moved, everything is
//!   dropped. Entries are only served while the last successful poll *started* less than
//!   [`SERVE_FOR`] ago, so whatever is served reflects every change committed more than `SERVE_FOR`
//!   (< 1 s) earlier. When the store does not answer, the cache stops serving and every read goes to
//!   the store (which fails closed on its own).
//! - A load that started before a drop is not kept (a generation number), so a record read before a
//!   change cannot be cached after it.
//! - Changes made through this instance drop the cache at once ([`ReadCache::invalidate`]), so they
//!   are in force at this instance's next request.
//!
//! Only records that were found are cached (a new session is never hidden by a cached "not found"),
//! time-dependent checks (expiry) are still made by the callers on every request, and plaintext
//! secrets are never cached (only the sealed envelope of an API key's current version).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use steward_policy::CompiledPolicySet;
use steward_store::catalog::{IntegrationRecord, SecretVersionRecord, TemplateVersionRecord};
use steward_store::{CertificateRecord, SessionRecord, Store, StoreError, TenantRecord, WorkloadRecord};
use steward_types::{IntegrationId, TenantId, WorkloadId};

/// How often the change counter is read.
pub const POLL_EVERY: Duration = Duration::from_millis(250);
/// How long after the start of the last successful poll entries may still be served. With the
/// poll's own duration this keeps every answer within the spec's 1 s of the store.
pub const SERVE_FOR: Duration = Duration::from_millis(750);
/// Entries kept per kind of record; when full, an arbitrary entry makes room.
pub const CAPACITY_PER_KIND: usize = 16_384;

type PolicyKey = (String, String, String);

#[derive(Debug, Default)]
struct Entries {
    // Only `Some` is ever kept; the `Option` is the store's answer as it came.
    sessions: HashMap<[u8; 32], Option<SessionRecord>>,
    workloads: HashMap<WorkloadId, Option<WorkloadRecord>>,
    certificates: HashMap<String, Option<CertificateRecord>>,
    tenants: HashMap<TenantId, Option<TenantRecord>>,
    integrations: HashMap<IntegrationId, Option<IntegrationRecord>>,
    templates: HashMap<(String, String, Option<u64>), Option<TemplateVersionRecord>>,
    secrets: HashMap<IntegrationId, Option<SecretVersionRecord>>,
    policies: HashMap<PolicyKey, Arc<CompiledPolicySet>>,
    approved_once: HashMap<(TenantId, WorkloadId, IntegrationId), bool>,
}

#[derive(Debug, Default)]
struct State {
    /// Moves with every drop: a load that began under an older generation is not kept.
    generation: u64,
    /// The store's change counter when the entries were last dropped.
    counter: Option<i64>,
    /// Entries are served until then (start of the last successful poll + [`SERVE_FOR`]).
    serve_until: Option<Instant>,
    entries: Entries,
}

impl State {
    fn serving(&self, now: Instant) -> bool {
        self.serve_until.is_some_and(|until| now < until)
    }

    fn drop_entries(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.entries = Entries::default();
    }
}

/// The per-instance read cache. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct ReadCache {
    store: Arc<dyn Store>,
    state: Mutex<State>,
}

impl ReadCache {
    /// An empty cache that serves nothing until [`ReadCache::poll`] first succeeds.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, state: Mutex::new(State::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the change counter once: drops everything when it moved, and lets entries be served
    /// for [`SERVE_FOR`] from the start of this poll. A failed read changes nothing (so serving
    /// stops when `SERVE_FOR` runs out).
    pub async fn poll(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        let counter = self.store.change_counter().await?;
        let mut state = self.lock();
        if state.counter != Some(counter) {
            if state.counter.is_some() {
                metrics::counter!("steward_read_cache_drops_total").increment(1);
            }
            state.drop_entries();
            state.counter = Some(counter);
        }
        let until = started + SERVE_FOR;
        if state.serve_until.is_none_or(|current| current < until) {
            state.serve_until = Some(until);
        }
        Ok(())
    }

    /// Polls every [`POLL_EVERY`] until the task is aborted.
    pub async fn run_poller(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(POLL_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            ticker.tick().await;
            match tokio::time::timeout(SERVE_FOR, self.poll()).await {
                Ok(Ok(())) => {
                    if failing {
                        tracing::info!("The read cache's change counter answers again; caching resumes.");
                    }
                    failing = false;
                }
                Ok(Err(error)) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "The change counter could not be read; every request reads the store until it can.");
                }
                Err(_) if !failing => {
                    failing = true;
                    tracing::warn!(
                        "The change counter did not answer in time; every request reads the store until it does."
                    );
                }
                _ => {}
            }
        }
    }

    /// Drops everything now: called after a change made through this instance, so that it is in
    /// force at this instance's next request.
    pub fn invalidate(&self) {
        self.lock().drop_entries();
    }

    /// The cached value of `key` in the map `kind` selects, else `load`'s answer — kept when `keep`
    /// allows it and nothing was dropped while it loaded.
    async fn get_or_load<K, V, E, Fut>(
        &self,
        kind: fn(&mut Entries) -> &mut HashMap<K, V>,
        key: K,
        keep: fn(&V) -> bool,
        load: impl FnOnce() -> Fut,
    ) -> Result<V, E>
    where
        K: Hash + Eq + Clone,
        V: Clone,
        Fut: Future<Output = Result<V, E>>,
    {
        let generation = {
            let mut state = self.lock();
            if !state.serving(Instant::now()) {
                None
            } else if let Some(value) = kind(&mut state.entries).get(&key) {
                return Ok(value.clone());
            } else {
                Some(state.generation)
            }
        };
        let loaded = load().await?;
        if let Some(generation) = generation
            && keep(&loaded)
        {
            let mut state = self.lock();
            if state.generation == generation && state.serving(Instant::now()) {
                insert_bounded(kind(&mut state.entries), CAPACITY_PER_KIND, key, loaded.clone());
            }
        }
        Ok(loaded)
    }

    pub async fn session_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError> {
        self.get_or_load(
            |e| &mut e.sessions,
            *token_hash,
            Option::is_some,
            || self.store.session_by_hash(token_hash),
        )
        .await
    }

    pub async fn workload(&self, workload_id: &WorkloadId) -> Result<Option<WorkloadRecord>, StoreError> {
        self.get_or_load(
            |e| &mut e.workloads,
            workload_id.clone(),
            Option::is_some,
            || self.store.workload(workload_id),
        )
        .await
    }

    pub async fn certificate_by_thumbprint(
        &self,
        thumbprint: &str,
    ) -> Result<Option<CertificateRecord>, StoreError> {
        self.get_or_load(
            |e| &mut e.certificates,
            thumbprint.to_owned(),
            Option::is_some,
            || self.store.certificate_by_thumbprint(thumbprint),
        )
        .await
    }

    pub async fn tenant(&self, tenant_id: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        self.get_or_load(
            |e| &mut e.tenants,
            tenant_id.clone(),
            Option::is_some,
            || self.store.tenant(tenant_id),
        )
        .await
    }

    pub async fn integration(
        &self,
        integration_id: &IntegrationId,
    ) -> Result<Option<IntegrationRecord>, StoreError> {
        self.get_or_load(
            |e| &mut e.integrations,
            integration_id.clone(),
            Option::is_some,
            || self.store.integration(integration_id),
        )
        .await
    }

    /// A template version, or the owner's latest for `None` (a new version moves the counter).
    pub async fn template_version(
        &self,
        owner: &str,
        template_id: &str,
        version: Option<u64>,
    ) -> Result<Option<TemplateVersionRecord>, StoreError> {
        let key = (owner.to_owned(), template_id.to_owned(), version);
        self.get_or_load(
            |e| &mut e.templates,
            key,
            Option::is_some,
            || self.store.template_version(owner, template_id, version),
        )
        .await
    }

    /// The integration's current secret version. Only API keys are kept: an OAuth2 refresh token can
    /// be rotated by any instance's refresh, which must always start from the stored one.
    pub async fn current_secret(
        &self,
        integration_id: &IntegrationId,
    ) -> Result<Option<SecretVersionRecord>, StoreError> {
        self.get_or_load(
            |e| &mut e.secrets,
            integration_id.clone(),
            |record| record.as_ref().is_some_and(|r| r.secret_type == "api_key"),
            || self.store.current_secret(integration_id),
        )
        .await
    }

    /// The compiled active rules of (tenant, integration, action group); `compile` reads and
    /// compiles them on a miss (its errors are not kept).
    pub async fn policies<E, Fut>(
        &self,
        (tenant_id, integration_id, action_group): (&str, &str, &str),
        compile: impl FnOnce() -> Fut,
    ) -> Result<Arc<CompiledPolicySet>, E>
    where
        Fut: Future<Output = Result<Arc<CompiledPolicySet>, E>>,
    {
        let key = (tenant_id.to_owned(), integration_id.to_owned(), action_group.to_owned());
        self.get_or_load(|e| &mut e.policies, key, |_| true, compile).await
    }

    /// Whether (tenant, workload, integration) has any approved, unconsumed, unexpired `once`
    /// approval. A cached `false` can be up to [`SERVE_FOR`] old: callers check the store again
    /// before acting on the absence in a way a person would notice (asking for a new approval).
    pub async fn has_approved_once(
        &self,
        tenant_id: &TenantId,
        workload_id: &WorkloadId,
        integration_id: &IntegrationId,
        now: steward_types::Timestamp,
    ) -> Result<bool, StoreError> {
        let key = (tenant_id.clone(), workload_id.clone(), integration_id.clone());
        self.get_or_load(
            |e| &mut e.approved_once,
            key,
            |_| true,
            || self.store.has_approved_once(tenant_id, workload_id, integration_id, now),
        )
        .await
    }
}

/// Inserts `key`, first evicting an arbitrary other entry when `map` already holds `capacity`.
pub(crate) fn insert_bounded<K: std::hash::Hash + Eq + Clone, V>(
    map: &mut HashMap<K, V>,
    capacity: usize,
    key: K,
    value: V,
) {
    if map.len() >= capacity
        && !map.contains_key(&key)
        && let Some(victim) = map.keys().next().cloned()
    {
        map.remove(&victim);
    }
    map.insert(key, value);
}
