//! Sampling the Steward child's resident memory (`VmRSS`) while a phase runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::report::{RssReport, proc_memory, rss_per_minute};

/// Samples a process's RSS every `interval` until finished (or dropped).
#[derive(Debug)]
pub struct RssSampler {
    samples: Arc<Mutex<Vec<u64>>>,
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
                if let Some((rss, _)) = proc_memory(pid)
                    && let Ok(mut s) = sink.lock()
                {
                    s.push(rss);
                }
            }
        });
        Self { samples, task, pid }
    }

    /// The samples so far, in KiB.
    pub fn samples_kib(&self) -> Vec<u64> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stops sampling (taking one last sample) and reports.
    pub fn finish(self) -> RssReport {
        self.task.abort();
        let mut samples_kib = self.samples_kib();
        let memory = proc_memory(self.pid);
        if let Some((rss, _)) = memory {
            samples_kib.push(rss);
        }
        // One sample a second (the harness's interval): 60 to a minute.
        let per_minute = rss_per_minute(&samples_kib, 60);
        RssReport { peak_kib: memory.map(|(_, hwm)| hwm).unwrap_or(0), samples_kib, per_minute }
    }
}

/// How far RSS rose above `before_kib` at its highest sample (0 when it never rose).
pub fn growth_kib(before_kib: u64, samples_kib: &[u64]) -> u64 {
    samples_kib.iter().max().map_or(0, |max| max.saturating_sub(before_kib))
}
