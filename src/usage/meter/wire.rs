//! The parts of provider answers the meter reads: usage objects in each format (and the
//! text fields a tokenizer estimate needs), deserialized without the rest of the answer.

use serde::Deserialize;

use crate::usage::{CacheWrites, Usage};

/// A Responses stream event as the meter reads it: the final ones carry the response, with
/// its usage.
#[derive(Deserialize)]
pub(super) struct ResponsesEvent {
    pub(super) response: Option<ResponsesObject>,
}

#[derive(Deserialize)]
pub(super) struct ResponsesObject {
    pub(super) usage: Option<ResponsesUsage>,
}

#[derive(Deserialize)]
pub(super) struct ResponsesUsage {
    #[serde(default)]
    pub(super) input_tokens: u64,
    #[serde(default)]
    pub(super) output_tokens: u64,
    pub(super) input_tokens_details: Option<ResponsesInputDetails>,
    /// Anthropic's cache writes, which the gateway's translation to Responses adds (as it
    /// does to chat usage); part of `input_tokens`.
    pub(super) cache_creation_input_tokens: Option<u64>,
    pub(super) cache_creation: Option<CacheCreation>,
}

impl ResponsesUsage {
    pub(super) fn writes(&self) -> CacheWrites {
        cache_writes(
            self.cache_creation_input_tokens,
            self.cache_creation.as_ref(),
        )
        .unwrap_or_default()
    }
}

#[derive(Deserialize)]
pub(super) struct ResponsesInputDetails {
    pub(super) cached_tokens: Option<u64>,
}

impl From<ResponsesUsage> for Usage {
    /// `input_tokens` includes the cached ones, as chat's `prompt_tokens` does.
    fn from(u: ResponsesUsage) -> Self {
        Usage {
            prompt: u.input_tokens,
            completion: u.output_tokens,
            cached: u
                .input_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct OpenAiBody {
    pub(super) usage: Option<OpenAiUsage>,
}

/// What the hot path reads of an OpenAI chunk: its usage, and whether it has choices.
#[derive(Deserialize)]
pub(super) struct OpenAiUsageChunk {
    pub(super) choices: Option<Vec<serde::de::IgnoredAny>>,
    pub(super) usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
pub(super) struct OpenAiUsage {
    #[serde(default)]
    pub(super) prompt_tokens: u64,
    #[serde(default)]
    pub(super) completion_tokens: u64,
    pub(super) prompt_tokens_details: Option<OpenAiPromptDetails>,
    /// Anthropic's cache writes, which the gateway's Anthropic → OpenAI translator (and
    /// other Claude-serving OpenAI-format hosts) add to an OpenAI usage; part of
    /// `prompt_tokens` there too.
    pub(super) cache_creation_input_tokens: Option<u64>,
    pub(super) cache_creation: Option<CacheCreation>,
}

impl OpenAiUsage {
    pub(super) fn writes(&self) -> CacheWrites {
        cache_writes(
            self.cache_creation_input_tokens,
            self.cache_creation.as_ref(),
        )
        .unwrap_or_default()
    }
}

/// Anthropic's split of the cache writes by cache lifetime (answers since the 1-hour cache).
#[derive(Deserialize)]
pub(super) struct CacheCreation {
    pub(super) ephemeral_5m_input_tokens: Option<u64>,
    pub(super) ephemeral_1h_input_tokens: Option<u64>,
}

/// Cache writes from the total and its split by lifetime, either of which may be missing:
/// writes with no split are 5-minute ones (the default lifetime, and the only one before
/// the split existed). `None` when neither is given.
pub(super) fn cache_writes(
    total: Option<u64>,
    split: Option<&CacheCreation>,
) -> Option<CacheWrites> {
    let m5 = split.and_then(|c| c.ephemeral_5m_input_tokens);
    let h1 = split.and_then(|c| c.ephemeral_1h_input_tokens);
    let total = match (total, m5, h1) {
        (Some(t), _, _) => t,
        (None, None, None) => return None,
        (None, m5, h1) => m5.unwrap_or(0).saturating_add(h1.unwrap_or(0)),
    };
    let h1 = h1.unwrap_or(0).min(total);
    Some(CacheWrites { m5: total - h1, h1 })
}

#[derive(Deserialize)]
pub(super) struct OpenAiPromptDetails {
    pub(super) cached_tokens: Option<u64>,
}

impl From<OpenAiUsage> for Usage {
    fn from(u: OpenAiUsage) -> Self {
        Usage {
            prompt: u.prompt_tokens,
            completion: u.completion_tokens,
            cached: u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct AnthropicEvent {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) message: Option<AnthropicMessage>,
    pub(super) usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
pub(super) struct AnthropicMessage {
    pub(super) usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
pub(super) struct AnthropicUsage {
    pub(super) input_tokens: Option<u64>,
    pub(super) output_tokens: Option<u64>,
    pub(super) cache_creation_input_tokens: Option<u64>,
    pub(super) cache_read_input_tokens: Option<u64>,
    pub(super) cache_creation: Option<CacheCreation>,
}

impl AnthropicUsage {
    /// Anthropic's `input_tokens` excludes cached tokens; the gateway's prompt count (like
    /// OpenAI's) includes them, reads and writes. `message_delta` carries the final,
    /// cumulative output count and may repeat the input counts (then they replace the
    /// earlier ones, cache writes included).
    pub(super) fn merge_into(
        self,
        previous: Option<Usage>,
        previous_writes: CacheWrites,
    ) -> (Option<Usage>, CacheWrites) {
        let prev = previous.unwrap_or_default();
        let mut writes = cache_writes(
            self.cache_creation_input_tokens,
            self.cache_creation.as_ref(),
        );
        if let (Some(w), None) = (writes.as_mut(), &self.cache_creation) {
            // `message_delta` repeats the total without the split `message_start` gave
            let total = w.total();
            w.h1 = previous_writes.h1.min(total);
            w.m5 = total - w.h1;
        }
        let input_given = self.input_tokens.is_some()
            || writes.is_some()
            || self.cache_read_input_tokens.is_some();
        let (prompt, cached, writes) = if input_given {
            let cached = self.cache_read_input_tokens.unwrap_or(0);
            let writes = writes.unwrap_or_default();
            (
                self.input_tokens
                    .unwrap_or(0)
                    .saturating_add(writes.total())
                    .saturating_add(cached),
                cached,
                writes,
            )
        } else {
            (prev.prompt, prev.cached, previous_writes)
        };
        let usage = Usage {
            prompt,
            completion: self.output_tokens.unwrap_or(prev.completion),
            cached,
        };
        (Some(usage), writes)
    }
}
