//! The load's session, kept alive for runs longer than its TTL (issue 18: sessions last 900 s by
//! default, so a 30-minute run needs at least two). Every request factory reads the current token
//! from one [`SharedSession`] per request; a [`Refresher`] task asks the workload's
//! [`BrokerClient`] for its session every few seconds — the client opens a new one when the cached
//! one is within a minute of expiring, DPoP-bound with the same key when the workload's sessions
//! are — and swaps the new token in atomically. Requests already sent keep their old token, which
//! stays valid until its own expiry. Failed refreshes are counted (and retried at the next tick).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Serialize;
use steward_client::BrokerClient;

/// How often the refresher asks the client (cheap when no refresh is due: a mutex and a clock read).
pub const REFRESH_CHECK_EVERY: Duration = Duration::from_secs(5);

/// One session token and the `authorization` value that carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionToken {
    pub token: String,
    /// `Bearer <token>`, or `DPoP <token>` for a bound session.
    pub authorization: String,
    pub dpop_bound: bool,
}

impl SessionToken {
    pub fn new(token: String, dpop_bound: bool) -> Self {
        let scheme = if dpop_bound { "DPoP" } else { "Bearer" };
        Self { authorization: format!("{scheme} {token}"), token, dpop_bound }
    }
}

/// The current session of the load, shared by every load task; swapped as a whole.
#[derive(Debug)]
pub struct SharedSession {
    current: ArcSwap<SessionToken>,
    refreshes: AtomicU64,
    failures: AtomicU64,
}

/// What the refresher did during a run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RefreshStats {
    /// New sessions swapped in.
    pub refreshes: u64,
    /// Refresh attempts that failed (each is retried at the next check).
    pub failures: u64,
}

impl SharedSession {
    pub fn new(first: SessionToken) -> Self {
        Self {
            current: ArcSwap::from_pointee(first),
            refreshes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// The token to send now.
    pub fn current(&self) -> Arc<SessionToken> {
        self.current.load_full()
    }

    /// Swaps `next` in (a no-op when it is the current token); true when it was new.
    pub fn install(&self, next: SessionToken) -> bool {
        if self.current.load().token == next.token {
            return false;
        }
        self.current.store(Arc::new(next));
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        true
    }

    pub fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stats(&self) -> RefreshStats {
        RefreshStats {
            refreshes: self.refreshes.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

/// The background task that keeps a [`SharedSession`] fresh; stops when dropped.
#[derive(Debug)]
pub struct Refresher {
    task: tokio::task::JoinHandle<()>,
    shared: Arc<SharedSession>,
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Refresher {
    /// Checks every `every` (the first check one period after the start).
    pub fn spawn(client: Arc<BrokerClient>, shared: Arc<SharedSession>, every: Duration) -> Self {
        let sink = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                refresh_once(&client, &sink).await;
            }
        });
        Self { task, shared }
    }

    /// Stops the task and reports.
    pub fn finish(self) -> RefreshStats {
        self.task.abort();
        self.shared.stats()
    }
}

/// One check: the client's current session (renewed by the client when it is about to expire),
/// swapped in when it is a new one; a failure is counted. True when a new token was installed.
pub async fn refresh_once(client: &BrokerClient, shared: &SharedSession) -> bool {
    match current_token(client).await {
        Some(next) => shared.install(next),
        None => {
            shared.record_failure();
            false
        }
    }
}

/// Opens a new session now and swaps it in (a phase that cannot follow refreshes, like oha's, gets
/// a full TTL).
pub async fn renew_now(client: &BrokerClient, shared: &SharedSession) -> anyhow::Result<()> {
    client.reset_session().await;
    match current_token(client).await {
        Some(next) => {
            shared.install(next);
            Ok(())
        }
        None => {
            shared.record_failure();
            anyhow::bail!("opening a new session failed")
        }
    }
}

/// The client's session token (opening or renewing the session when due); `None` when that failed.
pub async fn current_token(client: &BrokerClient) -> Option<SessionToken> {
    let session = client.session().await.ok()?;
    // The token itself is only handed out through the client's export (it is kept zeroized).
    let exported = client.export_session().await?;
    let value: serde_json::Value = serde_json::from_str(exported.as_str()).ok()?;
    let token = value.get("session_token")?.as_str()?.to_owned();
    Some(SessionToken::new(token, session.dpop_jkt.is_some()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::json;
    use steward_server::startup::Environment;
    use steward_server::{config, runtime, startup};
    use steward_types::SystemClock;

    use super::*;
    use crate::admin::field;
    use crate::load::{self, Endpoint, RequestFactory, client_tls};
    use crate::steward::{self, ExecuteFactory, StewardOptions};
    use crate::{pki, upstream};

    #[test]
    fn a_swap_counts_only_a_new_token() {
        let shared = SharedSession::new(SessionToken::new("stw_sess_a".into(), false));
        assert_eq!(shared.current().authorization, "Bearer stw_sess_a");
        assert!(!shared.install(SessionToken::new("stw_sess_a".into(), false)));
        assert!(shared.install(SessionToken::new("stw_sess_b".into(), true)));
        assert_eq!(shared.current().authorization, "DPoP stw_sess_b");
        shared.record_failure();
        assert_eq!(shared.stats(), RefreshStats { refreshes: 1, failures: 1 });
    }

    /// A real Steward (in process) with the shortest session TTL it accepts (60 s, which is inside
    /// the client's one-minute renewal margin, so every check renews): the shared token is replaced,
    /// the load's next request carries the new one (with a proof bound to it for a DPoP session) and
    /// is executed; once Steward is gone, a check fails and is counted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_load_session_is_renewed_bearer_and_dpop_and_failures_are_counted() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let work = tempfile::tempdir().unwrap();
        let ca = pki::BenchCa::new().unwrap();
        let upstream = upstream::start(&ca.server_cert(&[upstream::UPSTREAM_HOST, "localhost"]).unwrap(), 64)
            .await
            .unwrap();
        let upstream_ca_file = work.path().join("upstream-ca.crt");
        std::fs::write(&upstream_ca_file, &ca.cert_pem).unwrap();
        let options = StewardOptions {
            postgres_url: None,
            redis_url: None,
            upstream_ca_file,
            seeded: None,
            session_ttl_seconds: Some(60),
        };
        let init = steward::initialize(work.path(), &options).await.unwrap();
        let env = Environment { vars: init.vars.clone() };
        let loaded = config::load(Some(&init.config_path), &env.vars).unwrap();
        let prepared = startup::prepare(loaded, &env, Arc::new(SystemClock)).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(runtime::run(prepared, async {
            let _ = stopped.await;
        }));
        let admin = init.admin().unwrap();
        let mut ready = false;
        for _ in 0..100 {
            if let Ok((200, _)) = admin.call("GET", "/readyz", None).await {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "Steward did not become ready");
        let setup = steward::setup(&admin, upstream.addr.port()).await.unwrap();

        let mut clients = Vec::new();
        for dpop in [false, true] {
            // One workload each (an enrollment token is used once).
            let created = admin
                .expect(
                    "POST",
                    &format!("/v1/tenants/{}/workloads", setup.tenant_id),
                    &json!({"name": format!("refresh-{dpop}")}),
                    201,
                )
                .await
                .unwrap();
            let mut setup = setup.clone();
            setup.enrollment_token = field(&created, "/enrollment_token").unwrap();
            let dir = work.path().join(format!("workload-{dpop}"));
            let workload =
                steward::enroll_and_open_session(&init.public_url, &setup, &dir, dpop).await.unwrap();
            let first = workload.session.current();
            assert_eq!(first.dpop_bound, dpop);

            let refresher = Refresher::spawn(
                Arc::clone(&workload.client),
                Arc::clone(&workload.session),
                Duration::from_millis(100),
            );
            let mut renewed = false;
            for _ in 0..100 {
                if workload.session.current().token != first.token {
                    renewed = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let stats = refresher.finish();
            assert!(renewed, "the session was not renewed (dpop {dpop}): {stats:?}");
            assert!(stats.refreshes >= 1 && stats.failures == 0, "{stats:?}");

            let factory = ExecuteFactory::new(
                &init.public_url,
                init.data_addr,
                upstream.addr.port(),
                &setup.integration_id,
                &workload,
                &[("allowed".to_owned(), 1)],
                64,
            )
            .unwrap();
            let current = workload.session.current();
            let (_, request) = factory.make(0).unwrap();
            assert_eq!(request.headers()["authorization"], current.authorization.as_str());
            assert_eq!(request.headers().contains_key("dpop"), dpop);
            let identity = &workload.identity;
            let endpoint = Endpoint {
                addr: init.data_addr,
                server_name: rustls_pki_types::ServerName::try_from("localhost").unwrap().to_owned(),
                tls: client_tls(&identity.ca_pem, Some((&identity.cert_pem, identity.key_pem.as_str())))
                    .unwrap(),
            };
            let mut sender = load::connect(&endpoint).await.unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.status(), 200, "execute with the renewed session (dpop {dpop})");
            clients.push(workload);
        }

        let _ = stop.send(());
        server.await.unwrap().unwrap();
        let workload = &clients[0];
        let before = workload.session.current();
        assert!(!refresh_once(&workload.client, &workload.session).await);
        assert_eq!(workload.session.stats().failures, 1);
        assert_eq!(workload.session.current(), before);
    }
}
