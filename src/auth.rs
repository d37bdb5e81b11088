//! Client keys: where they are read from a request, and how they are verified.
//!
//! Keys are never stored: the config holds the SHA-256 of each `cai-...` key, and a presented
//! key is hashed and looked up. The key's id (a prefix of that hash) is what logs and usage
//! records carry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pingora::http::RequestHeader;
use sha2::{Digest, Sha256};

use crate::catalog::Limits;
use crate::keys::KeyBackend;
use crate::state::StateError;

/// What the gateway knows about a verified client key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// `k_` + the first 12 hex digits of the key's SHA-256: stable and safe to log.
    pub id: String,
    pub name: String,
    /// Model names or `prefix*` patterns; `*` allows all.
    pub models: Vec<String>,
    pub limits: Limits,
    pub budget_micro_usd: Option<u64>,
    /// Unix seconds after which the key is refused.
    pub expires_at: Option<u64>,
}

impl KeyInfo {
    /// Whether this key may call `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.models
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => model.starts_with(prefix),
                None => pattern == model,
            })
    }
}

/// The hex SHA-256 of a key, as `hash-key` prints it and the config stores it.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The id derived from a key's hex hash.
pub fn key_id(sha256_hex: &str) -> String {
    format!("k_{}", &sha256_hex[..sha256_hex.len().min(12)])
}

/// The key a client presented: `Authorization: Bearer …` (OpenAI SDKs, Claude Code's
/// `ANTHROPIC_AUTH_TOKEN`) or `x-api-key` (Anthropic SDK, `ANTHROPIC_API_KEY`).
pub fn presented_key(req: &RequestHeader) -> Option<&str> {
    let bearer = req
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|k| !k.is_empty());
    bearer.or_else(|| {
        req.headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|k| !k.is_empty())
    })
}

/// A looked-up run-time key, remembered for the cache TTL (`None` = unknown key).
type Cached = (Option<Arc<KeyInfo>>, Instant);

/// Every key the gateway accepts: static keys from the config, then run-time keys from the
/// [`KeyBackend`] (Redis or memory), cached in process for `cache_ttl` so the hot path makes
/// no Redis call for a known key. A disabled or deleted key is refused within that TTL; an
/// expired one at once.
pub struct KeyStore {
    by_hash: HashMap<String, Arc<KeyInfo>>,
    dynamic: Option<Arc<dyn KeyBackend>>,
    cache: Mutex<HashMap<String, Cached>>,
    cache_ttl: Duration,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("static_keys", &self.by_hash.len())
            .finish()
    }
}

/// Most looked-up keys remembered at once.
const MAX_CACHED_KEYS: usize = 100_000;

/// Unknown keys are remembered for less time, so a key just created on another instance
/// works here quickly.
const NEGATIVE_CACHE: Duration = Duration::from_millis(500);

impl KeyStore {
    /// `keys` pairs each key's lowercase hex SHA-256 with its info.
    pub fn new(keys: impl IntoIterator<Item = (String, KeyInfo)>) -> Self {
        Self {
            by_hash: keys
                .into_iter()
                .map(|(hash, info)| (hash, Arc::new(info)))
                .collect(),
            dynamic: None,
            cache: Mutex::new(HashMap::new()),
            cache_ttl: Duration::from_secs(5),
        }
    }

    /// Adds the run-time key backend.
    pub fn with_backend(mut self, backend: Arc<dyn KeyBackend>, cache_ttl: Duration) -> Self {
        self.dynamic = Some(backend);
        self.cache_ttl = cache_ttl;
        self
    }

    /// The key's info, if the presented key is known and usable now. `Err` when the key
    /// backend cannot be asked (the client gets a 503, not a wrong 401).
    pub async fn verify(&self, presented: &str) -> Result<Option<Arc<KeyInfo>>, StateError> {
        let hash = hash_key(presented);
        if let Some(info) = self.by_hash.get(&hash) {
            return Ok(Some(info.clone()));
        }
        let Some(backend) = &self.dynamic else {
            return Ok(None);
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let cached = self.cache.lock().ok().and_then(|c| c.get(&hash).cloned());
        if let Some((info, at)) = &cached {
            let ttl = if info.is_some() {
                self.cache_ttl
            } else {
                NEGATIVE_CACHE
            };
            if at.elapsed() < ttl {
                return Ok(info
                    .clone()
                    .filter(|i| i.expires_at.is_none_or(|t| now < t)));
            }
        }
        let info = match backend.get(&hash).await {
            Ok(stored) => stored.and_then(|k| k.usable(now)).map(Arc::new),
            // Redis is down: a key seen before keeps working.
            Err(e) => match cached {
                Some((info, _)) => info,
                None => return Err(e),
            },
        };
        if let Ok(mut cache) = self.cache.lock() {
            // bounded: a flood of made-up keys must not grow memory without end
            if cache.len() >= MAX_CACHED_KEYS {
                cache.clear();
            }
            cache.insert(hash, (info.clone(), Instant::now()));
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/v1/chat/completions", None).unwrap();
        for (k, v) in headers {
            r.insert_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn reads_bearer_then_x_api_key() {
        assert_eq!(
            presented_key(&req(&[("authorization", "Bearer cai-1")])),
            Some("cai-1")
        );
        assert_eq!(
            presented_key(&req(&[("authorization", "bearer  cai-2 ")])),
            Some("cai-2")
        );
        assert_eq!(
            presented_key(&req(&[("x-api-key", "cai-3")])),
            Some("cai-3")
        );
        assert_eq!(presented_key(&req(&[("authorization", "Basic abc")])), None);
        assert_eq!(presented_key(&req(&[("authorization", "Bearer ")])), None);
        assert_eq!(presented_key(&req(&[])), None);
    }

    #[tokio::test]
    async fn verifies_by_hash_and_checks_models() {
        let hash = hash_key("cai-secret");
        assert_eq!(hash.len(), 64);
        let info = KeyInfo {
            id: key_id(&hash),
            name: "t".into(),
            models: vec!["gpt-4o".into(), "claude-*".into()],
            limits: Limits::default(),
            budget_micro_usd: None,
            expires_at: None,
        };
        let store = KeyStore::new([(hash, info)]);
        let found = store.verify("cai-secret").await.unwrap().unwrap();
        assert!(found.id.starts_with("k_") && found.id.len() == 14);
        assert!(store.verify("cai-other").await.unwrap().is_none());
        assert!(found.allows("gpt-4o"));
        assert!(found.allows("claude-3-5-sonnet"));
        assert!(!found.allows("gpt-4o-mini"));
    }

    #[tokio::test]
    async fn run_time_keys_are_cached_and_disabling_takes_effect_after_the_ttl() {
        let backend = Arc::new(crate::keys::MemoryKeys::default());
        let key = crate::keys::tests::stored("cai-runtime");
        backend.insert(&key).await.unwrap();
        let store = KeyStore::new([]).with_backend(backend.clone(), Duration::from_millis(100));
        assert!(store.verify("cai-runtime").await.unwrap().is_some());
        backend.set_disabled(&key.id, true).await.unwrap();
        assert!(
            store.verify("cai-runtime").await.unwrap().is_some(),
            "cached"
        );
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(
            store.verify("cai-runtime").await.unwrap().is_none(),
            "refused after the TTL"
        );
    }
}
