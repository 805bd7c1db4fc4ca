//! What only the embedded implementation has: memory bounded by the live entries.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use steward_coord::{BucketSpec, Coordinator, EmbeddedCoordinator};
use steward_types::ManualClock;

#[tokio::test]
async fn expired_entries_are_swept_so_memory_stays_bounded() -> Result<()> {
    let clock = Arc::new(ManualClock::starting_now());
    let c = EmbeddedCoordinator::new(clock.clone());
    assert!(!c.is_shared());
    let mut peak = 0;
    // Many rounds of short-lived entries: without sweeping, 30 000 entries per concern would pile up.
    for round in 0..30 {
        for i in 0..1_000 {
            let key = format!("{round}:{i}");
            c.remember_once(&key, Duration::from_secs(1)).await?;
            c.try_lock(&key, "fp", Duration::from_secs(1)).await?;
            c.take_tokens(&[BucketSpec { key, capacity: 10, interval: Duration::from_secs(1) }]).await?;
        }
        clock.advance_seconds(2);
        peak = peak.max(c.stored_entries());
    }
    // Each concern holds at most about twice its live entries (1 000) plus the sweep threshold.
    assert!(peak <= 3 * 2_100, "peak {peak}");
    Ok(())
}
