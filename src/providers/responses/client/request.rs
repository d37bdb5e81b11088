//! Responses request → OpenAI chat request.
//!
//! The output stays conservative, because it is often translated again (to Anthropic or
//! Gemini) or sent to OpenAI-compatible hosts that know only the common fields: text-only
//! content goes as a plain string, every system and developer instruction goes in one leading
//! system message, and the assistant side of a turn (its text and all its calls) goes in one
//! assistant message placed right before the tool results that answer it, as every chat
//! format requires. Unknown request fields are dropped rather than forwarded.

use serde_json::{json, Map, Value};

use super::{flat_name, reasoning, Echo, ToolNames};
use crate::error::GatewayError;
use crate::providers::chat::{assistant_message, ChatRequest, THINKING_BLOCKS};
use crate::providers::json::{field, parse_object};

/// Request fields the response object repeats (the rest of it is the gateway's own).
const ECHOED: &[&str] = &[
    "tool_choice",
    "parallel_tool_calls",
    "temperature",
    "top_p",
    "max_output_tokens",
    "metadata",
    "reasoning",
    "text",
    "truncation",
    "user",
];

/// Input item types whose content lives on OpenAI's side (reasoning, hosted tools' calls):
/// chat has no place for them, and the conversation reads on without them.
const DROPPED_ITEMS: &[&str] = &[
    "reasoning",
    "web_search_call",
    "file_search_call",
    "code_interpreter_call",
    "image_generation_call",
    "mcp_list_tools",
    // merged into the tool list (see `with_additional_tools`)
    "additional_tools",
];

/// The request's `tools`, plus the tools of every `additional_tools` input item: Codex sends
/// part of its tool list that way (with its default model), and chat has one tool list only.
/// `None` when there are no tools at all.
fn with_additional_tools(req: &Map<String, Value>) -> Option<Value> {
    let mut tools: Vec<Value> = field(req, "tools")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let extra = field(req, "input")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|item| item.get("type").and_then(Value::as_str) == Some("additional_tools"))
        .filter_map(|item| item.get("tools").and_then(Value::as_array))
        .flatten()
        .cloned();
    tools.extend(extra);
    match (field(req, "tools"), tools.is_empty()) {
        (None, true) => None,
        (Some(original), true) => Some(original.clone()),
        (_, false) => Some(Value::Array(tools)),
    }
}

/// Responses request body → OpenAI chat request body, `model` = `upstream_model`, plus the
/// [`Echo`] the answer translator needs. Mapped: `instructions` and `developer`/`system`
/// messages (one leading system message, in order), `input` (a string, or message,
/// `function_call`, `function_call_output`, `custom_tool_call(_output)` items), `tools`
/// (function tools; namespaced functions flattened, see the module doc), `tool_choice`,
/// `parallel_tool_calls`, `temperature`, `top_p`, `max_output_tokens` (→
/// `max_completion_tokens`), `text.format` (→ `response_format`), `reasoning.effort` (→
/// `reasoning_effort`), `stream` (with `stream_options.include_usage`), `user`. Dropped:
/// reasoning and server-side call items in the history, provider-hosted tools when function
/// tools come with them, and the settings chat has no equivalent for (`store: false`,
/// `include`, `prompt_cache_key`, `client_metadata`, `service_tier`, `truncation`,
/// `reasoning.summary`, `text.verbosity`, `background: false`, `metadata`,
/// `safety_identifier`, `max_tool_calls`, `top_logprobs`, …). Refused with a 400 naming the
/// field: the stateful ones the gateway does not keep (`conversation`, `background: true`,
/// `prompt`, `item_reference`, and a `previous_response_id` the proxy did not expand), file
/// ids, only hosted tools, and malformed fields. `store` is the proxy's (see
/// [`Echo::stored`]).
pub fn to_chat(body: &[u8], upstream_model: &str) -> Result<(ChatRequest, Echo), GatewayError> {
    let req = parse_object(body)?;
    refuse_stateful(&req)?;
    let mut out = Map::new();
    out.insert("model".into(), upstream_model.into());

    let all_tools = with_additional_tools(&req);
    let (tools, names) = convert_tools(all_tools.as_ref())?;
    out.insert("messages".into(), Value::Array(messages(&req)?));
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        // OpenAI rejects both without tools.
        if let Some(choice) = tool_choice(field(&req, "tool_choice"))? {
            out.insert("tool_choice".into(), choice);
        }
        match field(&req, "parallel_tool_calls") {
            None => {}
            Some(v @ Value::Bool(_)) => {
                out.insert("parallel_tool_calls".into(), v.clone());
            }
            Some(_) => return Err(not_a("parallel_tool_calls", "a boolean")),
        }
    }
    for name in ["temperature", "top_p"] {
        match field(&req, name) {
            None => {}
            Some(v) if v.is_number() => {
                out.insert(name.into(), v.clone());
            }
            Some(_) => return Err(not_a(name, "a number")),
        }
    }
    if let Some(max) = field(&req, "max_output_tokens") {
        let max = max
            .as_u64()
            .filter(|m| *m > 0)
            .ok_or_else(|| not_a("max_output_tokens", "a positive integer"))?;
        out.insert("max_completion_tokens".into(), max.into());
    }
    if let Some(format) = response_format(field(&req, "text"))? {
        out.insert("response_format".into(), format);
    }
    match field(&req, "reasoning").and_then(|r| r.get("effort")) {
        None | Some(Value::Null) => {}
        Some(Value::String(effort)) => {
            out.insert("reasoning_effort".into(), effort.as_str().into());
        }
        Some(_) => return Err(not_a("reasoning.effort", "a string")),
    }
    match field(&req, "stream") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            out.insert("stream".into(), true.into());
            out.insert("stream_options".into(), json!({"include_usage": true}));
        }
        Some(_) => return Err(not_a("stream", "a boolean")),
    }
    match field(&req, "user") {
        None => {}
        Some(Value::String(user)) => {
            out.insert("user".into(), user.as_str().into());
        }
        Some(_) => return Err(not_a("user", "a string")),
    }

    let settings = ECHOED
        .iter()
        .filter_map(|key| field(&req, key).map(|v| ((*key).to_string(), v.clone())))
        .collect();
    let echo = Echo {
        names,
        settings,
        stored: false,
        previous_response_id: None,
    };
    Ok((out.into(), echo))
}

/// A 400 saying `name` must be `what`.
fn not_a(name: &str, what: &str) -> GatewayError {
    GatewayError::invalid(name, format!("`{name}` must be {what}"))
}

/// The fields that need state the gateway does not keep. (`store` and
/// `previous_response_id` are the proxy's: a continuation reaches this translator whole, see
/// `responses::stored`; one that still names a previous response was not expanded.)
fn refuse_stateful(req: &Map<String, Value>) -> Result<(), GatewayError> {
    const NO_STATE: &str = "this gateway stores no conversations or prompts; send the whole \
                            conversation in `input`, or continue a stored response with \
                            `previous_response_id`";
    for name in ["previous_response_id", "conversation", "prompt"] {
        if field(req, name).is_some() {
            return Err(GatewayError::invalid(
                name,
                format!("`{name}` is not supported: {NO_STATE}"),
            ));
        }
    }
    match field(req, "store") {
        None | Some(Value::Bool(_)) => {}
        Some(_) => return Err(not_a("store", "a boolean")),
    }
    match field(req, "background") {
        None | Some(Value::Bool(false)) => Ok(()),
        Some(Value::Bool(true)) => Err(GatewayError::invalid(
            "background",
            "`background: true` is not supported: the gateway answers while the client waits",
        )),
        Some(_) => Err(not_a("background", "a boolean")),
    }
}

// ---- tools ----------------------------------------------------------------------------------

/// `tools` → chat function tools and the names of the namespaced ones. Hosted tools (web
/// search, file search, code interpreter, MCP, custom, …) run on OpenAI's side or need a
/// grammar chat cannot express: with function tools beside them the client treats them as
/// optional (Codex always sends `web_search`), so they are dropped and logged; alone they are
/// refused, since the request cannot be served as meant.
fn convert_tools(tools: Option<&Value>) -> Result<(Vec<Value>, ToolNames), GatewayError> {
    let mut names = ToolNames::default();
    let Some(tools) = tools else {
        return Ok((Vec::new(), names));
    };
    let list = tools.as_array().ok_or_else(|| not_a("tools", "an array"))?;
    let mut out = Vec::with_capacity(list.len());
    let mut dropped = Vec::new();
    for (i, tool) in list.iter().enumerate() {
        let at = format!("tools[{i}]");
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = required_str(tool, "name", &at)?;
                out.push(chat_function(tool, name));
            }
            Some("namespace") => {
                let namespace = required_str(tool, "name", &at)?;
                let inner = tool
                    .get("tools")
                    .and_then(Value::as_array)
                    .ok_or_else(|| not_a(&format!("{at}.tools"), "an array"))?;
                for (j, inner_tool) in inner.iter().enumerate() {
                    let at = format!("{at}.tools[{j}]");
                    match inner_tool.get("type").and_then(Value::as_str) {
                        Some("function") => {
                            let name = required_str(inner_tool, "name", &at)?;
                            let flat = flat_name(namespace, name);
                            out.push(chat_function(inner_tool, &flat));
                            names
                                .0
                                .insert(flat, (namespace.to_string(), name.to_string()));
                        }
                        Some(kind) => dropped.push(format!("{namespace}.{kind}")),
                        None => return Err(not_a(&format!("{at}.type"), "a string")),
                    }
                }
            }
            Some(kind) => dropped.push(kind.to_string()),
            None => return Err(not_a(&format!("{at}.type"), "a string")),
        }
    }
    if !dropped.is_empty() {
        if out.is_empty() {
            return Err(GatewayError::invalid(
                "tools",
                format!(
                    "only function tools can be used with this model; `tools` holds none \
                     (got {})",
                    dropped.join(", ")
                ),
            ));
        }
        log::info!(
            "responses: dropped tools the model cannot run through chat: {}",
            dropped.join(", ")
        );
    }
    let mut seen = std::collections::HashSet::new();
    for tool in &out {
        let name = tool["function"]["name"].as_str().unwrap_or_default();
        if !seen.insert(name) {
            return Err(GatewayError::invalid(
                "tools",
                format!(
                    "two tools are named `{name}` for the model (a namespaced tool is named \
                     `namespace__name`)"
                ),
            ));
        }
    }
    Ok((out, names))
}

/// A string field the item must have.
fn required_str<'a>(item: &'a Value, key: &str, at: &str) -> Result<&'a str, GatewayError> {
    item.get(key).and_then(Value::as_str).ok_or_else(|| {
        GatewayError::invalid(&format!("{at}.{key}"), format!("`{at}` needs a `{key}`"))
    })
}

/// A flat Responses function tool → chat's nested `{type, function:{…}}`, named `name`.
fn chat_function(tool: &Value, name: &str) -> Value {
    let mut function = Map::new();
    function.insert("name".into(), name.into());
    for key in ["description", "parameters", "strict"] {
        if let Some(v) = tool.get(key).filter(|v| !v.is_null()) {
            function.insert(key.into(), v.clone());
        }
    }
    json!({"type": "function", "function": function})
}

/// `tool_choice` → chat's: the strings are the same, a named function gets chat's nested
/// shape (flattened when it names a namespace). Hosted-tool and `allowed_tools` choices have
/// no chat form.
fn tool_choice(choice: Option<&Value>) -> Result<Option<Value>, GatewayError> {
    let Some(choice) = choice else {
        return Ok(None);
    };
    match choice {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => {
            Ok(Some(choice.clone()))
        }
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o.get("name").and_then(Value::as_str).ok_or_else(|| {
                GatewayError::invalid(
                    "tool_choice.name",
                    "a function `tool_choice` needs a `name`",
                )
            })?;
            let name = match o.get("namespace").and_then(Value::as_str) {
                Some(namespace) => flat_name(namespace, name),
                None => name.to_string(),
            };
            Ok(Some(
                json!({"type": "function", "function": {"name": name}}),
            ))
        }
        _ => Err(GatewayError::invalid(
            "tool_choice",
            "`tool_choice` must be auto, none, required or {\"type\":\"function\",\"name\":…} \
             for this model",
        )),
    }
}

/// `text.format` → `response_format`; `{type: text}` (the default) → nothing.
fn response_format(text: Option<&Value>) -> Result<Option<Value>, GatewayError> {
    let Some(format) = text.and_then(|t| t.get("format")).filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let name = required_str(format, "name", "text.format")?;
            let schema = format
                .get("schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| not_a("text.format.schema", "a JSON schema object"))?;
            let mut json_schema = json!({"name": name, "schema": schema});
            for key in ["strict", "description"] {
                if let Some(v) = format.get(key).filter(|v| !v.is_null()) {
                    json_schema[key] = v.clone();
                }
            }
            Ok(Some(
                json!({"type": "json_schema", "json_schema": json_schema}),
            ))
        }
        _ => Err(not_a(
            "text.format.type",
            "text, json_object or json_schema",
        )),
    }
}

// ---- input ----------------------------------------------------------------------------------

/// The assistant side of a turn being gathered: its signed reasoning, text and calls become
/// one message.
#[derive(Default)]
struct Assistant {
    /// The provider's reasoning blocks from the turn's reasoning items (`encrypted_content`).
    thinking: Vec<Value>,
    texts: Vec<String>,
    calls: Vec<Value>,
}

/// Chat messages being built from `instructions` and `input`, in order.
#[derive(Default)]
struct Messages {
    /// `instructions` and every developer/system message, for the leading system message.
    system: Vec<String>,
    out: Vec<Value>,
    assistant: Assistant,
    /// Images returned by tool outputs (chat tool messages hold text only), sent in a user
    /// message after the run of tool messages.
    tool_images: Vec<Value>,
}

impl Messages {
    fn flush_assistant(&mut self) {
        let Assistant {
            thinking,
            texts,
            calls,
        } = std::mem::take(&mut self.assistant);
        let Some(mut message) = assistant_message(&texts, calls) else {
            return;
        };
        if !thinking.is_empty() {
            message[THINKING_BLOCKS] = Value::Array(thinking);
        }
        self.out.push(message);
    }

    fn flush_tool_images(&mut self) {
        if !self.tool_images.is_empty() {
            let images = std::mem::take(&mut self.tool_images);
            self.out.push(json!({"role": "user", "content": images}));
        }
    }
}

/// `instructions` + `input` → chat `messages`.
fn messages(req: &Map<String, Value>) -> Result<Vec<Value>, GatewayError> {
    let mut m = Messages::default();
    match field(req, "instructions") {
        None => {}
        Some(Value::String(s)) => m.system.push(s.clone()),
        Some(_) => return Err(not_a("instructions", "a string")),
    }
    match field(req, "input") {
        None => {}
        Some(Value::String(text)) => m.out.push(json!({"role": "user", "content": text})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                convert_item(item, &format!("input[{i}]"), &mut m)?;
            }
        }
        Some(_) => return Err(not_a("input", "a string or an array of items")),
    }
    m.flush_assistant();
    m.flush_tool_images();
    let system: Vec<String> = m.system.into_iter().filter(|s| !s.is_empty()).collect();
    if !system.is_empty() {
        m.out
            .insert(0, json!({"role": "system", "content": system.join("\n\n")}));
    }
    if m.out.is_empty() {
        return Err(GatewayError::invalid(
            "input",
            "`input` (or `instructions`) must hold at least one message",
        ));
    }
    Ok(m.out)
}

/// One input item, appended to `m`.
fn convert_item(item: &Value, at: &str, m: &mut Messages) -> Result<(), GatewayError> {
    // A bare `{role, content}` is a message (the "easy input message" form).
    let kind = match item.get("type").and_then(Value::as_str) {
        Some(kind) => kind,
        None if item.get("role").is_some() => "message",
        None => return Err(not_a(&format!("{at}.type"), "a string")),
    };
    match kind {
        "message" => message_item(item, at, m),
        "function_call" | "custom_tool_call" => {
            m.flush_tool_images();
            let call_id = required_str(item, "call_id", at)?;
            let name = required_str(item, "name", at)?;
            let name = match item.get("namespace").and_then(Value::as_str) {
                Some(namespace) => flat_name(namespace, name),
                None => name.to_string(),
            };
            // A custom tool's free-form `input` travels as the one argument of a function.
            let arguments = match (kind, item.get("arguments"), item.get("input")) {
                ("custom_tool_call", _, input) => {
                    json!({"input": input.and_then(Value::as_str).unwrap_or("")}).to_string()
                }
                (_, Some(Value::String(s)), _) => s.clone(),
                (_, None | Some(Value::Null), _) => "{}".to_string(),
                (_, Some(v), _) => v.to_string(),
            };
            m.assistant.calls.push(json!({
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }));
            Ok(())
        }
        "function_call_output" | "custom_tool_call_output" => {
            m.flush_assistant();
            let call_id = required_str(item, "call_id", at)?;
            let content = tool_output(item.get("output"), &format!("{at}.output"), m)?;
            m.out
                .push(json!({"role": "tool", "tool_call_id": call_id, "content": content}));
            Ok(())
        }
        // the provider's signed reasoning, when the gateway sealed it (see `reasoning`)
        "reasoning" => {
            let sealed = item.get("encrypted_content").and_then(Value::as_str);
            if let Some(blocks) = sealed.and_then(reasoning::open) {
                m.flush_tool_images();
                m.assistant.thinking.extend(blocks);
            }
            Ok(())
        }
        "item_reference" => Err(GatewayError::invalid(
            at,
            "`item_reference` inputs are not supported: this gateway stores no items; send the \
             item itself",
        )),
        kind if DROPPED_ITEMS.contains(&kind) => Ok(()),
        kind => Err(GatewayError::invalid(
            &format!("{at}.type"),
            format!("input items of type `{kind}` are not supported for this model"),
        )),
    }
}

/// A message item: system/developer text to the system message, user text and images to a
/// user message, assistant text to the assistant side of the turn.
fn message_item(item: &Value, at: &str, m: &mut Messages) -> Result<(), GatewayError> {
    let role = item.get("role").and_then(Value::as_str);
    let parts = content_parts(item.get("content"), &format!("{at}.content"), role)?;
    match role {
        Some("system" | "developer") => {
            m.system.push(texts(&parts).join("\n"));
        }
        Some("user") => {
            m.flush_assistant();
            m.flush_tool_images();
            m.out
                .push(json!({"role": "user", "content": compact(parts)}));
        }
        Some("assistant") => {
            m.flush_tool_images();
            let text = texts(&parts).join("\n");
            if !text.is_empty() {
                m.assistant.texts.push(text);
            }
        }
        _ => {
            return Err(not_a(
                &format!("{at}.role"),
                "user, assistant, developer or system",
            ))
        }
    }
    Ok(())
}

/// The text of every text part.
fn texts(parts: &[Value]) -> Vec<&str> {
    parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect()
}

/// Parts that are all text → one string (the most compatible form); otherwise the parts.
fn compact(parts: Vec<Value>) -> Value {
    if parts
        .iter()
        .all(|p| p.get("type").and_then(Value::as_str) == Some("text"))
    {
        Value::String(texts(&parts).join("\n"))
    } else {
        Value::Array(parts)
    }
}

/// Message `content` (a string, or Responses content parts) → chat content parts. Images and
/// files are accepted from users only, as in chat.
fn content_parts(
    content: Option<&Value>,
    at: &str,
    role: Option<&str>,
) -> Result<Vec<Value>, GatewayError> {
    let list = match content {
        Some(Value::String(text)) => return Ok(vec![json!({"type": "text", "text": text})]),
        Some(Value::Array(list)) => list,
        _ => return Err(not_a(at, "a string or an array of content parts")),
    };
    let mut parts = Vec::with_capacity(list.len());
    for (j, part) in list.iter().enumerate() {
        let at = format!("{at}[{j}]");
        match part.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text" | "text") => {
                let text = required_str(part, "text", &at)?;
                parts.push(json!({"type": "text", "text": text}));
            }
            // An assistant's earlier refusal is what it said.
            Some("refusal") => {
                let text = required_str(part, "refusal", &at)?;
                parts.push(json!({"type": "text", "text": text}));
            }
            Some(kind @ ("input_image" | "input_file")) if role == Some("user") => {
                parts.push(media_part(part, kind, &at)?);
            }
            Some(kind) => {
                return Err(GatewayError::invalid(
                    &format!("{at}.type"),
                    format!("content parts of type `{kind}` are not supported here"),
                ))
            }
            None => return Err(not_a(&format!("{at}.type"), "a string")),
        }
    }
    Ok(parts)
}

/// `input_image` → chat `image_url`; `input_file` with inline data → chat `file`. Stored
/// files (`file_id`) and remote files live in an OpenAI account the model may not be served
/// from, so they are refused.
fn media_part(part: &Value, kind: &str, at: &str) -> Result<Value, GatewayError> {
    let get = |key: &str| part.get(key).and_then(Value::as_str);
    match (kind, get("image_url"), get("file_data")) {
        ("input_image", Some(url), _) => {
            let mut image = json!({"url": url});
            if let Some(detail) = get("detail") {
                image["detail"] = detail.into();
            }
            Ok(json!({"type": "image_url", "image_url": image}))
        }
        ("input_file", _, Some(data)) => {
            let filename = get("filename").unwrap_or("file");
            Ok(json!({"type": "file", "file": {"filename": filename, "file_data": data}}))
        }
        _ if get("file_id").is_some() => Err(GatewayError::invalid(
            &format!("{at}.file_id"),
            "`file_id` is not supported for this model; send the content inline (a data URL)",
        )),
        _ => Err(GatewayError::invalid(
            at,
            format!("an `{kind}` part needs inline data (`image_url` / `file_data`)"),
        )),
    }
}

/// A tool's `output` (a string, or `input_text` / `input_image` parts) → the tool message's
/// text; images go to `m.tool_images`.
fn tool_output(output: Option<&Value>, at: &str, m: &mut Messages) -> Result<String, GatewayError> {
    match output {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(_)) => {
            let parts = content_parts(output, at, Some("user"))?;
            let mut text = Vec::new();
            for part in parts {
                match part.get("text").and_then(Value::as_str) {
                    Some(t) => text.push(t.to_string()),
                    None => m.tool_images.push(part),
                }
            }
            Ok(text.join("\n"))
        }
        Some(_) => Err(not_a(at, "a string or an array of content parts")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "request_tests.rs"]
mod tests;
