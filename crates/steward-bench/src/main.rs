//! `steward-bench`: the load harness binary. Thin: parses arguments, installs the crypto provider,
//! and runs [`steward_bench::run`]; `__serve` is the hidden entry the harness re-executes itself with
//! to run Steward as a child process.

// The report is this tool's interface: printing it to stdout is the point.
#![allow(clippy::print_stdout)]

/// The same allocator as the `steward` binary (its `__serve` child must measure what users run).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use steward_bench::oha::OhaChoice;
use steward_bench::{BenchOptions, NginxChoice, expand_targets, parse_duration, parse_size};
use steward_server::StartupError;
use steward_server::startup::Environment;
use steward_server::{config, runtime};
use steward_types::SystemClock;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Json,
    Text,
}

#[derive(Debug, Parser)]
#[command(
    name = "steward-bench",
    about = "Load harness: Steward's execute and forward modes against direct and nginx baselines"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    internal: Option<Internal>,
    /// Measured time of each phase (after the warm-up).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured load before each phase.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Connections (closed loop), or the connections that carry `--rate`.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// A fixed request rate (open loop; latency from each request's scheduled send time).
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    #[arg(long, default_value_t = 1024)]
    response_bytes: usize,
    /// DPoP-bound session (ES256): a fresh proof on every request.
    #[arg(long)]
    dpop: bool,
    /// Request kinds for Steward: allowed, denied (no allow rule), approval (approval required).
    #[arg(long, default_value = "allowed=100")]
    mix: String,
    /// Shared mode: an empty PostgreSQL database (with --redis-url).
    #[arg(long)]
    postgres_url: Option<String>,
    #[arg(long)]
    redis_url: Option<String>,
    /// `auto` (find nginx on PATH), `off`, or the path of an nginx binary.
    #[arg(long, default_value = "auto")]
    nginx: NginxChoice,
    /// The second load generator of the `oha-*` phases: `auto` (`tools/oha/bin/oha` from
    /// `scripts/install-bench-tools`, or `oha` on PATH; skipped with a note when absent), `off`, or
    /// the path of an oha binary.
    #[arg(long, default_value = "auto")]
    oha: OhaChoice,
    /// Which phases to run, comma-separated: direct, nginx, steward (execute), forward, sse-direct,
    /// sse-nginx, sse-forward, stream-direct, stream-nginx, stream-forward, oha-nginx, oha-steward,
    /// oha-forward (the same load from oha); `sse`, `stream` and `oha` name their three, `all` every
    /// phase.
    #[arg(long, default_value = "direct,nginx,steward,forward,oha", value_delimiter = ',')]
    targets: Vec<String>,
    /// Connections of the SSE time-to-first-byte phases (closed loop, `--duration` each).
    #[arg(long, default_value_t = 8)]
    sse_connections: usize,
    /// The size of each large streamed answer of the `stream-*` phases.
    #[arg(long, default_value = "100MiB", value_parser = parse_size)]
    stream_bytes: u64,
    /// Large streamed answers per `stream-*` phase (after one unmeasured 1 MiB stream).
    #[arg(long, default_value_t = 3)]
    stream_runs: usize,
    /// Also measure execute against a store seeded with F × (10 000 tenants, 50 000 integrations,
    /// 200 000 policy rules, 10 000 000 audit events): the `steward` phase runs on an empty store,
    /// then again on the seed as `steward-seeded`, and the report gives seeded/empty. 0: empty only.
    #[arg(long, default_value_t = 0.0)]
    seed_scale: f64,
    /// With `--seed-scale`: seed this many audit events instead of F × 10 000 000 (0 measures the
    /// catalog alone: tenants, integrations and rules). Kept as a seed of its own.
    #[arg(long, requires = "seed_scale")]
    seed_audit_events: Option<u64>,
    /// Where seeds are kept and reused (`stwbench-seed-<backend>-<scale>/`; shared mode adds the
    /// database `stwbench_seed_<scale>`). Default: the system temp dir.
    #[arg(long)]
    seed_dir: Option<PathBuf>,
    /// Steward's session TTL in seconds (60..3600; default: Steward's, 900). The harness renews the
    /// load's session before it expires either way; a short TTL exercises that in a short run.
    #[arg(long)]
    session_ttl: Option<u32>,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

#[derive(Debug, Subcommand)]
enum Internal {
    /// Runs Steward exactly as `steward serve --config FILE` does (the harness's child process).
    #[command(name = "__serve", hide = true)]
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Audit at scale (issue 18): seeds `scale × 10 M` audit events into a store kept under
    /// `--seed-dir` (reused when already seeded), then measures `GET /v1/audit/events` per filter and
    /// `GET /v1/audit/verify` of the big tenant against a Steward child on it.
    #[command(name = "audit-scale")]
    AuditScale {
        /// 1.0 = 10 000 000 events over 10 000 tenants.
        #[arg(long, default_value_t = 0.01)]
        seed_scale: f64,
        /// Where seeded stores are kept (one per backend and scale).
        #[arg(long)]
        seed_dir: Option<PathBuf>,
        /// The big tenant's share of the events (>= 0.1 gives it >= 1 M events at scale 1.0).
        #[arg(long, default_value_t = 0.12)]
        big_tenant_share: f64,
        /// PostgreSQL server (a database `stwbench_audit_<scale>` is created next to this URL's).
        #[arg(long, requires = "redis_url")]
        postgres_url: Option<String>,
        #[arg(long)]
        redis_url: Option<String>,
        /// Searches per filter; each follows `next_cursor` for `--pages` pages.
        #[arg(long, default_value_t = 40)]
        queries: usize,
        #[arg(long, default_value_t = 3)]
        pages: usize,
        #[arg(long, default_value_t = 2)]
        verify_runs: usize,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
}

async fn serve(config_path: PathBuf) -> Result<(), StartupError> {
    let env = Environment::from_process();
    let loaded = config::load(Some(&config_path), &env.vars)?;
    runtime::serve_until_terminated(loaded, &env, Arc::new(SystemClock)).await
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("steward-bench: cannot start the async runtime: {error}");
            return std::process::ExitCode::from(1);
        }
    };
    match cli.internal {
        Some(Internal::Serve { config }) => {
            return match runtime.block_on(serve(config)) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("steward: {}", error.message);
                    std::process::ExitCode::from(u8::try_from(error.code()).unwrap_or(1))
                }
            };
        }
        Some(Internal::AuditScale {
            seed_scale,
            seed_dir,
            big_tenant_share,
            postgres_url,
            redis_url,
            queries,
            pages,
            verify_runs,
            output,
        }) => {
            let options = steward_bench::audit_scale::AuditScaleOptions {
                scale: seed_scale,
                seed_dir: seed_dir.unwrap_or_else(|| std::env::temp_dir().join("steward-bench-seed")),
                big_tenant_share,
                postgres_url,
                redis_url,
                queries,
                pages,
                verify_runs,
            };
            return match runtime.block_on(steward_bench::audit_scale::run(&options)) {
                Ok(report) => {
                    match output {
                        Output::Json => println!("{}", steward_bench::audit_scale::to_json(&report)),
                        Output::Text => print!("{}", report.to_text()),
                    }
                    std::process::ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("steward-bench: {error:#}");
                    std::process::ExitCode::from(1)
                }
            };
        }
        None => {}
    }
    let targets = match expand_targets(&cli.targets) {
        Ok(targets) => targets,
        Err(message) => {
            eprintln!("steward-bench: {message}");
            return std::process::ExitCode::from(2);
        }
    };
    let options = BenchOptions {
        duration: cli.duration,
        warmup: cli.warmup,
        connections: cli.connections,
        rate: cli.rate,
        body_bytes: cli.body_bytes,
        response_bytes: cli.response_bytes,
        dpop: cli.dpop,
        mix: cli.mix,
        postgres_url: cli.postgres_url,
        redis_url: cli.redis_url,
        nginx: cli.nginx,
        oha: cli.oha,
        targets,
        sse_connections: cli.sse_connections,
        stream_bytes: cli.stream_bytes,
        stream_runs: cli.stream_runs,
        seed_scale: cli.seed_scale,
        seed_audit_events: cli.seed_audit_events,
        seed_dir: cli.seed_dir.unwrap_or_else(std::env::temp_dir),
        session_ttl_seconds: cli.session_ttl,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    match runtime.block_on(steward_bench::run(&options)) {
        Ok(report) => {
            match cli.output {
                Output::Json => println!("{}", report.to_json()),
                Output::Text => print!("{}", report.to_text()),
            }
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("steward-bench: {error:#}");
            std::process::ExitCode::from(1)
        }
    }
}
