//! The coordination conformance suite, written once and run against both implementations: the embedded
//! one on a `ManualClock`, the Redis one on the local Redis with real (short) sleeps. Each Redis test
//! uses its own key prefix, so tests run in parallel.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use steward_coord::{
    BucketSpec, Coordinator, EmbeddedCoordinator, LockAttempt, RedisCoordinator, TakeOutcome,
};
use steward_types::{Clock, ManualClock};

/// What a test needs from an implementation: an instance, a second instance sharing its state (another
/// server process, for Redis), and a way to let time pass.
#[async_trait]
trait Harness: Send + Sync {
    fn coord(&self) -> Arc<dyn Coordinator>;
    fn peer(&self) -> Arc<dyn Coordinator>;
    async fn advance(&self, by: Duration);
}

struct Embedded {
    clock: Arc<ManualClock>,
    coord: Arc<EmbeddedCoordinator>,
}

#[async_trait]
impl Harness for Embedded {
    fn coord(&self) -> Arc<dyn Coordinator> {
        self.coord.clone()
    }
    fn peer(&self) -> Arc<dyn Coordinator> {
        // One process: every handle shares the one state.
        self.coord.clone()
    }
    async fn advance(&self, by: Duration) {
        let millis = i64::try_from(by.as_millis()).expect("test durations are small");
        self.clock.set(self.clock.now().plus_millis(millis));
    }
}

async fn embedded() -> Result<Embedded> {
    let clock = Arc::new(ManualClock::starting_now());
    let coord = Arc::new(EmbeddedCoordinator::new(clock.clone()));
    Ok(Embedded { clock, coord })
}

struct Redis {
    a: Arc<RedisCoordinator>,
    b: Arc<RedisCoordinator>,
}

#[async_trait]
impl Harness for Redis {
    fn coord(&self) -> Arc<dyn Coordinator> {
        self.a.clone()
    }
    fn peer(&self) -> Arc<dyn Coordinator> {
        self.b.clone()
    }
    async fn advance(&self, by: Duration) {
        // Redis keeps time itself (TIME, PX): only real time passes there.
        tokio::time::sleep(by).await;
    }
}

async fn redis() -> Result<Redis> {
    let url = steward_testkit::redis_url();
    let prefix = steward_testkit::unique_redis_prefix();
    // Two separate connections on one prefix: two server instances of one deployment.
    let a = RedisCoordinator::connect(&url, &prefix).await?;
    let b = RedisCoordinator::connect(&url, &prefix).await?;
    Ok(Redis { a: Arc::new(a), b: Arc::new(b) })
}

fn bucket(key: &str, capacity: u32, interval: Duration) -> BucketSpec {
    BucketSpec { key: key.to_owned(), capacity, interval }
}

const TTL: Duration = Duration::from_millis(300);
const PAST_TTL: Duration = Duration::from_millis(450);

mod cases {
    use super::*;

    pub async fn ping_answers(h: &dyn Harness) -> Result<()> {
        h.coord().ping().await?;
        Ok(())
    }

    pub async fn replay_is_detected_until_the_ttl_passes(h: &dyn Harness) -> Result<()> {
        let c = h.coord();
        assert!(c.remember_once("jkt1:jti-a", TTL).await?, "first sight");
        assert!(!c.remember_once("jkt1:jti-a", TTL).await?, "replay");
        assert!(c.remember_once("jkt1:jti-b", TTL).await?, "another jti is independent");
        assert!(c.remember_once("jkt2:jti-a", TTL).await?, "the same jti under another key is independent");
        h.advance(PAST_TTL).await;
        assert!(c.remember_once("jkt1:jti-a", TTL).await?, "forgotten after the ttl");
        assert!(!c.remember_once("jkt1:jti-a", TTL).await?, "and remembered again");
        Ok(())
    }

    pub async fn replay_state_is_shared_between_instances(h: &dyn Harness) -> Result<()> {
        assert!(h.coord().remember_once("k:j", Duration::from_secs(30)).await?);
        assert!(!h.peer().remember_once("k:j", Duration::from_secs(30)).await?, "the peer sees the replay");
        Ok(())
    }

    pub async fn concurrent_first_sightings_admit_exactly_one(h: &dyn Harness) -> Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20 {
            let c = if i % 2 == 0 { h.coord() } else { h.peer() };
            tasks.spawn(async move { c.remember_once("race", Duration::from_secs(30)).await });
        }
        let mut firsts = 0;
        while let Some(done) = tasks.join_next().await {
            if done?? {
                firsts += 1;
            }
        }
        assert_eq!(firsts, 1);
        Ok(())
    }

    pub async fn an_exhausted_bucket_throttles_with_retry_after(h: &dyn Harness) -> Result<()> {
        let c = h.coord();
        let b = [bucket("rule1:w1", 3, Duration::from_secs(30))];
        for _ in 0..3 {
            assert_eq!(c.take_tokens(&b).await?, TakeOutcome::Taken);
        }
        // 3 per 30 s: one token every 10 s; almost no time has passed.
        assert_eq!(c.take_tokens(&b).await?, TakeOutcome::Throttled { retry_after_seconds: 10 });
        assert_eq!(
            h.peer().take_tokens(&b).await?,
            TakeOutcome::Throttled { retry_after_seconds: 10 },
            "another instance sees the same bucket"
        );
        Ok(())
    }

    pub async fn retry_after_is_at_least_one_second(h: &dyn Harness) -> Result<()> {
        let c = h.coord();
        let b = [bucket("fast", 10, Duration::from_millis(100))];
        for _ in 0..10 {
            c.take_tokens(&b).await?;
        }
        match c.take_tokens(&b).await? {
            TakeOutcome::Throttled { retry_after_seconds } => assert_eq!(retry_after_seconds, 1),
            // Real time may have refilled a token (10 ms per token) on a slow machine: then no claim.
            TakeOutcome::Taken => {}
        }
        Ok(())
    }

    pub async fn buckets_refill_evenly_over_the_interval(h: &dyn Harness) -> Result<()> {
        let c = h.coord();
        // 2 per second: one token every 500 ms.
        let b = [bucket("refill", 2, Duration::from_secs(1))];
        assert_eq!(c.take_tokens(&b).await?, TakeOutcome::Taken);
        assert_eq!(c.take_tokens(&b).await?, TakeOutcome::Taken);
        assert!(matches!(c.take_tokens(&b).await?, TakeOutcome::Throttled { retry_after_seconds: 1 }));
        h.advance(Duration::from_millis(600)).await;
        assert_eq!(c.take_tokens(&b).await?, TakeOutcome::Taken, "one token back after 500 ms");
        assert!(matches!(c.take_tokens(&b).await?, TakeOutcome::Throttled { .. }), "only one");
        h.advance(Duration::from_millis(1_100)).await;
        for _ in 0..2 {
            assert_eq!(c.take_tokens(&b).await?, TakeOutcome::Taken, "full again after the interval");
        }
        assert!(
            matches!(c.take_tokens(&b).await?, TakeOutcome::Throttled { .. }),
            "but never above capacity"
        );
        Ok(())
    }

    pub async fn tokens_are_taken_from_all_buckets_or_none(h: &dyn Harness) -> Result<()> {
        let c = h.coord();
        let a = bucket("rule-a", 1, Duration::from_secs(10));
        let b = bucket("rule-b", 1, Duration::from_secs(30));
        assert_eq!(c.take_tokens(std::slice::from_ref(&a)).await?, TakeOutcome::Taken);
        // `a` is empty: nothing is taken from `b`.
        assert_eq!(
            c.take_tokens(&[a.clone(), b.clone()]).await?,
            TakeOutcome::Throttled { retry_after_seconds: 10 }
        );
        assert_eq!(c.take_tokens(std::slice::from_ref(&b)).await?, TakeOutcome::Taken, "b kept its token");
        // Both empty: retry-after is when every empty bucket has a token again (the later one).
        assert_eq!(c.take_tokens(&[a, b]).await?, TakeOutcome::Throttled { retry_after_seconds: 30 });
        Ok(())
    }

    pub async fn buckets_are_isolated_per_key(h: &dyn Harness) -> Result<()> {
        let c = h.coord();
        let w1 = [bucket("rule:w1", 1, Duration::from_secs(60))];
        let w2 = [bucket("rule:w2", 1, Duration::from_secs(60))];
        assert_eq!(c.take_tokens(&w1).await?, TakeOutcome::Taken);
        assert!(matches!(c.take_tokens(&w1).await?, TakeOutcome::Throttled { .. }));
        assert_eq!(c.take_tokens(&w2).await?, TakeOutcome::Taken);
        // A lock or jti with the same key string lives in another namespace.
        assert!(c.remember_once("rule:w1", TTL).await?);
        assert!(c.try_lock("rule:w1", "fp", TTL).await?.acquired().is_some());
        Ok(())
    }

    pub async fn degenerate_bucket_lists(h: &dyn Harness) -> Result<()> {
        let c = h.coord();
        assert_eq!(c.take_tokens(&[]).await?, TakeOutcome::Taken, "no matching rule: nothing to take");
        let zero = bucket("zero", 0, Duration::from_secs(20));
        let one = bucket("one", 1, Duration::from_secs(20));
        assert_eq!(
            c.take_tokens(&[one.clone(), zero]).await?,
            TakeOutcome::Throttled { retry_after_seconds: 20 }
        );
        assert_eq!(c.take_tokens(std::slice::from_ref(&one)).await?, TakeOutcome::Taken, "one was untouched");
        let dup = bucket("dup", 1, Duration::from_secs(20));
        assert_eq!(c.take_tokens(&[dup.clone(), dup]).await?, TakeOutcome::Taken, "one bucket, charged once");
        Ok(())
    }

    pub async fn concurrent_takes_never_exceed_capacity(h: &dyn Harness) -> Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..30 {
            let c = if i % 2 == 0 { h.coord() } else { h.peer() };
            tasks.spawn(async move {
                c.take_tokens(&[
                    bucket("hot", 5, Duration::from_secs(60)),
                    bucket("warm", 100, Duration::from_secs(60)),
                ])
                .await
            });
        }
        let mut taken = 0;
        while let Some(done) = tasks.join_next().await {
            if done?? == TakeOutcome::Taken {
                taken += 1;
            }
        }
        assert_eq!(taken, 5);
        // All-or-none under contention: "warm" lost exactly the 5 tokens "hot" admitted.
        let warm = [bucket("warm", 100, Duration::from_secs(60))];
        for _ in 0..95 {
            assert_eq!(h.coord().take_tokens(&warm).await?, TakeOutcome::Taken);
        }
        assert!(matches!(h.coord().take_tokens(&warm).await?, TakeOutcome::Throttled { .. }));
        Ok(())
    }

    pub async fn a_held_lock_cannot_be_taken_again(h: &dyn Harness) -> Result<()> {
        let c = h.coord();
        let token = c.try_lock("idem:t:w:i:key1", "fp", Duration::from_secs(30)).await?.acquired();
        assert!(token.is_some());
        assert!(c.try_lock("idem:t:w:i:key1", "fp", Duration::from_secs(30)).await?.acquired().is_none());
        assert!(
            h.peer().try_lock("idem:t:w:i:key1", "fp", Duration::from_secs(30)).await?.acquired().is_none(),
            "nor by a peer"
        );
        assert!(
            c.try_lock("idem:t:w:i:key2", "fp", Duration::from_secs(30)).await?.acquired().is_some(),
            "other keys are free"
        );
        Ok(())
    }

    pub async fn a_held_lock_reports_the_fingerprint_of_its_holder(h: &dyn Harness) -> Result<()> {
        let c = h.coord();
        let ttl = Duration::from_secs(30);
        let Some(first) = c.try_lock("idem:fp", "digest-a", ttl).await?.acquired() else {
            anyhow::bail!("not acquired")
        };
        assert_eq!(first.fingerprint(), "digest-a");
        // Whoever asks, and whatever it asks with, learns who holds it: a different request under
        // the key (a conflict) is told apart from the same request still running.
        for (coord, asking) in [(h.coord(), "digest-b"), (h.peer(), "digest-a"), (h.peer(), "digest-b")] {
            assert_eq!(
                coord.try_lock("idem:fp", asking, ttl).await?,
                LockAttempt::Held { fingerprint: Some("digest-a".to_owned()) },
                "asked with {asking}"
            );
        }
        // A fingerprint may contain the separator; the holder's comes back whole.
        let odd = "sha256:abc:def";
        assert!(c.try_lock("idem:odd", odd, ttl).await?.acquired().is_some());
        assert_eq!(
            h.peer().try_lock("idem:odd", "x", ttl).await?,
            LockAttempt::Held { fingerprint: Some(odd.to_owned()) }
        );
        // Released, the next holder registers its own.
        h.peer().unlock("idem:fp", &first).await?;
        let Some(second) = h.peer().try_lock("idem:fp", "digest-b", ttl).await?.acquired() else {
            anyhow::bail!("not acquired after release")
        };
        assert_ne!(second, first);
        assert_eq!(
            c.try_lock("idem:fp", "digest-a", ttl).await?,
            LockAttempt::Held { fingerprint: Some("digest-b".to_owned()) }
        );
        Ok(())
    }

    pub async fn only_the_holder_can_unlock(h: &dyn Harness) -> Result<()> {
        let c = h.coord();
        let Some(mine) = c.try_lock("lk", "fp", Duration::from_secs(30)).await?.acquired() else {
            anyhow::bail!("not acquired")
        };
        let Some(other) = c.try_lock("lk-other", "fp", Duration::from_secs(30)).await?.acquired() else {
            anyhow::bail!("not acquired")
        };
        assert_ne!(mine, other, "tokens are random");
        c.unlock("lk", &other).await?;
        assert!(
            c.try_lock("lk", "fp", Duration::from_secs(30)).await?.acquired().is_none(),
            "a foreign token released nothing"
        );
        h.peer().unlock("lk", &mine).await?;
        let again = c.try_lock("lk", "fp", Duration::from_secs(30)).await?.acquired();
        assert!(again.is_some(), "the holder's token released it (from any instance)");
        // Unlocking what is not held is not an error.
        c.unlock("lk", &mine).await?;
        c.unlock("never-locked", &mine).await?;
        assert!(
            c.try_lock("lk", "fp", Duration::from_secs(30)).await?.acquired().is_none(),
            "a stale unlock released nothing"
        );
        Ok(())
    }

    pub async fn an_expired_lock_is_free_and_its_old_token_is_powerless(h: &dyn Harness) -> Result<()> {
        let c = h.coord();
        let Some(first) = c.try_lock("exp", "fp", TTL).await?.acquired() else {
            anyhow::bail!("not acquired")
        };
        h.advance(PAST_TTL).await;
        let second = c.try_lock("exp", "fp", Duration::from_secs(30)).await?.acquired();
        assert!(second.is_some(), "expiry freed the lock");
        // The first holder, late, must not release its successor's lock.
        c.unlock("exp", &first).await?;
        assert!(c.try_lock("exp", "fp", Duration::from_secs(30)).await?.acquired().is_none());
        Ok(())
    }
}

macro_rules! conformance {
    ($module:ident, $harness:path, [$($case:ident),* $(,)?]) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $case() -> anyhow::Result<()> {
                    let harness = $harness().await?;
                    super::cases::$case(&harness).await
                }
            )*
        }
    };
}

macro_rules! all_cases {
    ($module:ident, $harness:path) => {
        conformance!(
            $module,
            $harness,
            [
                ping_answers,
                replay_is_detected_until_the_ttl_passes,
                replay_state_is_shared_between_instances,
                concurrent_first_sightings_admit_exactly_one,
                an_exhausted_bucket_throttles_with_retry_after,
                retry_after_is_at_least_one_second,
                buckets_refill_evenly_over_the_interval,
                tokens_are_taken_from_all_buckets_or_none,
                buckets_are_isolated_per_key,
                degenerate_bucket_lists,
                concurrent_takes_never_exceed_capacity,
                a_held_lock_cannot_be_taken_again,
                a_held_lock_reports_the_fingerprint_of_its_holder,
                only_the_holder_can_unlock,
                an_expired_lock_is_free_and_its_old_token_is_powerless,
            ]
        );
    };
}

all_cases!(embedded_coordinator, super::embedded);
all_cases!(redis_coordinator, super::redis);
