//! Provider adapters: one folder per wire format; `prepare.rs` pairs a client's format with
//! a provider's.
//!
//! An adapter turns a client request into the request its provider expects (path, auth,
//! body) and picks the translator for the answer. It knows nothing about Pingora: bytes in,
//! bytes out. Formats compose through OpenAI's: an Anthropic client on a Gemini model is
//! translated Anthropic → OpenAI → Gemini, and the answer back the same way.

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod chat;
pub mod cloud_betas;
mod dial;
pub mod dns;
pub mod embeddings;
mod errors;
mod events;
pub mod gemini;
pub(crate) mod json;
pub mod openai;
pub mod peer;
pub mod pools;
mod prepare;
pub mod responses;
pub mod roots;
pub mod tool_calls;
#[cfg(test)]
pub(crate) mod translator_testing;
pub(crate) mod turns;
pub mod upstream;
pub mod vertex;

use bytes::Bytes;

use crate::dialect::Dialect;
use crate::error::{ErrorKind, GatewayError, Passthrough};
use crate::routing::BreakerConfig;
use crate::secret::Secret;
pub use upstream::{Timeouts, Upstream};

/// The Anthropic API version sent when a client (an OpenAI one, say) names none.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Turns a provider's response body into the client's wire format, chunk by chunk.
///
/// Implementations are pure state machines: bytes in at any chunk border, bytes out, no
/// I/O, no Pingora. A non-streaming translator buffers in `push` and converts in `finish`;
/// a streaming one emits each client event as soon as the upstream events that make it are
/// complete. Formats compose inside one translator: an upstream side feeding a client side's
/// [`chat::ChatSink`] (Gemini → chat values → Anthropic).
pub trait ResponseTranslator: Send + Sync {
    /// The next upstream bytes; appends whatever is ready for the client to `out`.
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), GatewayError>;
    /// The upstream body ended; appends the rest (final events, a converted JSON body).
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError>;
    /// The answer's signed reasoning and the tool calls it made, once both are complete (once
    /// per answer): what the gateway keeps for clients that drop it (see `crate::thinking`).
    fn take_reasoning(&mut self) -> Option<TurnReasoning> {
        None
    }
}

/// A turn's signed reasoning blocks (as JSON, ready to keep) and the id of the first tool call
/// it made, by which the next turn finds it (its results all answer the same turn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnReasoning {
    pub first_call: String,
    pub blocks: String,
}

impl TurnReasoning {
    /// The reasoning of an answer with these blocks whose first tool call is `first_call`;
    /// `None` without either.
    pub fn of(blocks: &[chat::ThinkingBlock], first_call: Option<String>) -> Option<Self> {
        let first_call = first_call?;
        if blocks.is_empty() {
            return None;
        }
        let blocks = serde_json::to_string(blocks).ok()?;
        Some(Self { first_call, blocks })
    }
}

/// The wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// api.openai.com.
    OpenAi,
    /// Any host that speaks OpenAI's format (vLLM, Ollama, Groq, …); same adapter.
    OpenAiCompatible,
    /// Anthropic's Messages API.
    Anthropic,
    /// Google's Gemini API (generateContent).
    Gemini,
    /// Azure OpenAI: OpenAI's format on deployment URLs with `api-version` and `api-key`
    /// (see [`azure`]).
    Azure,
    /// AWS Bedrock's runtime: Claude in Anthropic's bodies on InvokeModel paths, every other
    /// model on the Converse API; SigV4 signed, streams in AWS's event-stream framing (see
    /// [`bedrock`]).
    Bedrock,
    /// Google Vertex AI: Gemini models in Gemini's format, Claude models in Anthropic's, on
    /// a project's regional paths with a service account's token (see [`vertex`]).
    Vertex,
}

impl ProviderKind {
    /// The client dialect whose requests this provider takes unchanged, if any.
    fn native_dialect(self) -> Option<Dialect> {
        match self {
            Self::OpenAi | Self::OpenAiCompatible | Self::Azure => Some(Dialect::OpenAi),
            Self::Anthropic => Some(Dialect::Anthropic),
            // each Vertex publisher speaks its own: see `Provider::upstream_error`
            Self::Gemini | Self::Bedrock | Self::Vertex => None,
        }
    }
}

/// A configured provider.
#[derive(Debug)]
pub struct Provider {
    /// The config table name (`[providers.NAME]`), used in logs and metrics.
    pub name: String,
    pub kind: ProviderKind,
    pub upstream: Upstream,
    /// `None` for hosts that need no key (a local model server, the emulator).
    pub api_key: Option<Secret>,
    pub timeouts: Timeouts,
    /// When its deployments' circuits open (each deployment has its own circuit).
    pub breaker: BreakerConfig,
    /// The host serves OpenAI's `/v1/responses` itself (OpenAI-format providers only):
    /// Responses requests pass through instead of being translated to chat.
    pub native_responses: bool,
    /// Azure's `api-version` query parameter, on every request (kind azure only; the config
    /// requires it there and refuses it elsewhere).
    pub api_version: Option<String>,
    /// Region and credentials a Bedrock provider signs with (kind bedrock only).
    pub bedrock: Option<bedrock::Bedrock>,
    /// Vertex AI's project, region and credentials (kind vertex only).
    pub vertex: Option<vertex::Vertex>,
}

/// What the exchange sends to the provider, and how to read its answer.
pub struct UpstreamRequest {
    /// `POST` for every model call; `GET` and `DELETE` for a stored response.
    pub method: http::Method,
    pub path: String,
    pub body: Bytes,
    /// Headers set on the upstream request, replacing any client value (auth).
    pub headers: Vec<(&'static str, String)>,
    /// Headers set only when the client sent none (`anthropic-version`).
    pub default_headers: Vec<(&'static str, &'static str)>,
    /// Client header name prefixes not forwarded to this provider (another API's headers).
    pub dropped_header_prefixes: &'static [&'static str],
    /// Converts the answer into the client's format; `None` = passthrough.
    pub translator: Option<Box<dyn ResponseTranslator>>,
    /// Builds [`Self::translator`] where that takes CPU a proxy worker must not spend (the
    /// token count of Gemini embedding inputs): the proxy runs it off its workers first.
    pub translator_job: Option<TranslatorJob>,
    /// The answer's content type after translation (`None` = the provider's own).
    pub content_type: Option<&'static str>,
    /// The client asked for reasoning on a tool-loop turn whose signed reasoning it did not
    /// send back (and the gateway had not kept): the turn goes without it.
    pub reasoning_dropped: bool,
}

/// Work that builds a response translator, run off the proxy's workers.
pub type TranslatorJob = Box<dyn FnOnce() -> Box<dyn ResponseTranslator> + Send + Sync>;

/// How a request is served.
pub enum Plan {
    Upstream(UpstreamRequest),
    /// `count_tokens` for a provider without it: the gateway counts with its tokenizer.
    CountTokens,
}

impl Provider {
    pub fn new(
        name: String,
        kind: ProviderKind,
        upstream: Upstream,
        api_key: Option<Secret>,
        timeouts: Timeouts,
        breaker: BreakerConfig,
        native_responses: bool,
    ) -> Self {
        Self {
            name,
            kind,
            upstream,
            api_key,
            timeouts,
            breaker,
            native_responses,
            api_version: None,
            bedrock: None,
            vertex: None,
        }
    }

    /// The same provider signing its requests for Bedrock with `bedrock`.
    pub fn with_bedrock(mut self, bedrock: bedrock::Bedrock) -> Self {
        self.bedrock = Some(bedrock);
        self
    }

    /// The same provider on Vertex AI's project, region and credentials.
    pub fn with_vertex(mut self, vertex: vertex::Vertex) -> Self {
        self.vertex = Some(vertex);
        self
    }

    /// The same provider sending Azure's `api-version` query parameter.
    pub fn with_api_version(mut self, api_version: String) -> Self {
        self.api_version = Some(api_version);
        self
    }

    /// The path of an OpenAI operation (`/chat/completions`, `/embeddings`, `/responses`,
    /// `/responses/{id}`) on this provider: under its base URL, or, on Azure, on the
    /// deployment `upstream_model` with the `api-version` (see [`azure::path`]).
    pub(crate) fn openai_path(&self, suffix: &str, upstream_model: &str) -> String {
        match (self.kind, &self.api_version) {
            (ProviderKind::Azure, Some(version)) => {
                azure::path(&self.upstream, version, suffix, upstream_model)
            }
            _ => self.upstream.path(suffix),
        }
    }

    /// A provider on a closed local port with one-second timeouts, for unit tests.
    #[cfg(test)]
    #[allow(clippy::unwrap_used)]
    pub(crate) fn for_tests(name: &str, kind: ProviderKind, breaker: BreakerConfig) -> Self {
        let second = std::time::Duration::from_secs(1);
        Self::new(
            name.into(),
            kind,
            Upstream::parse("http://127.0.0.1:1/v1").unwrap(),
            None,
            Timeouts {
                connect: second,
                first_byte: second,
                idle: second,
            },
            breaker,
            false,
        )
    }

    /// What the runtime state of this provider's deployments depends on: a reload that
    /// changes none of it keeps their circuits (see [`crate::routing::health`]).
    pub fn state_fingerprint(&self) -> String {
        format!(
            "{:?} {}://{}:{}{} {:?} {:?} {:?} {:?}",
            self.kind,
            if self.upstream.tls { "https" } else { "http" },
            self.upstream.host,
            self.upstream.port,
            self.upstream.path_prefix,
            self.breaker,
            self.api_version,
            self.bedrock.as_ref().map(|b| &b.region),
            self.vertex.as_ref().map(vertex::Vertex::fingerprint)
        )
    }

    /// The request for a response this provider stores (`rest`: the path after
    /// `/responses/`, checked by [`Endpoint::route`]), passed through as the client made it.
    pub fn stored_response_request(
        &self,
        method: http::Method,
        rest: &str,
        body: Bytes,
    ) -> UpstreamRequest {
        // the stored response's deployment is in the provider's record, not in the path
        let path = self.openai_path(&format!("/responses/{rest}"), "");
        let mut request = self.request(path, body);
        request.method = method;
        request
    }

    /// An empty request with this provider's auth and header rules.
    fn request(&self, path: String, body: Bytes) -> UpstreamRequest {
        let key = self.api_key.as_ref().map(Secret::expose);
        let mut request = UpstreamRequest {
            method: http::Method::POST,
            path,
            body,
            headers: Vec::new(),
            default_headers: Vec::new(),
            dropped_header_prefixes: &[],
            translator: None,
            translator_job: None,
            content_type: None,
            reasoning_dropped: false,
        };
        match self.kind {
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {
                request
                    .headers
                    .extend(key.map(|k| ("authorization", format!("Bearer {k}"))));
                request.dropped_header_prefixes = &["anthropic-", "x-goog-"];
            }
            ProviderKind::Anthropic => {
                request
                    .headers
                    .extend(key.map(|k| ("x-api-key", k.to_string())));
                request
                    .default_headers
                    .push(("anthropic-version", ANTHROPIC_VERSION));
                request.dropped_header_prefixes = &["openai-", "x-goog-"];
            }
            ProviderKind::Gemini => {
                request
                    .headers
                    .extend(key.map(|k| ("x-goog-api-key", k.to_string())));
                request.dropped_header_prefixes = &["anthropic-", "openai-"];
            }
            ProviderKind::Azure => {
                request
                    .headers
                    .extend(key.map(|k| ("api-key", k.to_string())));
                // a client's own `api-key` (an Azure SDK's) never reaches the resource
                request.dropped_header_prefixes = &["anthropic-", "x-goog-", "api-key"];
            }
            ProviderKind::Bedrock => {
                // signed in `bedrock`; a client's own AWS headers never reach AWS
                request.dropped_header_prefixes = &["anthropic-", "openai-", "x-goog-", "x-amz"];
            }
            ProviderKind::Vertex => {
                // the bearer token is minted per provider and set by the proxy; Claude's
                // version goes in the body, the betas Vertex offers are set for Claude
                // (`cloud_betas`)
                request.dropped_header_prefixes = &[
                    "openai-",
                    "x-goog-",
                    "api-key",
                    "anthropic-version",
                    "anthropic-beta",
                ];
            }
        }
        request
    }

    /// The client-facing error for an upstream error answer. A well-formed error in the
    /// provider's own format is kept verbatim for clients of that dialect, except a refusal
    /// of the gateway's own key or account ([`ErrorKind::ProviderAuth`]): its text is the
    /// operator's (it may quote the provider key), so every client gets the gateway's own.
    pub fn upstream_error(&self, status: u16, body: &[u8]) -> GatewayError {
        // a provider that quotes the gateway's own key back never gets it to a client
        let scrubbed;
        let body = match self.api_key.as_ref().map(Secret::expose) {
            Some(key)
                if !key.is_empty() && memchr::memmem::find(body, key.as_bytes()).is_some() =>
            {
                scrubbed = crate::secret::scrub(&String::from_utf8_lossy(body), &[key.to_string()]);
                scrubbed.as_bytes()
            }
            _ => body,
        };
        let mut error = match self.kind {
            // Azure's errors are OpenAI's envelope (its content filter adds `innererror`)
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible | ProviderKind::Azure => {
                openai::upstream_error(&self.name, status, body)
            }
            ProviderKind::Anthropic => anthropic::upstream_error(&self.name, status, body),
            ProviderKind::Gemini => gemini::upstream_error(&self.name, status, body),
            ProviderKind::Bedrock => bedrock::upstream_error(&self.name, status, body),
            // Claude on Vertex may answer Anthropic's envelope, everything else Google's
            ProviderKind::Vertex if is_error_envelope(Dialect::Anthropic, body) => {
                let mut error = anthropic::upstream_error(&self.name, status, body);
                if error.kind != ErrorKind::ProviderAuth {
                    error.passthrough = Some(Passthrough {
                        dialect: Dialect::Anthropic,
                        status,
                        body: Bytes::copy_from_slice(body),
                    });
                }
                error
            }
            ProviderKind::Vertex => gemini::upstream_error(&self.name, status, body),
        };
        if error.kind == ErrorKind::ProviderAuth {
            // logged here, where the key is known: a provider may quote the key it refused
            if let Some(detail) = error.detail.take() {
                let keys: Vec<String> = self
                    .api_key
                    .iter()
                    .map(|k| k.expose().to_string())
                    .collect();
                log::warn!("{}", crate::secret::scrub(&detail, &keys));
            }
            return error;
        }
        if let Some(dialect) = self.kind.native_dialect() {
            if is_error_envelope(dialect, body) {
                error.passthrough = Some(Passthrough {
                    dialect,
                    status,
                    body: Bytes::copy_from_slice(body),
                });
            }
        }
        error
    }
}

/// Whether `body` is an error answer in `dialect`'s own shape.
fn is_error_envelope(dialect: Dialect, body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    match dialect {
        Dialect::OpenAi => v["error"]["message"].is_string(),
        Dialect::Anthropic => v["type"] == "error" && v["error"]["type"].is_string(),
    }
}
