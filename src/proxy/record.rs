//! The usage record of a finished request: the provider's token counts, or the tokenizer's
//! estimate when none arrived, priced from the model's tariff.

use std::time::{SystemTime, UNIX_EPOCH};

use super::ctx::RequestCtx;
use super::Gateway;
use crate::endpoint::Endpoint;
use crate::usage::{estimate, pricing, Usage, UsageRecord};

impl Gateway {
    /// The usage record of a request that named a catalog model with a valid key: tokens as
    /// the provider reported them or, when it reported none for an answer that started (a cut
    /// stream, a client that left), the tokenizer's count of the prompt and of what was
    /// delivered, marked `estimated`.
    pub(super) fn usage_record(&self, ctx: &mut RequestCtx, status: u16) -> Option<UsageRecord> {
        let key_id = ctx.key_id.clone()?;
        let model = ctx.model.clone()?;
        // Gemini reports no embedding tokens: the translator counted them itself.
        let counted_by_gateway = model.provider.kind == crate::providers::ProviderKind::Gemini
            && ctx.endpoint == Some(Endpoint::Embeddings);
        let (usage, estimated) = match ctx.meter.as_mut() {
            None => (Usage::default(), false),
            Some(meter) => match meter.reported() {
                Some(u) => (u, counted_by_gateway),
                None => {
                    let ratio = meter.text_overflow_ratio();
                    let completion = estimate::count(&model.upstream_model, meter.delivered_text());
                    let usage = Usage {
                        prompt: estimate::prompt_tokens(&model.upstream_model, &ctx.body),
                        completion: (completion as f64 * ratio).round() as u64,
                        cached: 0,
                    };
                    (usage, true)
                }
            },
        };
        Some(UsageRecord {
            request_id: ctx.request_id.clone(),
            key_id,
            model: model.name.clone(),
            provider: model.provider.name.clone(),
            endpoint: ctx
                .endpoint
                .as_ref()
                .map_or("-", Endpoint::label)
                .to_string(),
            prompt_tokens: usage.prompt,
            completion_tokens: usage.completion,
            cached_tokens: usage.cached,
            cost_micro_usd: pricing::cost_micro_usd(&usage, &model.price),
            status,
            duration_ms: ctx.started.elapsed().as_millis() as u64,
            ttft_ms: ctx
                .first_byte_at
                .map(|t| t.duration_since(ctx.started).as_millis() as u64),
            stream: ctx.stream,
            client_disconnected: ctx.client_gone,
            estimated,
            error: ctx.error.as_ref().map(|e| e.kind.label().to_string()),
            timestamp_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or_default(),
        })
    }
}
