//! Chat answer → Responses `response` object, and what the stream shares with it: the output
//! items, the response object and the usage mapping. [`ToResponses`] is the chat sink every
//! answer a Responses client gets from a provider reaches (typed, or read from an
//! OpenAI-format provider's bytes).
//!
//! Output items come in the order a Responses model produces them: reasoning, the message,
//! then the function calls. `finish_reason: length` makes the response `incomplete` with
//! `reason: max_output_tokens` (`content_filter` with `reason: content_filter`), as the
//! Responses API reports a cut answer; every other reason is `completed`.

use serde_json::{json, Map, Value};

use super::reasoning::seal;
use super::{derived_id, Echo};
use crate::clock::unix_secs;
use crate::providers::chat::{
    read, reasoning_text, ChatCompletion, ChatMessage, ChatUsage, ThinkingBlock,
};
use crate::providers::ResponseTranslator;

mod stream;

pub use stream::ToResponses;

/// Translator for an OpenAI-format provider's answer (JSON when `!stream`, SSE incl. the usage
/// chunk and `[DONE]` when `stream`) → a Responses `response` object, or the typed event stream
/// described in the module doc. `client_model` goes in `model`; `echo` is what
/// [`super::request::to_chat`] returned for the request (namespaced tool names, echoed
/// settings). Usage maps to `input_tokens` (+ `input_tokens_details.cached_tokens`),
/// `output_tokens` (+ `output_tokens_details.reasoning_tokens`) and `total_tokens`. Other
/// providers' answers reach [`ToResponses`] typed.
pub fn from_chat(stream: bool, client_model: &str, echo: Echo) -> Box<dyn ResponseTranslator> {
    read(stream, ToResponses::new(client_model, echo))
}

/// The answer text; a refusal is the text the client reads.
pub(super) fn answer_text(content: Option<String>, refusal: Option<String>) -> Option<String> {
    content.or(refusal).filter(|t| !t.is_empty())
}

/// Responses usage: chat's counts under Responses names (both count cached tokens inside the
/// input and reasoning tokens inside the output). Anthropic's cache writes, inside the input but
/// billed apart, follow as in chat: `cache_creation_input_tokens` and its split by lifetime.
pub(super) fn responses_usage(usage: ChatUsage) -> Value {
    let mut out = json!({
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens()},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens()},
        "total_tokens": usage
            .total_tokens
            .unwrap_or_else(|| usage.prompt_tokens.saturating_add(usage.completion_tokens)),
    });
    if let Some(written) = usage.cache_creation_input_tokens {
        out["cache_creation_input_tokens"] = written.into();
    }
    if let Some(split) = usage.cache_creation {
        out["cache_creation"] = json!(split);
    }
    out
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

/// A `reasoning` item holding the model's raw reasoning (no summary) and, when the provider
/// signed it, the signed blocks sealed in `encrypted_content` (see `super::reasoning`).
pub(super) fn reasoning_item(id: &str, text: Option<&str>, signed: &[ThinkingBlock]) -> Value {
    let content: Vec<Value> = text.map(reasoning_part).into_iter().collect();
    let mut item = json!({"id": id, "type": "reasoning", "summary": [], "content": content});
    if !signed.is_empty() {
        item["encrypted_content"] = seal(signed).into();
    }
    item
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
        let upstream_id = upstream_id.filter(|_| !echo.stored);
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
    pub(super) fn object(
        &self,
        ending: &Ending,
        output: &[Value],
        usage: Option<ChatUsage>,
    ) -> Value {
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
        let previous = self.echo.previous_response_id.as_deref();
        put(
            "previous_response_id",
            previous.map_or(Value::Null, Value::from),
        );
        put("store", self.echo.stored.into());
        put("tools", json!([]));
        put("usage", usage.map_or(Value::Null, responses_usage));
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

/// A chat completion as a Responses object: reasoning, message, then function-call items.
fn response(completion: ChatCompletion, model: &str, echo: Echo) -> Value {
    let chat_id = Some(completion.id.as_str());
    let envelope = Envelope::new(chat_id, completion.created, model, echo);
    let choice = completion.choices.into_iter().next();
    let (reply, finish) = match choice {
        Some(c) => (c.message, c.finish_reason),
        None => (ChatMessage::default(), None),
    };
    let mut output = Vec::new();
    let reasoning = reasoning_text(reply.reasoning_content, reply.reasoning);
    if reasoning.is_some() || !reply.thinking_blocks.is_empty() {
        let id = derived_id("rs", chat_id);
        let text = Some(reasoning.as_deref().unwrap_or(""));
        output.push(reasoning_item(&id, text, &reply.thinking_blocks));
    }
    if let Some(text) = answer_text(reply.content, reply.refusal) {
        output.push(message_item(&derived_id("msg", chat_id), Some(&text)));
    }
    for call in reply.tool_calls {
        let function = call.function.unwrap_or_default();
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
