//! The state every handler shares: configuration, store, coordination, keys, audit writer, clock.

use std::ops::Deref;
use std::sync::Arc;

use arc_swap::ArcSwap;
use metrics_exporter_prometheus::PrometheusHandle;
use steward_coord::Coordinator;
use steward_crypto::Keyring;
use steward_store::Store;
use steward_store::audit::AuditWriter;
use steward_types::{SharedClock, Timestamp};

use crate::config::Config;
use crate::read_cache::ReadCache;
use crate::services::audit::AuditHmac;
use crate::services::execute::Egress;
use crate::services::execute::cache::{ScrubberCache, TemplateCache};
use crate::services::keys::ActiveSigningKey;

/// Cheap to clone: one `Arc`.
#[derive(Debug, Clone)]
pub struct AppState(Arc<AppStateInner>);

#[derive(Debug)]
pub struct AppStateInner {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub coord: Arc<dyn Coordinator>,
    /// The KEK keyring; replaced on SIGHUP when it comes from a file.
    pub keyring: Arc<ArcSwap<Keyring>>,
    pub audit: AuditWriter,
    pub clock: SharedClock,
    pub metrics: PrometheusHandle,
    /// The workload CA certificate (PEM), served to enrolling workloads.
    pub ca_pem: String,
    /// Whether the admin listener is bound to a loopback address (then `/metrics` needs no token).
    pub admin_is_loopback: bool,
    /// When this process started: DPoP proofs issued before it are refused in embedded mode.
    pub started_at: Timestamp,
    /// The active manifest signing key (cached at most 30 s), also used for audit checkpoints.
    pub signing_key: Arc<ActiveSigningKey>,
    /// The execute pipeline's way out: one resolver and one forwarder (with its pool) per process.
    pub egress: Arc<Egress>,
    /// The audit key, for the `hmac:<hex>` values of stored descriptors.
    pub audit_hmac: AuditHmac,
    /// Compiled templates by (owner, id, version), bounded.
    pub templates: TemplateCache,
    /// Built response scrubbers by keyed hash of their needles, bounded.
    pub scrubbers: ScrubberCache,
    /// The data plane's read cache, kept within 1 s of the store by its change counter.
    pub reads: Arc<ReadCache>,
}

impl AppState {
    pub fn new(inner: AppStateInner) -> Self {
        Self(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}
