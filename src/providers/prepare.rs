//! How a client request becomes a provider request: a table from (provider format, endpoint)
//! to a [`Route`], then one composition for every translated pair, through OpenAI chat.
//!
//! A translated request goes client side → [`ChatRequest`] → upstream side, parsed once and
//! serialized once; its answer goes back the other way: the upstream side reads the provider's
//! answer into typed chat values and hands them to the client side's [`ChatSink`], with no
//! bytes in between.
//! Adding a format means adding its sides to [`ClientSide`] or [`UpstreamSide`] and a row or
//! two to [`route`], not another arm per pair.

use bytes::Bytes;

use super::anthropic::client::response::ToAnthropic;
use super::anthropic::upstream::cache::PromptCache;
use super::chat::{self, ChatRequest, ChatSink, OpenAiWriter};
use super::responses::client::response::ToResponses;
use super::{
    anthropic, bedrock, embeddings, gemini, openai, responses, Plan, Provider, ProviderKind,
    ResponseTranslator, UpstreamRequest,
};
use crate::endpoint::Endpoint;
use crate::error::{ErrorKind, GatewayError};
use crate::request::Peeked;

/// How one (provider format, endpoint) pair is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The client speaks the provider's format: the body goes to this path with the model
    /// renamed, and the answer comes back byte for byte.
    Passthrough(&'static str),
    /// OpenAI chat or embeddings to an OpenAI-format host (usage asked for on streams).
    OpenAi,
    /// The client's format → OpenAI chat → the provider's format, and the answer back.
    Translated(ClientSide),
    /// Anthropic Messages on Bedrock's Claude: the client's body made Bedrock's, the answer
    /// as it is (a stream's framing undone). Bedrock's other models go through the pivot.
    BedrockMessages,
    /// OpenAI embeddings on Gemini's embedding methods.
    GeminiEmbeddings,
    /// OpenAI embeddings on Bedrock's embedding models (Titan, Cohere) through InvokeModel.
    BedrockEmbeddings,
    /// OpenAI embeddings on Vertex AI's Google embedding models through `:predict`.
    VertexEmbeddings,
    /// `count_tokens` for a provider without it: the gateway counts.
    CountTokens,
    /// The provider's format has no embeddings.
    NoEmbeddings,
    /// Answered by the gateway itself, never planned (models, usage, stored responses).
    Gateway,
}

/// The format a client spoke, as far as translation is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientSide {
    Chat,
    Anthropic,
    Responses,
}

/// The provider side of a translated request (every [`ProviderKind`] is one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UpstreamSide {
    Chat,
    Anthropic,
    Gemini,
    /// Anthropic's format on Bedrock's paths and framing.
    Bedrock,
    /// Bedrock's Converse API, for its models other than Claude.
    Converse,
}

/// The table: which [`Route`] serves `endpoint` on a provider of `kind`.
fn route(kind: ProviderKind, endpoint: &Endpoint, native_responses: bool) -> Route {
    use Endpoint as E;
    use ProviderKind as K;
    match (kind, endpoint) {
        (K::OpenAi | K::OpenAiCompatible | K::Azure, E::ChatCompletions | E::Embeddings) => {
            Route::OpenAi
        }
        (K::OpenAi | K::OpenAiCompatible | K::Azure, E::Responses) if native_responses => {
            Route::Passthrough("/responses")
        }
        // Vertex's Claude and Gemini models come here as their publisher's kind
        // (`Provider::route_kind`); these are what differs on Vertex
        (K::Vertex, E::CountTokens) => Route::CountTokens,
        (K::Vertex, E::Embeddings) => Route::VertexEmbeddings,
        (K::Anthropic, E::Messages) => Route::Passthrough("/v1/messages"),
        (K::Anthropic, E::CountTokens) => Route::Passthrough("/v1/messages/count_tokens"),
        (K::Bedrock, E::Messages) => Route::BedrockMessages,
        (_, E::ChatCompletions) => Route::Translated(ClientSide::Chat),
        (_, E::Messages) => Route::Translated(ClientSide::Anthropic),
        (_, E::Responses) => Route::Translated(ClientSide::Responses),
        (K::Gemini, E::Embeddings) => Route::GeminiEmbeddings,
        (K::Bedrock, E::Embeddings) => Route::BedrockEmbeddings,
        (K::Anthropic, E::Embeddings) => Route::NoEmbeddings,
        (_, E::CountTokens) => Route::CountTokens,
        (_, E::Models | E::Model(_) | E::Usage | E::Root | E::StoredResponse(_)) => Route::Gateway,
    }
}

impl UpstreamSide {
    fn of(kind: ProviderKind) -> Self {
        match kind {
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible | ProviderKind::Azure => {
                Self::Chat
            }
            ProviderKind::Anthropic => Self::Anthropic,
            ProviderKind::Gemini | ProviderKind::Vertex => Self::Gemini,
            ProviderKind::Bedrock => Self::Bedrock,
        }
    }

    /// The side of `upstream_model` on a provider of `kind`: Bedrock's models other than
    /// Claude speak Converse ([`bedrock::converse::converses`]).
    fn of_model(kind: ProviderKind, upstream_model: &str) -> Self {
        match Self::of(kind) {
            Self::Bedrock if bedrock::converse::converses(upstream_model) => Self::Converse,
            side => side,
        }
    }
}

/// The client side of a translated answer: the sink the upstream side's chat values go to
/// (boxed: it waits in this value only until the upstream side is known).
enum ToClient {
    Chat,
    Anthropic(Box<ToAnthropic>),
    Responses(Box<ToResponses>),
}

/// The translator of a translated answer: the upstream side reading the provider's answer,
/// feeding the client side.
fn answer(
    upstream: UpstreamSide,
    to_client: ToClient,
    stream: bool,
    client_model: &str,
) -> Box<dyn ResponseTranslator> {
    match to_client {
        ToClient::Chat => upstream_into(upstream, stream, client_model, OpenAiWriter),
        ToClient::Anthropic(sink) => upstream_into(upstream, stream, client_model, *sink),
        ToClient::Responses(sink) => upstream_into(upstream, stream, client_model, *sink),
    }
}

/// The upstream side of an answer, handing its chat values to `sink`. Usage is always asked
/// of translated upstreams; the meter removes it for clients that did not ask.
fn upstream_into<S: ChatSink + 'static>(
    upstream: UpstreamSide,
    stream: bool,
    client_model: &str,
    sink: S,
) -> Box<dyn ResponseTranslator> {
    match upstream {
        UpstreamSide::Chat => chat::read(stream, sink),
        UpstreamSide::Anthropic => {
            anthropic::upstream::response::to_chat(stream, client_model, sink)
        }
        UpstreamSide::Gemini => gemini::upstream::response::to_chat(stream, client_model, sink),
        UpstreamSide::Converse => bedrock::converse::to_chat(stream, client_model, sink),
        UpstreamSide::Bedrock => {
            let anthropic = anthropic::upstream::response::to_chat(stream, client_model, sink);
            if stream {
                Box::new(bedrock::stream::EventStream::new(Some(anthropic)))
            } else {
                anthropic
            }
        }
    }
}

/// The content type of a translated answer.
fn content_type(stream: bool) -> Option<&'static str> {
    Some(if stream {
        "text/event-stream"
    } else {
        "application/json"
    })
}

impl Provider {
    /// Plans the upstream request from the client's request, naming the model
    /// `upstream_model` to the provider; `cache` is the model's prompt-cache setting.
    pub fn prepare(
        &self,
        endpoint: &Endpoint,
        body: &Bytes,
        peeked: &Peeked,
        upstream_model: &str,
        cache: PromptCache,
    ) -> Result<Plan, GatewayError> {
        // a Vertex model is its publisher's format, except where Vertex differs
        let kind = match endpoint {
            Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::Responses => {
                self.route_kind(upstream_model)
            }
            _ => self.kind,
        };
        let upstream = UpstreamSide::of_model(kind, upstream_model);
        let route = match route(kind, endpoint, self.native_responses) {
            // Messages clients of Bedrock's other models go through the pivot to Converse
            Route::BedrockMessages if upstream == UpstreamSide::Converse => {
                Route::Translated(ClientSide::Anthropic)
            }
            route => route,
        };
        let request = match route {
            Route::Passthrough(_) if self.kind == ProviderKind::Vertex => {
                self.vertex_claude(body, upstream_model, peeked.stream, &peeked.anthropic_betas)?
            }
            Route::Passthrough(suffix) => self.request(
                self.passthrough_path(suffix, upstream_model),
                peeked.with_model(body, upstream_model),
            ),
            Route::OpenAi => openai::prepare(self, endpoint, body, peeked, upstream_model)?,
            Route::Translated(client) => {
                self.translated(client, upstream, body, peeked, upstream_model, cache)?
            }
            Route::BedrockMessages => {
                let mut request = self.bedrock_request(
                    body,
                    upstream_model,
                    peeked.stream,
                    &peeked.anthropic_betas,
                )?;
                if peeked.stream {
                    request.translator = Some(Box::new(bedrock::stream::EventStream::new(None)));
                    request.content_type = content_type(true);
                }
                request
            }
            Route::GeminiEmbeddings => self.gemini_embeddings(body, peeked, upstream_model)?,
            Route::BedrockEmbeddings => self.bedrock_embeddings(body, peeked, upstream_model)?,
            Route::VertexEmbeddings => self.vertex_embeddings(body, peeked, upstream_model)?,
            Route::CountTokens => return Ok(Plan::CountTokens),
            Route::NoEmbeddings => return Err(embeddings::unsupported(&peeked.model)),
            Route::Gateway => {
                return Err(GatewayError::new(
                    ErrorKind::Internal,
                    "the models listing is answered by the gateway",
                ))
            }
        };
        Ok(Plan::Upstream(request))
    }

    /// Client side → [`ChatRequest`] → upstream side; the answer's translator the other way.
    fn translated(
        &self,
        client: ClientSide,
        upstream: UpstreamSide,
        body: &Bytes,
        peeked: &Peeked,
        upstream_model: &str,
        cache: PromptCache,
    ) -> Result<UpstreamRequest, GatewayError> {
        let (client_model, stream) = (peeked.model.as_str(), peeked.stream);
        // breakpoints only for clients that cannot place their own
        let cache = match client {
            ClientSide::Anthropic => PromptCache::Off,
            ClientSide::Chat | ClientSide::Responses => cache,
        };
        let (chat, to_client) = match client {
            ClientSide::Chat => (ChatRequest::parse(body)?, ToClient::Chat),
            ClientSide::Anthropic => (
                anthropic::client::request::to_chat(body, upstream_model)?,
                ToClient::Anthropic(Box::new(ToAnthropic::new(client_model))),
            ),
            ClientSide::Responses => {
                let (chat, echo) = responses::client::request::to_chat(body, upstream_model)?;
                // the proxy sets `store: false` where the gateway stores nothing, and keeps the
                // continued response's id in the peek of the conversation it expanded
                let mut echo = echo.continuing(peeked.previous_response_id.clone());
                if peeked.store != Some(false) {
                    echo = echo.stored();
                }
                (
                    chat,
                    ToClient::Responses(Box::new(ToResponses::new(client_model, echo))),
                )
            }
        };
        // whether the provider streams: the client's choice, as the upstream side read it
        let (mut request, upstream_streams) = match upstream {
            // OpenAI chat to an OpenAI-format host is Route::OpenAi, which also names the
            // upstream model; a client side's chat already carries it
            UpstreamSide::Chat if client == ClientSide::Chat => {
                return Err(GatewayError::new(
                    ErrorKind::Internal,
                    "OpenAI chat to an OpenAI-format provider is not translated",
                ))
            }
            UpstreamSide::Chat => (
                self.request(
                    self.openai_path("/chat/completions", upstream_model),
                    chat.to_bytes()?.into(),
                ),
                stream,
            ),
            UpstreamSide::Anthropic => {
                let translated =
                    anthropic::upstream::request::translate(&chat, upstream_model, cache)?;
                let mut request = if self.kind == ProviderKind::Vertex {
                    self.vertex_claude(
                        &translated.body,
                        upstream_model,
                        stream,
                        &peeked.anthropic_betas,
                    )?
                } else {
                    self.request(self.upstream.path("/v1/messages"), translated.body.into())
                };
                request.reasoning_dropped = translated.reasoning_dropped;
                (request, stream)
            }
            UpstreamSide::Bedrock => {
                let translated =
                    anthropic::upstream::request::translate(&chat, upstream_model, cache)?;
                let mut request = self.bedrock_request(
                    &translated.body,
                    upstream_model,
                    stream,
                    &peeked.anthropic_betas,
                )?;
                request.reasoning_dropped = translated.reasoning_dropped;
                (request, stream)
            }
            UpstreamSide::Converse => {
                let body = bedrock::converse::request::from_chat(&chat)?;
                (self.converse_request(body, upstream_model, stream)?, stream)
            }
            UpstreamSide::Gemini => {
                let (gemini_body, stream) = gemini::upstream::request::from_chat(&chat)?;
                let path = self.gemini_path(upstream_model, generate_method(stream));
                (self.request(path, gemini_body.into()), stream)
            }
        };
        request.translator = Some(answer(upstream, to_client, upstream_streams, client_model));
        request.content_type = content_type(stream);
        Ok(request)
    }

    /// OpenAI embeddings → Gemini's `embedContent` (one input) or `batchEmbedContents`; the
    /// answer is built off the proxy's workers, since it counts the inputs' tokens.
    fn gemini_embeddings(
        &self,
        body: &Bytes,
        peeked: &Peeked,
        upstream_model: &str,
    ) -> Result<UpstreamRequest, GatewayError> {
        let asked = embeddings::Request::parse(body)?;
        let gemini_body = gemini::upstream::embeddings::from_openai(&asked, upstream_model)?;
        let method = if asked.batch {
            "batchEmbedContents"
        } else {
            "embedContent"
        };
        let mut request =
            self.request(self.gemini_path(upstream_model, method), gemini_body.into());
        let client_model = peeked.model.clone();
        let (inputs, base64) = (asked.texts, asked.base64);
        request.translator_job = Some(Box::new(move || {
            let tokens = embeddings::count_tokens(&client_model, &inputs);
            let read = gemini::upstream::embeddings::read_answer;
            embeddings::to_openai(&client_model, read, Some(tokens), base64)
        }));
        request.content_type = Some("application/json");
        Ok(request)
    }

    /// A passthrough's path: an OpenAI-format operation's as [`Provider::openai_path`] has
    /// it (Azure's differ), any other under the base URL.
    fn passthrough_path(&self, suffix: &str, upstream_model: &str) -> String {
        match self.kind {
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible | ProviderKind::Azure => {
                self.openai_path(suffix, upstream_model)
            }
            ProviderKind::Anthropic
            | ProviderKind::Gemini
            | ProviderKind::Bedrock
            | ProviderKind::Vertex => self.upstream.path(suffix),
        }
    }

    /// A Gemini model method's path: `…/models/{model}:{method}` (on Vertex, under the
    /// project's Google publisher).
    fn gemini_path(&self, upstream_model: &str, method: &str) -> String {
        self.vertex_gemini_path(upstream_model, method)
            .unwrap_or_else(|| {
                self.upstream
                    .path(&format!("/models/{upstream_model}:{method}"))
            })
    }
}

/// Gemini's generation method: streamed as SSE, or whole.
fn generate_method(stream: bool) -> &'static str {
    if stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pair the gateway serves, as a reader would check it against the README's table.
    #[test]
    fn the_route_table() {
        use ClientSide as C;
        use Endpoint as E;
        use ProviderKind as K;
        let cases = [
            (K::OpenAi, E::ChatCompletions, false, Route::OpenAi),
            (K::OpenAiCompatible, E::Embeddings, false, Route::OpenAi),
            (
                K::OpenAi,
                E::Messages,
                false,
                Route::Translated(C::Anthropic),
            ),
            (
                K::OpenAi,
                E::Responses,
                false,
                Route::Translated(C::Responses),
            ),
            (
                K::OpenAi,
                E::Responses,
                true,
                Route::Passthrough("/responses"),
            ),
            (K::OpenAi, E::CountTokens, false, Route::CountTokens),
            (
                K::Anthropic,
                E::Messages,
                false,
                Route::Passthrough("/v1/messages"),
            ),
            (
                K::Anthropic,
                E::CountTokens,
                false,
                Route::Passthrough("/v1/messages/count_tokens"),
            ),
            (
                K::Anthropic,
                E::ChatCompletions,
                false,
                Route::Translated(C::Chat),
            ),
            (
                K::Anthropic,
                E::Responses,
                true,
                Route::Translated(C::Responses),
            ),
            (K::Anthropic, E::Embeddings, false, Route::NoEmbeddings),
            (
                K::Gemini,
                E::ChatCompletions,
                false,
                Route::Translated(C::Chat),
            ),
            (
                K::Gemini,
                E::Messages,
                false,
                Route::Translated(C::Anthropic),
            ),
            (K::Gemini, E::Embeddings, false, Route::GeminiEmbeddings),
            (K::Gemini, E::CountTokens, false, Route::CountTokens),
            (K::Gemini, E::Models, false, Route::Gateway),
            (K::Azure, E::ChatCompletions, false, Route::OpenAi),
            (K::Azure, E::Embeddings, false, Route::OpenAi),
            (
                K::Azure,
                E::Responses,
                false,
                Route::Translated(C::Responses),
            ),
            (
                K::Azure,
                E::Responses,
                true,
                Route::Passthrough("/responses"),
            ),
            (
                K::Azure,
                E::Messages,
                false,
                Route::Translated(C::Anthropic),
            ),
            (K::Azure, E::CountTokens, false, Route::CountTokens),
            (K::Bedrock, E::Messages, false, Route::BedrockMessages),
            (
                K::Bedrock,
                E::ChatCompletions,
                false,
                Route::Translated(C::Chat),
            ),
            (
                K::Bedrock,
                E::Responses,
                true,
                Route::Translated(C::Responses),
            ),
            (K::Bedrock, E::Embeddings, false, Route::BedrockEmbeddings),
            (K::Bedrock, E::CountTokens, false, Route::CountTokens),
            (K::Vertex, E::CountTokens, false, Route::CountTokens),
            (K::Vertex, E::Embeddings, false, Route::VertexEmbeddings),
        ];
        for (kind, endpoint, native, expected) in cases {
            assert_eq!(
                route(kind, &endpoint, native),
                expected,
                "{kind:?} {endpoint:?}"
            );
        }
    }

    /// Claude on Bedrock keeps InvokeModel (and Messages clients their passthrough); every
    /// other Bedrock model is the Converse side, whatever the client speaks.
    #[test]
    fn bedrock_models_other_than_claude_converse() {
        let side = UpstreamSide::of_model;
        let claude = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
        assert_eq!(side(ProviderKind::Bedrock, claude), UpstreamSide::Bedrock);
        assert_eq!(
            side(ProviderKind::Bedrock, "amazon.nova-pro-v1:0"),
            UpstreamSide::Converse
        );
        // the model id of another kind never changes its side
        assert_eq!(
            side(ProviderKind::Anthropic, "amazon.nova-pro-v1:0"),
            UpstreamSide::Anthropic
        );
    }

    /// Every translated pair's answer goes from the upstream's format to the client's.
    #[test]
    fn every_translated_answer_reaches_its_client() {
        use crate::providers::responses::client::Echo;
        use crate::providers::translator_testing::run;
        let streams = [
            (
                UpstreamSide::Chat,
                "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi there\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
            ),
            (
                UpstreamSide::Anthropic,
                concat!(
                    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}\n\n",
                    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"Hi there\"}}\n\n",
                    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n",
                    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
                ),
            ),
            (
                UpstreamSide::Gemini,
                "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi there\"}]},\"finishReason\":\"STOP\",\"index\":0}]}\n\n",
            ),
        ];
        for (upstream, input) in streams {
            let clients: [(ClientSide, &str); 3] = [
                (ClientSide::Chat, "data: [DONE]"),
                (ClientSide::Anthropic, "event: message_stop"),
                (ClientSide::Responses, "event: response.completed"),
            ];
            for (client, end) in clients {
                let to_client = match client {
                    // not translated: the route table passes these through
                    ClientSide::Chat if upstream == UpstreamSide::Chat => continue,
                    ClientSide::Anthropic if upstream == UpstreamSide::Anthropic => continue,
                    ClientSide::Chat => ToClient::Chat,
                    ClientSide::Anthropic => ToClient::Anthropic(Box::new(ToAnthropic::new("c"))),
                    ClientSide::Responses => {
                        ToClient::Responses(Box::new(ToResponses::new("c", Echo::default())))
                    }
                };
                let mut translator = answer(upstream, to_client, true, "c");
                let (out, result) = run(translator.as_mut(), &[input.as_bytes()]);
                result.unwrap();
                let out = String::from_utf8(out).unwrap();
                assert!(out.contains("Hi there"), "{upstream:?} → {client:?}: {out}");
                assert!(out.contains(end), "{upstream:?} → {client:?}: {out}");
            }
        }
    }
}
