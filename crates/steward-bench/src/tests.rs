use std::time::Duration;

use hdrhistogram::Histogram;

use super::*;
use crate::report::LatencySummary;

#[test]
fn durations_parse() {
    assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
    assert!(parse_duration("fast").is_err());
}

#[test]
fn percentiles_come_from_the_histogram() {
    let mut h = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).unwrap();
    for micros in 1..=1000u64 {
        h.record(micros * 10).unwrap();
    }
    let l = LatencySummary::from_histogram(&h);
    assert_eq!(l.count, 1000);
    assert!((l.p50_ms - 5.0).abs() < 0.01, "{l:?}");
    assert!((l.p90_ms - 9.0).abs() < 0.01, "{l:?}");
    assert!((l.p99_ms - 9.9).abs() < 0.01, "{l:?}");
    assert!((l.max_ms - 10.0).abs() < 0.01, "{l:?}");
}

#[test]
fn mix_is_parsed_and_spread() {
    let mix = steward::parse_mix("allowed=90,denied=5,approval=5").unwrap();
    assert_eq!(mix.len(), 3);
    let schedule = steward::mix_schedule(&[90, 5, 5]);
    assert_eq!(schedule.len(), 100);
    assert_eq!(schedule.iter().filter(|k| **k == 1).count(), 5);
    assert_eq!(schedule.iter().filter(|k| **k == 2).count(), 5);
    // Spread: no two denied requests next to each other.
    assert!(schedule.windows(2).all(|w| !(w[0] == 1 && w[1] == 1)));
    assert!(steward::parse_mix("bogus=1").is_err());
    assert!(steward::parse_mix("allowed=0").is_err());
}

#[test]
fn error_bodies_are_classified_by_code() {
    assert_eq!(load::classify_status(200, b""), "ok");
    assert_eq!(load::classify_status(202, b"{}"), "approval_required");
    assert_eq!(load::classify_status(403, br#"{"error":"policy_deny","message":"m"}"#), "policy_deny");
    assert_eq!(load::classify_status(502, b"<html>"), "http_502");
}

#[test]
fn json_bodies_have_the_requested_size() {
    for size in [10, 11, 1024, 65536] {
        let body = upstream::json_of_size(size);
        assert_eq!(body.len(), size);
        serde_json::from_slice::<serde_json::Value>(&body).unwrap();
    }
}

/// The whole harness against the direct baseline only (no Steward, no nginx), briefly, in both modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_direct_baseline_runs_and_reports() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut options = BenchOptions {
        duration: Duration::from_millis(800),
        warmup: Duration::from_millis(100),
        connections: 4,
        rate: None,
        body_bytes: 256,
        response_bytes: 512,
        dpop: false,
        mix: "allowed=100".into(),
        postgres_url: None,
        redis_url: None,
        nginx: NginxChoice::Off,
        targets: vec!["direct".into()],
        command: "test".into(),
    };
    let report = run(&options).await.unwrap();
    let direct = report.phase("direct").unwrap();
    assert!(direct.requests > 10, "{direct:?}");
    assert_eq!(direct.outcomes.get("ok"), Some(&direct.requests), "{direct:?}");
    assert!(direct.latency.p50_ms > 0.0 && direct.latency.p50_ms <= direct.latency.p99_ms);
    assert!(report.ratios.steward_over_direct.is_none());
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert!(json["phases"][0]["requests_per_second"].as_f64().unwrap() > 0.0);
    assert!(report.to_text().contains("direct"));

    options.rate = Some(200.0);
    let report = run(&options).await.unwrap();
    let direct = report.phase("direct").unwrap();
    // 200/s over 0.8 s: about 160 requests, each measured from its scheduled time.
    assert!((120..=200).contains(&direct.requests), "{direct:?}");
    assert_eq!(direct.target_rate, Some(200.0));
}
