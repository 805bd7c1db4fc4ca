//! One large streamed answer, timed end to end, with the Steward child's RSS sampled every
//! [`RSS_INTERVAL`] while it flows: forward mode must pass a body of any size through in bounded
//! memory (`spec/gateway.md` §1: no buffering beyond the scrubber's held-back tail).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use http_body_util::BodyExt;
use serde::Serialize;
use tokio::time::Instant;

use crate::load::{Endpoint, RequestFactory, connect};
use crate::report::proc_memory;
use crate::rss::{RssSampler, growth_kib};

/// How often RSS is read during a stream (a 100 MiB stream lasts about a second).
pub const RSS_INTERVAL: Duration = Duration::from_millis(10);

/// The memory of the Steward child around one stream, in KiB.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StreamRss {
    /// `VmRSS` just before the request was sent.
    pub before_kib: u64,
    /// The highest `VmRSS` sample while the body flowed.
    pub max_kib: u64,
    /// `VmRSS` once the body ended.
    pub after_kib: u64,
    /// `max_kib - before_kib` (0 when RSS never rose).
    pub growth_kib: u64,
    pub samples: usize,
}

/// One streamed answer.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamRun {
    /// `stream-direct`, `stream-nginx` or `stream-forward`.
    pub name: String,
    pub bytes: u64,
    pub seconds: f64,
    pub mib_per_second: f64,
    /// Request sent → first body byte.
    pub ttfb_ms: f64,
    /// Only for Steward.
    pub rss: Option<StreamRss>,
}

/// MiB/s of `bytes` in `seconds` (0 for an empty interval).
pub fn mib_per_second(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 { bytes as f64 / (1024.0 * 1024.0) / seconds } else { 0.0 }
}

/// The median of the runs' throughput (the upper one of the middle two for an even count).
pub fn median_mib_per_second(runs: &[&StreamRun]) -> Option<f64> {
    let mut rates: Vec<f64> = runs.iter().map(|r| r.mib_per_second).collect();
    rates.sort_by(f64::total_cmp);
    rates.get(rates.len() / 2).copied()
}

/// Sends request 0 of `factory` on a fresh connection and reads the answer to its end; the body
/// must be exactly `expect_bytes`. `rss_pid`: the process whose memory is sampled meanwhile.
pub async fn run_once(
    name: &str,
    endpoint: &Endpoint,
    factory: &dyn RequestFactory,
    expect_bytes: u64,
    rss_pid: Option<u32>,
) -> Result<StreamRun> {
    let mut sender = connect(endpoint).await?;
    let (_, request) = factory.make(0)?;
    sender.ready().await.context("connection not ready")?;
    let before_kib = rss_pid.and_then(proc_memory).map(|m| m.rss_kib);
    let sampler = rss_pid.map(|pid| RssSampler::start(pid, RSS_INTERVAL));
    let sent = Instant::now();
    let response = sender.send_request(request).await.context("sending the stream request")?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut bytes = 0u64;
    let mut first = None;
    let mut error_body = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.with_context(|| format!("{name}: the body broke after {bytes} bytes"))?;
        if let Ok(data) = frame.into_data()
            && !data.is_empty()
        {
            first.get_or_insert_with(Instant::now);
            bytes += data.len() as u64;
            if status != 200 && error_body.len() < 4096 {
                error_body.extend_from_slice(&data);
            }
        }
    }
    let elapsed = sent.elapsed();
    let samples = sampler.map(|s| s.finish().samples_kib);
    if status != 200 {
        bail!("{name}: answered {status}: {}", String::from_utf8_lossy(&error_body));
    }
    if bytes != expect_bytes {
        bail!("{name}: received {bytes} bytes, expected {expect_bytes}");
    }
    let rss = match (before_kib, samples) {
        (Some(before_kib), Some(samples)) => Some(StreamRss {
            before_kib,
            max_kib: samples.iter().copied().max().unwrap_or(before_kib),
            after_kib: samples.last().copied().unwrap_or(before_kib),
            growth_kib: growth_kib(before_kib, &samples),
            samples: samples.len(),
        }),
        _ => None,
    };
    let seconds = elapsed.as_secs_f64();
    Ok(StreamRun {
        name: name.to_owned(),
        bytes,
        seconds,
        mib_per_second: mib_per_second(bytes, seconds),
        ttfb_ms: first.map_or(0.0, |f| f.saturating_duration_since(sent).as_secs_f64() * 1000.0),
        rss,
    })
}
