//! What a request claims of its key's and its model's limits: the rate windows, the
//! tokens and the budget reservation, and the window that counts refused requests.

use super::ctx::RequestCtx;
use super::failover::Job;
use super::Gateway;
use crate::auth::KeyInfo;
use crate::catalog::Model;
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::limits::{self, Claim};
use crate::providers::bedrock::converse::converses;
use crate::providers::{anthropic, ProviderKind};
use crate::request::Peeked;

/// Output tokens reserved against a TPM limit when the client sets no `max_tokens`.
const DEFAULT_OUTPUT_RESERVE: u64 = 1024;

/// Output tokens a request without `max_tokens` is assumed to write, for its budget
/// reservation, on a model whose catalog entry sets no `max_output_tokens`: the output
/// limit of today's large models (GPT-4o's; Claude's, Gemini's and newer OpenAI models'
/// are larger: set `max_output_tokens` for them to hold their whole worst case).
pub const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 16_384;

/// The stricter of two optional limits.
fn stricter(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The output tokens a request may be billed for, as its budget reservation counts them:
/// the client's cap; else, where the gateway writes the provider's cap itself (a request
/// translated to Anthropic, which requires one), that cap; else the model's
/// `max_output_tokens` (Bedrock's Converse models among them: Converse takes no cap unless
/// the client sets one). Embeddings write none. A model with several deployments takes the
/// largest. Claude on Vertex is Anthropic's format here as everywhere (its route kind).
fn budget_output_tokens(endpoint: &Endpoint, peeked: &Peeked, model: &Model) -> u64 {
    if let Some(cap) = peeked.max_tokens {
        return cap;
    }
    if *endpoint == Endpoint::Embeddings {
        return 0;
    }
    let catalog = model.max_output_tokens.unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS);
    model
        .deployments
        .iter()
        .map(|d| {
            let upstream = model.upstream_name(d, &peeked.model);
            (d.provider.route_kind(upstream), endpoint, upstream)
        })
        .map(|route| match route {
            (ProviderKind::Bedrock, _, upstream) if converses(upstream) => catalog,
            (
                ProviderKind::Anthropic | ProviderKind::Bedrock,
                Endpoint::Messages | Endpoint::CountTokens,
                _,
            ) => catalog,
            (ProviderKind::Anthropic | ProviderKind::Bedrock, _, _) => {
                anthropic::upstream::request::uncapped_max_tokens(peeked.reasoning)
            }
            _ => catalog,
        })
        .max()
        .unwrap_or(catalog)
}

impl Gateway {
    /// A request refused after authentication (a bad body, an unknown or forbidden model)
    /// still counts against the key's request rate, in a window of its own, so a key cannot
    /// make the gateway write records or log lines faster than its `rpm` by sending requests
    /// that are refused. Past the rate the answer is the 429 instead of the refusal.
    pub(super) async fn count_refusal(&self, key: &KeyInfo, refusal: GatewayError) -> GatewayError {
        let Some(rpm) = key.limits.rpm else {
            return refusal;
        };
        let claim = Claim {
            key_id: key.id.clone(),
            model: limits::REFUSED_WINDOW.to_string(),
            rpm: Some(rpm),
            tpm: None,
            reserve: 0,
            budget_micro_usd: None,
            reserve_micro_usd: 0,
            reservation_id: String::new(),
        };
        match self.limiter.acquire(&claim).await {
            Err(limited) => limited,
            Ok(_) => refusal,
        }
    }

    /// Acquires `model`'s limits (and the key's) for this request, first handing back what
    /// an earlier model of the same request had reserved (a fallback is billed and limited
    /// as the model that serves).
    pub(super) async fn claim_limits(
        &self,
        ctx: &mut RequestCtx,
        job: &Job<'_>,
        model: &Model,
    ) -> Result<(), GatewayError> {
        if let Some((claim, decision)) = ctx.limit.take() {
            self.limiter.settle(&claim, &decision, 0, 0).await;
        }
        let key = job.key;
        let tpm = stricter(key.limits.tpm, model.limits.tpm);
        // bytes/4 is a cheap prompt estimate; settlement corrects it
        let prompt_estimate = job.body.len() as u64 / 4;
        let max_output = job.peeked.max_tokens.unwrap_or(DEFAULT_OUTPUT_RESERVE);
        let claim = Claim {
            reservation_id: ctx.request_id.clone(),
            key_id: key.id.clone(),
            model: model.name.clone(),
            rpm: stricter(key.limits.rpm, model.limits.rpm),
            tpm,
            reserve: tpm.map_or(0, |_| prompt_estimate.saturating_add(max_output)),
            budget_micro_usd: key.budget_micro_usd,
            // the worst case is held against the budget until settlement
            reserve_micro_usd: key.budget_micro_usd.map_or(0, |_| {
                let output = budget_output_tokens(job.endpoint, job.peeked, model);
                limits::worst_case_micro_usd(prompt_estimate, output, &model.price)
            }),
        };
        ctx.rate_headers.clear();
        if let Some(decision) = self.limiter.acquire(&claim).await? {
            ctx.rate_headers = limits::headers(&claim, &decision);
            ctx.limit = Some((claim, decision));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// A request without a cap translated to Claude holds the cap the gateway writes for it,
    /// on Vertex as on Anthropic; Gemini on the same provider holds the catalog's.
    #[test]
    fn claude_on_vertex_holds_the_cap_the_gateway_writes() {
        let path = crate::config::vertex::tests::key_file()
            .display()
            .to_string();
        let env = |name: &str| (name == "GOOGLE_APPLICATION_CREDENTIALS").then(|| path.clone());
        // the tests' Vertex provider with its Gemini model (no cap of its own), and Claude
        let config = format!(
            "{}\n[models.\"claude-v\"]\nprovider = \"vertex-us\"\n\
             upstream_model = \"claude-sonnet-4-5@20250929\"\nmax_output_tokens = 1000\n",
            crate::config::vertex::tests::VERTEX
        );
        let c = Config::parse(&config, "t.toml", &env).unwrap();
        let chat = |model: &str| {
            let body = format!(r#"{{"model":"{model}","messages":[]}}"#);
            crate::request::peek(&Endpoint::ChatCompletions, body.as_bytes()).unwrap()
        };
        let claude = c.catalog.get("claude-v").unwrap();
        let written = anthropic::upstream::request::uncapped_max_tokens(false);
        assert_ne!(written, 1000);
        let held = budget_output_tokens(&Endpoint::ChatCompletions, &chat("claude-v"), claude);
        assert_eq!(held, written);
        let gemini = c.catalog.get("gemini-v").unwrap();
        let held = budget_output_tokens(&Endpoint::ChatCompletions, &chat("gemini-v"), gemini);
        assert_eq!(held, DEFAULT_MAX_OUTPUT_TOKENS);
    }
}
