//! OpenAI chat `messages` → Converse's `system` blocks and `messages` (docs/translation.md F1).
//!
//! Converse wants turns that alternate, `user` first, each a non-empty list of content blocks;
//! a `toolResult` belongs in the user turn right after the assistant turn that made the call.
//! So: `system`/`developer` messages → `system: [{text}]` (in order, wherever they were);
//! `user` → `text` and `image` blocks; `assistant` → its signed reasoning
//! (`reasoningContent`), its text, then one `toolUse` per call; `tool` → a `toolResult` in a
//! user turn; consecutive turns of one role merged (so a turn's results share one user
//! message); empty texts and turns left without blocks dropped (Converse refuses both).
//!
//! Images: a base64 data URL → `{image: {format, source: {bytes}}}` (png, jpeg, gif, webp);
//! Converse takes no URL, and the gateway downloads nothing, so a remote URL is a 400 naming
//! `messages`. A tool result is its text (`[{text}]`, the text parts of an array joined;
//! `[{json: {}}]` when empty).

use serde_json::{json, Value};

use crate::error::GatewayError;
use crate::providers::chat::THINKING_BLOCKS;
use crate::providers::turns::{call_input, call_name, part_text, tool_calls, Turns};

const PARAM: &str = "messages";

/// The converted conversation.
pub(super) struct Converted {
    pub system: Vec<Value>,
    pub messages: Vec<Value>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    User,
    Assistant,
}

fn bad(message: String) -> GatewayError {
    GatewayError::invalid(PARAM, message)
}

/// A message's texts without the blank ones: Converse refuses a text block of whitespace.
fn texts(content: Option<&Value>, i: usize) -> Result<Vec<String>, GatewayError> {
    let mut texts = crate::providers::turns::texts(content, i)?;
    texts.retain(|t| !t.trim().is_empty());
    Ok(texts)
}

/// Converts the `messages` array.
pub(super) fn convert(messages: Option<&Value>) -> Result<Converted, GatewayError> {
    let messages = messages
        .and_then(Value::as_array)
        .ok_or_else(|| bad("`messages` must be an array".into()))?;
    let mut system = Vec::new();
    let mut turns = Turns::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("messages[{i}].role is missing")))?;
        let content = message.get("content").filter(|c| !c.is_null());
        let (role, blocks) = match role {
            "system" | "developer" => {
                system.extend(texts(content, i)?.into_iter().map(|t| json!({ "text": t })));
                continue;
            }
            "user" => (Role::User, user_blocks(content, i)?),
            "assistant" => (Role::Assistant, assistant_blocks(message, content, i)?),
            "tool" => (Role::User, vec![tool_result(message, content, i)?]),
            other => {
                return Err(bad(format!(
                    "messages[{i}].role `{other}` is not supported for this model"
                )))
            }
        };
        turns.push(role, blocks);
    }
    let messages = turns.into_json(
        |role| match role {
            Role::User => "user",
            Role::Assistant => "assistant",
        },
        "content",
    )?;
    Ok(Converted { system, messages })
}

fn user_blocks(content: Option<&Value>, i: usize) -> Result<Vec<Value>, GatewayError> {
    let parts = match content {
        Some(Value::Array(parts)) => parts,
        other => {
            return Ok(texts(other, i)?
                .into_iter()
                .map(|t| json!({ "text": t }))
                .collect())
        }
    };
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        match part.get("type").and_then(Value::as_str).unwrap_or("") {
            "text" => {
                let text = part_text(part, i)?;
                if !text.trim().is_empty() {
                    out.push(json!({ "text": text }));
                }
            }
            "image_url" => {
                let url = match part.get("image_url") {
                    Some(Value::String(url)) => Some(url.as_str()),
                    Some(obj) => obj.get("url").and_then(Value::as_str),
                    None => None,
                };
                let url =
                    url.ok_or_else(|| bad(format!("messages[{i}]: image_url.url is missing")))?;
                out.push(image(url, i)?);
            }
            other => {
                return Err(bad(format!(
                    "messages[{i}]: content part type `{other}` is not supported for this model"
                )))
            }
        }
    }
    Ok(out)
}

/// A `data:image/<format>;base64,<data>` URL → an `image` block; anything else is a 400.
fn image(url: &str, i: usize) -> Result<Value, GatewayError> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Err(bad(format!(
            "messages[{i}]: this model takes images only as base64 data URLs \
             (data:image/png;base64,…), not by URL"
        )));
    };
    let malformed = || {
        bad(format!(
            "messages[{i}]: an image data URL must be `data:image/<png|jpeg|gif|webp>;base64,<data>`"
        ))
    };
    let (meta, data) = rest.split_once(',').ok_or_else(malformed)?;
    let mut fields = meta.split(';');
    let format = match fields.next().unwrap_or("") {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => return Err(malformed()),
    };
    if !fields.any(|f| f == "base64") || data.is_empty() {
        return Err(malformed());
    }
    Ok(json!({ "image": { "format": format, "source": { "bytes": data } } }))
}

/// An assistant message: its signed reasoning, its text, then one `toolUse` per call.
fn assistant_blocks(
    message: &Value,
    content: Option<&Value>,
    i: usize,
) -> Result<Vec<Value>, GatewayError> {
    let mut blocks = Vec::new();
    let thinking = message.get(THINKING_BLOCKS).and_then(Value::as_array);
    for block in thinking.into_iter().flatten() {
        // a redacted block is Anthropic's own and means nothing to another model
        if block.get("type").and_then(Value::as_str) != Some("thinking") {
            continue;
        }
        let text = block.get("thinking").and_then(Value::as_str).unwrap_or("");
        let mut reasoning = json!({ "text": text });
        if let Some(signature) = block.get("signature").and_then(Value::as_str) {
            reasoning["signature"] = signature.into();
        }
        blocks.push(json!({ "reasoningContent": { "reasoningText": reasoning } }));
    }
    blocks.extend(texts(content, i)?.into_iter().map(|t| json!({ "text": t })));
    for call in tool_calls(message, i)? {
        let name = call_name(call, i)?;
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| bad(format!("messages[{i}]: tool call `{name}` has no id")))?;
        let input = call_input(call, name, i)?;
        blocks.push(json!({ "toolUse": { "toolUseId": id, "name": name, "input": input } }));
    }
    Ok(blocks)
}

/// A `tool` message → a `toolResult` block answering its `tool_call_id`.
fn tool_result(message: &Value, content: Option<&Value>, i: usize) -> Result<Value, GatewayError> {
    let id = message
        .get("tool_call_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            bad(format!(
                "messages[{i}]: a tool message needs `tool_call_id`"
            ))
        })?;
    let text = texts(content, i)?.join("\n");
    // Converse refuses an empty text block: an empty result is an empty JSON object
    let content = if text.is_empty() {
        json!([{ "json": {} }])
    } else {
        json!([{ "text": text }])
    };
    Ok(json!({ "toolResult": { "toolUseId": id, "content": content } }))
}
