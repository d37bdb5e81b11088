//! Anthropic's prompt cache, kept the way the API documents it, so a saving measured against
//! the emulator is the saving a real bill shows.
//!
//! # Rules
//! * The prompt is a sequence of blocks in cache order: `tools`, then `system` blocks (a
//!   string is one block), then every message's content blocks (a string is one block).
//!   Each block has the tokens of the token rules ([`super::prompt_tokens`]): a message's or
//!   the system's 3 go to its first block, tools count 0.
//! * A block with a non-null `cache_control` is a breakpoint; more than
//!   [`MAX_BREAKPOINTS`] is a 400 in Anthropic's wording. `cache_control.ttl` is `"5m"`
//!   (default) or `"1h"`.
//! * A prefix is identified by the model and every block up to its end, `cache_control`
//!   left out (moving a marker does not change the prefix).
//! * Read: for each breakpoint, the longest prefix ending at that block or at one of the
//!   [`LOOKBACK_BLOCKS`] blocks before it that is in the cache; the longest over all
//!   breakpoints is read (`cache_read_input_tokens`), and its lifetime refreshed.
//! * Write: every breakpoint after the read prefix whose prefix has at least
//!   [`min_cacheable_tokens`] is written; `cache_creation_input_tokens` is the tokens from the
//!   end of the read prefix to the last breakpoint written, each stretch at the lifetime of
//!   the breakpoint that ends it.
//! * `input_tokens` is the rest: P − read − written.
//!
//! One cache per emulator instance (Anthropic keeps one per organization).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{content_words, words};

/// Anthropic's limit of `cache_control` blocks in one request.
pub const MAX_BREAKPOINTS: usize = 4;
/// How many blocks before a breakpoint Anthropic checks for an earlier cached prefix.
pub const LOOKBACK_BLOCKS: usize = 20;
/// The default cache lifetime (`"ttl": "5m"`), refreshed by every read.
const FIVE_MINUTES: Duration = Duration::from_secs(300);
const ONE_HOUR: Duration = Duration::from_secs(3600);

/// The shortest prefix Anthropic caches for `model`: 2,048 tokens for Haiku models, 1,024 for
/// the others; a shorter marked prefix is neither written nor an error.
pub fn min_cacheable_tokens(model: &str) -> u64 {
    if model.contains("haiku") {
        2048
    } else {
        1024
    }
}

/// What one request read from and wrote to the cache, in tokens.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheUse {
    pub read: u64,
    pub written_5m: u64,
    pub written_1h: u64,
}

impl CacheUse {
    pub fn written(&self) -> u64 {
        self.written_5m + self.written_1h
    }
}

/// The cached prefixes of one emulator instance, each with its expiry.
#[derive(Default)]
pub struct PromptCache {
    entries: Mutex<HashMap<u64, Instant>>,
}

/// One block of the prompt in cache order.
struct Block {
    /// Tokens of the prompt up to and including this block.
    end: u64,
    /// Identifies the prefix that ends with this block.
    prefix: u64,
    /// The block's `cache_control` lifetime when it is a breakpoint.
    breakpoint: Option<Duration>,
}

impl PromptCache {
    /// Reads and writes the cache for a validated Messages request at `now`; `Err` is the 400
    /// message for too many breakpoints.
    pub fn account(&self, req: &Value, now: Instant) -> Result<CacheUse, String> {
        let model = req.get("model").and_then(Value::as_str).unwrap_or_default();
        let blocks = blocks(req, model);
        let marked: Vec<usize> = (0..blocks.len())
            .filter(|&i| blocks[i].breakpoint.is_some())
            .collect();
        if marked.len() > MAX_BREAKPOINTS {
            return Err(format!(
                "A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {}.",
                marked.len()
            ));
        }
        let Ok(mut entries) = self.entries.lock() else {
            return Ok(CacheUse::default());
        };
        entries.retain(|_, expiry| *expiry > now);
        let hit = marked
            .iter()
            .filter_map(|&b| {
                (b.saturating_sub(LOOKBACK_BLOCKS)..=b)
                    .rev()
                    .find(|&i| entries.contains_key(&blocks[i].prefix))
            })
            .max();
        let mut used = CacheUse::default();
        let mut covered = 0;
        if let Some(i) = hit {
            used.read = blocks[i].end;
            covered = blocks[i].end;
            if let Some(expiry) = entries.get_mut(&blocks[i].prefix) {
                *expiry = (*expiry).max(now + FIVE_MINUTES);
            }
        }
        let minimum = min_cacheable_tokens(model);
        for &b in marked.iter().filter(|&&b| hit.is_none_or(|i| b > i)) {
            let block = &blocks[b];
            let Some(ttl) = block.breakpoint.filter(|_| block.end >= minimum) else {
                continue;
            };
            let stretch = block.end - covered;
            if ttl == ONE_HOUR {
                used.written_1h += stretch;
            } else {
                used.written_5m += stretch;
            }
            covered = block.end;
            entries.insert(block.prefix, now + ttl);
        }
        Ok(used)
    }
}

/// The prompt's blocks in cache order (see the module doc).
fn blocks(req: &Value, model: &str) -> Vec<Block> {
    let mut hasher = DefaultHasher::new();
    model.hash(&mut hasher);
    let mut out = Vec::new();
    let mut end = 0;
    let mut push = |block: &Value, tokens: u64| {
        end += tokens;
        unmarked(block).hash(&mut hasher);
        out.push(Block {
            end,
            prefix: hasher.finish(),
            breakpoint: breakpoint(block),
        });
    };
    for tool in req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        push(tool, 0);
    }
    let system = req.get("system").filter(|s| match s {
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    });
    let messages = req.get("messages").and_then(Value::as_array);
    let contents = system.into_iter().chain(
        messages
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("content")),
    );
    for content in contents {
        match content {
            Value::Array(parts) => {
                for (i, part) in parts.iter().enumerate() {
                    let overhead = if i == 0 { 3 } else { 0 };
                    push(
                        part,
                        overhead + content_words(Some(&Value::Array(vec![part.clone()]))),
                    );
                }
            }
            Value::String(text) => push(content, 3 + words(text)),
            _ => {}
        }
    }
    out
}

/// The block as it identifies a prefix: without its `cache_control`.
fn unmarked(block: &Value) -> String {
    match block {
        Value::Object(fields) => {
            let mut fields = fields.clone();
            fields.remove("cache_control");
            Value::Object(fields).to_string()
        }
        other => other.to_string(),
    }
}

/// The lifetime a block's `cache_control` asks for, if it has one.
fn breakpoint(block: &Value) -> Option<Duration> {
    let control = block.get("cache_control").filter(|c| !c.is_null())?;
    Some(match control.get("ttl").and_then(Value::as_str) {
        Some("1h") => ONE_HOUR,
        _ => FIVE_MINUTES,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A system prompt of `n` words (3 + n tokens).
    fn system(n: usize) -> Value {
        json!([{"type": "text", "text": vec!["w"; n].join(" "), "cache_control": {"type": "ephemeral"}}])
    }

    fn request(system: Value, messages: Value) -> Value {
        json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "system": system, "messages": messages})
    }

    fn marked(text: &str) -> Value {
        json!({"role": "user", "content": [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]})
    }

    #[test]
    fn a_marked_prefix_is_written_once_then_read_until_it_expires() {
        let cache = PromptCache::default();
        let now = Instant::now();
        let req = request(
            system(2000),
            json!([{"role": "user", "content": "hi there"}]),
        );
        let first = cache.account(&req, now).unwrap();
        assert_eq!(
            first,
            CacheUse {
                read: 0,
                written_5m: 2003,
                written_1h: 0
            }
        );
        let second = cache.account(&req, now + Duration::from_secs(200)).unwrap();
        assert_eq!(
            second,
            CacheUse {
                read: 2003,
                ..CacheUse::default()
            }
        );
        // the read refreshed the lifetime: 200 s + 299 s is still inside it
        let third = cache.account(&req, now + Duration::from_secs(499)).unwrap();
        assert_eq!(third.read, 2003);
        let expired = cache.account(&req, now + Duration::from_secs(900)).unwrap();
        assert_eq!(expired, first);
    }

    #[test]
    fn a_growing_conversation_reads_the_previous_turn_through_the_lookback() {
        let cache = PromptCache::default();
        let now = Instant::now();
        let turn1 = request(system(1500), json!([marked("one two three")]));
        assert_eq!(cache.account(&turn1, now).unwrap().written_5m, 1503 + 6);
        // the next turn marks only its newest block; the earlier prefix is 2 blocks back
        let turn2 = request(
            system(1500),
            json!([
                {"role": "user", "content": [{"type": "text", "text": "one two three"}]},
                {"role": "assistant", "content": "four"},
                marked("five six"),
            ]),
        );
        let used = cache.account(&turn2, now).unwrap();
        assert_eq!(used.read, 1509);
        assert_eq!(used.written_5m, 4 + 5);
    }

    #[test]
    fn short_prefixes_are_not_cached_and_changed_prefixes_miss() {
        let cache = PromptCache::default();
        let now = Instant::now();
        let short = request(system(100), json!([{"role": "user", "content": "hi"}]));
        assert_eq!(cache.account(&short, now).unwrap(), CacheUse::default());
        assert_eq!(cache.account(&short, now).unwrap(), CacheUse::default());
        let a = request(system(2000), json!([{"role": "user", "content": "hi"}]));
        cache.account(&a, now).unwrap();
        let mut b = a.clone();
        b["system"][0]["text"] = json!(format!("{} x", a["system"][0]["text"].as_str().unwrap()));
        assert_eq!(cache.account(&b, now).unwrap().read, 0);
        // the marker's place does not identify the prefix; the model does
        let mut other_model = a.clone();
        other_model["model"] = json!("claude-opus-4-1");
        assert_eq!(cache.account(&other_model, now).unwrap().read, 0);
    }

    #[test]
    fn one_hour_writes_and_the_breakpoint_limit() {
        let cache = PromptCache::default();
        let mut sys = system(2000);
        sys[0]["cache_control"]["ttl"] = json!("1h");
        let req = request(sys, json!([marked("a b c")]));
        let used = cache.account(&req, Instant::now()).unwrap();
        assert_eq!((used.written_1h, used.written_5m), (2003, 6));
        let five = json!([marked("a"), marked("b"), marked("c"), marked("d")]);
        let err = cache
            .account(&request(system(5), five), Instant::now())
            .unwrap_err();
        assert_eq!(
            err,
            "A maximum of 4 blocks with cache_control may be provided. Found 5."
        );
    }
}
