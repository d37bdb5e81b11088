//! Fault injection requested through `x-emulator-*` request headers.
//!
//! The gateway forwards client headers upstream, so a test can steer the emulator
//! through the gateway without any side channel. Every header is optional; a value
//! that does not parse is ignored (the default applies), so a typo never turns into
//! a different fault than the one asked for.

use http::HeaderMap;

/// Upper bound for any injected delay, so a wrong header cannot park a task forever.
const MAX_DELAY_MS: u64 = 600_000;
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
        let fragment = text("x-emulator-fragment")
            .map(|v| matches!(v.trim(), "1" | "true" | "yes"))
            .unwrap_or(false);
        Faults {
            status,
            error_body: headers
                .get("x-emulator-error-body")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            delay_ms: delay("x-emulator-delay-ms"),
            chunks,
            chunk_delay_ms: delay("x-emulator-chunk-delay-ms"),
            drop_after: num("x-emulator-drop-after"),
            fragment,
            fragment_delay_ms: delay("x-emulator-fragment-delay-ms"),
            stream_error_after: num("x-emulator-stream-error-after"),
        }
    }

    /// True when the connection must be dropped before any response byte.
    pub fn drop_before_header(&self) -> bool {
        self.drop_after == Some(0)
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
        ]));
        assert_eq!(f.status, Some(429));
        assert_eq!(f.error_body.as_deref(), Some("upstream exploded"));
        assert_eq!(f.delay_ms, 25);
        assert_eq!(f.chunks, 3);
        assert_eq!(f.chunk_delay_ms, 7);
        assert!(f.drop_before_header());
        assert!(f.fragment);
        assert_eq!(f.fragment_delay_ms, 2);
        assert_eq!(f.stream_error_after, Some(4));
    }

    #[test]
    fn bad_values_are_ignored_and_clamped() {
        let f = Faults::from_headers(&headers(&[
            ("x-emulator-status", "200"),
            ("x-emulator-delay-ms", "soon"),
            ("x-emulator-chunks", "99999999"),
            ("x-emulator-chunk-delay-ms", "99999999999"),
            ("x-emulator-fragment", "0"),
        ]));
        assert_eq!(f.status, None);
        assert_eq!(f.delay_ms, 0);
        assert_eq!(f.chunks, MAX_CHUNKS);
        assert_eq!(f.chunk_delay_ms, MAX_DELAY_MS);
        assert!(!f.fragment);
        let f = Faults::from_headers(&headers(&[("x-emulator-chunks", "0")]));
        assert_eq!(f.chunks, 0);
    }
}
