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

/// Options for a short in-process run of `targets`: no baselines, no seeding, small bodies.
fn quick_options(duration: Duration, connections: usize, targets: &[&str]) -> BenchOptions {
    BenchOptions {
        duration,
        warmup: Duration::from_millis(100),
        connections,
        rate: None,
        body_bytes: 256,
        response_bytes: 512,
        dpop: false,
        mix: "allowed=100".into(),
        postgres_url: None,
        redis_url: None,
        nginx: NginxChoice::Off,
        oha: crate::oha::OhaChoice::Off,
        targets: targets.iter().map(|target| (*target).to_owned()).collect(),
        sse_connections: 2,
        stream_bytes: 1 << 20,
        stream_runs: 1,
        seed_scale: 0.0,
        seed_audit_events: None,
        seed_dir: std::env::temp_dir(),
        session_ttl_seconds: None,
        command: "test".into(),
    }
}

/// The whole harness against the direct baseline only (no Steward, no nginx), briefly, in both modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_direct_baseline_runs_and_reports() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut options = quick_options(Duration::from_millis(800), 4, &["direct"]);
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

#[test]
fn sizes_parse() {
    assert_eq!(parse_size("100MiB"), Ok(100 * 1024 * 1024));
    assert_eq!(parse_size("64KiB"), Ok(65_536));
    assert_eq!(parse_size("1GiB"), Ok(1 << 30));
    assert_eq!(parse_size("10MB"), Ok(10_000_000));
    assert_eq!(parse_size("1kB"), Ok(1_000));
    assert_eq!(parse_size("4096"), Ok(4096));
    assert_eq!(parse_size(" 12 B "), Ok(12));
    assert!(parse_size("MiB").is_err());
    assert!(parse_size("1.5MiB").is_err());
    assert!(parse_size("10 parsecs").is_err());
    assert!(parse_size("99999999999999999999GiB").is_err());
}

#[test]
fn targets_expand_in_run_order() {
    let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        expand_targets(&names(&["forward", "direct", "steward", "nginx"])).unwrap(),
        names(&["direct", "nginx", "steward", "forward"])
    );
    assert_eq!(expand_targets(&names(&["sse"])).unwrap(), names(&["sse-direct", "sse-nginx", "sse-forward"]));
    assert_eq!(
        expand_targets(&names(&["stream", "stream-forward"])).unwrap(),
        names(&["stream-direct", "stream-forward", "stream-nginx"])
    );
    assert_eq!(
        expand_targets(&names(&["oha", "nginx", "steward"])).unwrap(),
        names(&["nginx", "oha-nginx", "steward", "oha-steward", "oha-forward"])
    );
    assert_eq!(expand_targets(&names(&["all"])).unwrap().len(), TARGETS.len());
    assert!(expand_targets(&names(&["ssex"])).unwrap_err().contains("ssex"));
    assert!(expand_targets(&names(&["sse-"])).is_err());
    assert!(expand_targets(&names(&[""])).is_err());
}

#[test]
fn forward_error_bodies_are_classified_by_their_nested_code() {
    let body =
        br#"{"type":"error","error":{"type":"approval_required","code":"approval_required","message":"m"}}"#;
    assert_eq!(load::classify_status(403, body), "approval_required");
    assert_eq!(load::classify_status(403, br#"{"error":{"message":"no code"}}"#), "http_403");
}

#[test]
fn upstream_stream_helpers() {
    assert_eq!(upstream::blob_bytes(Some("bytes=104857600")), Some(104_857_600));
    assert_eq!(upstream::blob_bytes(Some("x=1&bytes=5")), Some(5));
    assert_eq!(upstream::blob_bytes(Some("bytes=lots")), None);
    assert_eq!(upstream::blob_bytes(None), None);
    let event = upstream::sse_event(3);
    let text = std::str::from_utf8(&event).unwrap();
    assert!(text.starts_with("event: delta\ndata: {") && text.ends_with("\n\n"), "{text:?}");
    let data: serde_json::Value =
        serde_json::from_str(text.lines().nth(1).unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(data["index"], 3);
}

#[test]
fn forward_calls_keep_method_headers_body_and_query() {
    use crate::calls::{Call, forward_path};
    assert_eq!(
        forward_path("int_1", "bench.upstream.test:8443", "/v1/stream/blob?bytes=9"),
        "/v1/forward/int_1/bench.upstream.test:8443/v1/stream/blob?bytes=9"
    );
    let blob = Call::blob(9);
    assert_eq!((blob.method, blob.path_only()), ("GET", upstream::BLOB_PATH));
    let echo = Call::of_kind("allowed", 1024).unwrap();
    assert_eq!((echo.method, echo.path.as_str(), echo.body.len()), ("POST", upstream::ECHO_PATH, 1024));
    assert_eq!(echo.headers, vec![("content-type", "application/json".to_owned())]);
    assert_eq!(Call::of_kind("approval", 10).unwrap().path, "/v1/approval");
    assert!(Call::of_kind("other", 10).is_err());
    assert_eq!(Call::sse().headers, vec![("accept", "text/event-stream".to_owned())]);
}

#[test]
fn rss_growth_and_stream_rates() {
    assert_eq!(rss::growth_kib(40_000, &[40_000, 41_024, 40_512]), 1_024);
    assert_eq!(rss::growth_kib(40_000, &[39_000, 39_500]), 0);
    assert_eq!(rss::growth_kib(40_000, &[]), 0);
    assert!((stream::mib_per_second(100 << 20, 2.0) - 50.0).abs() < 1e-9);
    assert_eq!(stream::mib_per_second(1, 0.0), 0.0);
    let runs: Vec<stream::StreamRun> = [30.0, 10.0, 20.0]
        .iter()
        .map(|rate| stream::StreamRun {
            name: "stream-forward".into(),
            bytes: 1,
            seconds: 1.0,
            mib_per_second: *rate,
            ttfb_ms: 1.0,
            rss: None,
        })
        .collect();
    assert_eq!(stream::median_mib_per_second(&runs.iter().collect::<Vec<_>>()), Some(20.0));
    assert_eq!(stream::median_mib_per_second(&runs[..2].iter().collect::<Vec<_>>()), Some(30.0));
    assert_eq!(stream::median_mib_per_second(&[]), None);
}

fn phase(name: &str, ok_per_second: f64, p50_ms: f64, p99_ms: f64) -> report::PhaseResult {
    report::PhaseResult {
        name: name.into(),
        measure: "complete".into(),
        mode: "connections".into(),
        connections: 1,
        target_rate: None,
        duration_seconds: 1.0,
        requests: 100,
        requests_per_second: ok_per_second,
        ok_per_second,
        latency: LatencySummary { count: 100, p50_ms, p99_ms, ..Default::default() },
        by_kind: Default::default(),
        outcomes: Default::default(),
        rss: None,
        upstream_connections: 1,
    }
}

#[test]
fn forward_ratios_compare_like_with_like() {
    let stream_run = |name: &str, rate: f64, growth: Option<u64>| stream::StreamRun {
        name: name.into(),
        bytes: 1,
        seconds: 1.0,
        mib_per_second: rate,
        ttfb_ms: 1.0,
        rss: growth.map(|g| stream::StreamRss { growth_kib: g, ..Default::default() }),
    };
    let mut report = report::Report {
        machine: report::Machine::detect(),
        command: "test".into(),
        options: serde_json::Value::Null,
        phases: vec![
            phase("direct", 10_000.0, 1.0, 2.0),
            phase("nginx", 8_000.0, 1.5, 3.0),
            phase("steward", 2_000.0, 4.0, 9.0),
            phase("forward", 2_500.0, 3.0, 8.0),
            phase("sse-direct", 50.0, 0.5, 1.0),
            phase("sse-nginx", 50.0, 0.8, 1.5),
            phase("sse-forward", 50.0, 1.3, 4.5),
        ],
        streams: vec![
            stream_run("stream-direct", 400.0, None),
            stream_run("stream-forward", 100.0, Some(512)),
            stream_run("stream-forward", 200.0, Some(2048)),
            stream_run("stream-forward", 150.0, Some(0)),
        ],
        ratios: Default::default(),
        notes: vec![],
        session_refresh: None,
        oha: Vec::new(),
        oha_ratios: None,
    };
    report.compute_ratios();
    let r = &report.ratios;
    assert_eq!(r.forward_over_execute, Some(1.25));
    assert_eq!(r.forward_over_nginx, Some(2_500.0 / 8_000.0));
    assert_eq!(r.forward_added_p50_ms_over_direct, Some(2.0));
    assert_eq!(r.forward_added_p99_ms_over_direct, Some(6.0));
    assert!((r.sse_ttfb_p50_forward_minus_nginx_ms.unwrap() - 0.5).abs() < 1e-9);
    assert!((r.sse_ttfb_p99_forward_minus_nginx_ms.unwrap() - 3.0).abs() < 1e-9);
    assert!((r.sse_ttfb_p50_forward_minus_direct_ms.unwrap() - 0.8).abs() < 1e-9);
    assert_eq!(r.stream_forward_mib_per_second, Some(150.0));
    assert_eq!(r.stream_forward_over_direct, Some(150.0 / 400.0));
    assert_eq!(r.stream_forward_max_rss_growth_kib, Some(2048));
    let text = report.to_text();
    assert!(text.contains("forward/execute 1.250"), "{text}");
    assert!(text.contains("stream-forward: "), "{text}");

    // A phase that measured nothing yields no ratio rather than a false one.
    report.phases.retain(|p| p.name != "sse-nginx");
    report.phases.push(report::PhaseResult {
        latency: LatencySummary::default(),
        ..phase("sse-nginx", 0.0, 0.0, 0.0)
    });
    report.compute_ratios();
    assert_eq!(report.ratios.sse_ttfb_p50_forward_minus_nginx_ms, None);
}

#[test]
fn nginx_streams_are_not_buffered() {
    let dir = std::path::Path::new("/tmp/x");
    let addr = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let conf = nginx::config(dir, addr(1), addr(2), dir, dir, dir, dir, "Bearer s");
    let stream_location = conf.split("location /v1/stream/ {").nth(1).expect("a stream location");
    assert!(stream_location.contains("proxy_buffering off;"), "{conf}");
    assert!(stream_location.contains("proxy_pass https://bench_upstream;"), "{conf}");
    let default_location = conf.split("location / {").nth(1).unwrap().split('}').next().unwrap();
    assert!(default_location.contains("proxy_buffering on;"), "{conf}");
}

/// The streaming phases against the direct baseline: TTFB is the first event's time, not the whole
/// answer's (the answer takes (SSE_EVENTS - 1) × SSE_INTERVAL), and the large body arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_direct_streams_run_and_report() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let options = BenchOptions {
        stream_bytes: 3 << 20,
        stream_runs: 2,
        ..quick_options(Duration::from_millis(600), 2, &["sse-direct", "stream-direct"])
    };
    let report = run(&options).await.unwrap();
    let sse = report.phase("sse-direct").unwrap();
    assert_eq!(sse.measure, "first_byte");
    assert!(sse.requests >= 4, "{sse:?}");
    assert_eq!(sse.outcomes.get("ok"), Some(&sse.requests), "{sse:?}");
    let whole_answer_ms = (upstream::SSE_EVENTS - 1) as f64 * upstream::SSE_INTERVAL.as_secs_f64() * 1000.0;
    assert!(sse.latency.p50_ms < whole_answer_ms, "TTFB {sse:?} vs {whole_answer_ms} ms");
    // Closed loop over whole answers: a stream takes at least its events' spacing.
    assert!(sse.requests_per_second < 2.0 * 1000.0 / whole_answer_ms + 1.0, "{sse:?}");
    assert_eq!(report.streams.len(), 2);
    for s in &report.streams {
        assert_eq!((s.name.as_str(), s.bytes), ("stream-direct", 3 << 20));
        assert!(s.mib_per_second > 0.0 && s.rss.is_none(), "{s:?}");
    }
    assert!(report.ratios.stream_forward_mib_per_second.is_none());
    assert!(report.to_text().contains("stream-direct: 3.0 MiB"));
}

#[test]
fn rss_is_summarized_per_minute() {
    // 150 one-second samples: two full minutes and a partial third.
    let samples: Vec<report::MemorySample> = (0..150u64)
        .map(|i| report::MemorySample {
            rss_kib: 100_000 + i,
            peak_kib: 200_000,
            split: report::RssSplit { anon_kib: 90_000 + i, file_kib: 10_000, shmem_kib: 0 },
        })
        .collect();
    let minutes = report::rss_per_minute(&samples, 60);
    assert_eq!(minutes.len(), 3);
    assert_eq!(
        minutes[0],
        report::RssMinute {
            minute: 1,
            samples: 60,
            min_kib: 100_000,
            avg_kib: 100_029,
            max_kib: 100_059,
            avg_split: report::RssSplit { anon_kib: 90_029, file_kib: 10_000, shmem_kib: 0 },
        }
    );
    assert_eq!((minutes[1].min_kib, minutes[1].max_kib), (100_060, 100_119));
    assert_eq!((minutes[2].minute, minutes[2].samples, minutes[2].avg_kib), (3, 30, 100_134));
    assert!(report::rss_per_minute(&[], 60).is_empty());
}

#[test]
fn proc_status_memory_is_split_by_kind_of_page() {
    let status = "Name:\tsteward\nVmHWM:\t  131800 kB\nVmRSS:\t  120000 kB\nRssAnon:\t  100000 kB\n\
                  RssFile:\t   19000 kB\nRssShmem:\t    1000 kB\nThreads:\t8\n";
    let sample = report::parse_proc_status(status).expect("parsed");
    assert_eq!((sample.rss_kib, sample.peak_kib), (120_000, 131_800));
    assert_eq!(sample.split, report::RssSplit { anon_kib: 100_000, file_kib: 19_000, shmem_kib: 1_000 });
    assert!(report::parse_proc_status("Name:\tsteward\n").is_none());
    // This process's own status has every field on Linux.
    let own = report::proc_memory(std::process::id()).expect("own status");
    assert!(own.split.anon_kib > 0 && own.rss_kib >= own.split.anon_kib);
}
