//! The numbers of a run: one [`PhaseResult`] per target, the ratios, the machine, and the two
//! renderings (`--output json` and the text table).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::stream::{StreamRun, median_mib_per_second};

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
    /// The same samples split by kind of page (`RssAnon`, `RssFile`, `RssShmem`), in KiB.
    pub samples_split_kib: Vec<RssSplit>,
    /// The same samples summarized per minute of the phase (the first minute includes the
    /// connections' set-up and the warm-up).
    pub per_minute: Vec<RssMinute>,
}

/// What a resident set is made of, in KiB: anonymous pages (the heap: allocator, SQLite's page
/// caches), file-backed pages (the binary, mapped files such as SQLite's WAL index) and shared memory.
/// Tells a step in `VmRSS` apart by where it comes from.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct RssSplit {
    pub anon_kib: u64,
    pub file_kib: u64,
    pub shmem_kib: u64,
}

/// One reading of a process's memory, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemorySample {
    /// `VmRSS`.
    pub rss_kib: u64,
    /// `VmHWM`: the peak since the process started.
    pub peak_kib: u64,
    pub split: RssSplit,
}

/// `VmRSS` over one minute of a phase, in KiB.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RssMinute {
    /// 1 for the first minute.
    pub minute: usize,
    pub samples: usize,
    pub min_kib: u64,
    pub avg_kib: u64,
    pub max_kib: u64,
    /// The minute's average of each part of the resident set.
    pub avg_split: RssSplit,
}

/// Groups samples taken every `per_minute`-th of a minute (60 for one a second) into minutes; the
/// last minute may be partial.
pub fn rss_per_minute(samples: &[MemorySample], per_minute: usize) -> Vec<RssMinute> {
    samples
        .chunks(per_minute.max(1))
        .enumerate()
        .map(|(i, chunk)| {
            let n = chunk.len() as u64;
            let avg = |part: fn(&MemorySample) -> u64| chunk.iter().map(part).sum::<u64>() / n;
            RssMinute {
                minute: i + 1,
                samples: chunk.len(),
                min_kib: chunk.iter().map(|s| s.rss_kib).min().unwrap_or(0),
                avg_kib: avg(|s| s.rss_kib),
                max_kib: chunk.iter().map(|s| s.rss_kib).max().unwrap_or(0),
                avg_split: RssSplit {
                    anon_kib: avg(|s| s.split.anon_kib),
                    file_kib: avg(|s| s.split.file_kib),
                    shmem_kib: avg(|s| s.split.shmem_kib),
                },
            }
        })
        .collect()
}

/// One target driven for one phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    pub name: String,
    /// What a latency is: `complete` (to the last byte) or `first_byte` (TTFB of a stream).
    pub measure: String,
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

/// Throughput ratios of Steward against the baselines (successful requests/s), and the forward-mode
/// comparisons of issue 14.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ratios {
    pub steward_over_direct: Option<f64>,
    pub steward_over_nginx: Option<f64>,
    pub nginx_over_direct: Option<f64>,
    /// Latency Steward adds over direct at p50 and p99 (ms).
    pub added_p50_ms_over_direct: Option<f64>,
    pub added_p99_ms_over_direct: Option<f64>,
    /// Forward mode against execute (`steward`), both on the same 1 KiB load (ok/s).
    pub forward_over_execute: Option<f64>,
    pub forward_over_nginx: Option<f64>,
    pub forward_added_p50_ms_over_direct: Option<f64>,
    pub forward_added_p99_ms_over_direct: Option<f64>,
    /// Time to first byte of an SSE stream: forward mode minus nginx (`proxy_buffering off`), ms.
    pub sse_ttfb_p50_forward_minus_nginx_ms: Option<f64>,
    pub sse_ttfb_p99_forward_minus_nginx_ms: Option<f64>,
    pub sse_ttfb_p50_forward_minus_direct_ms: Option<f64>,
    /// Median MiB/s of the large stream through forward mode, and over direct's.
    pub stream_forward_mib_per_second: Option<f64>,
    pub stream_forward_over_direct: Option<f64>,
    /// Execute on the seeded store (`--seed-scale`) over execute on the empty one (ok/s).
    pub seeded_over_empty: Option<f64>,
    /// The largest RSS rise of the Steward child during one large stream (KiB).
    pub stream_forward_max_rss_growth_kib: Option<u64>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub command: String,
    pub options: serde_json::Value,
    pub phases: Vec<PhaseResult>,
    /// The large streamed answers (`stream-*` targets), one per run.
    pub streams: Vec<StreamRun>,
    pub ratios: Ratios,
    pub notes: Vec<String>,
    /// The load session's renewals (Steward phases only).
    pub session_refresh: Option<crate::session_refresh::RefreshStats>,
    /// The second generator's runs (`oha-*` targets), and the ratios of both generators.
    pub oha: Vec<crate::oha::OhaRun>,
    pub oha_ratios: Option<crate::oha::OhaRatios>,
}

impl Report {
    pub fn phase(&self, name: &str) -> Option<&PhaseResult> {
        self.phases.iter().find(|p| p.name == name)
    }

    fn stream_runs(&self, name: &str) -> Vec<&StreamRun> {
        self.streams.iter().filter(|s| s.name == name).collect()
    }

    /// Fills [`Report::ratios`] from the phases and streams present.
    pub fn compute_ratios(&mut self) {
        let rate = |name: &str| self.phase(name).map(|p| p.ok_per_second).filter(|r| *r > 0.0);
        let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
        let (direct, nginx, steward, forward) =
            (rate("direct"), rate("nginx"), rate("steward"), rate("forward"));
        let minus = |a: &str, b: &str, f: fn(&LatencySummary) -> f64| {
            let (a, b) = (self.phase(a)?, self.phase(b)?);
            (a.latency.count > 0 && b.latency.count > 0).then(|| f(&a.latency) - f(&b.latency))
        };
        let stream_forward = median_mib_per_second(&self.stream_runs("stream-forward"));
        let stream_direct = median_mib_per_second(&self.stream_runs("stream-direct"));
        self.ratios = Ratios {
            steward_over_direct: ratio(steward, direct),
            steward_over_nginx: ratio(steward, nginx),
            nginx_over_direct: ratio(nginx, direct),
            added_p50_ms_over_direct: minus("steward", "direct", |l| l.p50_ms),
            added_p99_ms_over_direct: minus("steward", "direct", |l| l.p99_ms),
            forward_over_execute: ratio(forward, steward),
            forward_over_nginx: ratio(forward, nginx),
            forward_added_p50_ms_over_direct: minus("forward", "direct", |l| l.p50_ms),
            forward_added_p99_ms_over_direct: minus("forward", "direct", |l| l.p99_ms),
            sse_ttfb_p50_forward_minus_nginx_ms: minus("sse-forward", "sse-nginx", |l| l.p50_ms),
            sse_ttfb_p99_forward_minus_nginx_ms: minus("sse-forward", "sse-nginx", |l| l.p99_ms),
            sse_ttfb_p50_forward_minus_direct_ms: minus("sse-forward", "sse-direct", |l| l.p50_ms),
            seeded_over_empty: ratio(rate("steward-seeded"), steward),
            stream_forward_mib_per_second: stream_forward,
            stream_forward_over_direct: ratio(stream_forward, stream_direct),
            stream_forward_max_rss_growth_kib: self
                .stream_runs("stream-forward")
                .iter()
                .filter_map(|s| s.rss.as_ref().map(|r| r.growth_kib))
                .max(),
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
            "\n{:<14} {:>11} {:>6} {:>9} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9}",
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
                "{:<14} {:>11} {:>6} {:>9} {:>10.0} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
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
                let _ = write!(out, "  steward RSS: peak {:.1} MiB", rss.peak_kib as f64 / 1024.0);
                if rss.samples_kib.len() <= 120 {
                    let samples: Vec<String> =
                        rss.samples_kib.iter().map(|k| format!("{}", k / 1024)).collect();
                    let _ = write!(out, "; each second (MiB): {}", samples.join(" "));
                }
                let _ = writeln!(out);
                if rss.per_minute.len() > 1 {
                    let _ = writeln!(
                        out,
                        "  {:>6} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                        "minute",
                        "samples",
                        "min MiB",
                        "avg MiB",
                        "max MiB",
                        "anon MiB",
                        "file MiB",
                        "shmem MiB"
                    );
                    for m in &rss.per_minute {
                        let mib = |k: u64| k as f64 / 1024.0;
                        let _ = writeln!(
                            out,
                            "  {:>6} {:>8} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                            m.minute,
                            m.samples,
                            mib(m.min_kib),
                            mib(m.avg_kib),
                            mib(m.max_kib),
                            mib(m.avg_split.anon_kib),
                            mib(m.avg_split.file_kib),
                            mib(m.avg_split.shmem_kib)
                        );
                    }
                }
            }
        }
        if self.phases.iter().any(|p| p.measure == "first_byte") {
            let _ = writeln!(out, "(sse-* rows: latency = time to the first body byte of an SSE answer)");
        }
        for s in &self.streams {
            let _ = write!(
                out,
                "{}: {:.1} MiB in {:.3} s = {:.1} MiB/s, first byte after {:.3} ms",
                s.name,
                s.bytes as f64 / 1048576.0,
                s.seconds,
                s.mib_per_second,
                s.ttfb_ms
            );
            if let Some(rss) = &s.rss {
                let _ = write!(
                    out,
                    "; steward RSS before {:.1} MiB, max {:.1} MiB (+{:.2} MiB), after {:.1} MiB ({} samples)",
                    rss.before_kib as f64 / 1024.0,
                    rss.max_kib as f64 / 1024.0,
                    rss.growth_kib as f64 / 1024.0,
                    rss.after_kib as f64 / 1024.0,
                    rss.samples
                );
            }
            let _ = writeln!(out);
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
        let _ = writeln!(
            out,
            "forward mode: forward/execute {}  forward/nginx {}  adds over direct p50 {} ms, p99 {} ms",
            fmt(r.forward_over_execute),
            fmt(r.forward_over_nginx),
            fmt(r.forward_added_p50_ms_over_direct),
            fmt(r.forward_added_p99_ms_over_direct)
        );
        let _ = writeln!(
            out,
            "sse ttfb: forward - nginx p50 {} ms, p99 {} ms; forward - direct p50 {} ms",
            fmt(r.sse_ttfb_p50_forward_minus_nginx_ms),
            fmt(r.sse_ttfb_p99_forward_minus_nginx_ms),
            fmt(r.sse_ttfb_p50_forward_minus_direct_ms)
        );
        let _ = writeln!(
            out,
            "stream: forward median {} MiB/s, forward/direct {}, max steward RSS rise {} KiB",
            fmt(r.stream_forward_mib_per_second),
            fmt(r.stream_forward_over_direct),
            r.stream_forward_max_rss_growth_kib.map_or("-".to_owned(), |k| k.to_string())
        );
        if let Some(ratio) = r.seeded_over_empty {
            let _ = writeln!(out, "seeded store: steward-seeded/steward {ratio:.3} (ok/s)");
        }
        if let Some(ratios) = &self.oha_ratios {
            out.push_str(&crate::oha::render(&self.oha, ratios, |name| {
                self.phase(name).map(|p| (p.ok_per_second, p.latency.p50_ms, p.latency.p99_ms))
            }));
        }
        if let Some(refresh) = &self.session_refresh {
            let _ = writeln!(
                out,
                "session refresh: {} new sessions swapped in, {} failed attempts",
                refresh.refreshes, refresh.failures
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }
}

/// A process's memory from `/proc/<pid>/status`; `None` once it is gone.
pub fn proc_memory(pid: u32) -> Option<MemorySample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_proc_status(&status)
}

/// The memory fields of a `/proc/<pid>/status` text (values in kB).
pub fn parse_proc_status(status: &str) -> Option<MemorySample> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some(MemorySample {
        rss_kib: field("VmRSS:")?,
        peak_kib: field("VmHWM:")?,
        split: RssSplit {
            anon_kib: field("RssAnon:").unwrap_or(0),
            file_kib: field("RssFile:").unwrap_or(0),
            shmem_kib: field("RssShmem:").unwrap_or(0),
        },
    })
}
