//! Google Vertex AI: Gemini and Claude models in a Google Cloud project, each publisher in
//! its own wire format, signed with a service account's OAuth2 access token.
//!
//! Vertex adds no format of its own, so it reuses the Gemini and Anthropic translators; this
//! module holds what differs:
//! - where a model lives: `{base}/v1/projects/{project}/locations/{region}/publishers/{publisher}/models/{model}:{method}`,
//!   base `https://{region}-aiplatform.googleapis.com` (`https://aiplatform.googleapis.com`
//!   for region `global`) unless the config's `base_url` overrides it;
//! - which publisher a model is ([`Publisher::of`]): the provider's `publisher` setting, else
//!   `anthropic` for an upstream name starting `claude-`, else `google`;
//! - Gemini methods are `:generateContent` and `:streamGenerateContent?alt=sse` with Gemini's
//!   bodies; Claude's are `:rawPredict` and `:streamRawPredict` with the Messages body minus
//!   `model`, plus `"anthropic_version": "vertex-2023-10-16"` ([`claude_body`]);
//! - auth is `Authorization: Bearer` with an access token minted from the key file
//!   ([`account`], cached by [`token`]; the exchange with `token_uri` is the proxy's I/O).

pub mod account;
pub mod embeddings;
mod request;
pub mod token;

use bytes::Bytes;
use serde_json::Value;

use super::upstream::Upstream;
use crate::error::GatewayError;
use account::ServiceAccount;
use token::TokenCache;

/// The `anthropic_version` Vertex requires in every Claude request body.
pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// Who publishes a model on Vertex, which decides its path and wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publisher {
    /// Gemini: Gemini's `generateContent` format.
    Google,
    /// Claude: Anthropic's Messages format on `rawPredict`.
    Anthropic,
}

impl Publisher {
    /// The publisher of `upstream_model`: `explicit` when the provider sets one, else
    /// Anthropic for `claude-*` names and Google for every other.
    pub fn of(upstream_model: &str, explicit: Option<Publisher>) -> Self {
        explicit.unwrap_or(if upstream_model.starts_with("claude-") {
            Self::Anthropic
        } else {
            Self::Google
        })
    }

    fn segment(self) -> &'static str {
        match self {
            Self::Google => "google",
            Self::Anthropic => "anthropic",
        }
    }

    /// The method that generates an answer, streamed or whole.
    pub fn method(self, stream: bool) -> &'static str {
        match (self, stream) {
            (Self::Google, false) => "generateContent",
            (Self::Google, true) => "streamGenerateContent?alt=sse",
            (Self::Anthropic, false) => "rawPredict",
            (Self::Anthropic, true) => "streamRawPredict",
        }
    }
}

/// A Vertex provider's project, region, publisher rule and credentials.
#[derive(Debug)]
pub struct Vertex {
    pub project: String,
    pub region: String,
    /// Forces every model of the provider to this publisher (config `publisher`).
    pub publisher: Option<Publisher>,
    pub account: ServiceAccount,
    pub tokens: TokenCache,
}

impl Vertex {
    /// The path of `method` on `model` of `publisher`, under `upstream`'s prefix.
    pub fn path(
        &self,
        upstream: &Upstream,
        publisher: Publisher,
        model: &str,
        method: &str,
    ) -> String {
        upstream.path(&format!(
            "/v1/projects/{}/locations/{}/publishers/{}/models/{}:{method}",
            segment(&self.project),
            segment(&self.region),
            publisher.segment(),
            segment(model),
        ))
    }

    /// What the provider's deployments' state depends on (see `Provider::state_fingerprint`).
    pub fn fingerprint(&self) -> String {
        format!(
            "{} {} {:?} {}",
            self.project,
            self.region,
            self.publisher,
            self.account.fingerprint()
        )
    }
}

/// The regional endpoint of `region` (the config's default `base_url`).
pub fn base_url(region: &str) -> String {
    if region == "global" {
        "https://aiplatform.googleapis.com".to_string()
    } else {
        format!("https://{region}-aiplatform.googleapis.com")
    }
}

/// Whether `value` can be a project id or region as written: letters, digits, `-`, `_`
/// (Google's ids and region names are those); nothing that could leave its path segment or
/// the host name.
pub fn valid_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// A name as one path segment: Vertex's model names carry `@` and `.`
/// (`claude-sonnet-4-5@20250929`), kept as they are; anything that could end the segment or
/// start a query is percent-encoded.
fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A Messages request body as Vertex takes it: `model` removed (the path names it) and
/// `anthropic_version` set to [`ANTHROPIC_VERSION`]; `stream` stays, it picks the answer.
pub fn claude_body(body: &[u8]) -> Result<Bytes, GatewayError> {
    let mut value: Value = serde_json::from_slice(body)
        .map_err(|e| GatewayError::invalid("body", format!("the body is not JSON: {e}")))?;
    let Some(object) = value.as_object_mut() else {
        return Err(GatewayError::invalid(
            "body",
            "the body is not a JSON object",
        ));
    };
    object.remove("model");
    object.insert(
        "anthropic_version".to_string(),
        Value::String(ANTHROPIC_VERSION.to_string()),
    );
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|e| GatewayError::invalid("body", format!("the body is not JSON: {e}")))
}

#[cfg(test)]
mod tests;
