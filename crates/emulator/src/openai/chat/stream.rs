//! The SSE form of a chat answer (`"stream":true`), event by event as the real API
//! sends it; the plan and the content rules come from the parent module.

use bytes::Bytes;
use serde::Serialize;

use super::{
    completion_id, fragments, sse, tool_call_id, usage, ChatPlan, FunctionCall, Reply, ToolCall,
    Usage, SYSTEM_FINGERPRINT,
};

/// One `chat.completion.chunk`; `usage` is absent without include_usage, else null
/// except on the final usage chunk.
#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    service_tier: &'static str,
    system_fingerprint: &'static str,
    choices: Vec<ChunkChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<Usage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: usize,
    delta: Delta<'a>,
    logprobs: (),
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<ToolCall<'a>>>,
}

/// The answer as SSE events, per the sequence in the parent module doc.
pub(super) fn chat_stream(plan: &ChatPlan) -> Reply {
    let id = completion_id();
    let created = crate::unix_now();
    let chunk = |choices: Vec<ChunkChoice>, usage: Option<Usage>| {
        sse(&Chunk {
            id: &id,
            object: "chat.completion.chunk",
            created,
            model: plan.model,
            service_tier: "default",
            system_fingerprint: SYSTEM_FINGERPRINT,
            choices,
            usage: plan.include_usage.then_some(usage),
        })
    };
    let choice = |index: usize, delta: Delta, finish_reason: Option<&'static str>| {
        let one = ChunkChoice {
            index,
            delta,
            logprobs: (),
            finish_reason,
        };
        chunk(vec![one], None)
    };
    let parts = fragments(plan);
    let mut events = Vec::with_capacity((parts.len() + 2) * plan.n + 2);
    for i in 0..plan.n {
        let first = match &plan.tool {
            Some(tool) => Delta {
                role: Some("assistant"),
                content: Some(None),
                tool_calls: Some(vec![ToolCall {
                    index: Some(0),
                    id: Some(tool_call_id()),
                    kind: Some("function"),
                    function: FunctionCall {
                        name: Some(&tool.name),
                        arguments: "",
                    },
                }]),
            },
            None => Delta {
                role: Some("assistant"),
                content: Some(Some("")),
                tool_calls: None,
            },
        };
        events.push(choice(i, first, None));
    }
    for part in &parts {
        for i in 0..plan.n {
            let delta = match plan.tool {
                Some(_) => Delta {
                    tool_calls: Some(vec![ToolCall {
                        index: Some(0),
                        id: None,
                        kind: None,
                        function: FunctionCall {
                            name: None,
                            arguments: part,
                        },
                    }]),
                    ..Delta::default()
                },
                None => Delta {
                    content: Some(Some(part)),
                    ..Delta::default()
                },
            };
            events.push(choice(i, delta, None));
        }
    }
    let finish = if plan.tool.is_some() {
        "tool_calls"
    } else {
        "stop"
    };
    for i in 0..plan.n {
        events.push(choice(i, Delta::default(), Some(finish)));
    }
    if plan.include_usage {
        let total = usage(plan.prompt_tokens, (parts.len() * plan.n) as u64);
        events.push(chunk(Vec::new(), Some(total)));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    Reply::stream(events)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::tests::{req, weather_tools};
    use super::super::{chat_reply, content_text};
    use super::*;
    use crate::ReplyBody;
    use serde_json::{json, Value};

    /// Parses a stream event by event; `[DONE]` becomes `Value::Null`.
    fn events(reply: &Reply) -> Vec<Value> {
        let ReplyBody::Stream { events, .. } = &reply.body else {
            panic!("expected a stream");
        };
        events
            .iter()
            .map(|e| {
                let text = std::str::from_utf8(e).unwrap();
                let payload = text
                    .strip_prefix("data: ")
                    .unwrap()
                    .strip_suffix("\n\n")
                    .unwrap();
                assert!(!payload.contains('\n'), "one line per event");
                if payload == "[DONE]" {
                    Value::Null
                } else {
                    serde_json::from_str(payload).unwrap()
                }
            })
            .collect()
    }

    #[test]
    fn stream_without_usage_has_no_usage_key() {
        let ev = events(&chat_reply(&req(json!({"stream": true})), 3));
        assert_eq!(ev.len(), 1 + 3 + 1 + 1);
        assert!(ev.last().unwrap().is_null(), "[DONE] last");
        assert_eq!(
            ev[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        let text: String = ev[1..4]
            .iter()
            .map(|e| e["choices"][0]["delta"]["content"].as_str().unwrap())
            .collect();
        assert_eq!(text, content_text(3));
        assert_eq!(ev[4]["choices"][0]["delta"], json!({}));
        assert_eq!(ev[4]["choices"][0]["finish_reason"], "stop");
        for e in &ev[..5] {
            assert!(e.get("usage").is_none());
            assert_eq!(e["object"], "chat.completion.chunk");
            assert_eq!(e["id"], ev[0]["id"]);
            assert_eq!(e["model"], "gpt-test");
        }
    }

    #[test]
    fn stream_with_include_usage_ends_with_usage_chunk() {
        let r = req(json!({"stream": true, "stream_options": {"include_usage": true}}));
        let ev = events(&chat_reply(&r, 2));
        assert_eq!(ev.len(), 1 + 2 + 1 + 1 + 1);
        for e in &ev[..4] {
            assert!(e["usage"].is_null() && e.get("usage").is_some());
        }
        let last = &ev[4];
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"]["prompt_tokens"], 11);
        assert_eq!(last["usage"]["completion_tokens"], 2);
        assert_eq!(last["usage"]["total_tokens"], 13);
        assert!(ev[5].is_null());
    }

    #[test]
    fn tool_call_stream_fragments() {
        let r = req(json!({"tools": weather_tools(), "stream": true,
            "tool_choice": {"type": "function", "function": {"name": "other"}}}));
        let ev = events(&chat_reply(&r, 5));
        // arguments "{}" has 2 chars, so K = 2 fragments
        assert_eq!(ev.len(), 1 + 2 + 1 + 1);
        let first = &ev[0]["choices"][0]["delta"];
        assert_eq!(first["role"], "assistant");
        assert!(first["content"].is_null() && first.get("content").is_some());
        let call = &first["tool_calls"][0];
        assert_eq!(call["index"], 0);
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"], json!({"name": "other", "arguments": ""}));
        let args: String = ev[1..3]
            .iter()
            .map(|e| {
                let c = &e["choices"][0]["delta"]["tool_calls"][0];
                assert!(c.get("id").is_none() && c["function"].get("name").is_none());
                c["function"]["arguments"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(args, "{}");
        assert_eq!(ev[3]["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn n_choices_interleave() {
        let ev = events(&chat_reply(&req(json!({"n": 2, "stream": true})), 1));
        // 2 role chunks, 2 content chunks, 2 finish chunks, [DONE]
        assert_eq!(ev.len(), 7);
        let idx: Vec<u64> = ev[..6]
            .iter()
            .map(|e| e["choices"][0]["index"].as_u64().unwrap())
            .collect();
        assert_eq!(idx, [0, 1, 0, 1, 0, 1]);
    }
}
