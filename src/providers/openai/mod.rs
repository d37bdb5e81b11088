//! OpenAI's wire format, for api.openai.com and every OpenAI-compatible host.
//!
//! Clients on the OpenAI endpoints talk to these providers in passthrough: the body goes up
//! unchanged except for the model name, and the answer comes back byte for byte.

use bytes::Bytes;
use serde::Deserialize;

use super::{Provider, UpstreamRequest};
use crate::endpoint::Endpoint;
use crate::error::{ErrorKind, GatewayError};
use crate::providers::errors::quoted_message;
use crate::request::Peeked;

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    param: Option<String>,
    code: Option<serde_json::Value>,
}

/// The upstream request: the endpoint's path on the provider (Azure: on the deployment), the body with
/// the upstream model name spliced in (and usage requested for streams, see
/// [`Peeked::for_openai_upstream`]), and the provider's bearer key.
pub fn prepare(
    provider: &Provider,
    endpoint: &Endpoint,
    body: &Bytes,
    peeked: &Peeked,
    upstream_model: &str,
) -> Result<UpstreamRequest, GatewayError> {
    let suffix = match endpoint {
        Endpoint::ChatCompletions => "/chat/completions",
        Endpoint::Embeddings => "/embeddings",
        _ => {
            return Err(GatewayError::new(
                ErrorKind::Internal,
                "not an OpenAI passthrough endpoint",
            ))
        }
    };
    Ok(provider.request(
        provider.openai_path(suffix, upstream_model),
        peeked.for_openai_upstream(body, upstream_model),
    ))
}

/// OpenAI error codes (and types) about the account behind the key, not the request:
/// `insufficient_quota` comes with a 429 but is an unpaid bill, not a rate limit.
const ACCOUNT_CODES: [&str; 4] = [
    "insufficient_quota",
    "billing_not_active",
    "billing_hard_limit_reached",
    "account_deactivated",
];

/// Whether an error answer is about the gateway's own provider key or account: 401, 402,
/// 403, or one of [`ACCOUNT_CODES`] as the `code` or `type`.
fn refuses_the_gateway(status: u16, error: Option<&ErrorBody>) -> bool {
    let names = |e: &ErrorBody| {
        let code = match &e.code {
            Some(serde_json::Value::String(c)) => Some(c.as_str()),
            _ => None,
        };
        ACCOUNT_CODES
            .iter()
            .any(|c| code == Some(*c) || e.kind.as_deref() == Some(*c))
    };
    matches!(status, 401..=403) || error.is_some_and(names)
}

/// An OpenAI-format error answer as a [`GatewayError`] with the same status, message, type,
/// param and code. A body that is not OpenAI JSON (a proxy's HTML page, plain text) is quoted,
/// shortened, inside an OpenAI error so the client's SDK can still parse it. A refusal of the
/// gateway's own key or account is [`GatewayError::provider_auth`] instead: the gateway's
/// 502, none of the provider's text.
pub fn upstream_error(provider: &str, status: u16, body: &[u8]) -> GatewayError {
    let kind = ErrorKind::UpstreamStatus(status);
    let parsed = serde_json::from_slice::<ErrorEnvelope>(body);
    if refuses_the_gateway(status, parsed.as_ref().ok().map(|e| &e.error)) {
        return GatewayError::provider_auth(provider, status, &String::from_utf8_lossy(body));
    }
    match parsed {
        Ok(ErrorEnvelope { error }) => GatewayError {
            param: error.param,
            upstream_type: error.kind,
            upstream_code: error.code.and_then(|c| match c {
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            }),
            ..GatewayError::new(
                kind,
                error
                    .message
                    .unwrap_or_else(|| format!("provider {provider} answered {status}")),
            )
        },
        Err(_) => GatewayError::new(kind, quoted_message(provider, status, body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::Dialect;

    #[test]
    fn openai_error_keeps_its_fields() {
        let body = br#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        let e = upstream_error("openai", 429, body);
        assert_eq!(e.status(), 429);
        let v: serde_json::Value = serde_json::from_slice(&e.body(Dialect::OpenAi)).unwrap();
        assert_eq!(v["error"]["message"], "Rate limit reached");
        assert_eq!(v["error"]["type"], "requests");
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    }

    #[test]
    fn non_json_error_is_wrapped() {
        let e = upstream_error("emu", 502, b"<html>Bad Gateway</html>");
        assert_eq!(e.status(), 502);
        let v: serde_json::Value = serde_json::from_slice(&e.body(Dialect::OpenAi)).unwrap();
        assert_eq!(
            v["error"]["message"],
            "provider emu answered 502: <html>Bad Gateway</html>"
        );
        assert_eq!(v["error"]["type"], "server_error");
    }
}
