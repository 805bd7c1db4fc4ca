use std::sync::Arc;

use proptest::prelude::*;

use super::super::{Scrubber, encodings};
use super::StreamScrubber;

const SECRET: &[u8] = b"sk-live+/0123456789?abc def";
const BEARER: &[u8] = b"Bearer sk-live+/0123456789?abc def";

/// Feeds `body` split at `cuts` (sorted positions) and returns the concatenated output, checking
/// after every push that the held tail stays under the bound.
fn streamed(scrubber: &Arc<Scrubber>, body: &[u8], cuts: &[usize]) -> (Vec<u8>, bool) {
    let mut stream = StreamScrubber::new(scrubber.clone());
    let mut out = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&body.len())) {
        let cut = cut.clamp(from, body.len());
        out.extend_from_slice(&stream.push(&body[from..cut]));
        assert!(stream.held() <= stream.max_hold(), "held {} > {}", stream.held(), stream.max_hold());
        from = cut;
    }
    out.extend_from_slice(&stream.finish());
    assert_eq!(stream.held(), 0);
    assert!(stream.finish().is_empty());
    (out, stream.redacted())
}

fn buffered(scrubber: &Scrubber, body: &[u8]) -> (Vec<u8>, bool) {
    match scrubber.scrub(body) {
        Some(clean) => (clean, true),
        None => (body.to_vec(), false),
    }
}

/// A mix of the percent and JSON escapes of `needle`, byte by byte, as `choices` picks.
fn mixed_spelling(needle: &[u8], choices: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &b) in needle.iter().enumerate() {
        match choices.get(i).copied().unwrap_or(0) % 6 {
            1 => out.extend_from_slice(format!("%{b:02X}").as_bytes()),
            2 => out.extend_from_slice(format!("%{b:02x}").as_bytes()),
            3 => out.extend_from_slice(format!("\\u00{b:02x}").as_bytes()),
            4 => out.extend_from_slice(format!("\\u0025{b:02X}").as_bytes()),
            5 if b == b'/' => out.extend_from_slice(b"\\/"),
            5 if b == b' ' => out.push(b'+'),
            _ => out.push(b),
        }
    }
    out
}

#[test]
fn a_needle_split_anywhere_is_found() {
    let scrubber = Arc::new(Scrubber::new(&[SECRET, BEARER]).unwrap());
    for form in encodings(SECRET).iter().chain(encodings(BEARER).iter()) {
        let mut body = b"{\"echo\":\"".to_vec();
        body.extend_from_slice(form);
        body.extend_from_slice(b"\"}\n");
        let expected = buffered(&scrubber, &body);
        assert!(expected.1);
        for cut in 0..=body.len() {
            assert_eq!(streamed(&scrubber, &body, &[cut]), expected, "cut at {cut}");
        }
        let every_byte: Vec<usize> = (0..body.len()).collect();
        assert_eq!(streamed(&scrubber, &body, &every_byte), expected);
    }
}

#[test]
fn an_sse_event_without_a_needle_prefix_at_its_end_goes_out_whole_and_at_once() {
    let scrubber = Arc::new(Scrubber::new(&[SECRET]).unwrap());
    let mut stream = StreamScrubber::new(scrubber);
    let event = b"event: message\ndata: {\"delta\":\"hello world\"}\n\n";
    assert_eq!(&stream.push(event)[..], &event[..]);
    assert_eq!(stream.held(), 0);
    // A tail that could start the secret is held, and released once the next chunk decides it.
    assert_eq!(&stream.push(b"data: sk-li")[..], b"data: ");
    assert_eq!(stream.held(), 5);
    assert_eq!(&stream.push(b"ght\n\n")[..], b"sk-light\n\n");
    assert_eq!(&stream.push(b"data: sk-live+/01")[..], b"data: ");
    assert_eq!(&stream.push(b"23456789?abc def\n\n")[..], b"[REDACTED]\n\n");
    assert!(stream.redacted());
    assert!(stream.finish().is_empty());
}

#[test]
fn a_growing_group_of_overlapping_matches_is_not_held() {
    // A needle that overlaps itself: every copy merges into one `[REDACTED]`, emitted at once,
    // and the stream does not hold the group while it keeps growing.
    let scrubber = Arc::new(Scrubber::new(&[b"abababab"]).unwrap());
    let body = b"x".iter().chain(b"ab".repeat(200).iter()).chain(b"y".iter()).copied().collect::<Vec<u8>>();
    let cuts: Vec<usize> = (1..body.len()).step_by(7).collect();
    let (out, redacted) = streamed(&scrubber, &body, &cuts);
    assert_eq!(out, b"x[REDACTED]y");
    assert!(redacted);
    assert_eq!(buffered(&scrubber, &body), (out, true));
}

#[test]
fn needles_that_a_replacement_can_complete_are_rescanned_like_the_buffered_scrubber() {
    let scrubber = Arc::new(Scrubber::new(&[&b"abcd1234"[..], b"[REDACTED]tail"]).unwrap());
    let body = b"xx abcd1234tail yy abcd1234 zz";
    let expected = buffered(&scrubber, body);
    assert_eq!(expected.0, b"xx [REDACTED] yy [REDACTED] zz");
    for cut in 0..=body.len() {
        assert_eq!(streamed(&scrubber, body, &[cut]), expected, "cut at {cut}");
    }
}

#[test]
fn without_needles_chunks_pass_through() {
    let mut stream = StreamScrubber::new(Arc::new(Scrubber::new::<&[u8]>(&[]).unwrap()));
    assert_eq!(&stream.push(b"abc")[..], b"abc");
    assert_eq!(stream.max_hold(), 0);
    assert!(stream.finish().is_empty());
    assert!(!stream.redacted());
}

fn filler() -> impl Strategy<Value = Vec<u8>> {
    // Text near the needles' alphabet and escapes, so that partial and ambiguous spellings occur.
    proptest::collection::vec(proptest::sample::select(b"sk-liv+/0123%5Cu\\\"e :{}\n".to_vec()), 0..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn streaming_equals_buffered(
        pieces in proptest::collection::vec((filler(), 0usize..4, proptest::collection::vec(any::<u8>(), 40)), 1..5),
        tail in filler(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let scrubber = Arc::new(Scrubber::new(&[SECRET, BEARER]).unwrap());
        let fixed = encodings(SECRET);
        let mut body = Vec::new();
        for (fill, kind, choices) in &pieces {
            body.extend_from_slice(fill);
            match kind {
                0 => {}
                1 => body.extend_from_slice(&mixed_spelling(SECRET, choices)),
                2 => body.extend_from_slice(&mixed_spelling(BEARER, choices)),
                _ => body.extend_from_slice(&fixed[usize::from(choices[0]) % fixed.len()]),
            }
        }
        body.extend_from_slice(&tail);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
        cuts.sort_unstable();
        // One stage: the tail is bounded by the longest spelling (8 bytes per byte of `Bearer …`).
        prop_assert_eq!(StreamScrubber::new(scrubber.clone()).max_hold(), 8 * BEARER.len() - 1);
        prop_assert_eq!(streamed(&scrubber, &body, &cuts), buffered(&scrubber, &body));
    }
}
