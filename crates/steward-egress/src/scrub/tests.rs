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
