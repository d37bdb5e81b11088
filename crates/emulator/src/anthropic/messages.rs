//! `POST …/v1/messages` answers (the request was validated by the parent module):
//!
//! * **JSON**: `{"id":"msg_01…","type":"message","role":"assistant","model":<echo>,
//!   "content":[…],"stop_reason","stop_sequence":null,"usage":{"input_tokens",
//!   "output_tokens","cache_creation_input_tokens":0,"cache_read_input_tokens",
//!   "cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},
//!   "service_tier":"standard"}}`. Text: one text block, the N chunks joined (`""` for N =
//!   0), `stop_reason:"end_turn"`.
//! * **Tool use**: when `tools` is non-empty, `tool_choice.type` is not `"none"` and the last
//!   message carries no `tool_result` (then the answer is text, as a model's would be), the
//!   content is one `tool_use` block `{"id":"toolu_01…","name","input"}` calling the tool
//!   named by `tool_choice.name` (type `tool`), else the first tool with a name; `input` is
//!   built from its `input_schema` by the OpenAI side's rule (one key, example value), and
//!   `stop_reason:"tool_use"`.
//! * **Stream** (`"stream":true`, `event:` + `data:` lines, `\n\n` after each):
//!   `message_start` (usage: input/cache counts, `output_tokens: 1`), `content_block_start`
//!   (index 0), `ping`, then N `text_delta`s (tool: an `input_json_delta` with `""`, then K
//!   fragments of the input JSON), `content_block_stop`, `message_delta` (stop_reason,
//!   `usage.output_tokens` = N or K), `message_stop`. So a text stream has N + 6 events, a
//!   tool stream K + 7.
//! * **Thinking** (`thinking` enabled): reasoning blocks open the content and the stream,
//!   and add to `output_tokens`; their rules are in [`super::thinking`].

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

use super::super::openai::{chunk_text, content_text, example_arguments, split_even};
use super::cache::CacheUse;
use super::thinking::{reasoning, thinking_pieces, Reasoning};
use super::{prompt_tokens, random_id, sse, stream_error_event, Reply};

// ---------------------------------------------------------------- wire types

#[derive(Serialize)]
struct Message<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<Block<'a>>,
    stop_reason: &'static str,
    stop_sequence: (),
    usage: Usage,
}

/// A content block (`content_block_start` sends the empty form of the same block).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
}

/// Usage; the `cache_creation` / `service_tier` tail only in JSON answers.
#[derive(Serialize)]
struct Usage {
    input_tokens: u64,
    output_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_creation: Option<CacheCreation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_tier: Option<&'static str>,
}

#[derive(Serialize)]
struct CacheCreation {
    ephemeral_5m_input_tokens: u64,
    ephemeral_1h_input_tokens: u64,
}

/// The message inside `message_start` (its keys in the API's stream order).
#[derive(Serialize)]
struct StartMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    content: [(); 0],
    model: &'a str,
    stop_reason: (),
    stop_sequence: (),
    usage: Usage,
}

/// One stream event; its `type` is also the SSE event name.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    MessageStart {
        message: StartMessage<'a>,
    },
    ContentBlockStart {
        index: usize,
        content_block: Block<'a>,
    },
    Ping,
    ContentBlockDelta {
        index: usize,
        delta: Delta<'a>,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: StopDelta,
        usage: OutputUsage,
    },
    MessageStop,
}

impl Event<'_> {
    fn name(&self) -> &'static str {
        match self {
            Event::MessageStart { .. } => "message_start",
            Event::ContentBlockStart { .. } => "content_block_start",
            Event::Ping => "ping",
            Event::ContentBlockDelta { .. } => "content_block_delta",
            Event::ContentBlockStop { .. } => "content_block_stop",
            Event::MessageDelta { .. } => "message_delta",
            Event::MessageStop => "message_stop",
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Delta<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: (),
}

#[derive(Serialize)]
struct OutputUsage {
    output_tokens: u64,
}

// ---------------------------------------------------------------- answers

/// The tool the answer calls: its name and input as compact JSON text.
struct ToolPlan<'a> {
    name: &'a str,
    input: String,
}

/// Everything an answer depends on, read from the request once.
struct Plan<'a> {
    model: &'a str,
    input_tokens: u64,
    cache: CacheUse,
    chunks: usize,
    tool: Option<ToolPlan<'a>>,
    reasoning: Option<Reasoning>,
}

impl Plan<'_> {
    /// Text chunks, or the K fragments of the tool input; their count is output_tokens.
    fn fragments(&self) -> Vec<String> {
        match &self.tool {
            Some(tool) => split_even(&tool.input, self.chunks),
            None => (0..self.chunks).map(chunk_text).collect(),
        }
    }

    /// `output_tokens` of an answer with these text chunks / input fragments.
    fn output_tokens(&self, fragments: usize) -> u64 {
        fragments as u64 + self.reasoning.as_ref().map_or(0, |r| r.output_tokens)
    }

    /// The reasoning blocks the content opens with (redacted first), in their full form.
    fn reasoning_blocks(&self) -> Vec<Block<'_>> {
        let Some(r) = &self.reasoning else {
            return Vec::new();
        };
        let redacted = r
            .redacted
            .as_deref()
            .map(|data| Block::RedactedThinking { data });
        let thinking = Block::Thinking {
            thinking: &r.text,
            signature: &r.signature,
        };
        redacted.into_iter().chain([thinking]).collect()
    }

    fn usage(&self, output_tokens: u64, full: bool) -> Usage {
        Usage {
            input_tokens: self.input_tokens,
            output_tokens,
            cache_creation_input_tokens: self.cache.written(),
            cache_read_input_tokens: self.cache.read,
            cache_creation: full.then_some(CacheCreation {
                ephemeral_5m_input_tokens: self.cache.written_5m,
                ephemeral_1h_input_tokens: self.cache.written_1h,
            }),
            service_tier: full.then_some("standard"),
        }
    }

    fn stop_reason(&self) -> &'static str {
        if self.tool.is_some() {
            "tool_use"
        } else {
            "end_turn"
        }
    }
}

/// The tool to call, or None for a text answer (see the module doc).
fn plan_tool(req: &Value) -> Option<ToolPlan<'_>> {
    let tools = req.get("tools")?.as_array()?;
    let choice = req.get("tool_choice");
    let choice_type = choice.and_then(|c| c.get("type")).and_then(Value::as_str);
    if choice_type == Some("none") {
        return None;
    }
    // Like a model, answer in text once a tool result is in (unless a tool is forced), so
    // agent loops (Claude Code's) end.
    let last = req
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last());
    let answers_tool = last
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .is_some_and(|blocks| {
            blocks
                .iter()
                .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        });
    if answers_tool && choice_type.is_none_or(|t| t == "auto") {
        return None;
    }
    fn name_of(t: &Value) -> Option<&str> {
        t.get("name").and_then(Value::as_str)
    }
    let forced = choice
        .filter(|_| choice_type == Some("tool"))
        .and_then(|c| c.get("name"))
        .and_then(Value::as_str);
    let tool = forced
        .and_then(|f| tools.iter().find(|t| name_of(t) == Some(f)))
        .or_else(|| tools.iter().find(|t| name_of(t).is_some()))?;
    Some(ToolPlan {
        name: name_of(tool)?,
        input: example_arguments(tool.get("input_schema")),
    })
}

/// `POST …/v1/messages` for a validated request: JSON or SSE (see the module doc); `cache`
/// is what the request read from and wrote to the prompt cache; `redacted_thinking` is the
/// `x-emulator-redacted-thinking` fault.
pub fn messages_reply(
    req: &Value,
    chunks: usize,
    cache: CacheUse,
    redacted_thinking: bool,
) -> Reply {
    let total = prompt_tokens(req);
    let plan = Plan {
        model: req.get("model").and_then(Value::as_str).unwrap_or_default(),
        input_tokens: total.saturating_sub(cache.read + cache.written()),
        cache,
        chunks,
        tool: plan_tool(req),
        reasoning: reasoning(req, redacted_thinking),
    };
    if req.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        messages_stream(&plan)
    } else {
        messages_json(&plan)
    }
}

fn input_value(input: &str) -> Value {
    serde_json::from_str(input).unwrap_or_else(|_| Value::Object(Map::new()))
}

fn messages_json(plan: &Plan) -> Reply {
    let id = random_id("msg_01");
    let tool_id = random_id("toolu_01");
    let text = content_text(plan.chunks);
    let block = match &plan.tool {
        Some(tool) => Block::ToolUse {
            id: &tool_id,
            name: tool.name,
            input: input_value(&tool.input),
        },
        None => Block::Text { text: &text },
    };
    let mut content = plan.reasoning_blocks();
    content.push(block);
    let body = Message {
        id: &id,
        kind: "message",
        role: "assistant",
        model: plan.model,
        content,
        stop_reason: plan.stop_reason(),
        stop_sequence: (),
        usage: plan.usage(plan.output_tokens(plan.fragments().len()), true),
    };
    Reply::json(200, &body)
}

fn messages_stream(plan: &Plan) -> Reply {
    let id = random_id("msg_01");
    let tool_id = random_id("toolu_01");
    let parts = plan.fragments();
    let event = |e: Event| sse(e.name(), &e);
    let start = StartMessage {
        id: &id,
        kind: "message",
        role: "assistant",
        content: [],
        model: plan.model,
        stop_reason: (),
        stop_sequence: (),
        usage: plan.usage(1, false),
    };
    let mut events: Vec<Bytes> = Vec::with_capacity(parts.len() + 7);
    events.push(event(Event::MessageStart { message: start }));
    let mut index = 0;
    for block in plan.reasoning_blocks() {
        reasoning_events(block, index, &mut events);
        index += 1;
    }
    let content_block = match &plan.tool {
        Some(tool) => Block::ToolUse {
            id: &tool_id,
            name: tool.name,
            input: Value::Object(Map::new()),
        },
        None => Block::Text { text: "" },
    };
    events.push(event(Event::ContentBlockStart {
        index,
        content_block,
    }));
    if index == 0 {
        events.push(event(Event::Ping));
    }
    let first = plan.tool.as_ref().map(|_| String::new());
    for part in first.iter().chain(&parts) {
        let delta = match plan.tool {
            Some(_) => Delta::InputJson { partial_json: part },
            None => Delta::Text { text: part },
        };
        events.push(event(Event::ContentBlockDelta { index, delta }));
    }
    events.push(event(Event::ContentBlockStop { index }));
    events.push(event(Event::MessageDelta {
        delta: StopDelta {
            stop_reason: plan.stop_reason(),
            stop_sequence: (),
        },
        usage: OutputUsage {
            output_tokens: plan.output_tokens(parts.len()),
        },
    }));
    events.push(event(Event::MessageStop));
    Reply::stream_with("text/event-stream", events, |_| stream_error_event())
}

/// The events of one reasoning block at `index` (module doc of [`super::thinking`]); `ping`
/// follows the answer's first `content_block_start`.
fn reasoning_events(block: Block, index: usize, events: &mut Vec<Bytes>) {
    let event = |e: Event| sse(e.name(), &e);
    let start = |content_block| {
        event(Event::ContentBlockStart {
            index,
            content_block,
        })
    };
    let delta = |delta| event(Event::ContentBlockDelta { index, delta });
    match block {
        Block::Thinking {
            thinking,
            signature,
        } => {
            let empty = Block::Thinking {
                thinking: "",
                signature: "",
            };
            events.push(start(empty));
            if index == 0 {
                events.push(event(Event::Ping));
            }
            let pieces = thinking_pieces(thinking);
            for piece in &pieces {
                events.push(delta(Delta::Thinking { thinking: piece }));
            }
            events.push(delta(Delta::Signature { signature }));
        }
        whole => {
            events.push(start(whole));
            if index == 0 {
                events.push(event(Event::Ping));
            }
        }
    }
    events.push(event(Event::ContentBlockStop { index }));
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "messages_tests.rs"]
mod tests;
