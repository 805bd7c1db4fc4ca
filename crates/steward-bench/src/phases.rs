//! One run: the phases of [`crate::TARGETS`] that `--targets` asks for, in that order, and the report.
//!
//! Order: the baselines that need no Steward first; then, with Steward running, the large stream
//! through forward mode while Steward's memory is still fresh (the strictest check that a stream does
//! not grow it); then nginx (load, stream, SSE) with the SSE phase of forward mode right after
//! nginx's, so the two TTFB figures compared are taken under the same machine load; then execute and
//! forward back to back for the same reason.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rustls_pki_types::ServerName;

use crate::calls::{Call, ForwardFactory, PlainFactory};
use crate::load::{self, Endpoint, LoadMode, LoadPlan, Measure, RequestFactory, client_tls};
use crate::nginx;
use crate::oha::{self, OhaChoice};
use crate::pki;
use crate::report::{Machine, PhaseResult, Report};
use crate::rss::RssSampler;
use crate::seed::{self, RunCopy, SeedOptions, Seeded};
use crate::session_refresh::{self, REFRESH_CHECK_EVERY, RefreshStats, Refresher};
use crate::steward::{self, BENCH_SECRET, ExecuteFactory, StewardOptions, StewardProcess, Workload};
use crate::stream::{self, StreamRun};
use crate::upstream::{self, UPSTREAM_HOST, Upstream};
use crate::{BenchOptions, NginxChoice};

/// The unmeasured stream sent through a proxy before the measured ones (pools, caches).
const STREAM_WARMUP_BYTES: u64 = 1 << 20;

struct Run<'a> {
    options: &'a BenchOptions,
    plan: LoadPlan,
    sse_plan: LoadPlan,
    upstream: Upstream,
    /// `bench.upstream.test:<port>`.
    authority: String,
    injected: String,
    phases: Vec<PhaseResult>,
    streams: Vec<StreamRun>,
    notes: Vec<String>,
    session_refresh: Option<RefreshStats>,
    /// The second generator, when an `oha-*` target is wanted and it was found.
    oha_binary: Option<std::path::PathBuf>,
    oha_runs: Vec<oha::OhaRun>,
    work_dir: std::path::PathBuf,
}

impl Run<'_> {
    fn wants(&self, target: &str) -> bool {
        self.options.targets.iter().any(|t| t == target)
    }

    /// A load phase; counts the upstream connections it caused and samples `rss_pid` each second.
    async fn load(
        &mut self,
        name: &str,
        endpoint: &Endpoint,
        factory: Arc<dyn RequestFactory>,
        sse: bool,
        rss_pid: Option<u32>,
    ) -> Result<()> {
        let before = self.upstream.connections.load(Ordering::Relaxed);
        let sampler = rss_pid.map(|pid| RssSampler::start(pid, Duration::from_secs(1)));
        let plan = if sse { &self.sse_plan } else { &self.plan };
        let result = load::run(name, endpoint, factory, plan).await;
        let rss = sampler.map(RssSampler::finish);
        let mut result = result.with_context(|| format!("phase {name}"))?;
        result.rss = rss;
        result.upstream_connections = self.upstream.connections.load(Ordering::Relaxed) - before;
        self.phases.push(result);
        Ok(())
    }

    /// The same load from oha (when found): `factory`'s first request, over the same connections
    /// for the same time, verified with `ca_pem` and presenting the workload's certificate.
    async fn oha(
        &mut self,
        name: &str,
        beside: &str,
        factory: &dyn RequestFactory,
        ca_pem: &str,
        identity: &steward_client::Identity,
    ) -> Result<()> {
        if !self.wants(name) {
            return Ok(());
        }
        let Some(binary) = self.oha_binary.clone() else { return Ok(()) };
        let (_, request) = factory.make(0)?;
        let plan = oha::plan_of(
            name,
            beside,
            request,
            &self.plan,
            ca_pem,
            &identity.cert_pem,
            identity.key_pem.as_str(),
        )
        .await?;
        let result = oha::run(&binary, &plan, &self.work_dir.join(name))
            .await
            .with_context(|| format!("phase {name}"))?;
        self.oha_runs.push(result);
        Ok(())
    }

    /// One warm-up stream, then `--stream-runs` streams of `--stream-bytes`.
    async fn streams(
        &mut self,
        name: &str,
        endpoint: &Endpoint,
        factory: impl Fn(Call) -> Result<Box<dyn RequestFactory>>,
        rss_pid: Option<u32>,
    ) -> Result<()> {
        let warmup = factory(Call::blob(STREAM_WARMUP_BYTES))?;
        stream::run_once(name, endpoint, warmup.as_ref(), STREAM_WARMUP_BYTES, None).await?;
        let bytes = self.options.stream_bytes;
        let measured = factory(Call::blob(bytes))?;
        for _ in 0..self.options.stream_runs.max(1) {
            let run = stream::run_once(name, endpoint, measured.as_ref(), bytes, rss_pid).await?;
            self.streams.push(run);
        }
        Ok(())
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
        measure: Measure::Complete,
    };
    if plan.duration.is_zero() {
        bail!("--duration must be above 0");
    }
    // TTFB is measured per stream at a light, fixed concurrency (closed loop).
    let sse_plan = LoadPlan {
        connections: options.sse_connections.max(1),
        mode: LoadMode::Closed,
        measure: Measure::FirstByte,
        ..plan.clone()
    };
    let mix = steward::parse_mix(&options.mix)?;
    // The seed first (it may take minutes), so the two execute phases run back to back.
    let seeded = if options.seed_scale > 0.0 {
        if !options.targets.iter().any(|t| t == "steward") {
            bail!("--seed-scale measures the steward (execute) phase: add it to --targets");
        }
        Some(
            seed::prepare(&SeedOptions {
                scale: options.seed_scale,
                audit_events: options.seed_audit_events,
                root: options.seed_dir.clone(),
                postgres_url: options.postgres_url.clone(),
                redis_url: options.redis_url.clone(),
            })
            .await?,
        )
    } else {
        None
    };

    let ca = pki::BenchCa::new()?;
    let upstream_leaf = ca.server_cert(&[UPSTREAM_HOST, "localhost"])?;
    let upstream_ca_file = work.path().join("upstream-ca.crt");
    std::fs::write(&upstream_ca_file, &ca.cert_pem)?;
    let upstream = upstream::start(&upstream_leaf, options.response_bytes).await?;
    let mut run = Run {
        options,
        plan,
        sse_plan,
        authority: format!("{UPSTREAM_HOST}:{}", upstream.addr.port()),
        upstream,
        injected: format!("Bearer {BENCH_SECRET}"),
        phases: Vec::new(),
        streams: Vec::new(),
        notes: Vec::new(),
        session_refresh: None,
        oha_binary: None,
        oha_runs: Vec::new(),
        work_dir: work.path().to_owned(),
    };
    if ["oha-nginx", "oha-steward", "oha-forward"].iter().any(|t| run.wants(t)) {
        run.oha_binary = match &options.oha {
            OhaChoice::Off => None,
            OhaChoice::Auto => {
                let found = oha::find();
                if found.is_none() {
                    run.notes.push(
                        "no oha binary found (--oha auto; scripts/install-bench-tools installs it): the oha-* phases were skipped"
                            .into(),
                    );
                }
                found
            }
            OhaChoice::Path(path) => Some(path.clone()),
        };
    }

    let direct = Endpoint {
        addr: run.upstream.addr,
        server_name: ServerName::try_from(UPSTREAM_HOST)?.to_owned(),
        tls: client_tls(&ca.cert_pem, None)?,
    };
    let plain = |host: &str, call: Call, auth: Option<&str>| -> Arc<dyn RequestFactory> {
        Arc::new(PlainFactory::new(host.to_owned(), call, auth.map(str::to_owned)))
    };
    if run.wants("direct") {
        let factory = plain(&run.authority, Call::echo(options.body_bytes), Some(&run.injected));
        run.load("direct", &direct, factory, false, None).await?;
    }
    if run.wants("sse-direct") {
        let factory = plain(&run.authority, Call::sse(), Some(&run.injected));
        run.load("sse-direct", &direct, factory, true, None).await?;
    }
    if run.wants("stream-direct") {
        let (host, auth) = (run.authority.clone(), run.injected.clone());
        run.streams(
            "stream-direct",
            &direct,
            |call| Ok(Box::new(PlainFactory::new(host.clone(), call, Some(auth.clone())))),
            None,
        )
        .await?;
    }

    let nginx_wanted = ["nginx", "sse-nginx", "stream-nginx", "oha-nginx"].iter().any(|t| run.wants(t));
    let nginx_binary = match &options.nginx {
        _ if !nginx_wanted => None,
        NginxChoice::Off => None,
        NginxChoice::Auto => {
            let found = nginx::find();
            if found.is_none() {
                run.notes
                    .push("no nginx binary found (--nginx auto): the nginx baselines were skipped".into());
            }
            found
        }
        NginxChoice::Path(path) => Some(path.clone()),
    };
    let steward_wanted =
        ["stream-forward", "sse-forward", "steward", "forward", "oha-steward", "oha-forward"]
            .iter()
            .any(|t| run.wants(t));
    if steward_wanted || nginx_binary.is_some() {
        let steward_options = StewardOptions {
            postgres_url: options.postgres_url.clone(),
            redis_url: options.redis_url.clone(),
            upstream_ca_file: upstream_ca_file.clone(),
            seeded: None,
            session_ttl_seconds: options.session_ttl_seconds,
        };
        let process = steward::launch(work.path(), &steward_options).await?;
        let outcome = with_steward(&mut run, &process, &ca, &mix, nginx_binary.as_deref(), work.path()).await;
        let log = std::fs::read_to_string(&process.log_file).unwrap_or_default();
        process.stop().await?;
        if let Err(error) = outcome {
            bail!("{error:#}\nSteward's log:\n{log}");
        }
    }

    if let Some(seeded) = &seeded {
        run.notes.push(seeded.describe());
        let copy = RunCopy::make(seeded, work.path(), options.postgres_url.as_deref()).await?;
        let steward_options = StewardOptions {
            postgres_url: options.postgres_url.clone(),
            redis_url: options.redis_url.clone(),
            upstream_ca_file: upstream_ca_file.clone(),
            seeded: Some((copy.data_dir.clone(), copy.config_path.clone())),
            session_ttl_seconds: options.session_ttl_seconds,
        };
        let process = steward::launch(work.path(), &steward_options).await?;
        let outcome = seeded_phase(&mut run, &process, seeded, &mix, work.path()).await;
        let log = std::fs::read_to_string(&process.log_file).unwrap_or_default();
        process.stop().await?;
        copy.remove().await?;
        if let Err(error) = outcome {
            bail!("{error:#}\nSteward's log (seeded store):\n{log}");
        }
    }

    let mut report = Report {
        machine: Machine::detect(),
        command: options.command.clone(),
        options: serde_json::to_value(options)?,
        phases: run.phases,
        streams: run.streams,
        ratios: Default::default(),
        notes: run.notes,
        session_refresh: run.session_refresh,
        oha: run.oha_runs,
        oha_ratios: None,
    };
    report.compute_ratios();
    if !report.oha.is_empty() {
        let ratios = oha::ratios(&report.oha, |name| report.phase(name).map(|p| p.ok_per_second));
        report.oha_ratios = Some(ratios);
    }
    Ok(report)
}

/// The phases that need Steward (the nginx ones need its workload identity).
async fn with_steward(
    run: &mut Run<'_>,
    process: &StewardProcess,
    ca: &pki::BenchCa,
    mix: &[(String, u32)],
    nginx_binary: Option<&std::path::Path>,
    work_dir: &std::path::Path,
) -> Result<()> {
    let options = run.options;
    let setup = steward::setup(&process.admin, run.upstream.addr.port()).await?;
    let workload = steward::enroll_and_open_session(
        &process.public_url,
        &setup,
        &work_dir.join("workload"),
        options.dpop,
    )
    .await?;
    // Sessions expire (900 s by default): runs longer than that need the next one in time.
    let refresher =
        Refresher::spawn(Arc::clone(&workload.client), Arc::clone(&workload.session), REFRESH_CHECK_EVERY);
    let outcome = steward_phases(run, process, ca, mix, nginx_binary, work_dir, &setup, &workload).await;
    run.session_refresh = Some(refresher.finish());
    outcome
}

/// [`with_steward`]'s phases, with the workload's session kept fresh.
#[allow(clippy::too_many_arguments)]
async fn steward_phases(
    run: &mut Run<'_>,
    process: &StewardProcess,
    ca: &pki::BenchCa,
    mix: &[(String, u32)],
    nginx_binary: Option<&std::path::Path>,
    work_dir: &std::path::Path,
    setup: &steward::Setup,
    workload: &Workload,
) -> Result<()> {
    let options = run.options;
    let identity = &workload.identity;
    let steward_endpoint = Endpoint {
        addr: process.data_addr,
        server_name: ServerName::try_from("localhost")?.to_owned(),
        tls: client_tls(&identity.ca_pem, Some((&identity.cert_pem, identity.key_pem.as_str())))?,
    };
    let authority = run.authority.clone();
    let forward = |calls: Vec<(String, Call, u32)>| -> Result<ForwardFactory> {
        ForwardFactory::new(
            &process.public_url,
            process.data_addr,
            &setup.integration_id,
            &authority,
            workload,
            calls,
        )
    };
    let one = |call: Call| vec![("allowed".to_owned(), call, 1)];

    if run.wants("stream-forward") {
        let factory = |call: Call| -> Result<Box<dyn RequestFactory>> { Ok(Box::new(forward(one(call))?)) };
        run.streams("stream-forward", &steward_endpoint, factory, Some(process.pid)).await?;
    }

    if let Some(binary) = nginx_binary {
        let leaf = ca.server_cert(&["localhost"])?;
        let proxy = nginx::start(
            binary,
            work_dir,
            run.upstream.addr,
            &work_dir.join("upstream-ca.crt"),
            &process.ca_pem()?,
            &leaf,
            &run.injected,
        )
        .await?;
        let outcome = nginx_phases(run, &proxy, ca, workload).await;
        proxy.stop().await?;
        outcome?;
    }

    if run.wants("sse-forward") {
        let factory = Arc::new(forward(one(Call::sse()))?);
        run.load("sse-forward", &steward_endpoint, factory, true, None).await?;
    }
    if run.wants("steward") {
        let factory = Arc::new(ExecuteFactory::new(
            &process.public_url,
            process.data_addr,
            run.upstream.addr.port(),
            &setup.integration_id,
            workload,
            mix,
            options.body_bytes,
        )?);
        run.load("steward", &steward_endpoint, factory, false, Some(process.pid)).await?;
    }
    if run.wants("forward") {
        let calls = mix
            .iter()
            .map(|(kind, weight)| Ok((kind.clone(), Call::of_kind(kind, options.body_bytes)?, *weight)))
            .collect::<Result<Vec<_>>>()?;
        let factory = Arc::new(forward(calls)?);
        run.load("forward", &steward_endpoint, factory, false, Some(process.pid)).await?;
    }
    let oha_steward = ["oha-steward", "oha-forward"].iter().any(|t| run.wants(t));
    if oha_steward && run.oha_binary.is_some() {
        if options.dpop {
            run.notes.push("--dpop: oha cannot send a fresh DPoP proof per request, oha-steward and oha-forward were skipped".into());
        } else {
            let ca_pem = process.ca_pem()?;
            // oha sends one token for its whole run: a new session gives it a full TTL.
            session_refresh::renew_now(&workload.client, &workload.session).await?;
            let allowed = [("allowed".to_owned(), 1)];
            let execute = ExecuteFactory::new(
                &process.public_url,
                process.data_addr,
                run.upstream.addr.port(),
                &setup.integration_id,
                workload,
                &allowed,
                options.body_bytes,
            )?;
            run.oha("oha-steward", "steward", &execute, &ca_pem, identity).await?;
            let forward = forward(one(Call::echo(options.body_bytes)))?;
            run.oha("oha-forward", "forward", &forward, &ca_pem, identity).await?;
        }
    }
    Ok(())
}

/// `steward-seeded`: the execute load of the `steward` phase, on the seeded store.
async fn seeded_phase(
    run: &mut Run<'_>,
    process: &StewardProcess,
    seeded: &Seeded,
    mix: &[(String, u32)],
    work_dir: &std::path::Path,
) -> Result<()> {
    let options = run.options;
    let manifest = &seeded.manifest;
    let setup = steward::setup_seeded(
        &process.admin,
        run.upstream.addr.port(),
        &manifest.bench_tenant_id,
        &manifest.bench_integration_id,
    )
    .await?;
    let workload = steward::enroll_and_open_session(
        &process.public_url,
        &setup,
        &work_dir.join("workload-seeded"),
        options.dpop,
    )
    .await?;
    let identity = &workload.identity;
    let endpoint = Endpoint {
        addr: process.data_addr,
        server_name: ServerName::try_from("localhost")?.to_owned(),
        tls: client_tls(&identity.ca_pem, Some((&identity.cert_pem, identity.key_pem.as_str())))?,
    };
    let factory = Arc::new(ExecuteFactory::new(
        &process.public_url,
        process.data_addr,
        run.upstream.addr.port(),
        &setup.integration_id,
        &workload,
        mix,
        options.body_bytes,
    )?);
    run.load("steward-seeded", &endpoint, factory, false, Some(process.pid)).await
}

async fn nginx_phases(
    run: &mut Run<'_>,
    proxy: &nginx::Nginx,
    ca: &pki::BenchCa,
    workload: &Workload,
) -> Result<()> {
    let identity = &workload.identity;
    let endpoint = Endpoint {
        addr: proxy.addr,
        server_name: ServerName::try_from("localhost")?.to_owned(),
        tls: client_tls(&ca.cert_pem, Some((&identity.cert_pem, identity.key_pem.as_str())))?,
    };
    let host = format!("localhost:{}", proxy.addr.port());
    if run.wants("nginx") {
        let factory = Arc::new(PlainFactory::new(host.clone(), Call::echo(run.options.body_bytes), None));
        run.load("nginx", &endpoint, factory, false, None).await?;
    }
    {
        let factory = PlainFactory::new(host.clone(), Call::echo(run.options.body_bytes), None);
        run.oha("oha-nginx", "nginx", &factory, &ca.cert_pem, identity).await?;
    }
    if run.wants("stream-nginx") {
        let factory = |call: Call| -> Result<Box<dyn RequestFactory>> {
            Ok(Box::new(PlainFactory::new(host.clone(), call, None)))
        };
        run.streams("stream-nginx", &endpoint, factory, None).await?;
    }
    if run.wants("sse-nginx") {
        let factory = Arc::new(PlainFactory::new(host.clone(), Call::sse(), None));
        run.load("sse-nginx", &endpoint, factory, true, None).await?;
    }
    Ok(())
}
