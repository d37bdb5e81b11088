//! The gateway as a client of Google Gemini's native API (`generateContent`,
//! `streamGenerateContent?alt=sse`, `embedContent`, `batchEmbedContents`).
//!
//! OpenAI clients reach Gemini models through these pure functions: the request body is
//! rewritten into Gemini's shape ([`request`], docs/translation.md C1), the answer is rewritten
//! back chunk by chunk ([`response`], C2, C3), embeddings go both ways ([`embeddings`], C4), and
//! Google error answers become [`GatewayError`]s with OpenAI-style types and codes
//! ([`upstream_error`], E). The proxy builds the URL (`{base}/models/{model}:…`) and the
//! `x-goog-api-key` header; nothing here does I/O.
//!
//! Layout: this file holds the constants, the helpers the submodules share and the error
//! conversion; `request` (with `messages` and `schema`) converts requests, `response` (with its
//! `stream`) converts answers, `embeddings` does both directions for `/v1/embeddings`.
//!
//! Tool-call ids: Gemini answers carry no call ids, so ids are synthesized as
//! `call_<random>_<n>` (unique across turns, so clients that key results by id never see a
//! repeat). When a `functionCall` part carries a `thoughtSignature` (Gemini 3 rejects a replayed
//! call without it), the signature rides inside the id as `…__thought__<base64url>`; the id
//! stays within `[A-Za-z0-9_-]`, and the request conversion puts the signature back.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use crate::clock::unix_secs;
use crate::error::{ErrorKind, GatewayError};
use crate::providers::errors::{self, quoted_message};

pub mod embeddings;
mod messages;
pub mod request;
pub mod response;
mod schema;

/// Name used in messages when the caller gave none (translators are built without one).
const PROVIDER: &str = "gemini";

/// Separates a synthesized tool-call id from the thought signature it carries.
const THOUGHT_SEPARATOR: &str = "__thought__";

/// A provider answer that broke the expected shape: `what` could not be read.
fn protocol_error(what: &str, e: impl std::fmt::Display) -> GatewayError {
    errors::protocol_error(format!(
        "{PROVIDER} sent {what} that could not be read: {e}"
    ))
}

/// The tool-call id for the `n`th call of an answer, carrying the call's thought signature (a
/// standard-base64 string from Gemini) as unpadded base64url so the id stays id-safe.
fn tool_call_id(nonce: &str, n: usize, signature: Option<&str>) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    match signature.and_then(|s| b64.decode(s).ok()) {
        Some(bytes) => format!("call_{nonce}_{n}{THOUGHT_SEPARATOR}{}", url.encode(bytes)),
        None => format!("call_{nonce}_{n}"),
    }
}

/// The thought signature carried by a tool-call id made by [`tool_call_id`], as Gemini's
/// standard base64.
fn signature_from_id(id: &str) -> Option<String> {
    let (_, encoded) = id.split_once(THOUGHT_SEPARATOR)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Per-answer values that are not in the upstream bytes: the `created` time and the random
/// part of ids. Fixed in tests, so output is comparable.
#[derive(Clone)]
struct Stamp {
    pub created: u64,
    pub nonce: String,
}

impl Stamp {
    pub fn fresh() -> Self {
        let created = unix_secs();
        let mut nonce = crate::ids::random_hex();
        nonce.truncate(16);
        Self { created, nonce }
    }

    /// `chatcmpl-<responseId>`, or a random id when Gemini sent none.
    pub fn completion_id(&self, response_id: Option<&str>) -> String {
        format!("chatcmpl-{}", response_id.unwrap_or(&self.nonce))
    }
}

/// The error a Gemini error object (in a 200 body or a stream event) stands for.
fn embedded_error(error: &Value, raw: &[u8]) -> GatewayError {
    let status = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..=599).contains(c))
        .unwrap_or(500);
    upstream_error(PROVIDER, status, raw)
}

// ---------------------------------------------------------------------------------------------
// Error conversion
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct GoogleError {
    message: Option<String>,
    status: Option<String>,
    details: Vec<Value>,
}

impl GoogleError {
    /// The first `details[]` entry whose `@type` ends with `suffix`.
    fn detail(&self, suffix: &str) -> Option<&Value> {
        self.details.iter().find(|d| {
            d.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with(suffix))
        })
    }

    fn has_reason(&self, reason: &str) -> bool {
        self.details
            .iter()
            .any(|d| d.get("reason").and_then(Value::as_str) == Some(reason))
    }

    /// `RetryInfo.retryDelay` ("30s", "1.5s") in whole seconds, rounded up.
    fn retry_after(&self) -> Option<u64> {
        let delay = self
            .detail("google.rpc.RetryInfo")?
            .get("retryDelay")?
            .as_str()?;
        let secs: f64 = delay.strip_suffix('s')?.parse().ok()?;
        (secs.is_finite() && secs >= 0.0).then(|| secs.ceil() as u64)
    }

    /// Whether a `QuotaFailure` names a per-day quota: waiting a minute will not help, which is
    /// what OpenAI's `insufficient_quota` tells a client.
    fn daily_quota(&self) -> bool {
        self.detail("google.rpc.QuotaFailure")
            .and_then(|d| d.get("violations"))
            .and_then(Value::as_array)
            .is_some_and(|vs| {
                vs.iter().any(|v| {
                    v.get("quotaId")
                        .and_then(Value::as_str)
                        .is_some_and(|id| id.contains("PerDay"))
                })
            })
    }
}

/// A Google error answer as a [`GatewayError`] with the same HTTP status and Google's message.
///
/// Why each choice (docs/translation.md E):
/// - a refusal of the gateway's own key or project (401, 402, 403, `UNAUTHENTICATED`,
///   `PERMISSION_DENIED`, reason `API_KEY_INVALID` (which Google sends as 400) or
///   `BILLING_DISABLED`) is [`GatewayError::provider_auth`]: the gateway's 502, none of
///   Google's text, since it is the operator's to fix, not the client's;
/// - any other status is kept;
/// - `upstream_code` carries OpenAI's machine-readable code where one exists:
///   404 `model_not_found`, 429 `rate_limit_exceeded` (or
///   `insufficient_quota` with type `insufficient_quota` when a per-day quota is spent), 503
///   `server_is_overloaded`, 400 `context_length_exceeded` when the input is over the model's
///   limit;
/// - `upstream_type` is left unset otherwise: the status then gives each dialect its own type
///   (OpenAI `invalid_request_error` / `rate_limit_error` / `server_error`, Anthropic
///   `not_found_error`, `permission_error`, `overloaded_error`, …), which a fixed OpenAI type
///   would hide from Anthropic clients;
/// - `RetryInfo.retryDelay` becomes `retry_after`.
///
/// A body that is not Google JSON (a proxy's HTML page) is quoted, shortened, like
/// `openai::upstream_error` does. The JSON may also come wrapped in an array, as
/// `streamGenerateContent` without `alt=sse` and Google's compat surface send it.
pub fn upstream_error(provider: &str, status: u16, body: &[u8]) -> GatewayError {
    let parsed = parse_google_error(body);
    let google_status = parsed
        .as_ref()
        .and_then(|e| e.status.as_deref())
        .unwrap_or("");
    // the gateway's own key or project refused (a bad key comes as 400 API_KEY_INVALID)
    let refused = matches!(status, 401..=403)
        || matches!(google_status, "UNAUTHENTICATED" | "PERMISSION_DENIED")
        || parsed
            .as_ref()
            .is_some_and(|e| e.has_reason("API_KEY_INVALID") || e.has_reason("BILLING_DISABLED"));
    if refused {
        return GatewayError::provider_auth(provider, status, &String::from_utf8_lossy(body));
    }
    let Some(error) = parsed else {
        let message = quoted_message(provider, status, body);
        return GatewayError::new(ErrorKind::UpstreamStatus(status), message);
    };
    let message = error
        .message
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| format!("provider {provider} answered {status}"));
    let (upstream_type, upstream_code) = match status {
        404 => (None, Some("model_not_found")),
        429 if error.daily_quota() => (Some("insufficient_quota"), Some("insufficient_quota")),
        429 => (None, Some("rate_limit_exceeded")),
        503 => (None, Some("server_is_overloaded")),
        400 if message.contains("exceeds the maximum number of tokens") => {
            (None, Some("context_length_exceeded"))
        }
        _ => (None, None),
    };
    GatewayError {
        upstream_type: upstream_type.map(str::to_string),
        upstream_code: upstream_code.map(str::to_string),
        retry_after: error.retry_after(),
        ..GatewayError::new(ErrorKind::UpstreamStatus(status), message)
    }
}

/// `{"error":{…}}`, or the same as the first element of an array.
fn parse_google_error(body: &[u8]) -> Option<GoogleError> {
    let value = match serde_json::from_slice::<Value>(body).ok()? {
        Value::Array(items) => items.into_iter().next()?,
        other => other,
    };
    let error = value.get("error").filter(|e| e.is_object())?;
    serde_json::from_value(error.clone()).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::dialect::Dialect;

    fn google(code: u16, status: &str, message: &str, details: &str) -> Vec<u8> {
        format!(
            r#"{{"error":{{"code":{code},"message":"{message}","status":"{status}","details":[{details}]}}}}"#
        )
        .into_bytes()
    }

    fn rendered(e: &GatewayError) -> (Value, Value) {
        let o = serde_json::from_slice(&e.body(Dialect::OpenAi)).unwrap();
        let a = serde_json::from_slice(&e.body(Dialect::Anthropic)).unwrap();
        (o, a)
    }

    #[test]
    fn every_google_status_keeps_its_http_status_and_message() {
        // (http, google status, OpenAI type, OpenAI code, Anthropic type)
        let cases = [
            (
                400,
                "INVALID_ARGUMENT",
                "invalid_request_error",
                Value::Null,
                "invalid_request_error",
            ),
            (
                400,
                "FAILED_PRECONDITION",
                "invalid_request_error",
                Value::Null,
                "invalid_request_error",
            ),
            // 401/403 and API_KEY_INVALID refuse the gateway's own key: src/error_tests.rs
            (
                404,
                "NOT_FOUND",
                "invalid_request_error",
                "model_not_found".into(),
                "not_found_error",
            ),
            (
                429,
                "RESOURCE_EXHAUSTED",
                "rate_limit_error",
                "rate_limit_exceeded".into(),
                "rate_limit_error",
            ),
            (500, "INTERNAL", "server_error", Value::Null, "api_error"),
            (
                503,
                "UNAVAILABLE",
                "server_error",
                "server_is_overloaded".into(),
                "overloaded_error",
            ),
            (
                504,
                "DEADLINE_EXCEEDED",
                "server_error",
                Value::Null,
                "timeout_error",
            ),
        ];
        for (http, status, otype, ocode, atype) in cases {
            let e = upstream_error("gemini", http, &google(http, status, "boom", ""));
            assert_eq!(e.status(), http, "{status}");
            assert_eq!(e.message, "boom");
            let (o, a) = rendered(&e);
            assert_eq!(o["error"]["type"], otype, "{status}");
            assert_eq!(o["error"]["code"], ocode, "{status}");
            assert_eq!(o["error"]["message"], "boom");
            assert_eq!(a["error"]["type"], atype, "{status}");
        }
    }

    #[test]
    fn an_invalid_provider_key_is_the_gateways_502() {
        let body = google(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            r#"{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}"#,
        );
        let e = upstream_error("gemini", 400, &body);
        assert_eq!(e.status(), 502);
        let (o, a) = rendered(&e);
        assert_eq!(o["error"]["code"], "provider_auth_failed");
        assert_eq!(a["error"]["type"], "api_error");
        assert!(!o.to_string().contains("API key not valid"));
    }

    #[test]
    fn rate_limit_carries_retry_delay() {
        let body = google(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota",
            r#"{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"m","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
               {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"12.5s"}"#,
        );
        let e = upstream_error("gemini", 429, &body);
        assert_eq!(e.status(), 429);
        assert_eq!(e.retry_after, Some(13));
        assert_eq!(rendered(&e).0["error"]["code"], "rate_limit_exceeded");
    }

    #[test]
    fn daily_quota_is_insufficient_quota() {
        let body = google(
            429,
            "RESOURCE_EXHAUSTED",
            "quota",
            r#"{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}"#,
        );
        let e = upstream_error("gemini", 429, &body);
        let (o, a) = rendered(&e);
        assert_eq!(o["error"]["type"], "insufficient_quota");
        assert_eq!(o["error"]["code"], "insufficient_quota");
        assert_eq!(a["error"]["type"], "rate_limit_error");
    }

    #[test]
    fn context_overflow_gets_openai_code() {
        let body = google(
            400,
            "INVALID_ARGUMENT",
            "The input token count (2000000) exceeds the maximum number of tokens allowed (1048576).",
            "",
        );
        let e = upstream_error("gemini", 400, &body);
        assert_eq!(e.status(), 400);
        assert_eq!(rendered(&e).0["error"]["code"], "context_length_exceeded");
    }

    #[test]
    fn array_wrapped_error_is_read() {
        let body = format!(
            "[{}]",
            String::from_utf8(google(404, "NOT_FOUND", "no model", "")).unwrap()
        );
        let e = upstream_error("gemini", 404, body.as_bytes());
        assert_eq!(e.message, "no model");
        assert_eq!(e.upstream_code.as_deref(), Some("model_not_found"));
    }

    #[test]
    fn non_json_error_is_quoted() {
        let e = upstream_error("gem", 502, b"<html>Bad Gateway</html>");
        assert_eq!(e.status(), 502);
        assert_eq!(
            e.message,
            "provider gem answered 502: <html>Bad Gateway</html>"
        );
        let e = upstream_error("gem", 500, b"");
        assert_eq!(e.message, "provider gem answered 500");
    }

    #[test]
    fn thought_signature_round_trips_through_an_id() {
        // Bytes whose standard base64 has `+`, `/` and padding: "++//AQ==".
        let sig = base64::engine::general_purpose::STANDARD.encode([0xfb, 0xef, 0xff, 0x01]);
        assert_eq!(sig, "++//AQ==");
        let id = tool_call_id("abc", 2, Some(&sig));
        assert!(id.starts_with("call_abc_2__thought__"));
        assert!(id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        assert_eq!(signature_from_id(&id).as_deref(), Some(sig.as_str()));
        assert_eq!(tool_call_id("abc", 0, None), "call_abc_0");
        assert_eq!(signature_from_id("call_abc_0"), None);
    }
}
