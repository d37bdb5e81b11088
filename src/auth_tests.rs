//! The run-time key cache: validity during Redis outages, and what unknown keys may cost.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::keys::{new_secret, KeyBackend, MemoryKeys, RedisKeys, StoredKey};
use crate::state::{Redis, StateError};

/// A stored key for `secret` (a real `cai-` + 64 hex secret).
fn stored(secret: &str) -> StoredKey {
    let sha256 = hash_key(secret);
    StoredKey {
        id: key_id(&sha256),
        sha256,
        name: "t".into(),
        models: vec!["*".into()],
        rpm: None,
        tpm: None,
        budget_micro_usd: None,
        expires_at: None,
        disabled: false,
        created_at: 1,
        max_inflight: None,
    }
}

/// Counts lookups; can be made slow (to line requests up) or down (a Redis outage).
#[derive(Default)]
struct Counting {
    inner: MemoryKeys,
    gets: AtomicUsize,
    down: AtomicBool,
    delay_ms: AtomicUsize,
}

#[async_trait]
impl KeyBackend for Counting {
    async fn get(&self, sha256: &str) -> Result<Option<StoredKey>, StateError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        let delay = self.delay_ms.load(Ordering::SeqCst) as u64;
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(StateError("redis down (test)".into()));
        }
        self.inner.get(sha256).await
    }
    async fn insert(&self, key: &StoredKey) -> Result<(), StateError> {
        self.inner.insert(key).await
    }
    async fn list(&self) -> Result<Vec<StoredKey>, StateError> {
        self.inner.list().await
    }
    async fn set_disabled(&self, id: &str, disabled: bool) -> Result<bool, StateError> {
        self.inner.set_disabled(id, disabled).await
    }
    async fn delete(&self, id: &str) -> Result<bool, StateError> {
        self.inner.delete(id).await
    }
}

impl Counting {
    fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }
}

fn redis_keys(url: &str) -> Arc<RedisKeys> {
    let redis = Redis::new(url, Duration::from_millis(300)).unwrap();
    Arc::new(RedisKeys::new(Arc::new(redis)))
}

#[tokio::test]
async fn an_expired_key_is_refused_while_redis_is_down() {
    let server = crate::state::tests::redis_server();
    let backend = redis_keys(&server.1);
    let secret = new_secret();
    let mut key = stored(&secret);
    let expires_at = crate::clock::unix_secs() + 2;
    key.expires_at = Some(expires_at);
    backend.insert(&key).await.unwrap();
    let store = KeyStore::new([]).with_backend(backend, Duration::from_millis(50));
    assert!(store.verify(&secret).await.unwrap().is_some());

    drop(server); // Redis is gone
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        store.verify(&secret).await.unwrap().is_some(),
        "a stale entry that is still valid keeps working during the outage"
    );
    while crate::clock::unix_secs() < expires_at {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(60)).await;
    let answer = store.verify(&secret).await;
    assert!(
        matches!(answer, Ok(None)),
        "an expired key is refused even with Redis down: {answer:?}"
    );
}

#[tokio::test]
async fn a_reloaded_store_keeps_the_run_time_keys_looked_up_for_an_outage() {
    let backend = Arc::new(Counting::default());
    let secret = new_secret();
    backend.insert(&stored(&secret)).await.unwrap();
    let ttl = Duration::from_millis(50);
    let before = KeyStore::new([]).with_backend(backend.clone(), ttl);
    assert!(before.verify(&secret).await.unwrap().is_some());
    backend.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let reloaded = KeyStore::new([])
        .with_backend(backend.clone(), ttl)
        .keep_lookups_of(&before);
    assert!(
        reloaded.verify(&secret).await.unwrap().is_some(),
        "served from the entry the old store looked up"
    );
    let fresh = KeyStore::new([]).with_backend(backend, ttl);
    assert!(fresh.verify(&secret).await.is_err(), "nothing to serve it");
}

#[tokio::test]
async fn a_disabled_key_stays_refused_while_redis_is_down() {
    let server = crate::state::tests::redis_server();
    let backend = redis_keys(&server.1);
    let secret = new_secret();
    let key = stored(&secret);
    backend.insert(&key).await.unwrap();
    let store = KeyStore::new([]).with_backend(backend.clone(), Duration::from_millis(50));
    assert!(store.verify(&secret).await.unwrap().is_some());
    backend.set_disabled(&key.id, true).await.unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(store.verify(&secret).await.unwrap().is_none(), "disabled");

    drop(server);
    // past the unknown-key TTL too: nothing fresh is left about this key
    tokio::time::sleep(Duration::from_millis(700)).await;
    let answer = store.verify(&secret).await;
    assert!(
        !matches!(answer, Ok(Some(_))),
        "a key seen disabled is never served from an older cache entry: {answer:?}"
    );
}

#[tokio::test]
async fn unknown_keys_never_evict_known_keys() {
    let backend = Arc::new(Counting::default());
    let secret = new_secret();
    backend.insert(&stored(&secret)).await.unwrap();
    let store = KeyStore::new([]).with_backend(backend.clone(), Duration::from_secs(600));
    assert!(store.verify(&secret).await.unwrap().is_some());
    assert_eq!(backend.gets(), 1);
    // more made-up keys than any cache holds
    for _ in 0..100_001 {
        assert!(store.verify(&new_secret()).await.unwrap().is_none());
    }
    let before = backend.gets();
    assert!(store.verify(&secret).await.unwrap().is_some());
    assert_eq!(
        backend.gets(),
        before,
        "the known key is still cached: no lookup"
    );
}

#[tokio::test]
async fn a_repeated_unknown_key_costs_one_lookup() {
    let backend = Arc::new(Counting::default());
    let store = KeyStore::new([]).with_backend(backend.clone(), Duration::from_secs(5));
    let unknown = new_secret();
    for _ in 0..50 {
        assert!(store.verify(&unknown).await.unwrap().is_none());
    }
    assert_eq!(backend.gets(), 1, "repeats within the TTL cost nothing");

    // the same unknown key arriving many times at once: one lookup, shared
    backend.delay_ms.store(50, Ordering::SeqCst);
    let store = Arc::new(KeyStore::new([]).with_backend(backend.clone(), Duration::from_secs(5)));
    let unknown = new_secret();
    let before = backend.gets();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (store, key) = (store.clone(), unknown.clone());
            tokio::spawn(async move { store.verify(&key).await.map(|k| k.is_none()) })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().unwrap());
    }
    assert_eq!(
        backend.gets() - before,
        1,
        "concurrent repeats share one lookup"
    );
}

#[tokio::test]
async fn keys_that_cannot_be_run_time_keys_cost_no_lookup() {
    let backend = Arc::new(Counting::default());
    let store = KeyStore::new([]).with_backend(backend.clone(), Duration::from_secs(5));
    let too_short = format!("cai-{}", "a".repeat(63));
    let upper = format!("cai-{}", "A".repeat(64));
    for key in [
        "cai-not-a-key",
        "sk-proj-abc",
        too_short.as_str(),
        upper.as_str(),
    ] {
        assert!(store.verify(key).await.unwrap().is_none(), "{key}");
    }
    assert_eq!(backend.gets(), 0);
    for _ in 0..100 {
        assert!(may_be_run_time_key(&new_secret()));
    }
}

#[tokio::test]
async fn an_outage_without_any_cache_entry_is_an_error_not_a_401() {
    let backend = Arc::new(Counting::default());
    backend.down.store(true, Ordering::SeqCst);
    let store = KeyStore::new([]).with_backend(backend.clone(), Duration::from_secs(5));
    assert!(store.verify(&new_secret()).await.is_err());
}
