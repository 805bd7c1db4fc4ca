//! `steward dev …`: helpers for trying Steward on one machine, never for production.
//!
//! `steward dev echo-provider init` sets up a local HTTPS "provider" Steward can reach: a development
//! CA and a certificate for a made-up host name (default `echo.steward.test`), a template for it, and
//! the three `egress` settings that let Steward reach it (`extra_ca_files` trusts the CA,
//! `static_hosts` gives the name its loopback address, `allow_cidrs` exempts that address from the
//! SSRF guard), written into the data directory's `steward.toml`. `steward dev echo-provider serve`
//! runs the provider: it answers every request with what it received, so a brokered call shows what
//! Steward sent (the injected key arrives; Steward scrubs it from the answer). See
//! `docs/decisions/0011-first-run.md`.

mod echo;
mod setup;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

/// The directory the provider's files go to, unless `--dir` says otherwise.
pub const DEFAULT_DIR: &str = "steward-dev";
/// The provider's host name: `.test` is reserved (RFC 2606), so it can never be a real host.
pub const DEFAULT_HOST: &str = "echo.steward.test";
/// Where the provider listens by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// A local HTTPS echo provider to try brokered calls without an account anywhere.
    #[command(subcommand)]
    EchoProvider(EchoProviderCommand),
}

#[derive(Debug, Subcommand)]
pub enum EchoProviderCommand {
    /// Create the provider's CA, certificate and template in --dir, and add the egress settings that
    /// let Steward reach it to the data directory's steward.toml (restart steward serve afterwards).
    Init(InitArgs),
    /// Run the provider (HTTPS on the address init chose), answering every request with a JSON echo.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write ca.crt, server.crt, server.key, template.json and provider.json.
    #[arg(long, default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// The provider's host name (it gets a static address in Steward only).
    #[arg(long, default_value = DEFAULT_HOST)]
    host: String,
    /// The loopback address and port the provider listens on.
    #[arg(long, env = "STEWARD_DEV_ECHO_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// The data directory whose steward.toml gets the egress settings (default ./steward-data).
    #[arg(long, env = "STEWARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The directory `init` wrote.
    #[arg(long, default_value = DEFAULT_DIR)]
    dir: PathBuf,
}

pub async fn run(command: DevCommand) -> ExitCode {
    let result = match command {
        DevCommand::EchoProvider(EchoProviderCommand::Init(args)) => setup::init(args),
        DevCommand::EchoProvider(EchoProviderCommand::Serve(args)) => echo::serve(&args.dir).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(DevError::Usage(message)) => {
            eprintln!("steward: {message}");
            ExitCode::from(2)
        }
        Err(DevError::Failed(message)) => {
            eprintln!("steward: {message}");
            ExitCode::from(1)
        }
    }
}

/// Why a dev command failed: a usage error (exit 2) or an environment failure (exit 1).
#[derive(Debug)]
pub enum DevError {
    Usage(String),
    Failed(String),
}
