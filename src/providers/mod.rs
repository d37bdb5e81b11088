//! Provider adapters: one file per wire format, dispatched with a `match` on the kind.
//!
//! An adapter turns a client request into the request its provider expects (path, auth
//! header, body) and turns the provider's error answers into a [`GatewayError`]. It knows
//! nothing about Pingora: bytes in, bytes out.

pub mod openai;
pub mod upstream;

use bytes::Bytes;

use crate::catalog::Model;
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::request::Peeked;
use crate::secret::Secret;
pub use upstream::{Timeouts, Upstream};

/// Turns a provider's response body into the client's wire format, chunk by chunk.
///
/// Implementations are pure state machines: bytes in at any chunk border, bytes out, no
/// I/O, no Pingora. A non-streaming translator buffers in `push` and converts in `finish`;
/// a streaming one emits each client event as soon as the upstream events that make it are
/// complete. Chaining two (Gemini → OpenAI → Anthropic) composes formats.
pub trait ResponseTranslator: Send {
    /// The next upstream bytes; appends whatever is ready for the client to `out`.
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), GatewayError>;
    /// The upstream body ended; appends the rest (final events, a converted JSON body).
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError>;
}

/// The wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// api.openai.com.
    OpenAi,
    /// Any host that speaks OpenAI's format (vLLM, Ollama, Groq, …); same adapter.
    OpenAiCompatible,
}

impl ProviderKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::OpenAiCompatible => "openai_compatible",
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
}

/// What the exchange sends to the provider, besides the client headers it copies.
#[derive(Debug)]
pub struct UpstreamRequest {
    pub path: String,
    pub body: Bytes,
    /// The provider's auth header, replacing whatever the client sent.
    pub auth: Option<(&'static str, String)>,
}

impl Provider {
    /// Builds the upstream request for `model` from the client's body.
    pub fn prepare(
        &self,
        endpoint: &Endpoint,
        body: &Bytes,
        peeked: &Peeked,
        model: &Model,
    ) -> Result<UpstreamRequest, GatewayError> {
        match self.kind {
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {
                openai::prepare(self, endpoint, body, peeked, model)
            }
        }
    }

    /// The client-facing error for an upstream error answer.
    pub fn upstream_error(&self, status: u16, body: &[u8]) -> GatewayError {
        match self.kind {
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {
                openai::upstream_error(&self.name, status, body)
            }
        }
    }
}
