//! OpenAI embeddings: deterministic vectors, as float arrays or base64.
//!
//! Rules (tests compute expected values from them):
//! * `input`: string | string[] | int[] | int[][]; empty strings or arrays → 400 `param:"input"`.
//! * vector ([`embedding_vector`]): derived from sha256 of each input, length `dimensions`
//!   (1..=3072) or 8, values in [-1, 1).
//! * `encoding_format: "base64"` → base64 (standard alphabet, padded) of the vector as
//!   little-endian f32; `"float"` or absent → JSON numbers (the same f32 values, exact).
//! * usage: prompt_tokens = total_tokens = Σ whitespace-separated words of each text input
//!   + Σ length of each token-array input.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{param_error, Reply};

/// Embedding length when the request has no `dimensions`.
pub const DEFAULT_DIMENSIONS: usize = 8;
/// Largest accepted `dimensions` (text-embedding-3-large's size).
const MAX_DIMENSIONS: u64 = 3072;

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<Embedding>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct Embedding {
    object: &'static str,
    index: usize,
    /// A float array, or a base64 string.
    embedding: Value,
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// One embeddings input: text, or a token array.
enum Input {
    Text(String),
    Tokens(Vec<i64>),
}

impl Input {
    /// The bytes the vector is derived from: UTF-8 text, or the tokens as decimal
    /// numbers joined by `,`.
    fn seed_bytes(&self) -> Vec<u8> {
        match self {
            Input::Text(s) => s.as_bytes().to_vec(),
            Input::Tokens(t) => {
                let parts: Vec<String> = t.iter().map(i64::to_string).collect();
                parts.join(",").into_bytes()
            }
        }
    }

    fn tokens(&self) -> u64 {
        match self {
            Input::Text(s) => s.split_whitespace().count() as u64,
            Input::Tokens(t) => t.len() as u64,
        }
    }
}

/// The deterministic vector for one input: `seed = sha256(seed_bytes)`; the byte stream
/// is `sha256(seed ‖ k as u32 LE)` for k = 0, 1, …; value j is the j-th little-endian
/// u16 of that stream mapped to `(u16 − 32768) / 32768` (in [-1, 1), exact in f32).
pub fn embedding_vector(seed_bytes: &[u8], dimensions: usize) -> Vec<f32> {
    let seed = Sha256::digest(seed_bytes);
    let mut out = Vec::with_capacity(dimensions);
    let mut k: u32 = 0;
    while out.len() < dimensions {
        let mut h = Sha256::new();
        h.update(seed);
        h.update(k.to_le_bytes());
        for pair in h.finalize().chunks_exact(2) {
            if out.len() < dimensions {
                let v = u16::from_le_bytes([pair[0], pair[1]]);
                out.push((f32::from(v) - 32768.0) / 32768.0);
            }
        }
        k += 1;
    }
    out
}

fn parse_inputs(v: Option<&Value>) -> Result<Vec<Input>, Reply> {
    let bad = || {
        param_error(
            "input",
            "'$.input' is invalid. Please check the API reference: \
             https://platform.openai.com/docs/api-reference.",
            None,
        )
    };
    let tokens = |a: &[Value]| a.iter().map(Value::as_i64).collect::<Option<Vec<i64>>>();
    match v {
        None | Some(Value::Null) => Err(param_error(
            "input",
            "Missing required parameter: 'input'.",
            Some("missing_required_parameter"),
        )),
        Some(Value::String(s)) if !s.is_empty() => Ok(vec![Input::Text(s.clone())]),
        Some(Value::Array(items)) if !items.is_empty() => {
            let texts: Option<Vec<String>> = items
                .iter()
                .map(|i| i.as_str().filter(|s| !s.is_empty()).map(str::to_string))
                .collect();
            if let Some(texts) = texts {
                return Ok(texts.into_iter().map(Input::Text).collect());
            }
            if let Some(t) = tokens(items) {
                return Ok(vec![Input::Tokens(t)]);
            }
            items
                .iter()
                .map(|i| match i.as_array().and_then(|a| tokens(a)) {
                    Some(t) if !t.is_empty() => Ok(Input::Tokens(t)),
                    _ => Err(bad()),
                })
                .collect()
        }
        _ => Err(bad()),
    }
}

/// `POST …/embeddings`, per the rules in the module doc.
pub fn embeddings_reply(req: &Value) -> Reply {
    let Some(model) = req.get("model").and_then(Value::as_str) else {
        return param_error("model", "you must provide a model parameter", None);
    };
    let inputs = match parse_inputs(req.get("input")) {
        Ok(i) => i,
        Err(reply) => return reply,
    };
    let dims = match req.get("dimensions") {
        None | Some(Value::Null) => DEFAULT_DIMENSIONS,
        Some(v) => match v.as_u64().filter(|d| (1..=MAX_DIMENSIONS).contains(d)) {
            Some(d) => usize::try_from(d).unwrap_or(DEFAULT_DIMENSIONS),
            None => return param_error("dimensions", "Invalid 'dimensions'.", None),
        },
    };
    let base64 = match req.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(v) if v.as_str() == Some("float") => false,
        Some(v) if v.as_str() == Some("base64") => true,
        Some(_) => {
            let msg = "Invalid 'encoding_format': expected 'float' or 'base64'.";
            return param_error("encoding_format", msg, None);
        }
    };
    let data = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let vector = embedding_vector(&input.seed_bytes(), dims);
            let embedding = if base64 {
                let raw: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
                Value::String(STANDARD.encode(raw))
            } else {
                Value::from(vector.iter().map(|f| f64::from(*f)).collect::<Vec<f64>>())
            };
            Embedding {
                object: "embedding",
                index,
                embedding,
            }
        })
        .collect();
    let tokens = inputs.iter().map(Input::tokens).sum();
    let body = EmbeddingList {
        object: "list",
        data,
        model,
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    Reply::json(200, &body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::ReplyBody;
    use serde_json::json;

    fn body(reply: &Reply) -> Value {
        match &reply.body {
            ReplyBody::Full { bytes, .. } => serde_json::from_slice(bytes).unwrap(),
            ReplyBody::Stream { .. } => panic!("expected JSON"),
        }
    }

    fn floats(v: &Value) -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_f64().unwrap())
            .collect()
    }

    #[test]
    fn vectors_are_deterministic_and_bounded() {
        let a = embedding_vector(b"hello", 40);
        assert_eq!(a, embedding_vector(b"hello", 40));
        assert_ne!(a, embedding_vector(b"hellp", 40));
        assert_eq!(a[..8], embedding_vector(b"hello", 8)[..]);
        assert!(a.iter().all(|f| (-1.0..1.0).contains(f)));
    }

    #[test]
    fn float_answer_shape_and_usage() {
        let v = body(&embeddings_reply(
            &json!({"model": "e", "input": ["a b", "c"]}),
        ));
        assert_eq!(v["object"], "list");
        assert_eq!(v["model"], "e");
        assert_eq!(v["usage"], json!({"prompt_tokens": 3, "total_tokens": 3}));
        assert_eq!(v["data"][1]["index"], 1);
        assert_eq!(v["data"][1]["object"], "embedding");
        let got = floats(&v["data"][0]["embedding"]);
        let want: Vec<f64> = embedding_vector(b"a b", 8)
            .iter()
            .map(|f| f64::from(*f))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn base64_decodes_to_the_same_floats() {
        let req = json!({"model": "e", "input": "hello world", "dimensions": 5});
        let plain = body(&embeddings_reply(&req));
        let mut req64 = req.clone();
        req64["encoding_format"] = json!("base64");
        let b64 = body(&embeddings_reply(&req64));
        let raw = STANDARD
            .decode(b64["data"][0]["embedding"].as_str().unwrap())
            .unwrap();
        assert_eq!(raw.len(), 5 * 4);
        let decoded: Vec<f64> = raw
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect();
        assert_eq!(decoded, floats(&plain["data"][0]["embedding"]));
    }

    #[test]
    fn token_inputs() {
        let one = body(&embeddings_reply(
            &json!({"model": "e", "input": [1, 2, 3]}),
        ));
        let many = body(&embeddings_reply(
            &json!({"model": "e", "input": [[1, 2, 3], [4]]}),
        ));
        assert_eq!(one["usage"]["prompt_tokens"], 3);
        assert_eq!(many["usage"]["prompt_tokens"], 4);
        assert_eq!(one["data"][0], many["data"][0]);
        assert_eq!(many["data"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn bad_inputs_are_400() {
        let cases = [
            (json!({"model": "e"}), "input"),
            (json!({"model": "e", "input": ""}), "input"),
            (json!({"model": "e", "input": []}), "input"),
            (json!({"model": "e", "input": [1, "a"]}), "input"),
            (json!({"model": "e", "input": [[]]}), "input"),
            (
                json!({"model": "e", "input": "x", "dimensions": 0}),
                "dimensions",
            ),
            (
                json!({"model": "e", "input": "x", "encoding_format": "hex"}),
                "encoding_format",
            ),
            (json!({"input": "x"}), "model"),
        ];
        for (req, param) in cases {
            let reply = embeddings_reply(&req);
            assert_eq!(reply.status, 400, "{req}");
            assert_eq!(body(&reply)["error"]["param"], param, "{req}");
        }
    }
}
