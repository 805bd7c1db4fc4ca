//! `steward run --identity DIR [--approval-wait S] [--dpop] -- COMMAND [ARGS…]`: a gateway on a free
//! loopback port, COMMAND run with the `--print-env` variables added, the gateway stopped when
//! COMMAND exits, and COMMAND's exit code returned (128 + n when a signal n ended it).
//!
//! A SIGTERM or SIGINT sent to `steward run` is passed on to COMMAND, which decides when to exit.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::gateway::{self, LocalToken, Options};
use crate::workload::{resolve_broker_url, usage};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The workload identity directory (written by steward enroll).
    #[arg(long, env = "STEWARD_IDENTITY")]
    identity: PathBuf,
    /// Hold a request that needs an approval up to this many seconds, then send it again once approved.
    #[arg(long, default_value_t = 0)]
    approval_wait: u64,
    /// Bind sessions to a DPoP key kept next to the identity.
    #[arg(long)]
    dpop: bool,
    /// Steward's data plane (default: <identity>/broker_url, written by steward enroll).
    #[arg(long, env = "STEWARD_BROKER_URL")]
    broker_url: Option<String>,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

pub async fn run(args: RunArgs) -> ExitCode {
    let Some((program, program_args)) = args.command.split_first() else {
        return usage("steward run needs a command after --");
    };
    let broker = resolve_broker_url(args.broker_url.as_deref(), &args.identity);
    let options = Options {
        identity: args.identity,
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        approval_wait: Duration::from_secs(args.approval_wait),
        token: LocalToken::generate(),
        dpop: args.dpop,
        broker,
    };
    let running = match gateway::start(options).await {
        Ok(running) => running,
        Err(code) => return code,
    };
    let child = tokio::process::Command::new(program).args(program_args).envs(running.env()).spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            running.stop().await;
            eprintln!("steward: cannot start {}: {error}", program.to_string_lossy());
            return ExitCode::from(127);
        }
    };
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            () = gateway::termination() => {
                if let Some(pid) = child.id().and_then(|id| rustix::process::Pid::from_raw(id.cast_signed())) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                }
            }
        }
    };
    running.stop().await;
    match status {
        Ok(status) => ExitCode::from(exit_code(status)),
        Err(error) => {
            eprintln!("steward: waiting for {}: {error}", program.to_string_lossy());
            ExitCode::from(1)
        }
    }
}

/// The child's exit code, or 128 + the signal that ended it (as shells report it).
fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(signal)) => u8::try_from((128 + signal) & 0xff).unwrap_or(1),
        (None, None) => 1,
    }
}
