//! What happened to one request: the one value the exchange fills in and the bookkeeping
//! ([`super::bookkeeping`]) consumes once, for its metrics, access line, spans, usage record
//! and the settlement of its limits.
//!
//! The exchange writes it as it goes (which deployment it tried, when the first byte left,
//! whether the client went away, what failed), a refusal adds its error, and the server app
//! ([`super::app`]) takes it out of the context whole for the bookkeeping once the answer
//! is sent, so nothing after that point reads or writes it in pieces.

use std::sync::Arc;
use std::time::Instant;

use crate::catalog::Model;
use crate::error::GatewayError;
use crate::providers::Provider;
use crate::usage::meter::Meter;

/// How the exchange ended, when it did not end with an error response.
pub enum Finished {
    /// The answer (or an SSE error event) was delivered and the response is complete.
    Complete,
    /// The client went away, or the body broke after its header was sent: the downstream
    /// connection must be dropped, not finished.
    Abort,
}

/// One request's outcome; see the module comment.
#[derive(Debug, Default)]
pub struct Outcome {
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
    /// When the first response body byte was written to the client.
    pub first_byte_at: Option<Instant>,
    /// The failure, whether it became an error response or an error event mid-stream.
    pub error: Option<GatewayError>,
    pub client_gone: bool,
    /// Reads usage from the answer; set once an answer starts.
    pub meter: Option<Meter>,
    /// Reasoning was asked for but this tool-loop turn went without it (its signed state was
    /// lost): in the access log, and counted in `cheapai_reasoning_dropped_total`.
    pub reasoning_dropped: bool,
}
