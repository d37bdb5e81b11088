//! Gemini's thinking state as the API hands it out and enforces it: thought parts, and the
//! `thoughtSignature` a function call carries, which Gemini 3 requires back on every call of
//! the current turn (coding agents loop over tools; the gateway must round-trip them).
//!
//! # Answers
//! * `generationConfig.thinkingConfig.includeThoughts: true`: the answer's first part is
//!   `{"text":TEXT,"thought":true}` (in a stream, the first chunk's first part, before that
//!   chunk's own part). TEXT is `"Thinking about the function result"` when the last
//!   content holds a `functionResponse`, else `"Thinking about: "` + the first 5 words of
//!   the last user content's text parts (`"Thinking about the request"` when none). The
//!   thought counts in no token field (`thoughtsTokenCount` keeps its own rule).
//! * With a `thinkingConfig` (any) or a model whose name contains `gemini-3`, the answer's
//!   FIRST `functionCall` part (Google's rule for parallel calls; the emulator answers one
//!   call) carries `"thoughtSignature": SIG`, a sibling of `functionCall`. SIG =
//!   base64(HMAC-SHA256(name + `"\n"` + args)), args being the call's `args` as compact JSON
//!   (`{}` when absent), with the emulator's constant key ([`crate::signing`]).
//!
//! # Checks ([`check`], 400 `INVALID_ARGUMENT`)
//! * Any part carrying a `thoughtSignature` (any model) must be a `functionCall` whose
//!   signature verifies over its name and args: else `Corrupted thought signature.`.
//! * Models whose name contains `gemini-3`: in the current turn (every `model` content after
//!   the last non-model content that holds a text part, i.e. since the user last spoke),
//!   each model content's first `functionCall` part must carry a signature, else Google's
//!   "Function call is missing a thought_signature …" naming the call and the content's
//!   1-based position in `contents`. Gemini 2.x accepts missing signatures.

use serde_json::{Map, Value};

use super::field;
use crate::signing::{sign, thinking_about, verify};

/// What the answer to a request carries of the thinking state.
pub struct ThoughtState {
    /// TEXT of the thought part, when `includeThoughts` asks for one.
    pub text: Option<String>,
    /// Whether the (first) function call carries a `thoughtSignature`.
    pub sign_calls: bool,
}

fn is_gemini_3(model: &str) -> bool {
    model.contains("gemini-3")
}

fn parts(content: &Value) -> &[Value] {
    field(content, "parts")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn is_model(content: &Value) -> bool {
    content.get("role").and_then(Value::as_str) == Some("model")
}

fn texts(content: &Value) -> impl Iterator<Item = &str> {
    parts(content)
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
}

/// The thinking state of the answer to `req` on `model` (module doc).
pub fn thought_state(req: &Value, model: &str) -> ThoughtState {
    let config = field(req, "generationConfig")
        .and_then(|g| field(g, "thinkingConfig"))
        .filter(|c| !c.is_null());
    let include = config
        .and_then(|c| field(c, "includeThoughts"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let text = include.then(|| {
        let contents = field(req, "contents").and_then(Value::as_array);
        let contents = contents.map_or(&[][..], Vec::as_slice);
        let last = contents.last();
        let answers_call = last.is_some_and(|c| {
            parts(c)
                .iter()
                .any(|p| field(p, "functionResponse").is_some())
        });
        if answers_call {
            return "Thinking about the function result".to_string();
        }
        let user = contents.iter().rev().find(|c| !is_model(c));
        thinking_about(
            &user
                .map(|c| texts(c).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
        )
    });
    ThoughtState {
        text,
        sign_calls: config.is_some() || is_gemini_3(model),
    }
}

/// The bytes a call's signature covers: name, newline, compact args JSON.
fn signed(name: &str, args: &Value) -> String {
    format!("{name}\n{args}")
}

/// The `thoughtSignature` of a call to `name` with `args`.
pub fn call_signature(name: &str, args: &Value) -> String {
    sign(signed(name, args).as_bytes())
}

/// Whether `signature` is the one of this request's `functionCall` object (args `{}` when
/// absent).
fn call_verifies(call: &Value, signature: &str) -> bool {
    let name = call.get("name").and_then(Value::as_str).unwrap_or_default();
    let empty = Value::Object(Map::new());
    let args = call.get("args").filter(|a| !a.is_null()).unwrap_or(&empty);
    verify(signed(name, args).as_bytes(), signature)
}

/// The module doc's checks on a (shape-checked) request for `model`, as Google's message.
pub fn check(req: &Value, model: &str) -> Result<(), String> {
    let contents = field(req, "contents").and_then(Value::as_array);
    let contents = contents.map_or(&[][..], Vec::as_slice);
    for part in contents.iter().flat_map(parts) {
        let Some(signature) = field(part, "thoughtSignature") else {
            continue;
        };
        let call = field(part, "functionCall");
        let valid = call
            .zip(signature.as_str())
            .is_some_and(|(call, sig)| call_verifies(call, sig));
        if !valid {
            return Err("Corrupted thought signature.".to_string());
        }
    }
    if !is_gemini_3(model) {
        return Ok(());
    }
    let user_spoke = |c: &Value| !is_model(c) && texts(c).next().is_some();
    let turn_start = contents.iter().rposition(user_spoke).map_or(0, |i| i + 1);
    for (i, content) in contents.iter().enumerate().skip(turn_start) {
        if !is_model(content) {
            continue;
        }
        let first_call = parts(content)
            .iter()
            .find(|p| field(p, "functionCall").is_some());
        let Some(part) = first_call else {
            continue;
        };
        if field(part, "thoughtSignature").is_none() {
            let call = field(part, "functionCall");
            let name = call.and_then(|c| c.get("name")).and_then(Value::as_str);
            return Err(format!(
                "Function call is missing a thought_signature in functionCall parts. This is \
                 required for tools to work correctly, and missing thought_signature may lead \
                 to degraded model performance. Additional data, function call \
                 `default_api:{}` , position {}. Please refer to \
                 https://ai.google.dev/gemini-api/docs/thought-signatures for more details.",
                name.unwrap_or_default(),
                i + 1
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::generate::generate_reply;
    use super::super::tests::body;
    use crate::ReplyBody;
    use serde_json::{json, Value};

    const PRO_3: &str = "gemini-3-pro-preview";

    fn tools() -> Value {
        json!([{"functionDeclarations": [
            {"name": "get_weather", "parameters": {"type": "object",
                "properties": {"city": {"type": "string"}}, "required": ["city"]}},
            {"name": "get_time", "parameters": {"type": "object"}}]}])
    }

    fn ask() -> Value {
        json!({"role": "user", "parts": [{"text": "What is the weather in Paris today?"}]})
    }

    fn answer(contents: Value, model: &str) -> (u16, Value) {
        let req = json!({"contents": contents, "tools": tools()});
        let (status, _, v) = body(&generate_reply(&req, model, 5, None));
        (status, v)
    }

    fn parts_of(v: &Value) -> Value {
        v["candidates"][0]["content"]["parts"].clone()
    }

    /// The model content the first call answer of `model` gives (as a client sends it back).
    fn call_turn(model: &str, function: &str) -> Value {
        let req = json!({"contents": [ask()], "tools": tools(), "toolConfig":
            {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [function]}}});
        let (_, _, v) = body(&generate_reply(&req, model, 5, None));
        json!({"role": "model", "parts": parts_of(&v)})
    }

    fn result(name: &str) -> Value {
        json!({"role": "user", "parts": [{"functionResponse": {"name": name,
            "response": {"temperature": "21 C"}}}]})
    }

    fn error_message(answer: &(u16, Value)) -> &str {
        assert_eq!(answer.0, 400, "{}", answer.1);
        assert_eq!(answer.1["error"]["status"], "INVALID_ARGUMENT");
        answer.1["error"]["message"].as_str().unwrap()
    }

    #[test]
    fn thought_part_first_and_signature_on_the_call_only() {
        let req = json!({"contents": [ask()], "tools": tools(), "generationConfig":
            {"thinkingConfig": {"includeThoughts": true, "thinkingBudget": 1024}}});
        let (_, _, v) = body(&generate_reply(&req, "gemini-2.5-pro", 5, None));
        let parts = parts_of(&v);
        assert_eq!(parts.as_array().unwrap().len(), 2);
        assert_eq!(
            parts[0],
            json!({"text": "Thinking about: What is the weather in", "thought": true})
        );
        assert_eq!(
            parts[1]["functionCall"],
            json!({"name": "get_weather",
            "args": {"city": "Paris"}})
        );
        let signature = parts[1]["thoughtSignature"].as_str().unwrap();
        assert_eq!(signature.len(), 44);
        // token counts are those of the same request without includeThoughts
        let plain = json!({"contents": [ask()], "tools": tools(), "generationConfig":
            {"thinkingConfig": {"thinkingBudget": 1024}}});
        let (_, _, p) = body(&generate_reply(&plain, "gemini-2.5-pro", 5, None));
        assert_eq!(v["usageMetadata"], p["usageMetadata"]);
        assert_eq!(parts_of(&p).as_array().unwrap().len(), 1);
        assert_eq!(parts_of(&p)[0]["thoughtSignature"], signature);
        // a text answer has the thought and no signature; a function result gets its text
        let contents = json!([ask(), {"role": "model", "parts": [parts[1].clone()]},
            result("get_weather")]);
        let text = json!({"contents": contents, "tools": tools(), "generationConfig":
            {"thinkingConfig": {"includeThoughts": true}}});
        let (status, _, t) = body(&generate_reply(&text, PRO_3, 5, None));
        assert_eq!(status, 200, "{t}");
        assert_eq!(
            parts_of(&t),
            json!([{"text": "Thinking about the function result", "thought": true},
                {"text": "Hello world1 world2 world3 world4"}])
        );
    }

    #[test]
    fn signatures_need_a_thinking_config_or_gemini_3() {
        let sig = |model: &str, config: Value| {
            let req = json!({"contents": [ask()], "tools": tools(), "generationConfig": config});
            let (_, _, v) = body(&generate_reply(&req, model, 5, None));
            parts_of(&v)[0].get("thoughtSignature").is_some()
        };
        assert!(!sig("gemini-2.5-flash", json!({})));
        assert!(sig(
            "gemini-2.5-flash",
            json!({"thinkingConfig": {"thinkingBudget": 0}})
        ));
        assert!(sig(PRO_3, json!({})));
        assert!(sig("models/gemini-3-flash", json!({})));
    }

    #[test]
    fn stream_carries_the_thought_in_the_first_chunk() {
        let req = json!({"contents": [ask()], "generationConfig":
            {"thinkingConfig": {"includeThoughts": true}}});
        let reply = generate_reply(&req, PRO_3, 3, Some(true));
        let ReplyBody::Stream { events, .. } = &reply.body else {
            panic!("expected a stream");
        };
        let chunks: Vec<Value> = events
            .iter()
            .map(|e| {
                let text = std::str::from_utf8(e).unwrap();
                let data = text.strip_prefix("data: ").unwrap().trim_end();
                serde_json::from_str(data).unwrap()
            })
            .collect();
        assert_eq!(chunks.len(), 3);
        assert_eq!(
            parts_of(&chunks[0]),
            json!([{"text": "Thinking about: What is the weather in", "thought": true},
                {"text": "Hello"}])
        );
        assert_eq!(parts_of(&chunks[1]), json!([{"text": " world1"}]));
        assert_eq!(chunks[2]["usageMetadata"]["candidatesTokenCount"], 3);
        let call = json!({"contents": [ask()], "tools": tools()});
        let reply = generate_reply(&call, PRO_3, 3, Some(true));
        let ReplyBody::Stream { events, .. } = &reply.body else {
            panic!("expected a stream");
        };
        let text = std::str::from_utf8(&events[0]).unwrap();
        let v: Value = serde_json::from_str(text.strip_prefix("data: ").unwrap()).unwrap();
        assert!(parts_of(&v)[0]["thoughtSignature"].is_string());
    }

    #[test]
    fn gemini_3_requires_the_signature_back_with_its_position() {
        let turn = call_turn(PRO_3, "get_weather");
        assert_eq!(
            answer(json!([ask(), turn, result("get_weather")]), PRO_3).0,
            200
        );
        let mut stripped = turn.clone();
        stripped["parts"][0]
            .as_object_mut()
            .unwrap()
            .remove("thoughtSignature");
        let missing = answer(json!([ask(), stripped, result("get_weather")]), PRO_3);
        assert_eq!(
            error_message(&missing),
            "Function call is missing a thought_signature in functionCall parts. This is \
             required for tools to work correctly, and missing thought_signature may lead to \
             degraded model performance. Additional data, function call \
             `default_api:get_weather` , position 2. Please refer to \
             https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
        );
        // a second step of the same turn: position counts every content
        let later = json!([
            ask(),
            turn,
            result("get_weather"),
            stripped,
            result("get_weather")
        ]);
        assert!(error_message(&answer(later, PRO_3)).contains("position 4."));
        // parallel calls: only the first carries the signature
        let mut parallel = turn.clone();
        let second = json!({"functionCall": {"name": "get_time", "args": {}}});
        parallel["parts"].as_array_mut().unwrap().push(second);
        let two = json!([ask(), parallel, result("get_weather"), result("get_time")]);
        assert_eq!(answer(two, PRO_3).0, 200);
        // signatures of a call without args verify with the args left out too
        let mut no_args = call_turn(PRO_3, "get_time");
        assert_eq!(no_args["parts"][0]["functionCall"]["args"], json!({}));
        no_args["parts"][0]["functionCall"]
            .as_object_mut()
            .unwrap()
            .remove("args");
        assert_eq!(
            answer(json!([ask(), no_args, result("get_time")]), PRO_3).0,
            200
        );
    }

    #[test]
    fn earlier_turns_and_gemini_2_accept_missing_signatures() {
        let mut stripped = call_turn(PRO_3, "get_weather");
        stripped["parts"][0]
            .as_object_mut()
            .unwrap()
            .remove("thoughtSignature");
        let next = json!({"role": "user", "parts": [{"text": "and tomorrow?"}]});
        let earlier = json!([ask(), stripped, result("get_weather"),
            {"role": "model", "parts": [{"text": "21 C"}]}, next]);
        assert_eq!(answer(earlier, PRO_3).0, 200);
        let current = json!([ask(), stripped, result("get_weather")]);
        assert_eq!(answer(current.clone(), "gemini-2.5-flash").0, 200);
        assert_eq!(answer(current, PRO_3).0, 400);
    }

    #[test]
    fn corrupted_signatures_are_refused_on_any_model() {
        let turn = call_turn(PRO_3, "get_weather");
        let mut args = turn.clone();
        args["parts"][0]["functionCall"]["args"]["city"] = json!("London");
        let mut sig = turn.clone();
        let s = sig["parts"][0]["thoughtSignature"]
            .as_str()
            .unwrap()
            .to_string();
        sig["parts"][0]["thoughtSignature"] = json!(format!("{}A=", &s[..s.len() - 2]));
        let on_text = json!({"role": "model", "parts": [{"text": "hm",
            "thoughtSignature": s}]});
        let snake = json!({"role": "model", "parts": [{"functionCall":
            turn["parts"][0]["functionCall"].clone(), "thought_signature": "bm9wZQ=="}]});
        for model in [PRO_3, "gemini-2.5-flash"] {
            for bad in [&args, &sig, &on_text, &snake] {
                let contents = json!([ask(), bad, result("get_weather")]);
                assert_eq!(
                    error_message(&answer(contents, model)),
                    "Corrupted thought signature.",
                    "{bad}"
                );
            }
        }
    }
}
