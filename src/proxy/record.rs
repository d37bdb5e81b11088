//! The usage record of a finished request: the provider's token counts, or the tokenizer's
//! estimate when none arrived, priced from the model's tariff.

use super::ctx::RequestCtx;
use super::outcome::Outcome;
use super::Gateway;
use crate::endpoint::Endpoint;
use crate::error::ErrorKind;
use crate::usage::{estimate, offload, pricing, Usage, UsageRecord};

impl Gateway {
    /// The usage record of a request that named a model with a valid key (one per client
    /// request, whatever the attempts): tokens as the provider reported them or, when it
    /// reported none for an answer that started (a cut stream, a client that left), the
    /// tokenizer's count of the prompt and of what was delivered, marked `estimated`. A
    /// request for a model the catalog does not have is recorded too, at no cost, under the
    /// name it asked for.
    pub(super) async fn usage_record(
        &self,
        ctx: &RequestCtx,
        outcome: &mut Outcome,
        status: u16,
    ) -> Option<UsageRecord> {
        if outcome
            .error
            .as_ref()
            .is_some_and(|e| matches!(e.kind, ErrorKind::RateLimited | ErrorKind::QuotaExceeded))
        {
            // the gateway's own limits refused it before any provider was asked: nothing to
            // bill, and a key past its limits must not write a record per refused request
            // (the access log and cheapai_rate_limited_total still count it)
            return None;
        }
        let key_id = ctx.key_id.clone()?;
        let requested = ctx.requested_model.clone()?;
        let model = outcome.model.clone();
        // A pattern route records the name asked for; a fallback records its own name.
        let model_name = match &model {
            Some(m) if !m.is_pattern() => m.name.clone(),
            _ => requested,
        };
        let provider = outcome.provider.clone();
        // Gemini reports no embedding tokens: the translator counted them itself.
        let counted_by_gateway = provider
            .as_ref()
            .is_some_and(|p| p.kind == crate::providers::ProviderKind::Gemini)
            && ctx.endpoint == Some(Endpoint::Embeddings);
        let (usage, estimated) = match outcome.meter.as_mut() {
            None => (Usage::default(), false),
            Some(meter) => match meter.reported() {
                Some(u) => (u, counted_by_gateway),
                None => {
                    let ratio = meter.text_overflow_ratio();
                    let delivered = meter.delivered_text().to_string();
                    let (model, body) = (outcome.upstream_model.clone(), ctx.body.clone());
                    let rough = ((body.len() / 4) as u64, (delivered.len() / 4) as u64);
                    // the tokenizer runs off the proxy's workers (a cut stream can be long)
                    let (prompt, completion) = offload::run(move || {
                        (
                            estimate::prompt_tokens(&model, &body),
                            estimate::count(&model, &delivered),
                        )
                    })
                    .await
                    .unwrap_or(rough);
                    let usage = Usage {
                        prompt,
                        completion: (completion as f64 * ratio).round() as u64,
                        cached: 0,
                    };
                    (usage, true)
                }
            },
        };
        let writes = outcome
            .meter
            .as_mut()
            .map(|m| m.cache_writes())
            .unwrap_or_default();
        Some(UsageRecord {
            request_id: ctx.request_id.clone(),
            key_id,
            model: model_name,
            provider: provider.map_or_else(|| "-".to_string(), |p| p.name.clone()),
            attempts: outcome.attempts,
            endpoint: ctx
                .endpoint
                .as_ref()
                .map_or("-", Endpoint::label)
                .to_string(),
            prompt_tokens: usage.prompt,
            completion_tokens: usage.completion,
            cached_tokens: usage.cached,
            cache_write_tokens: writes.total(),
            cost_micro_usd: model.map_or(0, |m| {
                pricing::cost_with_cache_writes(&usage, writes, &m.price)
            }),
            status,
            duration_ms: ctx.started.elapsed().as_millis() as u64,
            ttft_ms: outcome
                .first_byte_at
                .map(|t| t.duration_since(ctx.started).as_millis() as u64),
            stream: ctx.stream,
            client_disconnected: outcome.client_gone,
            estimated,
            reasoning_dropped: outcome.reasoning_dropped,
            error: outcome.error.as_ref().map(|e| e.kind.label().to_string()),
            timestamp_ms: crate::clock::unix_ms(),
        })
    }
}
