//! The errors translators make of what an upstream sent: a broken protocol, an error answer
//! that is not the provider's JSON, an OpenAI `error` object inside a 200 answer.

use serde_json::Value;

use crate::error::{ErrorKind, GatewayError};

/// Longest upstream error text quoted back to the client when it is not the provider's JSON.
const MAX_QUOTED_ERROR: usize = 512;

/// The provider broke its own protocol (cut stream, unreadable event or answer).
pub(crate) fn protocol_error(message: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorKind::UpstreamProtocol, message)
}

/// The message for an error answer that is not the provider's JSON (a proxy's HTML page, plain
/// text): the status and the body's text, trimmed and shortened, or the status alone.
pub(crate) fn quoted_message(provider: &str, status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let quoted: String = text.trim().chars().take(MAX_QUOTED_ERROR).collect();
    if quoted.is_empty() {
        format!("provider {provider} answered {status}")
    } else {
        format!("provider {provider} answered {status}: {quoted}")
    }
}

/// An OpenAI `error` object that arrived inside a 200 answer (a JSON body or a stream chunk)
/// → the [`GatewayError`] it stands for. It carries no HTTP status of its own, so the status
/// (and with it the client dialect's error type) is read from its `type` and `code`; the
/// message is kept.
pub(crate) fn openai_error(error: &Value) -> GatewayError {
    let text = |key: &str| error.get(key).and_then(Value::as_str).unwrap_or("");
    let (kind, code) = (text("type"), text("code"));
    let has = |needle: &str| kind.contains(needle) || code.contains(needle);
    // `requests` and `tokens` are the types of OpenAI's own rate-limit errors
    let status = if has("rate_limit") || has("quota") || kind == "requests" || kind == "tokens" {
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
    let message = match text("message") {
        "" => "the upstream model failed",
        m => m,
    };
    GatewayError::new(ErrorKind::UpstreamStatus(status), message)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn openai_errors_inside_answers_get_statuses_by_type() {
        let cases = [
            (json!({"type": "server_error", "message": "boom"}), 500),
            (
                json!({"type": "requests", "code": "rate_limit_exceeded", "message": "x"}),
                429,
            ),
            (json!({"type": "insufficient_quota", "message": "x"}), 429),
            (
                json!({"type": "invalid_request_error", "code": "invalid_api_key"}),
                401,
            ),
            (
                json!({"type": "service_unavailable_error", "message": "x"}),
                503,
            ),
            (
                json!({"type": "invalid_request_error", "message": "x"}),
                400,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(openai_error(&error).status(), status, "{error}");
        }
        assert_eq!(
            openai_error(&json!({})).message,
            "the upstream model failed"
        );
    }
}
