//! `steward admin …`: the admin API from the command line (`spec/control-plane.md`, "CLI"). Every
//! resource has a subcommand group; each verb is one or a few API calls. Human-readable output by
//! default, `--output json` or `--output id` for scripts; exit codes 0 ok, 1 API error (code and
//! message printed), 2 usage error. Secrets are read only from a file or an environment variable.
//! Run where `steward serve` runs, it needs no flags: the admin URL and token come from the data
//! directory (`gateway.md` §3).

mod client;
mod governance;
mod output;
mod resources;

use std::path::PathBuf;

use clap::{Args, Subcommand};

pub use client::{AdminClient, CliError, CliResult, DEFAULT_DATA_DIR};
use output::{Format, Printer};

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The admin listener (default: admin.listen of the data directory's steward.toml, else
    /// http://127.0.0.1:8080).
    #[arg(long, env = "STEWARD_ADMIN_URL", global = true)]
    pub admin_url: Option<String>,
    /// The data directory whose steward.toml and admin-token give the defaults (default
    /// ./steward-data, or the current directory when it is one).
    #[arg(long, env = "STEWARD_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// An admin token (prefer --token-file: a token on the command line shows in process listings).
    #[arg(long, env = "STEWARD_ADMIN_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// A file holding the admin token (default: the data directory's admin-token).
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for an HTTPS admin listener, besides the public roots.
    #[arg(long, global = true)]
    pub ca_file: Option<PathBuf>,
    /// table (default, alias human), json, or id (only the ids, one a line, for scripts).
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub output: Format,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Who the token belongs to.
    Whoami,
    /// Tenants.
    #[command(subcommand)]
    Tenants(resources::TenantsCommand),
    /// Workloads, their enrollment tokens, certificates and sessions.
    #[command(subcommand)]
    Workloads(resources::WorkloadsCommand),
    /// Integrations and their secrets.
    #[command(subcommand)]
    Integrations(resources::IntegrationsCommand),
    /// Admin tokens.
    #[command(subcommand)]
    Tokens(resources::TokensCommand),
    /// Templates.
    #[command(subcommand)]
    Templates(governance::TemplatesCommand),
    /// Policy rules.
    #[command(subcommand)]
    Policies(governance::PoliciesCommand),
    /// Approvals.
    #[command(subcommand)]
    Approvals(governance::ApprovalsCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(governance::AuditCommand),
    /// Manifest signing keys and the KEK.
    #[command(subcommand)]
    Keys(governance::KeysCommand),
}

/// Runs one admin command and returns the process exit code.
pub async fn run(args: AdminArgs) -> std::process::ExitCode {
    let printer = Printer { format: args.output };
    let result = async {
        // The data directory matters only for what the flags and environment leave open.
        let data_dir = if args.admin_url.is_some() && (args.token.is_some() || args.token_file.is_some()) {
            None
        } else {
            client::find_data_dir(args.data_dir)?
        };
        let admin_url = client::resolve_admin_url(args.admin_url, data_dir.as_deref())?;
        let token = client::resolve_token(args.token, args.token_file, data_dir.as_deref())?;
        let api = AdminClient::new(&admin_url, token, args.ca_file.as_deref())?;
        match args.command {
            AdminCommand::Whoami => {
                let me = api.get("/v1/admin/whoami").await?;
                printer.object(&me, "token_id")
            }
            AdminCommand::Tenants(command) => resources::tenants(&api, printer, command).await,
            AdminCommand::Workloads(command) => resources::workloads(&api, printer, command).await,
            AdminCommand::Integrations(command) => resources::integrations(&api, printer, command).await,
            AdminCommand::Tokens(command) => resources::tokens(&api, printer, command).await,
            AdminCommand::Templates(command) => governance::templates(&api, printer, command).await,
            AdminCommand::Policies(command) => governance::policies(&api, printer, command).await,
            AdminCommand::Approvals(command) => governance::approvals(&api, printer, command).await,
            AdminCommand::Audit(command) => governance::audit(&api, printer, command).await,
            AdminCommand::Keys(command) => governance::keys(&api, printer, command).await,
        }
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("steward: {}", error.render());
            std::process::ExitCode::from(error.exit_code())
        }
    }
}

/// Reads a JSON file given on the command line (templates, policy rules).
pub(crate) fn read_json_file(path: &std::path::Path) -> CliResult<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| CliError::Usage(format!("{} is not valid JSON: {e}", path.display())))
}

/// Parses a JSON argument (`--constraints '{…}'`).
pub(crate) fn parse_json_arg(name: &str, text: &str) -> CliResult<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| CliError::Usage(format!("{name} is not valid JSON: {e}")))
}
