//! Fault injection requested through `x-emulator-*` request headers.
//!
//! The gateway forwards client headers upstream, so a test can steer the emulator
//! through the gateway without any side channel. Every header is optional; a value
//! that does not parse is ignored (the default applies), so a typo never turns into
//! a different fault than the one asked for.
//!
//! [`InstanceFaults`] holds headers an emulator applies to every request it receives
//! (`Emulator::set_faults`), so a test can make one emulator instance — one "deployment" of
//! a provider — fail while another instance stays healthy, without the gateway's help.

use http::{HeaderMap, HeaderName, HeaderValue};
use log::warn;
use std::sync::{PoisonError, RwLock};

/// Upper bound for any injected delay or stall, so a wrong header cannot park a task forever.
pub const MAX_DELAY_MS: u64 = 600_000;
/// Upper bound for `x-emulator-chunks`, so a wrong header cannot build a huge answer.
const MAX_CHUNKS: usize = 10_000;
/// Content chunks per answer when `x-emulator-chunks` is absent.
pub const DEFAULT_CHUNKS: usize = 5;

/// The faults one request asked for (parsed once, then read by the router and writer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Faults {
    /// `x-emulator-status`: answer with this error status (400..=599) and the real API's
    /// error body for it, in the format of the route hit (OpenAI, Anthropic or Gemini).
    pub status: Option<u16>,
    /// `x-emulator-error-body`: raw text that replaces the error body verbatim.
    pub error_body: Option<String>,
    /// `x-emulator-delay-ms`: sleep before the response header is written.
    pub delay_ms: u64,
    /// `x-emulator-chunks`: content chunks (text) or argument fragments (tool calls).
    pub chunks: usize,
    /// `x-emulator-chunk-delay-ms`: sleep between two stream events.
    pub chunk_delay_ms: u64,
    /// `x-emulator-drop-after`: drop the connection after this many stream events
    /// (0: before any response header, after the delay, for every kind of answer).
    pub drop_after: Option<u64>,
    /// `x-emulator-fragment: 1`: write each stream event in two pieces.
    pub fragment: bool,
    /// `x-emulator-fragment-delay-ms`: sleep between the two pieces of one event.
    pub fragment_delay_ms: u64,
    /// `x-emulator-stream-error-after`: after this many events, send the format's
    /// mid-stream error event (OpenAI `data: {"error":...}`, Anthropic `event: error`,
    /// Gemini `{"error":...}` as SSE data or closing array element) and end the stream
    /// cleanly (no `[DONE]` / `message_stop`).
    pub stream_error_after: Option<u64>,
    /// `x-emulator-retry-after: SECONDS`: with a status, the error answer carries
    /// `retry-after: SECONDS` instead of the format's default (OpenAI's `retry-after-ms`,
    /// when the answer has one, becomes SECONDS × 1000).
    pub retry_after: Option<u64>,
    /// `x-emulator-malformed: json | sse`: a 200 answer that does not parse (see
    /// [`Malformed`]); a status fault wins over it.
    pub malformed: Option<Malformed>,
    /// `x-emulator-cut-mid-event: N`: send N whole stream events, then the first half of the
    /// next one, then drop the connection (no terminating chunk). With N ≥ the number of
    /// events: every event, then the drop. Streams only; a whole answer ignores it.
    pub cut_mid_event: Option<u64>,
    /// `x-emulator-stall-after: N`: send N stream events, then write nothing more and hold
    /// the connection open until the client leaves or [`MAX_DELAY_MS`] pass, then drop it.
    /// 0: right after the header; N ≥ the number of events: before the terminating chunk.
    /// Streams only (a stall before the header is `x-emulator-delay-ms`).
    pub stall_after: Option<u64>,
    /// `x-emulator-redacted-thinking: 1`: an Anthropic answer to a request with thinking
    /// enabled opens with a `redacted_thinking` block (before its `thinking` block), as the
    /// API's answer does when its safety systems flag the reasoning.
    pub redacted_thinking: bool,
    /// `x-emulator-content-filter: prompt | completion` (Azure OpenAI routes): Azure's
    /// content filter refuses the prompt (its 400 `content_filter` error) or cuts the answer
    /// (a 200 whose `finish_reason` is `content_filter`).
    pub content_filter: Option<ContentFilter>,
}

/// What Azure's content filter catches (`x-emulator-content-filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentFilter {
    /// The prompt: the request is refused with 400 `content_filter`.
    Prompt,
    /// The completion: the answer ends early with `finish_reason: "content_filter"`.
    Completion,
}

/// A 200 answer that a client cannot parse (`x-emulator-malformed`). The value picks the
/// answer's shape whatever the request asked for, so a test gets exactly what it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// `json`: `application/json` with a correct Content-Length and a body cut off
    /// mid-object (the start of the route format's answer object).
    Json,
    /// `sse`: `text/event-stream` whose events carry `data: {not json}` (Anthropic's with an
    /// `event:` line), then a clean end (terminating chunk, no `[DONE]`).
    Sse,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            status: None,
            error_body: None,
            delay_ms: 0,
            chunks: DEFAULT_CHUNKS,
            chunk_delay_ms: 0,
            drop_after: None,
            fragment: false,
            fragment_delay_ms: 0,
            stream_error_after: None,
            retry_after: None,
            malformed: None,
            cut_mid_event: None,
            stall_after: None,
            redacted_thinking: false,
            content_filter: None,
        }
    }
}

impl Faults {
    /// Reads every `x-emulator-*` header; absent or unparsable values keep the default.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let num = |name: &str| text(name).and_then(|v| v.trim().parse::<u64>().ok());
        let delay = |name: &str| num(name).map_or(0, |v| v.min(MAX_DELAY_MS));
        let status = num("x-emulator-status")
            .filter(|s| (400..=599).contains(s))
            .and_then(|s| u16::try_from(s).ok());
        let chunks = num("x-emulator-chunks")
            .and_then(|v| usize::try_from(v).ok())
            .map_or(DEFAULT_CHUNKS, |v| v.min(MAX_CHUNKS));
        let flag =
            |name: &str| text(name).is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes"));
        Faults {
            status,
            error_body: headers
                .get("x-emulator-error-body")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            delay_ms: delay("x-emulator-delay-ms"),
            chunks,
            chunk_delay_ms: delay("x-emulator-chunk-delay-ms"),
            drop_after: num("x-emulator-drop-after"),
            fragment: flag("x-emulator-fragment"),
            fragment_delay_ms: delay("x-emulator-fragment-delay-ms"),
            stream_error_after: num("x-emulator-stream-error-after"),
            retry_after: num("x-emulator-retry-after"),
            malformed: text("x-emulator-malformed").and_then(|v| {
                match v.trim().to_ascii_lowercase().as_str() {
                    "json" => Some(Malformed::Json),
                    "sse" => Some(Malformed::Sse),
                    _ => None,
                }
            }),
            cut_mid_event: num("x-emulator-cut-mid-event"),
            stall_after: num("x-emulator-stall-after"),
            redacted_thinking: flag("x-emulator-redacted-thinking"),
            content_filter: text("x-emulator-content-filter").and_then(|v| {
                match v.trim().to_ascii_lowercase().as_str() {
                    "prompt" => Some(ContentFilter::Prompt),
                    "completion" => Some(ContentFilter::Completion),
                    _ => None,
                }
            }),
        }
    }

    /// True when the connection must be dropped before any response byte.
    pub fn drop_before_header(&self) -> bool {
        self.drop_after == Some(0)
    }

    /// True when some fault acts between stream events, so each event needs its own write
    /// (otherwise a stream goes out in one burst).
    pub fn paces_events(&self) -> bool {
        self.chunk_delay_ms > 0
            || self.fragment
            || self.drop_after.is_some()
            || self.stream_error_after.is_some()
            || self.cut_mid_event.is_some()
            || self.stall_after.is_some()
    }
}

/// `x-emulator-*` headers one emulator instance applies to every request it receives
/// (`Emulator::set_faults`); a request's own header of the same name overrides one of these.
#[derive(Default)]
pub struct InstanceFaults {
    headers: RwLock<HeaderMap>,
}

impl InstanceFaults {
    /// Replaces the instance-wide headers (an empty list clears them). A pair whose name or
    /// value is not a valid HTTP header is skipped with a warning: the caller is a test, and
    /// the warning names the typo.
    pub fn set(&self, pairs: &[(&str, &str)]) {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                (Ok(name), Ok(value)) => {
                    map.insert(name, value);
                }
                _ => warn!("emulator: ignoring instance fault header {name:?}: {value:?}"),
            }
        }
        *self.headers.write().unwrap_or_else(PoisonError::into_inner) = map;
    }

    /// The faults for one request: the instance-wide headers, overridden by the request's
    /// own `x-emulator-*` headers.
    pub fn for_request(&self, request: &HeaderMap) -> Faults {
        let defaults = self.headers.read().unwrap_or_else(PoisonError::into_inner);
        if defaults.is_empty() {
            return Faults::from_headers(request);
        }
        let mut merged = defaults.clone();
        drop(defaults);
        for name in request.keys() {
            if name.as_str().starts_with("x-emulator-") {
                if let Some(value) = request.get(name) {
                    merged.insert(name.clone(), value.clone());
                }
            }
        }
        Faults::from_headers(&merged)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn defaults_without_headers() {
        let f = Faults::from_headers(&HeaderMap::new());
        assert_eq!(f, Faults::default());
        assert_eq!(f.chunks, 5);
        assert!(!f.drop_before_header());
    }

    #[test]
    fn parses_every_header() {
        let f = Faults::from_headers(&headers(&[
            ("x-emulator-status", "429"),
            ("x-emulator-error-body", "upstream exploded"),
            ("x-emulator-delay-ms", "25"),
            ("x-emulator-chunks", "3"),
            ("x-emulator-chunk-delay-ms", "7"),
            ("x-emulator-drop-after", "0"),
            ("x-emulator-fragment", "1"),
            ("x-emulator-fragment-delay-ms", "2"),
            ("x-emulator-stream-error-after", "4"),
            ("x-emulator-retry-after", "7"),
            ("x-emulator-malformed", "JSON"),
            ("x-emulator-cut-mid-event", "3"),
            ("x-emulator-stall-after", "0"),
            ("x-emulator-redacted-thinking", "1"),
            ("x-emulator-content-filter", "Prompt"),
        ]));
        assert_eq!(f.status, Some(429));
        assert_eq!(f.error_body.as_deref(), Some("upstream exploded"));
        assert_eq!(f.delay_ms, 25);
        assert_eq!(f.chunks, 3);
        assert_eq!(f.chunk_delay_ms, 7);
        assert!(f.drop_before_header());
        assert!(f.fragment);
        assert!(f.redacted_thinking);
        assert_eq!(f.fragment_delay_ms, 2);
        assert_eq!(f.stream_error_after, Some(4));
        assert_eq!(f.retry_after, Some(7));
        assert_eq!(f.malformed, Some(Malformed::Json));
        assert_eq!(f.cut_mid_event, Some(3));
        assert_eq!(f.stall_after, Some(0));
        assert_eq!(f.content_filter, Some(ContentFilter::Prompt));
        assert!(f.paces_events());
        let f = Faults::from_headers(&headers(&[("x-emulator-malformed", " sse ")]));
        assert_eq!(f.malformed, Some(Malformed::Sse));
        assert!(!f.paces_events(), "a malformed stream alone is one burst");
    }

    #[test]
    fn bad_values_are_ignored_and_clamped() {
        let f = Faults::from_headers(&headers(&[
            ("x-emulator-status", "200"),
            ("x-emulator-delay-ms", "soon"),
            ("x-emulator-chunks", "99999999"),
            ("x-emulator-chunk-delay-ms", "99999999999"),
            ("x-emulator-fragment", "0"),
            ("x-emulator-retry-after", "-1"),
            ("x-emulator-malformed", "xml"),
            ("x-emulator-cut-mid-event", "half"),
            ("x-emulator-stall-after", "1.5"),
        ]));
        assert_eq!(f.status, None);
        assert_eq!(f.delay_ms, 0);
        assert_eq!(f.chunks, MAX_CHUNKS);
        assert_eq!(f.chunk_delay_ms, MAX_DELAY_MS);
        assert!(!f.fragment);
        assert_eq!(
            (f.retry_after, f.malformed, f.cut_mid_event, f.stall_after),
            (None, None, None, None)
        );
        let f = Faults::from_headers(&headers(&[("x-emulator-chunks", "0")]));
        assert_eq!(f.chunks, 0);
    }

    #[test]
    fn instance_faults_apply_until_cleared_and_requests_override_them() {
        let instance = InstanceFaults::default();
        let none = HeaderMap::new();
        assert_eq!(instance.for_request(&none), Faults::default());
        instance.set(&[
            ("x-emulator-status", "529"),
            ("x-emulator-chunks", "2"),
            ("bad name", "1"),
            ("x-emulator-delay-ms", "bad\nvalue"),
        ]);
        let f = instance.for_request(&none);
        assert_eq!((f.status, f.chunks, f.delay_ms), (Some(529), 2, 0));
        let request = headers(&[
            ("x-emulator-status", "503"),
            ("x-emulator-stall-after", "1"),
            ("authorization", "Bearer x"),
        ]);
        let f = instance.for_request(&request);
        assert_eq!((f.status, f.chunks, f.stall_after), (Some(503), 2, Some(1)));
        instance.set(&[]);
        assert_eq!(instance.for_request(&none), Faults::default());
    }
}
