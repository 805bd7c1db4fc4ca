//! Scrubbing of upstream answers: every occurrence of a needle (the secret, the full injected value)
//! in response headers and body, in each encoding an upstream might echo it in, becomes `[REDACTED]`.
//!
//! Defence in depth against echoes, not a barrier against a malicious upstream. One Aho-Corasick
//! automaton (leftmost-longest) is built per call over every encoding of every needle.

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use bytes::Bytes;
use zeroize::Zeroizing;

use crate::error::EgressError;

/// What replaces every match.
pub const REDACTED: &[u8] = b"[REDACTED]";

/// Encoded forms shorter than this are not searched for (they would redact noise, and secrets are at
/// least 8 bytes when written).
const MIN_PATTERN_LEN: usize = 4;

/// Passes over the data until no needle is left (a replacement could, in theory, complete a needle
/// that contains `[` or `]`).
const MAX_PASSES: usize = 4;

/// A matcher over every encoding of a set of needles.
pub struct Scrubber {
    matcher: Option<AhoCorasick>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrubber")
            .field("patterns", &self.matcher.as_ref().map(|m| m.patterns_len()))
            .finish()
    }
}

impl Scrubber {
    /// Builds the matcher over [`encodings`] of every needle.
    pub fn new<N: AsRef<[u8]>>(needles: &[N]) -> Result<Self, EgressError> {
        let mut patterns: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        for needle in needles {
            for pattern in encodings(needle.as_ref()) {
                if pattern.len() >= MIN_PATTERN_LEN && !patterns.iter().any(|p| **p == *pattern) {
                    patterns.push(pattern);
                }
            }
        }
        if patterns.is_empty() {
            return Ok(Self { matcher: None });
        }
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(patterns.iter().map(|p| p.as_slice()))
            .map_err(|e| EgressError::Config(format!("scrubber automaton: {e}")))?;
        Ok(Self { matcher: Some(matcher) })
    }

    /// The scrubbed copy of `data`, or `None` when nothing matched.
    pub fn scrub(&self, data: &[u8]) -> Option<Vec<u8>> {
        let matcher = self.matcher.as_ref()?;
        if !matcher.is_match(data) {
            return None;
        }
        let mut current = data.to_vec();
        for _ in 0..MAX_PASSES {
            let mut next = Vec::with_capacity(current.len());
            matcher.replace_all_with_bytes(&current, &mut next, |_, _, dst| {
                dst.extend_from_slice(REDACTED);
                true
            });
            current = next;
            if !matcher.is_match(&current) {
                break;
            }
        }
        Some(current)
    }

    /// Scrubs every header value and the body in place; true when anything was replaced.
    pub fn scrub_response(&self, headers: &mut [(String, String)], body: &mut Bytes) -> bool {
        let mut scrubbed = false;
        for (_, value) in headers.iter_mut() {
            if let Some(clean) = self.scrub(value.as_bytes()) {
                *value = String::from_utf8_lossy(&clean).into_owned();
                scrubbed = true;
            }
        }
        if let Some(clean) = self.scrub(body) {
            *body = Bytes::from(clean);
            scrubbed = true;
        }
        scrubbed
    }
}

/// Every form of `needle` the scrubber searches for: raw; lower- and upper-case hex; standard and
/// URL-safe base64, padded and unpadded, of the needle alone and — for the needle at byte offset 0, 1
/// and 2 inside a larger encoded blob — the characters that depend only on the needle; and
/// percent-encoded (reserved bytes only, and every byte), in both hex cases, plus the form encoding
/// with `+` for spaces. Duplicates are removed.
pub fn encodings(needle: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut out: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    let mut push = |candidate: Zeroizing<Vec<u8>>| {
        if !candidate.is_empty() && !out.iter().any(|c| **c == *candidate) {
            out.push(candidate);
        }
    };
    if needle.is_empty() {
        return Vec::new();
    }
    push(Zeroizing::new(needle.to_vec()));
    push(Zeroizing::new(hex::encode(needle).into_bytes()));
    push(Zeroizing::new(hex::encode_upper(needle).into_bytes()));
    for engine in [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        push(Zeroizing::new(engine.encode(needle).into_bytes()));
    }
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for offset in 0..3usize {
            let mut shifted = Zeroizing::new(vec![0u8; offset]);
            shifted.extend_from_slice(needle);
            let encoded = Zeroizing::new(engine.encode(shifted.as_slice()).into_bytes());
            let start = (8 * offset).div_ceil(6);
            let end = (8 * (offset + needle.len())) / 6;
            if let Some(inner) = encoded.get(start..end) {
                push(Zeroizing::new(inner.to_vec()));
            }
        }
    }
    for upper in [true, false] {
        push(percent(needle, upper, false, false));
        push(percent(needle, upper, true, false));
        push(percent(needle, upper, false, true));
    }
    out
}

/// Percent-encoding of `needle`: every byte when `all`, else every byte that is not RFC 3986
/// unreserved; `form` writes spaces as `+`.
fn percent(needle: &[u8], upper: bool, all: bool, form: bool) -> Zeroizing<Vec<u8>> {
    let digits: &[u8; 16] = if upper { b"0123456789ABCDEF" } else { b"0123456789abcdef" };
    let mut out = Zeroizing::new(Vec::with_capacity(needle.len() * 3));
    for &b in needle {
        if form && b == b' ' {
            out.push(b'+');
        } else if !all && (b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')) {
            out.push(b);
        } else {
            out.push(b'%');
            out.push(digits[usize::from(b >> 4)]);
            out.push(digits[usize::from(b & 0xf)]);
        }
    }
    out
}

#[cfg(test)]
mod tests;
