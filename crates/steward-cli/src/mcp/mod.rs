//! `steward mcp` (`spec/mcp.md` §1): an MCP server on the workload side where each action group
//! the workload may call is a tool. Tools come from the verified manifest (re-fetched every
//! `manifest.ttl_seconds`); a call is an execute through Steward with the workload's identity.
//! Transports: stdio (default) and Streamable HTTP on loopback behind a local token.

mod call;
mod catalog;
mod http;
mod log;
mod server;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use rmcp::ServiceExt;
use steward_client::{BrokerClient, ClientError, Identity, Manifest};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use crate::workload::resolve_broker_url;
use catalog::Catalog;
use server::{Shared, StewardMcp};

/// After a failed manifest fetch, the next try comes this much later.
const MANIFEST_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Transport {
    Stdio,
    Http,
}

#[derive(Debug, Args)]
pub struct McpArgs {
    #[arg(long, env = "STEWARD_IDENTITY")]
    identity: PathBuf,
    /// stdio (default: for desktop and CLI agents that spawn the server) or http (Streamable HTTP on
    /// loopback at /mcp, with a local token).
    #[arg(long, value_enum, default_value = "stdio")]
    transport: Transport,
    /// The loopback address of the HTTP transport.
    #[arg(long, default_value = "127.0.0.1:7778")]
    listen: SocketAddr,
    /// Wait up to this many seconds for a required approval, then make the call; 0 (default):
    /// return at once with the approval id and the command that approves it.
    #[arg(long, default_value_t = 0)]
    approval_wait: u64,
    /// Bind sessions to a DPoP key kept next to the identity (also used when the manifest
    /// requires DPoP).
    #[arg(long)]
    dpop: bool,
    /// HTTP transport: the local token is read from this file, or generated and written to it
    /// (0600); without it a new token is generated and printed at every start.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Steward's data plane (default: <identity>/broker_url, written by steward enroll).
    #[arg(long, env = "STEWARD_BROKER_URL")]
    broker_url: Option<String>,
}

fn fail(message: &str) -> ExitCode {
    log::event("fatal", &[("message", message)]);
    eprintln!("steward mcp: {message}");
    ExitCode::from(1)
}

fn client_error_text(error: &ClientError) -> String {
    match error {
        ClientError::Broker { code, message, .. } => format!("{code}: {message}"),
        other => other.to_string(),
    }
}

/// Loads the identity and fetches the first manifest, switching to DPoP when the manifest (or the
/// broker) says it is required.
async fn connect(args: &McpArgs) -> Result<(BrokerClient, String, Manifest), String> {
    let broker = resolve_broker_url(args.broker_url.as_deref(), &args.identity);
    let identity = Identity::load(&args.identity).map_err(|e| e.to_string())?;
    let workload_id = identity.workload_id().map_err(|e| e.to_string())?;
    let build = |dpop: bool| -> Result<BrokerClient, String> {
        let key = if dpop { Some(identity.dpop_key().map_err(|e| e.to_string())?) } else { None };
        BrokerClient::new(&broker.url, &identity, key).map_err(|e| e.to_string())
    };
    let client = build(args.dpop)?;
    let manifest = match client.manifest(&workload_id).await {
        Ok(manifest) if manifest.dpop_required && !args.dpop => {
            let client = build(true)?;
            let manifest = client.manifest(&workload_id).await.map_err(|e| client_error_text(&e))?;
            return Ok((client, workload_id, manifest));
        }
        Ok(manifest) => manifest,
        Err(error)
            if !args.dpop && matches!(error.code(), Some("dpop_missing" | "session_dpop_required")) =>
        {
            let client = build(true)?;
            let manifest = client.manifest(&workload_id).await.map_err(|e| client_error_text(&e))?;
            return Ok((client, workload_id, manifest));
        }
        Err(ClientError::Transport(detail)) => {
            return Err(format!("cannot reach Steward at {} (from {}): {detail}", broker.url, broker.source));
        }
        Err(error) => return Err(format!("the workload manifest: {}", client_error_text(&error))),
    };
    Ok((client, workload_id, manifest))
}

fn catalog_of(manifest: &Manifest) -> Catalog {
    let (catalog, warnings) = Catalog::from_manifest(manifest);
    for warning in warnings {
        log::event("manifest_warning", &[("message", &warning)]);
    }
    catalog
}

/// How long the manifest stays current: `manifest.ttl_seconds` (its `expires_at − issued_at`).
fn ttl_of(manifest: &Manifest) -> Duration {
    let seconds = manifest.issued_at.seconds_until(manifest.expires_at).clamp(30, 300);
    Duration::from_secs(u64::try_from(seconds).unwrap_or(300))
}

/// Re-fetches the manifest every `ttl_seconds`; a changed tool set replaces the catalog, which
/// makes every session send `notifications/tools/list_changed`. A failed fetch keeps the tools.
async fn poll_manifest(
    shared: Arc<Shared>,
    workload_id: String,
    mut ttl: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(ttl) => {}
        }
        match shared.client.manifest(&workload_id).await {
            Ok(manifest) => {
                ttl = ttl_of(&manifest);
                let catalog = catalog_of(&manifest);
                let changed = shared.catalog.send_if_modified(|current| {
                    if **current == catalog {
                        return false;
                    }
                    *current = Arc::new(catalog);
                    true
                });
                if changed {
                    let count = shared.catalog.borrow().tools.len().to_string();
                    log::event("tools_changed", &[("tools", &count)]);
                }
            }
            Err(error) => {
                if error.code() == Some("session_invalid") {
                    shared.client.reset_session().await;
                }
                log::event("manifest_refresh_failed", &[("error", &client_error_text(&error))]);
                ttl = MANIFEST_RETRY;
            }
        }
    }
}

fn shutdown_on_signal(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return,
        };
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        shutdown.cancel();
    });
}

pub async fn run(args: McpArgs) -> ExitCode {
    // Read (or create) the token first: a bad --token-file is a usage error worth failing fast on.
    let token = match args.transport {
        Transport::Http => match http::local_token(args.token_file.as_deref()) {
            Ok(token) => Some(token),
            Err(message) => return fail(&message),
        },
        Transport::Stdio => None,
    };
    let (client, workload_id, manifest) = match connect(&args).await {
        Ok(connected) => connected,
        Err(message) => return fail(&message),
    };
    let catalog = catalog_of(&manifest);
    let count = catalog.tools.len().to_string();
    let (catalog, _) = watch::channel(Arc::new(catalog));
    let shared = Arc::new(Shared { client, catalog, approval_wait: Duration::from_secs(args.approval_wait) });
    let shutdown = CancellationToken::new();
    shutdown_on_signal(shutdown.clone());
    tokio::spawn(poll_manifest(shared.clone(), workload_id.clone(), ttl_of(&manifest), shutdown.clone()));
    let handler = StewardMcp::new(shared);

    match (args.transport, token) {
        (Transport::Http, Some(token)) => {
            let listener = match http::bind(args.listen).await {
                Ok(listener) => listener,
                Err(message) => return fail(&message),
            };
            let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
            log::event(
                "listening",
                &[("url", &format!("http://{address}{}", http::MCP_PATH)), ("tools", &count)],
            );
            // The URL and token go to stdout (not the log): the one place the operator reads them.
            // Written at once, and a closed stdout is no reason to stop serving.
            let lines = Zeroizing::new(format!(
                "STEWARD_MCP_URL=http://{address}{}\nSTEWARD_MCP_TOKEN={}\n",
                http::MCP_PATH,
                token.as_str()
            ));
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(lines.as_bytes()).and_then(|()| stdout.flush());
            drop(stdout);
            match http::serve(listener, handler, &token, shutdown).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => fail(&message),
            }
        }
        _ => {
            log::event("serving_stdio", &[("workload_id", &workload_id), ("tools", &count)]);
            let running = match handler.serve_with_ct(rmcp::transport::stdio(), shutdown.child_token()).await
            {
                Ok(running) => running,
                Err(error) => return fail(&format!("the MCP client did not start a session: {error}")),
            };
            match running.waiting().await {
                Ok(_) => ExitCode::SUCCESS,
                Err(error) => fail(&format!("the MCP session ended with an error: {error}")),
            }
        }
    }
}
