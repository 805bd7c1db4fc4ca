//! The shared coordinator: Redis, one atomic command or Lua script per operation.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};

use crate::{
    BucketPlan, BucketSpec, CoordError, Coordinator, LockAttempt, LockToken, TakeOutcome, holder_fingerprint,
    plan_buckets, retry_after_seconds, ttl_millis,
};

/// Bound on every operation, including waiting for a reconnection: a dead or hung Redis must turn into a
/// prompt 503, never into requests piling up behind it.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound on the first connection at start-up (a TCP connect plus one retry).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// All-or-none token buckets (GCRA, see `GcraBucket`), mirroring `gcra_step` line by line. Time is
/// Redis server time, so every instance agrees whatever their clocks say. KEYS: the bucket keys; ARGV:
/// per key, the emission interval and the interval in microseconds. Returns {1, 0} when a token was
/// taken from every bucket, {0, wait_us} otherwise (nothing written). Each bucket key expires when the
/// bucket would be full again; a missing key reads as a full bucket. TATs are stored with `%.17g`, which
/// round-trips a double exactly (Lua's `tostring` keeps only 14 digits, too few for unix microseconds).
const TAKE_TOKENS_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local new_tats = {}
local wait = 0
for i = 1, #KEYS do
  local emission = tonumber(ARGV[2 * i - 1])
  local interval = tonumber(ARGV[2 * i])
  local tat = now
  local stored = redis.call('GET', KEYS[i])
  if stored then
    local parsed = tonumber(stored)
    if parsed and parsed > now then tat = parsed end
  end
  local new_tat = tat + emission
  local over = new_tat - now - interval
  if over > 0 then
    if over > wait then wait = over end
  end
  new_tats[i] = new_tat
end
if wait > 0 then
  return {0, math.ceil(wait)}
end
for i = 1, #KEYS do
  local ttl_ms = math.ceil((new_tats[i] - now) / 1000)
  if ttl_ms < 1 then ttl_ms = 1 end
  redis.call('SET', KEYS[i], string.format('%.17g', new_tats[i]), 'PX', string.format('%.0f', ttl_ms))
end
return {1, 0}
";

/// Reads the replay epoch, creating it when it is missing (a fresh or emptied Redis) at the server's
/// current second minus one: a proof made in the instant before the first check after the loss
/// (whole-second `iat`) is not refused for nothing, while a proof could only have been used — and
/// forgotten — within that one second before the loss. It never expires: as long as it exists, every
/// jti remembered since it was set is still remembered (jtis expire long after their proofs).
const REPLAY_EPOCH_LUA: &str = r"
local epoch = redis.call('GET', KEYS[1])
if epoch then return tonumber(epoch) end
local now = redis.call('TIME')
redis.call('SET', KEYS[1], tonumber(now[1]) - 1, 'NX')
return tonumber(redis.call('GET', KEYS[1]))
";

/// Takes the lock, or reads who holds it, in one atomic step: `SET NX PX` and, when the key is taken,
/// `GET` of the holder's value (its token and fingerprint). KEYS: the lock; ARGV: the value, the TTL
/// in milliseconds. Returns {1, nil} when acquired, {0, holder} otherwise.
const TRY_LOCK_LUA: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, false}
end
return {0, redis.call('GET', KEYS[1])}
";

/// Compare-and-delete: releases the lock only while it still holds this token (the whole stored value).
const UNLOCK_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Coordination state in Redis, shared by every instance configured with the same key prefix.
///
/// Built on [`ConnectionManager`], which reconnects by itself once Redis answers again, so service
/// recovers without a restart. Every key lives under `<prefix>:` (`<prefix>:jti:…`, `<prefix>:rl:…`,
/// `<prefix>:lock:…`). Meant for a single Redis (or a Sentinel-managed primary): the bucket script
/// touches several keys, which Redis Cluster would only allow within one hash slot.
#[derive(Clone)]
pub struct RedisCoordinator {
    conn: ConnectionManager,
    prefix: String,
    take_tokens_script: Script,
    try_lock_script: Script,
    unlock_script: Script,
    replay_epoch_script: Script,
}

impl std::fmt::Debug for RedisCoordinator {
    // Not derived: the connection's Debug would print the client's connection info, which can carry the
    // Redis password from the URL.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCoordinator").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisCoordinator {
    /// Connects and checks that Redis answers (PING). Fails with [`CoordError::Unavailable`] when it does
    /// not answer within a couple of seconds, so the server refuses to start against a missing Redis;
    /// once connected, outages surface per operation and heal by themselves.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self, CoordError> {
        if key_prefix.is_empty() || key_prefix.contains(char::is_whitespace) {
            return Err(CoordError::InvalidConfig(
                "the Redis key prefix must be non-empty and contain no whitespace".to_owned(),
            ));
        }
        // The URL can carry a password, so no error message repeats it.
        let client = redis::Client::open(url)
            .map_err(|e| CoordError::InvalidConfig(format!("Redis URL not usable ({:?})", e.kind())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OPERATION_TIMEOUT))
            .set_response_timeout(Some(OPERATION_TIMEOUT))
            // Few, short retries per reconnection: each failed operation triggers a fresh attempt anyway,
            // and a long backoff would delay recovery after Redis comes back.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn =
            match tokio::time::timeout(CONNECT_TIMEOUT, ConnectionManager::new_with_config(client, config))
                .await
            {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => return Err(CoordError::Unavailable(format!("connecting to Redis: {e}"))),
                Err(_) => {
                    return Err(CoordError::Unavailable(format!(
                        "connecting to Redis: no answer within {CONNECT_TIMEOUT:?}"
                    )));
                }
            };
        let coordinator = Self {
            conn,
            prefix: key_prefix.to_owned(),
            take_tokens_script: Script::new(TAKE_TOKENS_LUA),
            try_lock_script: Script::new(TRY_LOCK_LUA),
            unlock_script: Script::new(UNLOCK_LUA),
            replay_epoch_script: Script::new(REPLAY_EPOCH_LUA),
        };
        coordinator.ping().await?;
        // Set the epoch at start-up (if this Redis has none yet), before any proof reaches this
        // instance, so only a Redis that later loses its contents moves it forward.
        coordinator.replay_memory_since().await?;
        Ok(coordinator)
    }

    /// The key prefix every key of this coordinator lives under.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, concern: &str, key: &str) -> String {
        format!("{}:{concern}:{key}", self.prefix)
    }

    /// Runs one Redis operation under the timeout, mapping every failure to `Unavailable`.
    async fn bounded<T>(
        &self,
        operation: &'static str,
        future: impl Future<Output = RedisResult<T>> + Send,
    ) -> Result<T, CoordError> {
        match tokio::time::timeout(OPERATION_TIMEOUT, future).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                tracing::warn!(operation, error = %e, "Redis operation failed");
                Err(CoordError::Unavailable(format!("Redis {operation}: {e}")))
            }
            Err(_) => {
                tracing::warn!(operation, "Redis operation timed out");
                Err(CoordError::Unavailable(format!(
                    "Redis {operation}: no answer within {OPERATION_TIMEOUT:?}"
                )))
            }
        }
    }

    /// `SET key value NX PX ttl`: true when the key was set (was absent).
    async fn set_nx_px(
        &self,
        operation: &'static str,
        key: String,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, CoordError> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("NX").arg("PX").arg(ttl_millis(ttl));
        let reply: Option<String> =
            self.bounded(operation, async move { cmd.query_async(&mut conn).await }).await?;
        Ok(reply.is_some())
    }
}

#[async_trait]
impl Coordinator for RedisCoordinator {
    async fn ping(&self) -> Result<(), CoordError> {
        let mut conn = self.conn.clone();
        let reply: String =
            self.bounded("PING", async move { redis::cmd("PING").query_async(&mut conn).await }).await?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(CoordError::Unavailable(format!("Redis PING answered {reply:?}")))
        }
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn remember_once(&self, key: &str, ttl: Duration) -> Result<bool, CoordError> {
        self.set_nx_px("remember_once", self.key("jti", key), "1", ttl).await
    }

    async fn replay_memory_since(&self) -> Result<Option<i64>, CoordError> {
        let invocation = self.replay_epoch_script.key(self.key("jti-epoch", "v1"));
        let mut conn = self.conn.clone();
        let epoch: i64 =
            self.bounded("replay_epoch", async move { invocation.invoke_async(&mut conn).await }).await?;
        Ok(Some(epoch))
    }

    async fn take_tokens(&self, buckets: &[BucketSpec]) -> Result<TakeOutcome, CoordError> {
        let planned = match plan_buckets(buckets) {
            BucketPlan::Empty => return Ok(TakeOutcome::Taken),
            BucketPlan::Never { retry_after_seconds } => {
                return Ok(TakeOutcome::Throttled { retry_after_seconds });
            }
            BucketPlan::Buckets(planned) => planned,
        };
        let mut invocation = self.take_tokens_script.prepare_invoke();
        for bucket in &planned {
            // `Display` for f64 prints the shortest string that parses back to the same value.
            invocation.key(self.key("rl", &bucket.key));
            invocation.arg(bucket.emission_us.to_string()).arg(bucket.interval_us.to_string());
        }
        let mut conn = self.conn.clone();
        let (taken, wait_us): (i64, i64) =
            self.bounded("take_tokens", async move { invocation.invoke_async(&mut conn).await }).await?;
        if taken == 1 {
            Ok(TakeOutcome::Taken)
        } else {
            Ok(TakeOutcome::Throttled { retry_after_seconds: retry_after_seconds(wait_us as f64) })
        }
    }

    async fn try_lock(&self, key: &str, fingerprint: &str, ttl: Duration) -> Result<LockAttempt, CoordError> {
        let token = LockToken::generate(fingerprint);
        let mut invocation = self.try_lock_script.key(self.key("lock", key));
        invocation.arg(token.as_str()).arg(ttl_millis(ttl));
        let mut conn = self.conn.clone();
        let (acquired, holder): (i64, Option<String>) =
            self.bounded("try_lock", async move { invocation.invoke_async(&mut conn).await }).await?;
        if acquired == 1 {
            return Ok(LockAttempt::Acquired(token));
        }
        let fingerprint = holder.as_deref().and_then(holder_fingerprint).map(str::to_owned);
        Ok(LockAttempt::Held { fingerprint })
    }

    async fn unlock(&self, key: &str, token: &LockToken) -> Result<(), CoordError> {
        let mut invocation = self.unlock_script.key(self.key("lock", key));
        invocation.arg(token.as_str());
        let mut conn = self.conn.clone();
        let _released: i64 =
            self.bounded("unlock", async move { invocation.invoke_async(&mut conn).await }).await?;
        Ok(())
    }
}
