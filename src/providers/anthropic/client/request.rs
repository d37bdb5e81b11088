//! Anthropic Messages request (Claude Code, the Anthropic SDK) → OpenAI chat request
//! (docs/translation.md D1).
//!
//! OpenAI-format hosts differ in what they accept, so the output stays conservative: text-only
//! content is sent as a plain string, `max_tokens` is sent as `max_tokens` except to OpenAI
//! reasoning models, and nothing Anthropic-specific (`cache_control`, `top_k`, beta fields) goes
//! up. Tool names longer than OpenAI's 64 characters are passed unchanged: the answer
//! translator has no request state to restore a shortened name from.

use serde_json::{json, Map, Value};

use crate::error::GatewayError;
use crate::providers::anthropic::sanitize_tool_id;
use crate::providers::chat::{self, ChatRequest};
use crate::providers::json::{array, field, items, parse_object};

/// OpenAI accepts at most this many stop sequences; later ones are dropped.
const MAX_STOP_SEQUENCES: usize = 4;

/// Prefix marking a failed tool's output, since OpenAI tool messages have no `is_error`.
const TOOL_ERROR_PREFIX: &str = "Error: ";

/// Anthropic Messages request (what Claude Code / the Anthropic SDK send to `/v1/messages`) →
/// OpenAI chat request (docs/translation.md D1), `model` = `upstream_model`. When `stream` is
/// true, `stream_options.include_usage` is set so usage can be reported in `message_delta`.
/// Dropped: `top_k`, `cache_control`, `service_tier`, `container`, `mcp_servers`, server tools
/// (`web_search_…`, `bash_…`: they run on Anthropic's side), thinking blocks in the history
/// (an OpenAI-format model cannot verify their signatures), and `thinking` itself unless the
/// upstream model reasons (an OpenAI reasoning model, or a Gemini model that thinks), where it
/// becomes `reasoning_effort` (docs/translation.md D1).
pub fn to_chat(body: &[u8], upstream_model: &str) -> Result<ChatRequest, GatewayError> {
    let req = parse_object(body)?;
    let reasoning = is_reasoning_model(upstream_model);
    let thinks = reasoning || is_thinking_gemini(upstream_model);
    let mut out = Map::new();
    out.insert("model".into(), upstream_model.into());

    let mut messages = Vec::new();
    if let Some(system) = system_text(field(&req, "system"))? {
        messages.push(json!({"role": "system", "content": system}));
    }
    let list = array(field(&req, "messages"), "messages")?;
    for (i, message) in list.iter().enumerate() {
        convert_message(message, &format!("messages[{i}]"), &mut messages)?;
    }
    out.insert("messages".into(), Value::Array(messages));

    if let Some(max) = field(&req, "max_tokens") {
        let max = max.as_u64().filter(|m| *m > 0).ok_or_else(|| {
            GatewayError::invalid("max_tokens", "`max_tokens` must be a positive integer")
        })?;
        // OpenAI reasoning models reject `max_tokens`; most other hosts only know it.
        let name = if reasoning {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        out.insert(name.into(), max.into());
    }
    // Reasoning models reject sampling changes; elsewhere they are copied.
    if !reasoning {
        for name in ["temperature", "top_p"] {
            match field(&req, name) {
                None => {}
                Some(v) if v.is_number() => {
                    out.insert(name.into(), v.clone());
                }
                Some(_) => {
                    return Err(GatewayError::invalid(
                        name,
                        format!("`{name}` must be a number"),
                    ))
                }
            }
        }
    }
    if let Some(stop) = stop(field(&req, "stop_sequences"))? {
        out.insert("stop".into(), stop);
    }
    match field(&req, "stream") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            out.insert("stream".into(), true.into());
            out.insert("stream_options".into(), json!({"include_usage": true}));
        }
        Some(_) => {
            return Err(GatewayError::invalid(
                "stream",
                "`stream` must be a boolean",
            ))
        }
    }
    if let Some(user) = field(&req, "metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        out.insert("user".into(), user.into());
    }
    let tools = convert_tools(field(&req, "tools"))?;
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        convert_tool_choice(field(&req, "tool_choice"), &mut out)?;
    }
    if thinks {
        if let Some(effort) = reasoning_effort(field(&req, "thinking")) {
            out.insert("reasoning_effort".into(), effort.into());
        }
    }
    Ok(out.into())
}

/// Whether `model` is an OpenAI reasoning model (o-series, gpt-5 except its chat variants),
/// judged by name since this pure function has no catalog: those take `reasoning_effort` and
/// `max_completion_tokens` and reject sampling parameters.
fn is_reasoning_model(model: &str) -> bool {
    let name = bare_name(model);
    let o_series = ["o1", "o3", "o4"].iter().any(|p| {
        name.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
    });
    o_series || (name.starts_with("gpt-5") && !name.contains("chat"))
}

/// A model name without a host's `vendor/` prefix, lowercased.
fn bare_name(model: &str) -> String {
    model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase()
}

/// Whether `model` is a Gemini model that thinks (2.5 and later), whose thinking budget the
/// Gemini side sets from `reasoning_effort`; judged by name, as [`is_reasoning_model`] is.
fn is_thinking_gemini(model: &str) -> bool {
    let name = bare_name(model);
    [
        "gemini-2.5",
        "gemini-3",
        "gemini-flash-latest",
        "gemini-pro-latest",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// Thinking budget → `reasoning_effort`, bucketed around the budgets the other direction sends
/// (1024 / 4096 / 16384): up to 2048 low, up to 8192 medium, above high. `adaptive` and
/// `disabled` leave the model's default.
fn reasoning_effort(thinking: Option<&Value>) -> Option<&'static str> {
    let thinking = thinking?;
    if thinking.get("type").and_then(Value::as_str) != Some("enabled") {
        return None;
    }
    Some(
        match thinking
            .get("budget_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0)
        {
            0..=2048 => "low",
            2049..=8192 => "medium",
            _ => "high",
        },
    )
}

/// `system` string | text blocks → one string (blocks joined by blank lines, `cache_control`
/// dropped).
fn system_text(system: Option<&Value>) -> Result<Option<String>, GatewayError> {
    let text = match system {
        None => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (i, block) in blocks.iter().enumerate() {
                match block.get("text").and_then(Value::as_str) {
                    Some(text) => parts.push(text),
                    None => {
                        return Err(GatewayError::invalid(
                            &format!("system[{i}]"),
                            "`system` blocks must be text blocks",
                        ))
                    }
                }
            }
            parts.join("\n\n")
        }
        Some(_) => {
            return Err(GatewayError::invalid(
                "system",
                "`system` must be a string or an array of text blocks",
            ))
        }
    };
    Ok((!text.is_empty()).then_some(text))
}

/// `stop_sequences` → `stop`, at most [`MAX_STOP_SEQUENCES`].
fn stop(sequences: Option<&Value>) -> Result<Option<Value>, GatewayError> {
    let Some(sequences) = sequences else {
        return Ok(None);
    };
    let list = sequences
        .as_array()
        .filter(|l| l.iter().all(Value::is_string))
        .ok_or_else(|| {
            GatewayError::invalid(
                "stop_sequences",
                "`stop_sequences` must be an array of strings",
            )
        })?;
    let list: Vec<Value> = list.iter().take(MAX_STOP_SEQUENCES).cloned().collect();
    Ok((!list.is_empty()).then_some(Value::Array(list)))
}

/// Custom tools → OpenAI function tools. Server tools (those with a `type` other than
/// `custom`: web search, bash, text editor, computer use) run on Anthropic's side and have no
/// OpenAI form, so they are dropped.
fn convert_tools(tools: Option<&Value>) -> Result<Vec<Value>, GatewayError> {
    let list = items(tools, "tools")?;
    let mut out = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        if tool
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t != "custom")
        {
            continue;
        }
        let name = tool.get("name").and_then(Value::as_str).ok_or_else(|| {
            GatewayError::invalid(&format!("tools[{i}].name"), "each tool needs a `name`")
        })?;
        let mut function = json!({
            "name": name,
            "parameters": tool.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        });
        if let Some(description) = tool.get("description").and_then(Value::as_str) {
            function["description"] = description.into();
        }
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(out)
}

/// `tool_choice` auto / any / tool / none → `"auto"` / `"required"` / named / `"none"`, and
/// `disable_parallel_tool_use` → `parallel_tool_calls: false` (sent only with tools: OpenAI
/// rejects both without).
fn convert_tool_choice(
    choice: Option<&Value>,
    out: &mut Map<String, Value>,
) -> Result<(), GatewayError> {
    let Some(choice) = choice else { return Ok(()) };
    let converted = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = choice.get("name").and_then(Value::as_str).ok_or_else(|| {
                GatewayError::invalid("tool_choice.name", "a `tool` choice needs a `name`")
            })?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => {
            return Err(GatewayError::invalid(
                "tool_choice.type",
                "`tool_choice.type` must be auto, any, tool or none",
            ))
        }
    };
    out.insert("tool_choice".into(), converted);
    if choice.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
        out.insert("parallel_tool_calls".into(), false.into());
    }
    Ok(())
}

/// One Anthropic message → one or more OpenAI messages appended to `out`.
fn convert_message(message: &Value, at: &str, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let role = message.get("role").and_then(Value::as_str);
    let content = message.get("content");
    match (role, content) {
        (Some(role @ ("user" | "assistant")), Some(Value::String(text))) => {
            out.push(json!({"role": role, "content": text}));
            Ok(())
        }
        (Some("user"), Some(Value::Array(blocks))) => user_message(blocks, at, out),
        // Claude Code (2.x) sends mid-conversation system messages; OpenAI takes them in place.
        (Some("system"), Some(Value::String(text))) => {
            out.push(json!({"role": "system", "content": text}));
            Ok(())
        }
        (Some("system"), Some(Value::Array(blocks))) => {
            let text: Vec<&str> = blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect();
            out.push(json!({"role": "system", "content": text.join("\n\n")}));
            Ok(())
        }
        (Some("assistant"), Some(Value::Array(blocks))) => assistant_message(blocks, at, out),
        (Some("user" | "assistant"), _) => Err(GatewayError::invalid(
            &format!("{at}.content"),
            "`content` must be a string or an array of blocks",
        )),
        _ => Err(GatewayError::invalid(
            &format!("{at}.role"),
            "`role` must be user, assistant or system",
        )),
    }
}

/// A user turn: each `tool_result` becomes a `tool` message, first (they answer the previous
/// assistant turn's calls); the rest of the turn, with any images the tool results held,
/// follows as one user message.
fn user_message(blocks: &[Value], at: &str, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let mut parts = Vec::new();
    let mut moved_images = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{at}.content[{j}]");
        match block.get("type").and_then(Value::as_str) {
            Some("tool_result") => out.push(tool_message(block, &at, &mut moved_images)?),
            Some("thinking" | "redacted_thinking") => {}
            _ => {
                if let Some(part) = user_part(block, &at)? {
                    parts.push(part);
                }
            }
        }
    }
    moved_images.extend(parts);
    if !moved_images.is_empty() {
        out.push(json!({"role": "user", "content": compact_parts(moved_images)}));
    }
    Ok(())
}

/// Parts that are all text → one string (most compatible); otherwise the parts array.
fn compact_parts(parts: Vec<Value>) -> Value {
    let texts: Option<Vec<&str>> = parts
        .iter()
        .map(|p| {
            (p.get("type").and_then(Value::as_str) == Some("text"))
                .then(|| p.get("text").and_then(Value::as_str))
                .flatten()
        })
        .collect();
    match texts {
        Some(texts) => Value::String(texts.join("\n")),
        None => Value::Array(parts),
    }
}

/// One user content block → one OpenAI content part (`None` for empty text).
fn user_part(block: &Value, at: &str) -> Result<Option<Value>, GatewayError> {
    let source = block.get("source");
    let source_field = |key: &str| source.and_then(|s| s.get(key)).and_then(Value::as_str);
    match (block.get("type").and_then(Value::as_str), source_field("type")) {
        (Some("text"), _) => match block.get("text").and_then(Value::as_str) {
            Some("") => Ok(None),
            Some(text) => Ok(Some(json!({"type": "text", "text": text}))),
            None => Err(GatewayError::invalid(at, "a text block needs `text`")),
        },
        (Some("image"), Some("base64")) => {
            let url = format!("data:{};base64,{}", source_field("media_type").unwrap_or("image/png"), source_field("data").unwrap_or(""));
            Ok(Some(json!({"type": "image_url", "image_url": {"url": url}})))
        }
        (Some("image"), Some("url")) => Ok(Some(json!({"type": "image_url", "image_url": {"url": source_field("url").unwrap_or("")}}))),
        (Some("document"), Some("base64")) if source_field("media_type") == Some("application/pdf") => {
            let file_data = format!("data:application/pdf;base64,{}", source_field("data").unwrap_or(""));
            let filename = block.get("title").and_then(Value::as_str).unwrap_or("document.pdf");
            Ok(Some(json!({"type": "file", "file": {"filename": filename, "file_data": file_data}})))
        }
        (Some("document"), Some("text")) => Ok(source_field("data")
            .filter(|t| !t.is_empty())
            .map(|text| json!({"type": "text", "text": text}))),
        (Some(kind @ ("image" | "document")), _) => Err(GatewayError::invalid(
            at,
            format!("this {kind} source cannot be sent to an OpenAI-format model; send it base64-encoded"),
        )),
        (kind, _) => Err(GatewayError::invalid(
            at,
            format!("content block type `{}` is not supported for this model", kind.unwrap_or("")),
        )),
    }
}

/// A `tool_result` block → a `tool` message with its text; images go to `images`, for the
/// user message that follows (OpenAI tool messages hold text only).
fn tool_message(block: &Value, at: &str, images: &mut Vec<Value>) -> Result<Value, GatewayError> {
    let id = block
        .get("tool_use_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            GatewayError::invalid(
                &format!("{at}.tool_use_id"),
                "a tool_result needs `tool_use_id`",
            )
        })?;
    let mut text = match block.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => {
            let mut texts = Vec::new();
            for (k, item) in items.iter().enumerate() {
                match user_part(item, &format!("{at}.content[{k}]"))? {
                    Some(part) if part.get("type").and_then(Value::as_str) == Some("text") => {
                        texts.push(
                            part.get("text")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                        );
                    }
                    Some(part) => images.push(part),
                    None => {}
                }
            }
            texts.join("\n")
        }
        Some(_) => {
            return Err(GatewayError::invalid(
                &format!("{at}.content"),
                "`content` must be a string or an array",
            ))
        }
    };
    if block.get("is_error") == Some(&Value::Bool(true)) {
        text.insert_str(0, TOOL_ERROR_PREFIX);
    }
    Ok(json!({"role": "tool", "tool_call_id": sanitize_tool_id(id), "content": text}))
}

/// An assistant turn: text blocks joined into `content`, `tool_use` blocks as `tool_calls`,
/// thinking dropped (an OpenAI-format model cannot take Anthropic's signed thinking back).
fn assistant_message(blocks: &[Value], at: &str, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(text) = block
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    texts.push(text);
                }
            }
            Some("tool_use") => {
                let field = |key: &str| block.get(key).and_then(Value::as_str);
                let (Some(id), Some(name)) = (field("id"), field("name")) else {
                    return Err(GatewayError::invalid(
                        &format!("{at}.content[{j}]"),
                        "a tool_use block needs `id` and `name`",
                    ));
                };
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": sanitize_tool_id(id),
                    "type": "function",
                    "function": {"name": name, "arguments": input.to_string()},
                }));
            }
            // Thinking, and server-tool blocks whose results live on Anthropic's side.
            _ => {}
        }
    }
    out.extend(chat::assistant_message(&texts, calls));
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "request_tests.rs"]
mod tests;
