//! The spans of one client request: a SERVER span for the request, continuing the client's
//! W3C `traceparent` (or starting a trace), and a CLIENT span per upstream attempt, whose
//! id goes to the provider in the attempt's own `traceparent`. Attributes follow
//! OpenTelemetry's GenAI semantic conventions (`gen_ai.*`), plus `cheapai.*` for what they
//! do not cover. Created only when tracing is on: `RequestCtx::trace` is `None` otherwise.

use std::sync::Arc;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::Span;
use pingora::http::RequestHeader;

use super::access::Summary;
use super::Telemetry;
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::providers::{Provider, ProviderKind};

/// The request's span and the current attempt's.
pub struct RequestTrace {
    telemetry: Arc<Telemetry>,
    /// Holds the request (root) span.
    cx: Context,
    /// The attempt under way, or the one that answered (ended with the request, when its
    /// usage is known).
    attempt: Option<Span>,
}

impl std::fmt::Debug for RequestTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RequestTrace({})", self.trace_id())
    }
}

/// `gen_ai.system` (and `gen_ai.provider.name`, its newer name) of a provider's API.
pub fn gen_ai_system(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => "openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Gemini => "gcp.gemini",
        ProviderKind::Azure => "azure.ai.openai",
        ProviderKind::Bedrock => "aws.bedrock",
        ProviderKind::Vertex => "gcp.vertex_ai",
    }
}

/// `gen_ai.operation.name` of an endpoint; `None` for those that call no model.
pub fn operation(endpoint: &Endpoint) -> Option<&'static str> {
    match endpoint {
        Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::Responses => Some("chat"),
        Endpoint::Embeddings => Some("embeddings"),
        Endpoint::CountTokens => Some("count_tokens"),
        Endpoint::Root
        | Endpoint::Models
        | Endpoint::Model(_)
        | Endpoint::Usage
        | Endpoint::StoredResponse(_) => None,
    }
}

/// The low-cardinality route of an endpoint, for span names.
fn route(endpoint: Option<&Endpoint>) -> &'static str {
    match endpoint {
        Some(Endpoint::Root) => "/",
        Some(Endpoint::ChatCompletions) => "/v1/chat/completions",
        Some(Endpoint::Embeddings) => "/v1/embeddings",
        Some(Endpoint::Models) => "/v1/models",
        Some(Endpoint::Model(_)) => "/v1/models/{id}",
        Some(Endpoint::Responses) => "/v1/responses",
        Some(Endpoint::Messages) => "/v1/messages",
        Some(Endpoint::CountTokens) => "/v1/messages/count_tokens",
        Some(Endpoint::Usage) => "/v1/usage",
        Some(Endpoint::StoredResponse(_)) => "/v1/responses/{id}",
        None => "unknown",
    }
}

/// Reads `traceparent`/`tracestate` from the client's headers.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The trace id of a valid client `traceparent`, if one was sent (for the log line when
/// tracing is off).
pub fn client_trace_id(header: &RequestHeader) -> Option<String> {
    header.headers.get("traceparent")?;
    let cx = TraceContextPropagator::new().extract(&Headers(&header.headers));
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

impl RequestTrace {
    /// Starts the request's span, as a child of the client's `traceparent` when it sent a
    /// valid one.
    pub fn start(telemetry: &Arc<Telemetry>, header: &RequestHeader) -> Self {
        let parent = TraceContextPropagator::new().extract(&Headers(&header.headers));
        let span = telemetry
            .tracer()
            .span_builder(format!("{} {}", header.method, header.uri.path()))
            .with_kind(SpanKind::Server)
            .with_attributes([KeyValue::new(
                "http.request.method",
                header.method.as_str().to_string(),
            )])
            .start_with_context(telemetry.tracer(), &parent);
        Self {
            telemetry: telemetry.clone(),
            cx: parent.with_span(span),
            attempt: None,
        }
    }

    /// The trace's id, 32 hex digits.
    pub fn trace_id(&self) -> String {
        self.cx.span().span_context().trace_id().to_string()
    }

    /// The `traceparent` the provider gets: the current attempt's span, so the provider's
    /// own spans hang under it.
    pub fn traceparent(&self) -> String {
        let span = self.cx.span();
        let sc = match &self.attempt {
            Some(a) => a.span_context(),
            None => span.span_context(),
        };
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    }

    /// Opens the span of attempt `number` to `provider`.
    pub fn start_attempt(
        &mut self,
        provider: &Provider,
        endpoint: &Endpoint,
        upstream_model: &str,
        number: u32,
    ) {
        self.end_attempt();
        let tracer = self.telemetry.tracer();
        let system = gen_ai_system(provider.kind);
        let op = operation(endpoint).unwrap_or("chat");
        let span = tracer
            .span_builder(format!("{op} {upstream_model}"))
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("gen_ai.system", system),
                KeyValue::new("gen_ai.provider.name", system),
                KeyValue::new("gen_ai.operation.name", op),
                KeyValue::new("gen_ai.request.model", upstream_model.to_string()),
                KeyValue::new("server.address", provider.upstream.authority.clone()),
                KeyValue::new("cheapai.provider", provider.name.clone()),
                KeyValue::new("cheapai.attempt", i64::from(number)),
            ])
            .start_with_context(tracer, &self.cx);
        self.attempt = Some(span);
    }

    /// The status line of the attempt's answer.
    pub fn attempt_status(&mut self, status: u16) {
        if let Some(span) = self.attempt.as_mut() {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
    }

    /// Ends the attempt's span as failed: nothing reached the client, another attempt may
    /// follow.
    pub fn attempt_failed(&mut self, error: &GatewayError) {
        if let Some(mut span) = self.attempt.take() {
            span.set_attribute(KeyValue::new("error.type", error_type(error)));
            span.set_status(Status::error(error.message.clone()));
            span.end();
        }
    }

    fn end_attempt(&mut self) {
        if let Some(mut span) = self.attempt.take() {
            span.end();
        }
    }

    /// Ends both spans with what the request came to.
    pub fn finish(mut self, s: &Summary<'_>) {
        let mut attrs = vec![
            KeyValue::new("http.response.status_code", i64::from(s.status)),
            KeyValue::new("http.route", route(s.endpoint)),
            KeyValue::new("cheapai.request_id", s.request_id.to_string()),
            KeyValue::new("cheapai.attempts", i64::from(s.attempts)),
            KeyValue::new("cheapai.stream", s.stream),
        ];
        let op = s.endpoint.and_then(operation);
        if let Some(op) = op {
            attrs.push(KeyValue::new("gen_ai.operation.name", op));
        }
        if let Some(key) = s.key_id {
            attrs.push(KeyValue::new("cheapai.key_id", key.to_string()));
        }
        if let Some(model) = s.requested_model {
            attrs.push(KeyValue::new("gen_ai.request.model", model.to_string()));
        }
        if let Some(p) = s.provider {
            let system = gen_ai_system(p.kind);
            attrs.push(KeyValue::new("gen_ai.system", system));
            attrs.push(KeyValue::new("gen_ai.provider.name", system));
            attrs.push(KeyValue::new("cheapai.provider", p.name.clone()));
            attrs.push(KeyValue::new("cheapai.route", s.route.to_string()));
        }
        // what answered: tokens, model and timing belong to the request and its last attempt
        let mut answer = Vec::new();
        if s.provider.is_some() && !s.upstream_model.is_empty() {
            answer.push(KeyValue::new(
                "gen_ai.response.model",
                s.upstream_model.to_string(),
            ));
        }
        if let Some(r) = s.usage {
            answer.push(KeyValue::new(
                "gen_ai.usage.input_tokens",
                r.prompt_tokens as i64,
            ));
            answer.push(KeyValue::new(
                "gen_ai.usage.output_tokens",
                r.completion_tokens as i64,
            ));
            attrs.push(KeyValue::new(
                "cheapai.usage.cached_tokens",
                r.cached_tokens as i64,
            ));
            attrs.push(KeyValue::new(
                "cheapai.cost_usd",
                crate::usage::pricing::usd(r.cost_micro_usd),
            ));
            attrs.push(KeyValue::new("cheapai.estimated", r.estimated));
        }
        if let Some(ttft) = s.ttfb {
            answer.push(KeyValue::new(
                "gen_ai.server.time_to_first_token",
                ttft.as_secs_f64(),
            ));
        }
        if s.client_gone {
            attrs.push(KeyValue::new("cheapai.client_gone", true));
        }
        if s.reasoning_dropped {
            attrs.push(KeyValue::new("cheapai.reasoning_dropped", true));
        }
        let failed = s.status >= 500 || s.error.is_some_and(|e| e.kind.is_upstream());
        if let Some(mut span) = self.attempt.take() {
            span.set_attributes(answer.iter().cloned());
            if let Some(e) = s.error {
                // the answer broke after it started (a cut stream)
                span.set_attribute(KeyValue::new("error.type", error_type(e)));
                span.set_status(Status::error(e.message.clone()));
            }
            span.end();
        }
        let root = self.cx.span();
        if let (Some(op), Some(model)) = (op, s.requested_model) {
            root.update_name(format!("{op} {model}"));
        } else {
            root.update_name(format!("{} {}", s.method, route(s.endpoint)));
        }
        root.set_attributes(attrs.into_iter().chain(answer));
        if let Some(e) = s.error {
            root.set_attribute(KeyValue::new("error.type", e.kind.label()));
            if failed {
                root.set_status(Status::error(e.message.clone()));
            }
        } else if s.status >= 500 {
            root.set_status(Status::error(format!("status {}", s.status)));
        }
        root.end();
    }
}

/// `error.type` of a failed attempt: the failure class the failover loop saw (`connect`,
/// `status_500`, ...) or, for errors of another kind, the error's kind.
fn error_type(error: &GatewayError) -> &'static str {
    match error.provider_failure() {
        Some(f) => f.label(),
        None => error.kind.label(),
    }
}
