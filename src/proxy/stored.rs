//! Responses a provider stores, seen by the key that made them only: a Responses request
//! that continues one (`previous_response_id`), and `GET`/`DELETE /v1/responses/{id}` and
//! its sub-paths, which go to the provider that stores it. Anything another key made, or the
//! gateway never saw, is 404 as the API answers an unknown id (see [`crate::ownership`]).

use std::sync::Arc;

use bytes::Bytes;
use pingora::protocols::http::ServerSession;

use super::ctx::RequestCtx;
use super::exchange::{self, Finished};
use super::Gateway;
use crate::auth::KeyInfo;
use crate::catalog::Model;
use crate::error::{ErrorKind, GatewayError};
use crate::ownership::Owner;
use crate::request::Peeked;

/// OpenAI's answer for an unknown response id.
pub(super) fn not_found(id: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::NotFound,
        format!("Response with id '{id}' not found."),
    )
}

/// OpenAI's answer for an unknown `previous_response_id`, as a 404.
pub(super) fn previous_not_found(id: &str) -> GatewayError {
    GatewayError {
        param: Some("previous_response_id".into()),
        upstream_code: Some("previous_response_not_found".into()),
        ..GatewayError::new(
            ErrorKind::NotFound,
            format!("Previous response with id '{id}' not found."),
        )
    }
}

fn state_unavailable(e: crate::state::StateError) -> GatewayError {
    log::warn!("response owner lookup: {e}");
    GatewayError::new(
        ErrorKind::StateUnavailable,
        "stored responses are unavailable; try again shortly",
    )
}

impl Gateway {
    /// The owner of the response a Responses request continues, when the model is served
    /// natively (a translated model stores nothing upstream: its translator answers).
    /// Another key's response, or one no instance recorded, is 404, unless the gateway keeps
    /// responses itself: then `super::conversation` looks for it there.
    pub(super) async fn check_continuation(
        &self,
        peeked: &Peeked,
        key: &KeyInfo,
        model: &Model,
    ) -> Result<Option<Owner>, GatewayError> {
        let Some(id) = peeked.previous_response_id.as_deref() else {
            return Ok(None);
        };
        if !model
            .deployments
            .iter()
            .any(|d| d.provider.native_responses)
        {
            return Ok(None);
        }
        let owned = match crate::endpoint::is_response_id(id) {
            true => self.owners.owner(id).await.map_err(state_unavailable)?,
            false => None,
        };
        match owned {
            Some(owner) if owner.key_id == key.id => Ok(Some(owner)),
            _ if self.responses_retention.is_some() => Ok(None),
            _ => Err(previous_not_found(id)),
        }
    }

    /// `GET`/`DELETE /v1/responses/{id}`, `GET …/input_items`, `POST …/cancel`: passed to the
    /// provider that stores the response, for the key that made it only; a response no
    /// provider stores for this key may be one the gateway keeps.
    pub(super) async fn stored_response(
        &self,
        session: &mut ServerSession,
        ctx: &mut RequestCtx,
        key: &KeyInfo,
        rest: &str,
    ) -> Result<Finished, GatewayError> {
        let id = rest.split_once('/').map_or(rest, |(id, _)| id).to_string();
        let owner = self
            .owners
            .owner(&id)
            .await
            .map_err(state_unavailable)?
            .filter(|o| o.key_id == key.id);
        let Some(owner) = owner else {
            return self.gateway_stored_response(session, ctx, key, rest).await;
        };
        let live = self.live.load_full();
        let provider = live
            .providers
            .iter()
            .find(|p| p.name == owner.provider && p.native_responses)
            .cloned()
            .ok_or_else(|| not_found(&id))?;
        let method = session.req_header().method.clone();
        let body = match method {
            http::Method::POST => self.read_body(session).await?,
            _ => Bytes::new(),
        };
        let deleting = method == http::Method::DELETE;
        let request = provider.stored_response_request(method, rest, body);
        ctx.outcome.provider = Some(Arc::clone(&provider));
        ctx.outcome.attempts = 1;
        let timeouts = provider.timeouts;
        let finished = Box::pin(exchange::attempt(
            &self.pools,
            &provider,
            &timeouts,
            request,
            session,
            ctx,
        ))
        .await?;
        if deleting && ctx.outcome.error.is_none() {
            self.owners.forget(&id).await;
        }
        Ok(finished)
    }
}
