//! The numbers of a run: one [`PhaseResult`] per target, the ratios, the machine, and the two
//! renderings (`--output json` and the text table).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    /// From a histogram of microseconds.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// Resident memory of the Steward child, in KiB.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RssReport {
    /// `VmHWM` at the end of the phase: the peak since the process started.
    pub peak_kib: u64,
    /// `VmRSS` sampled once a second during the phase.
    pub samples_kib: Vec<u64>,
}

/// One target driven for one phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    pub name: String,
    /// `connections` (closed loop) or `rate` (open loop).
    pub mode: String,
    pub connections: usize,
    pub target_rate: Option<f64>,
    pub duration_seconds: f64,
    /// Every answered or failed request whose send was scheduled inside the measured window.
    pub requests: u64,
    pub requests_per_second: f64,
    /// Requests answered with the expected success only.
    pub ok_per_second: f64,
    pub latency: LatencySummary,
    /// Per request kind of `--mix` (empty when there is one kind).
    pub by_kind: BTreeMap<String, LatencySummary>,
    /// `ok`, `approval_required`, or the error code of the answer.
    pub outcomes: BTreeMap<String, u64>,
    pub rss: Option<RssReport>,
    /// TCP connections the upstream accepted during the phase (warm-up included): the load
    /// generator's own for `direct`, the proxy's pool for `nginx` and `steward`.
    pub upstream_connections: u64,
}

/// The machine the run happened on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub mem_total_kib: u64,
}

impl Machine {
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim()))
            .unwrap_or("unknown")
            .to_owned();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_total_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Self { nproc, cpu_model, mem_total_kib }
    }
}

/// Throughput ratios of Steward against the baselines (successful requests/s).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ratios {
    pub steward_over_direct: Option<f64>,
    pub steward_over_nginx: Option<f64>,
    pub nginx_over_direct: Option<f64>,
    /// Latency Steward adds over direct at p50 and p99 (ms).
    pub added_p50_ms_over_direct: Option<f64>,
    pub added_p99_ms_over_direct: Option<f64>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub command: String,
    pub options: serde_json::Value,
    pub phases: Vec<PhaseResult>,
    pub ratios: Ratios,
    pub notes: Vec<String>,
}

impl Report {
    pub fn phase(&self, name: &str) -> Option<&PhaseResult> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// Fills [`Report::ratios`] from the `direct`, `nginx` and `steward` phases.
    pub fn compute_ratios(&mut self) {
        let rate = |name: &str| self.phase(name).map(|p| p.ok_per_second).filter(|r| *r > 0.0);
        let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
        let (direct, nginx, steward) = (rate("direct"), rate("nginx"), rate("steward"));
        let added = |f: fn(&LatencySummary) -> f64| {
            Some(f(&self.phase("steward")?.latency) - f(&self.phase("direct")?.latency))
        };
        self.ratios = Ratios {
            steward_over_direct: ratio(steward, direct),
            steward_over_nginx: ratio(steward, nginx),
            nginx_over_direct: ratio(nginx, direct),
            added_p50_ms_over_direct: added(|l| l.p50_ms),
            added_p99_ms_over_direct: added(|l| l.p99_ms),
        };
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(out, "machine: {} cpus, {}, {} MiB", m.nproc, m.cpu_model, m.mem_total_kib / 1024);
        let _ = writeln!(out, "command: {}", self.command);
        let _ = writeln!(
            out,
            "\n{:<9} {:>11} {:>6} {:>9} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9}",
            "target", "mode", "conns", "requests", "req/s", "ok/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        for p in &self.phases {
            let mode = match p.target_rate {
                Some(r) => format!("rate {r:.0}"),
                None => "closed".to_owned(),
            };
            let l = &p.latency;
            let _ = writeln!(
                out,
                "{:<9} {:>11} {:>6} {:>9} {:>10.0} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                p.name,
                mode,
                p.connections,
                p.requests,
                p.requests_per_second,
                p.ok_per_second,
                l.p50_ms,
                l.p90_ms,
                l.p99_ms,
                l.max_ms
            );
        }
        for p in &self.phases {
            let outcomes: Vec<String> = p.outcomes.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(out, "{} outcomes: {}", p.name, outcomes.join(" "));
            for (kind, l) in &p.by_kind {
                let _ = writeln!(
                    out,
                    "  {kind:<9} n={:<8} p50 {:.3} p90 {:.3} p99 {:.3} max {:.3} ms",
                    l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
                );
            }
            let _ = writeln!(out, "  upstream connections opened: {}", p.upstream_connections);
            if let Some(rss) = &p.rss {
                let samples: Vec<String> = rss.samples_kib.iter().map(|k| format!("{}", k / 1024)).collect();
                let _ = writeln!(
                    out,
                    "  steward RSS: peak {:.1} MiB; each second (MiB): {}",
                    rss.peak_kib as f64 / 1024.0,
                    samples.join(" ")
                );
            }
        }
        let r = &self.ratios;
        let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
        let _ = writeln!(
            out,
            "\nratios (ok/s): steward/direct {}  steward/nginx {}  nginx/direct {}",
            fmt(r.steward_over_direct),
            fmt(r.steward_over_nginx),
            fmt(r.nginx_over_direct)
        );
        let _ = writeln!(
            out,
            "steward adds over direct: p50 {} ms, p99 {} ms",
            fmt(r.added_p50_ms_over_direct),
            fmt(r.added_p99_ms_over_direct)
        );
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
pub fn proc_memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
