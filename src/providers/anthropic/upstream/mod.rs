//! The gateway as a client of Anthropic's Messages API: OpenAI chat request → Messages request
//! ([`request`], docs/translation.md A), Anthropic answer → OpenAI chat ([`response`], B), and
//! Anthropic error answers → [`GatewayError`] ([`upstream_error`], E).

use serde::Deserialize;

use crate::error::{ErrorKind, GatewayError};
use crate::providers::errors::quoted_message;

pub mod cache;
mod messages;
pub mod request;
pub mod response;

/// The tool the gateway adds to carry an OpenAI `response_format: json_schema` answer: Anthropic
/// has no structured-output switch, so the model is forced to call this tool and its `input`
/// becomes the message content. The name is the gateway's own, so a client tool never clashes
/// with it (a client tool of this name is rejected).
const JSON_OUTPUT_TOOL: &str = "cheapai_json_output";

/// The provider label in errors raised inside translators, which do not know the configured
/// provider name.
const ANTHROPIC: &str = "anthropic";

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
        None => (None, quoted_message(provider, status, body)),
    };
    let status = if status == 529 { 503 } else { status };
    let (openai_type, code) = openai_type_and_code(status, anthropic_type.as_deref(), &message);
    GatewayError {
        upstream_type: Some(openai_type.to_string()),
        upstream_code: code.map(str::to_string),
        ..GatewayError::new(ErrorKind::UpstreamStatus(status), message)
    }
}

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

/// `data:<mime>;base64,<data>` → (mime, data); `None` for anything else.
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let (header, data) = url.strip_prefix("data:")?.split_once(',')?;
    let mut params = header.split(';');
    let mime = params.next().filter(|m| !m.is_empty())?;
    params.any(|p| p == "base64").then_some((mime, data))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
