//! The load harness of issues 8 and 14: a local HTTPS upstream, Steward as a child process
//! (embedded, or shared with PostgreSQL and Redis), the direct and nginx baselines, one load
//! generator for all of them, and the report (`--output json|text`). Steward is driven in execute
//! mode (`POST /v1/execute`, the envelope) and in forward mode (`/v1/forward/…`, the request as is),
//! plus two streaming measurements of forward mode: the time to the first byte of an SSE answer, and
//! one large streamed body with Steward's RSS sampled.
//!
//! It measures; it must not change what it measures: Steward runs exactly as `steward serve` runs it
//! (`startup::prepare` + `runtime::run`), configured only through its documented environment overlay.

pub mod admin;
pub mod audit_scale;
pub mod calls;
pub mod load;
pub mod nginx;
pub mod oha;
pub mod pki;
pub mod report;
pub mod rss;
pub mod seed;
pub mod session_refresh;
pub mod steward;
pub mod stream;
pub mod upstream;

mod phases;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

pub use crate::phases::run;

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
    /// Where the second load generator comes from (`oha-*` phases).
    pub oha: oha::OhaChoice,
    /// The phases to run, expanded by [`expand_targets`].
    pub targets: Vec<String>,
    /// Connections of the `sse-*` phases (closed loop).
    pub sse_connections: usize,
    /// The size of each `stream-*` body, and how many are sent per target.
    pub stream_bytes: u64,
    pub stream_runs: usize,
    /// `--seed-scale F`: above 0, the `steward` phase runs a second time against a seeded store
    /// ([`seed`]), as `steward-seeded`.
    pub seed_scale: f64,
    /// `--seed-audit-events N`: seed N audit events instead of `F × 10 M` (0: the catalog alone).
    pub seed_audit_events: Option<u64>,
    /// Where seeds are kept (`--seed-dir`; default the system temp dir).
    pub seed_dir: PathBuf,
    /// Steward's `session.default_ttl_seconds` (60..3600), to exercise the session refresh in a
    /// short run; Steward's default (900 s) when `None`.
    pub session_ttl_seconds: Option<u32>,
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

/// `100MiB`, `1GiB`, `64KiB`, `10MB`, `1kB`, or plain bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(format!("{text:?} is not a size (100MiB, 64KiB, 1GB, or bytes)")),
    };
    let value: u64 = number.parse().map_err(|_| format!("{text:?} is not a size (100MiB, 64KiB, 1GB)"))?;
    value.checked_mul(scale).ok_or_else(|| format!("{text:?} is too large"))
}

/// Every phase the harness knows, in the order it runs them.
pub const TARGETS: [&str; 13] = [
    "direct",
    "sse-direct",
    "stream-direct",
    "stream-forward",
    "nginx",
    "oha-nginx",
    "stream-nginx",
    "sse-nginx",
    "sse-forward",
    "steward",
    "forward",
    "oha-steward",
    "oha-forward",
];

/// The `--targets` list: phase names, plus `sse` (= `sse-direct,sse-nginx,sse-forward`), `stream`
/// (= the three `stream-*`), `oha` (= the three `oha-*`) and `all`; duplicates dropped, in [`TARGETS`] order.
pub fn expand_targets(names: &[String]) -> Result<Vec<String>, String> {
    let mut wanted = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        match name {
            "all" => wanted.extend(TARGETS),
            "sse" | "stream" | "oha" => wanted
                .extend(TARGETS.iter().filter(|t| t.strip_prefix(name).is_some_and(|r| r.starts_with('-')))),
            _ if TARGETS.contains(&name) => {
                wanted.push(TARGETS.iter().find(|t| **t == name).copied().unwrap_or(name))
            }
            _ => {
                return Err(format!(
                    "unknown target {name:?} (one of {}, or sse, stream, oha, all)",
                    TARGETS.join(", ")
                ));
            }
        }
    }
    if wanted.is_empty() {
        return Err("--targets names no target".into());
    }
    Ok(TARGETS.iter().filter(|t| wanted.contains(t)).map(|t| (*t).to_owned()).collect())
}

#[cfg(test)]
mod tests;
