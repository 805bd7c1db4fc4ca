//! `steward gateway`: the local base-URL endpoint (`spec/gateway.md` §2). A loopback plain-HTTP
//! server holding the workload identity: `/{integration_name}/…` and `/_host/{host}/…` go to the
//! broker's forward mode with the workload's session; `/_steward/healthz` and `/_steward/env` are its
//! own. Every request but the health check needs the local token.
//!
//! Layout: `routes` (manifest → route table), `token` (the local capability), `state` (broker client,
//! manifest refresh, certificate renewal), `proxy` (one request), `server` (listener and graceful
//! shutdown), `reply` (error shape), `env` (`--print-env`), `log` (JSON lines on stderr).

mod env;
mod log;
mod proxy;
mod reply;
mod routes;
mod server;
mod state;
mod token;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use crate::workload::{BrokerUrl, broker_failure, resolve_broker_url, usage};
pub use token::LocalToken;

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// The workload identity directory (written by steward enroll).
    #[arg(long, env = "STEWARD_IDENTITY")]
    identity: PathBuf,
    /// The loopback address to listen on (plain HTTP).
    #[arg(long, default_value = "127.0.0.1:7777")]
    listen: SocketAddr,
    /// Hold a request that needs an approval up to this many seconds, then send it again once approved.
    #[arg(long, default_value_t = 0)]
    approval_wait: u64,
    /// Keep the local token in this file (read when it exists, else generated and written 0600).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Once listening, print the export lines for STEWARD_GATEWAY_*, OPENAI_* and ANTHROPIC_*.
    #[arg(long)]
    print_env: bool,
    /// Bind sessions to a DPoP key kept next to the identity.
    #[arg(long)]
    dpop: bool,
    /// Steward's data plane (default: <identity>/broker_url, written by steward enroll).
    #[arg(long, env = "STEWARD_BROKER_URL")]
    broker_url: Option<String>,
}

/// What one request handler needs.
#[derive(Debug)]
pub struct Gateway {
    /// `http://127.0.0.1:PORT`, as clients reach it.
    pub url: String,
    pub token: LocalToken,
    pub state: Arc<state::BrokerState>,
    pub approval_wait: Duration,
}

/// How to start a gateway (`steward gateway` and `steward run`).
#[derive(Debug)]
pub struct Options {
    pub identity: PathBuf,
    pub listen: SocketAddr,
    pub approval_wait: Duration,
    pub token: LocalToken,
    pub dpop: bool,
    pub broker: BrokerUrl,
}

/// A gateway listening in this process.
#[derive(Debug)]
pub struct Running {
    gateway: Arc<Gateway>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
    maintenance: tokio::task::JoinHandle<()>,
}

impl Running {
    /// The environment of `--print-env`, for the current routes.
    pub fn env(&self) -> Vec<(String, String)> {
        env::variables(&self.gateway.url, self.gateway.token.expose(), &self.gateway.state.routes())
    }

    /// Stops accepting, lets requests in flight finish (up to 30 s), stops the maintenance loop.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
        self.maintenance.abort();
    }
}

/// Connects to Steward (manifest verified, certificate renewed when due) and starts listening.
/// Failures are reported on stderr; the error is the exit code.
pub async fn start(options: Options) -> Result<Running, ExitCode> {
    if !options.listen.ip().is_loopback() {
        return Err(usage(&format!(
            "--listen {}: the gateway speaks plain HTTP and listens on loopback only (127.0.0.1 or ::1)",
            options.listen
        )));
    }
    let (state, ttl) = match state::BrokerState::connect(
        options.identity.clone(),
        &options.broker.url,
        options.dpop,
    )
    .await
    {
        Ok(connected) => connected,
        Err(error) => return Err(broker_failure(&error, Some(&options.broker))),
    };
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| usage(&format!("cannot listen on {}: {e}", options.listen)))?;
    let addr = listener.local_addr().map_err(|e| usage(&e.to_string()))?;
    let gateway = Arc::new(Gateway {
        url: format!("http://{addr}"),
        token: options.token,
        state: state.clone(),
        approval_wait: options.approval_wait,
    });
    log::info(
        "listening",
        json!({"url": gateway.url, "broker_url": options.broker.url, "dpop": state.dpop(),
               "approval_wait_seconds": options.approval_wait.as_secs()}),
    );
    let maintenance = tokio::spawn(state.maintain(ttl));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(listener, gateway.clone(), async move {
        let _ = stopped.await;
    }));
    Ok(Running { gateway, stop, server, maintenance })
}

/// SIGTERM or SIGINT.
pub async fn termination() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

pub async fn run(args: GatewayArgs) -> ExitCode {
    let token = match &args.token_file {
        Some(path) => match LocalToken::from_file(path) {
            Ok(token) => token,
            Err(message) => return usage(&message),
        },
        None => LocalToken::generate(),
    };
    let broker = resolve_broker_url(args.broker_url.as_deref(), &args.identity);
    let options = Options {
        identity: args.identity,
        listen: args.listen,
        approval_wait: Duration::from_secs(args.approval_wait),
        token,
        dpop: args.dpop,
        broker,
    };
    let running = match start(options).await {
        Ok(running) => running,
        Err(code) => return code,
    };
    if args.print_env {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(env::export_lines(&running.env()).as_bytes());
        let _ = stdout.flush();
    }
    termination().await;
    log::info("termination signal received", json!({}));
    running.stop().await;
    ExitCode::SUCCESS
}
