//! The text a stream delivered, kept for a token estimate in case no usage arrives (a cut
//! stream, a provider that reports none).
//!
//! Only the values of the answer's text fields are kept, still JSON-escaped, not the events:
//! a stream's events are mostly envelope (ids, model, indexes), so keeping them all cost
//! about as much memory per open stream as the rest of the request together. The fields are
//! found by a byte search for their key; a key inside a JSON string cannot match, since its
//! quotes would be escaped there.

use std::sync::LazyLock;

use memchr::memmem::Finder;

use super::AnswerFormat;

/// Raw text bytes kept at most (beyond it the estimate scales by the bytes seen).
const MAX_KEPT: usize = 4 * 1024 * 1024;

/// Keys whose string values are delivered text, per format: chat content and tool-call
/// arguments; Anthropic text and tool-input deltas; the Responses API's `.delta` events
/// (output text, function-call arguments, reasoning).
fn text_keys(format: AnswerFormat) -> &'static [Finder<'static>] {
    static CHAT: LazyLock<[Finder<'static>; 2]> =
        LazyLock::new(|| [Finder::new(b"\"content\""), Finder::new(b"\"arguments\"")]);
    static ANTHROPIC: LazyLock<[Finder<'static>; 2]> =
        LazyLock::new(|| [Finder::new(b"\"text\""), Finder::new(b"\"partial_json\"")]);
    static RESPONSES: LazyLock<[Finder<'static>; 1]> =
        LazyLock::new(|| [Finder::new(b"\"delta\"")]);
    match format {
        AnswerFormat::Chat => &*CHAT,
        AnswerFormat::Anthropic => &*ANTHROPIC,
        AnswerFormat::Responses => &*RESPONSES,
    }
}

/// The delivered text of a stream, as the escaped bodies of JSON strings.
#[derive(Debug, Default)]
pub(super) struct StreamText {
    /// `"…","…"`: the inside of a JSON array of the kept strings.
    raw: Vec<u8>,
    /// Stream bytes whose text is in `raw`, and all stream bytes seen.
    scanned: usize,
    seen: usize,
}

impl StreamText {
    /// Keeps the text values of these whole events.
    pub(super) fn keep(&mut self, format: AnswerFormat, events: &[u8]) {
        self.seen += events.len();
        if self.raw.len() >= MAX_KEPT {
            return;
        }
        self.scanned += events.len();
        for key in text_keys(format) {
            let mut rest = events;
            while let Some(at) = key.find(rest) {
                rest = &rest[at + key.needle().len()..];
                let value = rest.trim_ascii_start();
                let Some(value) = value.strip_prefix(b":").map(<[u8]>::trim_ascii_start) else {
                    continue;
                };
                let Some(body) = value.strip_prefix(b"\"") else {
                    continue; // null, an array (logprobs' `content`), an object
                };
                let Some(len) = string_len(body) else {
                    break;
                };
                if len > 0 {
                    if !self.raw.is_empty() {
                        self.raw.push(b',');
                    }
                    self.raw.push(b'"');
                    self.raw.extend_from_slice(&body[..len]);
                    self.raw.push(b'"');
                }
                rest = &body[len..];
            }
        }
    }

    /// The kept text, unescaped.
    pub(super) fn text(&self) -> String {
        let mut array = Vec::with_capacity(self.raw.len() + 2);
        array.push(b'[');
        array.extend_from_slice(&self.raw);
        array.push(b']');
        serde_json::from_slice::<Vec<String>>(&array)
            .map(|parts| parts.concat())
            .unwrap_or_default()
    }

    /// How many stream bytes there were per byte whose text was kept.
    pub(super) fn overflow_ratio(&self) -> f64 {
        if self.scanned == 0 {
            1.0
        } else {
            self.seen as f64 / self.scanned as f64
        }
    }
}

/// The length of a JSON string's body (the bytes before its closing quote), or `None` when
/// it does not close here.
fn string_len(body: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(at) = memchr::memchr2(b'"', b'\\', &body[i..]) {
        let at = i + at;
        if body[at] == b'"' {
            return Some(at);
        }
        i = at + 2; // an escape: skip the escaped byte
        if i > body.len() {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(format: AnswerFormat, events: &str) -> String {
        let mut t = StreamText::default();
        t.keep(format, events.as_bytes());
        t.text()
    }

    #[test]
    fn escaped_text_and_keys_inside_strings() {
        let events = concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"say \\\"content\\\":\\\"x\\\" \\u00e9\\n\"},",
            "\"logprobs\":{\"content\":[{\"token\":\"a\"}]}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\": null, \"tool_calls\":[{\"function\":",
            "{\"arguments\" : \"{\\\"a\\\":1}\"}}]}}]}\n\n",
        );
        assert_eq!(
            kept(AnswerFormat::Chat, events),
            "say \"content\":\"x\" é\n{\"a\":1}"
        );
    }

    #[test]
    fn anthropic_and_responses_keys() {
        let anthropic = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n";
        assert_eq!(kept(AnswerFormat::Anthropic, anthropic), "Hi");
        let responses = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Yo\"}\n\n";
        assert_eq!(kept(AnswerFormat::Responses, responses), "Yo");
    }

    #[test]
    fn an_unterminated_string_is_left_out() {
        assert_eq!(string_len(b"ab\\\"c\"rest"), Some(5));
        assert_eq!(string_len(b"abc\\"), None);
        assert_eq!(string_len(b"abc"), None);
        assert_eq!(kept(AnswerFormat::Chat, "data: {\"content\":\"ab"), "");
    }
}
