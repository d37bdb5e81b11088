//! OpenAI chat, the form every translation passes through: a request of any client format
//! becomes a [`ChatRequest`] that the upstream side of any provider format reads, and an
//! answer of any provider format becomes [`ChatCompletion`] or [`ChatChunk`] values that the
//! client side ([`ChatSink`]) writes. So a request that crosses two formats (an Anthropic
//! client on a Gemini model) is parsed once and serialized once, both ways.

mod request;
mod response;
mod sink;

/// The field of a chat assistant message (answer and history alike) that carries Anthropic's
/// signed reasoning blocks back and forth, as other gateways name it: `[{"type":"thinking",
/// "thinking","signature"} | {"type":"redacted_thinking","data"}]`. Its text is also in
/// `reasoning_content`.
pub const THINKING_BLOCKS: &str = "thinking_blocks";

pub(crate) use request::assistant_message;
pub use request::ChatRequest;
pub use response::{
    reasoning_text, CacheCreation, ChatChoice, ChatChunk, ChatChunkChoice, ChatCompletion,
    ChatDelta, ChatFunction, ChatLogprobs, ChatMessage, ChatReply, ChatToolCall, ChatUsage,
    CompletionTokensDetails, Form, Part, PromptTokensDetails, ThinkingBlock, TokenLogprob,
    TopLogprob, Whole,
};
pub use sink::{read, ChatSink, OpenAiWriter};
