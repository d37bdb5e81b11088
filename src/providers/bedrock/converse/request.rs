//! OpenAI chat request → Converse request body (docs/translation.md F1): the top-level fields
//! (the conversation is [`super::messages`]).
//!
//! `inferenceConfig`: `maxTokens` (`max_completion_tokens` ?? `max_tokens`), `temperature`,
//! `topP` (`top_p`), `stopSequences` (`stop`, ≤ 4 as Converse allows). `toolConfig`:
//! `tools` → `[{toolSpec: {name, description, inputSchema: {json}}}]`, `tool_choice` `auto` →
//! `{auto:{}}`, `required` → `{any:{}}`, a named function → `{tool:{name}}`; `none` sends no
//! tools at all (Converse has no such choice), and no tools means no `toolConfig`, except
//! that a history with tool calls or results needs one (Converse refuses them without): then
//! the request's tools, or those the history calls, go without a choice.
//!
//! Dropped (no Converse field every model takes): `model` and `stream` (the path says both),
//! `stream_options`, `user`, `seed`, penalties, `logit_bias`, `parallel_tool_calls`,
//! `response_format`, `reasoning_effort`, `logprobs`, `store`, `metadata`, `service_tier`,
//! tools' `strict`. `n` above 1 is a 400: Converse answers one message.

use serde_json::{json, Map, Value};

use super::messages;
use crate::error::GatewayError;
use crate::providers::chat::ChatRequest;
use crate::providers::json::{field, items, to_bytes};

/// Converse's limit on `stopSequences`.
const MAX_STOP_SEQUENCES: usize = 4;

/// The Converse body of `chat` (see the module doc).
pub fn from_chat(chat: &ChatRequest) -> Result<Vec<u8>, GatewayError> {
    let body = chat.fields();
    if field(body, "functions").is_some() || field(body, "function_call").is_some() {
        return Err(GatewayError::invalid(
            "functions",
            "the deprecated `functions`/`function_call` are not supported for this model; use `tools`",
        ));
    }
    match field(body, "n").map(Value::as_u64) {
        None | Some(Some(1)) => {}
        Some(_) => {
            return Err(GatewayError::invalid(
                "n",
                "this model answers with `n` = 1",
            ))
        }
    }
    let converted = messages::convert(field(body, "messages"))?;
    let tools = match tool_config(body)? {
        Some(config) => Some(config),
        None => history_tools(body, &converted.messages)?,
    };
    let mut out = Map::new();
    out.insert("messages".into(), Value::Array(converted.messages));
    if !converted.system.is_empty() {
        out.insert("system".into(), Value::Array(converted.system));
    }
    let config = inference_config(body)?;
    if !config.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(config));
    }
    if let Some(tools) = tools {
        out.insert("toolConfig".into(), tools);
    }
    to_bytes(&out)
}

fn inference_config(body: &Map<String, Value>) -> Result<Map<String, Value>, GatewayError> {
    let mut config = Map::new();
    let max = match field(body, "max_completion_tokens") {
        Some(v) => Some(("max_completion_tokens", v)),
        None => field(body, "max_tokens").map(|v| ("max_tokens", v)),
    };
    if let Some((name, value)) = max {
        let n = value.as_u64().filter(|n| *n > 0).ok_or_else(|| {
            GatewayError::invalid(name, format!("`{name}` must be a positive integer"))
        })?;
        config.insert("maxTokens".into(), n.into());
    }
    for (openai, converse) in [("temperature", "temperature"), ("top_p", "topP")] {
        match field(body, openai) {
            None => {}
            Some(v @ Value::Number(_)) => {
                config.insert(converse.into(), v.clone());
            }
            Some(_) => {
                return Err(GatewayError::invalid(
                    openai,
                    format!("`{openai}` must be a number"),
                ))
            }
        }
    }
    let stops: Vec<Value> = match field(body, "stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![Value::String(s.clone())],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items.clone(),
        Some(_) => {
            return Err(GatewayError::invalid(
                "stop",
                "`stop` must be a string or an array of strings",
            ))
        }
    };
    if stops.len() > MAX_STOP_SEQUENCES {
        return Err(GatewayError::invalid(
            "stop",
            format!("this model takes at most {MAX_STOP_SEQUENCES} stop sequences"),
        ));
    }
    if !stops.is_empty() {
        config.insert("stopSequences".into(), Value::Array(stops));
    }
    Ok(config)
}

/// `tools` and `tool_choice` → `toolConfig`, or `None` when no tool is to be offered.
fn tool_config(body: &Map<String, Value>) -> Result<Option<Value>, GatewayError> {
    let tools = items(field(body, "tools"), "tools")?;
    if tools.is_empty() {
        return Ok(None);
    }
    let choice = match tool_choice(body)? {
        Choice::None => return Ok(None),
        Choice::Auto => None,
        Choice::Some(choice) => Some(choice),
    };
    let mut config = json!({ "tools": tool_specs(tools)? });
    if let Some(choice) = choice {
        config["toolChoice"] = choice;
    }
    Ok(Some(config))
}

/// The `toolConfig` of a conversation whose history holds tool calls or results but that
/// offers no tool (`tool_choice: none`, or no `tools` sent again): Converse refuses tool
/// blocks without one. The request's own tools when it has them, else each tool the history
/// calls with an open schema; no choice (Converse has no "none": the model may call one).
fn history_tools(
    body: &Map<String, Value>,
    messages: &[Value],
) -> Result<Option<Value>, GatewayError> {
    let blocks = || {
        messages
            .iter()
            .filter_map(|m| m.get("content").and_then(Value::as_array))
            .flatten()
    };
    if !blocks().any(|b| b.get("toolUse").is_some() || b.get("toolResult").is_some()) {
        return Ok(None);
    }
    let tools = items(field(body, "tools"), "tools")?;
    let specs = if tools.is_empty() {
        let mut names: Vec<&str> = blocks()
            .filter_map(|b| b.get("toolUse")?.get("name")?.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                json!({ "toolSpec": { "name": name,
                    "inputSchema": { "json": { "type": "object" } } } })
            })
            .collect()
    } else {
        tool_specs(tools)?
    };
    Ok((!specs.is_empty()).then(|| json!({ "tools": specs })))
}

/// What `tool_choice` asks of Converse.
enum Choice {
    /// No tool offered.
    None,
    /// Converse's default.
    Auto,
    Some(Value),
}

fn tool_choice(body: &Map<String, Value>) -> Result<Choice, GatewayError> {
    Ok(match field(body, "tool_choice") {
        None => Choice::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Choice::Some(json!({ "auto": {} })),
            "required" => Choice::Some(json!({ "any": {} })),
            "none" => Choice::None,
            _ => return Err(bad_tool_choice()),
        },
        Some(Value::Object(o)) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(bad_tool_choice)?;
            Choice::Some(json!({ "tool": { "name": name } }))
        }
        Some(_) => return Err(bad_tool_choice()),
    })
}

/// `tools` → Converse's `toolSpec`s.
fn tool_specs(tools: &[Value]) -> Result<Vec<Value>, GatewayError> {
    let mut specs = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let kind = tool
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("function");
        let Some(function) = tool.get("function").filter(|_| kind == "function") else {
            return Err(GatewayError::invalid(
                "tools",
                format!("tools[{i}]: only `function` tools can be sent to this model"),
            ));
        };
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                GatewayError::invalid("tools", format!("tools[{i}].function.name is missing"))
            })?;
        // Converse requires a schema; a function without parameters takes an empty object
        let schema = function
            .get("parameters")
            .filter(|p| !p.is_null())
            .cloned()
            .unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
        let mut spec = json!({ "name": name, "inputSchema": { "json": schema } });
        if let Some(d) = function
            .get("description")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
        {
            spec["description"] = d.into();
        }
        specs.push(json!({ "toolSpec": spec }));
    }
    Ok(specs)
}

fn bad_tool_choice() -> GatewayError {
    GatewayError::invalid(
        "tool_choice",
        "`tool_choice` must be auto, none, required or {\"type\":\"function\",\"function\":{\"name\":…}}",
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "request_tests.rs"]
mod tests;
