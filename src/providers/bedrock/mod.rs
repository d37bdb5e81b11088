//! AWS Bedrock's runtime. Claude models: Anthropic's Messages body and answers on Bedrock's
//! InvokeModel paths, signed with SigV4. Every other model (Amazon Nova, Meta Llama,
//! Mistral, …): Bedrock's own Converse API, reached through the chat pivot ([`converse`],
//! which also decides which API a model id takes).
//!
//! What differs from Anthropic's own API (Bedrock's Claude reference):
//! - the model is in the path, percent-encoded: `/model/{modelId}/invoke`, or
//!   `/model/{modelId}/invoke-with-response-stream` for a stream;
//! - the body is Anthropic's without `model` and `stream` (Bedrock refuses both) and with
//!   `"anthropic_version": "bedrock-2023-05-31"`;
//! - a whole answer is Anthropic's message JSON; a stream is AWS's binary event stream
//!   whose chunks carry Anthropic's events ([`stream`]);
//! - every request is signed (SigV4, signing name `bedrock`) instead of carrying a key
//!   ([`sign`]), with credentials a source keeps fresh ([`credentials`]);
//! - errors are `{"message":…}` with the type in `x-amzn-ErrorType`; the status says enough
//!   to route them (429 throttling, 400 validation, 403 access, 5xx unavailable).

pub mod converse;
pub mod credentials;
pub mod embeddings;
pub mod sign;
pub mod stream;

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use serde_json::Value;

use self::credentials::CredentialCache;
use super::cloud_betas::{self, Cloud};
use super::errors::quoted_message;
use super::{Provider, UpstreamRequest};
use crate::error::{ErrorKind, GatewayError};

/// The `anthropic_version` Bedrock's Claude models take in the body.
pub const ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// SigV4's signing name for Bedrock's runtime.
const SIGNING_NAME: &str = "bedrock";

/// A Bedrock provider's signing setup: its region and the credentials it signs with.
#[derive(Debug)]
pub struct Bedrock {
    pub region: String,
    pub credentials: Arc<CredentialCache>,
}

/// The regional endpoint, when the config names no `base_url`.
pub fn default_base_url(region: &str) -> String {
    format!("https://bedrock-runtime.{region}.amazonaws.com")
}

/// Whether `region` is an AWS region's name (`us-east-1`, `eu-central-2`, `us-gov-west-1`):
/// it goes into a host name and the signature's scope.
pub fn valid_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The InvokeModel path of `model` (see [`model_path`]).
pub fn invoke_path(provider: &Provider, model: &str, stream: bool) -> String {
    let operation = if stream {
        "invoke-with-response-stream"
    } else {
        "invoke"
    };
    model_path(provider, model, operation)
}

/// `/model/{modelId}/{operation}` under the provider's base URL: the whole id one path
/// segment (`:` of versioned ids and `/` of ARNs included, percent-encoded as the AWS SDKs
/// send it).
pub fn model_path(provider: &Provider, model: &str, operation: &str) -> String {
    let mut segment = String::with_capacity(model.len() + 8);
    for b in model.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            segment.push(char::from(b));
        } else {
            segment.push_str(&format!("%{b:02X}"));
        }
    }
    provider
        .upstream
        .path(&format!("/model/{segment}/{operation}"))
}

/// An Anthropic Messages body as Bedrock takes it: `model` and `stream` out (the path says
/// both), `anthropic_version` in, and the client's `betas` Bedrock offers as
/// `anthropic_beta` ([`cloud_betas`]).
pub fn body(anthropic: &[u8], client_betas: &[String]) -> Result<Vec<u8>, GatewayError> {
    let mut value: Value = serde_json::from_slice(anthropic)
        .map_err(|e| GatewayError::invalid("body", format!("the body is not JSON: {e}")))?;
    let Some(fields) = value.as_object_mut() else {
        return Err(GatewayError::invalid(
            "body",
            "the body is not a JSON object",
        ));
    };
    fields.remove("model");
    fields.remove("stream");
    fields.insert("anthropic_version".into(), ANTHROPIC_VERSION.into());
    let betas = cloud_betas::offered(Cloud::Bedrock, client_betas);
    if !betas.is_empty() {
        fields.insert("anthropic_beta".into(), betas.into());
    }
    serde_json::to_vec(&value).map_err(|e| GatewayError::internal("writing the Bedrock body", e))
}

impl Provider {
    /// The signed InvokeModel request of an Anthropic Messages body for `model`, with the
    /// client's `betas` Bedrock offers.
    pub(crate) fn bedrock_request(
        &self,
        anthropic_body: &[u8],
        model: &str,
        stream: bool,
        betas: &[String],
    ) -> Result<UpstreamRequest, GatewayError> {
        let path = invoke_path(self, model, stream);
        let mut request = self.request(path, Bytes::from(body(anthropic_body, betas)?));
        self.sign_bedrock(&mut request)?;
        Ok(request)
    }

    /// Adds the SigV4 headers to `request` (path and body final).
    fn sign_bedrock(&self, request: &mut UpstreamRequest) -> Result<(), GatewayError> {
        let Some(bedrock) = self.bedrock.as_ref() else {
            return Err(GatewayError::new(
                ErrorKind::Internal,
                "a Bedrock provider without its signing setup",
            ));
        };
        let now = SystemTime::now();
        let credentials = bedrock.credentials.usable(now).ok_or_else(|| {
            // retryable like an unreachable provider: another deployment may serve
            GatewayError::new(
                ErrorKind::UpstreamUnreachable,
                format!(
                    "provider {}: no current AWS credentials (their source has not answered \
                     or they expired)",
                    self.name
                ),
            )
        })?;
        let signed = sign::headers(
            &sign::Signable {
                method: request.method.as_str(),
                authority: &self.upstream.authority,
                path: &request.path,
                body: &request.body,
            },
            &credentials,
            &sign::Scope {
                region: &bedrock.region,
                service: SIGNING_NAME,
                time: now,
            },
        )?;
        request.headers.extend(signed);
        Ok(())
    }
}

/// An upstream error with `status` and a message from Bedrock, with the codes the gateway's
/// retry rules and clients read.
pub(crate) fn upstream_status(status: u16, message: String) -> GatewayError {
    let code = match status {
        429 => Some("rate_limit_exceeded"),
        503 => Some("server_is_overloaded"),
        _ => None,
    };
    GatewayError {
        upstream_code: code.map(str::to_string),
        ..GatewayError::new(ErrorKind::UpstreamStatus(status), message)
    }
}

/// The client-facing error for a Bedrock error answer: `{"message":…}` (AWS writes
/// `Message` in some services), with its status. 401 and 403 refuse the gateway's own
/// credentials or account ([`ErrorKind::ProviderAuth`]): no client sees their text.
pub fn upstream_error(provider: &str, status: u16, body: &[u8]) -> GatewayError {
    if matches!(status, 401 | 403) {
        return GatewayError::provider_auth(provider, status, &String::from_utf8_lossy(body));
    }
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("Message"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| quoted_message(provider, status, body));
    upstream_status(status, message)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_body_loses_model_and_stream_and_names_bedrocks_version() {
        let client = br#"{"model":"c","stream":true,"max_tokens":5,"messages":[]}"#;
        let out = body(client, &[]).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"max_tokens": 5, "messages": [],
                "anthropic_version": "bedrock-2023-05-31"})
        );
        assert!(body(b"[1]", &[]).is_err());
        let betas = ["claude-code-20250219", "context-1m-2025-08-07"].map(String::from);
        let v: Value = serde_json::from_slice(&body(client, &betas).unwrap()).unwrap();
        assert_eq!(
            v["anthropic_beta"],
            serde_json::json!(["context-1m-2025-08-07"])
        );
    }

    #[test]
    fn regions() {
        for good in ["us-east-1", "eu-central-2", "us-gov-west-1"] {
            assert!(valid_region(good), "{good}");
        }
        for bad in ["", "US-EAST-1", "us east", "a.b", "x/y"] {
            assert!(!valid_region(bad), "{bad}");
        }
        assert_eq!(
            default_base_url("eu-west-3"),
            "https://bedrock-runtime.eu-west-3.amazonaws.com"
        );
    }

    #[test]
    fn errors_by_status() {
        let e = upstream_error("b", 429, br#"{"message":"Too many requests"}"#);
        assert_eq!((e.status(), e.message.as_str()), (429, "Too many requests"));
        let e = upstream_error("b", 400, br#"{"Message":"Malformed input request"}"#);
        assert_eq!(e.status(), 400);
        assert_eq!(e.message, "Malformed input request");
        let e = upstream_error(
            "b",
            403,
            br#"{"message":"The request signature we calculated does not match"}"#,
        );
        assert_eq!(e.kind, ErrorKind::ProviderAuth);
        assert!(!e.message.contains("signature"), "{}", e.message);
        assert_eq!(upstream_error("b", 503, b"").status(), 503);
    }
}
