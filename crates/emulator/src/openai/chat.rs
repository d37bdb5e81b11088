//! OpenAI chat completions: JSON and SSE answers, with these deterministic rules
//! (tests compute expected values from them):
//!
//! * **Content**: chunk `i` is [`chunk_text`]`(i)`: `"Hello"` for `i == 0`, then
//!   `" world{i}"` (`" world1"`, `" world2"`, ...). A JSON answer's content is the N chunks
//!   joined: N=5 gives `"Hello world1 world2 world3 world4"`; N=0 gives `""`.
//! * **prompt_tokens** ([`prompt_tokens`]): for every element of `messages`,
//!   3 + the number of whitespace-separated words in its `content` (the string itself, or
//!   the `text` of every part when it is an array; anything else counts 0 words).
//! * **completion_tokens**: text answers: N × n. Tool-call answers: K × n, where K is the
//!   number of argument fragments, K = clamp(N, 1, chars(arguments)).
//! * **Tool calls**: when `tools` is non-empty, `tool_choice` is not `"none"`, and the last
//!   message is not a tool result (then the answer is text, as a model's would be), the answer
//!   calls the tool named by `tool_choice.function.name` (else the first tool). Its
//!   arguments are one key: the schema's first `required` property (else the alphabetically
//!   first property) with an example value (`enum[0]`, else by `type`: integer/number → 1,
//!   boolean → true, array → [], object → {}, anything else → "Paris"); `{}` without
//!   properties.
//! * **Stream** (`"stream":true`): per choice a role event (`{"role":"assistant",
//!   "content":""}`, or for a tool call `content:null` plus the first fragment with
//!   id/type/name and `arguments:""`); then the N chunks (or K argument fragments), one
//!   event per choice each; then per choice `delta:{}` with the finish_reason; then, only
//!   with `stream_options.include_usage` (which also puts `"usage":null` in every other
//!   chunk), a `choices:[]` chunk with the usage; then `data: [DONE]`. So a text stream
//!   with n=1 has N + 3 events (N + 4 with include_usage), `[DONE]` included.
//! * Validation like the real API: missing `model` or `messages`, empty `messages`,
//!   `n` outside 1..=128, or `stream_options` without `stream:true` → 400 with `param`.

use serde::Serialize;
use serde_json::{json, Value};

use super::{param_error, sse, Reply};
use stream::chat_stream;

/// `system_fingerprint` of every chat answer (stable, so tests can match it).
pub const SYSTEM_FINGERPRINT: &str = "fp_emulator";
/// Largest accepted `n` (the real API's limit).
const MAX_N: u64 = 128;

mod stream;

// ---------------------------------------------------------------- wire types

/// Chat usage, with the detail objects the real API always sends.
#[derive(Serialize)]
pub struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptDetails,
    completion_tokens_details: CompletionDetails,
}

#[derive(Serialize, Default)]
struct PromptDetails {
    cached_tokens: u64,
    audio_tokens: u64,
}

#[derive(Serialize, Default)]
struct CompletionDetails {
    reasoning_tokens: u64,
    audio_tokens: u64,
    accepted_prediction_tokens: u64,
    rejected_prediction_tokens: u64,
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<Choice<'a>>,
    usage: Usage,
    service_tier: &'static str,
    system_fingerprint: &'static str,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: usize,
    message: Message<'a>,
    logprobs: (),
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: (),
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<ToolCall<'a>>>,
}

/// A tool call; in streams `index` is set, and `id`/`type`/`name` only on the first fragment.
#[derive(Serialize)]
struct ToolCall<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionCall<'a>,
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// Text of content chunk `i` (see the module doc for the rule).
pub fn chunk_text(i: usize) -> String {
    if i == 0 {
        "Hello".to_string()
    } else {
        format!(" world{i}")
    }
}

/// The full answer text for `chunks` chunks: the chunks joined.
pub fn content_text(chunks: usize) -> String {
    (0..chunks).map(chunk_text).collect()
}

/// prompt_tokens of a chat request: Σ over messages of 3 + words in `content`.
pub fn prompt_tokens(messages: &[Value]) -> u64 {
    let words = |s: &str| s.split_whitespace().count() as u64;
    messages
        .iter()
        .map(|m| {
            3 + match m.get("content") {
                Some(Value::String(s)) => words(s),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .map(words)
                    .sum(),
                _ => 0,
            }
        })
        .sum()
}

// ---------------------------------------------------------------- answers

/// A tool call the answer makes (one per choice).
struct ToolPlan {
    name: String,
    arguments: String,
}

/// Everything a chat answer depends on, read from the request once.
struct ChatPlan<'a> {
    model: &'a str,
    n: usize,
    stream: bool,
    include_usage: bool,
    prompt_tokens: u64,
    chunks: usize,
    tool: Option<ToolPlan>,
}

/// `POST …/chat/completions`: JSON or SSE, per the rules in the module doc.
pub fn chat_reply(req: &Value, chunks: usize) -> Reply {
    match plan_chat(req, chunks) {
        Ok(plan) if plan.stream => chat_stream(&plan),
        Ok(plan) => chat_json(&plan),
        Err(reply) => reply,
    }
}

fn plan_chat(req: &Value, chunks: usize) -> Result<ChatPlan<'_>, Reply> {
    if !req.is_object() {
        return Err(param_error(
            "body",
            "The request body must be a JSON object.",
            None,
        ));
    }
    let model = match req.get("model").and_then(Value::as_str) {
        Some(m) => m,
        None => {
            return Err(param_error(
                "model",
                "you must provide a model parameter",
                None,
            ))
        }
    };
    let messages = match req.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => {
            return Err(param_error(
                "messages",
                "Invalid 'messages': empty array. Expected an array with minimum length 1, \
                 but got an empty array instead.",
                Some("empty_array"),
            ))
        }
        _ => {
            return Err(param_error(
                "messages",
                "Missing required parameter: 'messages'.",
                Some("missing_required_parameter"),
            ))
        }
    };
    let n = match req.get("n") {
        None | Some(Value::Null) => 1,
        Some(v) => match v.as_u64().filter(|n| (1..=MAX_N).contains(n)) {
            Some(n) => usize::try_from(n).unwrap_or(1),
            None => return Err(param_error("n", "Invalid 'n': must be 1 to 128.", None)),
        },
    };
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let options = req.get("stream_options").filter(|v| !v.is_null());
    if options.is_some() && !stream {
        return Err(param_error(
            "stream_options",
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            None,
        ));
    }
    let include_usage = options
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(ChatPlan {
        model,
        n,
        stream,
        include_usage,
        prompt_tokens: prompt_tokens(messages),
        chunks,
        tool: plan_tool(req),
    })
}

/// The tool to call, or None when the answer is text (see the module doc).
fn plan_tool(req: &Value) -> Option<ToolPlan> {
    let tools = req.get("tools")?.as_array()?;
    let choice = req.get("tool_choice");
    if choice.and_then(Value::as_str) == Some("none") {
        return None;
    }
    // Like a model, answer in text once a tool result is in (unless a tool is forced), so
    // agent loops (Claude Code's) end.
    let last_role = req
        .pointer("/messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last());
    let auto = choice.is_none_or(|c| c.as_str() == Some("auto"));
    if auto
        && last_role
            .and_then(|m| m.get("role"))
            .and_then(Value::as_str)
            == Some("tool")
    {
        return None;
    }
    fn name_of(t: &Value) -> Option<&str> {
        t.pointer("/function/name").and_then(Value::as_str)
    }
    let forced = choice
        .and_then(|c| c.pointer("/function/name"))
        .and_then(Value::as_str);
    let tool = forced
        .and_then(|f| tools.iter().find(|t| name_of(t) == Some(f)))
        .or_else(|| tools.iter().find(|t| name_of(t).is_some()))?;
    Some(ToolPlan {
        name: name_of(tool)?.to_string(),
        arguments: example_arguments(tool.pointer("/function/parameters")),
    })
}

/// One-key example arguments for a JSON schema (see the module doc).
pub fn example_arguments(schema: Option<&Value>) -> String {
    let Some(props) = schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
    else {
        return "{}".to_string();
    };
    let required = schema
        .and_then(|s| s.get("required"))
        .and_then(Value::as_array)
        .and_then(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .find(|k| props.contains_key(*k))
        });
    let Some((key, prop)) = required
        .and_then(|k| props.get_key_value(k))
        .or_else(|| props.iter().next())
    else {
        return "{}".to_string();
    };
    let value = match prop
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        Some(first) => first.clone(),
        None => match prop.get("type").and_then(Value::as_str) {
            Some("integer" | "number") => json!(1),
            Some("boolean") => json!(true),
            Some("array") => json!([]),
            Some("object") => json!({}),
            _ => json!("Paris"),
        },
    };
    let mut obj = serde_json::Map::new();
    obj.insert(key.clone(), value);
    Value::Object(obj).to_string()
}

/// Splits `s` into `k` (clamped to 1..=chars) pieces of near-equal char count.
pub fn split_even(s: &str, k: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let len = chars.len();
    let k = k.clamp(1, len.max(1));
    (0..k)
        .map(|i| chars[i * len / k..(i + 1) * len / k].iter().collect())
        .collect()
}

/// The usage object for these counts (details all zero, like a plain request).
pub fn usage(prompt_tokens: u64, completion_tokens: u64) -> Usage {
    Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
        prompt_tokens_details: PromptDetails::default(),
        completion_tokens_details: CompletionDetails::default(),
    }
}

fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

/// `call_` + 24 hex chars; unique per call.
fn tool_call_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("call_{}", id.get(..24).unwrap_or(&id))
}

/// The per-choice fragments: content chunks, or tool-call argument pieces. Their count
/// is the per-choice completion_tokens.
fn fragments(plan: &ChatPlan) -> Vec<String> {
    match &plan.tool {
        Some(tool) => split_even(&tool.arguments, plan.chunks),
        None => (0..plan.chunks).map(chunk_text).collect(),
    }
}

fn chat_json(plan: &ChatPlan) -> Reply {
    let parts = fragments(plan);
    let content = content_text(plan.chunks);
    let id = completion_id();
    let choices = (0..plan.n)
        .map(|index| {
            let (content, tool_calls, finish_reason) = match &plan.tool {
                Some(tool) => {
                    let call = ToolCall {
                        index: None,
                        id: Some(tool_call_id()),
                        kind: Some("function"),
                        function: FunctionCall {
                            name: Some(&tool.name),
                            arguments: &tool.arguments,
                        },
                    };
                    (None, Some(vec![call]), "tool_calls")
                }
                None => (Some(content.as_str()), None, "stop"),
            };
            let message = Message {
                role: "assistant",
                content,
                refusal: (),
                tool_calls,
            };
            Choice {
                index,
                message,
                logprobs: (),
                finish_reason,
            }
        })
        .collect();
    let body = Completion {
        id: &id,
        object: "chat.completion",
        created: crate::unix_now(),
        model: plan.model,
        choices,
        usage: usage(plan.prompt_tokens, (parts.len() * plan.n) as u64),
        service_tier: "default",
        system_fingerprint: SYSTEM_FINGERPRINT,
    };
    Reply::json(200, &body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::ReplyBody;

    pub(super) fn req(extra: Value) -> Value {
        let mut v = json!({"model": "gpt-test", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi there you"},
                                         {"type": "image_url", "image_url": {"url": "x"}}]}]});
        if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
            obj.extend(more.clone());
        }
        v
    }

    pub(super) fn weather_tools() -> Value {
        json!([{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object",
            "properties": {"unit": {"type": "string", "enum": ["c", "f"]},
                           "city": {"type": "string"}},
            "required": ["city"]}}},
               {"type": "function", "function": {"name": "other", "parameters": {}}}])
    }

    fn json_body(reply: &Reply) -> Value {
        match &reply.body {
            ReplyBody::Full { bytes, .. } => serde_json::from_slice(bytes).unwrap(),
            ReplyBody::Stream { .. } => panic!("expected a JSON body"),
        }
    }

    #[test]
    fn content_and_prompt_token_rules() {
        assert_eq!(content_text(5), "Hello world1 world2 world3 world4");
        assert_eq!(content_text(1), "Hello");
        assert_eq!(content_text(0), "");
        let messages = req(json!({}))["messages"].as_array().unwrap().clone();
        // system: 3 + 2 words; user: 3 + 3 words (image part has no text).
        assert_eq!(prompt_tokens(&messages), 11);
        assert_eq!(
            prompt_tokens(&[json!({"role": "assistant", "content": null})]),
            3
        );
    }

    #[test]
    fn json_answer_matches_the_wire_format() {
        let reply = chat_reply(&req(json!({})), 5);
        assert_eq!(reply.status, 200);
        let v = json_body(&reply);
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "gpt-test");
        assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_eq!(v["system_fingerprint"], SYSTEM_FINGERPRINT);
        let choice = &v["choices"][0];
        assert_eq!(choice["finish_reason"], "stop");
        assert!(choice["logprobs"].is_null());
        assert_eq!(
            choice["message"]["content"],
            "Hello world1 world2 world3 world4"
        );
        assert!(choice["message"]["refusal"].is_null());
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(v["usage"]["prompt_tokens"], 11);
        assert_eq!(v["usage"]["completion_tokens"], 5);
        assert_eq!(v["usage"]["total_tokens"], 16);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
        assert_eq!(
            v["usage"]["completion_tokens_details"]["reasoning_tokens"],
            0
        );
        // keys in the real API's order, not sorted
        let ReplyBody::Full { bytes, .. } = &reply.body else {
            panic!()
        };
        assert!(bytes.starts_with(b"{\"id\":\"chatcmpl-"));
    }

    #[test]
    fn n_choices() {
        let v = json_body(&chat_reply(&req(json!({"n": 3})), 2));
        assert_eq!(v["choices"].as_array().unwrap().len(), 3);
        assert_eq!(v["choices"][2]["index"], 2);
        assert_eq!(v["usage"]["completion_tokens"], 6);
    }

    #[test]
    fn tool_call_json() {
        let v = json_body(&chat_reply(&req(json!({"tools": weather_tools()})), 5));
        let choice = &v["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert!(choice["message"]["content"].is_null());
        let call = &choice["message"]["tool_calls"][0];
        assert!(call["id"].as_str().unwrap().starts_with("call_"));
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(v["usage"]["completion_tokens"], 5);
    }

    #[test]
    fn tool_choice_none_answers_text() {
        let r = req(json!({"tools": weather_tools(), "tool_choice": "none"}));
        let v = json_body(&chat_reply(&r, 1));
        assert_eq!(v["choices"][0]["message"]["content"], "Hello");
    }

    #[test]
    fn example_arguments_rules() {
        let schema = json!({"properties": {"b": {"type": "integer"}, "a": {"type": "boolean"}}});
        assert_eq!(example_arguments(Some(&schema)), "{\"a\":true}");
        let schema = json!({"properties": {"u": {"enum": ["c"]}}, "required": ["u"]});
        assert_eq!(example_arguments(Some(&schema)), "{\"u\":\"c\"}");
        assert_eq!(example_arguments(Some(&json!({}))), "{}");
        assert_eq!(example_arguments(None), "{}");
        assert_eq!(split_even("abcde", 2), ["ab", "cde"]);
        assert_eq!(split_even("ab", 5), ["a", "b"]);
        assert_eq!(split_even("ab", 0), ["ab"]);
    }

    #[test]
    fn bad_requests_are_400_with_param() {
        let cases = [
            (json!({"messages": []}), "model"),
            (json!({"model": "m"}), "messages"),
            (json!({"model": "m", "messages": []}), "messages"),
            (req(json!({"n": 0})), "n"),
            (
                req(json!({"stream_options": {"include_usage": true}})),
                "stream_options",
            ),
            (json!([1]), "body"),
        ];
        for (body, param) in cases {
            let reply = chat_reply(&body, 5);
            assert_eq!(reply.status, 400, "{body}");
            assert_eq!(json_body(&reply)["error"]["param"], param);
        }
    }
}
