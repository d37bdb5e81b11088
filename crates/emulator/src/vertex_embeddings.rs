//! Vertex AI's text embedding models on `:predict`
//! (`POST …/publishers/google/models/{model}:predict`, behind the same bearer token check and
//! faults as Vertex's other paths), as Google documents them:
//!
//! `{"instances": [{"content", "task_type"?, "title"?}, …], "parameters":
//! {"outputDimensionality"?, "autoTruncate"?}}` → `{"predictions": [{"embeddings":
//! {"values", "statistics": {"token_count", "truncated"}}}, …], "metadata":
//! {"billableCharacterCount"}}`, one prediction per instance, in order.
//!
//! Vectors are the OpenAI side's deterministic ones ([`embedding_vector`] of `content`'s
//! UTF-8 bytes), of length `outputDimensionality` or the model's size (3072 for
//! `gemini-embedding-*`, 768 for the others). Tokens: whitespace-separated words of
//! `content`; a text over 2,048 is cut there (`truncated: true`) unless
//! `"autoTruncate": false`.
//!
//! Validation, each Google's 400 `INVALID_ARGUMENT`: no `instances` or an empty list, an
//! instance without a string `content`, more instances than the model takes (1 for
//! `gemini-embedding-*`, 250 for the others), more than 20,000 tokens in all,
//! `outputDimensionality` outside 1 ..= the model's size, a text over 2,048 tokens with
//! `"autoTruncate": false`.

use serde_json::{json, Value};

use super::gemini;
use super::openai::embedding_vector;
use super::{Reply, Request};

const MAX_TOKENS_PER_TEXT: usize = 2048;
const MAX_TOKENS_PER_CALL: usize = 20_000;

/// Whether `path` is a `:predict` call.
pub fn serves(path: &str) -> bool {
    path.ends_with(":predict")
}

/// Answers a `:predict` call.
pub fn predict(req: &Request) -> Reply {
    let Some(model) = req
        .path
        .rsplit_once("/models/")
        .and_then(|(_, last)| last.strip_suffix(":predict"))
    else {
        return gemini::error_reply(404, "Method not found.");
    };
    let gemini_family = model.starts_with("gemini-embedding");
    let (max_instances, size) = if gemini_family { (1, 3072) } else { (250, 768) };
    let invalid = |message: &str| gemini::error_reply(400, message);
    let Ok(body) = serde_json::from_slice::<Value>(req.body) else {
        return invalid("Invalid JSON payload received.");
    };
    let Some(instances) = body["instances"].as_array().filter(|i| !i.is_empty()) else {
        return invalid("The request must have at least one instance.");
    };
    if instances.len() > max_instances {
        return invalid(&format!(
            "Unable to submit request because the model {model} supports at most \
             {max_instances} instances per request, but {} were sent.",
            instances.len()
        ));
    }
    let parameters = &body["parameters"];
    let dimensions = match &parameters["outputDimensionality"] {
        Value::Null => size,
        d => match d.as_u64().and_then(|d| usize::try_from(d).ok()) {
            Some(d) if (1..=size).contains(&d) => d,
            _ => {
                return invalid(&format!(
                    "outputDimensionality must be between 1 and {size}, got {d}."
                ))
            }
        },
    };
    let auto_truncate = parameters["autoTruncate"].as_bool().unwrap_or(true);
    let mut predictions = Vec::with_capacity(instances.len());
    let (mut total_tokens, mut characters) = (0, 0);
    for (i, instance) in instances.iter().enumerate() {
        let Some(content) = instance["content"].as_str() else {
            return invalid(&format!("instances[{i}].content must be a string."));
        };
        let words = content.split_whitespace().count();
        if words > MAX_TOKENS_PER_TEXT && !auto_truncate {
            return invalid(&format!(
                "Input text at index {i} is longer than the maximum of \
                 {MAX_TOKENS_PER_TEXT} tokens and autoTruncate is false."
            ));
        }
        let tokens = words.min(MAX_TOKENS_PER_TEXT);
        total_tokens += tokens;
        characters += content.chars().count();
        predictions.push(json!({"embeddings": {
            "values": embedding_vector(content.as_bytes(), dimensions),
            "statistics": {"token_count": tokens, "truncated": words > tokens},
        }}));
    }
    if total_tokens > MAX_TOKENS_PER_CALL {
        return invalid(&format!(
            "Unable to submit request because the input token count is {total_tokens} but \
             the model supports up to {MAX_TOKENS_PER_CALL}. Reduce the input token count \
             and try again."
        ));
    }
    Reply::json(
        200,
        &json!({"predictions": predictions,
                "metadata": {"billableCharacterCount": characters}}),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use http::HeaderMap;

    use super::*;
    use crate::ReplyBody;

    const BASE: &str = "/v1/projects/p/locations/us-central1/publishers/google/models";

    fn call(model: &str, body: Value) -> (u16, Value) {
        let headers = HeaderMap::new();
        let bytes = body.to_string();
        let path = format!("{BASE}/{model}:predict");
        let req = Request {
            method: "POST",
            path: &path,
            query: "",
            headers: &headers,
            body: bytes.as_bytes(),
        };
        let reply = predict(&req);
        let ReplyBody::Full { bytes, .. } = &reply.body else {
            panic!("a stream")
        };
        (reply.status, serde_json::from_slice(bytes).unwrap())
    }

    fn floats(v: &Value) -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    }

    #[test]
    fn predictions_in_order_with_statistics() {
        let (status, v) = call(
            "text-embedding-005",
            json!({"instances": [{"content": "a b c", "task_type": "RETRIEVAL_DOCUMENT"},
                                 {"content": "d"}],
                   "parameters": {"outputDimensionality": 16, "autoTruncate": true}}),
        );
        assert_eq!(status, 200, "{v}");
        let first = &v["predictions"][0]["embeddings"];
        assert_eq!(floats(&first["values"]), embedding_vector(b"a b c", 16));
        assert_eq!(
            first["statistics"],
            json!({"token_count": 3, "truncated": false})
        );
        let second = &v["predictions"][1]["embeddings"];
        assert_eq!(floats(&second["values"]), embedding_vector(b"d", 16));
        assert_eq!(v["metadata"]["billableCharacterCount"], 6);
        for (model, dimensions) in [("gemini-embedding-001", 3072), ("text-embedding-005", 768)] {
            let (_, v) = call(model, json!({"instances": [{"content": "x"}]}));
            let values = v["predictions"][0]["embeddings"]["values"].as_array();
            assert_eq!(values.unwrap().len(), dimensions, "{model}");
        }
    }

    #[test]
    fn long_texts_are_cut_unless_told_not_to() {
        let long = "w ".repeat(2050);
        let (status, v) = call(
            "text-embedding-005",
            json!({"instances": [{"content": long}]}),
        );
        assert_eq!(status, 200);
        assert_eq!(
            v["predictions"][0]["embeddings"]["statistics"],
            json!({"token_count": 2048, "truncated": true})
        );
        let (status, _) = call(
            "text-embedding-005",
            json!({"instances": [{"content": long}], "parameters": {"autoTruncate": false}}),
        );
        assert_eq!(status, 400);
    }

    #[test]
    fn vertexs_documented_limits() {
        let two = json!({"instances": [{"content": "a"}, {"content": "b"}]});
        let many: Vec<Value> = (0..251).map(|_| json!({"content": "a"})).collect();
        let heavy: Vec<Value> = (0..11)
            .map(|_| json!({"content": "w ".repeat(2000)}))
            .collect();
        for (model, body, says) in [
            ("gemini-embedding-001", two, "at most 1 instances"),
            (
                "text-embedding-005",
                json!({ "instances": many }),
                "at most 250 instances",
            ),
            (
                "text-embedding-005",
                json!({ "instances": heavy }),
                "input token count is 22000",
            ),
            (
                "text-embedding-005",
                json!({"instances": []}),
                "at least one instance",
            ),
            (
                "text-embedding-005",
                json!({"instances": [{"text": "a"}]}),
                "content",
            ),
            (
                "text-embedding-005",
                json!({"instances": [{"content": "a"}], "parameters": {"outputDimensionality": 769}}),
                "between 1 and 768",
            ),
        ] {
            let (status, v) = call(model, body);
            assert_eq!(status, 400, "{model}: {v}");
            assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
            assert!(
                v["error"]["message"].as_str().unwrap().contains(says),
                "{v}"
            );
        }
    }
}
