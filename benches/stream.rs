//! Per-chunk cost of what the gateway does to a stream: SSE framing (passthrough), usage
//! metering (every answer), and format translation (Anthropic → OpenAI).
//!
//!     cargo bench --bench stream
//!
//! The meter's overhead per streamed chunk is `meter/openai_sse` divided by the number of
//! events in the stream (22), compared with the framing alone.

use bytes::Bytes;
use cheapai_gateway::dialect::Dialect;
use cheapai_gateway::providers::anthropic;
use cheapai_gateway::providers::chat::OpenAiWriter;
use cheapai_gateway::sse::EventFramer;
use cheapai_gateway::usage::meter::Meter;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

/// A 20-chunk OpenAI stream as a provider sends it, with the usage chunk and `[DONE]`.
fn openai_stream() -> Vec<Bytes> {
    let head = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","system_fingerprint":"fp","choices":[{"index":0,"delta":{"content":"#;
    let mut events: Vec<Bytes> = (0..20)
        .map(|i| {
            Bytes::from(format!(
                "data: {head}\" word{i}\"}},\"finish_reason\":null}}],\"usage\":null}}\n\n"
            ))
        })
        .collect();
    events.push(Bytes::from_static(
        b"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":20,\"total_tokens\":29}}\n\n",
    ));
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

fn anthropic_stream() -> Vec<Bytes> {
    let mut events = vec![Bytes::from_static(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n"),
        Bytes::from_static(b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")];
    for i in 0..20 {
        events.push(Bytes::from(format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\" word{i}\"}}}}\n\n")));
    }
    events.push(Bytes::from_static(
        b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    ));
    events.push(Bytes::from_static(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":20}}\n\n"));
    events.push(Bytes::from_static(
        b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ));
    events
}

fn bench(c: &mut Criterion) {
    let openai = openai_stream();
    let bytes: usize = openai.iter().map(Bytes::len).sum();
    let mut group = c.benchmark_group("stream_of_22_events");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("framing_only", |b| {
        b.iter(|| {
            let mut framer = EventFramer::default();
            for e in &openai {
                black_box(framer.push(e.clone()));
            }
        })
    });
    group.bench_function("framing_and_meter", |b| {
        b.iter(|| {
            let mut framer = EventFramer::default();
            let mut meter = Meter::new(Dialect::OpenAi, true, true);
            for e in &openai {
                if let Some(out) = framer.push(e.clone()) {
                    black_box(meter.process(out));
                }
            }
            black_box(meter.reported())
        })
    });
    group.bench_function("translate_anthropic_to_openai", |b| {
        let upstream = anthropic_stream();
        b.iter(|| {
            let mut t = anthropic::upstream::response::to_chat(true, "claude", OpenAiWriter);
            let mut out = Vec::new();
            for e in &upstream {
                let _ = t.push(e, &mut out);
            }
            let _ = t.finish(&mut out);
            black_box(out)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
