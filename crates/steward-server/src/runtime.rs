//! Serving: both listeners, SIGHUP reloads (TLS files and the keyring file), and a graceful stop —
//! stop accepting, finish in-flight requests (up to 20 s), write the final audit checkpoint.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use steward_crypto::{Keyring, KeyringSource};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::exit::StartupError;
use crate::listener::{ServeOptions, Transport, serve_with};
use crate::routes;
use crate::startup::Prepared;
use crate::tls;

/// Serves until `shutdown` completes, then drains and writes the final checkpoint.
/// What `steward serve` does once its configuration is loaded: logging, start-up checks, then serving
/// until SIGTERM or SIGINT. The load harness's Steward child runs exactly this too.
pub async fn serve_until_terminated(
    loaded: crate::config::LoadedConfig,
    env: &crate::startup::Environment,
    clock: steward_types::SharedClock,
) -> Result<(), StartupError> {
    crate::observability::init_logging(&loaded.config.log);
    let prepared = crate::startup::prepare(loaded, env, clock).await?;
    run(prepared, termination_signal()).await
}

pub async fn run(prepared: Prepared, shutdown: impl Future<Output = ()>) -> Result<(), StartupError> {
    let Prepared { state, data_listener, admin_listener, data_cert, admin_cert, keyring_source, kek_file } =
        prepared;
    let data_tls = tls::data_plane_config(&state.ca_pem, Arc::clone(&data_cert))
        .map_err(|e| StartupError::environment(format!("data plane TLS: {e}")))?;
    let admin_transport = match &admin_cert {
        Some(cert) => Transport::Tls(TlsAcceptor::from(Arc::new(
            tls::admin_config(Arc::clone(cert))
                .map_err(|e| StartupError::environment(format!("admin TLS: {e}")))?,
        ))),
        None => Transport::Plain,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    tracing::info!(
        event = "started",
        data_plane = %data_listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        admin = %admin_listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        backend = state.store.backend(),
        proxy_protocol = state.config.data_plane.proxy_protocol,
        header_read_timeout_ms = state.config.data_plane.header_read_timeout_ms,
        idle_timeout_ms = state.config.data_plane.idle_timeout_ms,
        max_connections_per_ip = state.config.data_plane.max_connections_per_ip,
        "Steward is serving."
    );
    if let Ok(addr) = admin_listener.local_addr() {
        let url = crate::console::url(addr, admin_cert.is_some());
        tracing::info!(event = "console", %url, "Web console: open {url} and sign in with an admin token.");
    }
    // The admin listener takes the data plane's connection limits and timeouts, without PROXY protocol.
    let data_options = ServeOptions::from_config(&state.config.data_plane);
    let admin_options = ServeOptions { proxy_protocol: false, ..data_options };
    let data_task = tokio::spawn(serve_with(
        "data_plane",
        data_listener,
        Transport::Tls(TlsAcceptor::from(Arc::new(data_tls))),
        routes::data_plane(state.clone()),
        data_options,
        stop_rx.clone(),
    ));
    let admin_task = tokio::spawn(serve_with(
        "admin",
        admin_listener,
        admin_transport,
        routes::admin(state.clone()),
        admin_options,
        stop_rx,
    ));

    let reload_state = state.clone();
    let reload_task = tokio::spawn(async move {
        let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            return;
        };
        while hangups.recv().await.is_some() {
            reload(&reload_state, &data_cert, admin_cert.as_deref(), &keyring_source, &kek_file);
        }
    });

    let key_task = tokio::spawn(manifest_key_maintenance(state.clone()));
    let cache_task = tokio::spawn(Arc::clone(&state.reads).run_poller());
    let metrics_task = tokio::spawn(metrics_upkeep(state.metrics.clone()));

    shutdown.await;
    tracing::info!(event = "stopping", "Stopping: no new connections; finishing in-flight requests.");
    let _ = stop_tx.send(true);
    let _ = data_task.await;
    let _ = admin_task.await;
    reload_task.abort();
    key_task.abort();
    cache_task.abort();
    metrics_task.abort();
    if let Err(error) = state.audit.shutdown().await {
        tracing::error!(%error, "The final audit checkpoint could not be written.");
        return Err(StartupError::failure(format!("final audit checkpoint: {error}")));
    }
    tracing::info!(event = "stopped", "Steward stopped; final audit checkpoint written.");
    Ok(())
}

/// How often histogram samples are folded into the Prometheus recorder's summaries.
pub const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// The recorder keeps every histogram sample until it is folded into its summary, which happens on
/// `/metrics` and on upkeep: without this task a process nobody scrapes grows by every request's
/// latency samples (measured: ~50 bytes per request, `docs/performance.md`).
async fn metrics_upkeep(handle: metrics_exporter_prometheus::PrometheusHandle) {
    let mut ticker = tokio::time::interval(METRICS_UPKEEP);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        handle.run_upkeep();
    }
}

/// How often this instance checks whether the manifest signing key is due for automatic rotation.
pub const KEY_ROTATION_CHECK: Duration = Duration::from_secs(3600);

/// Keeps the manifest signing key current: every 30 s the store's active key is re-read (so a
/// rotation made by another instance reaches manifests and audit checkpoints within 30 s), and every
/// hour — first right after start — the key is rotated if it is `manifest.key_rotation_days` old.
/// Whichever instance takes the store's rotation lock first rotates; the others find a young key.
async fn manifest_key_maintenance(state: crate::services::state::AppState) {
    let refresh_every = Duration::from_secs(crate::services::keys::SIGNING_KEY_CACHE_SECONDS.unsigned_abs());
    let mut refresh = tokio::time::interval(refresh_every);
    let mut rotation = tokio::time::interval(KEY_ROTATION_CHECK);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    rotation.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = refresh.tick() => {
                if let Err(error) = state.signing_key.refresh(&state).await {
                    tracing::warn!(%error, "Could not re-read the active manifest signing key; keeping the current one.");
                }
            }
            _ = rotation.tick() => {
                match crate::services::keys::rotate_manifest_key_if_due(&state).await {
                    Ok(_) => {}
                    Err(error) => tracing::error!(%error, "Automatic manifest key rotation failed; it is retried within the hour."),
                }
            }
        }
    }
}

/// SIGHUP: re-read TLS files and the keyring file. A file that fails to load leaves the current
/// value in place (logged at ERROR: an operator must act).
fn reload(
    state: &crate::services::state::AppState,
    data_cert: &tls::ReloadableCert,
    admin_cert: Option<&tls::ReloadableCert>,
    keyring_source: &KeyringSource,
    kek_file: &std::path::Path,
) {
    match data_cert.reload() {
        Ok(()) => tracing::info!(
            event = "reloaded",
            what = "data_plane_tls",
            "Reloaded the data plane certificate."
        ),
        Err(error) => {
            tracing::error!(%error, "Could not reload the data plane certificate; keeping the old one.")
        }
    }
    if let Some(cert) = admin_cert {
        match cert.reload() {
            Ok(()) => {
                tracing::info!(event = "reloaded", what = "admin_tls", "Reloaded the admin certificate.")
            }
            Err(error) => {
                tracing::error!(%error, "Could not reload the admin certificate; keeping the old one.")
            }
        }
    }
    if matches!(keyring_source, KeyringSource::File { .. }) {
        match Keyring::load(None, kek_file) {
            Ok(loaded) => {
                state.keyring.store(Arc::new(loaded.keyring));
                tracing::info!(event = "reloaded", what = "keyring", "Reloaded the KEK keyring file.");
            }
            Err(error) => tracing::error!(%error, "Could not reload the KEK keyring; keeping the old one."),
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn termination_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
