//! Reading token usage from an answer while it passes to the client.
//!
//! The meter sees the client-bound bytes (after any translation, so only two formats exist:
//! OpenAI's and Anthropic's), reads the usage the provider reported — a JSON body's `usage`,
//! OpenAI's final usage chunk, Anthropic's `message_start` + `message_delta` — and keeps the
//! delivered text for a tokenizer estimate when no usage arrives (a cut stream, a client
//! that left, a provider that reports none). It also removes the usage-only chunk that the
//! gateway asked an OpenAI-format provider for on behalf of a client that did not.
//!
//! SSE input must come in whole events (the relay frames passthrough streams; translators
//! emit whole events), so no event is ever split across calls.
//!
//! Hot path: an event is parsed only when it can carry usage (a cheap byte search finds
//! `"usage":{` or Anthropic's usage events); the chunks themselves are kept by reference
//! (`Bytes`, no copy) and their text is extracted only when an estimate is needed.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;

use super::Usage;
use crate::dialect::Dialect;

/// A JSON answer larger than this is not buffered whole; its usage is read from the tail.
const MAX_JSON_BUFFER: usize = 4 * 1024 * 1024;
/// How much of a large JSON answer's end is kept (usage is the last field).
const JSON_TAIL: usize = 64 * 1024;
/// Stream bytes kept for the tokenizer fallback (beyond it the estimate is linear).
const MAX_KEPT: usize = 4 * 1024 * 1024;

/// Observes one answer.
#[derive(Debug)]
pub struct Meter {
    dialect: Dialect,
    stream: bool,
    strip_usage_chunk: bool,
    json: Vec<u8>,
    json_bytes: usize,
    usage: Option<Usage>,
    /// The stream's chunks (shared, not copied), for a text estimate if no usage comes.
    kept: Vec<Bytes>,
    kept_bytes: usize,
    seen_bytes: usize,
    text: Option<String>,
}

impl Meter {
    /// `strip_usage_chunk`: the client did not ask for OpenAI's usage chunk, the gateway did.
    pub fn new(dialect: Dialect, stream: bool, strip_usage_chunk: bool) -> Self {
        Self {
            dialect,
            stream,
            strip_usage_chunk: strip_usage_chunk && stream && dialect == Dialect::OpenAi,
            json: Vec::new(),
            json_bytes: 0,
            usage: None,
            kept: Vec::new(),
            kept_bytes: 0,
            seen_bytes: 0,
            text: None,
        }
    }

    /// Reads client-bound bytes and returns what the client gets: the same bytes, minus the
    /// usage-only chunk when it must be removed (no copy otherwise).
    pub fn process(&mut self, data: Bytes) -> Bytes {
        if !self.stream {
            self.buffer_json(&data);
            return data;
        }
        self.seen_bytes += data.len();
        if self.kept_bytes < MAX_KEPT {
            self.kept_bytes += data.len();
            self.kept.push(data.clone());
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

    /// The usage the provider reported, if any; for JSON answers read here, at the end.
    pub fn reported(&mut self) -> Option<Usage> {
        if !self.stream && self.usage.is_none() {
            self.usage = json_usage(self.dialect, &self.json);
        }
        self.usage
    }

    /// The text delivered so far (content, tool arguments), for an estimate; extracted on
    /// first call.
    pub fn delivered_text(&mut self) -> &str {
        let dialect = self.dialect;
        if self.text.is_none() {
            let text = if self.stream {
                let mut text = String::new();
                for chunk in &self.kept {
                    let mut start = 0;
                    while start < chunk.len() {
                        let end = event_end(chunk, start);
                        if let Some(data) = event_data(&chunk[start..end]) {
                            event_text(dialect, data, &mut text);
                        }
                        start = end;
                    }
                }
                text
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
            Dialect::OpenAi => {
                let Ok(chunk) = serde_json::from_slice::<OpenAiUsageChunk>(data) else {
                    return false;
                };
                match chunk.usage {
                    Some(u) => {
                        self.usage = Some(u.into());
                        chunk.choices.is_some_and(|c| c.is_empty())
                    }
                    None => false,
                }
            }
            Dialect::Anthropic => {
                let Ok(event) = serde_json::from_slice::<AnthropicEvent>(data) else {
                    return false;
                };
                match event.kind.as_str() {
                    "message_start" => {
                        if let Some(u) = event.message.and_then(|m| m.usage) {
                            self.usage = Some(u.merge_into(None));
                        }
                    }
                    "message_delta" => {
                        if let Some(u) = event.usage {
                            self.usage = Some(u.merge_into(self.usage));
                        }
                    }
                    _ => {}
                }
                false
            }
        }
    }

    /// How many stream bytes there were per byte kept (the estimate scales by it).
    pub fn text_overflow_ratio(&self) -> f64 {
        if self.kept_bytes == 0 {
            1.0
        } else {
            self.seen_bytes as f64 / self.kept_bytes as f64
        }
    }
}

/// Whether an event can hold usage: `"usage":` followed by an object (OpenAI sends
/// `"usage":null` on every chunk once usage is requested; those are skipped).
fn carries_usage(event: &[u8]) -> bool {
    let mut rest = event;
    while let Some(at) = memchr::memmem::find(rest, b"\"usage\"") {
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

/// Appends the text an event delivered (content deltas, tool arguments).
fn event_text(dialect: Dialect, data: &[u8], text: &mut String) {
    match dialect {
        Dialect::OpenAi => {
            let Ok(chunk) = serde_json::from_slice::<OpenAiChunk>(data) else {
                return;
            };
            for delta in chunk
                .choices
                .iter()
                .flatten()
                .filter_map(|c| c.delta.as_ref())
            {
                text.push_str(delta.content.as_deref().unwrap_or_default());
                for call in delta.tool_calls.iter().flatten() {
                    let args = call.function.as_ref().and_then(|f| f.arguments.as_deref());
                    text.push_str(args.unwrap_or_default());
                }
            }
        }
        Dialect::Anthropic => {
            let Ok(event) = serde_json::from_slice::<AnthropicEvent>(data) else {
                return;
            };
            if let Some(d) = event.delta {
                text.push_str(d.text.as_deref().unwrap_or_default());
                text.push_str(d.partial_json.as_deref().unwrap_or_default());
            }
        }
    }
}

/// The end of the SSE event starting at `start`: just past its blank line, or the end.
fn event_end(data: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < data.len() {
        if data[i] == b'\n' {
            let next = i + 1;
            if data.get(next) == Some(&b'\n') {
                return next + 1;
            }
            if data.get(next) == Some(&b'\r') && data.get(next + 1) == Some(&b'\n') {
                return next + 2;
            }
        }
        i += 1;
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

fn json_usage(dialect: Dialect, body: &[u8]) -> Option<Usage> {
    match dialect {
        Dialect::OpenAi => {
            if let Ok(b) = serde_json::from_slice::<OpenAiBody>(body) {
                return b.usage.map(Usage::from);
            }
            tail_object(body, b"\"usage\"")
                .and_then(|o| serde_json::from_slice::<OpenAiUsage>(o).ok())
                .map(Usage::from)
        }
        Dialect::Anthropic => {
            if let Ok(b) = serde_json::from_slice::<AnthropicMessage>(body) {
                return b.usage.map(|u| u.merge_into(None));
            }
            tail_object(body, b"\"usage\"")
                .and_then(|o| serde_json::from_slice::<AnthropicUsage>(o).ok())
                .map(|u| u.merge_into(None))
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

fn json_text(dialect: Dialect, body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    let mut text = String::new();
    match dialect {
        Dialect::OpenAi => {
            for choice in v["choices"].as_array().into_iter().flatten() {
                let m = &choice["message"];
                text.push_str(m["content"].as_str().unwrap_or_default());
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    text.push_str(call["function"]["arguments"].as_str().unwrap_or_default());
                }
            }
        }
        Dialect::Anthropic => {
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

#[derive(Deserialize)]
struct OpenAiBody {
    usage: Option<OpenAiUsage>,
}

/// What the hot path reads of an OpenAI chunk: its usage, and whether it has choices.
#[derive(Deserialize)]
struct OpenAiUsageChunk {
    choices: Option<Vec<serde::de::IgnoredAny>>,
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
struct OpenAiChunk {
    choices: Option<Vec<OpenAiChoice>>,
}

#[derive(Deserialize)]
struct OpenAiChoice {
    delta: Option<OpenAiDelta>,
}

#[derive(Deserialize)]
struct OpenAiDelta {
    content: Option<String>,
    tool_calls: Option<Vec<OpenAiToolCall>>,
}

#[derive(Deserialize)]
struct OpenAiToolCall {
    function: Option<OpenAiFunction>,
}

#[derive(Deserialize)]
struct OpenAiFunction {
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct OpenAiUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    prompt_tokens_details: Option<OpenAiPromptDetails>,
}

#[derive(Deserialize)]
struct OpenAiPromptDetails {
    cached_tokens: Option<u64>,
}

impl From<OpenAiUsage> for Usage {
    fn from(u: OpenAiUsage) -> Self {
        Usage {
            prompt: u.prompt_tokens,
            completion: u.completion_tokens,
            cached: u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
        }
    }
}

#[derive(Deserialize)]
struct AnthropicEvent {
    #[serde(rename = "type")]
    kind: String,
    message: Option<AnthropicMessage>,
    usage: Option<AnthropicUsage>,
    delta: Option<AnthropicDelta>,
}

#[derive(Deserialize)]
struct AnthropicMessage {
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct AnthropicDelta {
    text: Option<String>,
    partial_json: Option<String>,
}

#[derive(Deserialize)]
struct AnthropicUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Anthropic's `input_tokens` excludes cached tokens; the gateway's prompt count (like
    /// OpenAI's) includes them. `message_delta` carries the final, cumulative output count
    /// and may repeat the input counts.
    fn merge_into(self, previous: Option<Usage>) -> Usage {
        let prev = previous.unwrap_or_default();
        let input_given = self.input_tokens.is_some()
            || self.cache_creation_input_tokens.is_some()
            || self.cache_read_input_tokens.is_some();
        let (prompt, cached) = if input_given {
            let cached = self.cache_read_input_tokens.unwrap_or(0);
            (
                self.input_tokens.unwrap_or(0)
                    + self.cache_creation_input_tokens.unwrap_or(0)
                    + cached,
                cached,
            )
        } else {
            (prev.prompt, prev.cached)
        };
        Usage {
            prompt,
            completion: self.output_tokens.unwrap_or(prev.completion),
            cached,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENAI_STREAM: &str = concat!(
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":null}\n\n",
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}],\"usage\":null}\n\n",
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"}}],\"usage\":null}\n\n",
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n",
        "data: [DONE]\n\n",
    );

    const ANTHROPIC_STREAM: &str = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1,\"cache_creation_input_tokens\":3,\"cache_read_input_tokens\":10}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
        "event: ping\ndata: {\"type\":\"ping\"}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":42}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );

    /// Feeds `stream` as whole events split into two calls at every event border.
    fn run(dialect: Dialect, stream: &str, strip: bool) -> Vec<(Option<Usage>, String)> {
        let borders: Vec<usize> = std::iter::once(0)
            .chain(stream.match_indices("\n\n").map(|(i, _)| i + 2))
            .collect();
        borders
            .iter()
            .map(|&cut| {
                let mut m = Meter::new(dialect, true, strip);
                let mut out = Vec::new();
                for part in [&stream[..cut], &stream[cut..]] {
                    out.extend_from_slice(&m.process(Bytes::copy_from_slice(part.as_bytes())));
                }
                (m.reported(), String::from_utf8(out).unwrap())
            })
            .collect()
    }

    #[test]
    fn openai_usage_chunk_is_read_and_kept_for_clients_that_asked() {
        for (usage, out) in run(Dialect::OpenAi, OPENAI_STREAM, false) {
            assert_eq!(
                usage,
                Some(Usage {
                    prompt: 9,
                    completion: 2,
                    cached: 4
                })
            );
            assert_eq!(out, OPENAI_STREAM);
        }
    }

    #[test]
    fn openai_usage_chunk_is_removed_for_clients_that_did_not_ask() {
        let expected: String = OPENAI_STREAM
            .split_inclusive("\n\n")
            .filter(|e| !e.contains("\"choices\":[]"))
            .collect();
        for (usage, out) in run(Dialect::OpenAi, OPENAI_STREAM, true) {
            assert_eq!(usage.map(|u| u.completion), Some(2));
            assert_eq!(out, expected);
        }
    }

    #[test]
    fn anthropic_stream_usage_adds_cache_tokens_and_takes_final_output() {
        for (usage, out) in run(Dialect::Anthropic, ANTHROPIC_STREAM, true) {
            assert_eq!(
                usage,
                Some(Usage {
                    prompt: 38,
                    completion: 42,
                    cached: 10
                })
            );
            assert_eq!(out, ANTHROPIC_STREAM, "Anthropic streams are never edited");
        }
    }

    #[test]
    fn cut_stream_has_no_usage_but_keeps_the_delivered_text() {
        let cut: String = OPENAI_STREAM.split_inclusive("\n\n").take(3).collect();
        let mut m = Meter::new(Dialect::OpenAi, true, true);
        m.process(Bytes::from(cut));
        assert_eq!(m.reported(), None);
        assert_eq!(m.delivered_text(), "Hello world");
    }

    #[test]
    fn json_bodies_at_every_chunk_border() {
        let body = r#"{"id":"x","choices":[{"message":{"content":"Hi there"}}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
        for cut in 0..=body.len() {
            let mut m = Meter::new(Dialect::OpenAi, false, false);
            m.process(Bytes::copy_from_slice(&body.as_bytes()[..cut]));
            m.process(Bytes::copy_from_slice(&body.as_bytes()[cut..]));
            assert_eq!(
                m.reported(),
                Some(Usage {
                    prompt: 5,
                    completion: 2,
                    cached: 0
                })
            );
        }
        let anthropic = r#"{"id":"m","content":[{"type":"text","text":"Hi"}],"usage":{"input_tokens":3,"output_tokens":4,"cache_read_input_tokens":2}}"#;
        let mut m = Meter::new(Dialect::Anthropic, false, false);
        m.process(Bytes::from_static(anthropic.as_bytes()));
        assert_eq!(
            m.reported(),
            Some(Usage {
                prompt: 5,
                completion: 4,
                cached: 2
            })
        );
        assert_eq!(m.delivered_text(), "Hi");
    }

    #[test]
    fn only_events_with_a_usage_object_are_parsed() {
        assert!(carries_usage(
            br#"data: {"choices":[],"usage":{"prompt_tokens":1}}"#
        ));
        assert!(carries_usage(br#"data: {"usage" : {"x":1}}"#));
        assert!(!carries_usage(
            br#"data: {"choices":[{"delta":{"content":"usage"}}],"usage":null}"#
        ));
        assert!(!carries_usage(br#"data: {"choices":[]}"#));
    }

    #[test]
    fn usage_is_found_in_the_tail_of_a_huge_body() {
        let mut m = Meter::new(Dialect::OpenAi, false, false);
        m.process(Bytes::from(format!(
            r#"{{"data":["{}"#,
            "x".repeat(MAX_JSON_BUFFER)
        )));
        m.process(Bytes::from_static(
            br#""],"usage":{"prompt_tokens":8,"total_tokens":8}}"#,
        ));
        assert!(m.json.len() <= JSON_TAIL + 64);
        assert_eq!(m.reported().map(|u| u.prompt), Some(8));
    }
}
