//! What only the Redis implementation has: key layout and expiry, prefixes, start-up checks, and
//! behaviour when Redis dies or hangs and comes back. Outage tests run their own `redis-server` child
//! on a free port, so the shared local Redis is never disturbed.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use steward_coord::{BucketSpec, CoordError, Coordinator, LockAttempt, RedisCoordinator, TakeOutcome};
use steward_testkit::free_port;

async fn local() -> Result<(RedisCoordinator, String)> {
    let prefix = steward_testkit::unique_redis_prefix();
    Ok((RedisCoordinator::connect(&steward_testkit::redis_url(), &prefix).await?, prefix))
}

async fn raw() -> Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(steward_testkit::redis_url())?;
    Ok(client.get_multiplexed_async_connection().await?)
}

async fn pttl(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Result<i64> {
    Ok(redis::cmd("PTTL").arg(key).query_async(conn).await?)
}

#[tokio::test]
async fn every_key_lives_under_the_prefix_and_expires() -> Result<()> {
    let (c, prefix) = local().await?;
    assert!(c.is_shared());
    assert_eq!(c.key_prefix(), prefix);
    c.remember_once("jkt:jti", Duration::from_secs(600)).await?;
    c.take_tokens(&[BucketSpec { key: "r:w".into(), capacity: 4, interval: Duration::from_secs(60) }])
        .await?;
    c.try_lock("idem", "fp", Duration::from_secs(45)).await?;

    let mut conn = raw().await?;
    let mut keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut conn).await?;
    keys.sort();
    assert_eq!(
        keys,
        [
            format!("{prefix}:jti-epoch:v1"),
            format!("{prefix}:jti:jkt:jti"),
            format!("{prefix}:lock:idem"),
            format!("{prefix}:rl:r:w")
        ]
    );
    assert_eq!(
        pttl(&mut conn, &format!("{prefix}:jti-epoch:v1")).await?,
        -1,
        "the replay epoch never expires"
    );

    let jti = pttl(&mut conn, &format!("{prefix}:jti:jkt:jti")).await?;
    assert!((599_000..=600_000).contains(&jti), "jti ttl {jti}");
    let lock = pttl(&mut conn, &format!("{prefix}:lock:idem")).await?;
    assert!((44_000..=45_000).contains(&lock), "lock ttl {lock}");
    // One token of 4 per minute taken: full again 15 s later, and then forgotten.
    let bucket = pttl(&mut conn, &format!("{prefix}:rl:r:w")).await?;
    assert!((14_000..=15_000).contains(&bucket), "bucket ttl {bucket}");
    Ok(())
}

#[tokio::test]
async fn the_replay_epoch_is_set_at_connect_and_moves_only_when_redis_lost_its_contents() -> Result<()> {
    let (c, prefix) = local().await?;
    let mut conn = raw().await?;
    let server_now = || async {
        let mut conn = raw().await?;
        let (seconds, _micros): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await?;
        anyhow::Ok(seconds)
    };
    let at_connect = c.replay_memory_since().await?.context("Redis reports an epoch")?;
    assert!(at_connect <= server_now().await?);
    // A second instance connecting later keeps the epoch: nothing was lost.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let other = RedisCoordinator::connect(&steward_testkit::redis_url(), &prefix).await?;
    assert_eq!(other.replay_memory_since().await?, Some(at_connect));
    // Redis "restarted empty" (the prefix's keys are gone): the epoch moves to now, so proofs issued
    // before it — whose jtis were forgotten — can be refused.
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut conn).await?;
    let _: i64 = redis::cmd("DEL").arg(keys).query_async(&mut conn).await?;
    let after_loss = c.replay_memory_since().await?.context("a new epoch")?;
    assert!(after_loss > at_connect, "{after_loss} > {at_connect}");
    assert_eq!(after_loss, server_now().await? - 1, "the second before the first check after the loss");
    Ok(())
}

#[tokio::test]
async fn a_throttled_take_writes_nothing() -> Result<()> {
    let (c, prefix) = local().await?;
    let a = BucketSpec { key: "a".into(), capacity: 1, interval: Duration::from_secs(60) };
    let b = BucketSpec { key: "b".into(), capacity: 1, interval: Duration::from_secs(60) };
    c.take_tokens(std::slice::from_ref(&a)).await?;
    assert!(matches!(c.take_tokens(&[a, b]).await?, TakeOutcome::Throttled { .. }));
    let mut conn = raw().await?;
    let exists: i64 = redis::cmd("EXISTS").arg(format!("{prefix}:rl:b")).query_async(&mut conn).await?;
    assert_eq!(exists, 0);
    Ok(())
}

#[tokio::test]
async fn a_lock_without_a_fingerprint_reads_as_held_by_an_unknown_request() -> Result<()> {
    // A bare token, as an instance that registered no fingerprint stored it (rolling upgrade).
    let (c, prefix) = local().await?;
    let mut conn = raw().await?;
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}:lock:old"))
        .arg("0123456789abcdef0123456789abcdef")
        .arg("PX")
        .arg(30_000)
        .query_async(&mut conn)
        .await?;
    assert_eq!(
        c.try_lock("old", "fp", Duration::from_secs(30)).await?,
        LockAttempt::Held { fingerprint: None }
    );
    Ok(())
}

#[tokio::test]
async fn different_prefixes_do_not_share_state() -> Result<()> {
    let (a, _) = local().await?;
    let (b, _) = local().await?;
    assert!(a.remember_once("k", Duration::from_secs(30)).await?);
    assert!(b.remember_once("k", Duration::from_secs(30)).await?);
    assert!(a.try_lock("k", "fp", Duration::from_secs(30)).await?.acquired().is_some());
    assert!(b.try_lock("k", "fp", Duration::from_secs(30)).await?.acquired().is_some());
    Ok(())
}

#[tokio::test]
async fn bad_configuration_is_rejected() -> Result<()> {
    let url = steward_testkit::redis_url();
    assert!(matches!(RedisCoordinator::connect(&url, "").await, Err(CoordError::InvalidConfig(_))));
    assert!(matches!(RedisCoordinator::connect(&url, "a b").await, Err(CoordError::InvalidConfig(_))));
    let bad = RedisCoordinator::connect("notredis://user:hunter2@host", "p").await;
    match bad {
        Err(CoordError::InvalidConfig(message)) => assert!(!message.contains("hunter2"), "{message}"),
        other => bail!("expected InvalidConfig, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn connect_fails_promptly_when_nothing_listens() -> Result<()> {
    let port = free_port()?;
    let started = Instant::now();
    let result = RedisCoordinator::connect(&format!("redis://127.0.0.1:{port}"), "p").await;
    assert!(matches!(result, Err(CoordError::Unavailable(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    Ok(())
}

#[tokio::test]
async fn connect_fails_promptly_when_the_server_never_answers() -> Result<()> {
    // Accepts TCP (the kernel completes the handshake into the backlog) but never speaks RESP.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let started = Instant::now();
    let result = RedisCoordinator::connect(&format!("redis://127.0.0.1:{port}"), "p").await;
    assert!(matches!(result, Err(CoordError::Unavailable(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    drop(listener);
    Ok(())
}

/// A private `redis-server` child on a fixed port, killed when dropped.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start(port: u16) -> Result<Self> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("redis-server must be installed for the outage tests")?;
        Ok(Self { child, port })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    fn signal(&self, signal: &str) -> Result<()> {
        let status =
            Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status()?;
        anyhow::ensure!(status.success(), "kill -{signal} failed");
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects once the child accepts connections (it needs a moment to start).
async fn connect_when_ready(server: &RedisServer, prefix: &str) -> Result<RedisCoordinator> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match RedisCoordinator::connect(&server.url(), prefix).await {
            Ok(c) => return Ok(c),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Every call fails with `Unavailable`, each within about the one-second bound (a hung server costs the
/// full timeout per call, a dead one much less).
async fn assert_unavailable(c: &RedisCoordinator, rounds: usize) -> Result<()> {
    let spec = [BucketSpec { key: "b".into(), capacity: 5, interval: Duration::from_secs(60) }];
    for _ in 0..rounds {
        let mut results = Vec::new();
        let started = Instant::now();
        results.push(c.ping().await.err());
        results.push(c.remember_once("j", Duration::from_secs(5)).await.err());
        results.push(c.take_tokens(&spec).await.err());
        results.push(c.try_lock("l", "fp", Duration::from_secs(5)).await.err());
        let per_call = started.elapsed() / u32::try_from(results.len())?;
        for result in results {
            assert!(matches!(result, Some(CoordError::Unavailable(_))), "{result:?}");
        }
        assert!(per_call < Duration::from_millis(1_500), "{per_call:?} per call");
    }
    Ok(())
}

/// Service resumes by itself: some call succeeds within a few seconds, with no new `connect`.
async fn assert_recovers(c: &RedisCoordinator) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.ping().await.is_err() {
        if Instant::now() > deadline {
            bail!("did not recover within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(c.remember_once("after", Duration::from_secs(5)).await?);
    assert!(!c.remember_once("after", Duration::from_secs(5)).await?);
    let spec = [BucketSpec { key: "after".into(), capacity: 1, interval: Duration::from_secs(60) }];
    assert_eq!(c.take_tokens(&spec).await?, TakeOutcome::Taken, "scripts are reloaded into the new server");
    let Some(token) = c.try_lock("after", "fp", Duration::from_secs(5)).await?.acquired() else {
        bail!("lock not acquired")
    };
    c.unlock("after", &token).await?;
    Ok(())
}

#[tokio::test]
async fn a_dead_redis_gives_unavailable_and_service_recovers_when_it_returns() -> Result<()> {
    let port = free_port()?;
    let mut server = RedisServer::start(port)?;
    let c = connect_when_ready(&server, &steward_testkit::unique_redis_prefix()).await?;
    assert!(c.remember_once("before", Duration::from_secs(60)).await?);

    let Some(token) = c.try_lock("held", "fp", Duration::from_secs(60)).await?.acquired() else {
        bail!("not acquired")
    };
    server.kill()?;
    assert_unavailable(&c, 3).await?;
    assert!(matches!(c.unlock("held", &token).await, Err(CoordError::Unavailable(_))));

    let _server = RedisServer::start(port)?;
    assert_recovers(&c).await?;
    Ok(())
}

#[tokio::test]
async fn a_hung_redis_gives_unavailable_promptly_and_service_recovers() -> Result<()> {
    let port = free_port()?;
    let server = RedisServer::start(port)?;
    let c = connect_when_ready(&server, &steward_testkit::unique_redis_prefix()).await?;
    c.ping().await?;

    // A stopped process keeps its sockets open but answers nothing: the timeout must fire.
    server.signal("STOP")?;
    let outcome = assert_unavailable(&c, 1).await;
    server.signal("CONT")?;
    outcome?;
    assert_recovers(&c).await?;
    Ok(())
}
