//! OpenAI's Responses API (`POST …/responses`): a `response` object, or with `"stream":true`
//! the typed event stream, answered natively with the chat rules of [`super::chat`] so a
//! Responses request and the chat request the gateway translates it into get the same
//! numbers:
//!
//! * **Content**: the N chunks of [`chunk_text`] (`"Hello"`, `" world1"`, …) in one
//!   `message` item; `output_tokens` = N.
//! * **Tool call**: when `tools` holds a function (top-level or inside a `namespace` tool),
//!   `tool_choice` is not `"none"`, and the input's last item is not a tool result (then the
//!   answer is text, as after a chat tool message) unless a function is forced: one
//!   `function_call` item to the function `tool_choice` names (else the first), with
//!   [`example_arguments`] for its `parameters`, and its `namespace` when it has one;
//!   `output_tokens` = K = clamp(N, 1, chars(arguments)), the argument fragments streamed.
//! * **input_tokens**: the chat rule ([`prompt_tokens`]: 3 + words per message) over the
//!   messages of the equivalent chat request: `instructions` and every developer/system
//!   message together are one message (when any has text); a string `input` is one user
//!   message; each user message and each tool result (`function_call_output`,
//!   `custom_tool_call_output`) is one; a run of assistant messages and calls is one (when it
//!   has text or a call); reasoning and hosted-tool items count nothing.
//! * **Stream**: `event: <type>` + `data:` with `type` and `sequence_number` from 0:
//!   `response.created`, `response.in_progress`, `response.output_item.added`, then for text
//!   `response.content_part.added`, N × `response.output_text.delta`,
//!   `response.output_text.done`, `response.content_part.done` (for a call K ×
//!   `response.function_call_arguments.delta`, `response.function_call_arguments.done`), then
//!   `response.output_item.done` and `response.completed` with the output and usage: N + 8
//!   events for text, K + 6 for a call. No `[DONE]` follows, as in the real API. The
//!   mid-stream error event (`x-emulator-stream-error-after`) is `event: error` with
//!   `code: "server_error"`.
//! * Validation like the real API's: a body that is not an object, a missing `model` or
//!   `input`, an `input` that is neither a string nor an array → 400 with `param`; a
//!   `previous_response_id` the emulator has not stored → 400 `previous_response_not_found`.
//! * **State**: a response made without `store: false` is kept ([`StoredResponses`]) and can
//!   be continued, read, listed and deleted.

use bytes::Bytes;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::chat::prompt_tokens;
use super::{
    chunk_text, content_text, example_arguments, param_error, split_even, Reply, StoredResponses,
};

// ---------------------------------------------------------------- wire types

#[derive(Serialize)]
struct Response<'a> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    status: &'static str,
    error: (),
    incomplete_details: (),
    instructions: (),
    max_output_tokens: (),
    model: &'a str,
    output: Vec<Item<'a>>,
    parallel_tool_calls: bool,
    previous_response_id: (),
    store: bool,
    temperature: f64,
    tool_choice: &'static str,
    tools: [(); 0],
    top_p: f64,
    truncation: &'static str,
    usage: Option<Usage>,
    user: (),
    metadata: Map<String, Value>,
}

#[derive(Serialize, Clone)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Item<'a> {
    Message {
        id: &'a str,
        status: &'static str,
        role: &'static str,
        content: Vec<Part<'a>>,
    },
    FunctionCall {
        id: &'a str,
        status: &'static str,
        arguments: &'a str,
        call_id: &'a str,
        name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<&'a str>,
    },
}

#[derive(Serialize, Clone)]
struct Part<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
    annotations: [(); 0],
    logprobs: [(); 0],
}

#[derive(Serialize, Clone, Copy)]
struct Usage {
    input_tokens: u64,
    input_tokens_details: CachedTokens,
    output_tokens: u64,
    output_tokens_details: ReasoningTokens,
    total_tokens: u64,
}

#[derive(Serialize, Clone, Copy)]
struct CachedTokens {
    cached_tokens: u64,
}

#[derive(Serialize, Clone, Copy)]
struct ReasoningTokens {
    reasoning_tokens: u64,
}

/// One stream event: its `type`, its fields, its `sequence_number`.
#[derive(Serialize)]
struct Event<T> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    body: T,
    sequence_number: u64,
}

// ---------------------------------------------------------------- plan

/// The function call the answer makes.
struct CallPlan {
    name: String,
    namespace: Option<String>,
    arguments: String,
}

/// Everything the answer depends on, read from the request once.
struct Plan<'a> {
    model: &'a str,
    stream: bool,
    /// Kept for later (`store`, true unless the request says `false`).
    store: bool,
    input_tokens: u64,
    chunks: usize,
    call: Option<CallPlan>,
}

/// `POST …/responses`: JSON or the event stream, per the rules in the module doc.
pub fn responses_reply(req: &Value, chunks: usize, stored: &StoredResponses) -> Reply {
    let plan = match plan(req, chunks, stored) {
        Ok(plan) => plan,
        Err(reply) => return reply,
    };
    let answer = Answer::new(&plan);
    if plan.store {
        let done = serde_json::to_value(answer.response(&plan, true)).unwrap_or_default();
        stored.keep(&answer.id, done, &req["input"]);
    }
    match plan.stream {
        true => stream_reply(&plan, &answer),
        false => Reply::json(200, &answer.response(&plan, true)),
    }
}

fn plan<'a>(req: &'a Value, chunks: usize, stored: &StoredResponses) -> Result<Plan<'a>, Reply> {
    if !req.is_object() {
        return Err(param_error(
            "body",
            "The request body must be a JSON object.",
            None,
        ));
    }
    let missing = |param: &str| {
        let message = format!("Missing required parameter: '{param}'.");
        param_error(param, &message, Some("missing_required_parameter"))
    };
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("model"))?;
    match req.get("input") {
        Some(Value::String(_) | Value::Array(_)) => {}
        None | Some(Value::Null) => return Err(missing("input")),
        Some(_) => {
            return Err(param_error(
                "input",
                "Invalid type for 'input': expected a string or an array of input items.",
                Some("invalid_type"),
            ))
        }
    }
    if let Some(id) = req
        .get("previous_response_id")
        .and_then(Value::as_str)
        .filter(|id| !stored.has(id))
    {
        let message = format!("Previous response with id '{id}' not found.");
        return Err(param_error(
            "previous_response_id",
            &message,
            Some("previous_response_not_found"),
        ));
    }
    Ok(Plan {
        model,
        stream: req.get("stream").and_then(Value::as_bool).unwrap_or(false),
        store: req.get("store").and_then(Value::as_bool).unwrap_or(true),
        input_tokens: input_tokens(req),
        chunks,
        call: plan_call(req),
    })
}

/// The text of a message's `content` or a tool result's `output` (string or parts).
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The input's messages as the chat request they translate into (content only), counted
/// with the chat rule.
fn input_tokens(req: &Value) -> u64 {
    let mut system = Vec::new();
    if let Some(instructions) = req.get("instructions").and_then(Value::as_str) {
        system.push(instructions.to_string());
    }
    let mut messages = Vec::new();
    // The assistant run being gathered: its text, and whether it holds anything.
    let mut run: Option<(String, bool)> = None;
    let close = |run: &mut Option<(String, bool)>, messages: &mut Vec<Value>| {
        if let Some((text, true)) = run.take() {
            messages.push(json!({"content": text}));
        }
    };
    match req.get("input") {
        Some(Value::String(s)) => messages.push(json!({"content": s})),
        Some(Value::Array(items)) => {
            for item in items {
                let kind = item
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("message");
                let role = item.get("role").and_then(Value::as_str);
                match (kind, role) {
                    ("message", Some("system" | "developer")) => {
                        system.push(text_of(item.get("content")));
                    }
                    ("message", Some("assistant")) => {
                        let text = text_of(item.get("content"));
                        let (run_text, has) = run.get_or_insert_with(Default::default);
                        *has |= !text.is_empty();
                        run_text.push(' ');
                        run_text.push_str(&text);
                    }
                    ("function_call" | "custom_tool_call", _) => {
                        run.get_or_insert_with(Default::default).1 = true;
                    }
                    ("message", _) => {
                        close(&mut run, &mut messages);
                        messages.push(json!({"content": text_of(item.get("content"))}));
                    }
                    ("function_call_output" | "custom_tool_call_output", _) => {
                        close(&mut run, &mut messages);
                        messages.push(json!({"content": text_of(item.get("output"))}));
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    close(&mut run, &mut messages);
    let system: Vec<String> = system.into_iter().filter(|s| !s.is_empty()).collect();
    if !system.is_empty() {
        messages.push(json!({"content": system.join("\n\n")}));
    }
    prompt_tokens(&messages)
}

/// The function to call, or None when the answer is text (see the module doc).
fn plan_call(req: &Value) -> Option<CallPlan> {
    let tools = req.get("tools")?.as_array()?;
    let choice = req.get("tool_choice").filter(|c| !c.is_null());
    if choice.and_then(Value::as_str) == Some("none") {
        return None;
    }
    let auto = choice.is_none_or(|c| c.as_str() == Some("auto"));
    let last = req
        .get("input")
        .and_then(Value::as_array)
        .and_then(|items| items.last())
        .and_then(|item| item.get("type"))
        .and_then(Value::as_str);
    if auto
        && matches!(
            last,
            Some("function_call_output" | "custom_tool_call_output")
        )
    {
        return None;
    }
    // Every named function on offer, with its namespace.
    let name_of = |t: &Value| t.get("name").and_then(Value::as_str).map(str::to_string);
    let mut functions: Vec<(Option<&str>, &Value)> = Vec::new();
    for tool in tools {
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => functions.push((None, tool)),
            Some("namespace") => {
                let namespace = tool.get("name").and_then(Value::as_str);
                let inner = tool.get("tools").and_then(Value::as_array);
                functions.extend(
                    inner
                        .into_iter()
                        .flatten()
                        .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
                        .map(|t| (namespace, t)),
                );
            }
            _ => {}
        }
    }
    functions.retain(|(_, t)| name_of(t).is_some());
    // The forced function, else (as in chat, also when the forced one is unknown) the first.
    let forced = choice.and_then(|c| c.get("name")).and_then(Value::as_str);
    let forced_ns = choice
        .and_then(|c| c.get("namespace"))
        .and_then(Value::as_str);
    let is_forced = |(ns, t): &&(Option<&str>, &Value)| {
        forced.is_some()
            && name_of(t).as_deref() == forced
            && (forced_ns.is_none() || *ns == forced_ns)
    };
    let (namespace, tool) = *functions
        .iter()
        .find(is_forced)
        .or_else(|| functions.first())?;
    Some(CallPlan {
        name: name_of(tool)?,
        namespace: namespace.map(str::to_string),
        arguments: example_arguments(tool.get("parameters")),
    })
}

// ---------------------------------------------------------------- answers

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

fn usage(plan: &Plan, output_tokens: u64) -> Usage {
    Usage {
        input_tokens: plan.input_tokens,
        input_tokens_details: CachedTokens { cached_tokens: 0 },
        output_tokens,
        output_tokens_details: ReasoningTokens {
            reasoning_tokens: 0,
        },
        total_tokens: plan.input_tokens + output_tokens,
    }
}

/// The ids and texts one answer is made of (the stream and the JSON share them).
struct Answer {
    id: String,
    item_id: String,
    call_id: String,
    created_at: u64,
    text: String,
    /// Content chunks, or argument fragments.
    fragments: Vec<String>,
}

impl Answer {
    fn new(plan: &Plan) -> Self {
        let fragments = match &plan.call {
            Some(call) => split_even(&call.arguments, plan.chunks),
            None => (0..plan.chunks).map(chunk_text).collect(),
        };
        let call_id = new_id("call");
        Answer {
            id: new_id("resp"),
            item_id: new_id(if plan.call.is_some() { "fc" } else { "msg" }),
            call_id: call_id.get(..29).unwrap_or(&call_id).to_string(),
            created_at: crate::unix_now(),
            text: content_text(plan.chunks),
            fragments,
        }
    }

    /// The output item, finished (`done`) or as first announced.
    fn item<'a>(&'a self, plan: &'a Plan, done: bool) -> Item<'a> {
        let status = if done { "completed" } else { "in_progress" };
        match &plan.call {
            Some(call) => Item::FunctionCall {
                id: &self.item_id,
                status,
                arguments: if done { &call.arguments } else { "" },
                call_id: &self.call_id,
                name: &call.name,
                namespace: call.namespace.as_deref(),
            },
            None => Item::Message {
                id: &self.item_id,
                status,
                role: "assistant",
                content: if done {
                    vec![part(&self.text)]
                } else {
                    Vec::new()
                },
            },
        }
    }

    fn response<'a>(&'a self, plan: &'a Plan, done: bool) -> Response<'a> {
        let output_tokens = self.fragments.len() as u64;
        Response {
            id: &self.id,
            object: "response",
            created_at: self.created_at,
            status: if done { "completed" } else { "in_progress" },
            error: (),
            incomplete_details: (),
            instructions: (),
            max_output_tokens: (),
            model: plan.model,
            output: if done {
                vec![self.item(plan, true)]
            } else {
                Vec::new()
            },
            parallel_tool_calls: true,
            previous_response_id: (),
            store: plan.store,
            temperature: 1.0,
            tool_choice: "auto",
            tools: [],
            top_p: 1.0,
            truncation: "disabled",
            usage: done.then(|| usage(plan, output_tokens)),
            user: (),
            metadata: Map::new(),
        }
    }
}

fn part(text: &str) -> Part<'_> {
    Part {
        kind: "output_text",
        text,
        annotations: [],
        logprobs: [],
    }
}

/// One SSE event: `event: <type>` and its JSON.
fn event<T: Serialize>(kind: &'static str, sequence_number: u64, body: T) -> Bytes {
    let data = Event {
        kind,
        body,
        sequence_number,
    };
    let mut out = format!("event: {kind}\ndata: ").into_bytes();
    // Serializing these plain structs cannot fail; an empty object keeps the event valid.
    if serde_json::to_writer(&mut out, &data).is_err() {
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// The events of one stream, numbered as they are added.
#[derive(Default)]
struct Events(Vec<Bytes>);

impl Events {
    fn push<T: Serialize>(&mut self, kind: &'static str, body: T) {
        let n = self.0.len() as u64;
        self.0.push(event(kind, n, body));
    }
}

#[derive(Serialize)]
struct ResponseBody<'a> {
    response: Response<'a>,
}

#[derive(Serialize)]
struct ItemBody<'a> {
    output_index: usize,
    item: Item<'a>,
}

#[derive(Serialize)]
struct PartBody<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: usize,
    part: Part<'a>,
}

/// `output_text.delta` (with `delta`) and `output_text.done` (with `text`).
#[derive(Serialize)]
struct TextBody<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    logprobs: [(); 0],
}

/// `function_call_arguments.delta` (with `delta`) and `.done` (with `name`, `arguments`).
#[derive(Serialize)]
struct ArgsBody<'a> {
    item_id: &'a str,
    output_index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<&'a str>,
}

fn stream_reply(plan: &Plan, answer: &Answer) -> Reply {
    let mut events = Events::default();
    for kind in ["response.created", "response.in_progress"] {
        let response = answer.response(plan, false);
        events.push(kind, ResponseBody { response });
    }
    let (item_id, output_index) = (answer.item_id.as_str(), 0);
    let item = answer.item(plan, false);
    events.push(
        "response.output_item.added",
        ItemBody { output_index, item },
    );
    match &plan.call {
        Some(call) => {
            let args = |delta, name, arguments| ArgsBody {
                item_id,
                output_index,
                delta,
                name,
                arguments,
            };
            for fragment in &answer.fragments {
                let body = args(Some(fragment.as_str()), None, None);
                events.push("response.function_call_arguments.delta", body);
            }
            let body = args(None, Some(&call.name), Some(&call.arguments));
            events.push("response.function_call_arguments.done", body);
        }
        None => {
            let text = |delta, text| TextBody {
                item_id,
                output_index,
                content_index: 0,
                delta,
                text,
                logprobs: [],
            };
            let part_body = |part| PartBody {
                item_id,
                output_index,
                content_index: 0,
                part,
            };
            events.push("response.content_part.added", part_body(part("")));
            for fragment in &answer.fragments {
                events.push("response.output_text.delta", text(Some(fragment), None));
            }
            events.push("response.output_text.done", text(None, Some(&answer.text)));
            events.push("response.content_part.done", part_body(part(&answer.text)));
        }
    }
    let item = answer.item(plan, true);
    events.push("response.output_item.done", ItemBody { output_index, item });
    let response = answer.response(plan, true);
    events.push("response.completed", ResponseBody { response });
    Reply::stream_with("text/event-stream", events.0, error_event)
}

#[derive(Serialize)]
struct ErrorBody {
    code: &'static str,
    message: &'static str,
    param: (),
}

/// What the API sends when it fails after the stream began, as event `n`.
fn error_event(n: u64) -> Bytes {
    let body = ErrorBody {
        code: "server_error",
        message: "The server had an error while processing your request. Sorry about that!",
        param: (),
    };
    event("error", n, body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "responses_tests.rs"]
mod tests;
