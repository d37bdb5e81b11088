//! Client keys: where they are read from a request, and how they are verified.
//!
//! Keys are never stored: the config holds the SHA-256 of each `cai-...` key, and a presented
//! key is hashed and looked up. The key's id (a prefix of that hash) is what logs and usage
//! records carry.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pingora::http::RequestHeader;

use crate::keys::KeyBackend;
use crate::state::StateError;

pub use crate::keys::{hash_key, key_id, KeyInfo};

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

/// What one backend lookup decided, shared by every request that waited for it.
type Lookup = Result<Option<Arc<KeyInfo>>, StateError>;

/// Every key the gateway accepts: static keys from the config, then run-time keys from the
/// [`KeyBackend`] (Redis or memory), cached in process for `cache_ttl` so the hot path makes
/// no Redis call for a known key. A disabled or deleted key is refused within that TTL; an
/// expired one at once, cached or not, Redis up or down.
///
/// Known and unknown keys are cached apart, each bounded: unknown keys are whatever anyone
/// sends, so they live in their own small cache that only evicts its own oldest entries and
/// can never push a known key out. A key that cannot be a run-time key (not `cai-` and 64
/// hex digits, the only shape `/admin/keys` makes) is refused without a lookup, and
/// concurrent requests with the same uncached key share one lookup.
pub struct KeyStore {
    by_hash: HashMap<String, Arc<KeyInfo>>,
    dynamic: Option<Arc<dyn KeyBackend>>,
    known: Mutex<Recent<Arc<KeyInfo>>>,
    unknown: Mutex<Recent<()>>,
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Lookup>>>>,
    cache_ttl: Duration,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("static_keys", &self.by_hash.len())
            .finish()
    }
}

/// Most known run-time keys remembered at once (only keys the backend vouched for get in).
const MAX_KNOWN_KEYS: usize = 100_000;

/// Most unknown (or disabled, or expired) keys remembered at once: enough to absorb a client
/// retrying a bad key, small enough that a flood of made-up keys costs little memory.
const MAX_UNKNOWN_KEYS: usize = 10_000;

/// Unknown keys are remembered for less time, so a key just created on another instance
/// works here quickly.
const NEGATIVE_CACHE: Duration = Duration::from_millis(500);

/// Entries by key hash with the time each was stored, bounded: past `cap` the oldest stored
/// go first. Entries are kept past any TTL (a known key's stale entry is what serves it
/// while Redis is down); callers decide what is fresh.
#[derive(Clone)]
struct Recent<V> {
    entries: HashMap<String, (V, Instant)>,
    /// Insertion order; an entry stored again has a newer copy here and the old one is
    /// skipped when it reaches the front.
    order: VecDeque<(String, Instant)>,
    cap: usize,
}

impl<V: Clone> Recent<V> {
    fn new(cap: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    fn get(&self, hash: &str) -> Option<(V, Instant)> {
        self.entries.get(hash).cloned()
    }

    fn insert(&mut self, hash: String, value: V) {
        let now = Instant::now();
        while self.order.len() >= self.cap {
            let Some((old, at)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&old).is_some_and(|(_, t)| *t == at) {
                self.entries.remove(&old);
            }
        }
        self.order.push_back((hash.clone(), now));
        self.entries.insert(hash, (value, now));
    }

    fn remove(&mut self, hash: &str) {
        self.entries.remove(hash);
    }
}

/// Whether `key` has the shape of a run-time key (`keys::new_secret`): `cai-` and 64
/// lowercase hex digits. Anything else can only be a config key, so it needs no lookup.
fn may_be_run_time_key(key: &str) -> bool {
    key.strip_prefix("cai-").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The key, if it has not expired by `now_secs`.
fn unexpired(info: Arc<KeyInfo>, now_secs: u64) -> Option<Arc<KeyInfo>> {
    info.expires_at.is_none_or(|t| now_secs < t).then_some(info)
}

impl KeyStore {
    /// `keys` pairs each key's lowercase hex SHA-256 with its info.
    pub fn new(keys: impl IntoIterator<Item = (String, KeyInfo)>) -> Self {
        Self {
            by_hash: keys
                .into_iter()
                .map(|(hash, info)| (hash, Arc::new(info)))
                .collect(),
            dynamic: None,
            known: Mutex::new(Recent::new(MAX_KNOWN_KEYS)),
            unknown: Mutex::new(Recent::new(MAX_UNKNOWN_KEYS)),
            in_flight: Mutex::new(HashMap::new()),
            cache_ttl: Duration::from_secs(5),
        }
    }

    /// Takes over what `old` has learnt about run-time keys (a config reload builds a new
    /// store; during a Redis outage those entries are what serve, or refuse, such keys).
    pub fn keep_lookups_of(self, old: &KeyStore) -> Self {
        if let (Ok(mut mine), Ok(theirs)) = (self.known.lock(), old.known.lock()) {
            *mine = theirs.clone();
        }
        if let (Ok(mut mine), Ok(theirs)) = (self.unknown.lock(), old.unknown.lock()) {
            *mine = theirs.clone();
        }
        self
    }

    /// Adds the run-time key backend.
    pub fn with_backend(mut self, backend: Arc<dyn KeyBackend>, cache_ttl: Duration) -> Self {
        self.dynamic = Some(backend);
        self.cache_ttl = cache_ttl;
        self
    }

    /// The key's info, if the presented key is known and usable now. `Err` when the key
    /// backend cannot be asked and nothing cached speaks for the key (the client gets a
    /// 503, not a wrong 401).
    pub async fn verify(&self, presented: &str) -> Result<Option<Arc<KeyInfo>>, StateError> {
        let hash = hash_key(presented);
        if let Some(info) = self.by_hash.get(&hash) {
            return Ok(Some(info.clone()));
        }
        let Some(backend) = &self.dynamic else {
            return Ok(None);
        };
        if !may_be_run_time_key(presented) {
            return Ok(None);
        }
        let now = crate::clock::unix_secs();
        let known = self.known.lock().ok().and_then(|c| c.get(&hash));
        if let Some((info, at)) = known {
            if at.elapsed() < self.cache_ttl {
                return Ok(unexpired(info, now));
            }
        }
        let unknown = self.unknown.lock().ok().and_then(|c| c.get(&hash));
        if unknown.is_some_and(|(_, at)| at.elapsed() < NEGATIVE_CACHE) {
            return Ok(None);
        }
        // one lookup per key at a time: the others wait for its answer
        let cell = match self.in_flight.lock() {
            Ok(mut map) => map.entry(hash.clone()).or_default().clone(),
            Err(_) => Arc::default(),
        };
        let answer = cell
            .get_or_init(|| self.look_up(backend.as_ref(), &hash))
            .await
            .clone();
        if let Ok(mut map) = self.in_flight.lock() {
            if map.get(&hash).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                map.remove(&hash);
            }
        }
        answer.map(|info| info.and_then(|i| unexpired(i, crate::clock::unix_secs())))
    }

    /// Asks the backend and caches the answer. While the backend cannot answer, a stale
    /// entry speaks for the key: a known key keeps working if it has not expired (it cannot
    /// be seen being disabled meanwhile; the TTL bounds that anyway once Redis is back), a
    /// key last seen unknown, disabled or expired stays refused.
    async fn look_up(&self, backend: &dyn KeyBackend, hash: &str) -> Lookup {
        let now = crate::clock::unix_secs();
        match backend.get(hash).await {
            Ok(stored) => {
                let info = stored.and_then(|k| k.usable(now)).map(Arc::new);
                match &info {
                    Some(i) => {
                        if let Ok(mut c) = self.known.lock() {
                            c.insert(hash.to_string(), i.clone());
                        }
                        if let Ok(mut c) = self.unknown.lock() {
                            c.remove(hash);
                        }
                    }
                    None => self.forget(hash),
                }
                Ok(info)
            }
            Err(e) => {
                let known = self.known.lock().ok().and_then(|c| c.get(hash));
                if let Some((info, _)) = known {
                    let info = unexpired(info, now);
                    match &info {
                        // trusted for another TTL: no lookup per request during the outage
                        Some(i) => {
                            if let Ok(mut c) = self.known.lock() {
                                c.insert(hash.to_string(), i.clone());
                            }
                        }
                        None => self.forget(hash),
                    }
                    return Ok(info);
                }
                if self.unknown.lock().ok().and_then(|c| c.get(hash)).is_some() {
                    return Ok(None);
                }
                Err(e)
            }
        }
    }

    /// Records a key as refused: out of the known cache (so no older entry can serve it,
    /// even during an outage) and into the unknown one.
    fn forget(&self, hash: &str) {
        if let Ok(mut c) = self.known.lock() {
            c.remove(hash);
        }
        if let Ok(mut c) = self.unknown.lock() {
            c.insert(hash.to_string(), ());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Limits;

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
            max_inflight: None,
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
        let secret = crate::keys::new_secret();
        let key = crate::keys::tests::stored(&secret);
        backend.insert(&key).await.unwrap();
        let store = KeyStore::new([]).with_backend(backend.clone(), Duration::from_millis(100));
        assert!(store.verify(&secret).await.unwrap().is_some());
        backend.set_disabled(&key.id, true).await.unwrap();
        assert!(store.verify(&secret).await.unwrap().is_some(), "cached");
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(
            store.verify(&secret).await.unwrap().is_none(),
            "refused after the TTL"
        );
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod cache_tests;
