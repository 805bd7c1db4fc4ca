//! Scrubbing a body that arrives in chunks (forward mode, `gateway.md` §1 "Streaming scrubbing").
//!
//! The output is byte for byte what [`Scrubber::scrub`] makes of the whole body, however the body is
//! split. Each chunk is emitted at once except for its longest tail that could still become (or
//! lengthen) a match: a tail that is a proper prefix of some spelling of a needle or of a fixed
//! form. Such a tail is shorter than the longest spelling ([`StreamScrubber::max_hold`]) and is held
//! only until the next chunk or the end decides it (`docs/decisions/0016-streaming-egress.md`).
//!
//! Why this equals the buffered result: a match that starts before the held tail cannot reach
//! past the data seen (else the text from its start would be a proper prefix of a spelling, and the
//! tail would start there), so every match starting there is found exactly as in the whole body.
//! Overlapping matches merge into one `[REDACTED]`: that marker is emitted as soon as the first
//! match of a group is decided, and bytes of a group that keeps growing into later chunks are
//! simply never emitted. The buffered scrubber's later passes (a replacement completing a needle
//! that holds `[` or `]`) are further stages fed with the previous stage's output, only when the
//! needles make them possible.

use std::sync::Arc;

use bytes::Bytes;

use super::{Inner, MAX_PASSES, REDACTED, Scrubber};

/// An incremental [`Scrubber`]: [`push`](Self::push) each chunk and send what it returns, then
/// send what [`finish`](Self::finish) returns.
#[derive(Debug)]
pub struct StreamScrubber {
    scrubber: Arc<Scrubber>,
    /// One stage per pass (one unless the needles make a second pass possible).
    stages: Vec<Stage>,
    finished: bool,
}

/// One pass over the stream.
#[derive(Debug, Default)]
struct Stage {
    /// Undecided bytes (the tail held back).
    held: Vec<u8>,
    /// How many bytes at the start of `held` an already emitted `[REDACTED]` covers: a group of
    /// overlapping matches that a later match starting before this may still extend.
    covered: usize,
    /// Whether this stage replaced anything.
    redacted: bool,
}

impl StreamScrubber {
    /// A stream scrubber over `scrubber`'s needles (one without needles passes chunks through).
    pub fn new(scrubber: Arc<Scrubber>) -> Self {
        let passes = match &scrubber.inner {
            Some(inner) if inner.rescan => MAX_PASSES,
            _ => 1,
        };
        let stages = (0..passes).map(|_| Stage::default()).collect();
        Self { scrubber, stages, finished: false }
    }

    /// Scrubs the next chunk: the bytes that can be sent now (possibly empty while a tail is held).
    pub fn push(&mut self, chunk: &[u8]) -> Bytes {
        self.run(chunk, false)
    }

    /// The end of the body: everything still held, scrubbed. Later calls return nothing.
    pub fn finish(&mut self) -> Bytes {
        if self.finished {
            return Bytes::new();
        }
        let out = self.run(&[], true);
        self.finished = true;
        out
    }

    /// Whether anything was replaced so far (the buffered scrubber's `Some`).
    pub fn redacted(&self) -> bool {
        self.stages.first().is_some_and(|stage| stage.redacted)
    }

    /// Bytes currently held back, undecided.
    pub fn held(&self) -> usize {
        self.stages.iter().map(|stage| stage.held.len()).sum()
    }

    /// The most bytes ever held back: one less than the longest spelling of a needle (8 bytes per
    /// needle byte, `\u0025XX`) or fixed form, per stage (one stage unless a needle contains `[` or
    /// `]` or lies inside `REDACTED`). 0 without needles.
    pub fn max_hold(&self) -> usize {
        let per_stage = self.scrubber.inner.as_ref().map_or(0, |inner| inner.max_span.saturating_sub(1));
        per_stage * self.stages.len()
    }

    fn run(&mut self, chunk: &[u8], last: bool) -> Bytes {
        let Some(inner) = self.scrubber.inner.as_ref() else {
            return Bytes::copy_from_slice(chunk);
        };
        if self.finished {
            return Bytes::new();
        }
        let mut data = chunk.to_vec();
        for stage in &mut self.stages {
            data = stage.push(inner, &data, last);
        }
        Bytes::from(data)
    }
}

impl Stage {
    /// Adds `chunk`, returns the bytes now decided, scrubbed (all of them when `last`).
    fn push(&mut self, inner: &Inner, chunk: &[u8], last: bool) -> Vec<u8> {
        if self.held.is_empty() && self.covered == 0 && !last {
            // Common case without any held tail: scan the chunk where it is.
            return self.decide(inner, chunk, false);
        }
        let mut data = std::mem::take(&mut self.held);
        data.extend_from_slice(chunk);
        self.decide(inner, &data, last)
    }

    fn decide(&mut self, inner: &Inner, data: &[u8], last: bool) -> Vec<u8> {
        let cut = if last { data.len() } else { inner.first_undecided(data) };
        let mut decided: Vec<(usize, usize)> =
            inner.matches(data).into_iter().filter(|&(start, _)| start < cut).collect();
        decided.sort_unstable();
        let mut out = Vec::with_capacity(cut + REDACTED.len());
        // Everything before `end` is emitted or replaced; `end` is also where the last group of
        // overlapping matches ends (the buffered scrubber's merge rule: start < end joins it).
        let mut end = self.covered;
        for (start, stop) in decided {
            if start < end {
                end = end.max(stop);
                continue;
            }
            out.extend_from_slice(&data[end..start]);
            out.extend_from_slice(REDACTED);
            self.redacted = true;
            end = stop;
        }
        if end < cut {
            out.extend_from_slice(&data[end..cut]);
            self.covered = 0;
        } else {
            self.covered = end - cut;
        }
        self.held = data[cut..].to_vec();
        if last {
            self.held.clear();
            self.covered = 0;
        }
        out
    }
}

#[cfg(test)]
mod tests;
