use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use bytes::Bytes;

use super::*;

const NEEDLE: &[u8] = b"sk-live+/0123456789?abc def";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn scrubber() -> Scrubber {
    Scrubber::new(&[NEEDLE]).unwrap()
}

#[test]
fn raw_hex_and_percent() {
    let s = scrubber();
    let forms = [
        NEEDLE.to_vec(),
        hex::encode(NEEDLE).into_bytes(),
        hex::encode_upper(NEEDLE).into_bytes(),
        b"sk-live%2B%2F0123456789%3Fabc%20def".to_vec(),
        b"sk-live%2b%2f0123456789%3fabc%20def".to_vec(),
        b"sk-live%2B%2F0123456789%3Fabc+def".to_vec(),
    ];
    for form in forms {
        let mut text = b"before ".to_vec();
        text.extend_from_slice(&form);
        text.extend_from_slice(b" after");
        let out = s.scrub(&text).expect("found");
        assert_eq!(out, b"before [REDACTED] after", "{}", String::from_utf8_lossy(&form));
    }
}

#[test]
fn base64_at_every_alignment_and_alphabet() {
    let s = scrubber();
    let engines = [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD];
    for engine in engines {
        for prefix in 0..6usize {
            for suffix in 0..4usize {
                let mut blob = vec![b'x'; prefix];
                blob.extend_from_slice(NEEDLE);
                blob.extend(std::iter::repeat_n(b'y', suffix));
                let encoded = engine.encode(&blob);
                let out = s.scrub(encoded.as_bytes()).expect("found");
                assert!(contains(&out, REDACTED), "prefix {prefix} suffix {suffix}: {encoded}");
                // What is left cannot carry more than a few bits of the needle on each side.
                let left = out.len() - REDACTED.len();
                assert!(left <= 4 * (prefix + suffix).div_ceil(3) + 8, "{}", String::from_utf8_lossy(&out));
                for pattern in encodings(NEEDLE) {
                    assert!(!contains(&out, &pattern));
                }
            }
        }
    }
}

#[test]
fn the_whole_standalone_encoding_goes() {
    let s = scrubber();
    for engine in [&STANDARD, &URL_SAFE] {
        let text = format!("\"{}\"", engine.encode(NEEDLE));
        assert_eq!(s.scrub(text.as_bytes()).unwrap(), b"\"[REDACTED]\"");
    }
}

#[test]
fn responses() {
    let s = Scrubber::new(&[b"topsecret-123".as_slice(), b"Bearer topsecret-123".as_slice()]).unwrap();
    let mut headers = vec![
        ("x-echo".to_owned(), "Bearer topsecret-123".to_owned()),
        ("content-type".to_owned(), "application/json".to_owned()),
    ];
    let mut body = Bytes::from_static(b"{\"auth\":\"Bearer topsecret-123\",\"key\":\"topsecret-123\"}");
    assert!(s.scrub_response(&mut headers, &mut body));
    assert_eq!(headers[0].1, "[REDACTED]");
    assert_eq!(headers[1].1, "application/json");
    assert_eq!(&body[..], b"{\"auth\":\"[REDACTED]\",\"key\":\"[REDACTED]\"}");
    let mut clean = Bytes::from_static(b"nothing here");
    assert!(!s.scrub_response(&mut [], &mut clean));
}

#[test]
fn no_needles_no_matcher() {
    let s = Scrubber::new::<&[u8]>(&[]).unwrap();
    assert!(s.scrub(b"anything").is_none());
    let s = Scrubber::new(&[b"".as_slice()]).unwrap();
    assert!(s.scrub(b"anything").is_none());
}

#[test]
fn inner_base64_substrings_are_stable() {
    // The inner substring computed for each offset appears in every blob with the needle at that
    // offset modulo 3, whatever the surrounding bytes.
    let patterns = encodings(NEEDLE);
    for prefix_len in 0..9usize {
        for fill in [0u8, 0x55, 0xff] {
            let mut blob = vec![fill; prefix_len];
            blob.extend_from_slice(NEEDLE);
            blob.push(fill);
            let encoded = STANDARD.encode(&blob);
            assert!(
                patterns.iter().any(|p| p.len() >= 30 && contains(encoded.as_bytes(), p)),
                "prefix {prefix_len} fill {fill}"
            );
        }
    }
}

/// `secret` wrapped in text, scrubbed: the whole encoded span must become one `[REDACTED]`.
fn assert_redacted(s: &Scrubber, encoded: &[u8]) {
    let mut text = b"{\"echo\":\"".to_vec();
    text.extend_from_slice(encoded);
    text.extend_from_slice(b"\",\"n\":1}");
    let out = s.scrub(&text).unwrap_or_else(|| panic!("not found: {}", String::from_utf8_lossy(encoded)));
    assert_eq!(
        String::from_utf8_lossy(&out),
        "{\"echo\":\"[REDACTED]\",\"n\":1}",
        "encoded as {}",
        String::from_utf8_lossy(encoded)
    );
}

/// Percent-encodes `secret` escaping the bytes `escape` picks, with hex digits in `upper` case;
/// `plus` writes spaces as `+`.
fn pct(
    secret: &[u8],
    escape: impl Fn(usize, u8) -> bool,
    upper: impl Fn(usize) -> bool,
    plus: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &b) in secret.iter().enumerate() {
        if plus && b == b' ' {
            out.push(b'+');
        } else if escape(i, b) {
            let hex = if upper(i) { format!("%{b:02X}") } else { format!("%{b:02x}") };
            out.extend_from_slice(hex.as_bytes());
        } else {
            out.push(b);
        }
    }
    out
}

/// What Python's `urllib.parse.quote` leaves alone besides `safe`.
fn python_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~')
}

#[test]
fn percent_encodings_in_any_mix() {
    let s = scrubber();
    let forms: Vec<Vec<u8>> = vec![
        // quote(secret, safe='/'): `/` stays, everything else reserved is escaped.
        pct(NEEDLE, |_, b| !python_unreserved(b) && b != b'/', |_| true, false),
        // quote_plus(secret): spaces as `+`, `/` escaped too.
        pct(NEEDLE, |_, b| !python_unreserved(b), |_| true, true),
        // Lower-case escapes (e.g. some JavaScript and Go encoders).
        pct(NEEDLE, |_, b| !python_unreserved(b), |_| false, false),
        // Every byte escaped, in both cases, and alternating cases.
        pct(NEEDLE, |_, _| true, |_| true, false),
        pct(NEEDLE, |_, _| true, |_| false, false),
        pct(NEEDLE, |_, _| true, |i| i % 2 == 0, false),
        // Some bytes escaped, some not (including unreserved ones), spaces as `+`.
        pct(NEEDLE, |i, _| i % 3 == 1, |i| i % 2 == 1, true),
        pct(NEEDLE, |i, b| i % 2 == 0 || b == b'?', |_| false, false),
    ];
    for form in forms {
        assert_redacted(&s, &form);
    }
}

/// JSON-escapes `secret`: `\u00XX` where `unicode` says so (hex case by `upper`), else the short
/// escape for `"`, `\` and `/` where `short` says so, else the byte itself.
fn json(
    secret: &[u8],
    unicode: impl Fn(usize, u8) -> bool,
    upper: impl Fn(usize) -> bool,
    short: impl Fn(usize) -> bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &b) in secret.iter().enumerate() {
        if unicode(i, b) {
            let hex = if upper(i) { format!("\\u{:04X}", b) } else { format!("\\u{:04x}", b) };
            out.extend_from_slice(hex.as_bytes());
        } else if matches!(b, b'"' | b'\\') || (b == b'/' && short(i)) {
            out.extend_from_slice(&[b'\\', b]);
        } else {
            out.push(b);
        }
    }
    out
}

#[test]
fn json_escapes_in_any_mix() {
    let needle = b"sk-\"quoted\"\\back/slash+/0123 x";
    let s = Scrubber::new(&[needle.as_slice()]).unwrap();
    let forms: Vec<Vec<u8>> = vec![
        // serde_json / Python json.dumps: `"` and `\` escaped, `/` not.
        json(needle, |_, _| false, |_| false, |_| false),
        // PHP json_encode: `/` as `\/`.
        json(needle, |_, _| false, |_| false, |_| true),
        // Every byte as \u00XX, lower and upper case, and mixed.
        json(needle, |_, _| true, |_| false, |_| false),
        json(needle, |_, _| true, |_| true, |_| false),
        json(needle, |i, _| i % 2 == 0, |i| i % 4 == 0, |i| i % 3 == 0),
        // Go's encoding/json: `+` stays, `<`, `>`, `&` would be \u003c…; here `+` as \u002b.
        json(needle, |_, b| b == b'+', |_| false, |_| false),
    ];
    for form in forms {
        assert_redacted(&s, &form);
    }
}

#[test]
fn percent_encoded_inside_json() {
    // A URL with the secret percent-encoded, echoed inside a JSON string: `/` may be `\/`, and an
    // encoder that escapes `%` writes `\u0025`.
    let s = scrubber();
    let url = pct(NEEDLE, |_, b| !python_unreserved(b), |_| true, false);
    let escaped_slash: Vec<u8> = pct(NEEDLE, |_, b| !python_unreserved(b) && b != b'/', |_| true, false)
        .iter()
        .flat_map(|&b| if b == b'/' { vec![b'\\', b'/'] } else { vec![b] })
        .collect();
    let escaped_percent: Vec<u8> =
        url.iter().flat_map(|&b| if b == b'%' { b"\\u0025".to_vec() } else { vec![b] }).collect();
    for form in [escaped_slash, escaped_percent] {
        assert_redacted(&s, &form);
    }
}

#[test]
fn needles_with_escape_characters_match_raw_and_encoded() {
    // `%41` in the needle is literal text; `%25` and `\\` in the answer may be the byte itself or
    // the start of an escape. Both readings are tried; the longest match wins.
    let needle = b"ab%41cd\\ef%25gh";
    let s = Scrubber::new(&[needle.as_slice()]).unwrap();
    assert_redacted(&s, needle);
    assert_redacted(&s, b"ab%2541cd%5Cef%2525gh");
    assert_redacted(&s, b"ab\\u002541cd\\\\ef\\u002525gh");
    let short = b"abcd%";
    let s = Scrubber::new(&[short.as_slice()]).unwrap();
    assert_redacted(&s, b"abcd%25");
    assert_eq!(s.scrub(b"x abcd%41 y").unwrap(), b"x [REDACTED]41 y");
}

#[test]
fn ambiguous_text_is_not_exponential() {
    // A needle of escape characters against text that can be read many ways.
    let needle =
        b"%25%25%25%25%25%25%25%25%25%25%25%25%25%25%25%25%25%25%25%25%25%25%25%25%25%25%25%25%25%25%25";
    let s = Scrubber::new(&[needle.as_slice()]).unwrap();
    let text = b"%2525".repeat(4000);
    let started = std::time::Instant::now();
    let out = s.scrub(&text).expect("found");
    assert!(!contains(&out, needle));
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
}

#[test]
fn every_spelling_decodes_back() {
    for byte in 0..=255u8 {
        for spelling in decode::spellings(byte) {
            assert!((1..=8).contains(&spelling.len()));
            let lengths: Vec<usize> = decode::unit_lengths(&spelling, 0, byte).iter().collect();
            assert!(
                lengths.contains(&spelling.len()),
                "{byte:#x} as {:?}",
                String::from_utf8_lossy(&spelling)
            );
        }
    }
}

#[test]
fn text_without_needles_is_untouched() {
    let s = scrubber();
    let text =
        br#"{"url":"https://example.test/a%2Fb?q=1+2","name":"caf\u00e9 \"quoted\" \\ \/","hex":"deadbeef"}"#;
    assert!(s.scrub(text).is_none());
    assert!(s.scrub(b"").is_none());
    assert!(s.scrub(b"sk").is_none());
    // A prefix of the needle in every encoding, cut short.
    assert!(s.scrub(b"sk-live%2B%2F01234 sk-live+/0123456789?abc de").is_none());
}

#[test]
fn heap_bytes_counts_the_needles() {
    let small = Scrubber::new(&[b"0123456789".as_slice()]).unwrap();
    let big = Scrubber::new(&[b"0123456789".repeat(100).as_slice()]).unwrap();
    assert!(small.heap_bytes() > 10);
    assert!(big.heap_bytes() > small.heap_bytes() + 1000);
    assert_eq!(Scrubber::new::<&[u8]>(&[]).unwrap().heap_bytes(), 0);
}

/// The longest match of `needle` at `start`, by trying every spelling of every byte: a reference
/// built on generation, against the scanner's parsing.
fn reference_match(needle: &[u8], text: &[u8], start: usize) -> Option<usize> {
    let Some((&first, rest)) = needle.split_first() else { return Some(start) };
    let mut best = None;
    for spelling in decode::spellings(first) {
        if text.get(start..).is_some_and(|t| t.starts_with(&spelling)) {
            best = best.max(reference_match(rest, text, start + spelling.len()));
        }
    }
    best
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn escapey(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(proptest::sample::select(b"%+\\/\"u0025aA b".to_vec()), len)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn scanner_agrees_with_the_reference(
            needle in escapey(4..7),
            before in escapey(0..12),
            after in escapey(0..12),
            choices in proptest::collection::vec(any::<usize>(), 7),
        ) {
            // The needle, spelled with random units, between escape-heavy text.
            let mut text = before.clone();
            for (byte, choice) in needle.iter().zip(&choices) {
                let spellings = decode::spellings(*byte);
                text.extend_from_slice(&spellings[choice % spellings.len()]);
            }
            text.extend_from_slice(&after);
            prop_assert!(reference_match(&needle, &text, before.len()).is_some());
            let anchors = decode::anchors(&needle, ANCHOR_LEN).unwrap();
            for start in 0..text.len() {
                let expected = reference_match(&needle, &text, start);
                prop_assert_eq!(decode::longest_match(&needle, &text, start), expected, "at {}", start);
                if expected.is_some() {
                    let anchored = anchors.iter().any(|(a, offset)| text.get(start + offset..).is_some_and(|t| t.starts_with(a)));
                    prop_assert!(anchored, "no anchor for a match at {}", start);
                }
            }
        }
    }
}

#[test]
fn anchors_that_prefix_each_other_run_every_matcher() {
    // `\u0025` (a needle starting with `%`) is a prefix of `\u002573` (one starting with `s`): the
    // prefilter reports one of them, and both matchers run.
    let s = Scrubber::new(&[b"%abcdefgh".as_slice(), b"sk-secret-1".as_slice()]).unwrap();
    assert_redacted(&s, b"\\u002573k-secret-1");
    assert_redacted(&s, b"\\u0025abcdefgh");
    assert_redacted(&s, b"\\u0025\\u002561bcdefgh");
    let s = Scrubber::new(&[b"\\u0073k-raw".as_slice(), b"sk-secret-1".as_slice()]).unwrap();
    assert_redacted(&s, b"\\u0073k-raw");
    assert_redacted(&s, b"\\u0073k-secret-1");
}
