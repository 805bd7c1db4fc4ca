//! The load harness of issue 8: a local HTTPS upstream, Steward as a child process (embedded, or
//! shared with PostgreSQL and Redis), the direct and nginx baselines, one load generator for all of
//! them, and the report (`--output json|text`).
//!
//! It measures; it must not change what it measures: Steward runs exactly as `steward serve` runs it
//! (`startup::prepare` + `runtime::run`), configured only through its documented environment overlay.

pub mod admin;
pub mod load;
pub mod nginx;
pub mod pki;
pub mod report;
pub mod steward;
pub mod upstream;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rustls_pki_types::ServerName;
use serde::Serialize;

use crate::load::{Endpoint, LoadMode, LoadPlan, RequestFactory, client_tls};
use crate::report::{Machine, Report, RssReport, proc_memory};
use crate::steward::{BENCH_SECRET, EchoFactory, ExecuteFactory, StewardOptions};
use crate::upstream::UPSTREAM_HOST;

/// Where nginx comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum NginxChoice {
    Off,
    Auto,
    Path(PathBuf),
}

impl std::str::FromStr for NginxChoice {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "off" => NginxChoice::Off,
            "auto" => NginxChoice::Auto,
            path => NginxChoice::Path(PathBuf::from(path)),
        })
    }
}

/// Everything a run needs.
#[derive(Debug, Clone, Serialize)]
pub struct BenchOptions {
    pub duration: Duration,
    pub warmup: Duration,
    pub connections: usize,
    pub rate: Option<f64>,
    pub body_bytes: usize,
    pub response_bytes: usize,
    pub dpop: bool,
    pub mix: String,
    pub postgres_url: Option<String>,
    pub redis_url: Option<String>,
    pub nginx: NginxChoice,
    /// Which of `direct`, `nginx`, `steward` to run.
    pub targets: Vec<String>,
    /// The command line, for the report.
    pub command: String,
}

/// `20s`, `500ms`, `2m`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 =
        number.trim().parse().map_err(|_| format!("{text:?} is not a duration (20s, 500ms, 2m)"))?;
    if !(value.is_finite() && value >= 0.0) {
        return Err(format!("{text:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

fn wants(options: &BenchOptions, target: &str) -> bool {
    options.targets.iter().any(|t| t == target)
}

/// Samples a process's RSS once a second until dropped.
struct RssSampler {
    samples: Arc<Mutex<Vec<u64>>>,
    task: tokio::task::JoinHandle<()>,
    pid: u32,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&samples);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if let Some((rss, _)) = proc_memory(pid)
                    && let Ok(mut s) = sink.lock()
                {
                    s.push(rss);
                }
            }
        });
        Self { samples, task, pid }
    }

    fn finish(self) -> RssReport {
        self.task.abort();
        let samples_kib = self.samples.lock().map(|s| s.clone()).unwrap_or_default();
        let peak_kib = proc_memory(self.pid).map(|(_, hwm)| hwm).unwrap_or(0);
        RssReport { peak_kib, samples_kib }
    }
}

/// Runs the phases the options ask for and returns the report.
pub async fn run(options: &BenchOptions) -> Result<Report> {
    let work = tempfile::tempdir().context("creating the run's temp directory")?;
    let plan = LoadPlan {
        connections: options.connections.max(1),
        mode: match options.rate {
            Some(rate) if rate > 0.0 => LoadMode::Rate(rate),
            Some(_) => bail!("--rate must be above 0"),
            None => LoadMode::Closed,
        },
        warmup: options.warmup,
        duration: options.duration,
    };
    if plan.duration.is_zero() {
        bail!("--duration must be above 0");
    }
    let mix = steward::parse_mix(&options.mix)?;
    let mut notes = Vec::new();

    let ca = pki::BenchCa::new()?;
    let upstream_leaf = ca.server_cert(&[UPSTREAM_HOST, "localhost"])?;
    let upstream_ca_file = work.path().join("upstream-ca.crt");
    std::fs::write(&upstream_ca_file, &ca.cert_pem)?;
    let upstream = upstream::start(&upstream_leaf, options.response_bytes).await?;
    let upstream_host = format!("{UPSTREAM_HOST}:{}", upstream.addr.port());
    let injected = format!("Bearer {BENCH_SECRET}");
    let mut phases = Vec::new();

    if wants(options, "direct") {
        let endpoint = Endpoint {
            addr: upstream.addr,
            server_name: ServerName::try_from(UPSTREAM_HOST)?.to_owned(),
            tls: client_tls(&ca.cert_pem, None)?,
        };
        let factory: Arc<dyn RequestFactory> =
            Arc::new(EchoFactory::new(upstream_host.clone(), options.body_bytes, Some(injected.clone())));
        let before = upstream.connections.load(Ordering::Relaxed);
        let mut result = load::run("direct", &endpoint, factory, &plan).await?;
        result.upstream_connections = upstream.connections.load(Ordering::Relaxed) - before;
        phases.push(result);
    }

    let nginx_binary = match &options.nginx {
        _ if !wants(options, "nginx") => None,
        NginxChoice::Off => None,
        NginxChoice::Auto => {
            let found = nginx::find();
            if found.is_none() {
                notes.push("no nginx binary found (--nginx auto): the nginx baseline was skipped".into());
            }
            found
        }
        NginxChoice::Path(path) => Some(path.clone()),
    };

    if wants(options, "steward") || nginx_binary.is_some() {
        let steward_options = StewardOptions {
            postgres_url: options.postgres_url.clone(),
            redis_url: options.redis_url.clone(),
            upstream_ca_file: upstream_ca_file.clone(),
        };
        let process = steward::launch(work.path(), &steward_options).await?;
        let outcome = async {
            let setup = steward::setup(&process.admin, upstream.addr.port()).await?;
            let workload = steward::enroll_and_open_session(
                &process.public_url,
                &setup,
                &work.path().join("workload"),
                options.dpop,
            )
            .await?;
            let identity = &workload.identity;
            let mtls = client_tls(&identity.ca_pem, Some((&identity.cert_pem, identity.key_pem.as_str())))?;

            if let Some(binary) = &nginx_binary {
                let leaf = ca.server_cert(&["localhost"])?;
                let proxy = nginx::start(
                    binary,
                    work.path(),
                    upstream.addr,
                    &upstream_ca_file,
                    &process.ca_pem()?,
                    &leaf,
                    &injected,
                )
                .await?;
                let endpoint = Endpoint {
                    addr: proxy.addr,
                    server_name: ServerName::try_from("localhost")?.to_owned(),
                    tls: client_tls(&ca.cert_pem, Some((&identity.cert_pem, identity.key_pem.as_str())))?,
                };
                let factory: Arc<dyn RequestFactory> = Arc::new(EchoFactory::new(
                    format!("localhost:{}", proxy.addr.port()),
                    options.body_bytes,
                    None,
                ));
                let before = upstream.connections.load(Ordering::Relaxed);
                let result = load::run("nginx", &endpoint, factory, &plan).await;
                proxy.stop().await?;
                let mut result = result?;
                result.upstream_connections = upstream.connections.load(Ordering::Relaxed) - before;
                phases.push(result);
            }

            if wants(options, "steward") {
                let factory: Arc<dyn RequestFactory> = Arc::new(ExecuteFactory::new(
                    &process.public_url,
                    process.data_addr,
                    upstream.addr.port(),
                    &setup.integration_id,
                    &workload,
                    &mix,
                    options.body_bytes,
                )?);
                let endpoint = Endpoint {
                    addr: process.data_addr,
                    server_name: ServerName::try_from("localhost")?.to_owned(),
                    tls: mtls,
                };
                let before = upstream.connections.load(Ordering::Relaxed);
                let sampler = RssSampler::start(process.pid);
                let result = load::run("steward", &endpoint, factory, &plan).await;
                let rss = sampler.finish();
                let mut result = result?;
                result.rss = Some(rss);
                result.upstream_connections = upstream.connections.load(Ordering::Relaxed) - before;
                phases.push(result);
            }
            anyhow::Ok(())
        }
        .await;
        let log = std::fs::read_to_string(&process.log_file).unwrap_or_default();
        process.stop().await?;
        if let Err(error) = outcome {
            bail!("{error:#}\nSteward's log:\n{log}");
        }
    }

    let mut report = Report {
        machine: Machine::detect(),
        command: options.command.clone(),
        options: serde_json::to_value(options)?,
        phases,
        ratios: Default::default(),
        notes,
    };
    report.compute_ratios();
    Ok(report)
}

#[cfg(test)]
mod tests;
