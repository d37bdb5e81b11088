//! Chat chunks → the Responses typed event stream (the sequence is in the parent module doc),
//! and the sink both the stream and the whole answer reach.
//!
//! One output item is open at a time, as the Responses API streams them. Reasoning and text
//! stream live, each change between them closing one item and opening the next. The first tool
//! call streams live too; fragments of any other call, and text, that arrive while a call is
//! open are held and written as whole items once the upstream gives its finish reason. So an
//! upstream that interleaves parallel calls still yields well-formed items, and the common
//! sequential one loses only the live streaming of its later calls' arguments (which clients
//! such as Codex do not display anyway).

use serde_json::{json, Value};

use super::{
    answer_text, call_id, call_item, message_item, reasoning_item, reasoning_part, response,
    text_part, Ending, Envelope,
};
use crate::error::GatewayError;
use crate::providers::chat::{
    reasoning_text, ChatChunk, ChatCompletion, ChatSink, ChatToolCall, ChatUsage, ThinkingBlock,
};
use crate::providers::errors::protocol_error;
use crate::providers::json::to_bytes;
use crate::providers::responses::client::{derived_id, upstream_error, Echo};
use crate::providers::tool_calls::{absorb, Call};

/// The kind of a text-like item.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Reasoning,
}

/// The item currently open on the client stream.
enum Open {
    None,
    Plain {
        kind: Kind,
        id: String,
        text: String,
    },
    /// The tool call with this chat `tool_calls` index; its arguments so far.
    Tool {
        index: usize,
        id: String,
        args: String,
    },
}

/// Chat values → the Responses object (a whole answer) or events (a stream).
pub struct ToResponses {
    model: String,
    /// Taken when the first chunk arrives and the envelope is built from it.
    echo: Option<Echo>,
    envelope: Option<Envelope>,
    /// The upstream completion id, for deterministic item ids.
    chat_id: Option<String>,
    sequence: u64,
    /// Finished items, in output order; the open one gets `output.len()` as its index.
    output: Vec<Value>,
    open: Open,
    /// Plain items opened so far, so each gets its own id.
    plain_items: usize,
    calls: Vec<Call>,
    /// Text and reasoning held back while a call was open, in arrival order.
    held: Vec<(Kind, String)>,
    /// Signed reasoning blocks completed since the last reasoning item closed: sealed into it.
    signed: Vec<ThinkingBlock>,
    finish_reason: Option<String>,
    usage: Option<ChatUsage>,
    /// A terminal event (`completed`, `incomplete`, `failed`) was written: input is ignored.
    closed: bool,
}

impl ToResponses {
    /// The client side for a client that named `model`, with what its request left to echo.
    pub fn new(model: &str, echo: Echo) -> Self {
        Self {
            model: model.to_string(),
            echo: Some(echo),
            envelope: None,
            chat_id: None,
            sequence: 0,
            output: Vec::new(),
            open: Open::None,
            plain_items: 0,
            calls: Vec::new(),
            held: Vec::new(),
            signed: Vec::new(),
            finish_reason: None,
            usage: None,
            closed: false,
        }
    }

    /// Appends one event: `type` and the next `sequence_number` are added to `data`.
    fn emit(&mut self, out: &mut Vec<u8>, kind: &str, mut data: Value) -> Result<(), GatewayError> {
        data["type"] = kind.into();
        data["sequence_number"] = self.sequence.into();
        self.sequence += 1;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        serde_json::to_writer(&mut *out, &data)
            .map_err(|e| GatewayError::internal("encoding JSON", e))?;
        out.extend_from_slice(b"\n\n");
        Ok(())
    }

    /// The whole response object as it stands.
    fn object(&self, ending: &Ending) -> Value {
        match &self.envelope {
            Some(envelope) => envelope.object(ending, &self.output, self.usage),
            None => Value::Null,
        }
    }

    fn on_chunk(&mut self, chunk: ChatChunk<'_>, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if self.closed {
            return Ok(());
        }
        if self.envelope.is_none() {
            let echo = self.echo.take().unwrap_or_default();
            self.chat_id = Some(chunk.id.to_string()).filter(|id| !id.is_empty());
            self.envelope = Some(Envelope::new(
                Some(chunk.id.as_ref()),
                chunk.created,
                &self.model,
                echo,
            ));
            for kind in ["response.created", "response.in_progress"] {
                let response = self.object(&Ending::InProgress);
                self.emit(out, kind, json!({"response": response}))?;
            }
        }
        if let Some(error) = &chunk.error {
            let response = self.object(&Ending::Failed(upstream_error(error).0));
            self.emit(out, "response.failed", json!({"response": response}))?;
            self.closed = true;
            return Ok(());
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
            if let Some(reasoning) = reasoning_text(delta.reasoning_content, delta.reasoning) {
                self.on_plain(Kind::Reasoning, &reasoning, out)?;
            }
            if !delta.thinking_blocks.is_empty() {
                self.on_signed(delta.thinking_blocks, out)?;
            }
            if let Some(text) = answer_text(delta.content, delta.refusal) {
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

    /// Text or reasoning: into the open item of its kind, a new item, or held back while a
    /// call is open.
    fn on_plain(&mut self, kind: Kind, text: &str, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        match &self.open {
            Open::Tool { .. } => match self.held.last_mut() {
                Some((k, held)) if *k == kind => held.push_str(text),
                _ => self.held.push((kind, text.to_string())),
            },
            Open::Plain { kind: k, .. } if *k == kind => self.plain_delta(text, out)?,
            Open::None | Open::Plain { .. } => {
                self.close_open(out)?;
                self.open_plain(kind, out)?;
                self.plain_delta(text, out)?;
            }
        }
        Ok(())
    }

    /// Completed signed blocks: kept for the reasoning item they belong to, which is opened
    /// when none is (redacted thinking has no text).
    fn on_signed(
        &mut self,
        blocks: Vec<ThinkingBlock>,
        out: &mut Vec<u8>,
    ) -> Result<(), GatewayError> {
        self.signed.extend(blocks);
        match &self.open {
            Open::Plain {
                kind: Kind::Reasoning,
                ..
            }
            | Open::Tool { .. } => Ok(()),
            Open::None | Open::Plain { .. } => {
                self.close_open(out)?;
                self.open_plain(Kind::Reasoning, out)
            }
        }
    }

    fn open_plain(&mut self, kind: Kind, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let (prefix, part) = match kind {
            Kind::Text => ("msg", text_part("")),
            Kind::Reasoning => ("rs", reasoning_part("")),
        };
        let base = derived_id(prefix, self.chat_id.as_deref());
        // A second item of the same stream needs an id of its own.
        let id = match self.plain_items {
            0 => base,
            n => format!("{base}_{n}"),
        };
        self.plain_items += 1;
        let output_index = self.output.len();
        let item = match kind {
            Kind::Text => message_item(&id, None),
            Kind::Reasoning => reasoning_item(&id, None, &[]),
        };
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
        )?;
        self.emit(
            out,
            "response.content_part.added",
            json!({"item_id": id, "output_index": output_index, "content_index": 0, "part": part}),
        )?;
        self.open = Open::Plain {
            kind,
            id,
            text: String::new(),
        };
        Ok(())
    }

    fn plain_delta(&mut self, delta: &str, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let output_index = self.output.len();
        let Open::Plain { kind, id, text } = &mut self.open else {
            return Ok(());
        };
        text.push_str(delta);
        let mut data = json!({"item_id": id, "output_index": output_index, "content_index": 0,
                              "delta": delta});
        let event = match kind {
            Kind::Text => {
                data["logprobs"] = json!([]);
                "response.output_text.delta"
            }
            Kind::Reasoning => "response.reasoning_text.delta",
        };
        self.emit(out, event, data)
    }

    /// Writes the `done` events of the open item and moves it to `output`.
    fn close_open(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let output_index = self.output.len();
        let item = match std::mem::replace(&mut self.open, Open::None) {
            Open::None => return Ok(()),
            Open::Plain { kind, id, text } => {
                let (done, part, item) = match kind {
                    Kind::Text => (
                        "response.output_text.done",
                        text_part(&text),
                        message_item(&id, Some(&text)),
                    ),
                    Kind::Reasoning => (
                        "response.reasoning_text.done",
                        reasoning_part(&text),
                        reasoning_item(&id, Some(&text), &std::mem::take(&mut self.signed)),
                    ),
                };
                let mut data = json!({"item_id": id, "output_index": output_index,
                                      "content_index": 0, "text": text});
                if kind == Kind::Text {
                    data["logprobs"] = json!([]);
                }
                self.emit(out, done, data)?;
                self.emit(
                    out,
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": output_index, "content_index": 0,
                           "part": part}),
                )?;
                item
            }
            Open::Tool { index, id, args } => {
                let call = self.calls.iter().find(|c| c.index == index);
                let (call_id, name) = call.map_or(("", ""), |c| (c.id.as_str(), c.name.as_str()));
                let echo = self.envelope.as_ref().map(|e| &e.echo);
                let item = call_item(
                    echo.unwrap_or(&Echo::default()),
                    &id,
                    call_id,
                    name,
                    Some(&args),
                );
                let short_name = item["name"].clone();
                self.emit(
                    out,
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": output_index, "name": short_name,
                           "arguments": args}),
                )?;
                item
            }
        };
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        )?;
        self.output.push(item);
        Ok(())
    }

    /// A tool-call fragment: streamed into its open item, or opens its item when no call is
    /// open and its name is known, or is held.
    fn on_tool_call(
        &mut self,
        fragment: ChatToolCall,
        out: &mut Vec<u8>,
    ) -> Result<(), GatewayError> {
        let (position, args) = absorb(&mut self.calls, fragment);
        let call = &mut self.calls[position];
        let index = call.index;
        if matches!(&self.open, Open::Tool { index: i, .. } if *i == index) {
            return self.args_delta(&args, out);
        }
        if call.emitted {
            // A repeat of a finished call's id or name is harmless; more arguments are not.
            if args.is_empty() {
                return Ok(());
            }
            return Err(protocol_error(format!(
                "tool call {index} continued after its item was closed"
            )));
        }
        call.args.push_str(&args);
        if matches!(self.open, Open::Tool { .. }) || call.name.is_empty() {
            return Ok(());
        }
        self.close_open(out)?;
        self.open_call(position, out)
    }

    fn args_delta(&mut self, delta: &str, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let output_index = self.output.len();
        let Open::Tool { id, args, .. } = &mut self.open else {
            return Ok(());
        };
        if delta.is_empty() {
            return Ok(());
        }
        args.push_str(delta);
        let data = json!({"item_id": id, "output_index": output_index, "delta": delta});
        self.emit(out, "response.function_call_arguments.delta", data)
    }

    /// Opens the item of `calls[position]` and writes its held arguments.
    fn open_call(&mut self, position: usize, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let Some(call) = self.calls.get_mut(position) else {
            return Ok(());
        };
        call.emitted = true;
        if call.id.is_empty() {
            call.id = call_id(None);
        }
        let (index, args) = (call.index, std::mem::take(&mut call.args));
        let id = derived_id("fc", Some(&call.id));
        let echo = self.envelope.as_ref().map(|e| &e.echo);
        let item = call_item(
            echo.unwrap_or(&Echo::default()),
            &id,
            &call.id,
            &call.name,
            None,
        );
        let output_index = self.output.len();
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
        )?;
        self.open = Open::Tool {
            index,
            id,
            args: String::new(),
        };
        self.args_delta(&args, out)
    }

    /// Closes the open item and writes everything held, each as a whole item: pending calls
    /// in index order, then held text and reasoning.
    fn flush(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.close_open(out)?;
        let mut pending: Vec<usize> = (0..self.calls.len())
            .filter(|p| !self.calls[*p].emitted)
            .collect();
        pending.sort_by_key(|p| self.calls[*p].index);
        for position in pending {
            self.open_call(position, out)?;
            self.close_open(out)?;
        }
        for (kind, text) in std::mem::take(&mut self.held) {
            self.on_plain(kind, &text, out)?;
        }
        self.close_open(out)
    }

    /// The end of a whole answer: `response.completed`, or `response.incomplete` when the
    /// model was cut off, with the output and the usage (known only now).
    fn complete(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if self.envelope.is_none() {
            return Err(protocol_error(
                "the OpenAI-format stream ended before it began",
            ));
        }
        self.flush(out)?;
        let ending = Ending::Finished(self.finish_reason.as_deref());
        let kind = match super::incomplete_reason(self.finish_reason.as_deref()) {
            Some(_) => "response.incomplete",
            None => "response.completed",
        };
        let response = self.object(&ending);
        self.emit(out, kind, json!({"response": response}))?;
        self.closed = true;
        Ok(())
    }
}

impl ChatSink for ToResponses {
    fn whole(&mut self, answer: ChatCompletion, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let echo = self.echo.take().unwrap_or_default();
        out.extend(to_bytes(&response(answer, &self.model, echo))?);
        Ok(())
    }

    fn chunk(&mut self, chunk: ChatChunk<'_>, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.on_chunk(chunk, out)
    }

    fn done(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if self.closed {
            return Ok(());
        }
        self.complete(out)
    }

    /// Without `[DONE]`: a stream that gave its finish reason is completed; one cut before it
    /// fails, its open item left open (see the parent module doc).
    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if self.closed {
            return Ok(());
        }
        if self.finish_reason.is_some() {
            return self.complete(out);
        }
        if self.envelope.is_none() {
            return Err(protocol_error(
                "the OpenAI-format stream ended before it began",
            ));
        }
        Err(protocol_error(
            "the OpenAI-format stream ended before its finish reason",
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "stream_tests.rs"]
mod tests;
