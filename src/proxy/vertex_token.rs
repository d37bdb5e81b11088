//! Vertex AI's access token on each request: the provider's cached token, or a new one
//! minted by posting the service account's signed assertion to its `token_uri` over the
//! same pooled connector the model calls use (so its TLS, DNS and timeouts are the
//! gateway's own). The cache decides when a refresh is due and lets one run at a time
//! ([`crate::providers::vertex::token`]).
//!
//! A refresh that fails is a 502 naming the provider and the token endpoint's status, never
//! the key, the assertion or a token; the failover loop may try another deployment.

use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use serde::Deserialize;

use super::transport::upstream_failure;
use crate::error::{ErrorKind, GatewayError};
use crate::providers::vertex::Vertex;
use crate::providers::{Provider, UpstreamRequest};
use crate::routing::Failure;

/// The OAuth2 grant of a JWT assertion (RFC 7523).
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Longest a token request may take, connect to last byte.
const TOKEN_DEADLINE: Duration = Duration::from_secs(10);
/// Largest token answer read (Google's is a few hundred bytes).
const MAX_TOKEN_ANSWER: usize = 64 * 1024;

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

/// Google's OAuth2 error answer (`{"error":"invalid_grant","error_description":…}`).
#[derive(Deserialize)]
struct TokenError {
    error: String,
    error_description: Option<String>,
}

/// Sets `Authorization: Bearer` on a Vertex provider's request; nothing on other kinds.
pub(super) async fn authorize(
    connector: &Connector,
    provider: &Provider,
    request: &mut UpstreamRequest,
) -> Result<(), GatewayError> {
    let Some(vertex) = &provider.vertex else {
        return Ok(());
    };
    let token = vertex
        .tokens
        .get(Instant::now, || mint(connector, provider, vertex))
        .await?;
    request
        .headers
        .push(("authorization", format!("Bearer {}", token.expose())));
    Ok(())
}

/// One token request, within [`TOKEN_DEADLINE`]: the token and how long it lives.
async fn mint(
    connector: &Connector,
    provider: &Provider,
    vertex: &Vertex,
) -> Result<(String, Duration), GatewayError> {
    match tokio::time::timeout(TOKEN_DEADLINE, exchange(connector, provider, vertex)).await {
        Ok(result) => result,
        Err(_) => Err(token_failure(
            provider,
            ErrorKind::UpstreamTimeout,
            format!(
                "the token endpoint did not answer within {} s",
                TOKEN_DEADLINE.as_secs()
            ),
        )),
    }
}

async fn exchange(
    connector: &Connector,
    provider: &Provider,
    vertex: &Vertex,
) -> Result<(String, Duration), GatewayError> {
    let account = &vertex.account;
    let assertion = account
        .assertion(crate::clock::unix_secs())
        .map_err(|e| token_failure(provider, ErrorKind::ProviderAuth, e))?;
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", GRANT_TYPE)
        .append_pair("assertion", &assertion)
        .finish();
    let endpoint = &account.token_endpoint;
    let peers = endpoint.peers(&provider.timeouts).await?;
    let mut failed = None;
    let mut session = None;
    for peer in &peers {
        match connector.get_http_session(peer).await {
            Ok((s, _)) => {
                session = Some(s);
                break;
            }
            Err(e) => failed = Some(e),
        }
    }
    let Some(mut session) = session else {
        let error = match failed {
            Some(e) => upstream_failure(provider, &e, "getting an access token"),
            None => token_failure(
                provider,
                ErrorKind::UpstreamUnreachable,
                "the token endpoint has no address",
            ),
        };
        return Err(error);
    };
    let io = |e: Box<pingora::Error>| upstream_failure(provider, &e, "getting an access token");
    let mut head = RequestHeader::build("POST", endpoint.path("").as_bytes(), None).map_err(io)?;
    for (name, value) in [
        ("host", endpoint.authority.clone()),
        (
            "content-type",
            "application/x-www-form-urlencoded".to_string(),
        ),
        ("content-length", form.len().to_string()),
    ] {
        head.insert_header(name, value).map_err(io)?;
    }
    session.set_read_timeout(Some(provider.timeouts.first_byte));
    session
        .write_request_header(Box::new(head))
        .await
        .map_err(io)?;
    session
        .write_request_body(Bytes::from(form), true)
        .await
        .map_err(io)?;
    session.finish_request_body().await.map_err(io)?;
    session.read_response_header().await.map_err(io)?;
    let status = session.response_header().map_or(0, |h| h.status.as_u16());
    let mut body = Vec::new();
    while let Some(chunk) = session.read_response_body().await.map_err(io)? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_TOKEN_ANSWER || session.response_done() {
            break;
        }
    }
    if status != 200 {
        // Google's reason (`invalid_grant: Invalid JWT Signature.`) is the operator's to read
        let reason = serde_json::from_slice::<TokenError>(&body).map_or_else(
            |_| String::new(),
            |e| format!(": {} {}", e.error, e.error_description.unwrap_or_default()),
        );
        log::warn!(
            "provider {}: the token endpoint {} refused the service account {} ({status}){}",
            provider.name,
            account.token_uri,
            account.client_email,
            crate::text::cut(&reason, 300)
        );
        return Err(token_failure(
            provider,
            ErrorKind::ProviderAuth,
            format!("the token endpoint answered {status}"),
        ));
    }
    let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|_| {
        token_failure(
            provider,
            ErrorKind::UpstreamProtocol,
            "the token endpoint answered something that is not a token",
        )
    })?;
    Ok((answer.access_token, Duration::from_secs(answer.expires_in)))
}

/// A token request that failed: a 502 (504 for a timeout) naming the provider and what the
/// token endpoint did, a failure the failover loop may retry elsewhere.
fn token_failure(
    provider: &Provider,
    kind: ErrorKind,
    what: impl std::fmt::Display,
) -> GatewayError {
    GatewayError {
        failure: Some(Failure::Connect),
        ..GatewayError::new(
            kind,
            format!(
                "provider {} could not get a Google access token ({what})",
                provider.name
            ),
        )
    }
}
