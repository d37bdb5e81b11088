//! OpenAI `/v1/embeddings` on Bedrock's embedding models, through InvokeModel
//! (`POST /model/{modelId}/invoke`, signed like every Bedrock request). Each model family has
//! its own body ([`Family::of`] picks it from the model id):
//!
//! - **Amazon Titan Text Embeddings V2** (`amazon.titan-embed-text-v2:0`):
//!   `{"inputText", "dimensions"?, "normalize": true}` → `{"embedding": [...],
//!   "inputTextTokenCount": n}`. One text per call, so an `input` of several texts is a 400
//!   naming the limit rather than several calls: the gateway makes one upstream call per
//!   attempt, which is what its failover, its single usage record and its rate limits count
//!   (LiteLLM loops over the texts instead; a client that wants batches has Cohere Embed).
//!   `dimensions` goes as it is: Bedrock refuses values other than 256, 512 and 1024 with its
//!   own 400, which reaches the client.
//! - **Cohere Embed v3** (`cohere.embed-english-v3`, `cohere.embed-multilingual-v3`):
//!   `{"texts": [...], "input_type", "embedding_types": ["float"], "truncate"?}` →
//!   `{"embeddings": {"float": [[...]]}, "id", "response_type": "embeddings_by_type",
//!   "texts"}`; up to 96 texts (more is a 400 naming the limit). `input_type` is the client's
//!   extension field of that name, else `search_document` (what a vector store's documents
//!   need); `truncate` passes when sent. Its vectors have a fixed size, so `dimensions` is a
//!   400. The answer carries no token count (Bedrock puts it in the
//!   `X-Amzn-Bedrock-Input-Token-Count` header, which translators do not see), so the
//!   gateway counts the inputs, as for Gemini.
//!
//! Cross-region inference profiles (`us.cohere.…`) and model ARNs name the same families.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::invoke_path;
use crate::error::GatewayError;
use crate::providers::embeddings::{self, Request, Vectors};
use crate::providers::errors::protocol_error;
use crate::providers::{Provider, UpstreamRequest};
use crate::request::Peeked;

/// Cohere Embed's most texts per call.
const COHERE_MAX_TEXTS: usize = 96;

/// A Bedrock embedding model family, each with its own body and answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Amazon Titan Text Embeddings V2: one text per call.
    Titan,
    /// Cohere Embed v3 (English, multilingual): up to 96 texts per call.
    Cohere,
}

impl Family {
    /// The family of a Bedrock model id (a plain id, a cross-region inference profile
    /// `us.…`, or an ARN ending in either); `None` for models without embeddings.
    pub fn of(model_id: &str) -> Option<Self> {
        let id = model_id.rsplit('/').next().unwrap_or(model_id);
        let id = match id.split_once('.') {
            // an inference profile's geography prefix (`us.`, `eu.`, `apac.`, `global.`)
            Some((geo, rest)) if !matches!(geo, "amazon" | "cohere") => rest,
            _ => id,
        };
        if id.starts_with("amazon.titan-embed-text-v2") {
            Some(Self::Titan)
        } else if id.starts_with("cohere.embed-english-v3")
            || id.starts_with("cohere.embed-multilingual-v3")
        {
            Some(Self::Cohere)
        } else {
            None
        }
    }

    /// The family's InvokeModel body for `request`; `client_model` names the model in a
    /// refusal.
    pub fn body(self, request: &Request, client_model: &str) -> Result<Vec<u8>, GatewayError> {
        let mut body = Map::new();
        match self {
            Self::Titan => {
                request.at_most(1, client_model)?;
                let text = request.texts.first().map(String::as_str).unwrap_or("");
                body.insert("inputText".into(), text.into());
                if let Some(d) = request.dimensions {
                    body.insert("dimensions".into(), d.into());
                }
                body.insert("normalize".into(), true.into());
            }
            Self::Cohere => {
                request.at_most(COHERE_MAX_TEXTS, client_model)?;
                if request.dimensions.is_some() {
                    return Err(GatewayError::invalid(
                        "dimensions",
                        format!(
                            "`{client_model}` has a fixed number of dimensions (1024); \
                             send no `dimensions`"
                        ),
                    ));
                }
                body.insert("texts".into(), json!(request.texts));
                let input_type = request.extension("input_type").unwrap_or("search_document");
                body.insert("input_type".into(), input_type.into());
                body.insert("embedding_types".into(), json!(["float"]));
                if let Some(truncate) = request.extension("truncate") {
                    body.insert("truncate".into(), truncate.into());
                }
            }
        }
        serde_json::to_vec(&body)
            .map_err(|e| GatewayError::internal("writing the Bedrock embeddings body", e))
    }

    /// How the family's answer is read.
    fn reader(self) -> embeddings::ReadAnswer {
        match self {
            Self::Titan => read_titan,
            Self::Cohere => read_cohere,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TitanAnswer {
    embedding: Vec<f64>,
    input_text_token_count: Option<u64>,
}

/// Titan's answer: one vector and its token count.
fn read_titan(body: &[u8]) -> Result<Vectors, GatewayError> {
    let answer: TitanAnswer = serde_json::from_slice(body)
        .map_err(|e| protocol_error(format!("an unreadable Titan embeddings answer: {e}")))?;
    Ok(Vectors {
        vectors: vec![answer.embedding],
        tokens: answer.input_text_token_count,
    })
}

/// Cohere's answer: `embeddings` by type (`{"float": [[…]]}`, what the gateway asks for),
/// or the plain list of vectors Cohere answers when no type was asked.
fn read_cohere(body: &[u8]) -> Result<Vectors, GatewayError> {
    let unreadable =
        |e: String| protocol_error(format!("an unreadable Cohere embeddings answer: {e}"));
    let answer: Value = serde_json::from_slice(body).map_err(|e| unreadable(e.to_string()))?;
    let vectors = match &answer["embeddings"] {
        Value::Object(by_type) => by_type.get("float").cloned().unwrap_or(Value::Null),
        list => list.clone(),
    };
    let vectors: Vec<Vec<f64>> =
        serde_json::from_value(vectors).map_err(|e| unreadable(e.to_string()))?;
    Ok(Vectors {
        vectors,
        tokens: None,
    })
}

impl Provider {
    /// The signed InvokeModel request of an OpenAI embeddings body on `upstream_model`, and
    /// its answer's translator; a model of no known family is the usual 400.
    pub(crate) fn bedrock_embeddings(
        &self,
        body: &Bytes,
        peeked: &Peeked,
        upstream_model: &str,
    ) -> Result<UpstreamRequest, GatewayError> {
        let client_model = peeked.model.clone();
        let family =
            Family::of(upstream_model).ok_or_else(|| embeddings::unsupported(&client_model))?;
        let request = Request::parse(body)?;
        let bedrock_body = family.body(&request, &client_model)?;
        let mut upstream = self.request(
            invoke_path(self, upstream_model, false),
            Bytes::from(bedrock_body),
        );
        self.sign_bedrock(&mut upstream)?;
        let (read, base64) = (family.reader(), request.base64);
        match family {
            Family::Titan => {
                upstream.translator =
                    Some(embeddings::to_openai(&client_model, read, None, base64));
            }
            Family::Cohere => {
                let texts = request.texts;
                upstream.translator_job = Some(Box::new(move || {
                    let tokens = embeddings::count_tokens(&client_model, &texts);
                    embeddings::to_openai(&client_model, read, Some(tokens), base64)
                }));
            }
        }
        upstream.content_type = Some("application/json");
        Ok(upstream)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn body(family: Family, openai: Value) -> Result<Value, GatewayError> {
        let request = Request::parse(openai.to_string().as_bytes())?;
        let bytes = family.body(&request, "my-embedder")?;
        Ok(serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn the_family_comes_from_the_model_id() {
        for (id, family) in [
            ("amazon.titan-embed-text-v2:0", Some(Family::Titan)),
            ("cohere.embed-english-v3", Some(Family::Cohere)),
            ("cohere.embed-multilingual-v3", Some(Family::Cohere)),
            ("us.cohere.embed-english-v3", Some(Family::Cohere)),
            (
                "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0",
                Some(Family::Titan),
            ),
            ("amazon.titan-embed-text-v1", None),
            ("amazon.titan-embed-image-v1", None),
            ("cohere.embed-v4:0", None),
            ("anthropic.claude-sonnet-4-5-v1:0", None),
            ("us.anthropic.claude-sonnet-4-5-v1:0", None),
            ("", None),
        ] {
            assert_eq!(Family::of(id), family, "{id}");
        }
    }

    #[test]
    fn titan_takes_one_text_with_its_dimensions_normalized() {
        assert_eq!(
            body(
                Family::Titan,
                json!({"input": "Hello world", "dimensions": 256})
            )
            .unwrap(),
            json!({"inputText": "Hello world", "dimensions": 256, "normalize": true})
        );
        // an array of one is one text
        assert_eq!(
            body(Family::Titan, json!({"input": ["Hi"], "user": "u"})).unwrap(),
            json!({"inputText": "Hi", "normalize": true})
        );
        let e = body(Family::Titan, json!({"input": ["a", "b"]})).unwrap_err();
        assert_eq!((e.status(), e.param.as_deref()), (400, Some("input")));
        assert!(e.message.contains("one text per request"), "{}", e.message);
    }

    #[test]
    fn cohere_takes_up_to_96_texts_as_float_documents() {
        assert_eq!(
            body(Family::Cohere, json!({"input": ["a", "b"]})).unwrap(),
            json!({"texts": ["a", "b"], "input_type": "search_document",
                   "embedding_types": ["float"]})
        );
        assert_eq!(
            body(
                Family::Cohere,
                json!({"input": "q", "input_type": "search_query", "truncate": "END"})
            )
            .unwrap(),
            json!({"texts": ["q"], "input_type": "search_query",
                   "embedding_types": ["float"], "truncate": "END"})
        );
        let many: Vec<String> = (0..97).map(|i| format!("t{i}")).collect();
        let e = body(Family::Cohere, json!({ "input": many })).unwrap_err();
        assert_eq!((e.status(), e.param.as_deref()), (400, Some("input")));
        assert!(e.message.contains("at most 96 texts"), "{}", e.message);
        let e = body(Family::Cohere, json!({"input": "a", "dimensions": 256})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("dimensions"));
    }

    #[test]
    fn answers_are_read_with_their_counts() {
        let titan = br#"{"embedding":[0.5,-0.25],"embeddingsByType":{"float":[0.5,-0.25]},"inputTextTokenCount":3}"#;
        assert_eq!(
            read_titan(titan).unwrap(),
            Vectors {
                vectors: vec![vec![0.5, -0.25]],
                tokens: Some(3)
            }
        );
        let cohere = br#"{"id":"x","texts":["a","b"],"response_type":"embeddings_by_type",
            "embeddings":{"float":[[0.1,0.2],[0.3,0.4]]}}"#;
        assert_eq!(
            read_cohere(cohere).unwrap(),
            Vectors {
                vectors: vec![vec![0.1, 0.2], vec![0.3, 0.4]],
                tokens: None
            }
        );
        let floats =
            br#"{"id":"x","texts":["a"],"response_type":"embeddings_floats","embeddings":[[1.0]]}"#;
        assert_eq!(read_cohere(floats).unwrap().vectors, [vec![1.0]]);
        for garbage in [
            &b"{}"[..],
            b"{\"embeddings\":{\"int8\":[[1]]}}",
            b"not json",
        ] {
            assert_eq!(read_cohere(garbage).unwrap_err().status(), 502);
        }
        assert_eq!(read_titan(b"{}").unwrap_err().status(), 502);
    }
}
