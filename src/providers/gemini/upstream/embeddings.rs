//! OpenAI `/v1/embeddings` ↔ Gemini `embedContent` / `batchEmbedContents` (docs/translation.md C4).
//!
//! Dropped: `user`. Extension fields accepted: `task_type` (or `taskType`) → `taskType`. Gemini
//! reports no token counts, so `usage` is counted locally in the encoding of the model the client
//! named (cl100k for OpenAI's embedding names, o200k otherwise; see `usage::estimate`): an
//! estimate, not Gemini's own count.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{embedded_error, protocol_error};
use crate::error::GatewayError;
use crate::providers::json::{field, parse_object};
use crate::providers::ResponseTranslator;
use crate::usage::estimate;

/// The texts of `input`: a string → one, an array of strings → many (`true`).
fn texts(body: &Map<String, Value>) -> Result<(Vec<String>, bool), GatewayError> {
    let bad = |msg: &str| GatewayError::invalid("input", msg);
    match field(body, "input") {
        Some(Value::String(s)) => Ok((vec![s.clone()], false)),
        Some(Value::Array(items)) if items.is_empty() => Err(bad("`input` must not be empty")),
        Some(Value::Array(items)) => {
            let texts = items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>();
            match texts {
                Some(texts) => Ok((texts, true)),
                None if items.iter().all(|i| i.is_number() || i.is_array()) => Err(bad(
                    "token-array inputs cannot be sent to this model: it embeds text; send strings",
                )),
                None => Err(bad("`input` must be a string or an array of strings")),
            }
        }
        _ => Err(bad("`input` must be a string or an array of strings")),
    }
}

/// The input texts and whether the client asked for `encoding_format: "base64"`, for
/// [`to_openai`] (it counts the texts' tokens and encodes the vectors).
pub fn inputs(openai_body: &[u8]) -> Result<(Vec<String>, bool), GatewayError> {
    let body = parse_object(openai_body)?;
    let base64 = match field(&body, "encoding_format") {
        None => false,
        Some(Value::String(f)) if f == "float" => false,
        Some(Value::String(f)) if f == "base64" => true,
        Some(_) => {
            return Err(GatewayError::invalid(
                "encoding_format",
                "`encoding_format` must be float or base64",
            ))
        }
    };
    Ok((texts(&body)?.0, base64))
}

/// OpenAI embeddings request → Gemini body, and whether it is a batch: a string `input` →
/// an `embedContent` body; an array of strings → a `batchEmbedContents` body whose requests
/// each carry `"model": "models/{upstream_model}"` (Gemini requires it). Token-array inputs
/// are a 400 naming `input` (Gemini embeds text only). `dimensions` →
/// `outputDimensionality`.
pub fn from_openai(
    openai_body: &[u8],
    upstream_model: &str,
) -> Result<(Vec<u8>, bool), GatewayError> {
    let body = parse_object(openai_body)?;
    let (texts, batch) = texts(&body)?;
    let mut options = Map::new();
    if let Some(d) = field(&body, "dimensions") {
        let d = d.as_u64().filter(|d| *d > 0).ok_or_else(|| {
            GatewayError::invalid("dimensions", "`dimensions` must be a positive integer")
        })?;
        options.insert("outputDimensionality".into(), d.into());
    }
    if let Some(task) = field(&body, "task_type").or_else(|| field(&body, "taskType")) {
        options.insert("taskType".into(), task.clone());
    }
    let request = |text: &str| {
        let mut r = Map::new();
        if batch {
            r.insert("model".into(), format!("models/{upstream_model}").into());
        }
        r.insert("content".into(), json!({ "parts": [{ "text": text }] }));
        r.extend(options.clone());
        Value::Object(r)
    };
    let out = if batch {
        json!({ "requests": texts.iter().map(|t| request(t)).collect::<Vec<_>>() })
    } else {
        request(texts.first().map(String::as_str).unwrap_or(""))
    };
    let bytes = serde_json::to_vec(&out)
        .map_err(|e| GatewayError::invalid("input", format!("cannot encode request: {e}")))?;
    Ok((bytes, batch))
}

/// Translator (non-streaming) for an `embedContent` / `batchEmbedContents` answer → OpenAI
/// `{"object":"list","data":[{"object":"embedding","index","embedding"}],"model","usage"}`.
///
/// With `base64` (the client sent `encoding_format: "base64"`, which the official Python SDK
/// does by default), each embedding is the base64 of its values as little-endian f32, as OpenAI
/// sends it. `usage.prompt_tokens` = `total_tokens` = `prompt_tokens`, counted beforehand with
/// [`count_tokens`] (Gemini returns none).
pub fn to_openai(
    client_model: &str,
    prompt_tokens: u64,
    base64: bool,
) -> Box<dyn ResponseTranslator> {
    Box::new(EmbeddingsTranslator {
        body: Vec::new(),
        client_model: client_model.to_string(),
        prompt_tokens,
        base64,
    })
}

#[derive(Deserialize)]
struct EmbedResponse {
    embedding: Option<Values>,
    embeddings: Option<Vec<Values>>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Values {
    values: Vec<f64>,
}

#[derive(Serialize)]
struct List<'a> {
    object: &'static str,
    data: Vec<Embedding>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct Embedding {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Floats(Vec<f64>),
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

struct EmbeddingsTranslator {
    body: Vec<u8>,
    client_model: String,
    prompt_tokens: u64,
    base64: bool,
}

impl ResponseTranslator for EmbeddingsTranslator {
    fn push(&mut self, chunk: &[u8], _out: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.body.extend_from_slice(chunk);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let response: EmbedResponse = serde_json::from_slice(&self.body)
            .map_err(|e| protocol_error("an embeddings answer", e))?;
        if let Some(error) = &response.error {
            return Err(embedded_error(error, &self.body));
        }
        let vectors = match (response.embedding, response.embeddings) {
            (Some(one), _) => vec![one],
            (None, Some(many)) => many,
            (None, None) => {
                return Err(protocol_error(
                    "an embeddings answer",
                    "no `embedding` or `embeddings`",
                ))
            }
        };
        let data = vectors
            .into_iter()
            .enumerate()
            .map(|(index, v)| Embedding {
                object: "embedding",
                index,
                embedding: if self.base64 {
                    Vector::Base64(encode_f32_le(&v.values))
                } else {
                    Vector::Floats(v.values)
                },
            })
            .collect();
        let tokens = self.prompt_tokens;
        let list = List {
            object: "list",
            data,
            model: &self.client_model,
            usage: EmbeddingUsage {
                prompt_tokens: tokens,
                total_tokens: tokens,
            },
        };
        serde_json::to_writer(&mut *out, &list)
            .map_err(|e| protocol_error("an embeddings answer", e))
    }
}

/// OpenAI's base64 embedding format: the vector as little-endian f32, base64-encoded.
fn encode_f32_le(values: &[f64]) -> String {
    let bytes: Vec<u8> = values
        .iter()
        .flat_map(|v| (*v as f32).to_le_bytes())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Token count of the inputs, in the encoding of the model the client named (Gemini's answer
/// carries no count, and its tokenizer is not public). Up to seconds of CPU on large inputs:
/// the proxy runs it off its workers ([`crate::usage::offload`]).
pub fn count_tokens(client_model: &str, inputs: &[String]) -> u64 {
    inputs
        .iter()
        .map(|text| estimate::count(client_model, text))
        .sum()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn request(body: Value) -> (Value, bool) {
        let (bytes, batch) =
            from_openai(body.to_string().as_bytes(), "gemini-embedding-001").unwrap();
        (serde_json::from_slice(&bytes).unwrap(), batch)
    }

    fn translate(answer: &str, inputs: &[&str], base64: bool) -> Value {
        let inputs: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
        let tokens = count_tokens("my-embedder", &inputs);
        let mut t = to_openai("my-embedder", tokens, base64);
        let mut out = Vec::new();
        for chunk in answer.as_bytes().chunks(5) {
            t.push(chunk, &mut out).unwrap();
        }
        t.finish(&mut out).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn string_input_is_embed_content() {
        let (v, batch) = request(
            json!({"model": "e", "input": "Hello world", "dimensions": 768,
                                        "encoding_format": "float", "user": "u"}),
        );
        assert!(!batch);
        assert_eq!(
            v,
            json!({"content": {"parts": [{"text": "Hello world"}]}, "outputDimensionality": 768})
        );
    }

    #[test]
    fn string_array_is_batch_embed_contents() {
        let (v, batch) = request(json!({"input": ["a", "b"], "task_type": "RETRIEVAL_DOCUMENT"}));
        assert!(batch);
        assert_eq!(
            v,
            json!({"requests": [
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}, "taskType": "RETRIEVAL_DOCUMENT"},
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}, "taskType": "RETRIEVAL_DOCUMENT"}]})
        );
    }

    #[test]
    fn bad_inputs_are_400s() {
        for (body, param) in [
            (json!({"input": [1, 2, 3]}), "input"),
            (json!({"input": [[1, 2], [3]]}), "input"),
            (json!({"input": []}), "input"),
            (json!({"input": ["a", 1]}), "input"),
            (json!({}), "input"),
            (json!({"input": "a", "dimensions": 0}), "dimensions"),
        ] {
            let e = from_openai(body.to_string().as_bytes(), "m").unwrap_err();
            assert_eq!(
                (e.status(), e.param.as_deref()),
                (400, Some(param)),
                "{body}"
            );
        }
        let e = inputs(br#"{"input":"a","encoding_format":"int8"}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("encoding_format"));
    }

    #[test]
    fn embedding_inputs_reads_texts_and_encoding() {
        assert_eq!(
            inputs(br#"{"input":"hi","encoding_format":"base64"}"#).unwrap(),
            (vec!["hi".to_string()], true)
        );
        assert_eq!(
            inputs(br#"{"input":["a","b"]}"#).unwrap(),
            (vec!["a".to_string(), "b".to_string()], false)
        );
    }

    #[test]
    fn single_answer_becomes_a_list() {
        // Google pretty-prints its JSON.
        let answer = "{\n  \"embedding\": {\n    \"values\": [\n      0.013,\n      -0.008,\n      0.5\n    ]\n  }\n}\n";
        let v = translate(answer, &["Hello world"], false);
        assert_eq!(
            v,
            json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.013, -0.008, 0.5]}],
                   "model": "my-embedder", "usage": {"prompt_tokens": 2, "total_tokens": 2}})
        );
    }

    #[test]
    fn batch_answer_keeps_the_order() {
        let answer = r#"{"embeddings": [{"values": [1.0, 2.0]}, {"values": [3.0, 4.0]}]}"#;
        let v = translate(answer, &["a", "bb cc"], false);
        assert_eq!(
            v["data"][0],
            json!({"object": "embedding", "index": 0, "embedding": [1.0, 2.0]})
        );
        assert_eq!(
            v["data"][1],
            json!({"object": "embedding", "index": 1, "embedding": [3.0, 4.0]})
        );
        assert_eq!(v["usage"]["prompt_tokens"], 3);
    }

    #[test]
    fn base64_decodes_back_to_the_same_floats() {
        let floats = [0.013_f32, -0.008, 0.5, 1e-7, -123.456];
        let answer = json!({"embeddings": [{"values": floats}, {"values": [0.25]}]}).to_string();
        let v = translate(&answer, &["a", "b"], true);
        let decode = |s: &Value| -> Vec<f32> {
            base64::engine::general_purpose::STANDARD
                .decode(s.as_str().unwrap())
                .unwrap()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        assert_eq!(decode(&v["data"][0]["embedding"]), floats);
        assert_eq!(decode(&v["data"][1]["embedding"]), [0.25]);
    }

    #[test]
    fn error_and_garbage_answers_are_errors() {
        let mut t = to_openai("m", 1, false);
        let mut out = Vec::new();
        t.push(
            br#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}"#,
            &mut out,
        )
        .unwrap();
        assert_eq!(t.finish(&mut out).unwrap_err().status(), 429);
        let mut t = to_openai("m", 1, false);
        t.push(b"{}", &mut out).unwrap();
        assert_eq!(t.finish(&mut out).unwrap_err().status(), 502);
        assert!(out.is_empty());
    }

    #[test]
    fn tokens_are_counted_in_the_client_models_encoding() {
        // The reference tokenizer's counts: 15 in cl100k (OpenAI's embedding models), 11 in
        // o200k (the approximation for the rest); "" is none.
        let inputs = [
            "日本語のテキスト、そして中文文本。".to_string(),
            String::new(),
        ];
        assert_eq!(count_tokens("text-embedding-3-small", &inputs), 15);
        assert_eq!(count_tokens("gemini-embedding-001", &inputs), 11);
    }
}
