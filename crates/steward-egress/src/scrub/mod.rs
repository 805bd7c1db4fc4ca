//! Scrubbing of upstream answers: every occurrence of a needle (the secret, the full injected value)
//! in response headers and body, in each encoding an upstream might echo it in, becomes `[REDACTED]`.
//!
//! Defence in depth against echoes, not a barrier against a malicious upstream
//! (`docs/decisions/0006-scrubbing.md`). Two kinds of matching share one prefilter:
//!
//! - **Decoded** ([`decode`]): the needle spelled unit by unit, each byte as itself or as a percent
//!   or JSON escape, in any mix — raw text is the case where every unit is the byte itself.
//! - **Fixed forms** ([`fixed_forms`]): lower- and upper-case hex, and standard and URL-safe base64
//!   with and without padding, of the needle alone and at the three byte alignments inside a larger
//!   blob. These are exact strings.
//!
//! The prefilter is an Aho-Corasick automaton over **anchors**: the first [`ANCHOR_LEN`] bytes of
//! every fixed form and of every way to spell a needle (for a spelling that starts with a `\u`
//! escape, that escape's four hex digits, two bytes in). Every match starts with an anchor, so the
//! (comparatively slow) matchers only run where one was found; text without any costs one
//! SIMD-accelerated pass. The needles and their forms live in [`Zeroizing`] buffers owned by the
//! [`Scrubber`] and are wiped when it is dropped; the automaton, whose memory cannot be wiped, holds
//! only the anchors.

mod decode;
mod stream;

pub use stream::StreamScrubber;

use aho_corasick::{AhoCorasick, Input, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use bytes::Bytes;
use zeroize::Zeroizing;

use crate::error::EgressError;

/// What replaces every match.
pub const REDACTED: &[u8] = b"[REDACTED]";

/// Needles (and fixed forms) shorter than this are not searched for: they would redact noise, and
/// secrets are at least 8 bytes when written.
const MIN_PATTERN_LEN: usize = 4;

/// The length of an anchor (4 hex digits for a spelling that starts with a `\u` escape): the
/// prefilter's automaton, whose memory cannot be wiped, holds at most the first 3 bytes of each
/// needle and the first 3 characters of each fixed form.
pub const ANCHOR_LEN: usize = 3;

/// Passes over the data until no needle is left (a replacement could, in theory, complete a needle
/// that contains `[` or `]`).
const MAX_PASSES: usize = 4;

/// A matcher over every encoding of a set of needles. The needles and their fixed forms are wiped
/// when it is dropped.
pub struct Scrubber {
    inner: Option<Inner>,
}

struct Inner {
    /// The needles, for the decoding matcher.
    needles: Vec<Zeroizing<Vec<u8>>>,
    /// Hex and base64 forms of the needles.
    forms: Vec<Zeroizing<Vec<u8>>>,
    /// The prefilter over the anchors (distinct; [`ANCHOR_LEN`] bytes, or a `\u` escape's digits).
    anchors: AhoCorasick,
    /// What to try where each anchor (by pattern id) is found.
    tasks: Vec<Vec<Task>>,
    /// The longest text any match can span: 8 bytes per needle byte (`\u0025XX`) or a fixed form's
    /// length. A streaming scrubber never holds back this many bytes.
    max_span: usize,
    /// Whether a replacement can complete a new match (a needle holds `[` or `]`, or is a piece of
    /// `REDACTED`): only then are later passes ever needed.
    rescan: bool,
    /// The bytes a spelling of a needle or a fixed form can start with: a quick test before the
    /// streaming scrubber asks whether a tail could still become a match.
    first_bytes: [bool; 256],
}

/// A matcher to run where an anchor is found, `offset` bytes before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Task {
    matcher: Matcher,
    offset: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Matcher {
    /// `needles[i]`, spelled unit by unit.
    Decoded(usize),
    /// `forms[i]`, exactly.
    Fixed(usize),
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.as_ref();
        f.debug_struct("Scrubber")
            .field("needles", &inner.map_or(0, |i| i.needles.len()))
            .field("fixed_forms", &inner.map_or(0, |i| i.forms.len()))
            .field("anchors", &inner.map_or(0, |i| i.tasks.len()))
            .finish()
    }
}

impl Scrubber {
    /// Builds the matcher over every needle of at least 4 bytes (shorter ones are ignored).
    pub fn new<N: AsRef<[u8]>>(needles: &[N]) -> Result<Self, EgressError> {
        let mut kept: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        for needle in needles {
            let needle = needle.as_ref();
            if needle.len() >= MIN_PATTERN_LEN && !kept.iter().any(|k| k.as_slice() == needle) {
                kept.push(Zeroizing::new(needle.to_vec()));
            }
        }
        if kept.is_empty() {
            return Ok(Self { inner: None });
        }
        let mut forms: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut table: Vec<(Zeroizing<Vec<u8>>, Vec<Task>)> = Vec::new();
        let mut add = |anchor: &[u8], task: Task| match table.iter_mut().find(|(a, _)| a.as_slice() == anchor)
        {
            Some((_, tasks)) => {
                if !tasks.contains(&task) {
                    tasks.push(task);
                }
            }
            None => table.push((Zeroizing::new(anchor.to_vec()), vec![task])),
        };
        for (index, needle) in kept.iter().enumerate() {
            let anchors = decode::anchors(needle, ANCHOR_LEN)
                .ok_or_else(|| EgressError::Config("scrubber: a needle is shorter than an anchor".into()))?;
            for (anchor, offset) in anchors {
                add(&anchor, Task { matcher: Matcher::Decoded(index), offset });
            }
            for form in fixed_forms(needle) {
                if form.len() < MIN_PATTERN_LEN || forms.iter().any(|f| **f == *form) {
                    continue;
                }
                add(&form[..ANCHOR_LEN], Task { matcher: Matcher::Fixed(forms.len()), offset: 0 });
                forms.push(form);
            }
        }
        let anchors = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(table.iter().map(|(anchor, _)| anchor.as_slice()))
            .map_err(|e| EgressError::Config(format!("scrubber automaton: {e}")))?;
        // The automaton reports one anchor per position; every anchor found at the same position
        // is a prefix of the others, so each anchor carries the tasks of all it is comparable with.
        let tasks = table
            .iter()
            .map(|(anchor, _)| {
                let mut all: Vec<Task> = Vec::new();
                for (other, tasks) in &table {
                    if anchor.starts_with(other) || other.starts_with(anchor) {
                        for task in tasks {
                            if !all.contains(task) {
                                all.push(*task);
                            }
                        }
                    }
                }
                all
            })
            .collect();
        let max_span = kept
            .iter()
            .map(|n| n.len() * decode::MAX_UNIT_LEN)
            .chain(forms.iter().map(|f| f.len()))
            .max()
            .unwrap_or(0);
        // A later pass finds something only in a match that overlaps an inserted `[REDACTED]`; the
        // replacement's bytes can only be matched as themselves (no escape contains `[` or `]`, and
        // hex and base64 forms contain neither), so such a match contains `[` or `]` or lies inside
        // `REDACTED`.
        let rescan = kept.iter().chain(forms.iter()).any(|p| {
            p.contains(&b'[') || p.contains(&b']') || REDACTED.windows(p.len()).any(|w| w == p.as_slice())
        });
        let mut first_bytes = [false; 256];
        for needle in &kept {
            for spelling in decode::spellings(needle[0]) {
                first_bytes[usize::from(spelling[0])] = true;
            }
        }
        for form in &forms {
            first_bytes[usize::from(form[0])] = true;
        }
        Ok(Self {
            inner: Some(Inner { needles: kept, forms, anchors, tasks, max_span, rescan, first_bytes }),
        })
    }

    /// The scrubbed copy of `data`, or `None` when nothing matched.
    pub fn scrub(&self, data: &[u8]) -> Option<Vec<u8>> {
        let inner = self.inner.as_ref()?;
        let spans = inner.spans(data);
        if spans.is_empty() {
            return None;
        }
        let mut current = redact(data, &spans);
        for _ in 1..MAX_PASSES {
            let spans = inner.spans(&current);
            if spans.is_empty() {
                break;
            }
            current = redact(&current, &spans);
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

    /// Heap bytes this scrubber holds (needles, forms, the prefilter), for caches bounded by size.
    pub fn heap_bytes(&self) -> usize {
        let Some(inner) = &self.inner else { return 0 };
        let buffers = |v: &Vec<Zeroizing<Vec<u8>>>| {
            v.iter().map(|b| b.capacity()).sum::<usize>() + v.capacity() * size_of::<Zeroizing<Vec<u8>>>()
        };
        let tasks = inner.tasks.iter().map(|t| t.capacity() * size_of::<Task>()).sum::<usize>()
            + inner.tasks.capacity() * size_of::<Vec<Task>>();
        buffers(&inner.needles) + buffers(&inner.forms) + inner.anchors.memory_usage() + tasks
    }
}

impl Inner {
    /// Every match in `data` as `(start, end)`, sorted, overlapping ones merged.
    fn spans(&self, data: &[u8]) -> Vec<(usize, usize)> {
        let mut found_spans = self.matches(data);
        // Anchors at an offset can report a match after one that starts later.
        found_spans.sort_unstable();
        let mut spans: Vec<(usize, usize)> = Vec::with_capacity(found_spans.len());
        for (start, end) in found_spans {
            match spans.last_mut() {
                Some((_, last_end)) if start < *last_end => *last_end = (*last_end).max(end),
                _ => spans.push((start, end)),
            }
        }
        spans
    }

    /// Every match in `data` as `(start, end)`, the longest from each start and anchor, unsorted.
    fn matches(&self, data: &[u8]) -> Vec<(usize, usize)> {
        let mut found_spans: Vec<(usize, usize)> = Vec::new();
        let mut at = 0;
        // The automaton reports one anchor per position (the tasks of all anchors found there are
        // merged): restarting one byte after each sees every position, overlapping ones included.
        while let Some(found) = self.anchors.find(Input::new(data).span(at..data.len())) {
            let position = found.start();
            for task in &self.tasks[found.pattern().as_usize()] {
                let Some(start) = position.checked_sub(task.offset) else { continue };
                let end = match task.matcher {
                    Matcher::Decoded(i) => decode::longest_match(&self.needles[i], data, start),
                    Matcher::Fixed(i) => {
                        let form = self.forms[i].as_slice();
                        data[start..].starts_with(form).then(|| start + form.len())
                    }
                };
                if let Some(end) = end {
                    found_spans.push((start, end));
                }
            }
            at = position + 1;
            if at >= data.len() {
                break;
            }
        }
        found_spans
    }

    /// Whether `data[start..]` is a proper prefix of some spelling of a needle or of a fixed form:
    /// more text could still make (or lengthen) a match that starts at `start`.
    fn is_partial(&self, data: &[u8], start: usize) -> bool {
        let rest = &data[start..];
        match rest.first() {
            Some(&first) if self.first_bytes[usize::from(first)] => {}
            _ => return false,
        }
        self.forms.iter().any(|form| form.len() > rest.len() && form.starts_with(rest))
            || self.needles.iter().any(|needle| decode::is_partial(needle, data, start))
    }

    /// The first position from which more text could still make or lengthen a match (`data.len()`
    /// when none): everything before it is decided. Never more than `max_span - 1` bytes from the
    /// end, since no spelling is longer than `max_span`.
    fn first_undecided(&self, data: &[u8]) -> usize {
        let from = data.len().saturating_sub(self.max_span.saturating_sub(1));
        (from..data.len()).find(|&start| self.is_partial(data, start)).unwrap_or(data.len())
    }
}

/// `data` with every span replaced by [`REDACTED`].
fn redact(data: &[u8], spans: &[(usize, usize)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut copied = 0;
    for &(start, end) in spans {
        out.extend_from_slice(&data[copied..start]);
        out.extend_from_slice(REDACTED);
        copied = end;
    }
    out.extend_from_slice(&data[copied..]);
    out
}

/// The exact-string forms of `needle`: lower- and upper-case hex; standard and URL-safe base64,
/// padded and unpadded, of the needle alone and — for the needle at byte offset 0, 1 and 2 inside a
/// larger encoded blob — the characters that depend only on the needle. Duplicates are removed.
fn fixed_forms(needle: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut out: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    let mut push = |candidate: Zeroizing<Vec<u8>>| {
        if !candidate.is_empty() && !out.iter().any(|c| **c == *candidate) {
            out.push(candidate);
        }
    };
    if needle.is_empty() {
        return Vec::new();
    }
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
    out
}

/// Representative forms of `needle` the scrubber removes (for tests and tools; the decoding matcher
/// also finds every other mix of escapes): raw; the [fixed forms](fixed_forms) (hex, base64);
/// percent-encoded (reserved bytes only, and every byte) in both hex cases, and with `+` for spaces;
/// JSON-escaped (`\"`, `\\`, `\/`), and with every byte as `\u00XX` in both hex cases.
/// Duplicates are removed.
pub fn encodings(needle: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    if needle.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<Zeroizing<Vec<u8>>> = vec![Zeroizing::new(needle.to_vec())];
    let mut push = |candidate: Zeroizing<Vec<u8>>| {
        if !candidate.is_empty() && !out.iter().any(|c| **c == *candidate) {
            out.push(candidate);
        }
    };
    for form in fixed_forms(needle) {
        push(form);
    }
    for upper in [true, false] {
        push(percent(needle, upper, false, false));
        push(percent(needle, upper, true, false));
        push(percent(needle, upper, false, true));
        push(json_escaped(needle, upper, true));
    }
    push(json_escaped(needle, false, false));
    out
}

/// JSON string escaping of `needle`: `"`, `\\` and `/` with a backslash, other bytes below 0x20
/// as `\u00XX`; every byte as `\u00XX` when `all`.
fn json_escaped(needle: &[u8], upper: bool, all: bool) -> Zeroizing<Vec<u8>> {
    let digits: &[u8; 16] = if upper { b"0123456789ABCDEF" } else { b"0123456789abcdef" };
    let mut out = Zeroizing::new(Vec::with_capacity(needle.len() * 6));
    for &b in needle {
        if !all && matches!(b, b'"' | b'\\' | b'/') {
            out.extend_from_slice(&[b'\\', b]);
        } else if all || b < 0x20 {
            out.extend_from_slice(b"\\u00");
            out.push(digits[usize::from(b >> 4)]);
            out.push(digits[usize::from(b & 0xf)]);
        } else {
            out.push(b);
        }
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
