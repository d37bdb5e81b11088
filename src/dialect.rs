//! The client-facing API family of a request.

/// Which API family the client speaks, chosen by the endpoint it called. It decides the shape
/// of every error body and of the answer, whatever format the provider behind the model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `/v1/chat/completions`, `/v1/embeddings`, `/v1/models`.
    OpenAi,
    /// `/v1/messages` (Claude Code, the Anthropic SDK).
    Anthropic,
}
