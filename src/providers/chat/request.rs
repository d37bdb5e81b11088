//! An OpenAI chat request as the translators pass it to each other: parsed, not bytes.

use std::borrow::Borrow;

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::THINKING_BLOCKS;
use crate::error::GatewayError;
use crate::providers::json::{parse_object, to_bytes};

/// An OpenAI chat request body, parsed: what the client-side translators produce and the
/// upstream-side ones read.
///
/// It is the JSON object itself rather than typed fields: both sides accept several shapes per
/// field (a string or content parts, a string or an object) and every rejection must name the
/// field at fault, which the converters do as they read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct ChatRequest(Map<String, Value>);

impl ChatRequest {
    /// An OpenAI client's request body, or a 400 saying why it is not a JSON object.
    pub fn parse(body: &[u8]) -> Result<Self, GatewayError> {
        parse_object(body).map(Self)
    }

    /// The request's fields (`null` values included: read them with
    /// [`field`](crate::providers::json::field)).
    pub fn fields(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The body for an OpenAI-format provider, without the gateway's own message field
    /// ([`THINKING_BLOCKS`]: another provider's signed reasoning means nothing to this one).
    pub fn to_bytes(&self) -> Result<Vec<u8>, GatewayError> {
        let carries_thinking = |m: &Value| m.get(THINKING_BLOCKS).is_some();
        let messages = self.0.get("messages").and_then(Value::as_array);
        if !messages.is_some_and(|ms| ms.iter().any(carries_thinking)) {
            return to_bytes(&self.0);
        }
        let mut fields = self.0.clone();
        if let Some(Value::Array(messages)) = fields.get_mut("messages") {
            for message in messages.iter_mut().filter_map(Value::as_object_mut) {
                message.remove(THINKING_BLOCKS);
            }
        }
        to_bytes(&fields)
    }
}

/// A chat `assistant` message for the history of a request: `texts` joined by newlines (`null`
/// content when there are only calls) and the `tool_calls`; `None` when there is neither.
pub(crate) fn assistant_message<S: Borrow<str>>(texts: &[S], calls: Vec<Value>) -> Option<Value> {
    if texts.is_empty() && calls.is_empty() {
        return None;
    }
    let content = if texts.is_empty() {
        Value::Null
    } else {
        Value::String(texts.join("\n"))
    };
    let mut message = json!({"role": "assistant", "content": content});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    Some(message)
}

impl From<Map<String, Value>> for ChatRequest {
    /// A request a client-side translator built.
    fn from(fields: Map<String, Value>) -> Self {
        Self(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_openai_format_provider_never_gets_another_providers_thinking() {
        let body = json!({"model": "m", "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a",
             "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "s"}]},
            {"role": "user", "content": "q2"}]});
        let chat = ChatRequest::parse(body.to_string().as_bytes()).unwrap();
        let sent: Value = serde_json::from_slice(&chat.to_bytes().unwrap()).unwrap();
        assert_eq!(
            sent["messages"][1],
            json!({"role": "assistant", "content": "a"})
        );
        // the request itself still carries them for an Anthropic upstream
        assert!(chat.fields()["messages"][1]
            .get("thinking_blocks")
            .is_some());
    }
}
