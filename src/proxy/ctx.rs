//! Per-request state, made in `new_ctx` and read once by `logging`.

use std::sync::Arc;
use std::time::Instant;

use crate::catalog::Model;
use crate::dialect::Dialect;
use crate::endpoint::Endpoint;
use crate::error::GatewayError;

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
    /// The catalog model that served the request (after any fallback).
    pub model: Option<Arc<Model>>,
    pub stream: bool,
    /// When the first response body byte was written to the client.
    pub first_byte_at: Option<Instant>,
    /// The failure, whether it became an error response or an error event mid-stream.
    pub error: Option<GatewayError>,
    /// The response started and cannot be completed: close the connection so the client
    /// sees a truncated body, instead of letting Pingora terminate it cleanly.
    pub abort_downstream: bool,
    pub client_gone: bool,
}

impl RequestCtx {
    pub fn new() -> Self {
        Self {
            request_id: format!("req_{}", uuid::Uuid::new_v4().simple()),
            started: Instant::now(),
            endpoint: None,
            dialect: Dialect::OpenAi,
            key_id: None,
            model: None,
            stream: false,
            first_byte_at: None,
            error: None,
            abort_downstream: false,
            client_gone: false,
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}
