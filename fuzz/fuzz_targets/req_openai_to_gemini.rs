//! OpenAI chat request → Gemini generateContent request (`gemini::to_gemini_request`) on
//! arbitrary bytes.
//!
//! Invariants: no panic; when it accepts the body, the output is a JSON object, and the
//! stream flag it returns is the body's `stream`.
#![no_main]

use cheapai_gateway::providers::gemini::to_gemini_request;
use cheapai_gateway_fuzz::assert_json;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    if let Ok((out, stream)) = to_gemini_request(data) {
        let v = assert_json("to_gemini_request", &out);
        assert!(v.is_object(), "to_gemini_request: not an object");
        let input: Value = serde_json::from_slice(data).unwrap_or(Value::Null);
        assert_eq!(
            stream,
            input["stream"] == true,
            "to_gemini_request: stream flag"
        );
    }
});
