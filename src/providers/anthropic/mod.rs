//! Anthropic's Messages wire format, on both sides of the gateway.
//!
//! - [`upstream`]: the gateway talks to Anthropic. An OpenAI chat request becomes a Messages
//!   request (docs/translation.md A), Anthropic's answer (JSON or stream) becomes OpenAI chat
//!   (B), and Anthropic's error answers become [`GatewayError`](crate::error::GatewayError)s
//!   (E).
//! - [`client`]: an Anthropic client (Claude Code, the Anthropic SDK) on a model served in
//!   another format. Its request becomes an OpenAI chat request (D1), the OpenAI chat answer
//!   becomes Anthropic's (D2, D3), and `count_tokens` is estimated locally.
//!
//! Requests are converted through `serde_json::Value` rather than typed structs: both formats
//! accept several shapes per field (string or parts, string or object) and every rejection must
//! name the field at fault. Answers are read with small typed structs that ignore what they do
//! not use. What both sides share (tool ids in Anthropic's form) is here.
//!
//! Ending rules for streams, the same in both directions:
//! - an upstream error event mid-stream is turned into the client dialect's error event and
//!   the translator stops, reading nothing after it; `push` returns `Ok`, since the answer
//!   ended the way the upstream ended it;
//! - a stream that ends without its terminator but after the upstream gave its stop reason
//!   is completed normally (the reason is real, only the terminator is missing);
//! - a stream cut before any stop reason gets no invented one: `finish` closes the open content
//!   block (Anthropic clients) and returns an `UpstreamProtocol` error, so the caller appends
//!   the error event in the client's dialect and accounts the request as failed. Bytes already
//!   appended to `out` are whole client events and should be sent first.

use serde_json::Value;

use crate::error::GatewayError;
use crate::ids::safe_id;

pub mod client;
pub mod upstream;

pub use upstream::upstream_error;

/// Appends one SSE event: `event: <name>` when named (Anthropic), then `data: <json>`.
fn put_event(out: &mut Vec<u8>, name: Option<&str>, data: &Value) -> Result<(), GatewayError> {
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut *out, data)
        .map_err(|e| GatewayError::internal("encoding JSON", e))?;
    out.extend_from_slice(b"\n\n");
    Ok(())
}

/// A tool-call id restricted to `[A-Za-z0-9_-]` (Anthropic's rule), the same way on both sides
/// of a conversation so `tool_use.id` and `tool_result.tool_use_id` still match.
fn sanitize_tool_id(id: &str) -> String {
    safe_id(id)
}

/// A fresh Anthropic-style tool id, for upstreams that send none.
fn synthesize_tool_id() -> String {
    format!("toolu_{}", crate::ids::random_hex())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
