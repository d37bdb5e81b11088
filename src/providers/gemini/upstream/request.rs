//! OpenAI chat request → Gemini `generateContent` body: the top-level fields (docs/translation.md C1).
//! Messages are converted in `messages`, JSON schemas cleaned in `schema`.
//!
//! Dropped on purpose (no Gemini equivalent, or nothing for Gemini to act on): `model` (it is in
//! the URL), `stream` and `stream_options` (the method and the gateway decide), `user`,
//! `logit_bias`, `parallel_tool_calls` (Gemini decides how many calls to make), `service_tier`,
//! `store`, `metadata`, `prediction`, `modalities`, `audio`, `web_search_options`,
//! `verbosity`, `safety_identifier`, `prompt_cache_key`, tools' `strict`. `n: 1` and zero
//! penalties are omitted: they are the defaults, and some Gemini models reject any penalty.

use serde_json::{json, Map, Value};

use super::{messages, schema};
use crate::error::GatewayError;
use crate::providers::chat::ChatRequest;
use crate::providers::json::{field, items, to_bytes};

/// Gemini's limit on `stopSequences`.
const MAX_STOP_SEQUENCES: usize = 5;

/// `reasoning_effort` → `thinkingConfig.thinkingBudget`, the budgets Google's own
/// OpenAI-compatible endpoint uses (`none` turns thinking off where a model allows it), with
/// `includeThoughts` so that the thought summaries come back as reasoning.
const THINKING_BUDGETS: &[(&str, u32)] = &[
    ("none", 0),
    ("minimal", 1024),
    ("low", 1024),
    ("medium", 8192),
    ("high", 24576),
];

/// OpenAI chat request → Gemini `generateContent` request body (docs/translation.md C1), and whether
/// the client asked to stream (the proxy then calls `:streamGenerateContent?alt=sse`).
///
/// Messages: `system`/`developer` → `systemInstruction` (their position in the conversation is
/// lost), `assistant` → role `model` with `functionCall` parts for its `tool_calls`, `tool` →
/// `functionResponse` parts in a `user` turn (the name is looked up from the matching earlier
/// tool call), consecutive same-role turns merged. Images: a data URL → `inlineData`; an http(s)
/// URL → `fileData` with the MIME type guessed from the URL's extension, or a 400 naming
/// `messages` when the extension tells nothing (Gemini needs the type, and the gateway does not
/// download). `generationConfig` gets `temperature`, `topP`, `topK` (extension `top_k`),
/// `maxOutputTokens` (`max_completion_tokens` ?? `max_tokens`), `stopSequences` (≤ 5),
/// `candidateCount` (`n`), `presencePenalty`, `frequencyPenalty`, `seed`, JSON mode
/// (`responseMimeType`, `responseSchema` cleaned as `schema` documents), `thinkingConfig`
/// (`reasoning_effort`) and `responseLogprobs`/`logprobs`. `tools` → `functionDeclarations`
/// (schemas cleaned; an object schema without properties is omitted, which Gemini requires),
/// `tool_choice` → `toolConfig.functionCallingConfig`. Every malformed field is a 400 naming it.
pub fn from_chat(chat: &ChatRequest) -> Result<(Vec<u8>, bool), GatewayError> {
    let body = chat.fields();
    let stream = match field(body, "stream") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(GatewayError::invalid(
                "stream",
                "`stream` must be a boolean",
            ))
        }
    };
    if field(body, "functions").is_some() || field(body, "function_call").is_some() {
        return Err(GatewayError::invalid(
            "functions",
            "the deprecated `functions`/`function_call` are not supported for this model; use `tools`",
        ));
    }
    let converted = messages::convert(field(body, "messages"))?;

    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(converted.contents));
    if !converted.system.is_empty() {
        out.insert(
            "systemInstruction".into(),
            json!({ "parts": converted.system }),
        );
    }
    let declarations = function_declarations(body)?;
    if !declarations.is_empty() {
        out.insert(
            "tools".into(),
            json!([{ "functionDeclarations": declarations }]),
        );
        if let Some(config) = tool_config(body)? {
            out.insert("toolConfig".into(), config);
        }
    }
    let config = generation_config(body)?;
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    Ok((to_bytes(&out)?, stream))
}

/// A number field, kept as the client wrote it.
fn number(body: &Map<String, Value>, key: &str) -> Result<Option<Value>, GatewayError> {
    match field(body, key) {
        None => Ok(None),
        Some(v @ Value::Number(_)) => Ok(Some(v.clone())),
        Some(_) => Err(GatewayError::invalid(
            key,
            format!("`{key}` must be a number"),
        )),
    }
}

/// A non-negative integer field.
fn count(body: &Map<String, Value>, key: &str) -> Result<Option<u64>, GatewayError> {
    match field(body, key) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            GatewayError::invalid(key, format!("`{key}` must be a non-negative integer"))
        }),
    }
}

fn generation_config(body: &Map<String, Value>) -> Result<Map<String, Value>, GatewayError> {
    let mut config = Map::new();
    for (openai, gemini) in [("temperature", "temperature"), ("top_p", "topP")] {
        if let Some(v) = number(body, openai)? {
            config.insert(gemini.into(), v);
        }
    }
    if let Some(k) = count(body, "top_k")? {
        config.insert("topK".into(), k.into());
    }
    let max = match count(body, "max_completion_tokens")? {
        Some(n) => Some(n),
        None => count(body, "max_tokens")?,
    };
    if let Some(n) = max {
        config.insert("maxOutputTokens".into(), n.into());
    }
    if let Some(stops) = stop_sequences(body)? {
        config.insert("stopSequences".into(), stops);
    }
    match count(body, "n")? {
        Some(0) => return Err(GatewayError::invalid("n", "`n` must be at least 1")),
        Some(n) if n > 1 => {
            config.insert("candidateCount".into(), n.into());
        }
        _ => {}
    }
    for (openai, gemini) in [
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(v) = number(body, openai)?.filter(|v| v.as_f64() != Some(0.0)) {
            config.insert(gemini.into(), v);
        }
    }
    match field(body, "seed") {
        None => {}
        Some(v) if v.is_i64() || v.is_u64() => {
            config.insert("seed".into(), v.clone());
        }
        Some(_) => return Err(GatewayError::invalid("seed", "`seed` must be an integer")),
    }
    response_format(body, &mut config)?;
    if let Some(effort) = field(body, "reasoning_effort") {
        let budget = effort
            .as_str()
            .and_then(|e| THINKING_BUDGETS.iter().find(|(name, _)| *name == e))
            .map(|(_, budget)| *budget)
            .ok_or_else(|| {
                GatewayError::invalid(
                    "reasoning_effort",
                    "`reasoning_effort` must be one of none, minimal, low, medium, high",
                )
            })?;
        // thoughts asked back, so that they reach the client as reasoning
        let thinking = match budget {
            0 => json!({ "thinkingBudget": 0 }),
            _ => json!({ "thinkingBudget": budget, "includeThoughts": true }),
        };
        config.insert("thinkingConfig".into(), thinking);
    }
    match field(body, "logprobs") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            config.insert("responseLogprobs".into(), true.into());
            if let Some(n) = count(body, "top_logprobs")? {
                config.insert("logprobs".into(), n.into());
            }
        }
        Some(_) => {
            return Err(GatewayError::invalid(
                "logprobs",
                "`logprobs` must be a boolean",
            ))
        }
    }
    Ok(config)
}

fn stop_sequences(body: &Map<String, Value>) -> Result<Option<Value>, GatewayError> {
    let stops: Vec<Value> = match field(body, "stop") {
        None => return Ok(None),
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
    Ok((!stops.is_empty()).then_some(Value::Array(stops)))
}

/// JSON mode: `json_object` → `responseMimeType`; `json_schema` → also `responseSchema`.
fn response_format(
    body: &Map<String, Value>,
    config: &mut Map<String, Value>,
) -> Result<(), GatewayError> {
    let Some(format) = field(body, "response_format") else {
        return Ok(());
    };
    let bad = || {
        GatewayError::invalid(
            "response_format",
            "`response_format.type` must be text, json_object or json_schema",
        )
    };
    match format.get("type").and_then(Value::as_str).ok_or_else(bad)? {
        "text" => {}
        "json_object" => {
            config.insert("responseMimeType".into(), "application/json".into());
        }
        "json_schema" => {
            config.insert("responseMimeType".into(), "application/json".into());
            let schema = format
                .get("json_schema")
                .and_then(|s| s.get("schema"))
                .filter(|s| !s.is_null());
            if let Some(schema) = schema {
                config.insert(
                    "responseSchema".into(),
                    schema::clean(schema, "response_format")?,
                );
            }
        }
        _ => return Err(bad()),
    }
    Ok(())
}

fn function_declarations(body: &Map<String, Value>) -> Result<Vec<Value>, GatewayError> {
    let tools = items(field(body, "tools"), "tools")?;
    let mut declarations = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let kind = tool
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("function");
        let function = tool.get("function").filter(|_| kind == "function");
        let Some(function) = function else {
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
        let mut declaration = Map::new();
        declaration.insert("name".into(), name.into());
        if let Some(d) = function.get("description").and_then(Value::as_str) {
            declaration.insert("description".into(), d.into());
        }
        if let Some(params) = function.get("parameters").filter(|p| !p.is_null()) {
            let params = schema::clean(params, "tools")?;
            if !schema::is_empty_object(&params) {
                declaration.insert("parameters".into(), params);
            }
        }
        declarations.push(Value::Object(declaration));
    }
    Ok(declarations)
}

/// `tool_choice` → `toolConfig.functionCallingConfig`; absent → Gemini's default (`AUTO`).
fn tool_config(body: &Map<String, Value>) -> Result<Option<Value>, GatewayError> {
    let Some(choice) = field(body, "tool_choice") else {
        return Ok(None);
    };
    let config = match choice {
        Value::String(s) => match s.as_str() {
            "auto" => json!({ "mode": "AUTO" }),
            "none" => json!({ "mode": "NONE" }),
            "required" => json!({ "mode": "ANY" }),
            _ => return Err(bad_tool_choice()),
        },
        Value::Object(o) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(bad_tool_choice)?;
            json!({ "mode": "ANY", "allowedFunctionNames": [name] })
        }
        _ => return Err(bad_tool_choice()),
    };
    Ok(Some(json!({ "functionCallingConfig": config })))
}

fn bad_tool_choice() -> GatewayError {
    GatewayError::invalid(
        "tool_choice",
        "`tool_choice` must be auto, none, required or {\"type\":\"function\",\"function\":{\"name\":…}}",
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// A chat request body as the gateway parses it.
    fn parse(body: &[u8]) -> ChatRequest {
        ChatRequest::parse(body).unwrap()
    }

    /// Converts `extra` fields merged into a one-message request.
    fn convert(extra: Value) -> Value {
        let mut body =
            json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (bytes, _) = from_chat(&parse(body.to_string().as_bytes())).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn error(extra: Value) -> GatewayError {
        let mut body = json!({"messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        from_chat(&parse(body.to_string().as_bytes())).unwrap_err()
    }

    #[test]
    fn model_is_not_in_the_body_and_stream_flag_is_returned() {
        let body = br#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
        let (bytes, stream) = from_chat(&parse(body)).unwrap();
        assert!(stream);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v,
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
        );
        let (_, stream) =
            from_chat(&parse(br#"{"messages":[{"role":"user","content":"x"}]}"#)).unwrap();
        assert!(!stream);
        assert_eq!(
            error(json!({"stream": "yes"})).param.as_deref(),
            Some("stream")
        );
    }

    #[test]
    fn sampling_parameters_map_to_generation_config() {
        let v = convert(json!({
            "temperature": 1.5, "top_p": 0.9, "top_k": 40, "seed": 7,
            "presence_penalty": 0.5, "frequency_penalty": -0.25, "n": 2,
        }));
        assert_eq!(
            v["generationConfig"],
            json!({"temperature": 1.5, "topP": 0.9, "topK": 40, "seed": 7, "presencePenalty": 0.5,
                   "frequencyPenalty": -0.25, "candidateCount": 2})
        );
    }

    #[test]
    fn defaults_and_nulls_are_omitted() {
        let v = convert(
            json!({"n": 1, "presence_penalty": 0, "frequency_penalty": 0.0,
                               "temperature": null, "user": "u1", "logit_bias": {"1": 5},
                               "parallel_tool_calls": false, "store": true}),
        );
        assert_eq!(v.get("generationConfig"), None);
        assert_eq!(error(json!({"n": 0})).param.as_deref(), Some("n"));
        assert_eq!(
            error(json!({"temperature": "hot"})).param.as_deref(),
            Some("temperature")
        );
        assert_eq!(error(json!({"seed": 1.5})).param.as_deref(), Some("seed"));
    }

    #[test]
    fn max_completion_tokens_wins_over_max_tokens() {
        let v = convert(json!({"max_tokens": 100, "max_completion_tokens": 200}));
        assert_eq!(v["generationConfig"]["maxOutputTokens"], 200);
        let v = convert(json!({"max_tokens": 100}));
        assert_eq!(v["generationConfig"]["maxOutputTokens"], 100);
        assert_eq!(
            error(json!({"max_tokens": -1})).param.as_deref(),
            Some("max_tokens")
        );
    }

    #[test]
    fn stop_becomes_stop_sequences() {
        assert_eq!(
            convert(json!({"stop": "END"}))["generationConfig"]["stopSequences"],
            json!(["END"])
        );
        assert_eq!(
            convert(json!({"stop": ["a", "b"]}))["generationConfig"]["stopSequences"],
            json!(["a", "b"])
        );
        let e = error(json!({"stop": ["1", "2", "3", "4", "5", "6"]}));
        assert_eq!((e.status(), e.param.as_deref()), (400, Some("stop")));
        assert_eq!(error(json!({"stop": [1]})).param.as_deref(), Some("stop"));
    }

    #[test]
    fn json_object_sets_the_mime_type() {
        let v = convert(json!({"response_format": {"type": "json_object"}}));
        assert_eq!(
            v["generationConfig"],
            json!({"responseMimeType": "application/json"})
        );
        let v = convert(json!({"response_format": {"type": "text"}}));
        assert_eq!(v.get("generationConfig"), None);
        let e = error(json!({"response_format": {"type": "xml"}}));
        assert_eq!(e.param.as_deref(), Some("response_format"));
    }

    #[test]
    fn json_schema_sets_a_cleaned_response_schema() {
        let v = convert(
            json!({"response_format": {"type": "json_schema", "json_schema": {
            "name": "person", "strict": true,
            "schema": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                       "properties": {"name": {"type": "string"}}, "required": ["name"],
                       "additionalProperties": false}}}}),
        );
        assert_eq!(
            v["generationConfig"],
            json!({"responseMimeType": "application/json", "responseSchema": {
                "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}})
        );
    }

    #[test]
    fn tools_become_function_declarations() {
        let v = convert(json!({"tools": [
            {"type": "function", "function": {"name": "get_weather", "description": "Weather", "strict": true,
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"], "additionalProperties": false}}},
            {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}},
            {"type": "function", "function": {"name": "ping"}}
        ]}));
        assert_eq!(
            v["tools"],
            json!([{"functionDeclarations": [
                {"name": "get_weather", "description": "Weather", "parameters": {
                    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
                {"name": "now"},
                {"name": "ping"}
            ]}])
        );
        assert_eq!(v.get("toolConfig"), None);
        let e = error(json!({"tools": [{"type": "web_search"}]}));
        assert_eq!(e.param.as_deref(), Some("tools"));
        let e = error(json!({"functions": [{"name": "f"}]}));
        assert_eq!(e.param.as_deref(), Some("functions"));
    }

    #[test]
    fn tool_choice_becomes_function_calling_config() {
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let cases = [
            (json!("auto"), json!({"mode": "AUTO"})),
            (json!("none"), json!({"mode": "NONE"})),
            (json!("required"), json!({"mode": "ANY"})),
            (
                json!({"type": "function", "function": {"name": "f"}}),
                json!({"mode": "ANY", "allowedFunctionNames": ["f"]}),
            ),
        ];
        for (choice, expected) in cases {
            let v = convert(json!({"tools": tools, "tool_choice": choice}));
            assert_eq!(v["toolConfig"], json!({"functionCallingConfig": expected}));
        }
        // Without tools there is nothing to choose from: dropped.
        assert_eq!(
            convert(json!({"tool_choice": "auto"})).get("toolConfig"),
            None
        );
        let e = error(json!({"tools": tools, "tool_choice": "always"}));
        assert_eq!(e.param.as_deref(), Some("tool_choice"));
    }

    #[test]
    fn reasoning_effort_sets_a_thinking_budget() {
        for (effort, budget) in [
            ("none", 0),
            ("low", 1024),
            ("medium", 8192),
            ("high", 24576),
        ] {
            let v = convert(json!({"reasoning_effort": effort}));
            let expected = match budget {
                0 => json!({"thinkingBudget": 0}),
                _ => json!({"thinkingBudget": budget, "includeThoughts": true}),
            };
            assert_eq!(v["generationConfig"]["thinkingConfig"], expected);
        }
        let e = error(json!({"reasoning_effort": "max"}));
        assert_eq!(e.param.as_deref(), Some("reasoning_effort"));
    }

    #[test]
    fn logprobs_request_response_logprobs() {
        let v = convert(json!({"logprobs": true, "top_logprobs": 3}));
        assert_eq!(
            v["generationConfig"],
            json!({"responseLogprobs": true, "logprobs": 3})
        );
        assert_eq!(
            convert(json!({"logprobs": false})).get("generationConfig"),
            None
        );
    }

    #[test]
    fn an_agent_turn_converts_whole() {
        let body = json!({
            "model": "gemini-2.5-flash", "stream": true, "temperature": 0.2, "max_tokens": 512,
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_a_0", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_a_0", "content": "{\"temp_c\":21}"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "auto"
        });
        let (bytes, stream) = from_chat(&parse(body.to_string().as_bytes())).unwrap();
        assert!(stream);
        assert_eq!(
            serde_json::from_slice::<Value>(&bytes).unwrap(),
            json!({
                "systemInstruction": {"parts": [{"text": "You are terse."}]},
                "contents": [
                    {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
                    {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}}]}
                ],
                "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": {
                    "type": "object", "properties": {"city": {"type": "string"}}}}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
                "generationConfig": {"temperature": 0.2, "maxOutputTokens": 512}
            })
        );
    }

    #[test]
    fn malformed_bodies_are_400s() {
        for body in [&b"not json"[..], b"[1]", br#"{"messages":"hi"}"#, br#"{}"#] {
            let e = ChatRequest::parse(body)
                .and_then(|chat| from_chat(&chat))
                .unwrap_err();
            assert_eq!(e.status(), 400, "{}", String::from_utf8_lossy(body));
        }
    }
}
