//! OpenAI's Responses API (`POST /v1/responses`: Codex CLI, the OpenAI Agents SDK,
//! `client.responses.create`) and translation between it and OpenAI chat completions.
//!
//! One pair of conversions, each a pure function or state machine (bytes in, bytes out), so a
//! Responses client can use every model the gateway serves: the request becomes a chat request
//! ([`to_chat_request`]) that the existing chat → Anthropic / chat → Gemini translators take
//! further, and the chat answer (native, or translated back to chat) becomes a Responses
//! answer ([`from_chat_response`]): one `response` object, or the typed event stream.
//!
//! The gateway keeps no conversation state, so everything stateful in the Responses API is
//! refused with a 400 naming the field (`previous_response_id`, `store: true`, `conversation`,
//! `background: true`, stored `prompt`s, `item_reference` inputs). Clients that send the whole
//! conversation each turn with `store: false`, as Codex does, need none of it.
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
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::error::{ErrorKind, GatewayError};
use crate::providers::ResponseTranslator;

#[path = "responses/request.rs"]
mod request;
#[path = "responses/response.rs"]
mod response;
#[path = "responses/stream.rs"]
mod stream;

/// What the answer translator needs from the request: the chat names of namespaced tools (to
/// restore `namespace` + `name` on the calls the model makes), and the request settings a
/// Response object repeats (`tool_choice`, `temperature`, `metadata`, …). Built by
/// [`to_chat_request`]; [`Echo::default`] suits a request without namespaced tools whose
/// settings need not be echoed.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    names: ToolNames,
    /// Request fields echoed verbatim in the response object, keyed by their Responses name.
    settings: Map<String, Value>,
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

/// Responses request body → OpenAI chat request body, `model` = `upstream_model`, plus the
/// [`Echo`] the answer translator needs. Mapped: `instructions` and `developer`/`system`
/// messages (one leading system message, in order), `input` (a string, or message,
/// `function_call`, `function_call_output`, `custom_tool_call(_output)` items), `tools`
/// (function tools; namespaced functions flattened, see the module doc), `tool_choice`,
/// `parallel_tool_calls`, `temperature`, `top_p`, `max_output_tokens` (→
/// `max_completion_tokens`), `text.format` (→ `response_format`), `reasoning.effort` (→
/// `reasoning_effort`), `stream` (with `stream_options.include_usage`), `user`. Dropped:
/// reasoning and server-side call items in the history, provider-hosted tools when function
/// tools come with them, and the settings chat has no equivalent for (`store: false`,
/// `include`, `prompt_cache_key`, `client_metadata`, `service_tier`, `truncation`,
/// `reasoning.summary`, `text.verbosity`, `background: false`, `metadata`,
/// `safety_identifier`, `max_tool_calls`, `top_logprobs`, …). Refused with a 400 naming the
/// field: the stateful ones (`previous_response_id`, `store: true`, `conversation`,
/// `background: true`, `prompt`, `item_reference`), file ids, only hosted tools, and malformed
/// fields.
pub fn to_chat_request(
    responses_body: &[u8],
    upstream_model: &str,
) -> Result<(Vec<u8>, Echo), GatewayError> {
    request::convert(responses_body, upstream_model)
}

/// Translator for an OpenAI chat answer (JSON when `!stream`, SSE incl. the usage chunk and
/// `[DONE]` when `stream`) → a Responses `response` object, or the typed event stream described
/// in the module doc. `client_model` goes in `model`; `echo` is what [`to_chat_request`]
/// returned for the request (namespaced tool names, echoed settings). Usage maps to
/// `input_tokens` (+ `input_tokens_details.cached_tokens`), `output_tokens` (+
/// `output_tokens_details.reasoning_tokens`) and `total_tokens`.
pub fn from_chat_response(
    stream: bool,
    client_model: &str,
    echo: Echo,
) -> Box<dyn ResponseTranslator> {
    if stream {
        Box::new(stream::StreamToResponses::new(client_model, echo))
    } else {
        Box::new(response::JsonToResponses::new(client_model, echo))
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the submodules.

/// The provider broke its own protocol (cut stream, unreadable chunk).
fn protocol_error(message: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorKind::UpstreamProtocol, message)
}

/// Serializes a value the gateway built itself.
fn to_bytes(value: &Value) -> Result<Vec<u8>, GatewayError> {
    serde_json::to_vec(value).map_err(|e| GatewayError::internal("encoding JSON", e))
}

/// Seconds since the epoch, for `created_at` when the upstream gave no `created`.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An id with a Responses prefix (`resp_`, `msg_`, `fc_`, `rs_`) made from an upstream id, so
/// the same upstream answer always yields the same ids; random when the upstream sent none.
/// Only `[A-Za-z0-9_-]` is kept, since clients echo these ids back.
fn derived_id(prefix: &str, upstream: Option<&str>) -> String {
    match upstream.filter(|id| !id.is_empty()) {
        Some(id) => {
            let safe: String = id
                .chars()
                .map(|c| match c {
                    'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '-' => c,
                    _ => '_',
                })
                .collect();
            format!("{prefix}_{safe}")
        }
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
    let has =
        |needle: &str| code.contains(needle) || text("type").is_some_and(|t| t.contains(needle));
    let status = if has("rate_limit") || has("quota") {
        429
    } else if has("invalid_api_key") || has("authentication") {
        401
    } else if has("overloaded") || has("unavailable") {
        503
    } else if has("timeout") {
        504
    } else if has("invalid_request") || has("context_length") {
        400
    } else {
        500
    };
    let object = serde_json::json!({"code": code, "message": message});
    (
        object,
        GatewayError::new(ErrorKind::UpstreamStatus(status), message),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "responses/tests.rs"]
mod tests;
