//! The one error type of the request path and its rendering in each client dialect.
//!
//! Every failure a client can see is a [`GatewayError`]; one `match` in [`ErrorKind`] gives it
//! its HTTP status, its OpenAI `type`/`code`, its Anthropic `type` and its metric label, so the
//! same problem looks the same on every endpoint and in every dashboard.

use bytes::Bytes;
use serde_json::json;

use crate::dialect::Dialect;
use crate::routing::Failure;

/// Longest provider error text logged for a refused provider key (the error body is
/// already bounded by the exchange; this keeps one log line readable).
const MAX_LOGGED_DETAIL: usize = 2048;

/// Longest message a client receives from the gateway itself. Messages quote client input at
/// times (a parser's complaint about a value, a model name); the bound keeps one bad request
/// from producing megabytes of error text, log or span.
const MAX_MESSAGE: usize = 1024;

/// What went wrong, as far as the client and the metrics need to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No key, or a key the gateway does not know.
    InvalidKey,
    /// The key may not use this model.
    ModelNotAllowed,
    /// Body over `server.max_body_bytes`.
    BodyTooLarge,
    /// Malformed JSON or a field with the wrong shape.
    InvalidRequest,
    /// The `model` is not in the catalog.
    ModelNotFound,
    /// No such endpoint.
    UnknownPath,
    /// Something the client named by id (a stored response) does not exist, or not for its
    /// key.
    NotFound,
    /// The endpoint exists but not for this method.
    MethodNotAllowed,
    /// The provider could not be reached (refused, reset, TLS failure, DNS).
    UpstreamUnreachable,
    /// Connect, first-byte or between-chunks deadline passed.
    UpstreamTimeout,
    /// The provider answered with an error status; it is forwarded.
    UpstreamStatus(u16),
    /// The provider's answer broke the protocol (cut body, bad framing).
    UpstreamProtocol,
    /// A whole answer with a success status (billed by the provider) that the gateway could
    /// not read or translate.
    UpstreamUnreadable,
    /// The provider refused the gateway's own key or account (401, 402, 403, or a billing
    /// or quota error about the account). That is the operator's problem, not the client's:
    /// the client gets a 502 with the gateway's own message, since the provider's text
    /// may quote part of the operator's key and a 401 would tell the client that *its* key
    /// is wrong.
    ProviderAuth,
    /// Every deployment that could serve the model has an open circuit: answered at once
    /// instead of waiting on providers known to be down.
    CircuitOpen,
    /// The client did not send its request in time.
    ClientTimeout,
    /// A rate limit (requests or tokens per minute) refused the request.
    RateLimited,
    /// The key's budget is spent.
    QuotaExceeded,
    /// Shared state (Redis) is unreachable and the policy is to refuse.
    StateUnavailable,
    /// A bug or an impossible state inside the gateway.
    Internal,
}

impl ErrorKind {
    /// The HTTP status the client receives.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidKey => 401,
            Self::ModelNotAllowed => 403,
            Self::BodyTooLarge => 413,
            Self::InvalidRequest => 400,
            Self::ModelNotFound | Self::UnknownPath | Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::ClientTimeout => 408,
            Self::UpstreamUnreachable
            | Self::UpstreamProtocol
            | Self::UpstreamUnreadable
            | Self::ProviderAuth => 502,
            Self::UpstreamTimeout => 504,
            Self::UpstreamStatus(status) => status,
            Self::RateLimited | Self::QuotaExceeded => 429,
            Self::StateUnavailable | Self::CircuitOpen => 503,
            Self::Internal => 500,
        }
    }

    /// OpenAI's `error.type`. The SDKs pick their exception class from the status, so this
    /// only has to read naturally next to OpenAI's own values.
    fn openai_type(self) -> &'static str {
        match self.status() {
            429 => "rate_limit_error",
            s if s >= 500 => "server_error",
            _ => "invalid_request_error",
        }
    }

    /// OpenAI's `error.code`, the machine-readable reason.
    fn openai_code(self) -> Option<&'static str> {
        match self {
            Self::InvalidKey => Some("invalid_api_key"),
            Self::ModelNotAllowed => Some("model_not_allowed"),
            Self::BodyTooLarge => Some("request_too_large"),
            Self::InvalidRequest => Some("invalid_value"),
            Self::ModelNotFound => Some("model_not_found"),
            Self::UnknownPath => Some("unknown_url"),
            Self::MethodNotAllowed => Some("method_not_allowed"),
            Self::ClientTimeout => Some("request_timeout"),
            Self::UpstreamUnreachable => Some("upstream_unreachable"),
            Self::UpstreamTimeout => Some("upstream_timeout"),
            Self::UpstreamProtocol => Some("upstream_protocol_error"),
            Self::UpstreamUnreadable => Some("upstream_unreadable_answer"),
            Self::ProviderAuth => Some("provider_auth_failed"),
            Self::CircuitOpen => Some("upstream_unavailable"),
            Self::RateLimited => Some("rate_limit_exceeded"),
            Self::QuotaExceeded => Some("insufficient_quota"),
            Self::StateUnavailable => Some("state_unavailable"),
            Self::UpstreamStatus(_) | Self::Internal | Self::NotFound => None,
        }
    }

    /// Anthropic's `error.type` for the same status, as its API documents them.
    fn anthropic_type(self) -> &'static str {
        match self.status() {
            401 => "authentication_error",
            402 => "billing_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            504 => "timeout_error",
            s if s >= 500 => "api_error",
            _ => "invalid_request_error",
        }
    }

    /// Whether the provider (not the client or the gateway) failed.
    pub fn is_upstream(self) -> bool {
        matches!(
            self,
            Self::UpstreamUnreachable
                | Self::UpstreamTimeout
                | Self::UpstreamStatus(_)
                | Self::UpstreamProtocol
                | Self::UpstreamUnreadable
                | Self::ProviderAuth
                | Self::CircuitOpen
        )
    }

    /// A bounded label for metrics and the access log.
    pub fn label(self) -> &'static str {
        match self {
            Self::InvalidKey => "invalid_key",
            Self::ModelNotAllowed => "model_not_allowed",
            Self::BodyTooLarge => "body_too_large",
            Self::InvalidRequest => "invalid_request",
            Self::ModelNotFound => "model_not_found",
            Self::UnknownPath => "unknown_path",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::ClientTimeout => "client_timeout",
            Self::UpstreamUnreachable => "upstream_unreachable",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamStatus(_) => "upstream_status",
            Self::UpstreamProtocol => "upstream_protocol",
            Self::UpstreamUnreadable => "upstream_unreadable",
            Self::ProviderAuth => "provider_auth",
            Self::CircuitOpen => "circuit_open",
            Self::RateLimited => "rate_limited",
            Self::QuotaExceeded => "quota_exceeded",
            Self::StateUnavailable => "state_unavailable",
            Self::Internal => "internal",
        }
    }
}

/// A failure with the message the client reads.
#[derive(Debug, Clone)]
pub struct GatewayError {
    pub kind: ErrorKind,
    pub message: String,
    /// The request field at fault (OpenAI's `param`).
    pub param: Option<String>,
    /// An upstream's own error `type`/`code`, kept when the provider gave them.
    pub upstream_type: Option<String>,
    pub upstream_code: Option<String>,
    /// Seconds the client should wait, sent as `Retry-After`.
    pub retry_after: Option<u64>,
    /// A provider's own well-formed error answer, forwarded unmodified to clients of the same
    /// dialect (Claude Code matches Anthropic's error texts to recover).
    pub passthrough: Option<Passthrough>,
    /// `x-ratelimit-*` headers sent with the error.
    pub rate_limit_headers: Vec<(&'static str, String)>,
    /// How a provider failed, when it is known more precisely than the kind says (a connect
    /// timeout, which is always safe to retry, against a first-byte timeout).
    pub failure: Option<Failure>,
    /// What went wrong inside the gateway, in the words of the failing part (a library's
    /// error text, already redacted): written to the operator's log with the request id,
    /// never sent to the client, who reads only [`Self::message`].
    pub detail: Option<String>,
}

/// A provider error answer kept verbatim, with the dialect it is written in.
#[derive(Debug, Clone)]
pub struct Passthrough {
    pub dialect: Dialect,
    pub status: u16,
    pub body: Bytes,
}

impl GatewayError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE {
            message = format!("{}…", crate::text::cut(&message, MAX_MESSAGE));
        }
        Self {
            kind,
            message,
            param: None,
            upstream_type: None,
            upstream_code: None,
            retry_after: None,
            passthrough: None,
            rate_limit_headers: Vec::new(),
            failure: None,
            detail: None,
        }
    }

    /// A failure inside the gateway: the client reads "internal error while `what`" (and,
    /// where it is rendered, the request id); `detail` goes to the operator's log only.
    pub fn internal(what: &str, detail: impl std::fmt::Display) -> Self {
        Self {
            detail: Some(detail.to_string()),
            ..Self::new(ErrorKind::Internal, format!("internal error while {what}"))
        }
    }

    /// The provider failure behind this error, for the failover loop; `None` when the
    /// provider is not at fault (a bad request, a limit, the gateway itself).
    pub fn provider_failure(&self) -> Option<Failure> {
        self.failure.or(match self.kind {
            ErrorKind::UpstreamUnreachable => Some(Failure::Connect),
            ErrorKind::UpstreamTimeout => Some(Failure::FirstByteTimeout),
            ErrorKind::UpstreamProtocol => Some(Failure::Malformed),
            ErrorKind::UpstreamUnreadable => Some(Failure::Unreadable),
            ErrorKind::UpstreamStatus(status) => Some(Failure::Status(status)),
            _ => None,
        })
    }

    /// The provider `provider` refused the gateway's own credentials or account with
    /// `status`. The client reads only the gateway's message; the provider's own text
    /// (`detail`, bounded) is kept for the operator's log, which [`crate::providers::Provider`]
    /// writes at warn once it has scrubbed its key from it (a provider may quote the key it
    /// refused), and the refusal is counted in `cheapai_provider_auth_failures_total{provider}`.
    /// Failover sees the provider's status, as for any other error answer.
    pub fn provider_auth(provider: &str, status: u16, detail: &str) -> Self {
        let detail: String = detail.trim().chars().take(MAX_LOGGED_DETAIL).collect();
        crate::metrics::PROVIDER_AUTH_FAILURES
            .with_label_values(&[provider])
            .inc();
        Self {
            failure: Some(Failure::Status(status)),
            detail: Some(format!(
                "provider {provider} refused the gateway's credentials or account ({status}): {detail}"
            )),
            ..Self::new(
                ErrorKind::ProviderAuth,
                format!(
                    "the provider rejected the gateway's credentials or account \
                     (provider {provider}, status {status}); the operator has been alerted"
                ),
            )
        }
    }

    /// A 400 naming the offending field.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self {
            param: Some(param.to_string()),
            ..Self::new(ErrorKind::InvalidRequest, message)
        }
    }

    /// The HTTP status (the kind's; see [`Self::status_for`] for what a client receives).
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The HTTP status a client of `dialect` receives: the provider's own for a forwarded
    /// error in the client's dialect, else the kind's.
    pub fn status_for(&self, dialect: Dialect) -> u16 {
        match &self.passthrough {
            Some(p) if p.dialect == dialect => p.status,
            _ => self.status(),
        }
    }

    /// The JSON error body in the client's dialect.
    pub fn body(&self, dialect: Dialect) -> Bytes {
        if let Some(p) = self.passthrough.as_ref().filter(|p| p.dialect == dialect) {
            return p.body.clone();
        }
        let value = match dialect {
            Dialect::OpenAi => json!({"error": self.openai_object()}),
            Dialect::Anthropic => json!({
                "type": "error",
                "error": {"type": self.anthropic_type(), "message": self.message},
            }),
        };
        Bytes::from(value.to_string())
    }

    /// The error as one SSE event, for a failure after a stream began: the status line is
    /// already sent, so the client learns of it from an event its SDK raises on (OpenAI's
    /// Python SDK raises on a `data:` payload with a top-level `error`; Anthropic's on
    /// `event: error`).
    pub fn sse_event(&self, dialect: Dialect) -> Bytes {
        let body = self.body(dialect);
        let mut event = Vec::with_capacity(body.len() + 24);
        if dialect == Dialect::Anthropic {
            event.extend_from_slice(b"event: error\n");
        }
        event.extend_from_slice(b"data: ");
        event.extend_from_slice(&body);
        event.extend_from_slice(b"\n\n");
        Bytes::from(event)
    }

    /// The error as a Responses API stream event (`event: error`), for a failure after a
    /// Responses stream began: Responses clients (Codex) read only typed events.
    pub fn responses_event(&self) -> Bytes {
        let object = self.openai_object();
        let code = object["code"].as_str().unwrap_or("server_error");
        let event = json!({
            "type": "error",
            "code": code,
            "message": self.message,
            "param": object["param"],
        });
        Bytes::from(format!("event: error\ndata: {event}\n\n"))
    }

    /// The OpenAI `error` object (`message`, `type`, `param`, `code`), as a typed chat answer
    /// carries a mid-stream failure.
    pub(crate) fn openai_object(&self) -> serde_json::Value {
        let error_type = self
            .upstream_type
            .as_deref()
            .unwrap_or(self.kind.openai_type());
        let code = self.upstream_code.as_deref().or(self.kind.openai_code());
        json!({"message": self.message, "type": error_type, "param": self.param, "code": code})
    }

    fn anthropic_type(&self) -> &str {
        match (&self.upstream_type, self.kind) {
            (Some(t), ErrorKind::UpstreamStatus(_)) if is_anthropic_type(t) => t,
            _ => self.kind.anthropic_type(),
        }
    }
}

fn is_anthropic_type(t: &str) -> bool {
    matches!(
        t,
        "invalid_request_error"
            | "authentication_error"
            | "billing_error"
            | "permission_error"
            | "not_found_error"
            | "request_too_large"
            | "rate_limit_error"
            | "api_error"
            | "timeout_error"
            | "overloaded_error"
    )
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.kind.label(),
            self.status(),
            self.message
        )
    }
}

impl std::error::Error for GatewayError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &Bytes) -> serde_json::Value {
        serde_json::from_slice(b).unwrap_or_default()
    }

    #[test]
    fn openai_body_has_message_type_param_code() {
        let e = GatewayError::invalid("messages", "`messages` must be an array");
        let v = parse(&e.body(Dialect::OpenAi));
        assert_eq!(e.status(), 400);
        assert_eq!(v["error"]["param"], "messages");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "invalid_value");
        assert_eq!(v["error"]["message"], "`messages` must be an array");
    }

    #[test]
    fn anthropic_body_uses_anthropic_types() {
        let e = GatewayError::new(ErrorKind::InvalidKey, "bad key");
        let v = parse(&e.body(Dialect::Anthropic));
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "authentication_error");
        let e = GatewayError::new(ErrorKind::UpstreamTimeout, "slow");
        assert_eq!(
            parse(&e.body(Dialect::Anthropic))["error"]["type"],
            "timeout_error"
        );
    }

    #[test]
    fn every_kind_has_the_documented_status() {
        let cases = [
            (ErrorKind::InvalidKey, 401),
            (ErrorKind::ModelNotAllowed, 403),
            (ErrorKind::BodyTooLarge, 413),
            (ErrorKind::InvalidRequest, 400),
            (ErrorKind::ModelNotFound, 404),
            (ErrorKind::UnknownPath, 404),
            (ErrorKind::MethodNotAllowed, 405),
            (ErrorKind::UpstreamUnreachable, 502),
            (ErrorKind::UpstreamTimeout, 504),
            (ErrorKind::UpstreamStatus(429), 429),
            (ErrorKind::Internal, 500),
        ];
        for (kind, status) in cases {
            assert_eq!(kind.status(), status, "{kind:?}");
        }
    }

    #[test]
    fn upstream_type_and_code_are_kept() {
        let mut e = GatewayError::new(ErrorKind::UpstreamStatus(429), "slow down");
        e.upstream_type = Some("requests".into());
        e.upstream_code = Some("rate_limit_exceeded".into());
        let v = parse(&e.body(Dialect::OpenAi));
        assert_eq!(v["error"]["type"], "requests");
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        assert_eq!(
            parse(&e.body(Dialect::Anthropic))["error"]["type"],
            "rate_limit_error"
        );
    }

    #[test]
    fn sse_event_is_one_complete_event() {
        let e = GatewayError::new(ErrorKind::UpstreamTimeout, "idle");
        let ev = e.sse_event(Dialect::OpenAi);
        assert!(ev.starts_with(b"data: {\"error\""));
        assert!(ev.ends_with(b"\n\n"));
        let ev = e.sse_event(Dialect::Anthropic);
        assert!(ev.starts_with(b"event: error\ndata: {"));
    }
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod provider_auth_tests;
