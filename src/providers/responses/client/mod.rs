//! OpenAI's Responses API (`POST /v1/responses`: Codex CLI, the OpenAI Agents SDK,
//! `client.responses.create`) and translation between it and OpenAI chat completions.
//!
//! One pair of conversions, each a pure function or state machine (bytes in, bytes out), so a
//! Responses client can use every model the gateway serves: the request becomes a chat request
//! ([`request::to_chat`]) that the existing chat → Anthropic / chat → Gemini translators take
//! further, and the chat answer (an OpenAI-format provider's, or another upstream side's typed
//! chat values) becomes a Responses answer ([`response::ToResponses`]): one `response` object,
//! or the typed event stream.
//!
//! Stored responses and `previous_response_id` are kept by the gateway (`super::stored`): a
//! continuation reaches [`request::to_chat`] already expanded into the whole conversation, and
//! the answer says `store: true` with a fresh id ([`Echo::stored`]). The rest of the API's
//! state is refused with a 400 naming the field (`conversation`, `background: true`, stored
//! `prompt`s, `item_reference` inputs). Clients that send the whole conversation each turn
//! with `store: false`, as Codex does, need none of it.
//!
//! # Namespaced tools
//! Codex groups tools under `{"type":"namespace","name":NS,"tools":[functions]}` and routes a
//! call by the `namespace` + `name` pair of the `function_call` it gets back: a call that only
//! carries a flattened name is an "unsupported call". Chat has no namespaces, so each inner
//! function is offered to the model as `NS__name` ([`flat_name`]; just `NSname` when NS already
//! ends in `__`, the `mcp__server__` style), and the answer translator turns that name back into
//! `namespace: NS, name: name`. The name alone cannot be split safely (top-level functions may
//! contain `__` too), so the request translator records every flattened name in the [`Echo`]
//! it returns, and the answer translator is built from that value. Namespaced `function_call`
//! items in the history, and a `tool_choice` naming one, are flattened the same way, so the
//! model sees the names it was offered.
//!
//! # Stream
//! Events are `event: <type>\ndata: <json>\n\n`, every one with `type` and a `sequence_number`
//! counting from 0: `response.created`, `response.in_progress`, then each output item (its
//! `output_item.added`, content/argument deltas and their `done` events, `output_item.done`),
//! then `response.completed` — or `response.incomplete` when the model hit its token limit or
//! a content filter — carrying the whole response with `output` and `usage`. An upstream error
//! chunk mid-stream becomes `response.failed` and the translator stops reading. A stream cut
//! before its finish reason gets no invented ending: `finish` returns an `UpstreamProtocol`
//! error (items still open are left open, so a half-streamed function call is never handed to
//! the client as complete) and the caller appends its error event.
//!
//! Reasoning text some OpenAI-compatible hosts stream as `reasoning_content` / `reasoning`
//! becomes a `reasoning` item with `reasoning_text` content (it is the model's raw reasoning,
//! not a summary), streamed as `response.reasoning_text.delta`. Reasoning items a client sends
//! back are dropped: chat has no place for them.
//!
//! Layout, as in the Anthropic pair: `request` (Responses → chat), `response` (the whole
//! answer, and the response object and output items both directions share), `stream` (the
//! event stream); shared helpers are here.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::GatewayError;
use crate::ids::safe_id;
use crate::providers::errors::openai_error;

pub mod reasoning;
pub mod request;
pub mod response;

/// What the answer translator needs from the request: the chat names of namespaced tools (to
/// restore `namespace` + `name` on the calls the model makes), and the request settings a
/// Response object repeats (`tool_choice`, `temperature`, `metadata`, …). Built by
/// [`request::to_chat`]; [`Echo::default`] suits a request without namespaced tools whose
/// settings need not be echoed.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    names: ToolNames,
    /// Request fields echoed verbatim in the response object, keyed by their Responses name.
    settings: Map<String, Value>,
    /// The gateway stores the response (see [`Echo::stored`]).
    stored: bool,
    /// The stored response this one continues (see [`Echo::continuing`]).
    previous_response_id: Option<String>,
}

impl Echo {
    /// The gateway stores this response: it gets a fresh id (never one derived from the
    /// upstream's, which another answer could repeat) and says `store: true`.
    pub fn stored(mut self) -> Self {
        self.stored = true;
        self
    }

    /// This response continues `previous_response_id` (stored or not itself), and says so.
    pub fn continuing(mut self, previous_response_id: Option<String>) -> Self {
        self.previous_response_id = previous_response_id;
        self
    }
}

/// Chat function name of a namespaced tool → its `(namespace, name)`.
#[derive(Debug, Clone, Default)]
struct ToolNames(HashMap<String, (String, String)>);

impl ToolNames {
    /// The `(namespace, name)` a chat function name stands for: a namespaced tool's pair, or
    /// no namespace and the name unchanged.
    fn restore<'a>(&'a self, chat_name: &'a str) -> (Option<&'a str>, &'a str) {
        match self.0.get(chat_name) {
            Some((namespace, name)) => (Some(namespace), name),
            None => (None, chat_name),
        }
    }
}

/// The chat function name of tool `name` inside namespace `namespace`: `namespace__name`, or
/// `namespacename` when the namespace already ends in `__` (Codex's `mcp__server__` style, so
/// the model sees the familiar `mcp__server__tool`). Chat function names allow only
/// `[A-Za-z0-9_-]`, so no other separator is available.
pub fn flat_name(namespace: &str, name: &str) -> String {
    if namespace.ends_with("__") {
        format!("{namespace}{name}")
    } else {
        format!("{namespace}__{name}")
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the submodules.

/// An id with a Responses prefix (`resp_`, `msg_`, `fc_`, `rs_`) made from an upstream id, so
/// the same upstream answer always yields the same ids; random when the upstream sent none.
/// Only `[A-Za-z0-9_-]` is kept, since clients echo these ids back.
fn derived_id(prefix: &str, upstream: Option<&str>) -> String {
    match upstream.filter(|id| !id.is_empty()) {
        Some(id) => format!("{prefix}_{}", safe_id(id)),
        None => format!("{prefix}_{}", crate::ids::random_hex()),
    }
}

/// An upstream `{"error":{…}}` that arrived inside a 200 answer → the Responses `error`
/// object (`code`, `message`) of a failed response, and the [`GatewayError`] for a whole
/// answer. The code is the upstream's `code`, else its `type`, else `server_error`: Codex
/// reads `context_length_exceeded`, `insufficient_quota` and `rate_limit_exceeded` from it.
fn upstream_error(error: &Value) -> (Value, GatewayError) {
    let text = |key: &str| {
        error
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let code = text("code").or(text("type")).unwrap_or("server_error");
    let message = text("message").unwrap_or("the upstream model failed");
    let object = serde_json::json!({"code": code, "message": message});
    (object, openai_error(error))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
