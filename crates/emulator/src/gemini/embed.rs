//! `embedContent` and `batchEmbedContents`: deterministic vectors, the same as the OpenAI
//! side's for the same text.
//!
//! * A request's text is the `text` of every `content.parts[]` entry, concatenated (no
//!   separator); its vector is the OpenAI side's [`embedding_vector`] of those UTF-8
//!   bytes, length `outputDimensionality` (1..=3072) or [`DEFAULT_DIMENSIONS`], values as
//!   JSON numbers (exact f32). `taskType` and `title` are accepted and ignored.
//! * `embedContent` → `{"embedding":{"values":[…]}}`; `batchEmbedContents` →
//!   `{"embeddings":[{"values":[…]},…]}` in request order. No usage (the real API reports
//!   none).
//! * 400 `INVALID_ARGUMENT`: no text part; `outputDimensionality` not in 1..=3072;
//!   `requests` missing or empty; an inner request whose `model` is not
//!   `models/{model of the URL}`.

use serde::Serialize;
use serde_json::Value;

use super::super::openai::embedding_vector;
use super::{error_reply, field, json, Reply};

/// Vector length when the request has no `outputDimensionality`.
pub const DEFAULT_DIMENSIONS: usize = 8;
/// Largest accepted `outputDimensionality` (gemini-embedding-001's size).
const MAX_DIMENSIONS: u64 = 3072;

#[derive(Serialize)]
struct Embedding {
    values: Vec<f64>,
}

#[derive(Serialize)]
struct Single {
    embedding: Embedding,
}

#[derive(Serialize)]
struct Batch {
    embeddings: Vec<Embedding>,
}

/// The vector of one embed request; `what` names it in error messages.
fn embed_one(req: &Value, what: &str) -> Result<Embedding, Reply> {
    let parts = field(req, "content")
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array);
    let texts: Vec<&str> = parts
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    if texts.is_empty() {
        let msg = format!("* {what}.content: content is not specified\n");
        return Err(error_reply(400, &msg));
    }
    let dims = match field(req, "outputDimensionality") {
        None | Some(Value::Null) => DEFAULT_DIMENSIONS,
        Some(v) => match v.as_u64().filter(|d| (1..=MAX_DIMENSIONS).contains(d)) {
            Some(d) => usize::try_from(d).unwrap_or(DEFAULT_DIMENSIONS),
            None => {
                let msg = format!(
                    "* {what}.output_dimensionality: must be between 1 and {MAX_DIMENSIONS}\n"
                );
                return Err(error_reply(400, &msg));
            }
        },
    };
    let vector = embedding_vector(texts.concat().as_bytes(), dims);
    Ok(Embedding {
        values: vector.iter().map(|f| f64::from(*f)).collect(),
    })
}

/// `POST …/models/{model}:embedContent`.
pub fn embed_reply(req: &Value) -> Reply {
    match embed_one(req, "EmbedContentRequest") {
        Ok(embedding) => json(200, &Single { embedding }),
        Err(reply) => reply,
    }
}

/// `POST …/models/{model}:batchEmbedContents`.
pub fn batch_embed_reply(req: &Value, model: &str) -> Reply {
    let requests = match req.get("requests") {
        Some(Value::Array(r)) if !r.is_empty() => r,
        _ => {
            let msg = "* BatchEmbedContentsRequest.requests: requests is not specified\n";
            return error_reply(400, msg);
        }
    };
    let url_model = format!("models/{model}");
    let mut embeddings = Vec::with_capacity(requests.len());
    for (i, r) in requests.iter().enumerate() {
        let what = format!("BatchEmbedContentsRequest.requests[{i}]");
        match r.get("model").and_then(Value::as_str) {
            Some(m) if m == url_model => {}
            Some(m) => {
                let msg = format!(
                    "Model name in request ({m}) does not match model name in url ({url_model})."
                );
                return error_reply(400, &msg);
            }
            None => {
                let msg = format!("* {what}.model: unexpected model name format\n");
                return error_reply(400, &msg);
            }
        }
        match embed_one(r, &what) {
            Ok(e) => embeddings.push(e),
            Err(reply) => return reply,
        }
    }
    json(200, &Batch { embeddings })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::tests::body;
    use super::*;
    use serde_json::json;

    fn floats(text: &str, dims: usize) -> Value {
        let v: Vec<f64> = embedding_vector(text.as_bytes(), dims)
            .iter()
            .map(|f| f64::from(*f))
            .collect();
        json!(v)
    }

    #[test]
    fn single_embedding_matches_the_openai_vector() {
        let r = json!({"content": {"parts": [{"text": "hello "}, {"text": "world"}]},
            "taskType": "RETRIEVAL_QUERY"});
        let (status, _, v) = body(&embed_reply(&r));
        assert_eq!(status, 200);
        assert_eq!(
            v,
            json!({"embedding": {"values": floats("hello world", 8)}})
        );
        let r = json!({"content": {"parts": [{"text": "x"}]}, "output_dimensionality": 3});
        assert_eq!(
            body(&embed_reply(&r)).2["embedding"]["values"],
            floats("x", 3)
        );
    }

    #[test]
    fn batch_in_request_order() {
        let r = json!({"requests": [
            {"model": "models/e", "content": {"parts": [{"text": "a"}]}},
            {"model": "models/e", "content": {"parts": [{"text": "b"}]},
             "outputDimensionality": 2}]});
        let (status, _, v) = body(&batch_embed_reply(&r, "e"));
        assert_eq!(status, 200);
        assert_eq!(
            v,
            json!({"embeddings": [{"values": floats("a", 8)}, {"values": floats("b", 2)}]})
        );
    }

    #[test]
    fn bad_requests_are_400() {
        let cases = [
            (json!({}), "content is not specified"),
            (
                json!({"content": {"parts": [{"inlineData": {}}]}}),
                "content is not specified",
            ),
            (
                json!({"content": {"parts": [{"text": "x"}]}, "outputDimensionality": 0}),
                "output_dimensionality",
            ),
        ];
        for (r, want) in cases {
            let (status, _, v) = body(&embed_reply(&r));
            assert_eq!(
                (status, v["error"]["status"].as_str()),
                (400, Some("INVALID_ARGUMENT"))
            );
            assert!(v["error"]["message"].as_str().unwrap().contains(want));
        }
        let batch_cases = [
            (json!({"requests": []}), "requests is not specified"),
            (
                json!({"requests": [{"content": {"parts": [{"text": "a"}]}}]}),
                "requests[0].model",
            ),
            (
                json!({"requests": [{"model": "models/other",
                    "content": {"parts": [{"text": "a"}]}}]}),
                "does not match",
            ),
            (
                json!({"requests": [{"model": "models/e"}]}),
                "requests[0].content",
            ),
        ];
        for (r, want) in batch_cases {
            let (status, _, v) = body(&batch_embed_reply(&r, "e"));
            assert_eq!(status, 400);
            assert!(
                v["error"]["message"].as_str().unwrap().contains(want),
                "{v}"
            );
        }
    }
}
