//! OpenAI chat messages → Anthropic `system` blocks and turns (docs/translation.md A2).
//!
//! Tool messages become `tool_result` blocks in a user turn, same-role neighbours are merged,
//! tool results go first in their turn, and a conversation that starts with the assistant gets
//! a placeholder user turn. Dropped: message `name`, assistant `refusal` parts, image `detail`.
//! A trailing assistant message is kept: Anthropic reads it as a prefill to continue.

use serde_json::{json, Value};

use super::parse_data_url;
use crate::error::GatewayError;
use crate::providers::anthropic::sanitize_tool_id;
use crate::providers::chat::THINKING_BLOCKS;
use crate::providers::json::array;

/// The user turn put first when a conversation starts with the assistant (older Anthropic
/// models require a user turn first; Anthropic rejects empty text, so it is one character).
const FIRST_TURN_PLACEHOLDER: &str = ".";

/// One Anthropic message being built; consecutive messages of one role are merged into it.
pub(super) struct Turn {
    pub(super) role: &'static str,
    pub(super) blocks: Vec<Value>,
}

/// Whether the conversation's end rules out Anthropic thinking: a prefill (trailing assistant
/// turn), or a tool-loop continuation without its signed thinking
/// ([`continues_without_thinking`]).
pub(super) fn rules_out_thinking(turns: &[Turn]) -> bool {
    turns.last().is_some_and(|t| t.role == "assistant") || continues_without_thinking(turns)
}

/// Whether the conversation continues a tool loop (tool results last) whose assistant turn
/// does not start with the signed thinking Anthropic issued (the client dropped it, or never
/// had it): Anthropic refuses thinking then.
pub(super) fn continues_without_thinking(turns: &[Turn]) -> bool {
    let first_type = |t: &Turn| {
        t.blocks
            .first()
            .and_then(|b| b.get("type"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match turns {
        [.., before, last] if first_type(last).as_deref() == Some("tool_result") => {
            before.role != "assistant" || !first_type(before).as_deref().is_some_and(is_thinking)
        }
        [last] => first_type(last).as_deref() == Some("tool_result"),
        _ => false,
    }
}

/// Anthropic's two kinds of signed reasoning block.
fn is_thinking(kind: &str) -> bool {
    kind == "thinking" || kind == "redacted_thinking"
}

/// Removes the thinking blocks of every turn: without thinking on, Anthropic refuses them in a
/// final assistant turn and ignores them elsewhere.
pub(super) fn drop_thinking(turns: &mut [Turn]) {
    for turn in turns.iter_mut().filter(|t| t.role == "assistant") {
        turn.blocks.retain(|b| {
            !b.get("type")
                .and_then(Value::as_str)
                .is_some_and(is_thinking)
        });
    }
}

/// Messages → (system blocks, Anthropic turns), with tool messages turned into user turns of
/// `tool_result` blocks and same-role neighbours merged.
pub(super) fn convert_messages(
    messages: Option<&Value>,
) -> Result<(Vec<Value>, Vec<Turn>), GatewayError> {
    let list = array(messages, "messages")?;
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for (i, message) in list.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = message.get("role").and_then(Value::as_str).ok_or_else(|| {
            GatewayError::invalid(&format!("{at}.role"), "each message needs a `role`")
        })?;
        match role {
            "system" | "developer" => system.extend(system_blocks(message.get("content"), &at)?),
            "user" => push_turn(&mut turns, "user", user_blocks(message.get("content"), &at)?),
            "assistant" => push_turn(&mut turns, "assistant", assistant_blocks(message, &at)?),
            "tool" => push_turn(&mut turns, "user", vec![tool_result(message, &at)?]),
            other => {
                return Err(GatewayError::invalid(
                    &format!("{at}.role"),
                    format!("role `{other}` is not supported; use system, developer, user, assistant or tool"),
                ))
            }
        }
    }
    for turn in turns.iter_mut().filter(|t| t.role == "user") {
        // Anthropic wants the tool results first in their user turn, any other content after.
        let (mut results, rest): (Vec<Value>, Vec<Value>) = turn
            .blocks
            .drain(..)
            .partition(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"));
        results.extend(rest);
        turn.blocks = results;
    }
    match turns.first() {
        None => {
            return Err(GatewayError::invalid(
                "messages",
                "`messages` needs at least one user or assistant message",
            ))
        }
        Some(first) if first.role == "assistant" => turns.insert(
            0,
            Turn {
                role: "user",
                blocks: vec![json!({"type": "text", "text": FIRST_TURN_PLACEHOLDER})],
            },
        ),
        Some(_) => {}
    }
    Ok((system, turns))
}

/// Appends blocks to the conversation, merging into the last turn when the role repeats.
fn push_turn(turns: &mut Vec<Turn>, role: &'static str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role == role => last.blocks.extend(blocks),
        _ => turns.push(Turn { role, blocks }),
    }
}

/// A turn as Anthropic JSON; a lone plain text block (no `cache_control`) is sent as a string.
pub(super) fn turn_json(turn: Turn) -> Value {
    let plain_text = |b: &Value| {
        b.as_object().is_some_and(|o| o.len() == 2)
            && b.get("type").and_then(Value::as_str) == Some("text")
    };
    let content = match turn.blocks.as_slice() {
        [only] if plain_text(only) => only["text"].clone(),
        _ => Value::Array(turn.blocks),
    };
    json!({"role": turn.role, "content": content})
}

/// A text block, carrying the part's `cache_control` when it has one.
fn text_block(text: &str, part: Option<&Value>) -> Value {
    let mut block = json!({"type": "text", "text": text});
    if let Some(cache) = part.and_then(|p| p.get("cache_control")) {
        block["cache_control"] = cache.clone();
    }
    block
}

/// System/developer content → text blocks (in order, `cache_control` kept).
fn system_blocks(content: Option<&Value>, at: &str) -> Result<Vec<Value>, GatewayError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![text_block(s, None)]),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                match (
                    part.get("type").and_then(Value::as_str),
                    part.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some("")) => {}
                    (Some("text"), Some(text)) => blocks.push(text_block(text, Some(part))),
                    _ => {
                        return Err(GatewayError::invalid(
                            &format!("{at}.content[{j}]"),
                            "system and developer messages may only hold text parts",
                        ))
                    }
                }
            }
            Ok(blocks)
        }
        Some(_) => Err(GatewayError::invalid(
            &format!("{at}.content"),
            "`content` must be a string or an array",
        )),
    }
}

/// User (or tool) content → Anthropic blocks; empty text dropped (Anthropic rejects it).
fn user_blocks(content: Option<&Value>, at: &str) -> Result<Vec<Value>, GatewayError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![text_block(s, None)]),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                if let Some(block) = user_part(part, &format!("{at}.content[{j}]"))? {
                    blocks.push(block);
                }
            }
            Ok(blocks)
        }
        Some(_) => Err(GatewayError::invalid(
            &format!("{at}.content"),
            "`content` must be a string or an array",
        )),
    }
}

/// One user content part → one Anthropic block (`None` for empty text).
fn user_part(part: &Value, at: &str) -> Result<Option<Value>, GatewayError> {
    let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
    let block = match kind {
        "text" => match part.get("text").and_then(Value::as_str) {
            Some("") => return Ok(None),
            Some(text) => text_block(text, Some(part)),
            None => return Err(GatewayError::invalid(at, "a text part needs `text`")),
        },
        "image_url" => {
            let image = part.get("image_url");
            let url = image
                .and_then(|i| i.get("url"))
                .or(image)
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    GatewayError::invalid(at, "an image_url part needs `image_url.url`")
                })?;
            let source = if let Some((mime, data)) = parse_data_url(url) {
                json!({"type": "base64", "media_type": mime, "data": data})
            } else if url.starts_with("https://") || url.starts_with("http://") {
                json!({"type": "url", "url": url})
            } else {
                return Err(GatewayError::invalid(
                    at,
                    "`image_url.url` must be an http(s) URL or a base64 data URL",
                ));
            };
            json!({"type": "image", "source": source})
        }
        "file" => {
            let file = part.get("file");
            let data_url = file
                .and_then(|f| f.get("file_data"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    GatewayError::invalid(
                        at,
                        "only `file.file_data` (a base64 PDF data URL) is supported, not `file_id`",
                    )
                })?;
            match parse_data_url(data_url) {
                Some(("application/pdf", data)) => json!({
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": data},
                }),
                _ => {
                    return Err(GatewayError::invalid(
                        at,
                        "`file.file_data` must be a base64 PDF data URL",
                    ))
                }
            }
        }
        "input_audio" => {
            return Err(GatewayError::invalid(
                at,
                "audio input is not supported for this model",
            ))
        }
        other => {
            return Err(GatewayError::invalid(
                at,
                format!("content part type `{other}` is not supported"),
            ))
        }
    };
    let mut block = block;
    if kind != "text" {
        if let Some(cache) = part.get("cache_control") {
            block["cache_control"] = cache.clone();
        }
    }
    Ok(Some(block))
}

/// The signed reasoning an assistant message carries back in `thinking_blocks` (where the
/// gateway's chat answers put it), exactly as Anthropic issued it: `thinking` blocks with their
/// `signature`, `redacted_thinking` blocks with their `data`.
fn thinking_blocks(message: &Value, at: &str) -> Result<Vec<Value>, GatewayError> {
    let blocks = match message.get(THINKING_BLOCKS) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(blocks)) => blocks,
        Some(_) => {
            return Err(GatewayError::invalid(
                &format!("{at}.{THINKING_BLOCKS}"),
                "`thinking_blocks` must be an array",
            ))
        }
    };
    let text = |b: &Value, key: &str| b.get(key).and_then(Value::as_str).map(str::to_owned);
    blocks
        .iter()
        .enumerate()
        .map(|(j, b)| {
            let kind = b.get("type").and_then(Value::as_str);
            match (
                kind,
                text(b, "thinking"),
                text(b, "signature"),
                text(b, "data"),
            ) {
                (Some("thinking"), Some(thinking), Some(signature), _) => {
                    Ok(json!({"type": "thinking", "thinking": thinking, "signature": signature}))
                }
                (Some("redacted_thinking"), _, _, Some(data)) => {
                    Ok(json!({"type": "redacted_thinking", "data": data}))
                }
                _ => Err(GatewayError::invalid(
                    &format!("{at}.{THINKING_BLOCKS}[{j}]"),
                    "a thinking block is `{\"type\":\"thinking\",\"thinking\",\"signature\"}` or \
                     `{\"type\":\"redacted_thinking\",\"data\"}`, as the answer gave it",
                )),
            }
        })
        .collect()
}

/// Signed thinking first (as Anthropic wrote the turn), then the text (refusals dropped), then
/// one `tool_use` block per tool call.
fn assistant_blocks(message: &Value, at: &str) -> Result<Vec<Value>, GatewayError> {
    let mut blocks = thinking_blocks(message, at)?;
    match message.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            if !s.is_empty() {
                blocks.push(text_block(s, None));
            }
        }
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                match (
                    part.get("type").and_then(Value::as_str),
                    part.get("text").and_then(Value::as_str),
                ) {
                    (Some("refusal"), _) | (Some("text"), Some("")) => {}
                    (Some("text"), Some(text)) => blocks.push(text_block(text, Some(part))),
                    _ => {
                        return Err(GatewayError::invalid(
                            &format!("{at}.content[{j}]"),
                            "assistant content may only hold text and refusal parts",
                        ))
                    }
                }
            }
        }
        Some(_) => {
            return Err(GatewayError::invalid(
                &format!("{at}.content"),
                "`content` must be a string or an array",
            ))
        }
    }
    let calls = match message.get("tool_calls") {
        None | Some(Value::Null) => return Ok(blocks),
        Some(Value::Array(calls)) => calls,
        Some(_) => {
            return Err(GatewayError::invalid(
                &format!("{at}.tool_calls"),
                "`tool_calls` must be an array",
            ))
        }
    };
    for (j, call) in calls.iter().enumerate() {
        let at = format!("{at}.tool_calls[{j}]");
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                GatewayError::invalid(&format!("{at}.id"), "each tool call needs an `id`")
            })?;
        let function = call.get("function");
        let name = function
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                GatewayError::invalid(
                    &format!("{at}.function.name"),
                    "each tool call needs a `function.name`",
                )
            })?;
        let input = tool_input(
            function.and_then(|f| f.get("arguments")),
            &format!("{at}.function.arguments"),
        )?;
        blocks.push(
            json!({"type": "tool_use", "id": sanitize_tool_id(id), "name": name, "input": input}),
        );
    }
    Ok(blocks)
}

/// Tool-call `arguments` (a JSON string) → the `input` object. Empty → `{}`; anything that is
/// not a JSON object → 400, since Anthropic's `input` must be an object.
fn tool_input(arguments: Option<&Value>, at: &str) -> Result<Value, GatewayError> {
    let text = match arguments {
        None | Some(Value::Null) => return Ok(json!({})),
        Some(Value::Object(object)) => return Ok(Value::Object(object.clone())),
        Some(Value::String(text)) => text,
        Some(_) => {
            return Err(GatewayError::invalid(
                at,
                "`arguments` must be a JSON string",
            ))
        }
    };
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Ok(Value::Object(object)),
        Ok(_) => Err(GatewayError::invalid(
            at,
            "`arguments` must encode a JSON object",
        )),
        Err(e) => Err(GatewayError::invalid(
            at,
            format!("`arguments` is not valid JSON: {e}"),
        )),
    }
}

/// A `tool` message → a `tool_result` block for the next user turn.
fn tool_result(message: &Value, at: &str) -> Result<Value, GatewayError> {
    let id = message
        .get("tool_call_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            GatewayError::invalid(
                &format!("{at}.tool_call_id"),
                "a tool message needs `tool_call_id`",
            )
        })?;
    let mut block = json!({"type": "tool_result", "tool_use_id": sanitize_tool_id(id)});
    match message.get("content") {
        Some(Value::String(s)) if !s.is_empty() => block["content"] = s.clone().into(),
        Some(content @ Value::Array(_)) => {
            let blocks = user_blocks(Some(content), at)?;
            if !blocks.is_empty() {
                block["content"] = Value::Array(blocks);
            }
        }
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => {
            return Err(GatewayError::invalid(
                &format!("{at}.content"),
                "`content` must be a string or an array",
            ))
        }
    }
    Ok(block)
}
