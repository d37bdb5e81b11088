//! `generateContent`, `streamGenerateContent` and `countTokens`:
//!
//! * **Answer**: `{"candidates":[{"content":{"parts":[…],"role":"model"},
//!   "finishReason":"STOP","index":0}],"usageMetadata":{…},"modelVersion":<path model>,
//!   "responseId":<22 chars>}`. Text: one part, the N chunks joined (`""` for N = 0).
//! * **Function call**: when some `tools[].functionDeclarations` is non-empty and
//!   `toolConfig.functionCallingConfig.mode` is not `NONE`, the only part is
//!   `{"functionCall":{"name","args"}}` (no id, like the real API) for the first
//!   `allowedFunctionNames` entry that is declared, else the first declaration; `args`
//!   from its `parameters` (or `parametersJsonSchema`) by the OpenAI side's rule.
//!   `finishReason` stays `STOP`.
//! * **usageMetadata**: `promptTokenCount` P (parent module rule), `candidatesTokenCount`
//!   C = N (text) or K = clamp(N, 1, chars(args JSON)) (call), `totalTokenCount` P + C + T,
//!   `thoughtsTokenCount` T = [`THOUGHTS_TOKENS`] only when the request has
//!   `generationConfig.thinkingConfig` and its `thinkingBudget` is not 0, then
//!   `promptTokensDetails:[{"modality":"TEXT","tokenCount":P}]`.
//! * **Stream**: one response object per chunk, each carrying only its new part, the same
//!   `responseId` and `modelVersion`: N text chunks (one with `""` for N = 0), or one
//!   chunk with the whole `functionCall`. Only the last has `finishReason` and the full
//!   usageMetadata; the others have `{"promptTokenCount":P,"totalTokenCount":P}`. With
//!   `?alt=sse` each is `data: <json>\r\n\r\n` (`text/event-stream`, no `[DONE]`);
//!   without it the body is a JSON array (`application/json; charset=UTF-8`) written as
//!   events `[<json>`, `,\r\n<json>`…, then `]`.
//! * **Mid-stream error** (`x-emulator-stream-error-after`): `data: {"error":{"code":503,
//!   …,"status":"UNAVAILABLE"}}\r\n\r\n` (SSE); in an array, that object as the array's
//!   last element: `,\r\n{"error":…}]` (or `[{"error":…}]` before the first element).
//! * **Validation** (400 `INVALID_ARGUMENT`, Google's wording): `contents` a non-empty
//!   array; every role absent, `user` or `model`; every `parts` a non-empty array; then the
//!   thought-signature checks of [`super::thought`].
//! * **Thinking**: a thought part first with `includeThoughts`, a `thoughtSignature` on the
//!   function call with a thinking config or a `gemini-3` model ([`super::thought`]).
//! * **countTokens**: `{"totalTokens":P,"promptTokensDetails":[…]}` for `contents` or
//!   `generateContentRequest`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

use super::super::openai::{chunk_text, content_text, example_arguments, split_even};
use super::thought::{call_signature, thought_state, ThoughtState};
use super::{error_reply, field, json, prompt_tokens, stream_error_json, Reply, JSON};

/// `thoughtsTokenCount` of an answer to a request with a thinking config.
pub const THOUGHTS_TOKENS: u64 = 16;

// ---------------------------------------------------------------- wire types

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    candidates: [Candidate<'a>; 1],
    usage_metadata: Usage,
    model_version: &'a str,
    response_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    content: Content<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'static str>,
    index: u32,
}

#[derive(Serialize)]
struct Content<'a> {
    parts: Vec<Part<'a>>,
    role: &'static str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Part<'a> {
    Text {
        text: &'a str,
    },
    Thought {
        text: &'a str,
        thought: bool,
    },
    Call {
        #[serde(rename = "functionCall")]
        function_call: FunctionCall<'a>,
        #[serde(rename = "thoughtSignature", skip_serializing_if = "Option::is_none")]
        thought_signature: Option<String>,
    },
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    args: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Usage {
    prompt_token_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates_token_count: Option<u64>,
    total_token_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    thoughts_token_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_details: Option<[ModalityCount; 1]>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModalityCount {
    modality: &'static str,
    token_count: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenCount {
    total_tokens: u64,
    prompt_tokens_details: [ModalityCount; 1],
}

fn text_tokens(n: u64) -> [ModalityCount; 1] {
    [ModalityCount {
        modality: "TEXT",
        token_count: n,
    }]
}

// ---------------------------------------------------------------- plan

/// The function the answer calls: its name and args as compact JSON text.
struct CallPlan<'a> {
    name: &'a str,
    args: String,
}

/// Everything an answer depends on, read from the request once.
struct Plan<'a> {
    model: &'a str,
    prompt: u64,
    thoughts: Option<u64>,
    chunks: usize,
    call: Option<CallPlan<'a>>,
    thinking: ThoughtState,
}

impl Plan<'_> {
    /// candidatesTokenCount: N, or K argument fragments for a call.
    fn candidates_tokens(&self) -> u64 {
        match &self.call {
            Some(call) => split_even(&call.args, self.chunks).len() as u64,
            None => self.chunks as u64,
        }
    }

    fn usage(&self, last: bool) -> Usage {
        if !last {
            return Usage {
                prompt_token_count: self.prompt,
                candidates_token_count: None,
                total_token_count: self.prompt,
                thoughts_token_count: None,
                prompt_tokens_details: None,
            };
        }
        let candidates = self.candidates_tokens();
        Usage {
            prompt_token_count: self.prompt,
            candidates_token_count: Some(candidates),
            total_token_count: self.prompt + candidates + self.thoughts.unwrap_or(0),
            thoughts_token_count: self.thoughts,
            prompt_tokens_details: Some(text_tokens(self.prompt)),
        }
    }

    /// One response object with this part (after the thought part in the `first` one); the
    /// last one carries finishReason + usage.
    fn response<'a>(
        &'a self,
        part: Part<'a>,
        (first, last): (bool, bool),
        id: &'a str,
    ) -> Response<'a> {
        let thought = self.thinking.text.as_deref().filter(|_| first);
        let thought = thought.map(|text| Part::Thought {
            text,
            thought: true,
        });
        Response {
            candidates: [Candidate {
                content: Content {
                    parts: thought.into_iter().chain([part]).collect(),
                    role: "model",
                },
                finish_reason: last.then_some("STOP"),
                index: 0,
            }],
            usage_metadata: self.usage(last),
            model_version: self.model,
            response_id: id,
        }
    }
}

impl<'a> Plan<'a> {
    /// The (last and only) response object of a function-call answer.
    fn call_response(&'a self, call: &'a CallPlan, id: &'a str) -> Response<'a> {
        let args = serde_json::from_str(&call.args).unwrap_or_else(|_| Value::Object(Map::new()));
        let function_call = FunctionCall {
            name: call.name,
            args,
        };
        let sign = self.thinking.sign_calls;
        let thought_signature = sign.then(|| call_signature(call.name, &function_call.args));
        let part = Part::Call {
            function_call,
            thought_signature,
        };
        self.response(part, (true, true), id)
    }
}

/// One streamed response object as JSON bytes.
fn to_vec(response: &Response) -> Vec<u8> {
    // Serializing these plain structs cannot fail; an empty object keeps the chunk valid.
    serde_json::to_vec(response).unwrap_or_else(|_| b"{}".to_vec())
}

fn plan_call(req: &Value) -> Option<CallPlan<'_>> {
    let tools = field(req, "tools").and_then(Value::as_array);
    let declarations: Vec<&Value> = tools
        .into_iter()
        .flatten()
        .filter_map(|t| field(t, "functionDeclarations").and_then(Value::as_array))
        .flatten()
        .collect();
    let config = field(req, "toolConfig").and_then(|c| field(c, "functionCallingConfig"));
    let mode = config.and_then(|c| c.get("mode")).and_then(Value::as_str);
    if mode.is_some_and(|m| m.eq_ignore_ascii_case("NONE")) {
        return None;
    }
    // Like a model, answer in text once a function result is in (unless a call is forced).
    let last = field(req, "contents")
        .and_then(Value::as_array)
        .and_then(|c| c.last());
    let answers_call = last
        .and_then(|c| field(c, "parts"))
        .and_then(Value::as_array)
        .is_some_and(|parts| parts.iter().any(|p| field(p, "functionResponse").is_some()));
    if answers_call && mode.is_none_or(|m| m.eq_ignore_ascii_case("AUTO")) {
        return None;
    }
    fn name_of<'a>(d: &&'a Value) -> Option<&'a str> {
        d.get("name").and_then(Value::as_str)
    }
    let allowed = config
        .and_then(|c| field(c, "allowedFunctionNames"))
        .and_then(Value::as_array);
    let declaration = allowed
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|a| declarations.iter().find(|d| name_of(d) == Some(a)))
        .or_else(|| declarations.iter().find(|d| name_of(d).is_some()))?;
    let schema =
        field(declaration, "parameters").or_else(|| field(declaration, "parametersJsonSchema"));
    Some(CallPlan {
        name: name_of(declaration)?,
        args: example_arguments(schema),
    })
}

/// T: [`THOUGHTS_TOKENS`] with a thinking config whose budget is not 0.
fn thoughts(req: &Value) -> Option<u64> {
    let config = field(req, "generationConfig").and_then(|g| field(g, "thinkingConfig"))?;
    let budget = field(config, "thinkingBudget").and_then(Value::as_i64);
    (!config.is_null() && budget != Some(0)).then_some(THOUGHTS_TOKENS)
}

/// The module doc's validation, in Google's wording.
fn validate(req: &Value) -> Result<(), Reply> {
    let bad = |msg: &str| Err(error_reply(400, msg));
    let contents = match field(req, "contents") {
        Some(Value::Array(c)) if !c.is_empty() => c,
        _ => return bad("* GenerateContentRequest.contents: contents is not specified\n"),
    };
    for (i, c) in contents.iter().enumerate() {
        match c.get("role") {
            None | Some(Value::Null) => {}
            Some(r) if matches!(r.as_str(), Some("user" | "model")) => {}
            Some(_) => return bad("Please use a valid role: user, model."),
        }
        let parts = field(c, "parts").and_then(Value::as_array);
        if parts.is_none_or(Vec::is_empty) {
            let msg = format!(
                "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
            );
            return bad(&msg);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- answers

/// `generateContent` (`stream` None), or `streamGenerateContent` as SSE (`Some(true)`)
/// or as a JSON array (`Some(false)`).
pub fn generate_reply(req: &Value, model: &str, chunks: usize, stream: Option<bool>) -> Reply {
    if let Err(reply) = validate(req) {
        return reply;
    }
    if let Err(message) = super::thought::check(req, model) {
        return error_reply(400, &message);
    }
    let plan = Plan {
        model,
        prompt: prompt_tokens(req),
        thoughts: thoughts(req),
        chunks,
        call: plan_call(req),
        thinking: thought_state(req, model),
    };
    let id = response_id();
    let Some(sse) = stream else {
        let text = content_text(chunks);
        return match &plan.call {
            Some(call) => json(200, &plan.call_response(call, &id)),
            None => json(
                200,
                &plan.response(Part::Text { text: &text }, (true, true), &id),
            ),
        };
    };
    let objects: Vec<Vec<u8>> = match &plan.call {
        Some(call) => vec![to_vec(&plan.call_response(call, &id))],
        None if chunks == 0 => vec![to_vec(&plan.response(
            Part::Text { text: "" },
            (true, true),
            &id,
        ))],
        None => (0..chunks)
            .map(|i| {
                let text = chunk_text(i);
                let place = (i == 0, i + 1 == chunks);
                to_vec(&plan.response(Part::Text { text: &text }, place, &id))
            })
            .collect(),
    };
    if sse {
        let events = objects
            .into_iter()
            .map(|o| Bytes::from([b"data: ".as_slice(), &o, b"\r\n\r\n"].concat()))
            .collect();
        return Reply::stream_with("text/event-stream", events, sse_error);
    }
    let mut events: Vec<Bytes> = (0..)
        .zip(objects)
        .map(|(i, o)| {
            let lead: &[u8] = if i == 0 { b"[" } else { b",\r\n" };
            Bytes::from([lead, &o].concat())
        })
        .collect();
    events.push(Bytes::from_static(b"]"));
    Reply::stream_with(JSON, events, array_error)
}

/// The SSE error event of a Gemini stream that fails after the 200 header.
pub fn sse_error(_: u64) -> Bytes {
    Bytes::from([b"data: ".as_slice(), &stream_error_json(), b"\r\n\r\n"].concat())
}

fn array_error(i: u64) -> Bytes {
    let lead: &[u8] = if i == 0 { b"[" } else { b",\r\n" };
    Bytes::from([lead, &stream_error_json(), b"]"].concat())
}

/// 22 URL-safe base64 chars, like the real `responseId`.
fn response_id() -> String {
    URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
}

/// `countTokens`: P of `contents`, or of `generateContentRequest` when given.
pub fn count_tokens_reply(req: &Value) -> Reply {
    let inner = field(req, "generateContentRequest").unwrap_or(req);
    if let Err(reply) = validate(inner) {
        return reply;
    }
    let total = prompt_tokens(inner);
    json(
        200,
        &TokenCount {
            total_tokens: total,
            prompt_tokens_details: text_tokens(total),
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "generate_tests.rs"]
mod tests;
