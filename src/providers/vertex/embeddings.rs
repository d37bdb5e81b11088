//! OpenAI `/v1/embeddings` on Vertex AI's Google embedding models (`text-embedding-005`,
//! `text-multilingual-embedding-002`, `gemini-embedding-001`, …) through their `:predict`
//! method:
//!
//! `{"instances": [{"content", "task_type"?}, …], "parameters": {"autoTruncate": true,
//! "outputDimensionality"?}}` → `{"predictions": [{"embeddings": {"values": [...],
//! "statistics": {"token_count", "truncated"}}}, …]}`, one prediction per instance in order.
//!
//! - `dimensions` → `outputDimensionality`; the client's `task_type` extension (as on
//!   Gemini) → each instance's `task_type`.
//! - `autoTruncate: true`: a text over the model's 2,048 tokens is cut, as Vertex does by
//!   default, rather than refused.
//! - Instances per call: `gemini-embedding-*` takes one, the others 250. More is a 400
//!   naming the limit, before anything is sent (one upstream call per attempt, see
//!   `bedrock::embeddings`). Vertex's other limit, 20,000 input tokens per call, is its own
//!   400, which reaches the client.
//! - `usage`: the sum of the predictions' `token_count`, Vertex's own count.
//!
//! Only names of Google's embedding models (`…embedding…`, `textembedding-gecko…`) are
//! sent; any other model (a Gemini chat model, Claude) is the usual 400.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::Publisher;
use crate::error::{ErrorKind, GatewayError};
use crate::providers::embeddings::{self, Request, Vectors};
use crate::providers::errors::protocol_error;
use crate::providers::{Provider, UpstreamRequest};
use crate::request::Peeked;

/// Instances `text-embedding-005` and its kin take per `:predict` call.
const MAX_INSTANCES: usize = 250;

/// Whether `model` is one of Google's text embedding models on Vertex.
pub fn is_embedding_model(model: &str) -> bool {
    model.contains("embedding") || model.starts_with("textembedding-gecko")
}

/// How many instances `model` takes per call.
pub fn instance_limit(model: &str) -> usize {
    if model.starts_with("gemini-embedding") {
        1
    } else {
        MAX_INSTANCES
    }
}

/// The `:predict` body of `request`.
pub fn predict_body(request: &Request) -> Result<Vec<u8>, GatewayError> {
    let task_type = request.extension("task_type");
    let instances: Vec<Value> = request
        .texts
        .iter()
        .map(|text| {
            let mut instance = Map::new();
            instance.insert("content".into(), text.as_str().into());
            if let Some(task) = task_type {
                instance.insert("task_type".into(), task.into());
            }
            Value::Object(instance)
        })
        .collect();
    let mut parameters = Map::new();
    parameters.insert("autoTruncate".into(), true.into());
    if let Some(d) = request.dimensions {
        parameters.insert("outputDimensionality".into(), d.into());
    }
    serde_json::to_vec(&json!({ "instances": instances, "parameters": parameters }))
        .map_err(|e| GatewayError::internal("writing the Vertex embeddings body", e))
}

/// A `:predict` answer's vectors and the sum of their token counts.
pub fn read_answer(body: &[u8]) -> Result<Vectors, GatewayError> {
    let unreadable =
        |what: &str| protocol_error(format!("an unreadable Vertex embeddings answer: {what}"));
    let answer: Value = serde_json::from_slice(body).map_err(|e| unreadable(&e.to_string()))?;
    let predictions = answer["predictions"]
        .as_array()
        .ok_or_else(|| unreadable("no `predictions`"))?;
    let mut out = Vectors::default();
    for prediction in predictions {
        let embeddings = &prediction["embeddings"];
        let values: Vec<f64> = serde_json::from_value(embeddings["values"].clone())
            .map_err(|e| unreadable(&e.to_string()))?;
        out.vectors.push(values);
        // a count Vertex writes as a number of either kind (`6` or `6.0`)
        if let Some(n) = embeddings["statistics"]["token_count"].as_f64() {
            *out.tokens.get_or_insert(0) += n.max(0.0).round() as u64;
        }
    }
    Ok(out)
}

impl Provider {
    /// The `:predict` request of an OpenAI embeddings body on `upstream_model`, and its
    /// answer's translator; a model that is not a Google embedding model is the usual 400.
    pub(crate) fn vertex_embeddings(
        &self,
        body: &Bytes,
        peeked: &Peeked,
        upstream_model: &str,
    ) -> Result<UpstreamRequest, GatewayError> {
        let client_model = peeked.model.as_str();
        let vertex = self.vertex.as_ref().ok_or_else(|| {
            GatewayError::new(
                ErrorKind::Internal,
                "a Vertex request on a provider without Vertex settings",
            )
        })?;
        let google = Publisher::of(upstream_model, vertex.publisher) == Publisher::Google;
        if !google || !is_embedding_model(upstream_model) {
            return Err(embeddings::unsupported(client_model));
        }
        let request = Request::parse(body)?;
        request.at_most(instance_limit(upstream_model), client_model)?;
        let path = vertex.path(&self.upstream, Publisher::Google, upstream_model, "predict");
        let mut upstream = self.request(path, Bytes::from(predict_body(&request)?));
        upstream.translator = Some(embeddings::to_openai(
            client_model,
            read_answer,
            None,
            request.base64,
        ));
        upstream.content_type = Some("application/json");
        Ok(upstream)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn body(openai: Value) -> Value {
        let request = Request::parse(openai.to_string().as_bytes()).unwrap();
        serde_json::from_slice(&predict_body(&request).unwrap()).unwrap()
    }

    #[test]
    fn texts_become_instances_with_vertex_parameters() {
        assert_eq!(
            body(
                json!({"input": ["a", "b"], "dimensions": 256, "task_type": "RETRIEVAL_QUERY",
                        "encoding_format": "base64", "user": "u"})
            ),
            json!({"instances": [{"content": "a", "task_type": "RETRIEVAL_QUERY"},
                                 {"content": "b", "task_type": "RETRIEVAL_QUERY"}],
                   "parameters": {"autoTruncate": true, "outputDimensionality": 256}})
        );
        assert_eq!(
            body(json!({"input": "Hello"})),
            json!({"instances": [{"content": "Hello"}], "parameters": {"autoTruncate": true}})
        );
    }

    #[test]
    fn embedding_models_and_their_instance_limits() {
        for model in [
            "text-embedding-005",
            "text-multilingual-embedding-002",
            "gemini-embedding-001",
            "textembedding-gecko@003",
        ] {
            assert!(is_embedding_model(model), "{model}");
        }
        for model in ["gemini-2.5-flash", "claude-sonnet-4-5@20250929"] {
            assert!(!is_embedding_model(model), "{model}");
        }
        assert_eq!(instance_limit("gemini-embedding-001"), 1);
        assert_eq!(instance_limit("text-embedding-005"), 250);
        assert_eq!(instance_limit("text-multilingual-embedding-002"), 250);
    }

    #[test]
    fn predictions_are_read_in_order_with_their_token_counts() {
        let answer = br#"{"predictions": [
            {"embeddings": {"values": [0.5, -0.25], "statistics": {"token_count": 6.0, "truncated": false}}},
            {"embeddings": {"values": [1.0, 0.0], "statistics": {"token_count": 2, "truncated": true}}}],
            "metadata": {"billableCharacterCount": 30}}"#;
        assert_eq!(
            read_answer(answer).unwrap(),
            Vectors {
                vectors: vec![vec![0.5, -0.25], vec![1.0, 0.0]],
                tokens: Some(8)
            }
        );
        let uncounted = br#"{"predictions": [{"embeddings": {"values": [1.0]}}]}"#;
        assert_eq!(read_answer(uncounted).unwrap().tokens, None);
        for garbage in [
            &b"{}"[..],
            br#"{"predictions": [{"embeddings": {}}]}"#,
            b"[",
        ] {
            assert_eq!(read_answer(garbage).unwrap_err().status(), 502);
        }
    }
}
