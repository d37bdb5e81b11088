//! generateContent / streamGenerateContent / countTokens: JSON, calls, both stream forms,
//! validation.

use super::super::tests::body;
use super::*;
use serde_json::json;

fn req(extra: Value) -> Value {
    let mut v = json!({"systemInstruction": {"parts": [{"text": "be brief"}]},
        "contents": [{"role": "user", "parts": [{"text": "hi there you"}]}]});
    for (k, val) in extra.as_object().unwrap() {
        v[k] = val.clone();
    }
    v
}

fn weather_tools() -> Value {
    json!([{"functionDeclarations": [
        {"name": "get_weather", "parameters": {"type": "object",
            "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        {"name": "other", "parameters": {"type": "object"}}]}])
}

/// The stream's content type and events.
fn stream(reply: &Reply) -> (&'static str, Vec<String>, fn(u64) -> Bytes) {
    let (content_type, events, error) = reply.stream_parts();
    let events = events
        .iter()
        .map(|e| String::from_utf8(e.to_vec()).unwrap());
    (content_type, events.collect(), error)
}

fn sse_objects(reply: &Reply) -> Vec<Value> {
    let (ct, events, _) = stream(reply);
    assert_eq!(ct, "text/event-stream");
    events
        .iter()
        .map(|e| {
            let data = e
                .strip_prefix("data: ")
                .unwrap()
                .strip_suffix("\r\n\r\n")
                .unwrap();
            assert!(!data.contains('\n'));
            serde_json::from_str(data).unwrap()
        })
        .collect()
}

#[test]
fn json_text_answer() {
    let (status, ct, v) = body(&generate_reply(&req(json!({})), "gemini-x", 5, None));
    assert_eq!((status, ct), (200, JSON));
    assert_eq!(
        v["candidates"],
        json!([{"content": {"parts": [{"text": "Hello world1 world2 world3 world4"}],
            "role": "model"}, "finishReason": "STOP", "index": 0}])
    );
    assert_eq!(
        v["usageMetadata"],
        json!({"promptTokenCount": 11, "candidatesTokenCount": 5, "totalTokenCount": 16,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 11}]})
    );
    assert_eq!(v["modelVersion"], "gemini-x");
    assert_eq!(v["responseId"].as_str().unwrap().len(), 22);
}

#[test]
fn thinking_config_adds_thoughts() {
    let r = req(json!({"generationConfig": {"thinkingConfig": {"thinkingBudget": 1024}}}));
    let (_, _, v) = body(&generate_reply(&r, "g", 2, None));
    let usage = &v["usageMetadata"];
    assert_eq!(usage["thoughtsTokenCount"], THOUGHTS_TOKENS);
    assert_eq!(usage["totalTokenCount"], 11 + 2 + THOUGHTS_TOKENS);
    let off = req(json!({"generation_config": {"thinking_config": {"thinking_budget": 0}}}));
    let (_, _, v) = body(&generate_reply(&off, "g", 2, None));
    assert!(v["usageMetadata"].get("thoughtsTokenCount").is_none());
}

#[test]
fn function_call_answer() {
    let r = req(json!({"tools": weather_tools()}));
    let (_, _, v) = body(&generate_reply(&r, "g", 5, None));
    let cand = &v["candidates"][0];
    assert_eq!(
        cand["content"]["parts"],
        json!([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}])
    );
    assert_eq!(cand["finishReason"], "STOP");
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 5);
    let allowed = req(
        json!({"tools": weather_tools(), "toolConfig": {"functionCallingConfig":
        {"mode": "ANY", "allowedFunctionNames": ["other"]}}}),
    );
    let (_, _, v) = body(&generate_reply(&allowed, "g", 5, None));
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
        "other"
    );
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 2);
    let none = req(json!({"tools": weather_tools(),
        "toolConfig": {"functionCallingConfig": {"mode": "NONE"}}}));
    let (_, _, v) = body(&generate_reply(&none, "g", 1, None));
    assert_eq!(
        v["candidates"][0]["content"]["parts"],
        json!([{"text": "Hello"}])
    );
}

#[test]
fn sse_stream_chunks() {
    let objects = sse_objects(&generate_reply(&req(json!({})), "g", 3, Some(true)));
    assert_eq!(objects.len(), 3);
    let text: String = objects
        .iter()
        .map(|o| {
            o["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(text, "Hello world1 world2");
    for o in &objects[..2] {
        assert!(o["candidates"][0].get("finishReason").is_none());
        assert_eq!(
            o["usageMetadata"],
            json!({"promptTokenCount": 11, "totalTokenCount": 11})
        );
        assert_eq!(o["responseId"], objects[2]["responseId"]);
        assert_eq!(o["modelVersion"], "g");
    }
    let last = &objects[2];
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 3);
    assert_eq!(last["usageMetadata"]["totalTokenCount"], 14);
    let zero = sse_objects(&generate_reply(&req(json!({})), "g", 0, Some(true)));
    assert_eq!(zero.len(), 1);
    assert_eq!(zero[0]["candidates"][0]["content"]["parts"][0]["text"], "");
}

#[test]
fn sse_function_call_arrives_whole() {
    let r = req(json!({"tools": weather_tools()}));
    let reply = generate_reply(&r, "g", 5, Some(true));
    let objects = sse_objects(&reply);
    assert_eq!(objects.len(), 1);
    let cand = &objects[0]["candidates"][0];
    assert_eq!(
        cand["content"]["parts"][0]["functionCall"]["args"],
        json!({"city": "Paris"})
    );
    assert_eq!(cand["finishReason"], "STOP");
    let (_, _, error) = stream(&reply);
    let ev = String::from_utf8(error(1).to_vec()).unwrap();
    let data = ev
        .strip_prefix("data: ")
        .unwrap()
        .strip_suffix("\r\n\r\n")
        .unwrap();
    let v: Value = serde_json::from_str(data).unwrap();
    assert_eq!(v["error"]["status"], "UNAVAILABLE");
    assert_eq!(v["error"]["code"], 503);
}

#[test]
fn array_stream_parses_as_one_json_array() {
    let reply = generate_reply(&req(json!({})), "g", 3, Some(false));
    let (ct, events, error) = stream(&reply);
    assert_eq!(ct, JSON);
    assert_eq!(events.len(), 4);
    assert!(events[0].starts_with("[{") && events[1].starts_with(",\r\n{"));
    assert_eq!(events[3], "]");
    let all: Value = serde_json::from_str(&events.concat()).unwrap();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2]["candidates"][0]["finishReason"], "STOP");
    // a failure after 2 elements closes the array with the error object
    let cut: Value = serde_json::from_str(&format!(
        "{}{}",
        events[..2].concat(),
        String::from_utf8(error(2).to_vec()).unwrap()
    ))
    .unwrap();
    assert_eq!(cut[2]["error"]["status"], "UNAVAILABLE");
    let first: Value = serde_json::from_slice(&error(0)).unwrap();
    assert_eq!(first[0]["error"]["code"], 503);
}

#[test]
fn validation_and_count_tokens() {
    let cases = [
        (json!({}), "contents is not specified"),
        (json!({"contents": []}), "contents is not specified"),
        (
            json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}),
            "valid role",
        ),
        (
            json!({"contents": [{"role": "user", "parts": []}]}),
            "contents[0].parts",
        ),
    ];
    for (r, want) in cases {
        let (status, _, v) = body(&generate_reply(&r, "g", 1, None));
        assert_eq!(status, 400, "{r}");
        assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(want),
            "{v}"
        );
    }
    let (status, _, v) = body(&count_tokens_reply(&req(json!({}))));
    assert_eq!(status, 200);
    assert_eq!(
        v,
        json!({"totalTokens": 11, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 11}]})
    );
    let wrapped = json!({"generateContentRequest": req(json!({"model": "models/g"}))});
    assert_eq!(body(&count_tokens_reply(&wrapped)).2["totalTokens"], 11);
}
