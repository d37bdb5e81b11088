//! An OpenAI chat answer as the translators pass it to each other: typed values, not bytes.
//!
//! One set of types reads an OpenAI-format provider's answer and is written for an OpenAI
//! client, so every field is optional or defaulted when read. What OpenAI always sends
//! (`created`, a whole answer's `usage` and its counts, `content`, `refusal`, `logprobs`,
//! `finish_reason`) is always written, `null` when absent; the rest only when it carries
//! something. The field order is OpenAI's.
//!
//! Extension fields (what a provider reports that OpenAI chat has no name for) go at the end of
//! [`ChatMessage`], [`ChatDelta`] or [`ChatUsage`], each skipped when absent, so an OpenAI
//! client sees them only when there is something to see.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// The `object` of a whole answer.
const COMPLETION_OBJECT: &str = "chat.completion";
/// The `object` of a stream chunk.
const CHUNK_OBJECT: &str = "chat.completion.chunk";

/// A whole (non-streamed) chat answer: `chat.completion`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatCompletion {
    pub id: String,
    #[serde(skip_deserializing, default = "completion_object")]
    object: &'static str,
    pub created: Option<u64>,
    pub model: String,
    #[serde(deserialize_with = "null_as_default")]
    pub choices: Vec<ChatChoice>,
    pub usage: Option<ChatUsage>,
    /// An OpenAI `error` object a provider sent inside a 200 answer (read, never written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

impl ChatCompletion {
    /// An answer with no choices and no usage yet.
    pub fn new(id: String, created: u64, model: String) -> Self {
        Self {
            id,
            object: COMPLETION_OBJECT,
            created: Some(created),
            model,
            ..Self::default()
        }
    }
}

/// One choice of a whole answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatChoice {
    pub index: u32,
    /// Read from `delta` too: some hosts name it so in whole answers.
    #[serde(alias = "delta", deserialize_with = "null_as_default")]
    pub message: ChatMessage,
    pub logprobs: Option<ChatLogprobs>,
    pub finish_reason: Option<Cow<'static, str>>,
}

/// The assistant message of a whole answer: `content` and `refusal` always written.
pub type ChatMessage = ChatReply<Whole>;

/// What a chunk adds to its choice: every field only when it carries something.
pub type ChatDelta = ChatReply<Part>;

/// A message or a delta: the same fields, read the same way; only whether an absent
/// `content` and `refusal` are written (as `null`) differs, which `F` says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatReply<F: Form> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Cow<'static, str>>,
    /// In a message, `null` when the answer is only tool calls.
    #[serde(skip_serializing_if = "F::unwritten")]
    pub content: Option<String>,
    /// The non-standard reasoning text of DeepSeek-style hosts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// The same under the name other compat hosts use (read, never written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    #[serde(
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tool_calls: Vec<ChatToolCall>,
    #[serde(skip_serializing_if = "F::unwritten")]
    pub refusal: Option<String>,
    /// The provider's signed reasoning ([`super::THINKING_BLOCKS`]): whole blocks, each in the
    /// delta that completes it.
    #[serde(
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub thinking_blocks: Vec<ThinkingBlock>,
    #[serde(skip)]
    form: PhantomData<F>,
}

/// One block of a provider's signed reasoning, as Anthropic issues it and must get it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ThinkingBlock {
    Thinking { thinking: String, signature: String },
    RedactedThinking { data: String },
}

/// Which text fields of a [`ChatReply`] go unwritten when absent.
pub trait Form: Default {
    fn unwritten(text: &Option<String>) -> bool;
}

/// A whole answer's message: OpenAI writes `"content": null` and `"refusal": null`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Whole;

/// A chunk's delta: only what it carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Part;

impl Form for Whole {
    fn unwritten(_: &Option<String>) -> bool {
        false
    }
}

impl Form for Part {
    fn unwritten(text: &Option<String>) -> bool {
        text.is_none()
    }
}

impl ChatMessage {
    /// The assistant's answer: its text (`None` beside tool calls) and calls.
    pub fn assistant(content: Option<String>, tool_calls: Vec<ChatToolCall>) -> Self {
        Self {
            role: Some(Cow::Borrowed("assistant")),
            content,
            tool_calls,
            ..Self::default()
        }
    }
}

/// One streamed chunk: `chat.completion.chunk`. It borrows the stream's id and model from the
/// translator that writes it, so a chunk costs no copy of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatChunk<'a> {
    pub id: Cow<'a, str>,
    #[serde(skip_deserializing, default = "chunk_object")]
    object: &'static str,
    pub created: Option<u64>,
    pub model: Cow<'a, str>,
    #[serde(deserialize_with = "null_as_default")]
    pub choices: Vec<ChatChunkChoice>,
    /// Absent; `Some(None)`, OpenAI's `"usage": null` on every chunk but the last once usage
    /// is asked for; or the counts.
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<ChatUsage>>,
    /// An OpenAI `error` object: the provider failed mid-stream and the stream ends here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

impl<'a> ChatChunk<'a> {
    /// A chunk of the stream `id` with these choices and no usage field.
    pub fn new(id: &'a str, created: u64, model: &'a str, choices: Vec<ChatChunkChoice>) -> Self {
        Self {
            id: Cow::Borrowed(id),
            object: CHUNK_OBJECT,
            created: Some(created),
            model: Cow::Borrowed(model),
            choices,
            usage: None,
            error: None,
        }
    }

    /// The chunk that ends a stream with the provider's failure, as an OpenAI `error` object.
    pub fn error(error: Value) -> Self {
        Self {
            object: CHUNK_OBJECT,
            error: Some(error),
            ..Self::default()
        }
    }

    /// The usage this chunk carries, if any.
    pub fn usage(&self) -> Option<ChatUsage> {
        self.usage.flatten()
    }
}

/// One choice of a chunk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatChunkChoice {
    pub index: u32,
    /// Read from `message` too, as some hosts name it in chunks.
    #[serde(alias = "message", deserialize_with = "null_as_default")]
    pub delta: ChatDelta,
    pub logprobs: Option<ChatLogprobs>,
    pub finish_reason: Option<Cow<'static, str>>,
}

impl ChatChunkChoice {
    /// Choice `index` with this delta, no logprobs and no finish reason.
    pub fn delta(index: u32, delta: ChatDelta) -> Self {
        Self {
            index,
            delta,
            logprobs: None,
            finish_reason: None,
        }
    }

    /// Choice `index` ending with `reason` (an empty delta).
    pub fn finish(index: u32, reason: &'static str) -> Self {
        Self {
            finish_reason: Some(Cow::Borrowed(reason)),
            ..Self::delta(index, ChatDelta::default())
        }
    }
}

impl ChatDelta {
    /// The first delta of a choice: its role and empty content.
    pub fn start() -> Self {
        Self {
            role: Some(Cow::Borrowed("assistant")),
            content: Some(String::new()),
            ..Self::default()
        }
    }

    /// A text fragment.
    pub fn content(text: String) -> Self {
        Self {
            content: Some(text),
            ..Self::default()
        }
    }

    /// A reasoning fragment.
    pub fn reasoning(text: String) -> Self {
        Self {
            reasoning_content: Some(text),
            ..Self::default()
        }
    }

    /// A completed block of signed reasoning.
    pub fn thinking_block(block: ThinkingBlock) -> Self {
        Self {
            thinking_blocks: vec![block],
            ..Self::default()
        }
    }

    /// One tool-call fragment.
    pub fn tool_call(call: ChatToolCall) -> Self {
        Self {
            tool_calls: vec![call],
            ..Self::default()
        }
    }
}

/// The reasoning text of a message or delta, whichever name the host used; `None` when empty.
pub fn reasoning_text(
    reasoning_content: Option<String>,
    reasoning: Option<String>,
) -> Option<String> {
    reasoning_content.or(reasoning).filter(|t| !t.is_empty())
}

/// A `tool_calls` entry: a whole call in a message, a fragment of one in a delta (the id, type
/// and name on the first fragment of a call, argument text on the rest).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatToolCall {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<Cow<'static, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<ChatFunction>,
}

impl ChatToolCall {
    /// A whole function call (`index` only in stream deltas).
    pub fn function(index: Option<usize>, id: String, name: String, arguments: String) -> Self {
        Self {
            index,
            id: Some(id),
            kind: Some(Cow::Borrowed("function")),
            function: Some(ChatFunction {
                name: Some(name),
                arguments: Some(arguments),
            }),
        }
    }

    /// More argument text for the call at `index`.
    pub fn arguments(index: usize, arguments: String) -> Self {
        Self {
            index: Some(index),
            function: Some(ChatFunction {
                name: None,
                arguments: Some(arguments),
            }),
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatFunction {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// Token counts. OpenAI's invariant: `prompt_tokens` includes the cached tokens, and
/// `completion_tokens` the reasoning tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Read as absent when a host leaves it out (the sum is meant).
    pub total_tokens: Option<u64>,
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
    /// Anthropic's cache writes, inside `prompt_tokens` but billed apart (they cost more than
    /// plain input); an extension OpenAI does not send.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Anthropic's split of the cache writes by lifetime (1-hour writes cost more).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_creation: Option<CacheCreation>,
}

/// Cache writes by lifetime, as Anthropic reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheCreation {
    pub ephemeral_5m_input_tokens: u64,
    pub ephemeral_1h_input_tokens: u64,
}

impl ChatUsage {
    /// The cached prompt tokens (0 when not reported).
    pub fn cached_tokens(&self) -> u64 {
        self.prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
    }

    /// The reasoning tokens (0 when not reported).
    pub fn reasoning_tokens(&self) -> u64 {
        self.completion_tokens_details
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PromptTokensDetails {
    pub cached_tokens: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompletionTokensDetails {
    pub reasoning_tokens: Option<u64>,
}

/// A choice's `logprobs`: `{"content": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatLogprobs {
    #[serde(deserialize_with = "null_as_default")]
    pub content: Vec<TokenLogprob>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f64,
    #[serde(deserialize_with = "null_as_default")]
    pub bytes: Vec<u8>,
    #[serde(deserialize_with = "null_as_default")]
    pub top_logprobs: Vec<TopLogprob>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f64,
    #[serde(deserialize_with = "null_as_default")]
    pub bytes: Vec<u8>,
}

fn completion_object() -> &'static str {
    COMPLETION_OBJECT
}

fn chunk_object() -> &'static str {
    CHUNK_OBJECT
}

/// Reads an explicit `null` as the default (hosts send `"tool_calls": null`, `"delta": null`).
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Reads a field that is there, `null` included, as `Some` (absent stays `None` by default).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
