//! Anthropic answer → OpenAI chat completion, whole (B1) or streamed (B2).
//!
//! Thinking is passed on as the non-standard `reasoning_content` (what DeepSeek-style clients
//! read; the OpenAI SDKs ignore it); signatures and redacted thinking are dropped, as are
//! server-tool blocks (`server_tool_use`, `web_search_tool_result`), which have no OpenAI form.
//! The gateway's own [`JSON_OUTPUT_TOOL`] call becomes the message content.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{status_of_anthropic_type, upstream_error, ANTHROPIC, JSON_OUTPUT_TOOL};
use crate::clock::unix_secs;
use crate::dialect::Dialect;
use crate::error::GatewayError;
use crate::providers::anthropic::put_event;
use crate::providers::errors::protocol_error;
use crate::providers::events::{EventTranslator, Events};
use crate::providers::json::to_bytes;
use crate::providers::ResponseTranslator;
use crate::sse::SseEvent;

/// Translator for an Anthropic answer (JSON when `!stream`, SSE when `stream`) → OpenAI
/// `chat.completion` / `chat.completion.chunk` stream ending in `data: [DONE]`. `client_model`
/// is put in `model`. The usage-only final chunk (`choices:[]`) is emitted iff `include_usage`
/// (the client's `stream_options.include_usage`). Usage maps incl. cache tokens
/// (`prompt_tokens` = input + cache_creation + cache_read; `cached_tokens` = cache_read).
pub fn to_chat(
    stream: bool,
    client_model: &str,
    include_usage: bool,
) -> Box<dyn ResponseTranslator> {
    let created = unix_secs();
    if stream {
        Box::new(StreamToOpenAi::new(client_model, include_usage, created))
    } else {
        Box::new(JsonToOpenAi::new(client_model, created))
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
    }

    /// OpenAI usage (B1): prompt includes cached tokens, as OpenAI's does; the raw cache-write
    /// count is kept as an extension field for billing.
    fn to_openai(self) -> Value {
        let cache_read = self.cache_read_input_tokens.unwrap_or(0);
        let cache_creation = self.cache_creation_input_tokens.unwrap_or(0);
        let prompt = self
            .input_tokens
            .unwrap_or(0)
            .saturating_add(cache_read)
            .saturating_add(cache_creation);
        let completion = self.output_tokens.unwrap_or(0);
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt.saturating_add(completion),
            "prompt_tokens_details": {"cached_tokens": cache_read},
            "cache_creation_input_tokens": cache_creation,
        })
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
    MessageStop,
    Error {
        #[serde(default)]
        error: Value,
    },
    /// `ping`, `content_block_stop` and future event types: nothing to emit.
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
    /// `signature_delta`, `citations_delta`: no OpenAI form.
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

/// Buffers an Anthropic message and writes the OpenAI `chat.completion` at the end.
pub(super) struct JsonToOpenAi {
    body: Vec<u8>,
    model: String,
    created: u64,
}

impl JsonToOpenAi {
    pub(super) fn new(model: &str, created: u64) -> Self {
        Self {
            body: Vec::new(),
            model: model.to_string(),
            created,
        }
    }
}

impl ResponseTranslator for JsonToOpenAi {
    fn push(&mut self, chunk: &[u8], _out: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.body.extend_from_slice(chunk);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let message: Message = serde_json::from_slice(&self.body)
            .map_err(|e| protocol_error(format!("unreadable Anthropic answer: {e}")))?;
        if message.kind == "error" {
            let error: Value = serde_json::from_slice(&self.body).unwrap_or_default();
            return Err(embedded_error(&error["error"], &self.body));
        }
        out.extend(to_bytes(&completion(message, &self.model, self.created))?);
        Ok(())
    }
}

/// An Anthropic message as an OpenAI `chat.completion` (B1).
fn completion(message: Message, model: &str, created: u64) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut json_output = None;
    let mut tool_calls = Vec::new();
    for block in message.content {
        match block {
            Block::Text { text: t } => text.push_str(&t),
            Block::Thinking { thinking } => reasoning.push_str(&thinking),
            Block::ToolUse { input, name, .. } if name == JSON_OUTPUT_TOOL => {
                json_output = Some(input.to_string())
            }
            Block::ToolUse { id, name, input } => {
                let input = if input.is_null() { json!({}) } else { input };
                tool_calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": input.to_string()},
                }));
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
        Some(json) => Value::String(json),
        None if text.is_empty() && !tool_calls.is_empty() => Value::Null,
        None => Value::String(text),
    };
    let mut reply = json!({"role": "assistant", "content": content, "refusal": null});
    if !tool_calls.is_empty() {
        reply["tool_calls"] = Value::Array(tool_calls);
    }
    if !reasoning.is_empty() {
        reply["reasoning_content"] = reasoning.into();
    }
    json!({
        "id": format!("chatcmpl-{}", message.id),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": reply, "logprobs": null, "finish_reason": finish}],
        "usage": message.usage.to_openai(),
    })
}

// ---- stream ---------------------------------------------------------------------------------

/// What an Anthropic content block becomes in OpenAI chunks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BlockRole {
    /// Text and thinking: deltas are mapped by their own type.
    Plain,
    /// A client tool call with this OpenAI `tool_calls` index.
    Tool(usize),
    /// The forced JSON-output tool: its input fragments are content.
    JsonOutput,
}

#[derive(PartialEq, Eq)]
enum Phase {
    /// Reading events.
    Live,
    /// `message_stop` seen and `[DONE]` written, or an error event written: input is ignored.
    Closed,
}

/// Anthropic SSE → OpenAI `chat.completion.chunk` events (B2).
pub(super) struct StreamToOpenAi {
    model: String,
    created: u64,
    include_usage: bool,
    id: String,
    usage: Usage,
    /// Anthropic block index → its role.
    blocks: Vec<(usize, BlockRole)>,
    tool_calls: usize,
    started: bool,
    finish_sent: bool,
    phase: Phase,
}

impl StreamToOpenAi {
    pub(super) fn new(model: &str, include_usage: bool, created: u64) -> Events<Self> {
        Events::new(Self {
            model: model.to_string(),
            created,
            include_usage,
            id: String::new(),
            usage: Usage::default(),
            blocks: Vec::new(),
            tool_calls: 0,
            started: false,
            finish_sent: false,
            phase: Phase::Live,
        })
    }

    fn chunk(
        &self,
        out: &mut Vec<u8>,
        delta: Value,
        finish: Option<&str>,
    ) -> Result<(), GatewayError> {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        put_event(out, None, &chunk)
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
                self.chunk(out, json!({"role": "assistant", "content": ""}), None)?;
            }
            Event::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                Block::Text { text } => {
                    self.blocks.push((index, BlockRole::Plain));
                    if !text.is_empty() {
                        self.chunk(out, json!({"content": text}), None)?;
                    }
                }
                Block::Thinking { thinking } => {
                    self.blocks.push((index, BlockRole::Plain));
                    if !thinking.is_empty() {
                        self.chunk(out, json!({"reasoning_content": thinking}), None)?;
                    }
                }
                Block::ToolUse { name, .. } if name == JSON_OUTPUT_TOOL => {
                    self.blocks.push((index, BlockRole::JsonOutput));
                }
                Block::ToolUse { id, name, .. } => {
                    let k = self.tool_calls;
                    self.tool_calls += 1;
                    self.blocks.push((index, BlockRole::Tool(k)));
                    let call = json!({"index": k, "id": id, "type": "function", "function": {"name": name, "arguments": ""}});
                    self.chunk(out, json!({"tool_calls": [call]}), None)?;
                }
                Block::Other => {}
            },
            Event::ContentBlockDelta { index, delta } => match (self.role_of(index), delta) {
                (_, BlockDelta::TextDelta { text }) if !text.is_empty() => {
                    self.chunk(out, json!({"content": text}), None)?;
                }
                (_, BlockDelta::ThinkingDelta { thinking }) if !thinking.is_empty() => {
                    self.chunk(out, json!({"reasoning_content": thinking}), None)?;
                }
                (Some(BlockRole::Tool(k)), BlockDelta::InputJsonDelta { partial_json })
                    if !partial_json.is_empty() =>
                {
                    let call = json!({"index": k, "function": {"arguments": partial_json}});
                    self.chunk(out, json!({"tool_calls": [call]}), None)?;
                }
                (Some(BlockRole::JsonOutput), BlockDelta::InputJsonDelta { partial_json })
                    if !partial_json.is_empty() =>
                {
                    self.chunk(out, json!({"content": partial_json}), None)?;
                }
                _ => {}
            },
            Event::MessageDelta { delta, usage } => {
                self.usage.update(usage);
                let finish = match (delta.stop_reason.as_deref(), self.tool_calls) {
                    (Some("tool_use"), 0) => "stop",
                    (reason, _) => finish_reason(reason),
                };
                self.chunk(out, json!({}), Some(finish))?;
                self.finish_sent = true;
            }
            Event::MessageStop => self.close(out)?,
            Event::Error { error } => {
                out.extend_from_slice(
                    &embedded_error(&error, event.data.as_bytes()).sse_event(Dialect::OpenAi),
                );
                self.phase = Phase::Closed;
            }
            Event::Other => {}
        }
        Ok(())
    }

    /// The end of a complete answer: the usage chunk when asked for, then `[DONE]`.
    fn close(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if self.include_usage {
            let chunk = json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": self.usage.to_openai(),
            });
            put_event(out, None, &chunk)?;
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.phase = Phase::Closed;
        Ok(())
    }
}

impl EventTranslator for StreamToOpenAi {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.on_event(event, out)
    }

    /// A stream whose `message_delta` (with the stop reason) arrived is completed even without
    /// `message_stop`; one cut before it gets no invented finish reason and fails.
    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        match (&self.phase, self.finish_sent, self.started) {
            (Phase::Closed, _, _) => Ok(()),
            (Phase::Live, true, _) => self.close(out),
            (Phase::Live, false, false) => {
                Err(protocol_error("the Anthropic stream ended before it began"))
            }
            (Phase::Live, false, true) => Err(protocol_error(
                "the Anthropic stream ended before its stop reason",
            )),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "response_tests.rs"]
mod tests;
