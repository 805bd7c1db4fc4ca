//! The pure parts shared by both implementations: bucket planning, the GCRA step, rounding.

use std::time::Duration;

use super::*;

fn spec(key: &str, capacity: u32, interval_ms: u64) -> BucketSpec {
    BucketSpec { key: key.to_owned(), capacity, interval: Duration::from_millis(interval_ms) }
}

fn only_bucket(plan: BucketPlan) -> GcraBucket {
    match plan {
        BucketPlan::Buckets(mut b) if b.len() == 1 => b.remove(0),
        _ => panic!("expected exactly one bucket"),
    }
}

#[test]
fn a_full_bucket_admits_exactly_capacity_then_waits_one_emission_interval() {
    // 7 per minute: the emission interval is not a whole number of microseconds.
    let bucket = only_bucket(plan_buckets(&[spec("a", 7, 60_000)]));
    let now = 1_700_000_000_000_000.0;
    let mut tat = None;
    for _ in 0..7 {
        tat = Some(gcra_step(tat, now, &bucket).expect("admitted while tokens remain"));
    }
    let wait = gcra_step(tat, now, &bucket).expect_err("the eighth is throttled");
    assert!((wait - 60_000_000.0 / 7.0).abs() < 1.0, "wait {wait}");
    assert_eq!(retry_after_seconds(wait), 9);
    // One emission interval later exactly one more token is there.
    let later = now + 60_000_000.0 / 7.0;
    let tat = gcra_step(tat, later, &bucket).expect("refilled one token");
    assert!(gcra_step(Some(tat), later, &bucket).is_err());
}

#[test]
fn a_bucket_idle_past_its_tat_is_full_again() {
    let bucket = only_bucket(plan_buckets(&[spec("a", 2, 1_000)]));
    let tat = Some(5_000_000.0);
    // Long after the stored TAT: as if absent, two tokens available.
    let first = gcra_step(tat, 10_000_000.0, &bucket).expect("full");
    assert!(gcra_step(Some(first), 10_000_000.0, &bucket).is_ok());
}

#[test]
fn planning_dedupes_keys_and_short_circuits_zero_capacity() {
    match plan_buckets(&[spec("a", 1, 1_000), spec("a", 5, 9_000), spec("b", 1, 1_000)]) {
        BucketPlan::Buckets(b) => {
            assert_eq!(b.len(), 2);
            assert_eq!(b[0].emission_us, 1_000_000.0, "the first spec of a key wins");
        }
        _ => panic!("expected buckets"),
    }
    assert!(matches!(plan_buckets(&[]), BucketPlan::Empty));
    assert!(matches!(
        plan_buckets(&[spec("a", 1, 1_000), spec("z", 0, 30_000)]),
        BucketPlan::Never { retry_after_seconds: 30 }
    ));
    // A zero interval does not divide by zero.
    let bucket = only_bucket(plan_buckets(&[spec("a", 3, 0)]));
    assert!(bucket.emission_us > 0.0 && bucket.emission_us.is_finite());
}

#[test]
fn rounding_is_up_and_at_least_one() {
    assert_eq!(retry_after_seconds(1.0), 1);
    assert_eq!(retry_after_seconds(1_000_000.0), 1);
    assert_eq!(retry_after_seconds(1_000_001.0), 2);
    assert_eq!(retry_after_seconds(f64::INFINITY), 1);
    assert_eq!(retry_after_seconds(1e300), u64::MAX);
    assert_eq!(ttl_millis(Duration::ZERO), 1);
    assert_eq!(ttl_millis(Duration::from_micros(1_500)), 2);
    assert_eq!(ttl_millis(Duration::from_secs(600)), 600_000);
}
