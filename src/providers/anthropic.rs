//! Anthropic's Messages wire format, and translation between it and OpenAI chat completions in
//! both directions.
//!
//! Two pairs of conversions, each a pure function or state machine (bytes in, bytes out):
//! - an OpenAI client on a model Anthropic serves: [`to_anthropic_request`] and
//!   [`from_anthropic_response`] (docs/translation.md A and B);
//! - an Anthropic client (Claude Code, the Anthropic SDK) on a model served in OpenAI's format:
//!   [`to_openai_request`] and [`to_anthropic_response`] (docs/translation.md D);
//!
//! plus [`upstream_error`] (E) and [`count_tokens_estimate`] for `/v1/messages/count_tokens`.
//!
//! Requests are converted through `serde_json::Value` rather than typed structs: both formats
//! accept several shapes per field (string or parts, string or object) and every rejection must
//! name the field at fault. Answers are read with small typed structs that ignore what they do
//! not use. Each conversion lives in a submodule, in the order of the file-per-format layout:
//! `request` and `chat_messages` (A), `response` (B), `client_request` (D1), `client_response`
//! (D2, D3), `tokens`; error conversion (E) and the helpers they share are here.
//!
//! Ending rules for streams, the same in both directions:
//! - an upstream error event mid-stream is turned into the client dialect's error event and
//!   the translator stops, reading nothing after it; `push` returns `Ok`, since the answer
//!   ended the way the upstream ended it;
//! - a stream that ends without its terminator but after the upstream gave its stop reason
//!   is completed normally (the reason is real, only the terminator is missing);
//! - a stream cut before any stop reason gets no invented one: `finish` closes the open content
//!   block (Anthropic clients) and returns an `UpstreamProtocol` error, so the caller appends
//!   the error event in the client's dialect and accounts the request as failed. Bytes already
//!   appended to `out` are whole client events and should be sent first.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{ErrorKind, GatewayError};
use crate::providers::json::{field, parse_object};
use crate::providers::ResponseTranslator;

#[path = "anthropic/chat_messages.rs"]
mod chat_messages;
#[path = "anthropic/client_request.rs"]
mod client_request;
#[path = "anthropic/client_response.rs"]
mod client_response;
#[path = "anthropic/request.rs"]
mod request;
#[path = "anthropic/response.rs"]
mod response;
#[path = "anthropic/tokens.rs"]
mod tokens;

/// max_tokens sent to Anthropic when an OpenAI client gives none (Anthropic requires the field;
/// 4096 is what mainstream translators send).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The most output the gateway asks Anthropic for on a request it translates that gave no
/// cap: [`DEFAULT_MAX_TOKENS`], plus the largest thinking budget when reasoning was asked for.
/// A budget reservation holds this much output for such a request.
pub fn uncapped_max_tokens(reasoning: bool) -> u64 {
    request::uncapped_max_tokens(reasoning)
}

/// Longest upstream error text quoted back to the client when it is not JSON.
const MAX_QUOTED_ERROR: usize = 512;

/// The tool the gateway adds to carry an OpenAI `response_format: json_schema` answer: Anthropic
/// has no structured-output switch, so the model is forced to call this tool and its `input`
/// becomes the message content. The name is the gateway's own, so a client tool never clashes
/// with it (a client tool of this name is rejected).
const JSON_OUTPUT_TOOL: &str = "cheapai_json_output";

/// The provider label in errors raised inside translators, which do not know the configured
/// provider name.
const ANTHROPIC: &str = "anthropic";

/// OpenAI chat request body → Anthropic Messages request body (docs/translation.md A1/A2), `model`
/// set to `upstream_model`. Rejected with a 400 naming the field: `n` > 1, `logprobs`,
/// `top_logprobs`, audio input, `functions`, unknown content parts and invalid tool-call
/// arguments. Dropped (no Anthropic equivalent): `presence_penalty`, `frequency_penalty`,
/// `logit_bias`, `seed`, `service_tier`, `store`, `metadata`, `prediction`, `modalities`,
/// `audio`, `stream_options`, message `name`, `refusal`, image `detail`, tool `strict`, and any
/// other field Anthropic does not define (it rejects unknown fields). When `reasoning_effort`
/// turns thinking on, `temperature`, `top_p` and `top_k` are dropped too (Anthropic rejects
/// them with thinking); thinking itself is left off with forced tool use, a prefill or a
/// tool-loop continuation.
pub fn to_anthropic_request(
    openai_body: &[u8],
    upstream_model: &str,
) -> Result<Vec<u8>, GatewayError> {
    request::convert(openai_body, upstream_model)
}

/// Translator for an Anthropic answer (JSON when `!stream`, SSE when `stream`) → OpenAI
/// `chat.completion` / `chat.completion.chunk` stream ending in `data: [DONE]`. `client_model`
/// is put in `model`. The usage-only final chunk (`choices:[]`) is emitted iff `include_usage`
/// (the client's `stream_options.include_usage`). Usage maps incl. cache tokens
/// (`prompt_tokens` = input + cache_creation + cache_read; `cached_tokens` = cache_read).
pub fn from_anthropic_response(
    stream: bool,
    client_model: &str,
    include_usage: bool,
) -> Box<dyn ResponseTranslator> {
    let created = now_secs();
    if stream {
        Box::new(response::StreamToOpenAi::new(
            client_model,
            include_usage,
            created,
        ))
    } else {
        Box::new(response::JsonToOpenAi::new(client_model, created))
    }
}

/// Anthropic Messages request (what Claude Code / the Anthropic SDK send to `/v1/messages`) →
/// OpenAI chat request (docs/translation.md D), `model` = `upstream_model`. When `stream` is true,
/// `stream_options.include_usage` is set so usage can be reported in `message_delta`.
/// Dropped: `top_k`, `cache_control`, `service_tier`, `container`, `mcp_servers`, server tools
/// (`web_search_…`, `bash_…`: they run on Anthropic's side), thinking blocks in the history
/// (an OpenAI-format model cannot verify their signatures), and `thinking` itself unless the
/// upstream model is an OpenAI reasoning model.
pub fn to_openai_request(
    anthropic_body: &[u8],
    upstream_model: &str,
) -> Result<Vec<u8>, GatewayError> {
    client_request::convert(anthropic_body, upstream_model)
}

/// Translator for an OpenAI answer (JSON, or SSE incl. the include_usage chunk and `[DONE]`) →
/// Anthropic message JSON or the full Anthropic SSE sequence (`message_start`,
/// `content_block_start`/`delta`/`stop` for text and tool_use with `input_json_delta`,
/// `message_delta` with stop_reason and usage, `message_stop`). `client_model` goes in `model`.
pub fn to_anthropic_response(stream: bool, client_model: &str) -> Box<dyn ResponseTranslator> {
    if stream {
        Box::new(client_response::StreamToAnthropic::new(client_model))
    } else {
        Box::new(client_response::JsonToAnthropic::new(client_model))
    }
}

/// An Anthropic error answer (`{"type":"error","error":{"type","message"}}`, or anything else)
/// from provider `provider` with HTTP `status` → [`GatewayError`] for an OpenAI-dialect client:
/// 529 `overloaded_error` becomes 503 (OpenAI clients do not know 529; both SDKs retry any 5xx),
/// every other status is kept; the message is kept; `upstream_type`/`upstream_code` carry the
/// OpenAI type and code for the status (docs/translation.md E). A refusal of the gateway's own key
/// or account (401, 402, 403, `authentication_error`, `billing_error`, `permission_error`, or
/// Anthropic's 400 "credit balance is too low") is [`GatewayError::provider_auth`] instead:
/// the gateway's 502 in either dialect, none of the provider's text.
pub fn upstream_error(provider: &str, status: u16, body: &[u8]) -> GatewayError {
    let parsed = serde_json::from_slice::<ErrorEnvelope>(body).ok();
    let about_the_account = parsed.as_ref().is_some_and(|p| {
        matches!(
            p.error.kind.as_deref(),
            Some("authentication_error" | "billing_error" | "permission_error")
        ) || p
            .error
            .message
            .as_deref()
            .is_some_and(|m| m.contains("credit balance is too low"))
    });
    if matches!(status, 401..=403) || about_the_account {
        return GatewayError::provider_auth(provider, status, &String::from_utf8_lossy(body));
    }
    let (anthropic_type, message) = match parsed {
        Some(ErrorEnvelope { error }) => (
            error.kind,
            error
                .message
                .unwrap_or_else(|| format!("provider {provider} answered {status}")),
        ),
        None => (None, quote_error(provider, status, body)),
    };
    let status = if status == 529 { 503 } else { status };
    let (openai_type, code) = openai_type_and_code(status, anthropic_type.as_deref(), &message);
    GatewayError {
        upstream_type: Some(openai_type.to_string()),
        upstream_code: code.map(str::to_string),
        ..GatewayError::new(ErrorKind::UpstreamStatus(status), message)
    }
}

/// Input-token estimate for `POST /v1/messages/count_tokens` when the model is not served by
/// Anthropic: system + messages (text, tool_use input JSON, tool_result content) + tool
/// definitions, counted with o200k_base, plus fixed overheads (documented on the constants of
/// the `tokens` submodule): 4 per message, 3 for the reply, 8 per tool and 346 for the tool
/// system prompt, 1600 per image and 2000 per non-text document.
pub fn count_tokens_estimate(anthropic_body: &[u8]) -> Result<u64, GatewayError> {
    tokens::estimate(anthropic_body)
}

// ---------------------------------------------------------------------------------------------
// Error conversion (docs/translation.md E) and helpers shared by the submodules.

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
}

/// The OpenAI `type` and `code` an OpenAI client reads for an upstream failure with `status`.
/// The SDKs pick their exception from the status; these only have to read naturally.
fn openai_type_and_code(
    status: u16,
    anthropic_type: Option<&str>,
    message: &str,
) -> (&'static str, Option<&'static str>) {
    match status {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        402 => ("insufficient_quota", Some("insufficient_quota")),
        403 => ("invalid_request_error", Some("permission_denied")),
        404 if message.contains("model") => ("invalid_request_error", Some("model_not_found")),
        404 => ("invalid_request_error", Some("not_found")),
        413 => ("invalid_request_error", Some("request_too_large")),
        429 => ("rate_limit_error", Some("rate_limit_exceeded")),
        503 if anthropic_type == Some("overloaded_error") => {
            ("server_error", Some("server_is_overloaded"))
        }
        504 => ("server_error", Some("timeout")),
        s if s >= 500 => ("server_error", None),
        _ => ("invalid_request_error", None),
    }
}

/// The HTTP status Anthropic gives each error `type` (its API's error reference), for errors that arrive
/// inside a 200 stream or body and so carry no status of their own.
fn status_of_anthropic_type(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

/// An OpenAI `error` object that arrived inside a 200 answer → a [`GatewayError`] whose status
/// (and so whose Anthropic `type`) follows the OpenAI `type`/`code`.
fn openai_error(error: &Value) -> GatewayError {
    let text = |key: &str| error.get(key).and_then(Value::as_str).unwrap_or("");
    let (kind, code) = (text("type"), text("code"));
    let has = |needle: &str| kind.contains(needle) || code.contains(needle);
    let status = if has("rate_limit") || has("quota") || kind == "requests" || kind == "tokens" {
        429
    } else if has("invalid_api_key") || has("authentication") {
        401
    } else if has("overloaded") || has("unavailable") {
        503
    } else if has("timeout") {
        504
    } else if kind == "invalid_request_error" {
        400
    } else {
        500
    };
    let message = match text("message") {
        "" => "the upstream model failed".to_string(),
        m => m.to_string(),
    };
    GatewayError::new(ErrorKind::UpstreamStatus(status), message)
}

/// A non-JSON error body quoted, shortened, inside a readable message.
fn quote_error(provider: &str, status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let quoted: String = text.trim().chars().take(MAX_QUOTED_ERROR).collect();
    if quoted.is_empty() {
        format!("provider {provider} answered {status}")
    } else {
        format!("provider {provider} answered {status}: {quoted}")
    }
}

/// The provider broke its own protocol (cut stream, unreadable event).
fn protocol_error(message: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorKind::UpstreamProtocol, message)
}

/// Seconds since the epoch, for OpenAI's `created`.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Serializes a value the gateway built itself.
fn to_bytes(value: &Value) -> Result<Vec<u8>, GatewayError> {
    serde_json::to_vec(value).map_err(|e| GatewayError::internal("encoding JSON", e))
}

/// Appends one SSE event: `event: <name>` when named (Anthropic), then `data: <json>`.
fn put_event(out: &mut Vec<u8>, name: Option<&str>, data: &Value) -> Result<(), GatewayError> {
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut *out, data)
        .map_err(|e| GatewayError::internal("encoding JSON", e))?;
    out.extend_from_slice(b"\n\n");
    Ok(())
}

/// A tool-call id restricted to `[A-Za-z0-9_-]` (Anthropic's rule), the same way on both sides
/// of a conversation so `tool_use.id` and `tool_result.tool_use_id` still match.
fn sanitize_tool_id(id: &str) -> String {
    id.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '-' => c,
            _ => '_',
        })
        .collect()
}

/// A fresh Anthropic-style tool id, for upstreams that send none.
fn synthesize_tool_id() -> String {
    format!("toolu_{}", crate::ids::random_hex())
}

/// `data:<mime>;base64,<data>` → (mime, data); `None` for anything else.
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let (header, data) = url.strip_prefix("data:")?.split_once(',')?;
    let mut params = header.split(';');
    let mime = params.next().filter(|m| !m.is_empty())?;
    params.any(|p| p == "base64").then_some((mime, data))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "anthropic/tests.rs"]
mod tests;
