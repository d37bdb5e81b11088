//! The OpenAI side of `/v1/embeddings` on providers with embedding formats of their own
//! (Gemini, Bedrock, Vertex AI): what the client's request asks for, and the OpenAI list the
//! provider's vectors become. Each provider's module maps the request to its body and reads
//! its answer into [`Vectors`]; this module does the rest, the same way for every one.

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value};

use super::errors::protocol_error;
use super::json::{field, parse_object};
use super::ResponseTranslator;
use crate::error::GatewayError;
use crate::usage::estimate;

/// The 400 for a model that has no embeddings (a chat model, or a family the gateway does
/// not map).
pub fn unsupported(client_model: &str) -> GatewayError {
    GatewayError::invalid(
        "model",
        format!("the model `{client_model}` does not support embeddings"),
    )
}

/// What an OpenAI embeddings request asks for.
#[derive(Debug)]
pub struct Request {
    /// The texts of `input`, in order.
    pub texts: Vec<String>,
    /// `input` was an array (of one text or more), not a string.
    pub batch: bool,
    /// `encoding_format: "base64"` (the official Python SDK's default).
    pub base64: bool,
    /// `dimensions`, a positive integer when present.
    pub dimensions: Option<u64>,
    /// The whole body, for the extension fields a provider reads (`task_type`, `input_type`).
    pub body: Map<String, Value>,
}

impl Request {
    /// Reads an OpenAI embeddings body: `input` a string or an array of strings (token-array
    /// inputs are a 400: these providers embed text), `encoding_format` float or base64,
    /// `dimensions` positive. Each refusal is a 400 naming its field.
    pub fn parse(openai_body: &[u8]) -> Result<Self, GatewayError> {
        let body = parse_object(openai_body)?;
        let (texts, batch) = texts(&body)?;
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
        let dimensions = match field(&body, "dimensions") {
            None => None,
            Some(d) => Some(d.as_u64().filter(|d| *d > 0).ok_or_else(|| {
                GatewayError::invalid("dimensions", "`dimensions` must be a positive integer")
            })?),
        };
        Ok(Self {
            texts,
            batch,
            base64,
            dimensions,
            body,
        })
    }

    /// A string extension field (`task_type`, …), if the client sent one.
    pub fn extension(&self, name: &str) -> Option<&str> {
        field(&self.body, name).and_then(Value::as_str)
    }

    /// A 400 naming `input` when the request has more texts than `model` takes in one call.
    pub fn at_most(&self, limit: usize, model: &str) -> Result<(), GatewayError> {
        if self.texts.len() <= limit {
            return Ok(());
        }
        let what = if limit == 1 {
            "one text per request: send `input` as a single string".to_string()
        } else {
            format!("at most {limit} texts per request")
        };
        Err(GatewayError::invalid(
            "input",
            format!(
                "`{model}` embeds {what} ({} were sent); split the batch",
                self.texts.len()
            ),
        ))
    }
}

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

/// A provider's answer as the OpenAI list needs it: one vector per input, in input order,
/// and the input tokens when the provider counted them.
#[derive(Debug, Default, PartialEq)]
pub struct Vectors {
    pub vectors: Vec<Vec<f64>>,
    pub tokens: Option<u64>,
}

/// Reads a provider's whole (200) answer body.
pub type ReadAnswer = fn(&[u8]) -> Result<Vectors, GatewayError>;

/// The translator of a provider's embeddings answer into OpenAI's
/// `{"object":"list","data":[{"object":"embedding","index","embedding"}],"model","usage"}`:
/// `read` parses the provider's body; `counted` is the gateway's own count of the inputs'
/// tokens, used when the answer carries none. With `base64`, each vector is the base64 of
/// its values as little-endian f32, as OpenAI sends it.
pub fn to_openai(
    client_model: &str,
    read: ReadAnswer,
    counted: Option<u64>,
    base64: bool,
) -> Box<dyn ResponseTranslator> {
    Box::new(Translator {
        body: Vec::new(),
        client_model: client_model.to_string(),
        read,
        counted,
        base64,
    })
}

struct Translator {
    body: Vec<u8>,
    client_model: String,
    read: ReadAnswer,
    counted: Option<u64>,
    base64: bool,
}

#[derive(Serialize)]
struct List<'a> {
    object: &'static str,
    data: Vec<Embedding>,
    model: &'a str,
    usage: Usage,
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
struct Usage {
    prompt_tokens: u64,
    total_tokens: u64,
}

impl ResponseTranslator for Translator {
    fn push(&mut self, chunk: &[u8], _out: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.body.extend_from_slice(chunk);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let answer = (self.read)(&self.body)?;
        let data = answer
            .vectors
            .into_iter()
            .enumerate()
            .map(|(index, values)| Embedding {
                object: "embedding",
                index,
                embedding: if self.base64 {
                    Vector::Base64(encode_f32_le(&values))
                } else {
                    Vector::Floats(values)
                },
            })
            .collect();
        let tokens = answer.tokens.or(self.counted).unwrap_or(0);
        let list = List {
            object: "list",
            data,
            model: &self.client_model,
            usage: Usage {
                prompt_tokens: tokens,
                total_tokens: tokens,
            },
        };
        serde_json::to_writer(&mut *out, &list)
            .map_err(|e| protocol_error(format!("writing an embeddings answer: {e}")))
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

/// Token count of the inputs, in the encoding of the model the client named, for providers
/// whose answer carries no count (their tokenizers are not public). Up to seconds of CPU on
/// large inputs: the proxy runs it off its workers ([`crate::usage::offload`]).
pub fn count_tokens(client_model: &str, inputs: &[String]) -> u64 {
    inputs
        .iter()
        .map(|text| estimate::count(client_model, text))
        .sum()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read_two(_: &[u8]) -> Result<Vectors, GatewayError> {
        Ok(Vectors {
            vectors: vec![vec![0.013, -0.008, 0.5, 1e-7, -123.456], vec![0.25]],
            tokens: Some(7),
        })
    }

    fn read_uncounted(_: &[u8]) -> Result<Vectors, GatewayError> {
        Ok(Vectors {
            vectors: vec![vec![1.0]],
            tokens: None,
        })
    }

    fn translate(read: ReadAnswer, counted: Option<u64>, base64: bool) -> Value {
        let mut t = to_openai("my-embedder", read, counted, base64);
        let mut out = Vec::new();
        t.push(b"{}", &mut out).unwrap();
        t.finish(&mut out).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn requests_are_read_with_their_options() {
        let r = Request::parse(
            br#"{"model":"m","input":["a","b"],"encoding_format":"base64","dimensions":256,"task_type":"X"}"#,
        )
        .unwrap();
        assert_eq!(r.texts, ["a", "b"]);
        assert!(r.batch && r.base64);
        assert_eq!(r.dimensions, Some(256));
        assert_eq!(r.extension("task_type"), Some("X"));
        let r = Request::parse(br#"{"input":"hi","dimensions":null}"#).unwrap();
        assert_eq!(
            (r.texts.len(), r.batch, r.base64, r.dimensions),
            (1, false, false, None)
        );
    }

    #[test]
    fn bad_requests_are_400s_naming_their_field() {
        for (body, param) in [
            (json!({"input": [1, 2, 3]}), "input"),
            (json!({"input": [[1, 2], [3]]}), "input"),
            (json!({"input": []}), "input"),
            (json!({"input": ["a", 1]}), "input"),
            (json!({}), "input"),
            (json!({"input": "a", "dimensions": 0}), "dimensions"),
            (
                json!({"input": "a", "encoding_format": "int8"}),
                "encoding_format",
            ),
        ] {
            let e = Request::parse(body.to_string().as_bytes()).unwrap_err();
            assert_eq!(
                (e.status(), e.param.as_deref()),
                (400, Some(param)),
                "{body}"
            );
        }
    }

    #[test]
    fn a_batch_over_the_models_limit_is_a_400_naming_it() {
        let r = Request::parse(br#"{"input":["a","b","c"]}"#).unwrap();
        assert!(r.at_most(3, "m").is_ok());
        let e = r.at_most(2, "cohere.embed-english-v3").unwrap_err();
        assert_eq!((e.status(), e.param.as_deref()), (400, Some("input")));
        assert!(e.message.contains("at most 2 texts"), "{}", e.message);
        assert!(
            e.message.contains("cohere.embed-english-v3"),
            "{}",
            e.message
        );
        let e = r.at_most(1, "amazon.titan-embed-text-v2:0").unwrap_err();
        assert!(e.message.contains("one text per request"), "{}", e.message);
    }

    #[test]
    fn floats_keep_the_order_and_the_providers_count() {
        let v = translate(read_two, Some(99), false);
        assert_eq!(
            v,
            json!({"object": "list", "data": [
                {"object": "embedding", "index": 0, "embedding": [0.013, -0.008, 0.5, 1e-7, -123.456]},
                {"object": "embedding", "index": 1, "embedding": [0.25]}],
             "model": "my-embedder", "usage": {"prompt_tokens": 7, "total_tokens": 7}})
        );
        // the gateway's count stands in only where the provider gives none
        assert_eq!(
            translate(read_uncounted, Some(4), false)["usage"]["prompt_tokens"],
            4
        );
        assert_eq!(
            translate(read_uncounted, None, false)["usage"]["prompt_tokens"],
            0
        );
    }

    #[test]
    fn base64_decodes_back_to_the_same_floats() {
        let v = translate(read_two, None, true);
        let decode = |s: &Value| -> Vec<f32> {
            base64::engine::general_purpose::STANDARD
                .decode(s.as_str().unwrap())
                .unwrap()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        assert_eq!(
            decode(&v["data"][0]["embedding"]),
            [0.013_f32, -0.008, 0.5, 1e-7, -123.456]
        );
        assert_eq!(decode(&v["data"][1]["embedding"]), [0.25]);
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
