//! The single-instance coordinator: process memory, time from the injected clock.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use steward_types::SharedClock;

use crate::{
    BucketPlan, CoordError, Coordinator, LockAttempt, LockToken, TakeOutcome, gcra_step, plan_buckets,
    retry_after_seconds,
};

/// Below this many entries a map is never swept: sweeping tiny maps would cost more than it saves.
const MIN_SWEEP_THRESHOLD: usize = 1024;

/// Coordination state in process memory, for the embedded (one instance) deployment.
///
/// Every entry carries its expiry; expired entries are treated as absent when read and swept out
/// whenever a map has doubled since its last sweep, so memory stays proportional to the live entries
/// (amortized O(1) per insert, no background task to own).
#[derive(Debug)]
pub struct EmbeddedCoordinator {
    clock: SharedClock,
    jtis: Mutex<ExpiringMap<()>>,
    // The stored value is the bucket's TAT; the bucket is full again (and forgettable) at the TAT.
    buckets: Mutex<ExpiringMap<f64>>,
    locks: Mutex<ExpiringMap<LockToken>>,
}

impl EmbeddedCoordinator {
    pub fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            jtis: Mutex::new(ExpiringMap::new()),
            buckets: Mutex::new(ExpiringMap::new()),
            locks: Mutex::new(ExpiringMap::new()),
        }
    }

    fn now_us(&self) -> i64 {
        self.clock.now().unix_micros()
    }

    /// Number of entries currently held across all concerns, expired or not (for tests of the sweep).
    pub fn stored_entries(&self) -> usize {
        lock(&self.jtis).len() + lock(&self.buckets).len() + lock(&self.locks).len()
    }
}

/// A poisoned mutex only means another thread panicked mid-update; every update here is a single map
/// operation that leaves the map consistent, so the state is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn expiry(now_us: i64, ttl: Duration) -> i64 {
    let ttl_us = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX).max(1);
    now_us.saturating_add(ttl_us)
}

#[async_trait]
impl Coordinator for EmbeddedCoordinator {
    async fn ping(&self) -> Result<(), CoordError> {
        Ok(())
    }

    fn is_shared(&self) -> bool {
        false
    }

    async fn remember_once(&self, key: &str, ttl: Duration) -> Result<bool, CoordError> {
        let now = self.now_us();
        let mut jtis = lock(&self.jtis);
        if jtis.get(key, now).is_some() {
            return Ok(false);
        }
        jtis.insert(key.to_owned(), (), expiry(now, ttl), now);
        Ok(true)
    }

    async fn take_tokens(&self, buckets: &[crate::BucketSpec]) -> Result<TakeOutcome, CoordError> {
        let planned = match plan_buckets(buckets) {
            BucketPlan::Empty => return Ok(TakeOutcome::Taken),
            BucketPlan::Never { retry_after_seconds } => {
                return Ok(TakeOutcome::Throttled { retry_after_seconds });
            }
            BucketPlan::Buckets(planned) => planned,
        };
        let now = self.now_us();
        let now_f = now as f64;
        // One lock over the check and the commit: that is what makes all-or-none atomic.
        let mut state = lock(&self.buckets);
        let mut new_tats = Vec::with_capacity(planned.len());
        let mut wait_us: f64 = 0.0;
        for bucket in &planned {
            match gcra_step(state.get(&bucket.key, now).copied(), now_f, bucket) {
                Ok(new_tat) => new_tats.push(new_tat),
                Err(wait) => wait_us = wait_us.max(wait),
            }
        }
        if wait_us > 0.0 {
            return Ok(TakeOutcome::Throttled { retry_after_seconds: retry_after_seconds(wait_us) });
        }
        for (bucket, new_tat) in planned.into_iter().zip(new_tats) {
            // Forget the bucket once it would be full again: an absent bucket reads as full.
            let expires_at = new_tat.ceil() as i64;
            state.insert(bucket.key, new_tat, expires_at, now);
        }
        Ok(TakeOutcome::Taken)
    }

    async fn try_lock(&self, key: &str, fingerprint: &str, ttl: Duration) -> Result<LockAttempt, CoordError> {
        let now = self.now_us();
        let mut locks = lock(&self.locks);
        if let Some(holder) = locks.get(key, now) {
            return Ok(LockAttempt::Held { fingerprint: Some(holder.fingerprint().to_owned()) });
        }
        let token = LockToken::generate(fingerprint);
        locks.insert(key.to_owned(), token.clone(), expiry(now, ttl), now);
        Ok(LockAttempt::Acquired(token))
    }

    async fn unlock(&self, key: &str, token: &LockToken) -> Result<(), CoordError> {
        let now = self.now_us();
        let mut locks = lock(&self.locks);
        if locks.get(key, now) == Some(token) {
            locks.remove(key);
        }
        Ok(())
    }
}

/// A map whose entries expire at a unix-microsecond instant.
#[derive(Debug)]
struct ExpiringMap<V> {
    entries: HashMap<String, (V, i64)>,
    sweep_at_len: usize,
}

impl<V> ExpiringMap<V> {
    fn new() -> Self {
        Self { entries: HashMap::new(), sweep_at_len: MIN_SWEEP_THRESHOLD }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn get(&self, key: &str, now_us: i64) -> Option<&V> {
        match self.entries.get(key) {
            Some((value, expires_at)) if *expires_at > now_us => Some(value),
            _ => None,
        }
    }

    fn insert(&mut self, key: String, value: V, expires_at: i64, now_us: i64) {
        self.entries.insert(key, (value, expires_at));
        if self.entries.len() >= self.sweep_at_len {
            self.entries.retain(|_, (_, expires_at)| *expires_at > now_us);
            // Next sweep when the live set has doubled: each sweep is paid for by as many inserts as
            // it scans, and memory stays within twice the live entries.
            self.sweep_at_len = (self.entries.len() * 2).max(MIN_SWEEP_THRESHOLD);
        }
    }

    fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }
}
