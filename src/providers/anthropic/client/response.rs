//! OpenAI answer → Anthropic message, whole (D2) or streamed (D3), for Anthropic clients on
//! models served in OpenAI's format.
//!
//! The non-standard `reasoning_content` / `reasoning` of compat hosts becomes a thinking block
//! without a signature (there is none to give). When tool calls were made but the upstream
//! reports a plain `stop` (some compat hosts do), the stop reason is `tool_use`, since that is
//! what makes Anthropic clients run the tools.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::dialect::Dialect;
use crate::error::GatewayError;
use crate::providers::anthropic::{put_event, sanitize_tool_id, synthesize_tool_id};
use crate::providers::errors::{openai_error, protocol_error};
use crate::providers::events::{EventTranslator, Events};
use crate::providers::json::to_bytes;
use crate::providers::tool_calls::{absorb, Call, Function, ToolCall};
use crate::providers::ResponseTranslator;
use crate::sse::SseEvent;

/// Translator for an OpenAI answer (JSON, or SSE incl. the include_usage chunk and `[DONE]`) →
/// Anthropic message JSON or the full Anthropic SSE sequence (`message_start`,
/// `content_block_start`/`delta`/`stop` for text and tool_use with `input_json_delta`,
/// `message_delta` with stop_reason and usage, `message_stop`). `client_model` goes in `model`.
pub fn from_chat(stream: bool, client_model: &str) -> Box<dyn ResponseTranslator> {
    if stream {
        Box::new(StreamToAnthropic::new(client_model))
    } else {
        Box::new(JsonToAnthropic::new(client_model))
    }
}

// ---- wire types -----------------------------------------------------------------------------

#[derive(Deserialize)]
struct Completion {
    id: Option<String>,
    choices: Option<Vec<Choice>>,
    usage: Option<Usage>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(alias = "delta")]
    message: Option<Reply>,
    finish_reason: Option<String>,
    index: Option<u64>,
}

/// A `message` (whole answer) or a `delta` (chunk): the same fields, all optional.
#[derive(Deserialize, Default)]
struct Reply {
    content: Option<String>,
    reasoning_content: Option<String>,
    reasoning: Option<String>,
    refusal: Option<String>,
    tool_calls: Option<Vec<ToolCall>>,
}

#[derive(Deserialize, Clone, Copy, Default)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize, Clone, Copy, Default)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

impl Usage {
    /// Anthropic usage (D2): input excludes cached tokens; OpenAI reports no cache writes.
    fn to_anthropic(self) -> Value {
        let cached = self
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0);
        json!({
            "input_tokens": self.prompt_tokens.saturating_sub(cached),
            "output_tokens": self.completion_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached,
        })
    }
}

/// `finish_reason` → `stop_reason` (D2 table); `refusal` rather than LiteLLM's `end_turn` for
/// content filtering, because it tells Claude Code what happened.
pub(super) fn stop_reason(finish_reason: Option<&str>, made_tool_calls: bool) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ if made_tool_calls => "tool_use",
        _ => "end_turn",
    }
}

/// An id in Anthropic's message-id form, keeping the upstream's.
fn message_id(upstream: Option<&str>) -> String {
    match upstream.filter(|id| !id.is_empty()) {
        Some(id) => format!("msg_{}", sanitize_tool_id(id)),
        None => format!("msg_{}", crate::ids::random_hex()),
    }
}

/// A tool-call id as Anthropic accepts it; synthesized when the upstream gave none.
fn tool_id(upstream: &str) -> String {
    if upstream.is_empty() {
        synthesize_tool_id()
    } else {
        sanitize_tool_id(upstream)
    }
}

// ---- whole answer ---------------------------------------------------------------------------

/// Buffers an OpenAI `chat.completion` and writes the Anthropic message at the end.
pub(super) struct JsonToAnthropic {
    body: Vec<u8>,
    model: String,
}

impl JsonToAnthropic {
    pub(super) fn new(model: &str) -> Self {
        Self {
            body: Vec::new(),
            model: model.to_string(),
        }
    }
}

impl ResponseTranslator for JsonToAnthropic {
    fn push(&mut self, chunk: &[u8], _out: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.body.extend_from_slice(chunk);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let completion: Completion = serde_json::from_slice(&self.body)
            .map_err(|e| protocol_error(format!("unreadable OpenAI-format answer: {e}")))?;
        if let Some(error) = &completion.error {
            return Err(openai_error(error));
        }
        out.extend(to_bytes(&message(completion, &self.model))?);
        Ok(())
    }
}

/// An OpenAI completion as an Anthropic message (D2): thinking, text, then tool_use blocks.
fn message(completion: Completion, model: &str) -> Value {
    let choice = completion.choices.and_then(|c| c.into_iter().next());
    let (reply, finish) = match choice {
        Some(c) => (c.message.unwrap_or_default(), c.finish_reason),
        None => (Reply::default(), None),
    };
    let mut content = Vec::new();
    if let Some(thinking) = reply
        .reasoning_content
        .or(reply.reasoning)
        .filter(|t| !t.is_empty())
    {
        content.push(json!({"type": "thinking", "thinking": thinking, "signature": ""}));
    }
    if let Some(text) = reply.content.or(reply.refusal).filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": text}));
    }
    let calls = reply.tool_calls.unwrap_or_default();
    let made_calls = !calls.is_empty();
    for call in calls {
        let function = call.function.unwrap_or(Function {
            name: None,
            arguments: None,
        });
        // Arguments that are not a JSON object cannot be an Anthropic `input` (D2: `{}`).
        let input = function
            .arguments
            .as_deref()
            .and_then(|a| serde_json::from_str::<Value>(a).ok())
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        content.push(json!({
            "type": "tool_use",
            "id": tool_id(call.id.as_deref().unwrap_or("")),
            "name": function.name.unwrap_or_default(),
            "input": input,
        }));
    }
    json!({
        "id": message_id(completion.id.as_deref()),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(finish.as_deref(), made_calls),
        "stop_sequence": null,
        "usage": completion.usage.unwrap_or_default().to_anthropic(),
    })
}

// ---- stream ---------------------------------------------------------------------------------

/// The kind of a text-like content block.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Thinking,
}

/// The content block currently open on the client stream.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Plain(Kind),
    /// The tool call with this OpenAI `tool_calls` index.
    Tool(usize),
}

#[derive(PartialEq, Eq)]
enum Phase {
    Live,
    /// `message_stop` or an error event written: input is ignored.
    Closed,
}

/// OpenAI SSE chunks → the Anthropic event sequence (D3).
///
/// Anthropic streams one block at a time. The first tool call streams live; fragments of any
/// other call, and text or thinking, that arrive while a tool block is open are buffered and
/// written as contiguous blocks once the upstream gives its finish reason. So an upstream that
/// interleaves parallel calls still yields well-formed blocks, and the common sequential one
/// loses only the live streaming of its later calls.
pub(super) struct StreamToAnthropic {
    model: String,
    started: bool,
    open: Open,
    next_block: usize,
    calls: Vec<Call>,
    /// Text and thinking held back while a tool block was open, in arrival order.
    held: Vec<(Kind, String)>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    phase: Phase,
}

impl StreamToAnthropic {
    pub(super) fn new(model: &str) -> Events<Self> {
        Events::new(Self {
            model: model.to_string(),
            started: false,
            open: Open::None,
            next_block: 0,
            calls: Vec::new(),
            held: Vec::new(),
            finish_reason: None,
            usage: None,
            phase: Phase::Live,
        })
    }

    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if self.phase == Phase::Closed {
            return Ok(());
        }
        if event.data.trim() == "[DONE]" {
            return self.complete(out);
        }
        let chunk: Completion = serde_json::from_str(&event.data)
            .map_err(|e| protocol_error(format!("unreadable OpenAI-format stream chunk: {e}")))?;
        if let Some(error) = &chunk.error {
            out.extend_from_slice(&openai_error(error).sse_event(Dialect::Anthropic));
            self.phase = Phase::Closed;
            return Ok(());
        }
        if !self.started {
            self.started = true;
            let start = json!({
                "type": "message_start",
                "message": {
                    "id": message_id(chunk.id.as_deref()),
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": self.model,
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                },
            });
            put_event(out, Some("message_start"), &start)?;
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        // Only the first choice: the request never asks for more.
        for choice in chunk.choices.unwrap_or_default() {
            if choice.index.unwrap_or(0) != 0 {
                continue;
            }
            if let Some(delta) = choice.message {
                if let Some(thinking) = delta
                    .reasoning_content
                    .or(delta.reasoning)
                    .filter(|t| !t.is_empty())
                {
                    self.on_plain(Kind::Thinking, &thinking, out)?;
                }
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    self.on_plain(Kind::Text, &text, out)?;
                }
                for call in delta.tool_calls.unwrap_or_default() {
                    self.on_tool_call(call, out)?;
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.flush(out)?;
                self.finish_reason = Some(reason);
            }
        }
        Ok(())
    }

    fn start_block(&mut self, out: &mut Vec<u8>, block: Value) -> Result<usize, GatewayError> {
        let index = self.next_block;
        self.next_block += 1;
        put_event(
            out,
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        )?;
        Ok(index)
    }

    fn block_delta(&self, out: &mut Vec<u8>, delta: Value) -> Result<(), GatewayError> {
        let index = self.next_block.saturating_sub(1);
        put_event(
            out,
            Some("content_block_delta"),
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        )
    }

    fn close_open(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if self.open != Open::None {
            let index = self.next_block.saturating_sub(1);
            put_event(
                out,
                Some("content_block_stop"),
                &json!({"type": "content_block_stop", "index": index}),
            )?;
            self.open = Open::None;
        }
        Ok(())
    }

    /// Text or thinking: into the open block of its kind, a new block, or held back while a
    /// tool block is open.
    fn on_plain(&mut self, kind: Kind, text: &str, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        match self.open {
            Open::Tool(_) => match self.held.last_mut() {
                Some((k, held)) if *k == kind => held.push_str(text),
                _ => self.held.push((kind, text.to_string())),
            },
            Open::Plain(k) if k == kind => self.plain_delta(kind, text, out)?,
            Open::None | Open::Plain(_) => {
                self.close_open(out)?;
                let block = match kind {
                    Kind::Text => json!({"type": "text", "text": ""}),
                    // No signature will follow: the empty one keeps the block well-formed.
                    Kind::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
                };
                self.start_block(out, block)?;
                self.open = Open::Plain(kind);
                self.plain_delta(kind, text, out)?;
            }
        }
        Ok(())
    }

    fn plain_delta(&self, kind: Kind, text: &str, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let delta = match kind {
            Kind::Text => json!({"type": "text_delta", "text": text}),
            Kind::Thinking => json!({"type": "thinking_delta", "thinking": text}),
        };
        self.block_delta(out, delta)
    }

    /// A tool-call fragment: streamed into its open block, or opens its block when no tool
    /// block is open and its name is known, or is buffered.
    fn on_tool_call(&mut self, fragment: ToolCall, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let (position, args) = absorb(&mut self.calls, fragment);
        let call = &mut self.calls[position];
        let index = call.index;
        if self.open == Open::Tool(index) {
            if !args.is_empty() {
                self.block_delta(
                    out,
                    json!({"type": "input_json_delta", "partial_json": args}),
                )?;
            }
            return Ok(());
        }
        if call.emitted {
            // A repeat of a finished call's id or name is harmless; more arguments are not.
            if args.is_empty() {
                return Ok(());
            }
            return Err(protocol_error(format!(
                "tool call {index} continued after its block was closed"
            )));
        }
        call.args.push_str(&args);
        if matches!(self.open, Open::Tool(_)) || call.name.is_empty() {
            return Ok(());
        }
        self.close_open(out)?;
        self.open_call(position, out)?;
        self.open = Open::Tool(index);
        Ok(())
    }

    /// Starts the block of `calls[position]` and writes its buffered arguments.
    fn open_call(&mut self, position: usize, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let Some(call) = self.calls.get_mut(position) else {
            return Ok(());
        };
        call.emitted = true;
        let block =
            json!({"type": "tool_use", "id": tool_id(&call.id), "name": call.name, "input": {}});
        let args = std::mem::take(&mut call.args);
        self.start_block(out, block)?;
        if !args.is_empty() {
            self.block_delta(
                out,
                json!({"type": "input_json_delta", "partial_json": args}),
            )?;
        }
        Ok(())
    }

    /// Closes the open block and writes everything buffered, each as a whole block: pending
    /// tool calls in index order, then held text and thinking.
    fn flush(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.close_open(out)?;
        let mut pending: Vec<usize> = (0..self.calls.len())
            .filter(|p| !self.calls[*p].emitted)
            .collect();
        pending.sort_by_key(|p| self.calls[*p].index);
        for position in pending {
            self.open_call(position, out)?;
            self.open = Open::Tool(self.calls[position].index);
            self.close_open(out)?;
        }
        for (kind, text) in std::mem::take(&mut self.held) {
            self.on_plain(kind, &text, out)?;
        }
        self.close_open(out)
    }

    /// The end of a complete answer: `message_delta` with the stop reason and usage, then
    /// `message_stop`. Input tokens are only known now, so they go in `message_delta.usage`
    /// (`message_start` said 0), as newer Anthropic streams do.
    fn complete(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if !self.started {
            return Err(protocol_error(
                "the OpenAI-format stream ended before it began",
            ));
        }
        self.flush(out)?;
        let made_calls = self.calls.iter().any(|c| c.emitted);
        let delta = json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(self.finish_reason.as_deref(), made_calls), "stop_sequence": null},
            "usage": self.usage.unwrap_or_default().to_anthropic(),
        });
        put_event(out, Some("message_delta"), &delta)?;
        put_event(out, Some("message_stop"), &json!({"type": "message_stop"}))?;
        self.phase = Phase::Closed;
        Ok(())
    }
}

impl EventTranslator for StreamToAnthropic {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.on_event(event, out)
    }

    /// Without `[DONE]`: a stream that gave its finish reason is completed; one cut before it
    /// gets its open block closed but no invented stop reason, and fails.
    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if self.phase == Phase::Closed {
            return Ok(());
        }
        if self.finish_reason.is_some() {
            return self.complete(out);
        }
        if !self.started {
            return Err(protocol_error(
                "the OpenAI-format stream ended before it began",
            ));
        }
        self.close_open(out)?;
        Err(protocol_error(
            "the OpenAI-format stream ended before its finish reason",
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "response_tests.rs"]
mod tests;
