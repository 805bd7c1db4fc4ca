//! The `steward` binary. Thin: it parses arguments, installs the crypto provider, and calls into
//! `steward-server` (server side) and `steward-client` (workload side); `doctor` and `completions`
//! help people get there.

// A command-line tool's output is its interface: printing to stdout is the point here.
#![allow(clippy::print_stdout)]

/// mimalloc instead of glibc malloc: the execute path allocates and frees many small buffers across
/// worker threads, where glibc's arenas cost ~20 % of the CPU under load (`docs/performance.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin;
mod dev;
mod doctor;
mod gateway;
mod mcp;
mod run;
mod server_commands;
mod urls;
mod workload;

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "steward", version, about = "Steward: a secrets firewall for outbound tool calls")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StorageArg {
    Sqlite,
    Postgres,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a data directory and a deployment (or join an existing shared one).
    Init {
        #[arg(long)]
        data_dir: PathBuf,
        /// The URL workloads use to reach the data plane (default https://localhost:8081).
        #[arg(long)]
        public_url: Option<String>,
        #[arg(long, value_enum, default_value = "sqlite")]
        storage: StorageArg,
        #[arg(long)]
        postgres_url: Option<String>,
        #[arg(long)]
        redis_url: Option<String>,
        /// An existing KEK keyring file (to join a shared deployment).
        #[arg(long)]
        kek_file: Option<PathBuf>,
        /// Rewrite steward.toml and the TLS files (never the keyring or the store).
        #[arg(long)]
        force: bool,
    },
    /// Run the data plane and admin listeners.
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Apply storage migrations and exit.
    Migrate {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The admin API: tenants, workloads, integrations, templates, policies, approvals, audit, tokens, keys.
    Admin(Box<admin::AdminArgs>),
    /// Workload side: enroll a workload (key generated here, CSR sent with the enrollment token).
    Enroll(workload::EnrollArgs),
    /// Workload side: make a protected call through Steward (curl-like).
    Call(Box<workload::CallArgs>),
    /// Workload side: fetch this workload's manifest, verify it against the keyset, print it.
    Manifest(workload::ManifestArgs),
    /// Workload side: the local base-URL endpoint for SDKs and agents (loopback HTTP → forward mode).
    Gateway(Box<gateway::GatewayArgs>),
    /// Workload side: run a command with a gateway and the SDK environment (OPENAI_BASE_URL, …).
    Run(Box<run::RunArgs>),
    /// Workload side: an MCP server (stdio or Streamable HTTP) whose tools are the action groups
    /// this workload may call through Steward.
    Mcp(Box<mcp::McpArgs>),
    /// Key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Check a data directory (default ./steward-data) or a workload identity (--identity DIR): one
    /// line per check, ok / warn / FAIL with the fix; exit 1 when anything failed.
    Doctor(doctor::DoctorArgs),
    /// Development helpers (a local HTTPS echo provider to try brokered calls offline); never for
    /// production.
    #[command(subcommand)]
    Dev(dev::DevCommand),
    /// Print a shell completion script: steward completions bash > /etc/bash_completion.d/steward.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Add a new KEK to the keyring file (inactive unless --activate).
    GenerateKek {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        activate: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("steward: cannot start the async runtime: {error}");
            return std::process::ExitCode::from(1);
        }
    };
    let command = match cli.command {
        Command::Admin(args) => return runtime.block_on(admin::run(*args)),
        Command::Enroll(args) => return runtime.block_on(workload::enroll(args)),
        Command::Call(args) => return runtime.block_on(workload::call(*args)),
        Command::Manifest(args) => return runtime.block_on(workload::manifest(args)),
        Command::Mcp(args) => return runtime.block_on(mcp::run(*args)),
        Command::Doctor(args) => return runtime.block_on(doctor::run(args)),
        Command::Gateway(args) => return runtime.block_on(gateway::run(*args)),
        Command::Run(args) => return runtime.block_on(run::run(*args)),
        Command::Dev(command) => return runtime.block_on(dev::run(command)),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "steward", &mut std::io::stdout());
            return std::process::ExitCode::SUCCESS;
        }
        other => other,
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Init { data_dir, public_url, storage, postgres_url, redis_url, kek_file, force } => {
                let storage = match storage {
                    StorageArg::Sqlite => steward_server::config::StorageBackend::Sqlite,
                    StorageArg::Postgres => steward_server::config::StorageBackend::Postgres,
                };
                server_commands::init(steward_server::bootstrap::InitOptions {
                    data_dir,
                    public_url,
                    storage,
                    postgres_url,
                    redis_url,
                    kek_file,
                    force,
                })
                .await
            }
            Command::Serve { config } => server_commands::serve(config).await,
            Command::Migrate { config } => server_commands::migrate(config).await,
            Command::Keys { command: KeysCommand::GenerateKek { config, activate } } => {
                server_commands::generate_kek(config, activate)
            }
            // Handled above, before the server runtime work.
            Command::Admin(_)
            | Command::Enroll(_)
            | Command::Call(_)
            | Command::Manifest(_)
            | Command::Mcp(_)
            | Command::Doctor(_)
            | Command::Gateway(_)
            | Command::Run(_)
            | Command::Dev(_)
            | Command::Completions { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("steward: {}", error.message);
            std::process::ExitCode::from(u8::try_from(error.code()).unwrap_or(1))
        }
    }
}
