//! `request::peek` on arbitrary bytes, for every endpoint that takes a body (and the ones
//! that do not, which must still not panic).
//!
//! Invariants: no panic; when `peek` accepts a body that is JSON (as `serde_json` reads it:
//! `peek` skips unknown fields without checking their escapes, so a lone surrogate such as
//! `"\ud800"` there passes it), that body is a JSON object (the body is forwarded as it came,
//! so anything else would reach a provider), and the rewrites `with_model` /
//! `for_openai_upstream` are JSON objects naming the new model, the latter with
//! `stream_options.include_usage: true` on a stream whose client did not ask for usage.
#![no_main]

use bytes::Bytes;
use cheapai_gateway::endpoint::Endpoint;
use cheapai_gateway::request::peek;
use cheapai_gateway_fuzz::assert_json;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Upstream names: plain, one needing escapes, and a non-ASCII one.
const NAMES: &[&str] = &["gpt-4o-2024-08-06", "a\"b\\c\u{1}/\u{2028}", "模型"];

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    for endpoint in [
        Endpoint::ChatCompletions,
        Endpoint::Embeddings,
        Endpoint::Responses,
        Endpoint::Messages,
        Endpoint::CountTokens,
        Endpoint::Models,
        Endpoint::Root,
    ] {
        let Ok(peeked) = peek(&endpoint, &body) else {
            continue;
        };
        assert!(!peeked.model.is_empty());
        // The rewrites must not panic whatever the body; they are checked on JSON bodies.
        let valid = match serde_json::from_slice::<Value>(&body) {
            Ok(original) => {
                assert!(
                    original.is_object(),
                    "peek accepted a body that is not a JSON object: {:?}",
                    String::from_utf8_lossy(&body)
                );
                true
            }
            Err(_) => false,
        };
        for name in NAMES.iter().copied().chain([peeked.model.as_str()]) {
            let renamed = peeked.with_model(&body, name);
            let upstream = peeked.for_openai_upstream(&body, name);
            if !valid {
                continue;
            }
            let v = assert_json("with_model", &renamed);
            assert_eq!(
                v["model"],
                name,
                "with_model: {:?}",
                String::from_utf8_lossy(&renamed)
            );
            let v = assert_json("for_openai_upstream", &upstream);
            assert_eq!(
                v["model"],
                name,
                "for_openai_upstream: {:?}",
                String::from_utf8_lossy(&upstream)
            );
            if peeked.stream && !peeked.include_usage {
                assert_eq!(
                    v["stream_options"]["include_usage"],
                    Value::Bool(true),
                    "for_openai_upstream did not ask for usage: {:?}",
                    String::from_utf8_lossy(&upstream)
                );
            }
        }
    }
});
