//! The request checks of the real Messages API that the emulator knows (listed in the
//! parent module doc), each answered with its 400 `invalid_request_error` wording.

use serde_json::Value;

use super::{invalid, thinking, Reply};

/// The body rules of the module doc, in the real API's wording.
pub fn validate(req: &Value, count: bool) -> Result<(), Reply> {
    let Some(obj) = req.as_object() else {
        return Err(invalid("body: Input should be a valid dictionary"));
    };
    let fail = |msg: &str| Err(invalid(msg));
    if !obj.get("model").is_some_and(Value::is_string) {
        return fail("model: Field required");
    }
    if !count {
        match obj.get("max_tokens").map(Value::as_i64) {
            None => return fail("max_tokens: Field required"),
            Some(None) => return fail("max_tokens: Input should be a valid integer"),
            Some(Some(n)) if n < 1 => {
                return fail("max_tokens: Input should be greater than or equal to 1")
            }
            Some(Some(_)) => {}
        }
    }
    let messages = match obj.get("messages") {
        None => return fail("messages: Field required"),
        Some(Value::Array(m)) if m.is_empty() => {
            return fail("messages: at least one message is required")
        }
        Some(Value::Array(m)) => m,
        Some(_) => return fail("messages: Input should be a valid list"),
    };
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str);
        match role {
            // Claude Code 2.x sends system messages between the turns, and the API takes
            // them (seen on the wire), so the emulator does too.
            Some("user" | "assistant" | "system") => {}
            _ => {
                let msg = format!("messages.{i}.role: Input should be 'user' or 'assistant'");
                return fail(&msg);
            }
        }
        let empty = match m.get("content") {
            Some(Value::String(s)) => s.is_empty(),
            Some(Value::Array(blocks)) => {
                let empty_text = |b: &Value| {
                    b.get("type").and_then(Value::as_str) == Some("text")
                        && b.get("text")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .is_empty()
                };
                if blocks.iter().any(empty_text) {
                    return fail("messages: text content blocks must be non-empty");
                }
                blocks.is_empty()
            }
            None => return fail(&format!("messages.{i}.content: Field required")),
            Some(_) => {
                return fail(&format!(
                    "messages.{i}.content: Input should be a valid list"
                ))
            }
        };
        let prefill = i + 1 == messages.len() && role == Some("assistant");
        if empty && !prefill {
            let msg = format!(
                "messages.{i}: all messages must have non-empty content except for the optional \
                 final assistant message"
            );
            return fail(&msg);
        }
    }
    thinking::check(req, messages).map_err(|msg| invalid(&msg))?;
    match obj.get("temperature") {
        None | Some(Value::Null) => Ok(()),
        Some(t) => match t.as_f64() {
            None => fail("temperature: Input should be a valid number"),
            Some(x) if x < 0.0 => fail("temperature: Input should be greater than or equal to 0"),
            Some(x) if x > 1.0 => fail("temperature: Input should be less than or equal to 1"),
            Some(_) => Ok(()),
        },
    }
}
