//! The client-facing endpoints and how a method + path maps onto them.

use crate::dialect::Dialect;
use crate::error::{ErrorKind, GatewayError};

/// Every endpoint the proxy listener serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /` or `HEAD /`: clients (Claude Code) probe the base URL before their first call.
    Root,
    /// `POST /v1/chat/completions`
    ChatCompletions,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `GET /v1/models`
    Models,
    /// `GET /v1/models/{id}`
    Model(String),
    /// `POST /v1/responses` (OpenAI's Responses API: Codex CLI, the Agents SDK)
    Responses,
    /// `POST /v1/messages` (Anthropic)
    Messages,
    /// `POST /v1/messages/count_tokens` (Anthropic)
    CountTokens,
    /// `GET /v1/usage`: the key's own usage history.
    Usage,
    /// A response a provider stores (OpenAI's Responses API): `GET` or `DELETE
    /// /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`, `POST
    /// /v1/responses/{id}/cancel`. Holds the path after `/v1/responses/`.
    StoredResponse(String),
}

impl Endpoint {
    /// Maps a request line onto an endpoint. The query string is ignored (Claude Code adds
    /// `?beta=true`); a known path with the wrong method is a 405, anything else a 404.
    pub fn route(method: &http::Method, path: &str) -> Result<Self, GatewayError> {
        let path = path.split('?').next().unwrap_or_default();
        if path == "/" && (*method == http::Method::GET || *method == http::Method::HEAD) {
            return Ok(Self::Root);
        }
        if let Some(rest) = path
            .strip_prefix("/v1/responses/")
            .filter(|r| !r.is_empty())
        {
            return Self::stored_response(method, path, rest);
        }
        let (endpoint, allowed) = match path {
            "/" => (Self::Root, http::Method::GET),
            "/v1/chat/completions" => (Self::ChatCompletions, http::Method::POST),
            "/v1/embeddings" => (Self::Embeddings, http::Method::POST),
            "/v1/models" => (Self::Models, http::Method::GET),
            "/v1/messages" => (Self::Messages, http::Method::POST),
            "/v1/responses" => (Self::Responses, http::Method::POST),
            "/v1/messages/count_tokens" => (Self::CountTokens, http::Method::POST),
            "/v1/usage" => (Self::Usage, http::Method::GET),
            _ => match path.strip_prefix("/v1/models/") {
                Some(id) if !id.is_empty() => (Self::Model(id.to_string()), http::Method::GET),
                _ => {
                    return Err(GatewayError::new(
                        ErrorKind::UnknownPath,
                        format!("Invalid URL ({method} {})", crate::text::bounded_name(path)),
                    ))
                }
            },
        };
        if *method != allowed {
            return Err(GatewayError::new(
                ErrorKind::MethodNotAllowed,
                format!("{method} is not allowed on {path}; use {allowed}"),
            ));
        }
        Ok(endpoint)
    }

    /// `/v1/responses/{id}[/input_items|/cancel]` with the methods each takes. An id of
    /// another shape is no stored response of this gateway: 404, and it never reaches a
    /// provider's path.
    fn stored_response(
        method: &http::Method,
        path: &str,
        rest: &str,
    ) -> Result<Self, GatewayError> {
        let (id, sub) = rest.split_once('/').unwrap_or((rest, ""));
        let allowed: &[http::Method] = match sub {
            "" => &[http::Method::GET, http::Method::DELETE],
            "input_items" => &[http::Method::GET],
            "cancel" => &[http::Method::POST],
            _ => &[],
        };
        if allowed.is_empty() || !is_response_id(id) {
            return Err(GatewayError::new(
                ErrorKind::UnknownPath,
                format!("Invalid URL ({method} {})", crate::text::bounded_name(path)),
            ));
        }
        if !allowed.contains(method) {
            return Err(GatewayError::new(
                ErrorKind::MethodNotAllowed,
                format!("{method} is not allowed on /v1/responses/{rest}"),
            ));
        }
        Ok(Self::StoredResponse(rest.to_string()))
    }

    /// The stored response's id, for [`Self::StoredResponse`].
    pub fn stored_response_id(&self) -> Option<&str> {
        match self {
            Self::StoredResponse(rest) => {
                Some(rest.split_once('/').map_or(rest.as_str(), |(id, _)| id))
            }
            _ => None,
        }
    }

    /// The API family of the endpoint, which decides the shape of its errors and answers.
    /// The models listing speaks Anthropic to clients that send `anthropic-version`.
    pub fn dialect(&self, anthropic_version_sent: bool) -> Dialect {
        match self {
            Self::Messages | Self::CountTokens => Dialect::Anthropic,
            Self::Models | Self::Model(_) if anthropic_version_sent => Dialect::Anthropic,
            _ => Dialect::OpenAi,
        }
    }

    /// A bounded label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat_completions",
            Self::Embeddings => "embeddings",
            Self::Models | Self::Model(_) => "models",
            Self::Messages => "messages",
            Self::Responses | Self::StoredResponse(_) => "responses",
            Self::CountTokens => "count_tokens",
            Self::Usage => "usage",
            Self::Root => "root",
        }
    }
}

/// A response id of the shape providers give (`resp_` and letters, digits, `_`, `-`),
/// bounded: anything else is never a stored response of this gateway.
pub fn is_response_id(id: &str) -> bool {
    id.len() <= crate::text::MAX_CLIENT_NAME
        && id.starts_with("resp")
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn routes_known_paths_and_ignores_query() {
        assert_eq!(
            Endpoint::route(&Method::POST, "/v1/chat/completions?x=1").unwrap(),
            Endpoint::ChatCompletions
        );
        assert_eq!(
            Endpoint::route(&Method::GET, "/v1/models/gpt-4o").unwrap(),
            Endpoint::Model("gpt-4o".into())
        );
        assert_eq!(
            Endpoint::route(&Method::POST, "/v1/embeddings").unwrap(),
            Endpoint::Embeddings
        );
        let messages = Endpoint::route(&Method::POST, "/v1/messages?beta=true").unwrap();
        assert_eq!(messages, Endpoint::Messages);
        assert_eq!(messages.dialect(false), Dialect::Anthropic);
        assert_eq!(
            Endpoint::route(&Method::POST, "/v1/messages/count_tokens?beta=true").unwrap(),
            Endpoint::CountTokens
        );
        assert_eq!(Endpoint::Models.dialect(true), Dialect::Anthropic);
        assert_eq!(Endpoint::Models.dialect(false), Dialect::OpenAi);
    }

    #[test]
    fn the_root_answers_get_and_head() {
        assert_eq!(Endpoint::route(&Method::GET, "/").unwrap(), Endpoint::Root);
        assert_eq!(Endpoint::route(&Method::HEAD, "/").unwrap(), Endpoint::Root);
        assert_eq!(
            Endpoint::route(&Method::POST, "/").unwrap_err().status(),
            405
        );
    }

    #[test]
    fn wrong_method_is_405_unknown_path_404() {
        let e = Endpoint::route(&Method::GET, "/v1/chat/completions").unwrap_err();
        assert_eq!(e.status(), 405);
        let e = Endpoint::route(&Method::POST, "/v1/nope").unwrap_err();
        assert_eq!(e.status(), 404);
        assert_eq!(e.kind, ErrorKind::UnknownPath);
    }

    #[test]
    fn stored_responses_take_their_methods_and_well_formed_ids_only() {
        let r = Endpoint::route(&Method::GET, "/v1/responses/resp_1/input_items").unwrap();
        assert_eq!(r.stored_response_id(), Some("resp_1"));
        assert!(Endpoint::route(&Method::DELETE, "/v1/responses/resp_1").is_ok());
        assert!(Endpoint::route(&Method::POST, "/v1/responses/resp_1/cancel").is_ok());
        let e = Endpoint::route(&Method::POST, "/v1/responses/resp_1").unwrap_err();
        assert_eq!(e.status(), 405);
        for bad in [
            "/v1/responses/resp_1/other",
            "/v1/responses/..%2f",
            "/v1/responses/x y",
        ] {
            assert_eq!(
                Endpoint::route(&Method::GET, bad).unwrap_err().status(),
                404,
                "{bad}"
            );
        }
    }
}
