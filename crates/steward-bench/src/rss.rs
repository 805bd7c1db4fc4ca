//! Sampling the Steward child's resident memory (`VmRSS`, split by kind of page) while a phase runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::report::{MemorySample, RssReport, proc_memory, rss_per_minute};

/// Samples a process's RSS every `interval` until finished (or dropped).
#[derive(Debug)]
pub struct RssSampler {
    samples: Arc<Mutex<Vec<MemorySample>>>,
    task: tokio::task::JoinHandle<()>,
    pid: u32,
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RssSampler {
    /// The first sample is taken at once.
    pub fn start(pid: u32, interval: Duration) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&samples);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Some(sample) = proc_memory(pid)
                    && let Ok(mut s) = sink.lock()
                {
                    s.push(sample);
                }
            }
        });
        Self { samples, task, pid }
    }

    /// Stops sampling (taking one last sample) and reports.
    pub fn finish(self) -> RssReport {
        self.task.abort();
        let mut samples = self.samples.lock().map(|s| s.clone()).unwrap_or_default();
        let last = proc_memory(self.pid);
        samples.extend(last);
        // One sample a second (the harness's interval): 60 to a minute.
        let per_minute = rss_per_minute(&samples, 60);
        RssReport {
            peak_kib: last.map(|m| m.peak_kib).unwrap_or(0),
            samples_kib: samples.iter().map(|s| s.rss_kib).collect(),
            samples_split_kib: samples.iter().map(|s| s.split).collect(),
            per_minute,
        }
    }
}

/// How far RSS rose above `before_kib` at its highest sample (0 when it never rose).
pub fn growth_kib(before_kib: u64, samples_kib: &[u64]) -> u64 {
    samples_kib.iter().max().map_or(0, |max| max.saturating_sub(before_kib))
}
