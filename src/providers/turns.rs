//! What the formats that want strictly alternating turns (Gemini's `contents`, Bedrock
//! Converse's `messages`) share when a chat's messages become theirs: turns of one role
//! merged, empty ones skipped, and a message's text parts and tool calls read the same way.

use serde_json::{json, Value};

use crate::error::GatewayError;

/// The request field the errors name.
const PARAM: &str = "messages";

fn bad(message: String) -> GatewayError {
    GatewayError::invalid(PARAM, message)
}

/// Turns in order, each a role and its blocks.
pub(crate) struct Turns<R>(Vec<(R, Vec<Value>)>);

impl<R: PartialEq> Turns<R> {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    /// `blocks` as `role`'s: added to the last turn when it is that role's (the formats refuse
    /// two turns of one role in a row), else a new turn; nothing when there are none.
    pub(crate) fn push(&mut self, role: R, blocks: Vec<Value>) {
        if blocks.is_empty() {
            return;
        }
        match self.0.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => self.0.push((role, blocks)),
        }
    }

    /// Each turn as `{"role": name(role), content_key: blocks}`; at least one is required.
    pub(crate) fn into_json(
        self,
        name: impl Fn(&R) -> &'static str,
        content_key: &str,
    ) -> Result<Vec<Value>, GatewayError> {
        if self.0.is_empty() {
            return Err(bad(
                "`messages` needs at least one user or assistant message with content".into(),
            ));
        }
        Ok(self
            .0
            .into_iter()
            .map(|(role, blocks)| json!({ "role": name(&role), content_key: blocks }))
            .collect())
    }
}

/// The `text` of a message's text part `i`.
pub(crate) fn part_text(part: &Value, i: usize) -> Result<&str, GatewayError> {
    part.get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("messages[{i}]: a text part has no `text`")))
}

/// The non-empty texts of message `i`'s content: a string or an array of `text` (and
/// `refusal`, skipped) parts.
pub(crate) fn texts(content: Option<&Value>, i: usize) -> Result<Vec<String>, GatewayError> {
    let mut out = Vec::new();
    match content {
        None => {}
        Some(Value::String(s)) => out.push(s.clone()),
        Some(Value::Array(parts)) => {
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => out.push(part_text(part, i)?.to_string()),
                    Some("refusal") => {}
                    _ => {
                        return Err(bad(format!(
                            "messages[{i}]: only text parts are allowed in this message"
                        )))
                    }
                }
            }
        }
        Some(_) => {
            return Err(bad(format!(
                "messages[{i}].content must be a string or an array"
            )))
        }
    }
    out.retain(|t| !t.is_empty());
    Ok(out)
}

/// Message `i`'s `tool_calls` (none when absent or null).
pub(crate) fn tool_calls(message: &Value, i: usize) -> Result<&[Value], GatewayError> {
    match message.get("tool_calls") {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(calls)) => Ok(calls),
        Some(_) => Err(bad(format!("messages[{i}].tool_calls must be an array"))),
    }
}

/// A tool call's `function.name` (in message `i`).
pub(crate) fn call_name(call: &Value, i: usize) -> Result<&str, GatewayError> {
    call.get("function")
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("messages[{i}]: a tool call has no function.name")))
}

/// Tool call `name`'s arguments as the JSON object they must be (`{}` when there are none).
pub(crate) fn call_input(call: &Value, name: &str, i: usize) -> Result<Value, GatewayError> {
    let arguments = call
        .get("function")
        .and_then(|f| f.get("arguments"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(bad(format!(
            "messages[{i}]: the arguments of tool call `{name}` are not a JSON object"
        ))),
    }
}
