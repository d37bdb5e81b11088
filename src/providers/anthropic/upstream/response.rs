//! Anthropic answer → chat completion, whole (B1) or streamed (B2): typed chat values handed to
//! a [`ChatSink`] (the OpenAI client's writer, or another client format's side).
//!
//! Thinking is passed on as the non-standard `reasoning_content` (what DeepSeek-style clients
//! read; the OpenAI SDKs ignore it), and whole, signed, in `thinking_blocks` (redacted thinking
//! too), which the client sends back with the message so that the next turn of a tool loop
//! keeps thinking on; a stream gives each block whole in the delta after its last fragment.
//! The translator also hands the turn's signed blocks and tool call ids over
//! ([`ResponseTranslator::take_reasoning`]) for clients that drop them. Server-tool blocks
//! (`server_tool_use`, `web_search_tool_result`) have no OpenAI form and are dropped.
//! The gateway's own [`JSON_OUTPUT_TOOL`] call becomes the message content.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::{status_of_anthropic_type, upstream_error, ANTHROPIC, JSON_OUTPUT_TOOL};
use crate::clock::unix_secs;
use crate::error::GatewayError;
use crate::providers::chat::{
    CacheCreation, ChatChoice, ChatChunk, ChatChunkChoice, ChatCompletion, ChatDelta, ChatMessage,
    ChatSink, ChatToolCall, ChatUsage, OpenAiWriter, PromptTokensDetails, ThinkingBlock,
};
use crate::providers::errors::protocol_error;
use crate::providers::events::{Buffered, EventTranslator, Events, WholeTranslator};
use crate::providers::{ResponseTranslator, TurnReasoning};
use crate::sse::SseEvent;

/// Translator for an Anthropic answer (JSON when `!stream`, SSE when `stream`) into chat values
/// for `sink` ([`OpenAiWriter`] for an OpenAI client): one `chat.completion`, or
/// `chat.completion.chunk`s ending in `[DONE]`. `client_model` is put in `model`. The stream
/// ends with the usage-only chunk (`choices:[]`): usage is always asked of a translated
/// upstream, and the meter removes that chunk for clients that did not ask. Usage maps incl.
/// cache tokens (`prompt_tokens` = input + cache_creation + cache_read; `cached_tokens` =
/// cache_read).
pub fn to_chat<S: ChatSink + 'static>(
    stream: bool,
    client_model: &str,
    sink: S,
) -> Box<dyn ResponseTranslator> {
    let created = unix_secs();
    if stream {
        Box::new(StreamToChat::with_sink(client_model, true, created, sink))
    } else {
        Box::new(JsonToChat::with_sink(client_model, created, sink))
    }
}

// ---- wire types -----------------------------------------------------------------------------

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    id: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    content: Vec<Block>,
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Usage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        #[serde(default)]
        id: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        input: Value,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    RedactedThinking {
        #[serde(default)]
        data: String,
    },
    #[serde(other)]
    Other,
}

/// Token counts; every field optional because `message_delta` repeats only some of them.
#[derive(Deserialize, Default, Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Usage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation: Option<CacheCreation>,
}

impl Usage {
    /// Takes the fields a later report gives (`message_delta` counts are cumulative).
    fn update(&mut self, later: Usage) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = later
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = later
            .cache_read_input_tokens
            .or(self.cache_read_input_tokens);
        self.cache_creation = later.cache_creation.or(self.cache_creation);
    }

    /// Chat usage (B1): prompt includes cached tokens, as OpenAI's does; the raw cache-write
    /// count is kept as an extension field for billing.
    fn to_chat(self) -> ChatUsage {
        let cache_read = self.cache_read_input_tokens.unwrap_or(0);
        let cache_creation = self.cache_creation_input_tokens.unwrap_or(0);
        let prompt = self
            .input_tokens
            .unwrap_or(0)
            .saturating_add(cache_read)
            .saturating_add(cache_creation);
        let completion = self.output_tokens.unwrap_or(0);
        ChatUsage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: Some(prompt.saturating_add(completion)),
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: Some(cache_read),
            }),
            completion_tokens_details: None,
            cache_creation_input_tokens: Some(cache_creation),
            cache_creation: self.cache_creation,
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: usize,
        content_block: Block,
    },
    ContentBlockDelta {
        index: usize,
        delta: BlockDelta,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Usage,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageStop,
    Error {
        #[serde(default)]
        error: Value,
    },
    /// `ping` and future event types: nothing to emit.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    usage: Usage,
}

#[derive(Deserialize, Default)]
struct MessageDeltaBody {
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        #[serde(default)]
        text: String,
    },
    InputJsonDelta {
        #[serde(default)]
        partial_json: String,
    },
    ThinkingDelta {
        #[serde(default)]
        thinking: String,
    },
    SignatureDelta {
        #[serde(default)]
        signature: String,
    },
    /// `citations_delta`: no OpenAI form.
    #[serde(other)]
    Other,
}

/// `stop_reason` → `finish_reason` (B1 table); unknown or missing reasons read as `stop`.
pub(super) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// The error an Anthropic error object inside a 200 answer stands for.
fn embedded_error(error: &Value, raw: &[u8]) -> GatewayError {
    let status = status_of_anthropic_type(error.get("type").and_then(Value::as_str).unwrap_or(""));
    upstream_error(ANTHROPIC, status, raw)
}

// ---- whole answer ---------------------------------------------------------------------------

/// An Anthropic message → the chat completion for its sink.
pub(super) struct JsonToChat<S = OpenAiWriter> {
    model: String,
    created: u64,
    sink: S,
    reasoning: Option<TurnReasoning>,
}

impl JsonToChat {
    /// For an OpenAI client, with a fixed time (and ids) to compare output with.
    #[cfg(test)]
    pub(super) fn new(model: &str, created: u64) -> Buffered<Self> {
        Self::with_sink(model, created, OpenAiWriter)
    }
}

impl<S> JsonToChat<S> {
    pub(super) fn with_sink(model: &str, created: u64, sink: S) -> Buffered<Self> {
        Buffered::new(Self {
            model: model.to_string(),
            created,
            sink,
            reasoning: None,
        })
    }
}

impl<S: ChatSink> WholeTranslator for JsonToChat<S> {
    fn whole(&mut self, body: &[u8], out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let message: Message = serde_json::from_slice(body)
            .map_err(|e| protocol_error(format!("unreadable Anthropic answer: {e}")))?;
        if message.kind == "error" {
            let error: Value = serde_json::from_slice(body).unwrap_or_default();
            return Err(embedded_error(&error["error"], body));
        }
        let completion = completion(message, &self.model, self.created);
        if let Some(choice) = completion.choices.first() {
            let first_call = choice.message.tool_calls.iter().find_map(|c| c.id.clone());
            self.reasoning = TurnReasoning::of(&choice.message.thinking_blocks, first_call);
        }
        self.sink.whole(completion, out)
    }

    fn take_reasoning(&mut self) -> Option<TurnReasoning> {
        self.reasoning.take()
    }
}

/// An Anthropic message as a chat completion (B1).
fn completion(message: Message, model: &str, created: u64) -> ChatCompletion {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut json_output = None;
    let mut tool_calls = Vec::new();
    for block in message.content {
        match block {
            Block::Text { text: t } => text.push_str(&t),
            Block::Thinking {
                thinking,
                signature,
            } => {
                reasoning.push_str(&thinking);
                thinking_blocks.push(ThinkingBlock::Thinking {
                    thinking,
                    signature,
                });
            }
            Block::RedactedThinking { data } => {
                thinking_blocks.push(ThinkingBlock::RedactedThinking { data })
            }
            Block::ToolUse { input, name, .. } if name == JSON_OUTPUT_TOOL => {
                json_output = Some(input.to_string())
            }
            Block::ToolUse { id, name, input } => {
                let arguments = if input.is_null() {
                    "{}".to_string()
                } else {
                    input.to_string()
                };
                tool_calls.push(ChatToolCall::function(None, id, name, arguments));
            }
            Block::Other => {}
        }
    }
    let finish = match (message.stop_reason.as_deref(), tool_calls.is_empty()) {
        // The forced JSON tool is the answer itself, not a call for the client to run.
        (Some("tool_use"), true) => "stop",
        (reason, _) => finish_reason(reason),
    };
    let content = match json_output {
        Some(json) => Some(json),
        None if text.is_empty() && !tool_calls.is_empty() => None,
        None => Some(text),
    };
    let mut reply = ChatMessage::assistant(content, tool_calls);
    reply.reasoning_content = (!reasoning.is_empty()).then_some(reasoning);
    reply.thinking_blocks = thinking_blocks;
    let id = format!("chatcmpl-{}", message.id);
    let mut completion = ChatCompletion::new(id, created, model.to_string());
    completion.choices.push(ChatChoice {
        index: 0,
        message: reply,
        logprobs: None,
        finish_reason: Some(Cow::Borrowed(finish)),
    });
    completion.usage = Some(message.usage.to_chat());
    completion
}

// ---- stream ---------------------------------------------------------------------------------

/// What an Anthropic content block becomes in OpenAI chunks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BlockRole {
    /// Text and thinking: deltas are mapped by their own type.
    Plain,
    /// A thinking block: its fragments are reasoning, and it is handed on whole at its end.
    Thinking,
    /// A client tool call with this OpenAI `tool_calls` index.
    Tool(usize),
    /// The forced JSON-output tool: its input fragments are content.
    JsonOutput,
}

#[derive(PartialEq, Eq)]
enum Phase {
    /// Reading events.
    Live,
    /// `message_stop` seen and `[DONE]` handed over, or an error chunk: input is ignored.
    Closed,
}

/// Anthropic SSE → chat chunks for its sink (B2).
pub(super) struct StreamToChat<S = OpenAiWriter> {
    sink: S,
    model: String,
    created: u64,
    include_usage: bool,
    id: String,
    usage: Usage,
    /// Anthropic block index → its role.
    blocks: Vec<(usize, BlockRole)>,
    tool_calls: usize,
    /// The thinking block being streamed: its text and signature so far.
    thinking: (String, String),
    /// Signed blocks completed so far, and the id of the first tool call made.
    issued: Vec<ThinkingBlock>,
    first_call: Option<String>,
    started: bool,
    finish_sent: bool,
    phase: Phase,
}

impl StreamToChat {
    /// For an OpenAI client, with a fixed time (and ids) to compare output with.
    #[cfg(test)]
    pub(super) fn new(model: &str, include_usage: bool, created: u64) -> Events<Self> {
        Self::with_sink(model, include_usage, created, OpenAiWriter)
    }
}

impl<S: ChatSink> StreamToChat<S> {
    pub(super) fn with_sink(
        model: &str,
        include_usage: bool,
        created: u64,
        sink: S,
    ) -> Events<Self> {
        Events::new(Self {
            sink,
            model: model.to_string(),
            created,
            include_usage,
            id: String::new(),
            usage: Usage::default(),
            blocks: Vec::new(),
            tool_calls: 0,
            thinking: Default::default(),
            issued: Vec::new(),
            first_call: None,
            started: false,
            finish_sent: false,
            phase: Phase::Live,
        })
    }

    fn chunk(
        &mut self,
        out: &mut Vec<u8>,
        delta: ChatDelta,
        finish: Option<&'static str>,
    ) -> Result<(), GatewayError> {
        let choice = ChatChunkChoice {
            finish_reason: finish.map(Cow::Borrowed),
            ..ChatChunkChoice::delta(0, delta)
        };
        let chunk = ChatChunk::new(&self.id, self.created, &self.model, vec![choice]);
        self.sink.chunk(chunk, out)
    }

    fn role_of(&self, index: usize) -> Option<BlockRole> {
        self.blocks
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, role)| *role)
    }

    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if self.phase == Phase::Closed {
            return Ok(());
        }
        let parsed: Event = serde_json::from_str(&event.data)
            .map_err(|e| protocol_error(format!("unreadable Anthropic stream event: {e}")))?;
        match parsed {
            Event::MessageStart { message } => {
                self.id = format!("chatcmpl-{}", message.id);
                self.usage.update(message.usage);
                self.started = true;
                self.chunk(out, ChatDelta::start(), None)?;
            }
            Event::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                Block::Text { text } => {
                    self.blocks.push((index, BlockRole::Plain));
                    if !text.is_empty() {
                        self.chunk(out, ChatDelta::content(text), None)?;
                    }
                }
                Block::Thinking {
                    thinking,
                    signature,
                } => {
                    self.blocks.push((index, BlockRole::Thinking));
                    self.thinking = (thinking.clone(), signature);
                    if !thinking.is_empty() {
                        self.chunk(out, ChatDelta::reasoning(thinking), None)?;
                    }
                }
                Block::RedactedThinking { data } => {
                    let block = ThinkingBlock::RedactedThinking { data };
                    self.issued.push(block.clone());
                    self.chunk(out, ChatDelta::thinking_block(block), None)?;
                }
                Block::ToolUse { name, .. } if name == JSON_OUTPUT_TOOL => {
                    self.blocks.push((index, BlockRole::JsonOutput));
                }
                Block::ToolUse { id, name, .. } => {
                    let k = self.tool_calls;
                    self.tool_calls += 1;
                    if self.first_call.is_none() {
                        self.first_call = Some(id.clone());
                    }
                    self.blocks.push((index, BlockRole::Tool(k)));
                    let call = ChatToolCall::function(Some(k), id, name, String::new());
                    self.chunk(out, ChatDelta::tool_call(call), None)?;
                }
                Block::Other => {}
            },
            Event::ContentBlockDelta { index, delta } => match (self.role_of(index), delta) {
                (_, BlockDelta::TextDelta { text }) if !text.is_empty() => {
                    self.chunk(out, ChatDelta::content(text), None)?;
                }
                (role, BlockDelta::ThinkingDelta { thinking }) if !thinking.is_empty() => {
                    if role == Some(BlockRole::Thinking) {
                        self.thinking.0.push_str(&thinking);
                    }
                    self.chunk(out, ChatDelta::reasoning(thinking), None)?;
                }
                (Some(BlockRole::Thinking), BlockDelta::SignatureDelta { signature }) => {
                    self.thinking.1.push_str(&signature);
                }
                (Some(BlockRole::Tool(k)), BlockDelta::InputJsonDelta { partial_json })
                    if !partial_json.is_empty() =>
                {
                    let call = ChatToolCall::arguments(k, partial_json);
                    self.chunk(out, ChatDelta::tool_call(call), None)?;
                }
                (Some(BlockRole::JsonOutput), BlockDelta::InputJsonDelta { partial_json })
                    if !partial_json.is_empty() =>
                {
                    self.chunk(out, ChatDelta::content(partial_json), None)?;
                }
                _ => {}
            },
            Event::MessageDelta { delta, usage } => {
                self.usage.update(usage);
                let finish = match (delta.stop_reason.as_deref(), self.tool_calls) {
                    (Some("tool_use"), 0) => "stop",
                    (reason, _) => finish_reason(reason),
                };
                self.chunk(out, ChatDelta::default(), Some(finish))?;
                self.finish_sent = true;
            }
            Event::ContentBlockStop { index } => {
                if self.role_of(index) == Some(BlockRole::Thinking) {
                    let (thinking, signature) = std::mem::take(&mut self.thinking);
                    let block = ThinkingBlock::Thinking {
                        thinking,
                        signature,
                    };
                    self.issued.push(block.clone());
                    self.chunk(out, ChatDelta::thinking_block(block), None)?;
                }
            }
            Event::MessageStop => self.close(out)?,
            Event::Error { error } => {
                let error = embedded_error(&error, event.data.as_bytes());
                self.sink
                    .chunk(ChatChunk::error(error.openai_object()), out)?;
                self.phase = Phase::Closed;
            }
            Event::Other => {}
        }
        Ok(())
    }

    /// The end of a complete answer: the usage chunk when asked for, then `[DONE]`.
    fn close(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if self.include_usage {
            let mut chunk = ChatChunk::new(&self.id, self.created, &self.model, Vec::new());
            chunk.usage = Some(Some(self.usage.to_chat()));
            self.sink.chunk(chunk, out)?;
        }
        self.phase = Phase::Closed;
        self.sink.done(out)
    }
}

impl<S: ChatSink> EventTranslator for StreamToChat<S> {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.on_event(event, out)
    }

    /// Once the stop reason is in, every block is complete.
    fn take_reasoning(&mut self) -> Option<TurnReasoning> {
        if !self.finish_sent {
            return None;
        }
        let first_call = self.first_call.take();
        TurnReasoning::of(&std::mem::take(&mut self.issued), first_call)
    }

    /// A stream whose `message_delta` (with the stop reason) arrived is completed even without
    /// `message_stop`; one cut before it gets no invented finish reason and fails.
    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        match (&self.phase, self.finish_sent, self.started) {
            (Phase::Closed, _, _) => {}
            (Phase::Live, true, _) => self.close(out)?,
            (Phase::Live, false, false) => {
                return Err(protocol_error("the Anthropic stream ended before it began"))
            }
            (Phase::Live, false, true) => {
                return Err(protocol_error(
                    "the Anthropic stream ended before its stop reason",
                ))
            }
        }
        self.sink.end(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "response_tests.rs"]
mod tests;
