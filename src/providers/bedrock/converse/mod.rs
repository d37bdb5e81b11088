//! Bedrock's Converse API, for every Bedrock model that is not Claude (Amazon Nova, Meta
//! Llama, Mistral, …): one request and answer shape for all of them, which the gateway
//! reaches through the chat pivot like any translated provider.
//!
//! - Which API a model id takes is [`converses`]: Claude keeps InvokeModel with Anthropic's
//!   own body (its reasoning, prompt caching and betas pass as they are), the rest Converse.
//! - `POST /model/{modelId}/converse` answers JSON ([`response`]);
//!   `POST /model/{modelId}/converse-stream` answers AWS's event stream whose events are
//!   Converse's own JSON ([`stream`]). Both are signed exactly as InvokeModel's requests are.
//! - The request is a chat request rewritten ([`request`], with [`messages`]).
//! - Errors are InvokeModel's (`{"message"}`, the type in `x-amzn-ErrorType`):
//!   [`super::upstream_error`] reads both.

pub mod messages;
pub mod request;
pub mod response;
pub mod stream;

use bytes::Bytes;

use super::model_path;
use crate::error::GatewayError;
use crate::providers::chat::ChatSink;
use crate::providers::{Provider, ResponseTranslator, UpstreamRequest};

/// Whether Bedrock serves `model` through Converse: every id but a Claude model's. Claude is
/// `anthropic.claude-…`, or a cross-region inference profile of one (`us.`, `eu.`, `apac.`,
/// `global.`, … before it); an ARN is read by its last segment (the model or profile id).
pub fn converses(model: &str) -> bool {
    let id = model.rsplit('/').next().unwrap_or(model);
    let claude = |id: &str| id.starts_with("anthropic.claude");
    let profile_of_claude = id.split_once('.').is_some_and(|(geography, rest)| {
        !geography.is_empty()
            && geography.len() <= 8
            && geography
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-')
            && claude(rest)
    });
    !(claude(id) || profile_of_claude)
}

/// The Converse operation of a whole answer or a stream.
fn operation(stream: bool) -> &'static str {
    if stream {
        "converse-stream"
    } else {
        "converse"
    }
}

impl Provider {
    /// The signed Converse request of a Converse `body` for `model`.
    pub(crate) fn converse_request(
        &self,
        body: Vec<u8>,
        model: &str,
        stream: bool,
    ) -> Result<UpstreamRequest, GatewayError> {
        let path = model_path(self, model, operation(stream));
        let mut request = self.request(path, Bytes::from(body));
        self.sign_bedrock(&mut request)?;
        Ok(request)
    }
}

/// The translator of a Converse answer (JSON, or the event stream when `stream`) into chat
/// values for `sink`; `client_model` names the model in them.
pub fn to_chat<S: ChatSink + 'static>(
    stream: bool,
    client_model: &str,
    sink: S,
) -> Box<dyn ResponseTranslator> {
    let stamp = Stamp::fresh();
    if stream {
        Box::new(stream::StreamTranslator::new(client_model, stamp, sink))
    } else {
        Box::new(response::JsonTranslator::new(client_model, stamp, sink))
    }
}

/// What an answer needs that Converse does not send: the `created` time and an id.
#[derive(Clone)]
pub(crate) struct Stamp {
    pub created: u64,
    pub id: String,
}

impl Stamp {
    fn fresh() -> Self {
        let mut nonce = crate::ids::random_hex();
        nonce.truncate(24);
        Self {
            created: crate::clock::unix_secs(),
            id: format!("chatcmpl-{nonce}"),
        }
    }

    /// A fixed stamp, so that tests compare whole outputs.
    #[cfg(test)]
    pub(crate) fn fixed() -> Self {
        Self {
            created: 1_700_000_000,
            id: "chatcmpl-test".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_keeps_invoke_model_and_every_other_model_converses() {
        for claude in [
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic.claude-3-haiku-20240307-v1:0",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
            "apac.anthropic.claude-sonnet-4-20250514-v1:0",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "us-gov.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ] {
            assert!(!converses(claude), "{claude}");
        }
        for other in [
            "amazon.nova-pro-v1:0",
            "us.amazon.nova-lite-v1:0",
            "meta.llama3-3-70b-instruct-v1:0",
            "us.meta.llama3-2-90b-instruct-v1:0",
            "mistral.mistral-large-2407-v1:0",
            "cohere.command-r-plus-v1:0",
            "deepseek.r1-v1:0",
            "ai21.jamba-1-5-large-v1:0",
            "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-micro-v1:0",
            // a name that merely mentions Claude is not Anthropic's model id
            "custom.anthropic-claude-finetune",
        ] {
            assert!(converses(other), "{other}");
        }
    }
}
