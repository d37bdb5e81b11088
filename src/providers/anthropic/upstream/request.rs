//! OpenAI chat request → Anthropic Messages request (docs/translation.md A1; the messages, A2, are
//! in [`super::messages`]).
//!
//! Anthropic rejects fields it does not define, so the output is built from scratch: every
//! OpenAI field is either mapped, rejected with a 400 naming it, or dropped (the drop list is on
//! [`from_chat`]).

use serde_json::{json, Map, Value};

use super::cache::{place_breakpoints, PromptCache};
use super::messages::{
    continues_without_thinking, convert_messages, drop_thinking, rules_out_thinking, turn_json,
};
use super::JSON_OUTPUT_TOOL;
use crate::error::GatewayError;
use crate::providers::chat::ChatRequest;
use crate::providers::json::{field, items, to_bytes};

/// max_tokens sent to Anthropic when an OpenAI client gives none (Anthropic requires the field;
/// 4096 is what mainstream translators send).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Anthropic's smallest thinking budget; also the budget for `minimal` and `low`.
const MIN_THINKING_BUDGET: u64 = 1024;
/// Thinking budget for `reasoning_effort: medium`.
const MEDIUM_THINKING_BUDGET: u64 = 4096;
/// Thinking budget for `reasoning_effort: high`.
const HIGH_THINKING_BUDGET: u64 = 16384;

/// The system instruction standing in for `response_format: json_object` (Anthropic has no
/// JSON mode; practice, lossy).
const JSON_OBJECT_INSTRUCTION: &str =
    "Respond only with a single valid JSON object, without any other text.";

/// OpenAI chat request → Anthropic Messages request body (docs/translation.md A1/A2), `model`
/// set to `upstream_model`. Rejected with a 400 naming the field: `n` > 1, `logprobs`,
/// `top_logprobs`, audio input, `functions`, unknown content parts and invalid tool-call
/// arguments. Dropped (no Anthropic equivalent): `presence_penalty`, `frequency_penalty`,
/// `logit_bias`, `seed`, `service_tier`, `store`, `metadata`, `prediction`, `modalities`,
/// `audio`, `stream_options`, message `name`, `refusal`, image `detail`, tool `strict`, and any
/// other field Anthropic does not define (it rejects unknown fields). When `reasoning_effort`
/// turns thinking on, `temperature`, `top_p` and `top_k` are dropped too (Anthropic rejects
/// them with thinking); thinking itself is left off with forced tool use, a prefill or a
/// tool-loop continuation whose assistant message lost the signed thinking it was answered
/// with (`thinking_blocks`, which go back first in their turn, unchanged). With `cache` on [`PromptCache::Auto`], prompt-cache breakpoints are
/// placed as [`super::cache`] says.
pub fn from_chat(
    chat: &ChatRequest,
    upstream_model: &str,
    cache: PromptCache,
) -> Result<Vec<u8>, GatewayError> {
    translate(chat, upstream_model, cache).map(|t| t.body)
}

/// A request translated for Anthropic, and what the translation had to leave out.
pub struct Translated {
    pub body: Vec<u8>,
    /// Reasoning was asked for on a tool-loop continuation whose assistant turn lost its
    /// signed thinking, so the turn goes without it.
    pub reasoning_dropped: bool,
}

/// [`from_chat`], saying what it left out.
pub fn translate(
    chat: &ChatRequest,
    upstream_model: &str,
    cache: PromptCache,
) -> Result<Translated, GatewayError> {
    let req = chat.fields();
    reject_unsupported(req)?;
    let (mut system, mut turns) = convert_messages(field(req, "messages"))?;
    let mut tools = convert_tools(field(req, "tools"))?;
    let mut tool_choice = convert_tool_choice(req)?;
    apply_response_format(
        field(req, "response_format"),
        &mut system,
        &mut tools,
        &mut tool_choice,
    )?;

    // Thinking is not allowed with forced tool use, nor with a prefill, nor on a tool-loop
    // continuation whose assistant turn lost its signed thinking; the answer the client asked
    // for wins over reasoning, so thinking is left off in those cases.
    let forced = tool_choice
        .as_ref()
        .and_then(|c| c.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t == "any" || t == "tool");
    let asked = thinking_budget(field(req, "reasoning_effort"))?;
    let reasoning_dropped = asked.is_some() && !forced && continues_without_thinking(&turns);
    let budget = asked.filter(|_| !forced && !rules_out_thinking(&turns));
    let (max_tokens, budget) = fit_thinking(max_tokens(req)?, budget);
    if budget.is_none() {
        drop_thinking(&mut turns);
    }

    let mut out = Map::new();
    out.insert("model".into(), upstream_model.into());
    out.insert("max_tokens".into(), max_tokens.into());
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert(
        "messages".into(),
        turns.into_iter().map(turn_json).collect(),
    );
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = tool_choice {
            out.insert("tool_choice".into(), Value::Object(choice));
        }
    }
    if let Some(stop) = stop_sequences(field(req, "stop"))? {
        out.insert("stop_sequences".into(), stop);
    }
    match budget {
        // Anthropic rejects temperature and top_k changes with thinking, and narrows top_p.
        Some(budget) => {
            out.insert(
                "thinking".into(),
                json!({"type": "enabled", "budget_tokens": budget}),
            );
        }
        None => {
            if let Some(t) = number(req, "temperature")? {
                // Anthropic's range is 0–1, OpenAI's 0–2; above 1 is a 400 there (practice: clamp).
                let t = if t.as_f64().is_some_and(|t| t > 1.0) {
                    1.into()
                } else {
                    t.clone()
                };
                out.insert("temperature".into(), t);
            }
            if let Some(p) = number(req, "top_p")? {
                out.insert("top_p".into(), p.clone());
            }
            if let Some(k) = number(req, "top_k")? {
                out.insert("top_k".into(), k.clone());
            }
        }
    }
    match field(req, "stream") {
        None => {}
        Some(Value::Bool(b)) => {
            out.insert("stream".into(), (*b).into());
        }
        Some(_) => {
            return Err(GatewayError::invalid(
                "stream",
                "`stream` must be a boolean",
            ))
        }
    }
    match field(req, "user") {
        None => {}
        Some(Value::String(user)) => {
            out.insert("metadata".into(), json!({"user_id": user}));
        }
        Some(_) => return Err(GatewayError::invalid("user", "`user` must be a string")),
    }
    if cache == PromptCache::Auto {
        place_breakpoints(&mut out);
    }
    Ok(Translated {
        body: to_bytes(&Value::Object(out))?,
        reasoning_dropped,
    })
}

/// Parameters whose answer Anthropic cannot give: failing is better than a silent difference.
fn reject_unsupported(req: &Map<String, Value>) -> Result<(), GatewayError> {
    if let Some(n) = field(req, "n") {
        if n.as_u64() != Some(1) {
            return Err(GatewayError::invalid(
                "n",
                "only `n: 1` is supported for this model (Anthropic returns one choice per request)",
            ));
        }
    }
    if field(req, "logprobs").is_some_and(|v| v != &Value::Bool(false)) {
        return Err(GatewayError::invalid(
            "logprobs",
            "`logprobs` is not supported for this model",
        ));
    }
    if field(req, "top_logprobs").is_some_and(|v| v.as_u64() != Some(0)) {
        return Err(GatewayError::invalid(
            "top_logprobs",
            "`top_logprobs` is not supported for this model",
        ));
    }
    for legacy in ["functions", "function_call"] {
        if field(req, legacy).is_some() {
            return Err(GatewayError::invalid(
                legacy,
                format!("`{legacy}` is deprecated and not supported; use `tools`"),
            ));
        }
    }
    Ok(())
}

/// `max_completion_tokens` ?? `max_tokens`, which must be positive integers.
fn max_tokens(req: &Map<String, Value>) -> Result<Option<u64>, GatewayError> {
    for name in ["max_completion_tokens", "max_tokens"] {
        if let Some(v) = field(req, name) {
            return match v.as_u64() {
                Some(n) if n > 0 => Ok(Some(n)),
                _ => Err(GatewayError::invalid(
                    name,
                    format!("`{name}` must be a positive integer"),
                )),
            };
        }
    }
    Ok(None)
}

/// A numeric parameter, or a 400 when it is something else.
fn number<'a>(req: &'a Map<String, Value>, name: &str) -> Result<Option<&'a Value>, GatewayError> {
    match field(req, name) {
        Some(v) if !v.is_number() => Err(GatewayError::invalid(
            name,
            format!("`{name}` must be a number"),
        )),
        v => Ok(v),
    }
}

/// The most output the gateway asks Anthropic for on a request it translates that gave no
/// cap: [`DEFAULT_MAX_TOKENS`], plus the largest thinking budget when reasoning was asked for
/// (what [`fit_thinking`] sends without a client cap). A budget reservation holds this much
/// output for such a request.
pub fn uncapped_max_tokens(reasoning: bool) -> u64 {
    let budget = reasoning.then_some(HIGH_THINKING_BUDGET);
    fit_thinking(None, budget).0
}

/// `reasoning_effort` → thinking budget. The buckets are the gateway's choice within the
/// practice ranges (low ≈ 1024, medium ≈ 2048–4096, high ≈ 4096–16384); `none` turns it off.
fn thinking_budget(effort: Option<&Value>) -> Result<Option<u64>, GatewayError> {
    let Some(effort) = effort else {
        return Ok(None);
    };
    match effort.as_str() {
        Some("none") => Ok(None),
        Some("minimal" | "low") => Ok(Some(MIN_THINKING_BUDGET)),
        Some("medium") => Ok(Some(MEDIUM_THINKING_BUDGET)),
        Some("high") => Ok(Some(HIGH_THINKING_BUDGET)),
        _ => Err(GatewayError::invalid(
            "reasoning_effort",
            "`reasoning_effort` must be one of none, minimal, low, medium, high",
        )),
    }
}

/// The `max_tokens` to send and the thinking budget that fits under it (Anthropic requires
/// `budget_tokens < max_tokens`). Without a client cap the budget comes on top of the default
/// answer length; with one, the cap is the total (OpenAI's `max_completion_tokens` includes
/// reasoning) and the budget shrinks to half of it, or thinking is dropped when even the
/// minimum budget does not fit.
fn fit_thinking(client_max: Option<u64>, budget: Option<u64>) -> (u64, Option<u64>) {
    match (client_max, budget) {
        (None, None) => (DEFAULT_MAX_TOKENS, None),
        (None, Some(b)) => (DEFAULT_MAX_TOKENS + b, Some(b)),
        (Some(max), None) => (max, None),
        (Some(max), Some(b)) if b < max => (max, Some(b)),
        (Some(max), Some(_)) => (max, Some(max / 2).filter(|b| *b >= MIN_THINKING_BUDGET)),
    }
}

/// `stop` string | array → `stop_sequences` array (empty strings skipped).
fn stop_sequences(stop: Option<&Value>) -> Result<Option<Value>, GatewayError> {
    let list: Vec<Value> = match stop {
        None => return Ok(None),
        Some(Value::String(s)) => vec![s.clone().into()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| {
                s.as_str().map(Value::from).ok_or_else(|| {
                    GatewayError::invalid("stop", "`stop` must be a string or an array of strings")
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(GatewayError::invalid(
                "stop",
                "`stop` must be a string or an array of strings",
            ))
        }
    };
    let list: Vec<Value> = list
        .into_iter()
        .filter(|s| s.as_str() != Some(""))
        .collect();
    Ok((!list.is_empty()).then_some(Value::Array(list)))
}

/// `tools[].function{name,description,parameters}` → `tools[]{name,description,input_schema}`.
/// `strict` is dropped; a missing schema becomes an empty object schema.
fn convert_tools(tools: Option<&Value>) -> Result<Vec<Value>, GatewayError> {
    let list = items(tools, "tools")?;
    let mut out = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        let kind = tool
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("function");
        if kind != "function" {
            return Err(GatewayError::invalid(
                &format!("tools[{i}].type"),
                format!("tool type `{kind}` is not supported for this model; use `function`"),
            ));
        }
        let function = tool
            .get("function")
            .filter(|f| f.is_object())
            .ok_or_else(|| {
                GatewayError::invalid(
                    &format!("tools[{i}].function"),
                    "each tool needs a `function` object",
                )
            })?;
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                GatewayError::invalid(
                    &format!("tools[{i}].function.name"),
                    "each tool needs a `name`",
                )
            })?;
        if name == JSON_OUTPUT_TOOL {
            return Err(GatewayError::invalid(
                &format!("tools[{i}].function.name"),
                format!("the tool name `{JSON_OUTPUT_TOOL}` is reserved by the gateway"),
            ));
        }
        let mut schema = match function.get("parameters") {
            Some(Value::Object(schema)) => schema.clone(),
            _ => Map::new(),
        };
        schema.entry("type").or_insert_with(|| "object".into());
        if schema.get("type").and_then(Value::as_str) == Some("object") {
            schema.entry("properties").or_insert_with(|| json!({}));
        }
        let mut converted = Map::new();
        converted.insert("name".into(), name.into());
        if let Some(description) = function
            .get("description")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
        {
            converted.insert("description".into(), description.into());
        }
        converted.insert("input_schema".into(), Value::Object(schema));
        if let Some(cache) = tool.get("cache_control") {
            converted.insert("cache_control".into(), cache.clone());
        }
        out.push(Value::Object(converted));
    }
    Ok(out)
}

/// `tool_choice` and `parallel_tool_calls` → Anthropic `tool_choice`.
fn convert_tool_choice(
    req: &Map<String, Value>,
) -> Result<Option<Map<String, Value>>, GatewayError> {
    let bad = || {
        GatewayError::invalid(
            "tool_choice",
            "`tool_choice` must be none, auto, required or {\"type\":\"function\",\"function\":{\"name\":…}}",
        )
    };
    let mut choice = match field(req, "tool_choice") {
        None => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "required" => json!({"type": "any"}),
            "none" => json!({"type": "none"}),
            _ => return Err(bad()),
        }),
        Some(choice) => {
            let name = choice
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(bad)?;
            Some(json!({"type": "tool", "name": name}))
        }
    };
    match field(req, "parallel_tool_calls") {
        None | Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => {
            let choice = choice.get_or_insert_with(|| json!({"type": "auto"}));
            if choice.get("type").and_then(Value::as_str) != Some("none") {
                choice["disable_parallel_tool_use"] = true.into();
            }
        }
        Some(_) => {
            return Err(GatewayError::invalid(
                "parallel_tool_calls",
                "`parallel_tool_calls` must be a boolean",
            ))
        }
    }
    Ok(choice.and_then(|c| match c {
        Value::Object(map) => Some(map),
        _ => None,
    }))
}

/// `response_format`: `json_schema` with an object schema → the forced [`JSON_OUTPUT_TOOL`]
/// (the response translators turn its input back into the message content); any other schema
/// and `json_object` → a system instruction (lossy, practice).
fn apply_response_format(
    format: Option<&Value>,
    system: &mut Vec<Value>,
    tools: &mut Vec<Value>,
    tool_choice: &mut Option<Map<String, Value>>,
) -> Result<(), GatewayError> {
    let Some(format) = format else { return Ok(()) };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => {}
        Some("json_object") => {
            system.push(json!({"type": "text", "text": JSON_OBJECT_INSTRUCTION}))
        }
        Some("json_schema") => {
            let spec = format
                .get("json_schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| {
                    GatewayError::invalid(
                        "response_format.json_schema",
                        "`json_schema` must be an object",
                    )
                })?;
            let schema = spec
                .get("schema")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"}));
            if schema.get("type").and_then(Value::as_str) == Some("object") {
                let mut description =
                    "Give your final answer by calling this tool: its input is the answer."
                        .to_string();
                if let Some(d) = spec.get("description").and_then(Value::as_str) {
                    description = format!("{description} {d}");
                }
                tools.push(json!({"name": JSON_OUTPUT_TOOL, "description": description, "input_schema": schema}));
                *tool_choice = match json!({"type": "tool", "name": JSON_OUTPUT_TOOL, "disable_parallel_tool_use": true})
                {
                    Value::Object(map) => Some(map),
                    _ => None,
                };
            } else {
                let text = format!(
                    "Respond only with a JSON value that matches this JSON schema, without any other text: {schema}"
                );
                system.push(json!({"type": "text", "text": text}));
            }
        }
        _ => {
            return Err(GatewayError::invalid(
                "response_format.type",
                "`response_format.type` must be text, json_object or json_schema",
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "request_tests.rs"]
mod tests;
