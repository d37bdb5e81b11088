//! In-process provider emulator: an HTTP server that answers exactly like an
//! OpenAI-compatible provider, records every request it receives, and injects faults
//! on demand, so the gateway's tests (and the offline default config) need no network.
//!
//! # Routes
//! Routing matches the path *suffix*, so any base-URL prefix works
//! (`/v1/chat/completions`, `/api/v1/chat/completions`, `/chat/completions`):
//!
//! | method | path suffix | answer |
//! |---|---|---|
//! | POST | `/chat/completions` | chat JSON, or SSE with `"stream":true` |
//! | POST | `/embeddings` | deterministic vectors, float or base64 |
//! | GET | `/models`, `/models/{id}` | gpt-4o, gpt-4o-mini, o3-mini, text-embedding-3-small |
//! | GET | `/_emulator/requests/{seq}`, `/_emulator/requests/last` | a recorded request |
//!
//! Unknown path → 404, wrong method → 405, body not JSON → 400, all as OpenAI errors.
//!
//! # Deterministic answers (tests compute expected values from these)
//! * Content: chunk 0 is `"Hello"`, chunk i ≥ 1 is `" world{i}"`; N chunks (default 5)
//!   join to `"Hello world1 world2 world3 world4"`. `model` is echoed.
//! * prompt_tokens = Σ over `messages` of (3 + whitespace-separated words of `content`,
//!   or of the `text` of every content part). completion_tokens = N × n (text) or K × n
//!   (tool call, K = clamp(N, 1, chars(arguments)) argument fragments).
//! * With `tools` (and `tool_choice` not `"none"`): a call to the named or first tool,
//!   arguments `{"<first required, else first property>":<example>}` (`"Paris"` for
//!   strings, `enum[0]` if any), `finish_reason:"tool_calls"`, `content:null`.
//! * Stream: role chunk, N content chunks (or K argument fragments), finish chunk, the
//!   `choices:[]` usage chunk only with `stream_options.include_usage` (then every chunk
//!   has `"usage":null`), `data: [DONE]`. With n > 1 each step has one event per choice.
//! * Embeddings: vector length `dimensions` or 8 from sha256 of each input, values in
//!   [-1, 1); base64 = little-endian f32; usage = words per text + ints per token array.
//!
//! # Recorder
//! Every request gets a sequence number (from 1). Every response carries
//! `x-emulator-seq`, `x-emulator-body-bytes` and `x-emulator-body-sha256` describing the
//! request it answers, so a test can check that the gateway forwarded a body byte for
//! byte; the last 256 requests are kept for `GET /_emulator/requests/{seq}`.
//!
//! # Fault headers (ignored on `/_emulator/` paths)
//! | header | effect |
//! |---|---|
//! | `x-emulator-status: 400..=599` | that status with the real API's error body for it |
//! | `x-emulator-error-body: TEXT` | with a status: the body, verbatim |
//! | `x-emulator-delay-ms: N` | sleep before the response header |
//! | `x-emulator-chunks: N` | content chunks / argument fragments (default 5) |
//! | `x-emulator-chunk-delay-ms: N` | sleep between stream events; one write per event |
//! | `x-emulator-drop-after: N` | drop after N stream events; 0: before the header (any answer) |
//! | `x-emulator-fragment: 1` | write each SSE event in two pieces, split mid-line |
//! | `x-emulator-fragment-delay-ms: N` | sleep between the two pieces |
//! | `x-emulator-stream-error-after: N` | after N events, `data: {"error":…}` and end |
//!
//! Without chunk-delay, fragment, drop-after and stream-error-after, a stream's events go
//! out in one write (one HTTP chunk), as a fast provider's burst does; with any of them,
//! each event is its own write. Errors are JSON even for `"stream":true` requests.

mod faults;
mod openai;
mod recorder;
mod server;

use bytes::Bytes;
use pingora::services::listening::Service;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

use faults::Faults;
use recorder::Recorder;

/// Path prefix of the emulator's own control endpoints (never fault-injected).
const CONTROL_PREFIX: &str = "/_emulator/";

/// The emulator app. A cheap, cloneable handle to shared state (the request log):
/// keep a clone to inspect recorded requests in-process after moving one into
/// [`Emulator::service`].
#[derive(Clone, Default)]
pub struct Emulator {
    recorder: Arc<Recorder>,
}

impl Emulator {
    /// A fresh emulator with an empty request log (sequence numbers start at 1).
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a Pingora listening service on `listen` (e.g. "127.0.0.1:8089").
    pub fn service(self, listen: &str) -> Service<Emulator> {
        let mut service = Service::new("provider emulator".to_string(), self);
        service.add_tcp(listen);
        service
    }

    /// The recorded request `seq` as the same JSON `GET /_emulator/requests/{seq}` returns,
    /// or None once it left the log (only the last 256 are kept).
    pub fn record(&self, seq: u64) -> Option<Value> {
        let record = self.recorder.get(seq)?;
        serde_json::to_value(&*record).ok()
    }

    /// The most recent recorded request that was not a `/_emulator/` control request.
    pub fn last_record(&self) -> Option<Value> {
        let record = self.recorder.last()?;
        serde_json::to_value(&*record).ok()
    }
}

// ---------------------------------------------------------------- replies

/// What a request is answered with: built by the pure functions in `openai`, written
/// to the socket by `server` (which adds framing and the `x-emulator-*` headers).
pub(crate) struct Reply {
    pub status: u16,
    /// Extra response headers (framing and `x-emulator-*` headers are added when written).
    pub headers: Vec<(&'static str, String)>,
    pub body: ReplyBody,
}

/// A whole body sent with Content-Length, or SSE events sent chunked one by one.
pub(crate) enum ReplyBody {
    Full {
        content_type: &'static str,
        bytes: Bytes,
    },
    Stream(Vec<Bytes>),
}

impl Reply {
    /// A JSON answer with this status. (Serializing the emulator's own wire structs
    /// cannot fail; if it ever did, the answer is a plain-text 500 saying so.)
    pub fn json<T: Serialize + ?Sized>(status: u16, body: &T) -> Self {
        let (status, content_type, bytes) = match serde_json::to_vec(body) {
            Ok(b) => (status, "application/json", Bytes::from(b)),
            Err(e) => (500, "text/plain", Bytes::from(format!("emulator: {e}"))),
        };
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Full {
                content_type,
                bytes,
            },
        }
    }

    /// A 200 `text/event-stream` answer made of these complete events.
    pub fn stream(events: Vec<Bytes>) -> Self {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: ReplyBody::Stream(events),
        }
    }

    /// Replaces the body (keeps status and headers).
    pub fn set_full(&mut self, content_type: &'static str, bytes: Bytes) {
        self.body = ReplyBody::Full {
            content_type,
            bytes,
        };
    }
}

// ---------------------------------------------------------------- routing

/// Chooses the answer for one request (pure apart from reading the recorder).
fn route(method: &str, path: &str, body: &[u8], faults: &Faults, recorder: &Recorder) -> Reply {
    if let Some(which) = path.strip_prefix("/_emulator/requests/") {
        if method != "GET" {
            return openai::invalid_method_reply(method, path);
        }
        let found = match which {
            "last" => recorder.last(),
            n => n.parse().ok().and_then(|seq| recorder.get(seq)),
        };
        return match found {
            Some(record) => Reply::json(200, &*record),
            None => openai::error_reply(
                404,
                "No such recorded request (the log keeps the last 256).",
                "invalid_request_error",
                None,
                None,
            ),
        };
    }
    let json = || serde_json::from_slice::<Value>(body);
    if let Some(status) = faults.status {
        let model = json()
            .ok()
            .and_then(|v| v.get("model")?.as_str().map(str::to_string));
        return openai::fault_reply(status, model.as_deref(), faults.error_body.as_deref());
    }
    let post = |answer: fn(&Value, &Faults) -> Reply| match method {
        "POST" => match json() {
            Ok(v) => answer(&v, faults),
            Err(_) => openai::invalid_json_reply(),
        },
        _ => openai::invalid_method_reply(method, path),
    };
    let get = |answer: &dyn Fn() -> Reply| match method {
        "GET" => answer(),
        _ => openai::invalid_method_reply(method, path),
    };
    if path.ends_with("/chat/completions") {
        post(|v, f| openai::chat_reply(v, f.chunks))
    } else if path.ends_with("/embeddings") {
        post(|v, _| openai::embeddings_reply(v))
    } else if path.ends_with("/models") {
        get(&openai::models_reply)
    } else if let Some((_, id)) = path.split_once("/models/").filter(|(_, id)| !id.is_empty()) {
        get(&|| openai::model_reply(id))
    } else {
        openai::invalid_url_reply(method, path)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn status_of(method: &str, path: &str, body: &str, faults: &Faults) -> (u16, Value) {
        let reply = route(method, path, body.as_bytes(), faults, &Recorder::default());
        let v = match &reply.body {
            ReplyBody::Full { bytes, .. } => serde_json::from_slice(bytes).unwrap_or(Value::Null),
            ReplyBody::Stream(_) => Value::String("stream".into()),
        };
        (reply.status, v)
    }

    const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;

    #[test]
    fn routes_by_suffix_and_method() {
        let f = Faults::default();
        for prefix in ["/v1", "/api/v1", ""] {
            assert_eq!(
                status_of("POST", &format!("{prefix}/chat/completions"), CHAT, &f).0,
                200
            );
            assert_eq!(status_of("GET", &format!("{prefix}/models"), "", &f).0, 200);
        }
        let emb = r#"{"model":"e","input":"x"}"#;
        assert_eq!(status_of("POST", "/v1/embeddings", emb, &f).0, 200);
        assert_eq!(status_of("GET", "/v1/models/gpt-4o", "", &f).0, 200);
        assert_eq!(status_of("GET", "/v1/models/nope", "", &f).0, 404);
        assert_eq!(status_of("GET", "/v1/chat/completions", "", &f).0, 405);
        assert_eq!(status_of("POST", "/v1/models", "", &f).0, 405);
        let (status, v) = status_of("POST", "/v1/nothing", CHAT, &f);
        assert_eq!(
            (status, v["error"]["type"].as_str()),
            (404, Some("invalid_request_error"))
        );
        assert_eq!(
            status_of("POST", "/v1/chat/completions", "{oops", &f).0,
            400
        );
        assert_eq!(status_of("POST", "/v1/chat/completions", "", &f).0, 400);
    }

    #[test]
    fn fault_status_wins_over_routing() {
        let f = Faults {
            status: Some(429),
            ..Faults::default()
        };
        let (status, v) = status_of("POST", "/v1/chat/completions", "{bad json", &f);
        assert_eq!(status, 429);
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        let (status, v) = status_of("POST", "/v1/chat/completions", CHAT, &f);
        assert_eq!(status, 429);
        assert!(v["error"]["message"].as_str().unwrap().contains(" m "));
    }
}
