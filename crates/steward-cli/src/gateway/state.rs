//! The gateway's link to Steward: the [`BrokerClient`] (rebuilt when the certificate is renewed or
//! DPoP turns out to be required), the route table from the last verified manifest, and the
//! maintenance loop that refreshes both.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::json;
use steward_client::{BrokerClient, ClientError, Identity};
use steward_types::{Clock, SystemClock};

use super::log;
use super::routes::RouteTable;

/// How often the certificate's remaining lifetime is checked.
const RENEW_CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// After a failed manifest refresh, the next try (the last verified routes stay in use meanwhile).
const MANIFEST_RETRY: Duration = Duration::from_secs(10);
/// The server's backdating of `notBefore`, subtracted when asking for the same lifetime again.
const CERT_BACKDATE_SECONDS: i64 = 300;

#[derive(Debug)]
pub struct BrokerState {
    broker_url: String,
    workload_id: String,
    dpop: AtomicBool,
    identity: RwLock<Identity>,
    client: RwLock<Arc<BrokerClient>>,
    routes: RwLock<Arc<RouteTable>>,
}

fn build_client(broker_url: &str, identity: &Identity, dpop: bool) -> Result<BrokerClient, ClientError> {
    let key = if dpop { Some(identity.dpop_key()?) } else { None };
    BrokerClient::new(broker_url, identity, key)
}

impl BrokerState {
    /// Loads the identity, renews the certificate when it is due, fetches and verifies the manifest.
    /// Returns the state and the manifest's lifetime (the refresh interval).
    pub async fn connect(
        identity_dir: PathBuf,
        broker_url: &str,
        dpop: bool,
    ) -> Result<(Arc<Self>, Duration), ClientError> {
        let identity = Identity::load(&identity_dir)?;
        let workload_id = identity.workload_id()?;
        let client = build_client(broker_url, &identity, dpop)?;
        let state = Arc::new(Self {
            broker_url: broker_url.to_owned(),
            workload_id,
            dpop: AtomicBool::new(dpop),
            identity: RwLock::new(identity),
            client: RwLock::new(Arc::new(client)),
            routes: RwLock::new(Arc::new(RouteTable::default())),
        });
        state.renew_if_due().await?;
        let ttl = match state.refresh_manifest().await {
            // The workload (or its tenant) requires DPoP: switch to bound sessions and try again.
            Err(ClientError::Broker { code, .. })
                if !dpop && (code == "dpop_missing" || code == "session_dpop_required") =>
            {
                log::info("steward requires DPoP for this workload; using DPoP-bound sessions", json!({}));
                state.set_dpop()?;
                state.refresh_manifest().await?
            }
            other => other?,
        };
        Ok((state, ttl))
    }

    pub fn client(&self) -> Arc<BrokerClient> {
        self.client.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn routes(&self) -> Arc<RouteTable> {
        self.routes.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn dpop(&self) -> bool {
        self.dpop.load(Ordering::Relaxed)
    }

    fn replace_client(&self, identity: &Identity) -> Result<(), ClientError> {
        let client = build_client(&self.broker_url, identity, self.dpop())?;
        *self.client.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(client);
        Ok(())
    }

    fn set_dpop(&self) -> Result<(), ClientError> {
        self.dpop.store(true, Ordering::Relaxed);
        let identity = self.identity.read().unwrap_or_else(|e| e.into_inner()).clone();
        self.replace_client(&identity)
    }

    /// Fetches and verifies the manifest, rebuilds the routes; returns the manifest's lifetime.
    /// A manifest without rules (`manifest_no_rules`) means no routes.
    pub async fn refresh_manifest(&self) -> Result<Duration, ClientError> {
        let manifest = match self.client().manifest(&self.workload_id).await {
            Ok(manifest) => manifest,
            Err(ClientError::Broker { code, .. }) if code == "manifest_no_rules" => {
                *self.routes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(RouteTable::default());
                log::warn("the workload has no integration (manifest_no_rules): no routes", json!({}));
                return Ok(Duration::from_secs(60));
            }
            Err(error) => return Err(error),
        };
        if manifest.dpop_required && !self.dpop() {
            log::info("the manifest requires DPoP; using DPoP-bound sessions", json!({}));
            self.set_dpop()?;
        }
        let ttl = manifest.issued_at.seconds_until(manifest.expires_at).clamp(30, 300);
        let routes = RouteTable::from_manifest(&manifest);
        log::info(
            "manifest verified; routes rebuilt",
            json!({"integrations": routes.integrations.iter().map(|i| &i.name).collect::<Vec<_>>(),
                   "ttl_seconds": ttl}),
        );
        *self.routes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(routes);
        Ok(Duration::from_secs(u64::try_from(ttl).unwrap_or(300)))
    }

    /// Renews the certificate through `/v1/enroll/renew` when less than a third of its lifetime is
    /// left, asking for the same lifetime; the new certificate is written to the identity directory
    /// and a new client (with a new session, bound to the new certificate) replaces the old one.
    pub async fn renew_if_due(&self) -> Result<(), ClientError> {
        let identity = self.identity.read().unwrap_or_else(|e| e.into_inner()).clone();
        let (not_before, not_after) = identity.certificate_validity()?;
        let now = SystemClock.now().unix_seconds();
        let lifetime = not_after - not_before;
        if (not_after - now) * 3 >= lifetime {
            return Ok(());
        }
        let ttl = u64::try_from((lifetime - CERT_BACKDATE_SECONDS).max(60)).unwrap_or(60);
        let client = self.client();
        let renewed = match steward_client::enroll::renew(&client, &identity, Some(ttl)).await {
            Err(ClientError::Broker { code, .. }) if code == "requested_ttl_exceeds_max" => {
                steward_client::enroll::renew(&client, &identity, None).await
            }
            other => other,
        };
        let (identity, enrolled) = renewed?;
        self.replace_client(&identity)?;
        *self.identity.write().unwrap_or_else(|e| e.into_inner()) = identity;
        log::info(
            "certificate renewed",
            json!({"serial": enrolled.serial, "expires_at": enrolled.expires_at}),
        );
        Ok(())
    }

    /// Refreshes the manifest every `ttl` and checks the certificate every 30 s, until dropped.
    pub async fn maintain(self: Arc<Self>, mut ttl: Duration) {
        let mut next_manifest = tokio::time::Instant::now() + ttl;
        loop {
            let wake = next_manifest.min(tokio::time::Instant::now() + RENEW_CHECK_INTERVAL);
            tokio::time::sleep_until(wake).await;
            if let Err(error) = self.renew_if_due().await {
                log::warn("certificate renewal failed; retrying", json!({"error": error.to_string()}));
            }
            if tokio::time::Instant::now() >= next_manifest {
                match self.refresh_manifest().await {
                    Ok(new_ttl) => ttl = new_ttl,
                    Err(error) => {
                        log::warn(
                            "manifest refresh failed; keeping the last verified routes",
                            json!({"error": error.to_string()}),
                        );
                        next_manifest = tokio::time::Instant::now() + MANIFEST_RETRY;
                        continue;
                    }
                }
                next_manifest = tokio::time::Instant::now() + ttl;
            }
        }
    }
}
