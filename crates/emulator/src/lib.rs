//! In-process provider emulator: an HTTP server that answers exactly like an
//! OpenAI-compatible provider, Azure OpenAI, Anthropic's Messages API, Google's Gemini API or Vertex AI, records
//! every request it receives, and injects faults on demand, so the gateway's tests (and the
//! offline default config) need no network.
//!
//! # Routes
//! Routing matches the path *suffix*, so any base-URL prefix works
//! (`/v1/chat/completions`, `/api/v1/chat/completions`, `/chat/completions`). The query
//! string is ignored except where Gemini reads it (`alt=sse`).
//!
//! | method | path suffix | format | answer |
//! |---|---|---|---|
//! | POST | `/chat/completions` | OpenAI | chat JSON, or SSE with `"stream":true` |
//! | POST | `/responses` | OpenAI | Responses object, or typed-event SSE with `"stream":true` |
//! | POST | `/embeddings` | OpenAI | deterministic vectors, float or base64 |
//! | GET | `/models`, `/models/{id}` | OpenAI | gpt-4o, gpt-4o-mini, o3-mini, text-embedding-3-small |
//! | POST | `/v1/messages` | Anthropic | message JSON, or named-event SSE with `"stream":true` |
//! | POST | `/v1/messages/count_tokens` | Anthropic | `{"input_tokens":N}` |
//! | POST | `/models/{model}:generateContent` | Gemini | response JSON |
//! | POST | `/models/{model}:streamGenerateContent` | Gemini | SSE with `?alt=sse`, else a JSON array |
//! | POST | `/models/{model}:countTokens` | Gemini | `{"totalTokens":N,…}` |
//! | POST | `/models/{model}:embedContent`, `:batchEmbedContents` | Gemini | deterministic vectors |
//! | GET | `/v1beta/models`, `/v1beta/models/{id}` | Gemini | gemini-2.5-flash, -2.5-pro, -2.0-flash, gemini-3-pro-preview, gemini-embedding-001 |
//! | GET | `/_emulator/requests/{seq}`, `/_emulator/requests/last` | — | a recorded request |
//!
//! Azure OpenAI's paths (`…/openai/deployments/{deployment}/…`, `…/openai/responses…`) are
//! the OpenAI operations behind Azure's `api-key` and `api-version` checks ([`azure`]).
//! AWS Bedrock's InvokeModel paths (`…/model/{modelId}/invoke`,
//! `…/invoke-with-response-stream`) are Anthropic's Messages behind a verified SigV4
//! signature, streams in AWS's event-stream framing ([`bedrock`]); its Converse paths
//! (`…/model/{modelId}/converse`, `…/converse-stream`) answer any model in Converse's shape,
//! behind the same signature check. AWS STS's query API (`POST /` with a form body) hands
//! out temporary keys for a web identity token ([`sts`]).
//!
//! Bedrock's embedding model ids on the same paths (Titan Text Embeddings V2, Cohere Embed
//! v3) answer as those models do ([`bedrock_embeddings`]).
//!
//! Vertex AI's paths (`…/projects/{p}/locations/{r}/publishers/{google|anthropic}/models/{m}:{method}`)
//! are the Gemini and Anthropic operations behind a bearer token from the emulator's OAuth2
//! token endpoint (`POST …/token`), which verifies the service account's RS256 assertion
//! ([`vertex`]); Google's text embedding models answer `:predict` ([`vertex_embeddings`]).
//!
//! **Format rule** ([`Wire::of`]): a path with Azure's shape is Azure; one with Bedrock's
//! is Bedrock; a path ending in `/v1/messages` or
//! `/v1/messages/count_tokens` is Anthropic; a path whose last segment is `{model}:{action}`
//! right after `/models/` (any prefix: `/v1beta/…`, `/v1/…`, Vertex's `…/publishers/google/…`),
//! or that ends in `/v1beta/models` or is `…/v1beta/models/{id}`, is Gemini; everything else
//! is OpenAI. So `GET /v1/models` and Google's OpenAI-compatible `GET /v1beta/openai/models`
//! stay OpenAI's. The format picks the answer, every error body on that path (unknown
//! action, wrong method, bad JSON, faults, 413), the provider's response headers and the
//! mid-stream error event. Unknown paths get OpenAI's 404. Per-format rules are in
//! [`openai`], [`anthropic`] and [`gemini`].
//!
//! # Deterministic answers (tests compute expected values from these)
//! The same rules in every format, so a translated request gets the same numbers:
//! * Content: chunk 0 is `"Hello"`, chunk i ≥ 1 is `" world{i}"`; N chunks (default 5)
//!   join to `"Hello world1 world2 world3 world4"`. `model` is echoed.
//! * Prompt tokens: Σ over messages (Anthropic: plus `system`; Gemini: plus
//!   `systemInstruction`) of (3 + whitespace-separated words of their text).
//!   Output tokens: N (text), or K = clamp(N, 1, chars(arguments)) for a tool call
//!   (Anthropic with thinking enabled adds the thinking words: see below).
//! * With tools (and the tool choice not "none"): a call to the named or first tool,
//!   arguments `{"<first required, else first property>":<example>}` (`"Paris"` for
//!   strings, `enum[0]` if any).
//! * OpenAI stream: role chunk, N content chunks (or K argument fragments), finish chunk, the
//!   `choices:[]` usage chunk only with `stream_options.include_usage` (then every chunk
//!   has `"usage":null`), `data: [DONE]`. With n > 1 each step has one event per choice.
//! * Embeddings: vector length `dimensions` / `outputDimensionality` or 8 from sha256 of
//!   each input, values in [-1, 1); base64 = little-endian f32; usage = words per text +
//!   ints per token array (OpenAI only; Gemini reports none).
//!
//! # Reasoning state (enforced, so a gateway must round-trip it byte for byte)
//! Signatures are base64(HMAC-SHA256) with one constant key (`signing`), so every emulator
//! instance verifies every other's; no API builds one: a test takes them from answers.
//! * Anthropic, `thinking: {"type":"enabled",…}`: the answer opens with a signed `thinking`
//!   block (and a `redacted_thinking` block before it with
//!   `x-emulator-redacted-thinking: 1`), in JSON and stream; thinking blocks sent back must
//!   verify, and a tool-result turn needs the previous assistant message to start with one
//!   (rules, wording and token effect in [`anthropic`]'s `thinking` module).
//! * Gemini: `includeThoughts: true` puts a `{"text",…,"thought":true}` part first; with a
//!   thinking config or a `gemini-3` model the first `functionCall` part carries a
//!   `thoughtSignature`; gemini-3 requires it back on the current turn's calls, and any
//!   signature that does not verify is `Corrupted thought signature.` (see [`gemini`]'s
//!   `thought` module). Token counts are unchanged.
//!
//! # Recorder
//! Every request gets a sequence number (from 1). Every response carries
//! `x-emulator-seq`, `x-emulator-body-bytes` and `x-emulator-body-sha256` describing the
//! request it answers, so a test can check that the gateway forwarded a body byte for
//! byte; the last 256 requests are kept for `GET /_emulator/requests/{seq}`.
//!
//! # Fault headers (ignored on `/_emulator/` paths; the same for every format)
//! | header | effect |
//! |---|---|
//! | `x-emulator-status: 400..=599` | that status with the real API's error body for it, in the route's format |
//! | `x-emulator-error-body: TEXT` | with a status: the body, verbatim |
//! | `x-emulator-delay-ms: N` | sleep before the response header |
//! | `x-emulator-chunks: N` | content chunks / argument fragments (default 5) |
//! | `x-emulator-chunk-delay-ms: N` | sleep between stream events; one write per event |
//! | `x-emulator-drop-after: N` | drop after N stream events; 0: before the header (any answer) |
//! | `x-emulator-fragment: 1` | write each stream event in two pieces, split mid-line |
//! | `x-emulator-fragment-delay-ms: N` | sleep between the two pieces |
//! | `x-emulator-stream-error-after: N` | after N events, the format's error event, then end |
//! | `x-emulator-retry-after: S` | with a status: `retry-after: S` replaces the default |
//! | `x-emulator-malformed: json` | 200 `application/json`, body cut off mid-object |
//! | `x-emulator-malformed: sse` | 200 `text/event-stream`: 3 `data: {not json}` events, end |
//! | `x-emulator-cut-mid-event: N` | stream: N events, half of the next, then drop |
//! | `x-emulator-stall-after: N` | stream: N events, then silence until the client leaves |
//! | `x-emulator-redacted-thinking: 1` | Anthropic, thinking enabled: the answer opens with a signed `redacted_thinking` block |
//!
//! `retry-after` also resets OpenAI's `retry-after-ms` (to S × 1000) when the answer has one.
//! A malformed JSON answer has a correct Content-Length. `cut-mid-event` and `stall-after`
//! act on streams only (a whole answer ignores them); with N ≥ the number of events they cut
//! or stall before the terminating chunk; a stall with N = 0 starts right after the header
//! and ends after 10 minutes at most (`delay-ms` stalls before the header).
//!
//! Every status 400..=599 answers in the route's format, 529 included (Anthropic's
//! `overloaded_error`; OpenAI's `server_error`, Gemini's `INTERNAL`). A status fault wins
//! over `malformed`, whose value picks the answer's shape whatever the request asked for.
//! When several stream faults hit the same event, the first of drop-after,
//! stream-error-after, stall-after, cut-mid-event applies.
//!
//! [`Emulator::set_faults`] applies fault headers to every request one emulator instance
//! receives (a request's own header of the same name overrides), so a test can make one
//! instance — one deployment of a provider — fail while another stays healthy;
//! [`Emulator::requests_received`] counts what each instance got.
//!
//! The mid-stream error event is OpenAI's `data: {"error":{…"server_error"…}}` (on
//! `/responses`, `event: error` with `"code":"server_error"`), Anthropic's
//! `event: error` with `overloaded_error`, Gemini's `data: {"error":{"code":503,…
//! "UNAVAILABLE"}}` (or, in a JSON-array stream, that object as the array's last element,
//! closing the array). Without chunk-delay, fragment, drop-after, stream-error-after,
//! cut-mid-event and stall-after, a stream's events go out in one write (one HTTP chunk), as
//! a fast provider's burst does; with any of them, each event is its own write. Errors are
//! JSON even for streaming requests.

mod anthropic;
mod azure;
mod bedrock;
mod bedrock_embeddings;
mod faults;
mod gemini;
mod injected;
mod openai;
mod recorder;
mod server;
mod signing;
mod sts;
mod vertex;
mod vertex_embeddings;

use bytes::Bytes;
use http::HeaderMap;
use pingora::services::listening::Service;
use serde::Serialize;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use azure::API_KEY as AZURE_API_KEY;
pub use bedrock::{
    ACCESS_KEY_ID as BEDROCK_ACCESS_KEY_ID, SECRET_ACCESS_KEY as BEDROCK_SECRET_ACCESS_KEY,
};
pub use bedrock_embeddings::normalized as titan_normalized;
use faults::{Faults, InstanceFaults};
pub use openai::embedding_vector;
use recorder::Recorder;

/// Unix seconds now, for `created` fields and rate-limit resets.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Path prefix of the emulator's own control endpoints (never fault-injected).
const CONTROL_PREFIX: &str = "/_emulator/";

/// The emulator app. A cheap, cloneable handle to shared state (the request log, the
/// instance-wide faults, the request count): keep a clone to inspect recorded requests and
/// steer faults in-process after moving one into [`Emulator::service`].
#[derive(Clone, Default)]
pub struct Emulator {
    recorder: Arc<Recorder>,
    /// Responses made with `store: true`, as the API keeps them.
    stored: Arc<openai::StoredResponses>,
    /// Anthropic's prompt cache: the prefixes written by `cache_control` breakpoints.
    prompt_cache: Arc<anthropic::PromptCache>,
    faults: Arc<InstanceFaults>,
    /// Non-control requests whose header was read (answered, faulted or dropped).
    received: Arc<AtomicU64>,
    /// The AWS access keys Bedrock's routes accept, and STS handing out temporary ones.
    aws: Arc<sts::Aws>,
    /// Vertex AI's token endpoint: the trusted service account and the tokens issued.
    vertex: Arc<vertex::Auth>,
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

    /// Applies these `x-emulator-*` header pairs to every request this instance receives
    /// from now on, as if each request carried them (its own header of the same name wins);
    /// `set_faults(&[])` clears them. Control requests (`/_emulator/`) stay fault-free.
    /// A pair that is not a valid HTTP header is skipped with a warning.
    pub fn set_faults(&self, headers: &[(&str, &str)]) {
        self.faults.set(headers);
    }

    /// Bedrock's routes accept exactly these (access key id, secret, session token) keys
    /// from now on (by default [`BEDROCK_ACCESS_KEY_ID`] with its secret, no token).
    pub fn set_bedrock_keys(&self, keys: &[(&str, &str, Option<&str>)]) {
        self.aws.keys.set(keys);
    }

    /// STS's `AssumeRoleWithWebIdentity` accepts exactly these web identity tokens from
    /// now on (none by default); the credentials it hands out are accepted by Bedrock's
    /// routes until they expire.
    pub fn accept_web_identity_tokens(&self, tokens: &[&str]) {
        self.aws.accept_web_identity_tokens(tokens);
    }

    /// How long the credentials STS hands out from now on live (default one hour).
    pub fn set_sts_lifetime(&self, lifetime: std::time::Duration) {
        self.aws.set_lifetime(lifetime);
    }

    /// How many credentials STS has handed out.
    pub fn sts_credentials_issued(&self) -> u64 {
        self.aws.issued()
    }

    /// How many requests other than `/_emulator/` ones this instance has received, counting
    /// every request whose header was read: answered, faulted, cut or dropped.
    pub fn requests_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Vertex AI's token endpoint trusts assertions signed by the private half of this RSA
    /// public key (PEM), the test service account's.
    pub fn trust_vertex_key(&self, public_pem: &[u8]) -> Result<(), String> {
        self.vertex.trust(public_pem)
    }

    /// How long the Vertex access tokens issued from now on live (default one hour).
    pub fn set_vertex_token_lifetime(&self, lifetime: std::time::Duration) {
        self.vertex.set_lifetime(lifetime);
    }

    /// How many Vertex access tokens this instance has issued.
    pub fn vertex_tokens_issued(&self) -> u64 {
        self.vertex.issued()
    }
}

// ---------------------------------------------------------------- requests and replies

/// The parts of a received request the router reads.
pub(crate) struct Request<'a> {
    pub method: &'a str,
    /// Path without the query string.
    pub path: &'a str,
    /// The query string without `?` (empty when absent).
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// What a request is answered with: built by the pure functions in `openai`, `anthropic`
/// and `gemini`, written to the socket by `server` (which adds framing, the provider's
/// headers and the `x-emulator-*` headers).
pub(crate) struct Reply {
    pub status: u16,
    /// Extra response headers (framing and `x-emulator-*` headers are added when written).
    pub headers: Vec<(&'static str, String)>,
    pub body: ReplyBody,
}

/// A whole body sent with Content-Length, or stream events sent chunked one by one.
pub(crate) enum ReplyBody {
    Full {
        content_type: &'static str,
        bytes: Bytes,
    },
    /// `error(n)` is what the provider sends instead of event `n` when it fails mid-stream
    /// (`x-emulator-stream-error-after: n`); the stream ends after it.
    Stream {
        content_type: &'static str,
        events: Vec<Bytes>,
        error: fn(u64) -> Bytes,
    },
}

impl Reply {
    /// A stream answer's content type, events and mid-stream error (tests read answers so).
    #[cfg(test)]
    #[allow(clippy::panic)]
    pub(crate) fn stream_parts(&self) -> (&'static str, &[Bytes], fn(u64) -> Bytes) {
        match &self.body {
            ReplyBody::Stream {
                content_type,
                events,
                error,
            } => (content_type, events, *error),
            ReplyBody::Full { .. } => panic!("expected a stream"),
        }
    }

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

    /// A 200 OpenAI `text/event-stream` answer made of these complete events.
    pub fn stream(events: Vec<Bytes>) -> Self {
        Self::stream_with("text/event-stream", events, |_| {
            openai::stream_error_event()
        })
    }

    /// A 200 streamed answer with this content type and mid-stream error event.
    pub fn stream_with(
        content_type: &'static str,
        events: Vec<Bytes>,
        error: fn(u64) -> Bytes,
    ) -> Self {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: ReplyBody::Stream {
                content_type,
                events,
                error,
            },
        }
    }

    /// Replaces the body (keeps status and headers).
    pub fn set_full(&mut self, content_type: &'static str, bytes: Bytes) {
        self.body = ReplyBody::Full {
            content_type,
            bytes,
        };
    }

    /// Replaces the body with `x-emulator-error-body` text, verbatim: `application/json`
    /// when it parses as JSON, else `text/plain; charset=utf-8`.
    pub fn set_raw_body(&mut self, raw: &str) {
        let is_json = serde_json::from_str::<Value>(raw).is_ok();
        let content_type = if is_json {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        self.set_full(content_type, Bytes::from(raw.to_string()));
    }
}

// ---------------------------------------------------------------- formats

/// The provider wire format a path speaks (the rule is in the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wire {
    OpenAi,
    Anthropic,
    Gemini,
    /// OpenAI's format on Azure OpenAI's paths (`/openai/deployments/…`), see [`azure`].
    Azure,
    /// Anthropic's bodies on Bedrock's InvokeModel paths, see [`bedrock`].
    Bedrock,
}

impl Wire {
    pub fn of(path: &str) -> Wire {
        if azure::serves(path) {
            Wire::Azure
        } else if bedrock::serves(path) {
            Wire::Bedrock
        } else if anthropic::serves(path) || vertex::publisher(path) == Some("anthropic") {
            Wire::Anthropic
        } else if gemini::serves(path) {
            Wire::Gemini
        } else {
            Wire::OpenAi
        }
    }

    /// The error for a request body over the emulator's size limit.
    pub fn too_large_reply(self, message: &str) -> Reply {
        match self {
            Wire::OpenAi | Wire::Azure => {
                openai::error_reply(413, message, "invalid_request_error", None, None)
            }
            Wire::Anthropic => anthropic::error_reply(413, "request_too_large", message),
            Wire::Bedrock => {
                bedrock::fault_reply(413, Some(&format!(r#"{{"message":{message:?}}}"#)))
            }
            Wire::Gemini => gemini::error_reply(413, message),
        }
    }

    /// Headers the provider puts on every answer (added when the reply has none of that
    /// name); `elapsed_ms` is the time since the request was read.
    pub fn provider_headers(self, elapsed_ms: u128) -> Vec<(&'static str, String)> {
        match self {
            Wire::OpenAi => openai::provider_headers(elapsed_ms),
            Wire::Azure => azure::provider_headers(),
            Wire::Anthropic => anthropic::provider_headers(),
            Wire::Bedrock => bedrock::provider_headers(),
            Wire::Gemini => gemini::provider_headers(elapsed_ms),
        }
    }
}

// ---------------------------------------------------------------- routing

/// Chooses the answer for one request (pure apart from reading the recorder).
fn route(
    req: &Request,
    faults: &Faults,
    recorder: &Recorder,
    stored: &openai::StoredResponses,
    prompt_cache: &anthropic::PromptCache,
    aws: &sts::Aws,
    vertex_auth: &vertex::Auth,
) -> Reply {
    let (method, path) = (req.method, req.path);
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
    if vertex::is_token_path(path) {
        return vertex::token_reply(req, vertex_auth);
    }
    if sts::serves(req) {
        return sts::reply(req, aws);
    }
    let wire = Wire::of(path);
    if wire == Wire::Azure {
        if let Some(refusal) = azure::refusal(req) {
            return refusal;
        }
    }
    if wire == Wire::Bedrock {
        if let Some(refusal) = bedrock::refusal(req, &aws.keys) {
            return refusal;
        }
    }
    let on_vertex = vertex::publisher(path).is_some();
    if on_vertex {
        if let Some(refusal) = vertex::refusal(req) {
            return refusal;
        }
    }
    if let Some(reply) = injected::reply(req, faults, wire) {
        return reply;
    }
    match wire {
        Wire::Anthropic if on_vertex => vertex::claude(req, faults, prompt_cache),
        Wire::Anthropic => anthropic::route(req, faults, prompt_cache),
        Wire::Gemini if on_vertex && vertex_embeddings::serves(path) => {
            vertex_embeddings::predict(req)
        }
        Wire::Gemini => gemini::route(req, faults.chunks),
        Wire::Azure => azure::route(req, faults, stored),
        Wire::Bedrock => bedrock_embeddings::route(req)
            .unwrap_or_else(|| bedrock::route(req, faults, prompt_cache)),
        Wire::OpenAi => openai::route(req, faults, stored),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// Routes one request (`target` may carry a query string) and parses the answer.
    fn answer(
        method: &str,
        target: &str,
        headers: &[(&'static str, &str)],
        body: &str,
        faults: &Faults,
    ) -> (u16, Value) {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, v.parse().unwrap());
        }
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let req = Request {
            method,
            path,
            query,
            headers: &map,
            body: body.as_bytes(),
        };
        let reply = route(
            &req,
            faults,
            &Recorder::default(),
            &openai::StoredResponses::default(),
            &anthropic::PromptCache::default(),
            &sts::Aws::default(),
            &vertex::Auth::default(),
        );
        let v = match &reply.body {
            ReplyBody::Full { bytes, .. } => serde_json::from_slice(bytes).unwrap_or(Value::Null),
            ReplyBody::Stream { .. } => Value::String("stream".into()),
        };
        (reply.status, v)
    }

    fn status_of(method: &str, path: &str, body: &str, faults: &Faults) -> (u16, Value) {
        answer(method, path, &[], body, faults)
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

    #[test]
    fn format_rule() {
        for (path, wire) in [
            ("/v1/messages", Wire::Anthropic),
            ("/anthropic/v1/messages/count_tokens", Wire::Anthropic),
            ("/v1/messages/batches", Wire::OpenAi),
            (
                "/v1beta/models/gemini-2.5-flash:generateContent",
                Wire::Gemini,
            ),
            ("/v1/models/g:streamGenerateContent", Wire::Gemini),
            ("/x/publishers/google/models/g:embedContent", Wire::Gemini),
            ("/v1beta/models", Wire::Gemini),
            ("/v1beta/models/gemini-2.5-pro", Wire::Gemini),
            ("/v1beta/openai/models", Wire::OpenAi),
            ("/v1beta/openai/chat/completions", Wire::OpenAi),
            ("/v1/models", Wire::OpenAi),
            ("/v1/models/gpt-4o", Wire::OpenAi),
            ("/v1/chat/completions", Wire::OpenAi),
        ] {
            assert_eq!(Wire::of(path), wire, "{path}");
        }
    }

    #[test]
    fn anthropic_and_gemini_routes_answer_in_their_format() {
        let f = Faults::default();
        let msg = r#"{"model":"c","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}"#;
        let version = [("anthropic-version", "2023-06-01")];
        let (status, v) = answer("POST", "/v1/messages?beta=true", &version, msg, &f);
        assert_eq!((status, v["type"].as_str()), (200, Some("message")));
        let (status, v) = answer("POST", "/v1/messages", &[], msg, &f);
        assert_eq!(
            (status, v["error"]["type"].as_str()),
            (400, Some("invalid_request_error"))
        );
        let (status, v) = answer("GET", "/v1/messages", &version, "", &f);
        assert_eq!((status, v["type"].as_str()), (405, Some("error")));
        let gen = r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#;
        let (status, v) = answer("POST", "/v1beta/models/g:generateContent", &[], gen, &f);
        assert_eq!((status, v["modelVersion"].as_str()), (200, Some("g")));
        let stream = "/v1beta/models/g:streamGenerateContent?alt=sse";
        assert_eq!(answer("POST", stream, &[], gen, &f).1, "stream");
        let (status, v) = status_of("GET", "/v1beta/models", "", &f);
        assert_eq!(status, 200);
        assert!(v["models"].is_array());
        let (status, v) = status_of("POST", "/v1beta/models/g:nope", gen, &f);
        assert_eq!(
            (status, v["error"]["status"].as_str()),
            (404, Some("NOT_FOUND"))
        );
    }

    #[test]
    fn fault_status_uses_the_route_format() {
        let f = Faults {
            status: Some(529),
            ..Faults::default()
        };
        let (status, v) = status_of("POST", "/v1/messages", "{}", &f);
        assert_eq!(
            (status, v["error"]["type"].as_str()),
            (529, Some("overloaded_error"))
        );
        let f = Faults {
            status: Some(429),
            ..Faults::default()
        };
        let (status, v) = status_of("POST", "/v1beta/models/g:generateContent", "", &f);
        assert_eq!(status, 429);
        assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(v["error"]["code"], 429);
        let f = Faults {
            status: Some(500),
            error_body: Some("oops".into()),
            ..Faults::default()
        };
        let (status, v) = status_of("POST", "/v1/messages", "{}", &f);
        assert_eq!((status, v), (500, Value::Null), "raw body, not JSON");
    }
}
