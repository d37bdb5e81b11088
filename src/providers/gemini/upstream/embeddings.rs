//! OpenAI `/v1/embeddings` ↔ Gemini `embedContent` / `batchEmbedContents` (docs/translation.md C4).
//!
//! Dropped: `user`. Extension fields accepted: `task_type` (or `taskType`) → `taskType`. Gemini
//! reports no token counts, so `usage` is counted locally in the encoding of the model the client
//! named (cl100k for OpenAI's embedding names, o200k otherwise; see `usage::estimate`): an
//! estimate, not Gemini's own count. The OpenAI side (inputs, the list, base64) is
//! [`crate::providers::embeddings`].

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{embedded_error, protocol_error};
use crate::error::GatewayError;
use crate::providers::embeddings::{Request, Vectors};
use crate::providers::json::field;

/// OpenAI embeddings request → Gemini body: a string `input` → an `embedContent` body; an
/// array of strings → a `batchEmbedContents` body whose requests each carry
/// `"model": "models/{upstream_model}"` (Gemini requires it). `dimensions` →
/// `outputDimensionality`.
pub fn from_openai(request: &Request, upstream_model: &str) -> Result<Vec<u8>, GatewayError> {
    let batch = request.batch;
    let mut options = Map::new();
    if let Some(d) = request.dimensions {
        options.insert("outputDimensionality".into(), d.into());
    }
    if let Some(task) =
        field(&request.body, "task_type").or_else(|| field(&request.body, "taskType"))
    {
        options.insert("taskType".into(), task.clone());
    }
    let one = |text: &str| {
        let mut r = Map::new();
        if batch {
            r.insert("model".into(), format!("models/{upstream_model}").into());
        }
        r.insert("content".into(), json!({ "parts": [{ "text": text }] }));
        r.extend(options.clone());
        Value::Object(r)
    };
    let out = if batch {
        json!({ "requests": request.texts.iter().map(|t| one(t)).collect::<Vec<_>>() })
    } else {
        one(request.texts.first().map(String::as_str).unwrap_or(""))
    };
    serde_json::to_vec(&out)
        .map_err(|e| GatewayError::invalid("input", format!("cannot encode request: {e}")))
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

/// An `embedContent` / `batchEmbedContents` answer's vectors (Gemini counts no tokens).
pub fn read_answer(body: &[u8]) -> Result<Vectors, GatewayError> {
    let response: EmbedResponse =
        serde_json::from_slice(body).map_err(|e| protocol_error("an embeddings answer", e))?;
    if let Some(error) = &response.error {
        return Err(embedded_error(error, body));
    }
    let vectors = match (response.embedding, response.embeddings) {
        (Some(one), _) => vec![one.values],
        (None, Some(many)) => many.into_iter().map(|v| v.values).collect(),
        (None, None) => {
            return Err(protocol_error(
                "an embeddings answer",
                "no `embedding` or `embeddings`",
            ))
        }
    };
    Ok(Vectors {
        vectors,
        tokens: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn request(body: Value) -> (Value, bool) {
        let request = Request::parse(body.to_string().as_bytes()).unwrap();
        let bytes = from_openai(&request, "gemini-embedding-001").unwrap();
        (serde_json::from_slice(&bytes).unwrap(), request.batch)
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
    fn single_and_batch_answers_are_read_in_order() {
        // Google pretty-prints its JSON.
        let answer = "{\n  \"embedding\": {\n    \"values\": [\n      0.013,\n      -0.008,\n      0.5\n    ]\n  }\n}\n";
        assert_eq!(
            read_answer(answer.as_bytes()).unwrap(),
            Vectors {
                vectors: vec![vec![0.013, -0.008, 0.5]],
                tokens: None
            }
        );
        let answer = r#"{"embeddings": [{"values": [1.0, 2.0]}, {"values": [3.0, 4.0]}]}"#;
        assert_eq!(
            read_answer(answer.as_bytes()).unwrap().vectors,
            [vec![1.0, 2.0], vec![3.0, 4.0]]
        );
    }

    #[test]
    fn error_and_garbage_answers_are_errors() {
        let e = read_answer(
            br#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}"#,
        )
        .unwrap_err();
        assert_eq!(e.status(), 429);
        assert_eq!(read_answer(b"{}").unwrap_err().status(), 502);
    }
}
