//! OpenAI chat request → Anthropic Messages request (`anthropic::to_anthropic_request`) on
//! arbitrary bytes.
//!
//! Invariants: no panic; when it accepts the body, the output is a JSON object whose `model`
//! is the upstream model.
#![no_main]

use cheapai_gateway::providers::anthropic::to_anthropic_request;
use cheapai_gateway_fuzz::assert_json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let model = "claude-sonnet-4-5";
    if let Ok(out) = to_anthropic_request(data, model) {
        let v = assert_json("to_anthropic_request", &out);
        assert!(v.is_object(), "to_anthropic_request: not an object");
        assert_eq!(v["model"], model, "to_anthropic_request: model");
    }
});
