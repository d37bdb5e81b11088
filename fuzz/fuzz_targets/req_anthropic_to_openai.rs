//! Anthropic Messages request → OpenAI chat request (`anthropic::to_openai_request`) on
//! arbitrary bytes, for a chat model and an OpenAI reasoning model (thinking is mapped only
//! for the latter); an accepted body then goes on to Gemini (`gemini::to_gemini_request`), as
//! for an Anthropic client on a Gemini model.
//!
//! Invariants: no panic; an accepted body gives a JSON object whose `model` is the upstream
//! model; the Gemini body built from it, when accepted, is a JSON object.
#![no_main]

use cheapai_gateway::providers::anthropic::to_openai_request;
use cheapai_gateway::providers::gemini::to_gemini_request;
use cheapai_gateway_fuzz::assert_json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for model in ["gpt-4o", "openai/o3-mini"] {
        let Ok(out) = to_openai_request(data, model) else {
            continue;
        };
        let v = assert_json("to_openai_request", &out);
        assert!(v.is_object(), "to_openai_request: not an object");
        assert_eq!(v["model"], model, "to_openai_request: model");
        if let Ok((gemini, _stream)) = to_gemini_request(&out) {
            let g = assert_json("to_openai_request → to_gemini_request", &gemini);
            assert!(g.is_object(), "to_gemini_request: not an object");
        }
    }
});
