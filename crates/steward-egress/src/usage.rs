//! Token usage of LLM answers (`gateway.md` §1, forward-mode `execute_result` `metadata.usage`),
//! read incrementally from the body as it streams, in bounded memory.
//!
//! - OpenAI: `usage.prompt_tokens` / `usage.completion_tokens` (chat completions) or
//!   `usage.input_tokens` / `usage.output_tokens` (responses API, whose SSE `response.completed`
//!   event carries it as `response.usage`), from the JSON body or the last SSE event that has it.
//! - Anthropic: `usage.input_tokens` from `message_start` (`message.usage`) or the JSON body, and
//!   `usage.output_tokens` from the last `message_delta` (or the JSON body).
//!
//! Only the current SSE line and event (or NDJSON line) are kept, up to a cap; a longer one is
//! skipped. A JSON body is kept up to the same cap and parsed at the end; a longer one is not
//! metered.

use serde_json::Value;

/// The default cap on what is kept: one SSE event or NDJSON line, or a whole JSON body.
pub const DEFAULT_USAGE_CAP: usize = 1 << 20;

/// The providers whose answers carry usage Steward reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    OpenAi,
    Anthropic,
}

impl Provider {
    /// `openai` or `anthropic` (an integration's `provider`); `None` for any other.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "openai" => Some(Provider::OpenAi),
            "anthropic" => Some(Provider::Anthropic),
            _ => None,
        }
    }
}

/// Token counts of one answer; a count the answer did not carry is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
}

impl Usage {
    /// `{"input_tokens": …, "output_tokens": …}` with the counts present.
    pub fn to_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        if let Some(n) = self.input_tokens {
            map.insert("input_tokens".into(), n.into());
        }
        if let Some(n) = self.output_tokens {
            map.insert("output_tokens".into(), n.into());
        }
        Value::Object(map)
    }

    fn is_empty(&self) -> bool {
        self.input_tokens.is_none() && self.output_tokens.is_none()
    }
}

/// How the body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `text/event-stream`: events of `data:` lines ended by a blank line.
    Sse,
    /// `application/x-ndjson`: one JSON value a line.
    Ndjson,
    /// Anything else: one JSON document.
    Json,
}

/// Reads usage from a body fed chunk by chunk (chunks may split lines and events anywhere).
#[derive(Debug)]
pub struct UsageMeter {
    provider: Provider,
    framing: Framing,
    cap: usize,
    /// The current incomplete line (SSE, NDJSON) or the body so far (JSON).
    line: Vec<u8>,
    /// The current line passed the cap: drop bytes until its end.
    skipping_line: bool,
    /// The `data` of the current SSE event so far.
    event: Vec<u8>,
    /// The current SSE event passed the cap: ignore it.
    skipping_event: bool,
    /// A `\r` ended the last chunk: a `\n` starting the next belongs to it.
    after_cr: bool,
    usage: Usage,
}

impl UsageMeter {
    /// A meter for `provider`'s answer of media type `media_type` (lowercase, without parameters,
    /// as [`StreamingResponse::media_type`](crate::StreamingResponse)), keeping at most
    /// [`DEFAULT_USAGE_CAP`] bytes.
    pub fn new(provider: Provider, media_type: Option<&str>) -> Self {
        Self::with_cap(provider, media_type, DEFAULT_USAGE_CAP)
    }

    /// Like [`new`](Self::new) with another cap.
    pub fn with_cap(provider: Provider, media_type: Option<&str>, cap: usize) -> Self {
        let framing = match media_type {
            Some("text/event-stream") => Framing::Sse,
            Some("application/x-ndjson") => Framing::Ndjson,
            _ => Framing::Json,
        };
        Self {
            provider,
            framing,
            cap,
            line: Vec::new(),
            skipping_line: false,
            event: Vec::new(),
            skipping_event: false,
            after_cr: false,
            usage: Usage::default(),
        }
    }

    /// Whether the answer is a stream (`text/event-stream` or `application/x-ndjson`).
    pub fn is_stream(&self) -> bool {
        self.framing != Framing::Json
    }

    /// Feeds the next body bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.framing == Framing::Json {
            if self.skipping_line {
                return;
            }
            if self.line.len() + chunk.len() > self.cap {
                self.skipping_line = true;
                self.line = Vec::new();
            } else {
                self.line.extend_from_slice(chunk);
            }
            return;
        }
        let mut rest = chunk;
        if self.after_cr {
            self.after_cr = false;
            if let Some(stripped) = rest.strip_prefix(b"\n") {
                rest = stripped;
            }
        }
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(at) => {
                    self.append_to_line(&rest[..at]);
                    let ending_cr = rest[at] == b'\r';
                    rest = &rest[at + 1..];
                    if ending_cr {
                        match rest.first() {
                            Some(b'\n') => rest = &rest[1..],
                            None => self.after_cr = true,
                            Some(_) => {}
                        }
                    }
                    self.end_line();
                }
                None => {
                    self.append_to_line(rest);
                    rest = &[];
                }
            }
        }
    }

    /// The end of the body: the usage found, if any.
    pub fn finish(&mut self) -> Option<Usage> {
        match self.framing {
            Framing::Json => {
                if !self.skipping_line
                    && let Ok(value) = serde_json::from_slice::<Value>(&self.line)
                {
                    self.take(&value);
                }
                self.line = Vec::new();
            }
            Framing::Ndjson | Framing::Sse => {
                // A last line without its newline still counts; an SSE event must end with a blank
                // line to be dispatched, but an answer cut right after its last `data:` line is
                // still read.
                if !self.line.is_empty() || self.skipping_line {
                    self.end_line();
                }
                if self.framing == Framing::Sse {
                    self.end_event();
                }
            }
        }
        self.usage()
    }

    /// The usage found so far.
    pub fn usage(&self) -> Option<Usage> {
        (!self.usage.is_empty()).then_some(self.usage)
    }

    fn append_to_line(&mut self, bytes: &[u8]) {
        if self.skipping_line {
            return;
        }
        if self.line.len() + bytes.len() > self.cap {
            self.skipping_line = true;
            self.line = Vec::new();
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        let skipped = std::mem::replace(&mut self.skipping_line, false);
        match self.framing {
            Framing::Ndjson => {
                if !skipped && let Ok(value) = serde_json::from_slice::<Value>(&line) {
                    self.take(&value);
                }
            }
            Framing::Sse => {
                if skipped {
                    // A line past the cap may have been a data line: the event is incomplete.
                    self.skipping_event = true;
                } else if line.is_empty() {
                    self.end_event();
                } else if let Some(data) = field(&line, b"data") {
                    if self.skipping_event {
                        return;
                    }
                    if self.event.len() + data.len() + 1 > self.cap {
                        self.skipping_event = true;
                        self.event = Vec::new();
                        return;
                    }
                    if !self.event.is_empty() {
                        self.event.push(b'\n');
                    }
                    self.event.extend_from_slice(data);
                }
            }
            Framing::Json => {}
        }
        // Keep the buffer's capacity bounded by what a typical line needs.
        if line.capacity() <= 64 * 1024 {
            self.line = line;
            self.line.clear();
        }
    }

    fn end_event(&mut self) {
        let data = std::mem::take(&mut self.event);
        if !std::mem::replace(&mut self.skipping_event, false)
            && !data.is_empty()
            && let Ok(value) = serde_json::from_slice::<Value>(&data)
        {
            self.take(&value);
        }
    }

    /// Takes what `value` (one JSON body, SSE event or NDJSON line) says about usage.
    fn take(&mut self, value: &Value) {
        match self.provider {
            Provider::OpenAi => {
                let usage = value
                    .get("usage")
                    .filter(|u| u.is_object())
                    .or_else(|| value.get("response").and_then(|r| r.get("usage")).filter(|u| u.is_object()));
                if let Some(usage) = usage {
                    // The last event with usage wins, as a whole.
                    let input = count(usage, "prompt_tokens").or_else(|| count(usage, "input_tokens"));
                    let output = count(usage, "completion_tokens").or_else(|| count(usage, "output_tokens"));
                    if input.is_some() || output.is_some() {
                        self.usage = Usage { input_tokens: input, output_tokens: output };
                    }
                }
            }
            Provider::Anthropic => match value.get("type").and_then(Value::as_str) {
                Some("message_start") => {
                    if let Some(usage) = value.get("message").and_then(|m| m.get("usage")) {
                        if let Some(n) = count(usage, "input_tokens") {
                            self.usage.input_tokens = Some(n);
                        }
                        // Provisional: the final `message_delta` carries the real count.
                        if let Some(n) = count(usage, "output_tokens") {
                            self.usage.output_tokens = Some(n);
                        }
                    }
                }
                Some("message_delta") => {
                    if let Some(n) = value.get("usage").and_then(|u| count(u, "output_tokens")) {
                        self.usage.output_tokens = Some(n);
                    }
                }
                _ => {
                    // The JSON body of a message (`type: "message"`).
                    if let Some(usage) = value.get("usage").filter(|u| u.is_object()) {
                        if let Some(n) = count(usage, "input_tokens") {
                            self.usage.input_tokens = Some(n);
                        }
                        if let Some(n) = count(usage, "output_tokens") {
                            self.usage.output_tokens = Some(n);
                        }
                    }
                }
            },
        }
    }
}

/// The value of SSE field `name` on `line` (`name:value`, one optional space after the colon), or
/// `None` for another field or a comment.
fn field<'l>(line: &'l [u8], name: &[u8]) -> Option<&'l [u8]> {
    let rest = line.strip_prefix(name)?;
    if rest.is_empty() {
        return Some(rest);
    }
    let value = rest.strip_prefix(b":")?;
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

fn count(usage: &Value, key: &str) -> Option<u64> {
    usage.get(key).and_then(Value::as_u64)
}

#[cfg(test)]
mod tests;
