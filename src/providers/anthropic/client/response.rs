//! Chat answer → Anthropic message, whole (D2) or streamed (D3), for Anthropic clients on
//! models served in another format: [`ToAnthropic`] is the [`ChatSink`] every such answer
//! reaches, typed (from the Gemini side) or read from an OpenAI-format provider's bytes.
//!
//! The non-standard `reasoning_content` / `reasoning` of compat hosts becomes a thinking block
//! without a signature (there is none to give). When tool calls were made but the upstream
//! reports a plain `stop` (some compat hosts do), the stop reason is `tool_use`, since that is
//! what makes Anthropic clients run the tools.

use serde_json::{json, Value};

use crate::dialect::Dialect;
use crate::error::GatewayError;
use crate::providers::anthropic::{put_event, sanitize_tool_id, synthesize_tool_id};
use crate::providers::chat::{
    read, reasoning_text, ChatChunk, ChatCompletion, ChatMessage, ChatSink, ChatToolCall, ChatUsage,
};
use crate::providers::errors::{openai_error, protocol_error};
use crate::providers::json::to_bytes;
use crate::providers::tool_calls::{absorb, Call};
use crate::providers::ResponseTranslator;

/// Translator for an OpenAI-format provider's answer (JSON, or SSE incl. the include_usage
/// chunk and `[DONE]`) → Anthropic message JSON or the full Anthropic SSE sequence
/// (`message_start`, `content_block_start`/`delta`/`stop` for text and tool_use with
/// `input_json_delta`, `message_delta` with stop_reason and usage, `message_stop`).
/// `client_model` goes in `model`. Other providers' answers reach [`ToAnthropic`] typed.
pub fn from_chat(stream: bool, client_model: &str) -> Box<dyn ResponseTranslator> {
    read(stream, ToAnthropic::new(client_model))
}

/// Anthropic usage (D2): input excludes cached tokens; OpenAI reports no cache writes.
fn anthropic_usage(usage: ChatUsage) -> Value {
    let cached = usage.cached_tokens();
    json!({
        "input_tokens": usage.prompt_tokens.saturating_sub(cached),
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    })
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
fn message_id(upstream: &str) -> String {
    if upstream.is_empty() {
        format!("msg_{}", crate::ids::random_hex())
    } else {
        format!("msg_{}", sanitize_tool_id(upstream))
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

/// An OpenAI completion as an Anthropic message (D2): thinking, text, then tool_use blocks.
fn message(completion: ChatCompletion, model: &str) -> Value {
    let choice = completion.choices.into_iter().next();
    let (reply, finish) = match choice {
        Some(c) => (c.message, c.finish_reason),
        None => (ChatMessage::default(), None),
    };
    let mut content = Vec::new();
    if let Some(thinking) = reasoning_text(reply.reasoning_content, reply.reasoning) {
        content.push(json!({"type": "thinking", "thinking": thinking, "signature": ""}));
    }
    if let Some(text) = reply.content.or(reply.refusal).filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": text}));
    }
    let calls = reply.tool_calls;
    let made_calls = !calls.is_empty();
    for call in calls {
        let function = call.function.unwrap_or_default();
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
        "id": message_id(&completion.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(finish.as_deref(), made_calls),
        "stop_sequence": null,
        "usage": anthropic_usage(completion.usage.unwrap_or_default()),
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

/// Chat values → the Anthropic message (D2) or event sequence (D3): the client side of every
/// answer an Anthropic client gets from a provider of another format.
///
/// Anthropic streams one block at a time. The first tool call streams live; fragments of any
/// other call, and text or thinking, that arrive while a tool block is open are buffered and
/// written as contiguous blocks once the upstream gives its finish reason. So an upstream that
/// interleaves parallel calls still yields well-formed blocks, and the common sequential one
/// loses only the live streaming of its later calls.
pub struct ToAnthropic {
    model: String,
    started: bool,
    open: Open,
    next_block: usize,
    calls: Vec<Call>,
    /// Text and thinking held back while a tool block was open, in arrival order.
    held: Vec<(Kind, String)>,
    finish_reason: Option<String>,
    usage: Option<ChatUsage>,
    phase: Phase,
}

impl ToAnthropic {
    /// The client side for a client that named `model`.
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_string(),
            started: false,
            open: Open::None,
            next_block: 0,
            calls: Vec::new(),
            held: Vec::new(),
            finish_reason: None,
            usage: None,
            phase: Phase::Live,
        }
    }

    fn on_chunk(&mut self, chunk: ChatChunk<'_>, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if self.phase == Phase::Closed {
            return Ok(());
        }
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
                    "id": message_id(&chunk.id),
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
        if let Some(usage) = chunk.usage() {
            self.usage = Some(usage);
        }
        // Only the first choice: the request never asks for more.
        for choice in chunk.choices {
            if choice.index != 0 {
                continue;
            }
            let delta = choice.delta;
            if let Some(thinking) = reasoning_text(delta.reasoning_content, delta.reasoning) {
                self.on_plain(Kind::Thinking, &thinking, out)?;
            }
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                self.on_plain(Kind::Text, &text, out)?;
            }
            for call in delta.tool_calls {
                self.on_tool_call(call, out)?;
            }
            if let Some(reason) = choice.finish_reason {
                self.flush(out)?;
                self.finish_reason = Some(reason.into_owned());
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
    fn on_tool_call(
        &mut self,
        fragment: ChatToolCall,
        out: &mut Vec<u8>,
    ) -> Result<(), GatewayError> {
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
            "usage": anthropic_usage(self.usage.unwrap_or_default()),
        });
        put_event(out, Some("message_delta"), &delta)?;
        put_event(out, Some("message_stop"), &json!({"type": "message_stop"}))?;
        self.phase = Phase::Closed;
        Ok(())
    }
}

impl ChatSink for ToAnthropic {
    fn whole(&mut self, answer: ChatCompletion, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        out.extend(to_bytes(&message(answer, &self.model))?);
        Ok(())
    }

    fn chunk(&mut self, chunk: ChatChunk<'_>, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.on_chunk(chunk, out)
    }

    fn done(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if self.phase == Phase::Closed {
            return Ok(());
        }
        self.complete(out)
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
