//! The decoding scanner: matching a needle against text in which every byte of the needle may be
//! written as itself or as an escape, in any mix.
//!
//! A **unit** is a stretch of text that spells one byte:
//!
//! - the byte itself;
//! - percent family: `%XX` (either hex case), and `+` for a space;
//! - JSON family: `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, and `\u00XX` (either hex case);
//! - the one double encoding JSON encoders produce for percent-encoded text: `\u0025XX`, a JSON-escaped
//!   `%` followed by the two hex digits (`\u0025` alone is a `%`).
//!
//! A needle matches at a position when a sequence of units starting there spells it. The families
//! mix freely inside one match: a superset of "percent-encoded" and "JSON-escaped", which also covers
//! the common double encoding of percent-encoded text inside a JSON string (`%2B…\/…`).
//!
//! Some text can be read as units in two ways (`%25` is a `%` or the three bytes `%`, `2`, `5`): the
//! matcher explores both and returns the longest match; once it has branched it remembers the states
//! it has seen, so it never does the same work twice.

use std::collections::HashSet;

use zeroize::Zeroizing;

/// The longest unit (`\u0025XX`).
pub(super) const MAX_UNIT_LEN: usize = 8;

/// Every unit that spells `byte` (see the module documentation), each at most 8 bytes long.
pub(super) fn spellings(byte: u8) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = vec![vec![byte]];
    let mut push = |s: Vec<u8>| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    let (hi, lo) = (byte >> 4, byte & 0xf);
    for h in hex_cases(hi) {
        for l in hex_cases(lo) {
            push(vec![b'%', h, l]);
            push(vec![b'\\', b'u', b'0', b'0', h, l]);
            push(vec![b'\\', b'u', b'0', b'0', b'2', b'5', h, l]);
        }
    }
    if byte == b' ' {
        push(vec![b'+']);
    }
    if let Some(letter) = json_short_escape(byte) {
        push(vec![b'\\', letter]);
    }
    out
}

/// The lengths of the units at `text[pos..]` that spell `want` (at most two can: a byte written as
/// itself and an escape that starts with the same byte, like `%` and `%25`).
#[inline]
pub(super) fn unit_lengths(text: &[u8], pos: usize, want: u8) -> Lengths {
    let mut out = Lengths::default();
    let Some(&first) = text.get(pos) else { return out };
    if first == want {
        out.push(1);
    }
    match first {
        b'+' if want == b' ' => out.push(1),
        b'%' if pair(text, pos + 1) == Some(want) => out.push(3),
        b'\\' => match text.get(pos + 1) {
            Some(b'u') if pair(text, pos + 2) == Some(0) => {
                let low = pair(text, pos + 4);
                if low == Some(want) {
                    out.push(6);
                }
                if low == Some(b'%') && pair(text, pos + 6) == Some(want) {
                    out.push(8);
                }
            }
            Some(&letter) if json_short_escape(want) == Some(letter) => out.push(2),
            _ => {}
        },
        _ => {}
    }
    out
}

/// What [`walk_spellings`] does with a state after its visitor has seen it.
enum Visit {
    /// Go on to the states reachable by spelling the next needle byte.
    Expand,
    /// Nothing follows from this state (the whole needle is spelled).
    Skip,
    /// The answer is known: end the walk.
    Stop,
}

/// Walks, depth first, every way `needle` can be spelled unit by unit from `start`, showing each
/// state (needle index, text position) to `visit` once. Until the first branch there is one path,
/// so no state can come twice; from then on every state scheduled is remembered.
fn walk_spellings(needle: &[u8], text: &[u8], start: usize, mut visit: impl FnMut(usize, usize) -> Visit) {
    let mut pending: Vec<(usize, usize)> = Vec::new();
    let mut seen: Option<HashSet<(usize, usize)>> = None;
    let mut state = Some((0usize, start));
    while let Some((i, pos)) = state {
        state = None;
        match visit(i, pos) {
            Visit::Stop => return,
            Visit::Skip => {}
            Visit::Expand => {
                if let Some(&want) = needle.get(i) {
                    let lengths = unit_lengths(text, pos, want);
                    if lengths.len() > 1 && seen.is_none() {
                        seen = Some(HashSet::new());
                    }
                    for len in lengths.iter() {
                        let next = (i + 1, pos + len);
                        if let Some(seen) = seen.as_mut()
                            && !seen.insert(next)
                        {
                            continue;
                        }
                        if state.is_none() {
                            state = Some(next);
                        } else {
                            pending.push(next);
                        }
                    }
                }
            }
        }
        if state.is_none() {
            state = pending.pop();
        }
    }
}

/// The end of the longest match of `needle` at `start` (spelled unit by unit), or `None`.
pub(super) fn longest_match(needle: &[u8], text: &[u8], start: usize) -> Option<usize> {
    let mut best: Option<usize> = None;
    walk_spellings(needle, text, start, |i, pos| {
        if i == needle.len() {
            best = best.max(Some(pos));
            Visit::Skip
        } else {
            Visit::Expand
        }
    });
    best
}

/// Whether `text[start..]` (to its end) is a proper prefix of some spelling of `needle`: the text
/// runs out before the spelling does, so more text could still complete (or lengthen) a match.
pub(super) fn is_partial(needle: &[u8], text: &[u8], start: usize) -> bool {
    let mut partial = false;
    walk_spellings(needle, text, start, |i, pos| match needle.get(i) {
        // A path that spelled the whole needle inside the text is a complete match, not a partial.
        None => Visit::Skip,
        Some(&want) if pos >= text.len() || partial_unit(&text[pos..], want) => {
            partial = true;
            Visit::Stop
        }
        Some(_) => Visit::Expand,
    });
    partial
}

/// Whether `rest` (not empty, running to the end of the text) is a proper prefix of a unit that
/// spells `want`. Only escapes are longer than one byte: `%X`, a lone `\`, `\u00X…`, `\u0025X…`.
fn partial_unit(rest: &[u8], want: u8) -> bool {
    let digits_match = |digits: &[u8], expected: &[u8]| {
        digits.len() < expected.len() && digits.iter().zip(expected).all(|(d, e)| hex_value(*d) == Some(*e))
    };
    let (hi, lo) = (want >> 4, want & 0xf);
    match rest {
        [b'%', digits @ ..] => digits_match(digits, &[hi, lo]),
        [b'\\'] => true,
        [b'\\', b'u', digits @ ..] => {
            digits_match(digits, &[0, 0, hi, lo]) || digits_match(digits, &[0, 0, 2, 5, hi, lo])
        }
        _ => false,
    }
}

/// An anchor: bytes every match of some spelling contains, and where (the offset from the start of
/// the match).
pub(super) type Anchor = (Zeroizing<Vec<u8>>, usize);

/// The anchors of `needle`: a match of the needle always contains one of them at its offset. For
/// every way to spell the needle unit by unit, its first `len` bytes at offset 0 — except when the
/// first unit is a `\u` escape: then its four hex digits at offset 2 (`\u0073` → `0073`,
/// `\u002573` → `0025`), because a `\u0` would be found at every JSON unicode escape of an answer
/// and `\u00XX` at every escaped Latin-1 letter. `None` when some spelling is shorter than `len`.
pub(super) fn anchors(needle: &[u8], len: usize) -> Option<Vec<Anchor>> {
    let mut out: Vec<Anchor> = Vec::new();
    let mut prefix = Zeroizing::new(Vec::with_capacity(len + 8));
    if collect_anchors(needle, len, &mut prefix, &mut out) { Some(out) } else { None }
}

fn collect_anchors(
    needle: &[u8],
    len: usize,
    prefix: &mut Zeroizing<Vec<u8>>,
    out: &mut Vec<Anchor>,
) -> bool {
    if prefix.len() >= len {
        let anchor = &prefix[..len];
        if !out.iter().any(|(a, offset)| a.as_slice() == anchor && *offset == 0) {
            out.push((Zeroizing::new(anchor.to_vec()), 0));
        }
        return true;
    }
    let Some((&byte, rest)) = needle.split_first() else { return false };
    for spelling in spellings(byte) {
        let spelling = Zeroizing::new(spelling);
        if prefix.is_empty() && spelling.starts_with(b"\\u") {
            if let Some(digits) = spelling.get(2..6)
                && !out.iter().any(|(a, offset)| a.as_slice() == digits && *offset == 2)
            {
                out.push((Zeroizing::new(digits.to_vec()), 2));
            }
            continue;
        }
        let mark = prefix.len();
        prefix.extend_from_slice(&spelling);
        let complete = collect_anchors(rest, len, prefix, out);
        prefix.truncate(mark);
        if !complete {
            return false;
        }
    }
    true
}

/// Up to two unit lengths, without allocating.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Lengths {
    items: [usize; 2],
    len: usize,
}

impl Lengths {
    fn push(&mut self, length: usize) {
        if self.len < self.items.len() && !self.items[..self.len].contains(&length) {
            self.items[self.len] = length;
            self.len += 1;
        }
    }
    pub(super) fn len(&self) -> usize {
        self.len
    }
    pub(super) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.items[..self.len].iter().copied()
    }
}

/// The letter of JSON's two-character escape of `byte`, if it has one.
fn json_short_escape(byte: u8) -> Option<u8> {
    match byte {
        b'"' => Some(b'"'),
        b'\\' => Some(b'\\'),
        b'/' => Some(b'/'),
        0x08 => Some(b'b'),
        0x0c => Some(b'f'),
        b'\n' => Some(b'n'),
        b'\r' => Some(b'r'),
        b'\t' => Some(b't'),
        _ => None,
    }
}

/// The byte two hex digits (either case) at `text[pos..pos + 2]` spell.
#[inline]
fn pair(text: &[u8], pos: usize) -> Option<u8> {
    let hi = hex_value(*text.get(pos)?)?;
    let lo = hex_value(*text.get(pos + 1)?)?;
    Some(hi << 4 | lo)
}

#[inline]
fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// The spellings of one hex digit: one for a digit, both cases for a letter.
fn hex_cases(nibble: u8) -> Vec<u8> {
    const LOWER: &[u8; 16] = b"0123456789abcdef";
    const UPPER: &[u8; 16] = b"0123456789ABCDEF";
    let (l, u) = (LOWER[usize::from(nibble & 0xf)], UPPER[usize::from(nibble & 0xf)]);
    if l == u { vec![l] } else { vec![l, u] }
}
