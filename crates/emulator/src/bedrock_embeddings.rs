//! Bedrock's embedding models on InvokeModel (`POST …/model/{modelId}/invoke`, behind the
//! same SigV4 check and faults as Bedrock's other paths), as AWS documents them:
//!
//! | model id | body | answer |
//! |---|---|---|
//! | `amazon.titan-embed-text-v2:0` | `{"inputText", "dimensions"?, "normalize"?, "embeddingTypes"?}` | `{"embedding", "embeddingsByType": {"float"}, "inputTextTokenCount"}` |
//! | `cohere.embed-english-v3`, `cohere.embed-multilingual-v3` | `{"texts", "input_type", "truncate"?, "embedding_types"?}` | `{"id", "texts", "embeddings", "response_type"}` |
//!
//! Vectors are the OpenAI side's deterministic ones ([`embedding_vector`] of the text's UTF-8
//! bytes): Titan's of length `dimensions` (256, 512 or 1024, the default), divided by their
//! Euclidean norm unless `"normalize": false`; Cohere's of length 1024. Cohere answers
//! `"response_type": "embeddings_floats"` with a list of float vectors when no
//! `embedding_types` is sent, else `"embeddings_by_type"` with one list per asked type
//! (`float`; `int8`/`uint8` the floats scaled to the type's range; `binary`/`ubinary` the
//! signs packed eight to a byte). Tokens: whitespace-separated words per text, in Titan's
//! `inputTextTokenCount` and, for both, the `X-Amzn-Bedrock-Input-Token-Count` header.
//!
//! Validation, each Bedrock's 400 `ValidationException` (`Malformed input request: …`):
//! a body that is not a JSON object, keys the model does not take, Titan without a string
//! `inputText` or with other `dimensions`; Cohere without `texts` or with more than 96 of
//! them, a text over 2,048 characters, a missing or unknown `input_type`, an unknown
//! embedding type. A stream (`invoke-with-response-stream`) is refused: Bedrock streams no
//! embeddings.

use serde_json::{json, Map, Value};

use super::bedrock;
use super::openai::embedding_vector;
use super::{Reply, Request};

const TITAN: &str = "amazon.titan-embed-text-v2:0";
const TITAN_DIMENSIONS: [u64; 3] = [256, 512, 1024];
const COHERE_DIMENSIONS: usize = 1024;
const COHERE_MAX_TEXTS: usize = 96;
const COHERE_MAX_CHARS: usize = 2048;
const COHERE_INPUT_TYPES: [&str; 4] = [
    "search_document",
    "search_query",
    "classification",
    "clustering",
];
const COHERE_TYPES: [&str; 5] = ["float", "int8", "uint8", "binary", "ubinary"];

/// The answer to an InvokeModel request on an embedding model, or None for other models.
pub fn route(req: &Request) -> Option<Reply> {
    let (model, operation) = req
        .path
        .split_once("/model/")
        .and_then(|(_, rest)| rest.rsplit_once('/'))?;
    let model = model.replace("%3A", ":").replace("%3a", ":");
    let cohere = matches!(
        model.as_str(),
        "cohere.embed-english-v3" | "cohere.embed-multilingual-v3"
    );
    if model != TITAN && !cohere {
        return None;
    }
    if operation != "invoke" {
        return Some(invalid("The model is unsupported for streaming."));
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(req.body) else {
        return Some(invalid(
            "Malformed input request, please reformat your input and try again.",
        ));
    };
    let answer = if cohere {
        cohere_reply(&body)
    } else {
        titan_reply(&body)
    };
    Some(answer.unwrap_or_else(|message| invalid(&message)))
}

/// Bedrock's 400 `ValidationException` with `message`.
fn invalid(message: &str) -> Reply {
    bedrock::fault_reply(400, Some(&json!({ "message": message }).to_string()))
}

/// Bedrock's wording for a body its schema refuses.
fn malformed(detail: &str) -> String {
    format!("Malformed input request: {detail}, please reformat your input and try again.")
}

fn extraneous(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(malformed(&format!(
            "#: extraneous key [{key}] is not permitted"
        ))),
        None => Ok(()),
    }
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// A JSON answer with Bedrock's input token count header.
fn answer(body: &Value, tokens: u64) -> Reply {
    let mut reply = Reply::json(200, body);
    reply
        .headers
        .push(("X-Amzn-Bedrock-Input-Token-Count", tokens.to_string()));
    reply
}

fn titan_reply(body: &Map<String, Value>) -> Result<Reply, String> {
    extraneous(
        body,
        &["inputText", "dimensions", "normalize", "embeddingTypes"],
    )?;
    let Some(text) = body.get("inputText").and_then(Value::as_str) else {
        return Err(malformed("#: required key [inputText] not found"));
    };
    let dimensions = match body.get("dimensions") {
        None => 1024,
        Some(d) => d
            .as_u64()
            .filter(|d| TITAN_DIMENSIONS.contains(d))
            .ok_or_else(|| malformed(&format!("#/dimensions: {d} is not a valid enum value")))?,
    };
    let normalize = match body.get("normalize") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(malformed(&format!(
                "#/normalize: expected type: Boolean, found: {}",
                type_name(v)
            )))
        }
    };
    let mut vector = embedding_vector(text.as_bytes(), usize::try_from(dimensions).unwrap_or(1024));
    if normalize {
        normalized(&mut vector);
    }
    let tokens = words(text);
    Ok(answer(
        &json!({"embedding": vector, "embeddingsByType": {"float": vector},
                "inputTextTokenCount": tokens}),
        tokens,
    ))
}

/// Divides `vector` by its Euclidean norm (f32 arithmetic, as tests recompute it).
pub fn normalized(vector: &mut [f32]) {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        for v in vector.iter_mut() {
            *v /= norm;
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "Null",
        Value::Bool(_) => "Boolean",
        Value::Number(_) => "Number",
        Value::String(_) => "String",
        Value::Array(_) => "JSONArray",
        Value::Object(_) => "JSONObject",
    }
}

fn cohere_reply(body: &Map<String, Value>) -> Result<Reply, String> {
    extraneous(
        body,
        &[
            "texts",
            "images",
            "input_type",
            "truncate",
            "embedding_types",
        ],
    )?;
    let Some(texts) = body.get("texts").and_then(Value::as_array) else {
        return Err(malformed("#: required key [texts] not found"));
    };
    if texts.len() > COHERE_MAX_TEXTS {
        return Err(malformed(&format!(
            "#/texts: expected maxItems: {COHERE_MAX_TEXTS}, actual: {}",
            texts.len()
        )));
    }
    let mut strings = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        let Some(text) = text.as_str() else {
            return Err(malformed(&format!(
                "#/texts/{i}: expected type: String, found: {}",
                type_name(text)
            )));
        };
        let chars = text.chars().count();
        if chars > COHERE_MAX_CHARS {
            return Err(malformed(&format!(
                "#/texts/{i}: expected maxLength: {COHERE_MAX_CHARS}, actual: {chars}"
            )));
        }
        strings.push(text);
    }
    match body.get("input_type") {
        None => return Err(malformed("#: required key [input_type] not found")),
        Some(Value::String(t)) if COHERE_INPUT_TYPES.contains(&t.as_str()) => {}
        Some(t) => {
            return Err(malformed(&format!(
                "#/input_type: {t} is not a valid enum value"
            )))
        }
    }
    let vectors: Vec<Vec<f32>> = strings
        .iter()
        .map(|t| embedding_vector(t.as_bytes(), COHERE_DIMENSIONS))
        .collect();
    let tokens = strings.iter().map(|t| words(t)).sum();
    let id = uuid::Uuid::new_v4().to_string();
    let Some(types) = body.get("embedding_types") else {
        return Ok(answer(
            &json!({"id": id, "texts": strings, "embeddings": vectors,
                    "response_type": "embeddings_floats"}),
            tokens,
        ));
    };
    let mut by_type = Map::new();
    for kind in types.as_array().into_iter().flatten() {
        let name = kind.as_str().filter(|k| COHERE_TYPES.contains(k));
        let Some(name) = name else {
            return Err(malformed(&format!(
                "#/embedding_types: {kind} is not a valid enum value"
            )));
        };
        let lists: Vec<Value> = vectors.iter().map(|v| typed(v, name)).collect();
        by_type.insert(name.to_string(), Value::Array(lists));
    }
    Ok(answer(
        &json!({"id": id, "texts": strings, "embeddings": by_type,
                "response_type": "embeddings_by_type"}),
        tokens,
    ))
}

/// One vector as Cohere's embedding type `name`.
fn typed(vector: &[f32], name: &str) -> Value {
    let packed = |v: &[f32]| -> Vec<u8> {
        v.chunks(8)
            .map(|bits| {
                bits.iter()
                    .enumerate()
                    .fold(0u8, |b, (i, x)| if *x > 0.0 { b | (0x80 >> i) } else { b })
            })
            .collect()
    };
    match name {
        "int8" => json!(vector
            .iter()
            .map(|v| (v * 127.0).round() as i8)
            .collect::<Vec<_>>()),
        "uint8" => json!(vector
            .iter()
            .map(|v| ((v + 1.0) * 127.5).round() as u8)
            .collect::<Vec<_>>()),
        "binary" => json!(packed(vector)
            .into_iter()
            .map(|b| (i16::from(b) - 128) as i8)
            .collect::<Vec<_>>()),
        "ubinary" => json!(packed(vector)),
        _ => json!(vector),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use http::HeaderMap;

    use super::*;
    use crate::ReplyBody;

    /// An answer's status, JSON body and headers.
    type Answer = (u16, Value, Vec<(&'static str, String)>);

    fn call(model_path: &str, body: Value) -> Option<Answer> {
        let headers = HeaderMap::new();
        let bytes = body.to_string();
        let path = format!("/model/{model_path}");
        let req = Request {
            method: "POST",
            path: &path,
            query: "",
            headers: &headers,
            body: bytes.as_bytes(),
        };
        let reply = route(&req)?;
        let ReplyBody::Full { bytes, .. } = &reply.body else {
            panic!("a stream")
        };
        Some((
            reply.status,
            serde_json::from_slice(bytes).unwrap(),
            reply.headers.clone(),
        ))
    }

    fn floats(v: &Value) -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    }

    #[test]
    fn titan_answers_normalized_vectors_of_the_asked_size() {
        let (status, v, headers) = call(
            "amazon.titan-embed-text-v2%3A0/invoke",
            json!({"inputText": "Hello big world", "dimensions": 256, "normalize": true}),
        )
        .unwrap();
        assert_eq!(status, 200, "{v}");
        let mut expected = embedding_vector(b"Hello big world", 256);
        normalized(&mut expected);
        assert_eq!(floats(&v["embedding"]), expected);
        assert_eq!(floats(&v["embeddingsByType"]["float"]), expected);
        assert_eq!(v["inputTextTokenCount"], 3);
        assert!(headers.contains(&("X-Amzn-Bedrock-Input-Token-Count", "3".into())));
        let (_, v, _) = call(
            "amazon.titan-embed-text-v2:0/invoke",
            json!({"inputText": "x", "normalize": false}),
        )
        .unwrap();
        assert_eq!(floats(&v["embedding"]), embedding_vector(b"x", 1024));
    }

    #[test]
    fn titans_documented_refusals() {
        for (body, says) in [
            (
                json!({"inputText": "x", "dimensions": 300}),
                "#/dimensions: 300",
            ),
            (json!({"dimensions": 256}), "required key [inputText]"),
            (
                json!({"inputText": "x", "texts": ["x"]}),
                "extraneous key [texts]",
            ),
            (json!({"inputText": "x", "normalize": "yes"}), "#/normalize"),
        ] {
            let (status, v, headers) =
                call("amazon.titan-embed-text-v2%3A0/invoke", body.clone()).unwrap();
            assert_eq!(status, 400, "{body}");
            assert!(v["message"].as_str().unwrap().contains(says), "{v}");
            assert!(headers
                .iter()
                .any(|(n, t)| *n == "x-amzn-ErrorType" && t.starts_with("ValidationException")));
        }
        let (status, _, _) = call(
            "amazon.titan-embed-text-v2%3A0/invoke-with-response-stream",
            json!({"inputText": "x"}),
        )
        .unwrap();
        assert_eq!(status, 400);
    }

    #[test]
    fn cohere_answers_by_type_or_as_floats() {
        let (status, v, headers) = call(
            "cohere.embed-english-v3/invoke",
            json!({"texts": ["a b", "c"], "input_type": "search_document",
                   "embedding_types": ["float", "int8"]}),
        )
        .unwrap();
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["response_type"], "embeddings_by_type");
        assert_eq!(v["texts"], json!(["a b", "c"]));
        assert_eq!(
            floats(&v["embeddings"]["float"][1]),
            embedding_vector(b"c", 1024)
        );
        assert_eq!(v["embeddings"]["int8"][0].as_array().unwrap().len(), 1024);
        assert!(headers.contains(&("X-Amzn-Bedrock-Input-Token-Count", "3".into())));
        let (_, v, _) = call(
            "cohere.embed-multilingual-v3/invoke",
            json!({"texts": ["a"], "input_type": "search_query"}),
        )
        .unwrap();
        assert_eq!(v["response_type"], "embeddings_floats");
        assert_eq!(floats(&v["embeddings"][0]), embedding_vector(b"a", 1024));
    }

    #[test]
    fn coheres_documented_refusals() {
        let many: Vec<String> = (0..97).map(|i| i.to_string()).collect();
        let long = "x".repeat(2049);
        for (body, says) in [
            (
                json!({"texts": many, "input_type": "search_document"}),
                "maxItems: 96, actual: 97",
            ),
            (
                json!({"texts": [long], "input_type": "search_document"}),
                "maxLength: 2048",
            ),
            (json!({"texts": ["a"]}), "required key [input_type]"),
            (
                json!({"texts": ["a"], "input_type": "query"}),
                "#/input_type",
            ),
            (
                json!({"input_type": "search_query"}),
                "required key [texts]",
            ),
            (
                json!({"texts": ["a"], "input_type": "clustering", "embedding_types": ["f16"]}),
                "#/embedding_types",
            ),
            (
                json!({"texts": ["a"], "input_type": "clustering", "dimensions": 256}),
                "extraneous key [dimensions]",
            ),
        ] {
            let (status, v, _) = call("cohere.embed-english-v3/invoke", body.clone()).unwrap();
            assert_eq!(status, 400, "{body}");
            assert!(v["message"].as_str().unwrap().contains(says), "{v}");
        }
    }

    #[test]
    fn other_models_are_left_to_the_messages_route() {
        assert!(call("anthropic.claude-sonnet-4-5-v1%3A0/invoke", json!({})).is_none());
        assert!(call("amazon.titan-embed-text-v1/invoke", json!({})).is_none());
    }
}
