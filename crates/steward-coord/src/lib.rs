//! Short-lived coordination state shared by the request pipeline: the DPoP replay cache (seen jtis),
//! the rate-limit token buckets of policy rules, and idempotency in-progress locks (which remember the
//! fingerprint of the request holding them).
//!
//! This crate owns one trait, [`Coordinator`], and its two implementations:
//! - [`EmbeddedCoordinator`]: process memory, time from an injected [`steward_types::Clock`]; for the
//!   single-instance (SQLite) deployment.
//! - [`RedisCoordinator`]: Redis, shared by every instance of a shared deployment, with atomic
//!   commands and Lua scripts and Redis server time, so all instances behave as one.
//!
//! What it must not do: hold durable data (losing Redis, or restarting the process, loses nothing that
//! matters beyond the replay window, which `data-plane.md` handles by the process start time), decide
//! policy (callers build the keys and choose capacities and TTLs), or hang: every Redis operation is
//! bounded by a short timeout and fails closed with [`CoordError::Unavailable`] (HTTP 503
//! `coordination_unavailable`). It never logs or returns key material: keys are opaque strings the caller
//! built from thumbprints and ids, never secrets.

use std::time::Duration;

use async_trait::async_trait;

mod embedded;
mod redis_backend;

pub use embedded::EmbeddedCoordinator;
pub use redis_backend::RedisCoordinator;

/// Coordination state behind the pipeline: replay cache, token buckets, idempotency locks.
///
/// Keys are namespaced per concern by the implementation, so the same caller key used for a jti and a
/// lock never collide.
#[async_trait]
pub trait Coordinator: Send + Sync + std::fmt::Debug + 'static {
    /// For `/readyz`: Ok when the backing service answered (always Ok for the embedded one).
    async fn ping(&self) -> Result<(), CoordError>;

    /// True when the state is shared with other instances (Redis), false for process memory; `/readyz`
    /// reports Redis as "ok" or "absent" from this.
    fn is_shared(&self) -> bool;

    /// Records a DPoP jti (the caller builds `key` from the key thumbprint and the jti). Returns true
    /// when it was NOT seen before, and remembers it for `ttl`; false for a replay. Atomic: of two
    /// concurrent calls with the same key exactly one gets true.
    async fn remember_once(&self, key: &str, ttl: Duration) -> Result<bool, CoordError>;

    /// Since when (unix seconds) the replay memory of [`Coordinator::remember_once`] is complete, when
    /// that is not simply "since this process started". A shared cache that lost its contents (a Redis
    /// restarted empty) has forgotten recent jtis; proofs issued before this time must then be refused,
    /// or they could be replayed once. `None`: the caller's own process start bounds it (embedded).
    async fn replay_memory_since(&self) -> Result<Option<i64>, CoordError> {
        Ok(None)
    }

    /// Token buckets, all-or-none: takes one token from EVERY bucket or from none, atomically. A key
    /// listed twice is one bucket and is charged once. An empty list is always [`TakeOutcome::Taken`].
    async fn take_tokens(&self, buckets: &[BucketSpec]) -> Result<TakeOutcome, CoordError>;

    /// Idempotency in-progress lock, taken for the request whose fingerprint is `fingerprint` (the
    /// descriptor digest): [`LockAttempt::Acquired`] with the token that releases it, held for `ttl`
    /// unless released first; or [`LockAttempt::Held`] with the fingerprint its holder registered,
    /// read in the same atomic step, so a caller can tell a different request under the same key (a
    /// conflict) from the same request still running.
    async fn try_lock(&self, key: &str, fingerprint: &str, ttl: Duration) -> Result<LockAttempt, CoordError>;

    /// Releases the lock only if it is still held by `token` (compare-and-delete), so a request whose lock
    /// expired and was taken over cannot release its successor's lock. Releasing a lock that is not held
    /// is not an error.
    async fn unlock(&self, key: &str, token: &LockToken) -> Result<(), CoordError>;
}

/// One token bucket: capacity `capacity`, refilled evenly over `interval` (`capacity` tokens per
/// `interval`), starting full.
///
/// A capacity of 0 never admits anything (the request is throttled for one `interval`); an interval
/// shorter than a microsecond counts as one microsecond.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSpec {
    pub key: String,
    pub capacity: u32,
    pub interval: Duration,
}

/// The result of [`Coordinator::take_tokens`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeOutcome {
    /// One token was taken from every bucket.
    Taken,
    /// At least one bucket was empty; no token was taken from any bucket. `retry_after_seconds` is the
    /// whole number of seconds (rounded up, at least 1) until every empty bucket has a token again.
    Throttled { retry_after_seconds: u64 },
}

/// The result of [`Coordinator::try_lock`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockAttempt {
    /// The lock is ours; the token releases it.
    Acquired(LockToken),
    /// Another request holds it. `fingerprint` is the one its holder registered; `None` only for a
    /// lock taken by an older instance that registered none (Redis, during a rolling upgrade).
    Held { fingerprint: Option<String> },
}

impl LockAttempt {
    /// The token when the lock was acquired.
    pub fn acquired(self) -> Option<LockToken> {
        match self {
            LockAttempt::Acquired(token) => Some(token),
            LockAttempt::Held { .. } => None,
        }
    }
}

/// Proof of holding an idempotency lock: a random value only the holder knows, followed by the
/// fingerprint of the request holding it (`<32 hex digits>:<fingerprint>`). The whole string is
/// what the lock stores, so the random part still makes it unguessable and a holder's fingerprint
/// is read back with the lock itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockToken(String);

impl LockToken {
    fn generate(fingerprint: &str) -> Self {
        // 122 random bits from the OS generator: unguessable, so no other request can release the lock.
        Self(format!("{}:{fingerprint}", uuid::Uuid::new_v4().simple()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The fingerprint of the request holding the lock.
    pub fn fingerprint(&self) -> &str {
        holder_fingerprint(&self.0).unwrap_or_default()
    }
}

/// The fingerprint part of a stored lock value; `None` for a bare token (no `:`), as written by
/// instances that did not record one. The random part is hex, so the first `:` separates them.
pub(crate) fn holder_fingerprint(stored: &str) -> Option<&str> {
    stored.split_once(':').map(|(_, fingerprint)| fingerprint)
}

#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    /// The backing service did not answer in time or answered with an error. The HTTP edge maps this to
    /// 503 `coordination_unavailable`: the request fails closed.
    #[error("coordination service unavailable: {0}")]
    Unavailable(String),
    /// The coordinator was configured with something unusable (a malformed Redis URL, an empty key
    /// prefix). Only returned at construction, so the server refuses to start.
    #[error("invalid coordination configuration: {0}")]
    InvalidConfig(String),
}

/// Duration in whole milliseconds, rounded up and at least 1, for `PX`: a TTL of 0 would be rejected by
/// Redis, and rounding down could forget a jti slightly early.
pub(crate) fn ttl_millis(ttl: Duration) -> u64 {
    let millis = ttl.as_nanos().div_ceil(1_000_000).max(1);
    u64::try_from(millis).unwrap_or(u64::MAX)
}

/// The buckets of one `take_tokens` call after the checks both implementations share.
pub(crate) enum BucketPlan {
    /// Nothing to take: always admitted.
    Empty,
    /// A bucket can never admit anything; throttled without touching state.
    Never { retry_after_seconds: u64 },
    /// Distinct buckets with their GCRA parameters.
    Buckets(Vec<GcraBucket>),
}

/// A token bucket as GCRA (generic cell rate algorithm): the bucket's state is one number, the
/// "theoretical arrival time" (TAT, unix microseconds). The bucket is full when TAT ≤ now; each token
/// moves TAT forward by `emission_us` (= interval / capacity); a take is admitted when the new TAT is at
/// most `interval_us` ahead of now. This is exactly a bucket of `capacity` tokens refilled evenly over
/// `interval`, with one number to store and a natural expiry (the TAT itself).
#[derive(Debug, Clone)]
pub(crate) struct GcraBucket {
    pub key: String,
    pub emission_us: f64,
    pub interval_us: f64,
}

pub(crate) fn plan_buckets(buckets: &[BucketSpec]) -> BucketPlan {
    if buckets.is_empty() {
        return BucketPlan::Empty;
    }
    let mut planned: Vec<GcraBucket> = Vec::with_capacity(buckets.len());
    let mut never: Option<u64> = None;
    for spec in buckets {
        let interval_us = spec.interval.as_micros().max(1) as f64;
        if spec.capacity == 0 {
            let seconds = retry_after_seconds(interval_us);
            never = Some(never.map_or(seconds, |s| s.max(seconds)));
            continue;
        }
        if planned.iter().any(|b| b.key == spec.key) {
            continue;
        }
        planned.push(GcraBucket {
            key: spec.key.clone(),
            emission_us: interval_us / f64::from(spec.capacity),
            interval_us,
        });
    }
    match never {
        Some(retry_after_seconds) => BucketPlan::Never { retry_after_seconds },
        None => BucketPlan::Buckets(planned),
    }
}

/// One GCRA step: `Ok(new_tat)` when admitted, `Err(wait_us)` (> 0) when not. Mirrored line by line in
/// the Redis Lua script, so both implementations agree.
pub(crate) fn gcra_step(stored_tat: Option<f64>, now_us: f64, bucket: &GcraBucket) -> Result<f64, f64> {
    let tat = stored_tat.map_or(now_us, |t| t.max(now_us));
    let new_tat = tat + bucket.emission_us;
    let over = new_tat - now_us - bucket.interval_us;
    if over > 0.0 { Err(over) } else { Ok(new_tat) }
}

/// Microseconds to whole seconds for `retry-after`: rounded up (retrying earlier would be throttled
/// again), at least 1.
pub(crate) fn retry_after_seconds(wait_us: f64) -> u64 {
    let seconds = (wait_us / 1_000_000.0).ceil();
    if seconds.is_finite() && seconds >= 1.0 {
        // Float to int casts saturate, so an absurd interval cannot wrap.
        seconds as u64
    } else {
        1
    }
}

#[cfg(test)]
mod tests;
