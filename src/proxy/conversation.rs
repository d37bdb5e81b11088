//! The Responses API's conversation state for the models the gateway translates, kept in the
//! usage ledger's store per key (`crate::ledger::responses`): a Responses request that is
//! stored (`store` is not `false`, the API's default) leaves a [`PendingTurn`] that the relay
//! completes with the response object and writes before the bytes that end the answer go out;
//! one that continues a stored response (`previous_response_id`) is expanded into the whole
//! conversation before any provider sees it, so it can go to any deployment. Another key's id
//! is 404, as an unknown one is. Native passthrough keeps its own rule (`super::stored`).

use std::sync::Arc;

use bytes::Bytes;
use pingora::protocols::http::ServerSession;

use super::ctx::RequestCtx;
use super::exchange::Finished;
use super::stored::{not_found, previous_not_found};
use super::turn::PendingTurn;
use super::{write_json, Gateway};
use crate::auth::KeyInfo;
use crate::catalog::Model;
use crate::endpoint::Endpoint;
use crate::error::{ErrorKind, GatewayError};
use crate::ledger::Ledger;
use crate::providers::responses::stored;
use crate::request::{peek, Peeked};

impl Gateway {
    /// The store, or a 503 saying stored responses are unavailable.
    async fn response_store(&self) -> Result<Arc<dyn Ledger>, GatewayError> {
        self.ledger.get().await.map_err(|e| unavailable(&e))
    }

    /// A Responses request on its way to the failover loop: `store` made explicit (`false`
    /// where the gateway keeps nothing), a continuation of a response the gateway stores
    /// expanded into the whole conversation (the returned body and its peek), and the
    /// [`PendingTurn`] the relay completes. `native` is the owner check's answer: a
    /// continuation of a provider-stored response goes through untouched.
    pub(super) async fn prepare_turn(
        &self,
        ctx: &mut RequestCtx,
        key: &KeyInfo,
        model: &Model,
        (body, mut peeked): (Bytes, Peeked),
        native: bool,
    ) -> Result<(Bytes, Peeked), GatewayError> {
        if ctx.endpoint != Some(Endpoint::Responses) || native {
            return Ok((body, peeked));
        }
        let Some(retention) = self.responses_retention else {
            let served_natively = model
                .deployments
                .iter()
                .any(|d| d.provider.native_responses);
            if peeked.store == Some(true) && !served_natively {
                return Err(GatewayError::invalid(
                    "store",
                    "`store: true` is not supported: this gateway keeps no responses; send the \
                     whole conversation in `input`, with `store: false`",
                ));
            }
            peeked.store = peeked.store.or(Some(false));
            return Ok((body, peeked));
        };
        // only a translated deployment's answer is the gateway's to store
        let translated = model
            .deployments
            .iter()
            .any(|d| !d.provider.native_responses);
        let turn_input = match peeked.store {
            Some(false) => None,
            _ if !translated => None,
            _ => Some(stored::input_items(&body)?),
        };
        let (body, peeked) = match peeked.previous_response_id.clone() {
            Some(previous) => {
                let store = self.response_store().await?;
                let chain = store
                    .conversation(&key.id, &previous, crate::clock::unix_ms())
                    .await
                    .map_err(|e| unavailable(&e))?
                    .ok_or_else(|| previous_not_found(&previous))?;
                let turns: Vec<stored::Turn<'_>> = chain
                    .iter()
                    .map(|r| stored::Turn {
                        input: &r.input,
                        response: &r.response,
                    })
                    .collect();
                let whole = Bytes::from(stored::continued(&body, stored::history(&turns)?)?);
                let mut expanded = peek(&Endpoint::Responses, &whole)?;
                // still the continuation the client asked for: its answer names it
                expanded.previous_response_id = Some(previous);
                ctx.body = whole.clone();
                (whole, expanded)
            }
            None => (body, peeked),
        };
        ctx.pending_turn = turn_input.map(|input| {
            Box::new(PendingTurn::new(
                Arc::clone(&self.ledger),
                key.id.clone(),
                peeked.previous_response_id.clone(),
                input,
                retention,
            ))
        });
        Ok((body, peeked))
    }

    /// `GET`/`DELETE /v1/responses/{id}`, `GET …/input_items`, `POST …/cancel` on a response
    /// the gateway stores, for the key that made it; anything else is 404.
    pub(super) async fn gateway_stored_response(
        &self,
        session: &mut ServerSession,
        ctx: &mut RequestCtx,
        key: &KeyInfo,
        rest: &str,
    ) -> Result<Finished, GatewayError> {
        let (id, sub) = rest.split_once('/').unwrap_or((rest, ""));
        if self.responses_retention.is_none() {
            return Err(not_found(id));
        }
        let store = self.response_store().await?;
        let now = crate::clock::unix_ms();
        let method = session.req_header().method.clone();
        let body = match (&method, sub) {
            (&http::Method::DELETE, "") => {
                if !store
                    .delete_response(&key.id, id, now)
                    .await
                    .map_err(|e| unavailable(&e))?
                {
                    return Err(not_found(id));
                }
                serde_json::json!({"id": id, "object": "response", "deleted": true}).to_string()
            }
            _ => {
                let response = store
                    .response(&key.id, id, now)
                    .await
                    .map_err(|e| unavailable(&e))?
                    .ok_or_else(|| not_found(id))?;
                match sub {
                    "input_items" => {
                        let query = session.req_header().uri.query();
                        stored::input_items_page(&response.input, query)?.to_string()
                    }
                    "cancel" => {
                        return Err(GatewayError::invalid(
                            "response_id",
                            "Only responses created with background=true can be cancelled",
                        ))
                    }
                    _ => response.response,
                }
            }
        };
        write_json(session, ctx, 200, Bytes::from(body), None).await
    }
}

/// Stored responses cannot be read or written right now: 503, retried by clients.
fn unavailable(e: &crate::ledger::LedgerError) -> GatewayError {
    log::warn!("stored responses: {e}");
    GatewayError {
        retry_after: Some(1),
        ..GatewayError::new(
            ErrorKind::StateUnavailable,
            "stored responses are unavailable; try again shortly",
        )
    }
}
