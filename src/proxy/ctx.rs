//! Per-request state, made once a request's header is read: what the request path needs to
//! know about the request (who, what, how it asked), plus its [`Outcome`], which the
//! bookkeeping takes whole.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::dialect::Dialect;
use crate::endpoint::Endpoint;
use crate::limits::inflight::Slot;
use crate::limits::{Claim, Decision};
use crate::metrics;
use crate::ownership::{Owner, ResponseOwners};
use crate::telemetry::trace::RequestTrace;
use crate::thinking::ThinkingStore;

use super::outcome::Outcome;

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
    pub stream: bool,
    /// The client asked for OpenAI's usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// The client's request body (kept for a token estimate when no usage is reported).
    pub body: Bytes,
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
    /// Where to keep the signed reasoning of a Claude turn for a chat client, and the key it is
    /// kept for: taken by the relay once the turn is complete.
    pub keep_reasoning: Option<(Arc<ThinkingStore>, String)>,
    /// A Responses request the gateway stores: taken by the relay once a translated answer's
    /// response object is complete (boxed: most requests have none).
    pub pending_turn: Option<Box<super::turn::PendingTurn>>,
    /// What happened: written by the exchange, taken whole by the bookkeeping.
    pub outcome: Outcome,
}

impl RequestCtx {
    pub fn new() -> Self {
        metrics::INFLIGHT.inc();
        Self {
            request_id: crate::ids::request_id(),
            started: Instant::now(),
            endpoint: None,
            dialect: Dialect::OpenAi,
            key_id: None,
            requested_model: None,
            stream: false,
            include_usage: false,
            body: Bytes::new(),
            limit: None,
            inflight_slot: None,
            rate_headers: Vec::new(),
            trace: None,
            record_owner: None,
            keep_reasoning: None,
            pending_turn: None,
            outcome: Outcome::default(),
        }
    }
}

impl Drop for RequestCtx {
    /// Paired with the increment in `new`: the gauge counts live requests even when one is
    /// dropped before its bookkeeping (the runtime stopping under it).
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
