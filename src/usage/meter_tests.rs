//! The meter on real answers: usage events, the usage-only chunk, cut streams, huge bodies,
//! Anthropic cache reads and writes.

use super::*;

const OPENAI_STREAM: &str = concat!(
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":null}\n\n",
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}],\"usage\":null}\n\n",
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"}}],\"usage\":null}\n\n",
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n",
    "data: [DONE]\n\n",
);

const ANTHROPIC_STREAM: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1,\"cache_creation_input_tokens\":3,\"cache_read_input_tokens\":10}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
    "event: ping\ndata: {\"type\":\"ping\"}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":42}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);

/// Feeds `stream` as whole events split into two calls at every event border.
fn run(dialect: Dialect, stream: &str, strip: bool) -> Vec<(Option<Usage>, String)> {
    let borders: Vec<usize> = std::iter::once(0)
        .chain(stream.match_indices("\n\n").map(|(i, _)| i + 2))
        .collect();
    borders
        .iter()
        .map(|&cut| {
            let mut m = Meter::new(dialect, true, strip);
            let mut out = Vec::new();
            for part in [&stream[..cut], &stream[cut..]] {
                out.extend_from_slice(&m.process(Bytes::copy_from_slice(part.as_bytes())));
            }
            (m.reported(), String::from_utf8(out).unwrap())
        })
        .collect()
}

#[test]
fn openai_usage_chunk_is_read_and_kept_for_clients_that_asked() {
    for (usage, out) in run(Dialect::OpenAi, OPENAI_STREAM, false) {
        assert_eq!(
            usage,
            Some(Usage {
                prompt: 9,
                completion: 2,
                cached: 4
            })
        );
        assert_eq!(out, OPENAI_STREAM);
    }
}

#[test]
fn openai_usage_chunk_is_removed_for_clients_that_did_not_ask() {
    let expected: String = OPENAI_STREAM
        .split_inclusive("\n\n")
        .filter(|e| !e.contains("\"choices\":[]"))
        .collect();
    for (usage, out) in run(Dialect::OpenAi, OPENAI_STREAM, true) {
        assert_eq!(usage.map(|u| u.completion), Some(2));
        assert_eq!(out, expected);
    }
}

#[test]
fn anthropic_stream_usage_adds_cache_tokens_and_takes_final_output() {
    for (usage, out) in run(Dialect::Anthropic, ANTHROPIC_STREAM, true) {
        assert_eq!(
            usage,
            Some(Usage {
                prompt: 38,
                completion: 42,
                cached: 10
            })
        );
        assert_eq!(out, ANTHROPIC_STREAM, "Anthropic streams are never edited");
    }
}

#[test]
fn cut_stream_has_no_usage_but_keeps_the_delivered_text() {
    let cut: String = OPENAI_STREAM.split_inclusive("\n\n").take(3).collect();
    let mut m = Meter::new(Dialect::OpenAi, true, true);
    m.process(Bytes::from(cut));
    assert_eq!(m.reported(), None);
    assert_eq!(m.delivered_text(), "Hello world");
}

#[test]
fn json_bodies_at_every_chunk_border() {
    let body = r#"{"id":"x","choices":[{"message":{"content":"Hi there"}}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
    for cut in 0..=body.len() {
        let mut m = Meter::new(Dialect::OpenAi, false, false);
        m.process(Bytes::copy_from_slice(&body.as_bytes()[..cut]));
        m.process(Bytes::copy_from_slice(&body.as_bytes()[cut..]));
        assert_eq!(
            m.reported(),
            Some(Usage {
                prompt: 5,
                completion: 2,
                cached: 0
            })
        );
    }
    let anthropic = r#"{"id":"m","content":[{"type":"text","text":"Hi"}],"usage":{"input_tokens":3,"output_tokens":4,"cache_read_input_tokens":2}}"#;
    let mut m = Meter::new(Dialect::Anthropic, false, false);
    m.process(Bytes::from_static(anthropic.as_bytes()));
    assert_eq!(
        m.reported(),
        Some(Usage {
            prompt: 5,
            completion: 4,
            cached: 2
        })
    );
    assert_eq!(m.delivered_text(), "Hi");
}

#[test]
fn only_events_with_a_usage_object_are_parsed() {
    assert!(carries_usage(
        br#"data: {"choices":[],"usage":{"prompt_tokens":1}}"#
    ));
    assert!(carries_usage(br#"data: {"usage" : {"x":1}}"#));
    assert!(!carries_usage(
        br#"data: {"choices":[{"delta":{"content":"usage"}}],"usage":null}"#
    ));
    assert!(!carries_usage(br#"data: {"choices":[]}"#));
}

#[test]
fn usage_is_found_in_the_tail_of_a_huge_body() {
    let mut m = Meter::new(Dialect::OpenAi, false, false);
    m.process(Bytes::from(format!(
        r#"{{"data":["{}"#,
        "x".repeat(MAX_JSON_BUFFER)
    )));
    m.process(Bytes::from_static(
        br#""],"usage":{"prompt_tokens":8,"total_tokens":8}}"#,
    ));
    assert!(m.json.len() <= JSON_TAIL + 64);
    assert_eq!(m.reported().map(|u| u.prompt), Some(8));
}

/// A real Anthropic stream (claude-sonnet-4-5, 2025): the prompt written to the caches in
/// `message_start` (with the split by lifetime), `message_delta` repeating the input counts
/// without the split, as Anthropic sends it.
const ANTHROPIC_CACHE_WRITE_STREAM: &str = concat!(
    "event: message_start\n",
    "data: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-5-20250929\",\"id\":\"msg_01AbCdEf\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":2548,\"cache_read_input_tokens\":1024,\"cache_creation\":{\"ephemeral_5m_input_tokens\":500,\"ephemeral_1h_input_tokens\":2048},\"output_tokens\":1,\"service_tier\":\"standard\"}}}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
    "event: content_block_stop\n",
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\n",
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":2548,\"cache_read_input_tokens\":1024,\"output_tokens\":15}}\n\n",
    "event: message_stop\n",
    "data: {\"type\":\"message_stop\"}\n\n",
);

#[test]
fn anthropic_stream_cache_writes_keep_their_lifetimes() {
    let stream = ANTHROPIC_CACHE_WRITE_STREAM;
    let borders: Vec<usize> = std::iter::once(0)
        .chain(stream.match_indices("\n\n").map(|(i, _)| i + 2))
        .collect();
    for cut in borders {
        let mut m = Meter::new(Dialect::Anthropic, true, true);
        for part in [&stream[..cut], &stream[cut..]] {
            m.process(Bytes::copy_from_slice(part.as_bytes()));
        }
        let expected = Usage {
            prompt: 12 + 2548 + 1024,
            completion: 15,
            cached: 1024,
        };
        assert_eq!(m.reported(), Some(expected), "{cut}");
        assert_eq!(m.cache_writes(), CacheWrites { m5: 500, h1: 2048 }, "{cut}");
    }
}

#[test]
fn anthropic_json_cache_writes_with_and_without_the_split() {
    let answer = r#"{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"cache_creation":{"ephemeral_5m_input_tokens":40,"ephemeral_1h_input_tokens":60},"output_tokens":12,"service_tier":"standard"}}"#;
    let mut m = Meter::new(Dialect::Anthropic, false, false);
    m.process(Bytes::copy_from_slice(answer.as_bytes()));
    assert_eq!(
        m.reported().map(|u| (u.prompt, u.cached)),
        Some((2572, 2000))
    );
    assert_eq!(m.cache_writes(), CacheWrites { m5: 40, h1: 60 });
    // an older answer: no split, so 5-minute writes (the only kind then)
    let older = r#"{"id":"m","content":[],"usage":{"input_tokens":3,"cache_creation_input_tokens":7,"output_tokens":1}}"#;
    let mut m = Meter::new(Dialect::Anthropic, false, false);
    m.process(Bytes::copy_from_slice(older.as_bytes()));
    assert_eq!(m.reported().map(|u| u.prompt), Some(10));
    assert_eq!(m.cache_writes(), CacheWrites { m5: 7, h1: 0 });
    // and no cache at all
    let plain = r#"{"id":"m","content":[],"usage":{"input_tokens":3,"output_tokens":1}}"#;
    let mut m = Meter::new(Dialect::Anthropic, false, false);
    m.process(Bytes::copy_from_slice(plain.as_bytes()));
    assert_eq!(m.cache_writes(), CacheWrites::default());
}

#[test]
fn translated_openai_usage_carries_anthropic_cache_writes() {
    // what the gateway's Anthropic → OpenAI translator answers an OpenAI client
    let body = r#"{"id":"chatcmpl-x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":2572,"completion_tokens":12,"total_tokens":2584,"prompt_tokens_details":{"cached_tokens":2000},"cache_creation_input_tokens":100}}"#;
    let mut m = Meter::new(Dialect::OpenAi, false, false);
    m.process(Bytes::copy_from_slice(body.as_bytes()));
    assert_eq!(
        m.reported().map(|u| (u.prompt, u.cached)),
        Some((2572, 2000))
    );
    assert_eq!(m.cache_writes(), CacheWrites { m5: 100, h1: 0 });
    let chunk = concat!(
        "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":2572,",
        "\"completion_tokens\":12,\"prompt_tokens_details\":{\"cached_tokens\":2000},",
        "\"cache_creation_input_tokens\":100,\"cache_creation\":",
        "{\"ephemeral_5m_input_tokens\":0,\"ephemeral_1h_input_tokens\":100}}}\n\n"
    );
    let mut m = Meter::new(Dialect::OpenAi, true, false);
    m.process(Bytes::from_static(chunk.as_bytes()));
    assert_eq!(m.cache_writes(), CacheWrites { m5: 0, h1: 100 });
    // a plain OpenAI answer writes nothing
    let mut m = Meter::new(Dialect::OpenAi, true, false);
    m.process(Bytes::from_static(OPENAI_STREAM.as_bytes()));
    assert_eq!(m.cache_writes(), CacheWrites::default());
}

#[test]
fn responses_usage_from_json_and_the_final_stream_event() {
    use crate::usage::meter::AnswerFormat;
    let json = br#"{"id":"resp_1","object":"response","output":[{"type":"message","content":[{"type":"output_text","text":"Hi"}]}],"usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":4},"output_tokens":3,"total_tokens":15}}"#;
    let mut m = Meter::new(AnswerFormat::Responses, false, false);
    m.process(Bytes::from_static(json));
    assert_eq!(
        m.reported(),
        Some(Usage {
            prompt: 12,
            completion: 3,
            cached: 4
        })
    );
    assert_eq!(m.delivered_text(), "Hi");
    let stream = concat!(
        "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"usage\":null}}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"delta\":\"Hel\"}\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{\"usage\":{\"input_tokens\":7,\"output_tokens\":2}}}\n\n",
    );
    let mut m = Meter::new(AnswerFormat::Responses, true, true);
    let out = m.process(Bytes::from_static(stream.as_bytes()));
    assert_eq!(
        out,
        stream.as_bytes(),
        "nothing is stripped from a Responses stream"
    );
    assert_eq!(
        m.reported(),
        Some(Usage {
            prompt: 7,
            completion: 2,
            cached: 0
        })
    );
    assert_eq!(m.delivered_text(), "Hel");
}

/// A Claude answer translated to Responses carries Anthropic's cache writes, as chat does.
#[test]
fn responses_usage_carries_anthropic_cache_writes() {
    use crate::usage::meter::AnswerFormat;
    let json = br#"{"id":"resp_1","object":"response","output":[],"usage":{"input_tokens":3000,"input_tokens_details":{"cached_tokens":1000},"cache_creation_input_tokens":1500,"cache_creation":{"ephemeral_5m_input_tokens":500,"ephemeral_1h_input_tokens":1000},"output_tokens":3}}"#;
    let mut m = Meter::new(AnswerFormat::Responses, false, false);
    m.process(Bytes::from_static(json));
    assert_eq!(m.cache_writes(), CacheWrites { m5: 500, h1: 1000 });
    let stream = "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":7,\"cache_creation_input_tokens\":5,\"output_tokens\":2}}}\n\n";
    let mut m = Meter::new(AnswerFormat::Responses, true, false);
    m.process(Bytes::from_static(stream.as_bytes()));
    assert_eq!(m.cache_writes(), CacheWrites { m5: 5, h1: 0 });
}

#[test]
fn stream_chunks_are_not_held_after_they_are_written() {
    // The meter keeps its own copy of what an estimate needs: holding the provider's chunks
    // would keep the buffers they were read into alive for as long as the stream lasts.
    let mut meter = Meter::new(Dialect::OpenAi, true, false);
    let chunk = Bytes::from(OPENAI_STREAM.as_bytes().to_vec());
    let written = meter.process(chunk.clone());
    assert_eq!(written, chunk);
    drop(written);
    assert!(
        chunk.is_unique(),
        "the meter still holds the provider's buffer"
    );
    assert_eq!(meter.delivered_text(), "Hello world");
}
