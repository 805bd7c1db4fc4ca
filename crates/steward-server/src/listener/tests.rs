use std::time::Duration;

use tokio::time::Instant;

use super::activity::{Activity, Expiry, Framing, Timeouts};
use super::per_ip::PerIp;

/// Long enough that the deadlines below are far apart whatever the machine's load.
const TIMEOUTS: Timeouts = Timeouts { header: Duration::from_secs(10), idle: Duration::from_secs(60) };
const SLACK: Duration = Duration::from_secs(2);

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn preface() -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    out
}

/// The deadline is `why`, about `after` from now.
fn assert_due(activity: &Activity, closing: Option<Instant>, after: Duration, why: Expiry) {
    let (at, kind) = activity.deadline(TIMEOUTS, closing).expect("a deadline applies");
    assert_eq!(kind, why);
    let now = Instant::now();
    assert!(at <= now + after && at + SLACK >= now + after, "due in {:?}, expected {after:?}", at - now);
}

#[test]
fn the_first_head_is_due_a_header_timeout_after_accept_and_requests_in_flight_never_expire() {
    let activity = Activity::new(Instant::now());
    assert_due(&activity, None, TIMEOUTS.header, Expiry::Header);
    let first = activity.request_started();
    let second = activity.request_started();
    assert!(activity.deadline(TIMEOUTS, None).is_none(), "a request in flight is never timed out");
    drop(first);
    assert!(activity.deadline(TIMEOUTS, None).is_none(), "one request is still in flight");
    drop(second);
    assert_due(&activity, None, TIMEOUTS.idle, Expiry::Idle);
}

#[test]
fn http1_bytes_of_a_next_head_switch_idle_to_the_header_timeout() {
    let activity = Activity::new(Instant::now());
    let mut framing = Framing::default();
    framing.feed(b"GET / HTTP/1.1\r\n\r\n", &activity);
    drop(activity.request_started());
    assert_due(&activity, None, TIMEOUTS.idle, Expiry::Idle);
    framing.feed(b"GE", &activity);
    assert_due(&activity, None, TIMEOUTS.header, Expiry::Header);
    let (at, _) = activity.deadline(TIMEOUTS, None).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    framing.feed(b"T / HTTP/1.1\r\n", &activity);
    assert_eq!(activity.deadline(TIMEOUTS, None).unwrap().0, at, "trickling does not move the deadline");
    // Bytes read while a request is in flight (its body) are not a next head.
    let in_flight = activity.request_started();
    framing.feed(b"body bytes", &activity);
    drop(in_flight);
    assert_due(&activity, None, TIMEOUTS.idle, Expiry::Idle);
}

#[test]
fn http2_header_blocks_are_bounded_and_control_frames_are_not_activity() {
    let activity = Activity::new(Instant::now());
    let mut framing = Framing::default();
    framing.feed(&preface(), &activity);
    // A complete HEADERS frame, byte by byte: the block ends with its payload.
    for byte in &frame(0x1, 0x4 | 0x1, 1, b"\x82\x87\x84") {
        framing.feed(std::slice::from_ref(byte), &activity);
    }
    drop(activity.request_started());
    let idle = activity.deadline(TIMEOUTS, None).unwrap();
    assert_eq!(idle.1, Expiry::Idle);
    // PINGs, SETTINGS and WINDOW_UPDATEs do not keep an HTTP/2 connection open.
    framing.feed(&frame(0x6, 0, 0, &[0; 8]), &activity);
    framing.feed(&frame(0x4, 0x1, 0, &[]), &activity);
    framing.feed(&frame(0x8, 0, 0, &[0, 0, 1, 0]), &activity);
    assert_eq!(activity.deadline(TIMEOUTS, None).unwrap(), idle);
    // A header block without END_HEADERS, then CONTINUATIONs: bounded from its first frame.
    framing.feed(&frame(0x1, 0x1, 3, b"\x82"), &activity);
    assert_due(&activity, None, TIMEOUTS.header, Expiry::Header);
    let (at, _) = activity.deadline(TIMEOUTS, None).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    framing.feed(&frame(0x9, 0, 3, b"\x87"), &activity);
    assert_eq!(activity.deadline(TIMEOUTS, None).unwrap().0, at);
    // A CONTINUATION frame header with END_HEADERS whose payload is still coming: still in the block.
    let last = frame(0x9, 0x4, 3, b"\x84\x84");
    framing.feed(&last[..10], &activity);
    assert_eq!(activity.deadline(TIMEOUTS, None).unwrap().1, Expiry::Header);
    framing.feed(&last[10..], &activity);
    assert_due(&activity, None, TIMEOUTS.idle, Expiry::Idle);
}

#[test]
fn a_graceful_close_gets_one_header_timeout() {
    let activity = Activity::new(Instant::now());
    drop(activity.request_started());
    assert_due(&activity, Some(Instant::now()), TIMEOUTS.header, Expiry::Idle);
}

#[tokio::test]
async fn expired_resolves_at_the_deadline_and_wakes_when_a_request_ends() {
    let short = Timeouts { header: Duration::from_millis(50), idle: Duration::from_millis(80) };
    let activity = Activity::new(Instant::now());
    assert_eq!(activity.expired(short, None).await, Expiry::Header);
    let in_flight = activity.request_started();
    let waiting = tokio::time::timeout(Duration::from_millis(300), activity.expired(short, None)).await;
    assert!(waiting.is_err(), "nothing expires while a request is in flight");
    drop(in_flight);
    let started = Instant::now();
    assert_eq!(activity.expired(short, None).await, Expiry::Idle);
    assert!(started.elapsed() >= short.idle - Duration::from_millis(5));
}

#[test]
fn per_ip_counts_open_connections_by_canonical_address() {
    let table = PerIp::new(2);
    let v4: std::net::IpAddr = "10.0.0.1".parse().unwrap();
    let mapped: std::net::IpAddr = "::ffff:10.0.0.1".parse().unwrap();
    let a = table.try_acquire(v4).unwrap();
    let b = table.try_acquire(mapped).unwrap();
    assert!(table.try_acquire(v4).is_none(), "a third connection from one address is over the cap");
    assert!(table.try_acquire("10.0.0.2".parse().unwrap()).is_some(), "other addresses have their own");
    drop(a);
    assert_eq!(table.count(v4), 1);
    let c = table.try_acquire(v4).unwrap();
    drop((b, c));
    assert_eq!(table.count(v4), 0);
}
