//! OpenAI chat answer → Responses `response` object, and what the stream shares with it: the
//! chat wire types read, the output items, the response object and the usage mapping.
//!
//! Output items come in the order a Responses model produces them: reasoning, the message,
//! then the function calls. `finish_reason: length` makes the response `incomplete` with
//! `reason: max_output_tokens` (`content_filter` with `reason: content_filter`), as the
//! Responses API reports a cut answer; every other reason is `completed`.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{derived_id, upstream_error, Echo};
use crate::clock::unix_secs;
use crate::error::GatewayError;
use crate::providers::errors::protocol_error;
use crate::providers::json::to_bytes;
pub(super) use crate::providers::tool_calls::{Function, ToolCall};
use crate::providers::ResponseTranslator;

mod stream;

/// Translator for an OpenAI chat answer (JSON when `!stream`, SSE incl. the usage chunk and
/// `[DONE]` when `stream`) → a Responses `response` object, or the typed event stream described
/// in the module doc. `client_model` goes in `model`; `echo` is what [`super::request::to_chat`]
/// returned for the request (namespaced tool names, echoed settings). Usage maps to
/// `input_tokens` (+ `input_tokens_details.cached_tokens`), `output_tokens` (+
/// `output_tokens_details.reasoning_tokens`) and `total_tokens`.
pub fn from_chat(stream: bool, client_model: &str, echo: Echo) -> Box<dyn ResponseTranslator> {
    if stream {
        Box::new(stream::StreamToResponses::new(client_model, echo))
    } else {
        Box::new(JsonToResponses::new(client_model, echo))
    }
}

// ---- chat wire types --------------------------------------------------------------------

#[derive(Deserialize)]
pub(super) struct Completion {
    pub(super) id: Option<String>,
    pub(super) created: Option<u64>,
    pub(super) choices: Option<Vec<Choice>>,
    pub(super) usage: Option<Usage>,
    pub(super) error: Option<Value>,
}

#[derive(Deserialize)]
pub(super) struct Choice {
    #[serde(alias = "delta")]
    pub(super) message: Option<Reply>,
    pub(super) finish_reason: Option<String>,
    pub(super) index: Option<u64>,
}

/// A `message` (whole answer) or a `delta` (chunk): the same fields, all optional.
#[derive(Deserialize, Default)]
pub(super) struct Reply {
    pub(super) content: Option<String>,
    pub(super) reasoning_content: Option<String>,
    pub(super) reasoning: Option<String>,
    pub(super) refusal: Option<String>,
    pub(super) tool_calls: Option<Vec<ToolCall>>,
}

impl Reply {
    /// The non-standard reasoning text of compat hosts, if any.
    pub(super) fn take_reasoning(&mut self) -> Option<String> {
        self.reasoning_content
            .take()
            .or(self.reasoning.take())
            .filter(|t| !t.is_empty())
    }

    /// The answer text; a refusal is the text the client reads.
    pub(super) fn take_text(&mut self) -> Option<String> {
        self.content
            .take()
            .or(self.refusal.take())
            .filter(|t| !t.is_empty())
    }
}

#[derive(Deserialize, Clone, Copy, Default)]
pub(super) struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    total_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize, Clone, Copy, Default)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize, Clone, Copy, Default)]
struct CompletionDetails {
    reasoning_tokens: Option<u64>,
}

impl Usage {
    /// Responses usage: chat's counts under Responses names (both count cached tokens inside
    /// the input and reasoning tokens inside the output).
    pub(super) fn to_responses(self) -> Value {
        let cached = self.prompt_tokens_details.and_then(|d| d.cached_tokens);
        let reasoning = self
            .completion_tokens_details
            .and_then(|d| d.reasoning_tokens);
        json!({
            "input_tokens": self.prompt_tokens,
            "input_tokens_details": {"cached_tokens": cached.unwrap_or(0)},
            "output_tokens": self.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning.unwrap_or(0)},
            "total_tokens": self
                .total_tokens
                .unwrap_or_else(|| self.prompt_tokens.saturating_add(self.completion_tokens)),
        })
    }
}

// ---- output items -----------------------------------------------------------------------

/// An `output_text` content part.
pub(super) fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// A `reasoning_text` content part.
pub(super) fn reasoning_part(text: &str) -> Value {
    json!({"type": "reasoning_text", "text": text})
}

/// An assistant `message` item with one `output_text` part (none while `in_progress`).
pub(super) fn message_item(id: &str, text: Option<&str>) -> Value {
    let (status, content) = match text {
        Some(text) => ("completed", vec![text_part(text)]),
        None => ("in_progress", Vec::new()),
    };
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
}

/// A `reasoning` item holding the model's raw reasoning (no summary, nothing encrypted).
pub(super) fn reasoning_item(id: &str, text: Option<&str>) -> Value {
    let content: Vec<Value> = text.map(reasoning_part).into_iter().collect();
    json!({"id": id, "type": "reasoning", "summary": [], "content": content})
}

/// A `function_call` item; `name` is the chat function name, restored to `namespace` +
/// `name` for namespaced tools. `arguments: None` is the in-progress item (arguments `""`).
pub(super) fn call_item(
    echo: &Echo,
    id: &str,
    call_id: &str,
    chat_name: &str,
    arguments: Option<&str>,
) -> Value {
    let (namespace, name) = echo.names.restore(chat_name);
    let status = if arguments.is_some() {
        "completed"
    } else {
        "in_progress"
    };
    let mut item = json!({
        "id": id,
        "type": "function_call",
        "status": status,
        "arguments": arguments.unwrap_or(""),
        "call_id": call_id,
        "name": name,
    });
    if let Some(namespace) = namespace {
        item["namespace"] = namespace.into();
    }
    item
}

/// A tool-call id; synthesized when the upstream gave none.
pub(super) fn call_id(upstream: Option<&str>) -> String {
    match upstream.filter(|id| !id.is_empty()) {
        Some(id) => id.to_string(),
        None => format!("call_{}", crate::ids::random_hex()),
    }
}

// ---- the response object ----------------------------------------------------------------

/// How a response ended (or that it has not yet).
pub(super) enum Ending<'a> {
    InProgress,
    /// From the chat `finish_reason`.
    Finished(Option<&'a str>),
    /// The Responses `error` object.
    Failed(Value),
}

/// The parts of a response object that stay the same over its life.
pub(super) struct Envelope {
    pub(super) id: String,
    pub(super) created_at: u64,
    pub(super) model: String,
    pub(super) echo: Echo,
}

impl Envelope {
    pub(super) fn new(
        upstream_id: Option<&str>,
        created: Option<u64>,
        model: &str,
        echo: Echo,
    ) -> Self {
        Self {
            id: derived_id("resp", upstream_id),
            created_at: created.unwrap_or_else(unix_secs),
            model: model.to_string(),
            echo,
        }
    }

    /// The `response` object; echoed request settings default to what the API reports for an
    /// unset field. `instructions` and `tools` are not echoed: they are the bulk of an agent's
    /// request (tens of KB for Codex) and no client reads them back.
    pub(super) fn object(&self, ending: &Ending, output: &[Value], usage: Option<Usage>) -> Value {
        let (status, incomplete, error) = match ending {
            Ending::InProgress => ("in_progress", Value::Null, Value::Null),
            Ending::Finished(reason) => match incomplete_reason(*reason) {
                Some(reason) => ("incomplete", json!({"reason": reason}), Value::Null),
                None => ("completed", Value::Null, Value::Null),
            },
            Ending::Failed(error) => ("failed", Value::Null, error.clone()),
        };
        let mut object = Map::new();
        let mut put = |key: &str, value: Value| {
            object.insert(key.to_string(), value);
        };
        put("id", self.id.as_str().into());
        put("object", "response".into());
        put("created_at", self.created_at.into());
        put("status", status.into());
        put("error", error);
        put("incomplete_details", incomplete);
        put("instructions", Value::Null);
        put("model", self.model.as_str().into());
        put("output", Value::Array(output.to_vec()));
        put("previous_response_id", Value::Null);
        put("store", false.into());
        put("tools", json!([]));
        put("usage", usage.map_or(Value::Null, Usage::to_responses));
        let defaults = [
            ("tool_choice", json!("auto")),
            ("parallel_tool_calls", json!(true)),
            ("temperature", Value::Null),
            ("top_p", Value::Null),
            ("max_output_tokens", Value::Null),
            ("metadata", json!({})),
            ("reasoning", json!({"effort": null, "summary": null})),
            ("text", json!({"format": {"type": "text"}})),
            ("truncation", json!("disabled")),
            ("user", Value::Null),
        ];
        for (key, default) in defaults {
            let value = self.echo.settings.get(key).cloned().unwrap_or(default);
            put(key, value);
        }
        Value::Object(object)
    }
}

/// The `incomplete_details.reason` for a chat finish reason, when the answer was cut.
pub(super) fn incomplete_reason(finish_reason: Option<&str>) -> Option<&'static str> {
    match finish_reason {
        Some("length") => Some("max_output_tokens"),
        Some("content_filter") => Some("content_filter"),
        _ => None,
    }
}

// ---- whole answer -----------------------------------------------------------------------

/// Buffers an OpenAI `chat.completion` and writes the Responses object at the end.
pub(super) struct JsonToResponses {
    body: Vec<u8>,
    model: String,
    echo: Option<Echo>,
}

impl JsonToResponses {
    pub(super) fn new(model: &str, echo: Echo) -> Self {
        Self {
            body: Vec::new(),
            model: model.to_string(),
            echo: Some(echo),
        }
    }
}

impl ResponseTranslator for JsonToResponses {
    fn push(&mut self, chunk: &[u8], _out: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.body.extend_from_slice(chunk);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let completion: Completion = serde_json::from_slice(&self.body)
            .map_err(|e| protocol_error(format!("unreadable OpenAI-format answer: {e}")))?;
        if let Some(error) = &completion.error {
            return Err(upstream_error(error).1);
        }
        let echo = self.echo.take().unwrap_or_default();
        out.extend(to_bytes(&response(completion, &self.model, echo))?);
        Ok(())
    }
}

/// A chat completion as a Responses object: reasoning, message, then function-call items.
fn response(completion: Completion, model: &str, echo: Echo) -> Value {
    let chat_id = completion.id.as_deref();
    let envelope = Envelope::new(chat_id, completion.created, model, echo);
    let choice = completion.choices.and_then(|c| c.into_iter().next());
    let (mut reply, finish) = match choice {
        Some(c) => (c.message.unwrap_or_default(), c.finish_reason),
        None => (Reply::default(), None),
    };
    let mut output = Vec::new();
    if let Some(reasoning) = reply.take_reasoning() {
        output.push(reasoning_item(&derived_id("rs", chat_id), Some(&reasoning)));
    }
    if let Some(text) = reply.take_text() {
        output.push(message_item(&derived_id("msg", chat_id), Some(&text)));
    }
    for call in reply.tool_calls.unwrap_or_default() {
        let function = call.function.unwrap_or(Function {
            name: None,
            arguments: None,
        });
        let call_id = call_id(call.id.as_deref());
        output.push(call_item(
            &envelope.echo,
            &derived_id("fc", Some(&call_id)),
            &call_id,
            function.name.as_deref().unwrap_or(""),
            Some(function.arguments.as_deref().unwrap_or("")),
        ));
    }
    envelope.object(
        &Ending::Finished(finish.as_deref()),
        &output,
        completion.usage,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "response_tests.rs"]
mod tests;
