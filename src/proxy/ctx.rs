//! Per-request state, made in `new_ctx` and read once by `logging`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::catalog::Model;
use crate::dialect::Dialect;
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::limits::inflight::Slot;
use crate::limits::{Claim, Decision};
use crate::metrics;
use crate::ownership::{Owner, ResponseOwners};
use crate::providers::Provider;
use crate::telemetry::trace::RequestTrace;
use crate::usage::meter::Meter;

/// Everything one request accumulates on its way through the gateway.
#[derive(Debug)]
pub struct RequestCtx {
    /// Sent to the client as `x-request-id` and written in the log line.
    pub request_id: String,
    pub started: Instant,
    pub endpoint: Option<Endpoint>,
    /// Decides the error format; OpenAI's until the endpoint is known.
    pub dialect: Dialect,
    pub key_id: Option<String>,
    /// The `model` the client asked for.
    pub requested_model: Option<String>,
    /// The catalog entry of the last attempt: the one that served, after any fallback.
    pub model: Option<Arc<Model>>,
    /// The provider of the last attempt's deployment.
    pub provider: Option<Arc<Provider>>,
    /// That deployment's index in `model.deployments`.
    pub deployment: usize,
    /// The model name the last attempt sent to its provider.
    pub upstream_model: String,
    /// Upstream attempts made (retries and fallbacks included).
    pub attempts: u32,
    pub stream: bool,
    /// The client asked for OpenAI's usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// When the first response body byte was written to the client.
    pub first_byte_at: Option<Instant>,
    /// The failure, whether it became an error response or an error event mid-stream.
    pub error: Option<GatewayError>,
    /// The response started and cannot be completed: close the connection so the client
    /// sees a truncated body, instead of letting Pingora terminate it cleanly.
    pub abort_downstream: bool,
    pub client_gone: bool,
    /// The client's request body (kept for a token estimate when no usage is reported).
    pub body: Bytes,
    /// Reads usage from the answer; set once an answer starts.
    pub meter: Option<Meter>,
    /// The limits this request counts against, and what the limiter decided.
    pub limit: Option<(Claim, Decision)>,
    /// This request's place under its key's `max_inflight`, given back when the ctx drops.
    pub inflight_slot: Option<Slot>,
    /// `x-ratelimit-*` headers for the response.
    pub rate_headers: Vec<(&'static str, String)>,
    /// The request's spans, when tracing is on (`None` costs nothing).
    pub trace: Option<RequestTrace>,
    /// Where to record the key of the response the provider is about to store (native
    /// Responses passthrough): taken by the relay once it has read the response's id.
    pub record_owner: Option<(Arc<ResponseOwners>, Owner)>,
}

impl RequestCtx {
    pub fn new() -> Self {
        metrics::INFLIGHT.inc();
        Self {
            request_id: format!("req_{}", crate::ids::random_hex()),
            started: Instant::now(),
            endpoint: None,
            dialect: Dialect::OpenAi,
            key_id: None,
            requested_model: None,
            model: None,
            provider: None,
            deployment: 0,
            upstream_model: String::new(),
            attempts: 0,
            stream: false,
            include_usage: false,
            first_byte_at: None,
            error: None,
            abort_downstream: false,
            client_gone: false,
            body: Bytes::new(),
            meter: None,
            limit: None,
            inflight_slot: None,
            rate_headers: Vec::new(),
            trace: None,
            record_owner: None,
        }
    }
}

impl Drop for RequestCtx {
    /// Paired with the increment in `new_ctx`: the gauge counts live requests even when
    /// Pingora drops one without calling `logging`.
    fn drop(&mut self) {
        metrics::INFLIGHT.dec();
        crate::drain::request_ended();
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}
