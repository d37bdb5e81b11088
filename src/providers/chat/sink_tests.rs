//! The OpenAI writer writes the bytes the upstream-side translators wrote before answers were
//! typed (the expectations are those translators' recorded outputs), and the reader reads
//! them back to the same values.

use std::borrow::Cow;

use serde_json::json;

use super::*;
use crate::dialect::Dialect;
use crate::error::{ErrorKind, GatewayError};
use crate::providers::chat::{
    reasoning_text, ChatChoice, ChatChunkChoice, ChatDelta, ChatMessage, ChatToolCall, ChatUsage,
    CompletionTokensDetails, PromptTokensDetails,
};
use crate::providers::translator_testing::{run, same_at_every_split};

fn usage(prompt: u64, completion: u64, cached: u64, reasoning: u64) -> ChatUsage {
    ChatUsage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: Some(prompt + completion),
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: Some(cached),
        }),
        completion_tokens_details: Some(CompletionTokensDetails {
            reasoning_tokens: Some(reasoning),
        }),
        cache_creation_input_tokens: None,
        cache_creation: None,
    }
}

/// A one-choice answer.
fn answer(
    id: &str,
    created: u64,
    model: &str,
    message: ChatMessage,
    finish: &'static str,
) -> ChatCompletion {
    let mut c = ChatCompletion::new(id.into(), created, model.into());
    c.choices.push(ChatChoice {
        index: 0,
        message,
        logprobs: None,
        finish_reason: Some(Cow::Borrowed(finish)),
    });
    c
}

fn written(completion: ChatCompletion) -> String {
    let mut out = Vec::new();
    OpenAiWriter.whole(completion, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn a_whole_answer_is_written_as_before() {
    // gemini::upstream::response's `text_answer_becomes_a_chat_completion`
    let text = ChatMessage::assistant(Some("It is 21°C.".into()), Vec::new());
    let mut c = answer("chatcmpl-abc", 1_700_000_000, "my-gemini", text, "stop");
    c.usage = Some(usage(15, 26, 4, 20));
    assert_eq!(
        written(c),
        concat!(
            r#"{"id":"chatcmpl-abc","object":"chat.completion","created":1700000000,"model":"my-gemini","#,
            r#""choices":[{"index":0,"message":{"role":"assistant","content":"It is 21°C.","refusal":null},"#,
            r#""logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":15,"completion_tokens":26,"#,
            r#""total_tokens":41,"prompt_tokens_details":{"cached_tokens":4},"#,
            r#""completion_tokens_details":{"reasoning_tokens":20}}}"#
        )
    );
}

#[test]
fn a_whole_answer_with_reasoning_tool_calls_and_cache_writes() {
    // anthropic::upstream::response's B1 answers: null content beside calls, reasoning, the
    // cache-write extension in usage
    let call = ChatToolCall::function(
        None,
        "toolu_01A".into(),
        "get_weather".into(),
        r#"{"city":"Paris"}"#.into(),
    );
    let mut calls = ChatMessage::assistant(None, vec![call]);
    calls.reasoning_content = Some("hmm".into());
    let mut c = answer("chatcmpl-msg_01X", 7, "claude-alias", calls, "tool_calls");
    c.usage = Some(ChatUsage {
        prompt_tokens: 2572,
        completion_tokens: 89,
        total_tokens: Some(2661),
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: Some(2000),
        }),
        completion_tokens_details: None,
        cache_creation_input_tokens: Some(100),
        cache_creation: None,
    });
    assert_eq!(
        written(c),
        concat!(
            r#"{"id":"chatcmpl-msg_01X","object":"chat.completion","created":7,"model":"claude-alias","#,
            r#""choices":[{"index":0,"message":{"role":"assistant","content":null,"reasoning_content":"hmm","#,
            r#""tool_calls":[{"id":"toolu_01A","type":"function","function":{"name":"get_weather","#,
            r#""arguments":"{\"city\":\"Paris\"}"}}],"refusal":null},"logprobs":null,"finish_reason":"tool_calls"}],"#,
            r#""usage":{"prompt_tokens":2572,"completion_tokens":89,"total_tokens":2661,"#,
            r#""prompt_tokens_details":{"cached_tokens":2000},"cache_creation_input_tokens":100}}"#
        )
    );
}

/// The chunks of gemini::upstream::response::stream's recorded stream (with include_usage),
/// and a reasoning chunk as the Anthropic side sends it (no `usage` field at all).
fn stream_values(out: &mut Vec<u8>) {
    let (id, model, created) = ("chatcmpl-r1", "my-gemini", 1_700_000_000);
    let mut w = OpenAiWriter;
    let mut chunk = |choice: ChatChunkChoice, with_usage: bool, out: &mut Vec<u8>| {
        let mut c = ChatChunk::new(id, created, model, vec![choice]);
        if with_usage {
            c.usage = Some(None);
        }
        w.chunk(c, out).unwrap();
    };
    chunk(ChatChunkChoice::delta(0, ChatDelta::start()), true, out);
    chunk(
        ChatChunkChoice::delta(0, ChatDelta::reasoning("plan".into())),
        false,
        out,
    );
    chunk(
        ChatChunkChoice::delta(0, ChatDelta::content("Let me".into())),
        true,
        out,
    );
    let mut call = ChatToolCall::function(
        Some(0),
        "call_n0_0".into(),
        "get_weather".into(),
        r#"{"city":"Paris"}"#.into(),
    );
    chunk(
        ChatChunkChoice::delta(0, ChatDelta::tool_call(call.clone())),
        true,
        out,
    );
    call = ChatToolCall::arguments(1, "{}".into());
    chunk(
        ChatChunkChoice::delta(0, ChatDelta::tool_call(call)),
        false,
        out,
    );
    chunk(ChatChunkChoice::finish(0, "tool_calls"), true, out);
    let mut last = ChatChunk::new(id, created, model, Vec::new());
    last.usage = Some(Some(usage(42, 79, 0, 48)));
    w.chunk(last, out).unwrap();
    w.done(out).unwrap();
    w.end(out).unwrap();
}

const STREAM: &str = concat!(
    r#"data: {"id":"chatcmpl-r1","object":"chat.completion.chunk","created":1700000000,"model":"my-gemini","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-r1","object":"chat.completion.chunk","created":1700000000,"model":"my-gemini","choices":[{"index":0,"delta":{"reasoning_content":"plan"},"logprobs":null,"finish_reason":null}]}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-r1","object":"chat.completion.chunk","created":1700000000,"model":"my-gemini","choices":[{"index":0,"delta":{"content":"Let me"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-r1","object":"chat.completion.chunk","created":1700000000,"model":"my-gemini","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_n0_0","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-r1","object":"chat.completion.chunk","created":1700000000,"model":"my-gemini","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]},"logprobs":null,"finish_reason":null}]}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-r1","object":"chat.completion.chunk","created":1700000000,"model":"my-gemini","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-r1","object":"chat.completion.chunk","created":1700000000,"model":"my-gemini","choices":[],"usage":{"prompt_tokens":42,"completion_tokens":79,"total_tokens":121,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":48}}}"#,
    "\n\n",
    "data: [DONE]\n\n",
);

#[test]
fn a_stream_is_written_as_before() {
    let mut out = Vec::new();
    stream_values(&mut out);
    assert_eq!(String::from_utf8(out).unwrap(), STREAM);
}

#[test]
fn an_error_chunk_is_the_error_event_the_translators_wrote() {
    let error = GatewayError::new(ErrorKind::UpstreamStatus(503), "The model is overloaded.");
    let mut out = Vec::new();
    OpenAiWriter
        .chunk(ChatChunk::error(error.openai_object()), &mut out)
        .unwrap();
    assert_eq!(out, error.sse_event(Dialect::OpenAi).to_vec());
}

/// Records what reaches it, to see what the reader hands over.
#[derive(Default)]
struct Recorder {
    /// Each chunk's choices and usage field.
    chunks: Vec<(Vec<ChatChunkChoice>, Option<Option<ChatUsage>>)>,
    completions: Vec<ChatCompletion>,
    done: usize,
    ended: usize,
}

impl ChatSink for Recorder {
    fn whole(&mut self, c: ChatCompletion, _: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.completions.push(c);
        Ok(())
    }
    fn chunk(&mut self, c: ChatChunk<'_>, _: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.chunks.push((c.choices, c.usage));
        Ok(())
    }
    fn done(&mut self, _: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.done += 1;
        Ok(())
    }
    fn end(&mut self, _: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.ended += 1;
        Ok(())
    }
}

#[test]
fn the_reader_reads_the_writers_bytes_back_at_every_split() {
    // reader + writer is the identity on what the writer wrote
    let (out, result) = same_at_every_split(|| read(true, OpenAiWriter), STREAM.as_bytes());
    result.unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), STREAM);
    let body = written(ChatCompletion::new("c".into(), 1, "m".into()));
    let (out, result) = same_at_every_split(|| read(false, OpenAiWriter), body.as_bytes());
    result.unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), body);
}

#[test]
fn the_reader_takes_what_hosts_send() {
    let input = concat!(
        // explicit nulls, `message` for `delta`, both reasoning names (vLLM sends both)
        r#"data: {"id":"x","choices":[{"index":0,"message":{"content":"a","tool_calls":null,"reasoning":"r","reasoning_content":"r"},"finish_reason":null}],"usage":null}"#,
        "\n\n",
        r#"data: {"choices":[{"delta":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
        "\n\n",
        "data: [DONE]\n\n",
        "data: {not read after [DONE]}\n\n",
    );
    let mut reader = ReadChunks {
        sink: Recorder::default(),
        closed: false,
    };
    let mut out = Vec::new();
    let mut parser = crate::sse::SseParser::default();
    let mut events = Vec::new();
    parser.push(input.as_bytes(), &mut events);
    for event in &events {
        reader.event(event, &mut out).unwrap();
    }
    reader.end(&mut out).unwrap();
    let sink = reader.sink;
    assert_eq!((sink.chunks.len(), sink.done, sink.ended), (2, 1, 1));
    let delta = &sink.chunks[0].0[0].delta;
    assert_eq!(delta.content.as_deref(), Some("a"));
    assert_eq!(
        reasoning_text(delta.reasoning_content.clone(), delta.reasoning.clone()),
        Some("r".to_string())
    );
    assert_eq!(sink.chunks[0].1, Some(None));
    assert_eq!(sink.chunks[1].0[0].finish_reason.as_deref(), Some("stop"));
    let usage = sink.chunks[1].1.flatten().unwrap();
    assert_eq!((usage.prompt_tokens, usage.total_tokens), (3, None));
    assert!(out.is_empty());
}

#[test]
fn an_error_in_a_whole_answer_fails_and_one_in_a_stream_is_handed_on() {
    let body = json!({"error": {"message": "slow down", "type": "requests"}}).to_string();
    let mut t = read(false, Recorder::default());
    let (_, result) = run(t.as_mut(), &[body.as_bytes()]);
    let e = result.unwrap_err();
    assert_eq!((e.status(), e.message.as_str()), (429, "slow down"));

    let stream = format!("data: {body}\n\ndata: {{\"choices\":[]}}\n\n");
    let (out, result) = run(read(true, OpenAiWriter).as_mut(), &[stream.as_bytes()]);
    result.unwrap();
    // the error is passed on and nothing after it
    assert_eq!(String::from_utf8(out).unwrap(), format!("data: {body}\n\n"));
}
