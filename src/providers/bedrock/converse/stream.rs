//! ConverseStream's answer (AWS's event stream, framing undone by [`Frames`]) → chat chunks
//! for a [`ChatSink`] (docs/translation.md F2).
//!
//! Each frame's `:event-type` names a Converse event and its payload is that event's JSON
//! (not base64-wrapped, unlike InvokeModel's chunks; AWS pads it with a `p` field, ignored):
//! - `messageStart` → the role delta (`{"role":"assistant","content":""}`);
//! - `contentBlockStart` `{start: {toolUse: {toolUseId, name}}, contentBlockIndex}` → a tool
//!   call's first fragment (its id, name and `""` arguments);
//! - `contentBlockDelta` `{delta: {text} | {toolUse: {input}} | {reasoningContent: {text} |
//!   {signature}}, contentBlockIndex}` → `content`, the call's next `arguments` text (partial
//!   JSON as it came), `reasoning_content`; a signature is kept for the block's end;
//! - `contentBlockStop` → a signed reasoning block, whole, as a thinking block;
//! - `messageStop` `{stopReason}` → the finish reason (see [`super::response::finish_reason`]);
//! - `metadata` `{usage, metrics}` → the usage, sent as the last chunk (`choices: []`; every
//!   other chunk has `"usage": null`, as usage is always asked of a translated upstream),
//!   then `[DONE]` once the body ends.
//!
//! An `exception` frame ends the translation with the error it names (its status by type,
//! as InvokeModel's do); a body that ends inside a frame or before `messageStop` is a
//! protocol error: the client's stream then ends with an error event in its dialect.

use serde::Deserialize;
use serde_json::Value;

use super::response::{arguments, finish_reason, Usage};
use super::Stamp;
use crate::error::GatewayError;
use crate::providers::bedrock::stream::{event, Frames};
use crate::providers::chat::{
    ChatChunk, ChatChunkChoice, ChatDelta, ChatSink, ChatToolCall, ChatUsage, ThinkingBlock,
};
use crate::providers::errors::protocol_error;
use crate::providers::ResponseTranslator;

// ---------------------------------------------------------------- wire types (read only)

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct BlockStart {
    start: Start,
    content_block_index: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Start {
    tool_use: Option<ToolStart>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ToolStart {
    tool_use_id: String,
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct BlockDelta {
    delta: Delta,
    content_block_index: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Delta {
    text: Option<String>,
    tool_use: Option<ToolDelta>,
    reasoning_content: Option<ReasoningDelta>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ToolDelta {
    input: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ReasoningDelta {
    text: Option<String>,
    signature: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct BlockStop {
    content_block_index: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct MessageStop {
    stop_reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Metadata {
    usage: Option<Usage>,
}

// ---------------------------------------------------------------- the translator

/// A reasoning block in progress: its text so far and its signature once sent.
struct Reasoning {
    block: u32,
    text: String,
    signature: Option<String>,
}

/// ConverseStream in, chat chunks out.
pub(super) struct StreamTranslator<S> {
    frames: Frames,
    sink: S,
    stamp: Stamp,
    client_model: String,
    /// The role delta went out.
    started: bool,
    /// Tool-use blocks by content block index → their tool call's index.
    calls: Vec<(u32, usize)>,
    reasoning: Vec<Reasoning>,
    /// `messageStop` came: the answer is complete.
    stopped: bool,
    usage: Option<Usage>,
    /// An exception ended the stream: nothing more is read.
    failed: bool,
}

impl<S: ChatSink> StreamTranslator<S> {
    pub(super) fn new(client_model: &str, stamp: Stamp, sink: S) -> Self {
        Self {
            frames: Frames::default(),
            sink,
            stamp,
            client_model: client_model.to_string(),
            started: false,
            calls: Vec::new(),
            reasoning: Vec::new(),
            stopped: false,
            usage: None,
            failed: false,
        }
    }

    /// One Converse event.
    fn on_event(
        &mut self,
        kind: &str,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), GatewayError> {
        match kind {
            "messageStart" => self.start(out),
            "contentBlockStart" => {
                let event: BlockStart = parse(kind, payload)?;
                self.start(out)?;
                let Some(tool) = event.start.tool_use else {
                    return Ok(());
                };
                let index = self.calls.len();
                self.calls.push((event.content_block_index, index));
                let call =
                    ChatToolCall::function(Some(index), tool.tool_use_id, tool.name, String::new());
                self.write(out, ChatDelta::tool_call(call))
            }
            "contentBlockDelta" => {
                let event: BlockDelta = parse(kind, payload)?;
                self.start(out)?;
                self.delta(event, out)
            }
            "contentBlockStop" => {
                let event: BlockStop = parse(kind, payload)?;
                let Some(at) = self
                    .reasoning
                    .iter()
                    .position(|r| r.block == event.content_block_index)
                else {
                    return Ok(());
                };
                let reasoning = self.reasoning.swap_remove(at);
                match reasoning.signature {
                    Some(signature) => self.write(
                        out,
                        ChatDelta::thinking_block(ThinkingBlock::Thinking {
                            thinking: reasoning.text,
                            signature,
                        }),
                    ),
                    None => Ok(()),
                }
            }
            "messageStop" => {
                let event: MessageStop = parse(kind, payload)?;
                self.start(out)?;
                self.stopped = true;
                let reason = finish_reason(event.stop_reason.as_deref().unwrap_or("end_turn"));
                self.write_chunk(out, vec![ChatChunkChoice::finish(0, reason)], None)
            }
            "metadata" => {
                let event: Metadata = parse(kind, payload)?;
                self.usage = event.usage.or(self.usage);
                Ok(())
            }
            // nothing else carries what a client reads
            _ => Ok(()),
        }
    }

    fn delta(&mut self, event: BlockDelta, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let block = event.content_block_index;
        if let Some(text) = event.delta.text {
            return match text.is_empty() {
                true => Ok(()),
                false => self.write(out, ChatDelta::content(text)),
            };
        }
        if let Some(tool) = event.delta.tool_use {
            let index = self
                .calls
                .iter()
                .find(|(b, _)| *b == block)
                .map(|(_, index)| *index)
                .ok_or_else(|| {
                    protocol_error("Bedrock sent tool input for a block it never started")
                })?;
            let input = match tool.input {
                Some(Value::String(s)) => s,
                Some(Value::Null) | None => String::new(),
                Some(other) => arguments(Some(other)),
            };
            if input.is_empty() {
                return Ok(());
            }
            return self.write(
                out,
                ChatDelta::tool_call(ChatToolCall::arguments(index, input)),
            );
        }
        let Some(reasoning) = event.delta.reasoning_content else {
            return Ok(());
        };
        let slot = match self.reasoning.iter().position(|r| r.block == block) {
            Some(slot) => slot,
            None => {
                self.reasoning.push(Reasoning {
                    block,
                    text: String::new(),
                    signature: None,
                });
                self.reasoning.len() - 1
            }
        };
        if let Some(signature) = reasoning.signature {
            self.reasoning[slot].signature = Some(signature);
        }
        match reasoning.text.filter(|t| !t.is_empty()) {
            Some(text) => {
                self.reasoning[slot].text.push_str(&text);
                self.write(out, ChatDelta::reasoning(text))
            }
            None => Ok(()),
        }
    }

    /// The role delta, once.
    fn start(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        self.write(out, ChatDelta::start())
    }

    fn write(&mut self, out: &mut Vec<u8>, delta: ChatDelta) -> Result<(), GatewayError> {
        self.write_chunk(out, vec![ChatChunkChoice::delta(0, delta)], None)
    }

    /// A chunk: `"usage": null` but on the last one, which carries it.
    fn write_chunk(
        &mut self,
        out: &mut Vec<u8>,
        choices: Vec<ChatChunkChoice>,
        usage: Option<ChatUsage>,
    ) -> Result<(), GatewayError> {
        let mut chunk = ChatChunk::new(
            &self.stamp.id,
            self.stamp.created,
            &self.client_model,
            choices,
        );
        chunk.usage = Some(usage);
        self.sink.chunk(chunk, out)
    }
}

/// An event's payload.
fn parse<T: for<'de> Deserialize<'de>>(kind: &str, payload: &[u8]) -> Result<T, GatewayError> {
    serde_json::from_slice(payload).map_err(|e| {
        protocol_error(format!(
            "Bedrock sent a {kind} event that could not be read: {e}"
        ))
    })
}

impl<S: ChatSink> ResponseTranslator for StreamTranslator<S> {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if self.failed {
            return Ok(());
        }
        self.frames.push(chunk);
        while let Some(message) = self.frames.next()? {
            let handled =
                event(&message).and_then(|(kind, payload)| self.on_event(&kind, payload, out));
            if let Err(e) = handled {
                self.failed = true;
                return Err(e);
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if self.failed {
            return Ok(());
        }
        if self.frames.cut() {
            return Err(protocol_error("the Bedrock stream ended inside a frame"));
        }
        if !self.stopped {
            return Err(protocol_error(
                "the Bedrock stream ended before messageStop",
            ));
        }
        if let Some(usage) = self.usage {
            self.write_chunk(out, Vec::new(), Some(usage.into()))?;
        }
        self.sink.done(out)?;
        self.sink.end(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "stream_tests.rs"]
mod tests;
