//! Scrubbing end to end: an upstream echoes the injected credential in many encodings; nothing of it
//! survives. And properties of the scrubber on arbitrary input.

#![allow(clippy::unwrap_used)] // test helpers: a failure is a failed test

use crate::support;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use proptest::prelude::*;
use serde_json::json;
use steward_canon::Injection;
use steward_egress::{OutgoingRequest, Scrubber, apply_injection, encodings, guard};
use steward_testkit::upstream::{ReceivedRequest, Reply, TestUpstream};

const SECRET: &str = "sk_live_4f9a8b7c6d5e+/=?&";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Echoes the authorization header (and the key query parameter) in every encoding, in headers and
/// in the body.
fn echo(r: &ReceivedRequest) -> Reply {
    let auth = r.header_values("authorization").first().map(|s| s.to_string()).unwrap_or_default();
    let query = r.target.split_once('?').map(|(_, q)| q.to_owned()).unwrap_or_default();
    let raw = auth.as_bytes();
    let secret = SECRET.as_bytes();
    let mut body = format!("auth={auth}\nquery={query}\n");
    for (i, value) in [raw, secret].iter().enumerate() {
        body.push_str(&format!("hex{i}={}\nHEX{i}={}\n", hex::encode(value), hex::encode_upper(value)));
        for engine in [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            body.push_str(&format!("b64_{i}={}\n", engine.encode(value)));
            for prefix in [&b"x"[..], b"xy", b"xyz", b"wxyz"] {
                let mut blob = prefix.to_vec();
                blob.extend_from_slice(value);
                blob.extend_from_slice(b"tail");
                body.push_str(&format!("blob_{i}={}\n", engine.encode(&blob)));
            }
        }
    }
    body.push_str("pct=sk_live_4f9a8b7c6d5e%2B%2F%3D%3F%26\npct_lower=sk_live_4f9a8b7c6d5e%2b%2f%3d%3f%26\n");
    let echoed_header = format!("echo {auth}");
    let hex_header = hex::encode(secret);
    let b64_header = STANDARD.encode(raw);
    Reply::full(
        200,
        &[
            ("content-type", "text/plain"),
            ("x-echo", &echoed_header),
            ("x-echo-hex", &hex_header),
            ("x-echo-b64", &b64_header),
            ("x-clean", "nothing secret"),
        ],
        body.as_bytes(),
    )
}

async fn run(injection: Injection) -> (Vec<(String, String)>, Vec<u8>, bool, Vec<Vec<u8>>) {
    let upstream = TestUpstream::start().await.unwrap();
    upstream.respond_with(echo);
    let forwarder = support::forwarder(&upstream.ca_pem, |_| {});
    let resolver = support::static_resolver(&[]);
    let target =
        guard("localhost", upstream.addr.port(), &resolver, &support::loopback_allow()).await.unwrap();

    let canonical_headers = vec![("accept".to_owned(), "text/plain".to_owned())];
    let injected = apply_injection(&canonical_headers, "limit=1", &injection, SECRET.as_bytes()).unwrap();
    let needles: Vec<Vec<u8>> = injected.needles().iter().map(|n| n.to_vec()).collect();
    let scrubber = Scrubber::new(injected.needles()).unwrap();
    let (headers, query, _) = injected.into_parts();
    let request = OutgoingRequest::new("GET", "/echo", &query, headers, Vec::new()).unwrap();
    let allow: Vec<String> = ["content-type", "x-echo", "x-echo-hex", "x-echo-b64", "x-clean"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut outcome = forwarder.forward(&target, &request, &allow).await.unwrap();
    let scrubbed = scrubber.scrub_response(&mut outcome.headers, &mut outcome.body);
    (outcome.headers, outcome.body.to_vec(), scrubbed, needles)
}

fn assert_clean(headers: &[(String, String)], body: &[u8], needles: &[Vec<u8>]) {
    for needle in needles {
        for pattern in encodings(needle) {
            for (name, value) in headers {
                assert!(!contains(value.as_bytes(), &pattern), "{name}: {value}");
            }
            assert!(
                !contains(body, &pattern),
                "body still has {}:\n{}",
                String::from_utf8_lossy(&pattern),
                String::from_utf8_lossy(body)
            );
        }
    }
    // Nothing longer than a few characters of the secret survives in plain sight either.
    assert!(!contains(body, b"sk_live_4f9a"));
}

#[tokio::test]
async fn bearer_echoes_are_scrubbed_everywhere() {
    let (headers, body, scrubbed, needles) = run(Injection::default()).await;
    assert!(scrubbed);
    assert_clean(&headers, &body, &needles);
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(get("x-echo"), Some("echo [REDACTED]"));
    assert_eq!(get("x-echo-hex"), Some("[REDACTED]"));
    assert_eq!(get("x-echo-b64"), Some("[REDACTED]"));
    assert_eq!(get("x-clean"), Some("nothing secret"));
    assert!(contains(&body, b"auth=[REDACTED]\n"));
    assert!(contains(&body, b"pct=[REDACTED]\n"));
    assert!(contains(&body, b"pct_lower=[REDACTED]\n"));
}

#[tokio::test]
async fn basic_and_query_echoes_are_scrubbed() {
    let basic = Injection::from_json(&json!({"type": "basic", "username": "svc"})).unwrap();
    let (headers, body, scrubbed, needles) = run(basic).await;
    assert!(scrubbed);
    assert_eq!(needles.len(), 3, "secret, base64(user:pass), full header value");
    assert_clean(&headers, &body, &needles);

    let query = Injection::from_json(&json!({"type": "query", "name": "key"})).unwrap();
    let (headers, body, scrubbed, needles) = run(query).await;
    assert!(scrubbed);
    assert_clean(&headers, &body, &needles);
    assert!(contains(&body, b"query=limit=1&key=[REDACTED]\n"), "{}", String::from_utf8_lossy(&body));
}

fn needle_strategy() -> impl Strategy<Value = Vec<u8>> {
    // Visible ASCII and space (what secrets may hold), without the brackets of the replacement text.
    proptest::collection::vec(prop_oneof![0x20u8..=0x5a, 0x5cu8..=0x5c, 0x5eu8..=0x7e], 8..40)
}

/// A secret as written: visible ASCII and space, at least 8 bytes.
fn secret_strategy() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(0x20u8..=0x7e, 8..48)
}

fn haystack_strategy() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..300)
}

/// Text rich in the characters escapes are made of.
fn escapey_strategy() -> impl Strategy<Value = Vec<u8>> {
    let alphabet: Vec<u8> = b"%+\\/\"u0025aAfF7 x-_.~?&=:{}[],".to_vec();
    proptest::collection::vec(prop_oneof![3 => proptest::sample::select(alphabet), 1 => any::<u8>()], 0..200)
}

/// How one byte of an echoed secret is written.
#[derive(Debug, Clone, Copy)]
enum Unit {
    Itself,
    PercentUpper,
    PercentLower,
    /// `+` for a space (the byte itself otherwise).
    Plus,
    /// `\"`, `\\`, `\/` where the byte has one (the byte itself otherwise).
    JsonShort,
    JsonUnicodeLower,
    JsonUnicodeUpper,
    /// `\u0025XX`: a JSON-escaped `%` and the hex digits.
    JsonPercent,
}

const PERCENT_FAMILY: [Unit; 4] = [Unit::Itself, Unit::PercentUpper, Unit::PercentLower, Unit::Plus];
const JSON_FAMILY: [Unit; 4] =
    [Unit::Itself, Unit::JsonShort, Unit::JsonUnicodeLower, Unit::JsonUnicodeUpper];
const EVERY_UNIT: [Unit; 8] = [
    Unit::Itself,
    Unit::PercentUpper,
    Unit::PercentLower,
    Unit::Plus,
    Unit::JsonShort,
    Unit::JsonUnicodeLower,
    Unit::JsonUnicodeUpper,
    Unit::JsonPercent,
];

/// `secret` written byte by byte as `choices` (cycled) say, from `family`.
fn spell(secret: &[u8], family: &[Unit], choices: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &b) in secret.iter().enumerate() {
        let unit = family[choices[i % choices.len()] % family.len()];
        match unit {
            Unit::PercentUpper => out.extend_from_slice(format!("%{b:02X}").as_bytes()),
            Unit::PercentLower => out.extend_from_slice(format!("%{b:02x}").as_bytes()),
            Unit::Plus if b == b' ' => out.push(b'+'),
            Unit::JsonShort if matches!(b, b'"' | b'\\' | b'/') => out.extend_from_slice(&[b'\\', b]),
            Unit::JsonUnicodeLower => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            Unit::JsonUnicodeUpper => out.extend_from_slice(format!("\\u{b:04X}").as_bytes()),
            Unit::JsonPercent => out.extend_from_slice(format!("\\u0025{b:02x}").as_bytes()),
            Unit::Itself | Unit::Plus | Unit::JsonShort => out.push(b),
        }
    }
    out
}

/// `before`, the echo, `after`, scrubbed: the echo and every listed form of the secret are gone, and
/// `[REDACTED]` is there.
fn check_echo(secret: &[u8], echo: &[u8], before: &[u8], after: &[u8]) -> Result<(), TestCaseError> {
    let mut data = before.to_vec();
    data.extend_from_slice(echo);
    data.extend_from_slice(after);
    let scrubber = Scrubber::new(&[secret]).unwrap();
    let out = scrubber.scrub(&data);
    prop_assert!(out.is_some(), "not found: {}", String::from_utf8_lossy(echo));
    let out = out.unwrap_or_default();
    prop_assert!(contains(&out, b"[REDACTED]"));
    prop_assert!(!contains(&out, echo), "{}", String::from_utf8_lossy(&out));
    for form in encodings(secret) {
        prop_assert!(
            !contains(&out, &form),
            "{} left in {}",
            String::from_utf8_lossy(&form),
            String::from_utf8_lossy(&out)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn scrubbing_never_panics(needles in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..4), data in haystack_strategy()) {
        let scrubber = Scrubber::new(&needles).unwrap();
        let _ = scrubber.scrub(&data);
    }

    #[test]
    fn escape_heavy_text_never_panics(needle in proptest::collection::vec(proptest::sample::select(b"%+\\/\"u0025aA ".to_vec()), 4..12), data in escapey_strategy()) {
        let scrubber = Scrubber::new(&[needle.as_slice()]).unwrap();
        if let Some(out) = scrubber.scrub(&data) {
            prop_assert!(contains(&out, b"[REDACTED]"));
        }
    }

    #[test]
    fn percent_encoded_in_any_mix(secret in secret_strategy(), choices in proptest::collection::vec(0usize..4, 1..64), before in haystack_strategy(), after in haystack_strategy()) {
        check_echo(&secret, &spell(&secret, &PERCENT_FAMILY, &choices), &before, &after)?;
    }

    #[test]
    fn json_escaped_in_any_mix(secret in secret_strategy(), choices in proptest::collection::vec(0usize..4, 1..64), before in escapey_strategy(), after in escapey_strategy()) {
        check_echo(&secret, &spell(&secret, &JSON_FAMILY, &choices), &before, &after)?;
    }

    #[test]
    fn every_unit_in_any_mix(secret in secret_strategy(), choices in proptest::collection::vec(0usize..8, 1..64), before in escapey_strategy(), after in haystack_strategy()) {
        check_echo(&secret, &spell(&secret, &EVERY_UNIT, &choices), &before, &after)?;
    }

    #[test]
    fn text_without_the_secret_is_unchanged(secret in secret_strategy(), plain in proptest::collection::vec(0x20u8..=0x7e, 0..300), choices in proptest::collection::vec(0usize..8, 1..64), noise in haystack_strategy()) {
        // Random text, echoed through random escapes, and random bytes: the secret is not in them.
        prop_assume!(!contains(&plain, &secret));
        let scrubber = Scrubber::new(&[secret.as_slice()]).unwrap();
        prop_assert_eq!(scrubber.scrub(&plain), None);
        prop_assert_eq!(scrubber.scrub(&spell(&plain, &EVERY_UNIT, &choices)), None);
        prop_assert_eq!(scrubber.scrub(&noise), None);
    }

    #[test]
    fn no_encoding_survives(needle in needle_strategy(), before in haystack_strategy(), after in haystack_strategy(), which in 0usize..64, offset in 0usize..3) {
        let forms = encodings(&needle);
        let form = &forms[which % forms.len()];
        let mut data = before.clone();
        data.extend_from_slice(form);
        data.extend_from_slice(&after);
        // Also the needle inside a base64 blob at an arbitrary alignment.
        let mut blob = vec![b'q'; offset];
        blob.extend_from_slice(&needle);
        data.extend_from_slice(b" ");
        data.extend_from_slice(STANDARD.encode(&blob).as_bytes());
        let scrubber = Scrubber::new(&[needle.as_slice()]).unwrap();
        let out = scrubber.scrub(&data).expect("the needle was present");
        for pattern in encodings(&needle) {
            if pattern.len() >= 4 {
                prop_assert!(!contains(&out, &pattern));
            }
        }
    }
}
