//! Reading token usage from an answer while it passes to the client.
//!
//! The meter sees the client-bound bytes (after any translation, so only three formats exist:
//! OpenAI chat, Anthropic Messages and OpenAI's Responses API), reads the usage the provider reported — a JSON body's `usage`,
//! OpenAI's final usage chunk, Anthropic's `message_start` + `message_delta` — and keeps the
//! delivered text for a tokenizer estimate when no usage arrives (a cut stream, a client
//! that left, a provider that reports none). It also removes the usage-only chunk that the
//! gateway asked an OpenAI-format provider for on behalf of a client that did not.
//!
//! SSE input must come in whole events (the relay frames passthrough streams; translators
//! emit whole events), so no event is ever split across calls.
//!
//! Hot path: an event is parsed only when it can carry usage (a cheap byte search finds
//! `"usage":{` or Anthropic's usage events, in a whole batch of events first, so a batch
//! without usage is not even split into events). For the estimate only the delivered text
//! fields are kept (see `text`), never the chunks themselves.

use std::sync::LazyLock;

use bytes::{Bytes, BytesMut};
use memchr::memmem;

use super::{CacheWrites, Usage};
use crate::dialect::Dialect;

mod text;
mod wire;
use text::StreamText;
use wire::*;

/// A JSON answer larger than this is not buffered whole; its usage is read from the tail.
const MAX_JSON_BUFFER: usize = 4 * 1024 * 1024;
/// How much of a large JSON answer's end is kept (usage is the last field).
const JSON_TAIL: usize = 64 * 1024;

/// The client-bound format an answer is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerFormat {
    /// OpenAI chat completions (and embeddings).
    Chat,
    /// Anthropic Messages.
    Anthropic,
    /// OpenAI's Responses API: usage in the JSON `usage`, or the stream's final
    /// `response.completed` / `response.incomplete` / `response.failed` event.
    Responses,
}

impl From<Dialect> for AnswerFormat {
    fn from(dialect: Dialect) -> Self {
        match dialect {
            Dialect::OpenAi => Self::Chat,
            Dialect::Anthropic => Self::Anthropic,
        }
    }
}

/// Observes one answer.
#[derive(Debug)]
pub struct Meter {
    dialect: AnswerFormat,
    stream: bool,
    strip_usage_chunk: bool,
    json: Vec<u8>,
    json_bytes: usize,
    /// A whole answer handed over by [`Self::read_answer`] (shared, not copied).
    answer: Option<Bytes>,
    usage: Option<Usage>,
    /// The part of `usage.prompt` written to Anthropic's prompt cache.
    writes: CacheWrites,
    /// The stream's delivered text, for an estimate if no usage comes.
    kept: StreamText,
    text: Option<String>,
}

impl Meter {
    /// `strip_usage_chunk`: the client did not ask for OpenAI's usage chunk, the gateway did.
    pub fn new(format: impl Into<AnswerFormat>, stream: bool, strip_usage_chunk: bool) -> Self {
        let dialect = format.into();
        Self {
            dialect,
            stream,
            strip_usage_chunk: strip_usage_chunk && stream && dialect == AnswerFormat::Chat,
            json: Vec::new(),
            json_bytes: 0,
            answer: None,
            usage: None,
            writes: CacheWrites::default(),
            kept: StreamText::default(),
            text: None,
        }
    }

    /// Reads client-bound bytes and returns what the client gets: the same bytes, minus the
    /// usage-only chunk when it must be removed (no copy otherwise).
    pub fn process(&mut self, data: Bytes) -> Bytes {
        if !self.stream {
            if self.answer.is_none() {
                self.buffer_json(&data);
            }
            return data;
        }
        self.kept.keep(self.dialect, &data);
        if !carries_usage(&data) {
            return data;
        }
        let mut drop_ranges = Vec::new();
        let mut start = 0;
        while start < data.len() {
            let end = event_end(&data, start);
            let event = &data[start..end];
            if self.observe_event(event) && self.strip_usage_chunk {
                drop_ranges.push(start..end);
            }
            start = end;
        }
        if drop_ranges.is_empty() {
            return data;
        }
        let mut kept = BytesMut::with_capacity(data.len());
        let mut at = 0;
        for r in drop_ranges {
            kept.extend_from_slice(&data[at..r.start]);
            at = r.end;
        }
        kept.extend_from_slice(&data[at..]);
        kept.freeze()
    }

    /// A whole JSON answer, in hand before it is written: its usage is read in the same parse
    /// that tells whether it is well-formed JSON (false: malformed, which the relay may still
    /// retry elsewhere). The bytes are kept by reference, so writing them copies nothing.
    pub fn read_answer(&mut self, body: &Bytes) -> bool {
        let (usage, well_formed) = json_usage(self.dialect, body);
        if let Some((usage, writes)) = usage {
            self.usage = Some(usage);
            self.writes = writes;
        }
        self.answer = Some(body.clone());
        well_formed
    }

    /// The usage the provider reported, if any; for JSON answers read here, at the end.
    pub fn reported(&mut self) -> Option<Usage> {
        if !self.stream && self.usage.is_none() && self.answer.is_none() {
            if let (Some((usage, writes)), _) = json_usage(self.dialect, &self.json) {
                self.usage = Some(usage);
                self.writes = writes;
            }
        }
        self.usage
    }

    /// The prompt tokens the provider wrote to its prompt cache (Anthropic reports them:
    /// `cache_creation_input_tokens`, split by lifetime in `cache_creation`), part of
    /// [`Self::reported`]'s prompt and priced apart. Zero when none were reported.
    pub fn cache_writes(&mut self) -> CacheWrites {
        self.reported();
        self.writes
    }

    /// The text delivered so far (content, tool arguments), for an estimate; extracted on
    /// first call.
    pub fn delivered_text(&mut self) -> &str {
        let dialect = self.dialect;
        if self.text.is_none() {
            let text = if self.stream {
                self.kept.text()
            } else if let Some(answer) = &self.answer {
                json_text(dialect, answer)
            } else if self.json_bytes <= MAX_JSON_BUFFER {
                json_text(dialect, &self.json)
            } else {
                String::new()
            };
            self.text = Some(text);
        }
        self.text.as_deref().unwrap_or_default()
    }

    fn buffer_json(&mut self, data: &[u8]) {
        self.json_bytes += data.len();
        self.json.extend_from_slice(data);
        if self.json_bytes > MAX_JSON_BUFFER && self.json.len() > JSON_TAIL {
            let cut = self.json.len() - JSON_TAIL;
            self.json.drain(..cut);
        }
    }

    /// Reads one SSE event's usage, if it can carry any; true when it is OpenAI's usage-only
    /// chunk.
    fn observe_event(&mut self, event: &[u8]) -> bool {
        if !carries_usage(event) {
            return false;
        }
        let Some(data) = event_data(event) else {
            return false;
        };
        match self.dialect {
            AnswerFormat::Responses => {
                if let Ok(event) = serde_json::from_slice::<ResponsesEvent>(data) {
                    if let Some(u) = event.response.and_then(|r| r.usage) {
                        self.writes = u.writes();
                        self.usage = Some(u.into());
                    }
                }
                false
            }
            AnswerFormat::Chat => {
                let Ok(chunk) = serde_json::from_slice::<OpenAiUsageChunk>(data) else {
                    return false;
                };
                match chunk.usage {
                    Some(u) => {
                        self.writes = u.writes();
                        self.usage = Some(u.into());
                        chunk.choices.is_some_and(|c| c.is_empty())
                    }
                    None => false,
                }
            }
            AnswerFormat::Anthropic => {
                let Ok(event) = serde_json::from_slice::<AnthropicEvent>(data) else {
                    return false;
                };
                match event.kind.as_str() {
                    "message_start" => {
                        if let Some(u) = event.message.and_then(|m| m.usage) {
                            (self.usage, self.writes) = u.merge_into(None, self.writes);
                        }
                    }
                    "message_delta" => {
                        if let Some(u) = event.usage {
                            (self.usage, self.writes) = u.merge_into(self.usage, self.writes);
                        }
                    }
                    _ => {}
                }
                false
            }
        }
    }

    /// How many stream bytes there were per byte whose text was kept (the estimate scales
    /// by it).
    pub fn text_overflow_ratio(&self) -> f64 {
        self.kept.overflow_ratio()
    }
}

/// Whether an event can hold usage: `"usage":` followed by an object (OpenAI sends
/// `"usage":null` on every chunk once usage is requested; those are skipped).
fn carries_usage(event: &[u8]) -> bool {
    static USAGE_KEY: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"\"usage\""));
    let mut rest = event;
    while let Some(at) = USAGE_KEY.find(rest) {
        rest = &rest[at + 7..];
        let value = rest
            .iter()
            .find(|b| !(b.is_ascii_whitespace() || **b == b':'));
        if value == Some(&b'{') {
            return true;
        }
    }
    false
}

/// The end of the SSE event starting at `start`: just past its blank line, or the end.
fn event_end(data: &[u8], start: usize) -> usize {
    for i in memchr::memchr_iter(b'\n', &data[start..]).map(|i| start + i) {
        let next = i + 1;
        if data.get(next) == Some(&b'\n') {
            return next + 1;
        }
        if data.get(next) == Some(&b'\r') && data.get(next + 1) == Some(&b'\n') {
            return next + 2;
        }
    }
    data.len()
}

/// The payload of an event's `data:` line (events here carry one).
fn event_data(event: &[u8]) -> Option<&[u8]> {
    event
        .split(|b| *b == b'\n')
        .find_map(|line| line.strip_prefix(b"data:"))
        .map(|d| d.strip_prefix(b" ").unwrap_or(d))
        .map(|d| d.strip_suffix(b"\r").unwrap_or(d))
}

/// The usage in a JSON answer (from its tail when the whole does not parse), and whether
/// the answer is well-formed JSON. One parse in the usual case: the typed parse validates
/// the whole document; only a document that is valid JSON of an unexpected shape is
/// parsed a second time, to tell it from malformed JSON.
fn json_usage(dialect: AnswerFormat, body: &[u8]) -> (Option<(Usage, CacheWrites)>, bool) {
    fn read<B: serde::de::DeserializeOwned, U: serde::de::DeserializeOwned>(
        body: &[u8],
        usage_of: impl FnOnce(B) -> Option<U>,
    ) -> (Option<U>, bool) {
        match serde_json::from_slice::<B>(body) {
            Ok(b) => (usage_of(b), true),
            Err(e) => {
                let well_formed =
                    e.is_data() && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok();
                let tail = tail_object(body, b"\"usage\"")
                    .and_then(|o| serde_json::from_slice::<U>(o).ok());
                (tail, well_formed)
            }
        }
    }
    match dialect {
        AnswerFormat::Responses => {
            let (usage, ok) = read::<ResponsesObject, ResponsesUsage>(body, |b| b.usage);
            let usage = usage.map(|u| {
                let writes = u.writes();
                (Usage::from(u), writes)
            });
            (usage, ok)
        }
        AnswerFormat::Chat => {
            let (usage, ok) = read::<OpenAiBody, OpenAiUsage>(body, |b| b.usage);
            let usage = usage.map(|u| {
                let writes = u.writes();
                (Usage::from(u), writes)
            });
            (usage, ok)
        }
        AnswerFormat::Anthropic => {
            let (usage, ok) = read::<AnthropicMessage, AnthropicUsage>(body, |b| b.usage);
            let usage = usage.and_then(|u| {
                let (usage, writes) = u.merge_into(None, CacheWrites::default());
                usage.map(|u| (u, writes))
            });
            (usage, ok)
        }
    }
}

/// The JSON object after the last `key:` in a (tail of a) body.
fn tail_object<'a>(body: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let at = body.windows(key.len()).rposition(|w| w == key)?;
    let rest = &body[at + key.len()..];
    let open = rest.iter().position(|b| *b == b'{')?;
    let mut de =
        serde_json::Deserializer::from_slice(&rest[open..]).into_iter::<serde_json::Value>();
    let consumed = match de.next() {
        Some(Ok(_)) => de.byte_offset(),
        _ => return None,
    };
    Some(&rest[open..open + consumed])
}

fn json_text(dialect: AnswerFormat, body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    let mut text = String::new();
    match dialect {
        AnswerFormat::Responses => {
            for item in v["output"].as_array().into_iter().flatten() {
                for part in item["content"].as_array().into_iter().flatten() {
                    text.push_str(part["text"].as_str().unwrap_or_default());
                }
                text.push_str(item["arguments"].as_str().unwrap_or_default());
            }
        }
        AnswerFormat::Chat => {
            for choice in v["choices"].as_array().into_iter().flatten() {
                let m = &choice["message"];
                text.push_str(m["content"].as_str().unwrap_or_default());
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    text.push_str(call["function"]["arguments"].as_str().unwrap_or_default());
                }
            }
        }
        AnswerFormat::Anthropic => {
            for block in v["content"].as_array().into_iter().flatten() {
                text.push_str(block["text"].as_str().unwrap_or_default());
                if block["type"] == "tool_use" {
                    text.push_str(&block["input"].to_string());
                }
            }
        }
    }
    text
}

#[cfg(test)]
#[path = "meter_tests.rs"]
mod tests;
