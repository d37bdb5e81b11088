//! Client keys: what the gateway knows of a verified key ([`KeyInfo`]) and how keys are
//! named (their SHA-256 and the id derived from it), and the keys created at run time through
//! `/admin/keys`: stored by SHA-256 only, in Redis (shared by every instance) or in memory
//! (one instance). Config keys live in [`crate::auth::KeyStore`] and never come here.
//!
//! Redis layout: `cai:key:{sha256}` → the key's JSON ([`StoredKey`]), `cai:key:{sha256}:off`
//! present while it is disabled (a flag of its own, so disabling is one write, never a
//! read-modify-write), `cai:keyid:{id}` → its sha256, and the set `cai:keys` of ids. The
//! secret itself is never stored.
//!
//! On a Redis Cluster these are three slots, so no command spans them: a key's record and
//! flag share the hash tag of its sha256 (one `MGET`, one `DEL`), and insert and delete are
//! single-key steps in an order that is safe to stop at any point (see each).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use sha2::{Digest, Sha256};

use crate::catalog::Limits;
use crate::state::{Redis, StateError};

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
    /// Concurrent requests this key may have in one gateway instance.
    pub max_inflight: Option<u32>,
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

/// What is stored for a key: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    pub id: String,
    pub sha256: String,
    pub name: String,
    pub models: Vec<String>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub budget_micro_usd: Option<u64>,
    /// Unix seconds after which the key is refused.
    pub expires_at: Option<u64>,
    pub disabled: bool,
    pub created_at: u64,
    /// Concurrent requests per gateway instance.
    #[serde(default)]
    pub max_inflight: Option<u32>,
}

impl StoredKey {
    /// The key as the request path sees it, or `None` when it may not be used at `now`.
    pub fn usable(&self, now_secs: u64) -> Option<KeyInfo> {
        if self.disabled || self.expires_at.is_some_and(|t| now_secs >= t) {
            return None;
        }
        Some(KeyInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            models: self.models.clone(),
            limits: Limits {
                rpm: self.rpm,
                tpm: self.tpm,
            },
            budget_micro_usd: self.budget_micro_usd,
            expires_at: self.expires_at,
            max_inflight: self.max_inflight,
        })
    }
}

/// Where run-time keys live.
#[async_trait]
pub trait KeyBackend: Send + Sync {
    async fn get(&self, sha256: &str) -> Result<Option<StoredKey>, StateError>;
    async fn insert(&self, key: &StoredKey) -> Result<(), StateError>;
    async fn list(&self) -> Result<Vec<StoredKey>, StateError>;
    /// Sets `disabled`; false when no key has that id.
    async fn set_disabled(&self, id: &str, disabled: bool) -> Result<bool, StateError>;
    /// False when no key has that id.
    async fn delete(&self, id: &str) -> Result<bool, StateError>;
}

/// A new secret: `cai-` and 64 hex digits from two v4 UUIDs (244 random bits). The key
/// cache ([`crate::auth::KeyStore`]) refuses anything else without a backend lookup, so this
/// shape must not change without it.
pub fn new_secret() -> String {
    format!(
        "cai-{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The id of a key with this hash (same rule as config keys).
pub fn id_for(sha256: &str) -> String {
    key_id(sha256)
}

/// Run-time keys of a single instance.
#[derive(Default)]
pub struct MemoryKeys {
    by_hash: Mutex<HashMap<String, StoredKey>>,
}

fn poisoned() -> StateError {
    StateError("key store lock poisoned".into())
}

#[async_trait]
impl KeyBackend for MemoryKeys {
    async fn get(&self, sha256: &str) -> Result<Option<StoredKey>, StateError> {
        Ok(self
            .by_hash
            .lock()
            .map_err(|_| poisoned())?
            .get(sha256)
            .cloned())
    }

    async fn insert(&self, key: &StoredKey) -> Result<(), StateError> {
        self.by_hash
            .lock()
            .map_err(|_| poisoned())?
            .insert(key.sha256.clone(), key.clone());
        Ok(())
    }

    async fn list(&self) -> Result<Vec<StoredKey>, StateError> {
        let mut keys: Vec<_> = self
            .by_hash
            .lock()
            .map_err(|_| poisoned())?
            .values()
            .cloned()
            .collect();
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(keys)
    }

    async fn set_disabled(&self, id: &str, disabled: bool) -> Result<bool, StateError> {
        let mut map = self.by_hash.lock().map_err(|_| poisoned())?;
        Ok(map
            .values_mut()
            .find(|k| k.id == id)
            .map(|k| k.disabled = disabled)
            .is_some())
    }

    async fn delete(&self, id: &str) -> Result<bool, StateError> {
        let mut map = self.by_hash.lock().map_err(|_| poisoned())?;
        let before = map.len();
        map.retain(|_, k| k.id != id);
        Ok(map.len() < before)
    }
}

/// Run-time keys shared through Redis.
pub struct RedisKeys {
    redis: Arc<Redis>,
}

impl RedisKeys {
    pub fn new(redis: Arc<Redis>) -> Self {
        Self { redis }
    }
}

impl RedisKeys {
    /// The sha256 of the key with this id.
    async fn hash_of(&self, id: &str) -> Result<Option<String>, StateError> {
        let get = redis::Cmd::get(format!("cai:keyid:{id}"));
        self.redis.command("key id", get).await
    }
}

fn parse(json: Option<String>) -> Result<Option<StoredKey>, StateError> {
    json.map(|j| {
        serde_json::from_str(&j).map_err(|e| StateError(format!("stored key is not valid: {e}")))
    })
    .transpose()
}

#[async_trait]
impl KeyBackend for RedisKeys {
    async fn get(&self, sha256: &str) -> Result<Option<StoredKey>, StateError> {
        let mget = redis::Cmd::mget(&[
            format!("cai:key:{{{sha256}}}"),
            format!("cai:key:{{{sha256}}}:off"),
        ]);
        let (json, off): (Option<String>, Option<String>) =
            self.redis.command("key lookup", mget).await?;
        Ok(parse(json)?.map(|k| StoredKey {
            disabled: off.is_some(),
            ..k
        }))
    }

    /// Index first, record last: the key works only once it is fully written, and a failure
    /// part-way leaves at most an index entry without a record, which `list` skips.
    async fn insert(&self, key: &StoredKey) -> Result<(), StateError> {
        let json = serde_json::to_string(key).map_err(|e| StateError(e.to_string()))?;
        let (hash, id) = (&key.sha256, &key.id);
        let by_id = redis::Cmd::set(format!("cai:keyid:{id}"), hash);
        let _: () = self.redis.command("key insert (id)", by_id).await?;
        let listed = redis::Cmd::sadd("cai:keys", id);
        let _: () = self.redis.command("key insert (list)", listed).await?;
        let record = redis::Cmd::set(format!("cai:key:{{{hash}}}"), json);
        let _: () = self.redis.command("key insert", record).await?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<StoredKey>, StateError> {
        let members = redis::Cmd::smembers("cai:keys");
        let ids: Vec<String> = self.redis.command("key list", members).await?;
        let mut keys = Vec::new();
        for id in ids {
            if let Some(hash) = self.hash_of(&id).await? {
                keys.extend(self.get(&hash).await?);
            }
        }
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(keys)
    }

    async fn set_disabled(&self, id: &str, disabled: bool) -> Result<bool, StateError> {
        let Some(hash) = self.hash_of(id).await? else {
            return Ok(false);
        };
        let flag = format!("cai:key:{{{hash}}}:off");
        let command = if disabled {
            redis::Cmd::set(flag, 1)
        } else {
            redis::Cmd::del(flag)
        };
        let _: () = self.redis.command("key disable", command).await?;
        Ok(true)
    }

    async fn delete(&self, id: &str) -> Result<bool, StateError> {
        let Some(hash) = self.hash_of(id).await? else {
            return Ok(false);
        };
        // the record and its flag first (one slot, at once): the key stops working even if
        // a later step fails, and a retried delete finds the id and finishes the job
        let record = redis::Cmd::del(&[
            format!("cai:key:{{{hash}}}"),
            format!("cai:key:{{{hash}}}:off"),
        ]);
        let _: () = self.redis.command("key delete", record).await?;
        let by_id = redis::Cmd::del(format!("cai:keyid:{id}"));
        let _: () = self.redis.command("key delete (id)", by_id).await?;
        let listed = redis::Cmd::srem("cai:keys", id);
        let _: () = self.redis.command("key delete (list)", listed).await?;
        Ok(true)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn stored(name: &str) -> StoredKey {
        let sha256 = super::hash_key(name);
        StoredKey {
            id: id_for(&sha256),
            sha256,
            name: name.into(),
            models: vec!["*".into()],
            rpm: Some(5),
            tpm: None,
            budget_micro_usd: None,
            expires_at: None,
            disabled: false,
            created_at: 1,
            max_inflight: None,
        }
    }

    /// The behaviour both backends must have.
    pub async fn backend_contract(b: &dyn KeyBackend) {
        let k = stored("cai-contract-1");
        b.insert(&k).await.unwrap();
        assert_eq!(b.get(&k.sha256).await.unwrap(), Some(k.clone()));
        assert_eq!(
            b.list()
                .await
                .unwrap()
                .iter()
                .filter(|x| x.id == k.id)
                .count(),
            1
        );
        assert!(b.set_disabled(&k.id, true).await.unwrap());
        assert!(b.get(&k.sha256).await.unwrap().unwrap().disabled);
        assert!(!b.set_disabled("k_nope", true).await.unwrap());
        assert!(b.delete(&k.id).await.unwrap());
        assert_eq!(b.get(&k.sha256).await.unwrap(), None);
        assert!(!b.delete(&k.id).await.unwrap());
    }

    #[test]
    fn a_run_time_key_carries_its_max_inflight_and_old_records_have_none() {
        let mut key = stored("k");
        key.max_inflight = Some(3);
        let json = serde_json::to_string(&key).unwrap();
        let back: StoredKey = serde_json::from_str(&json).unwrap();
        assert_eq!(back.usable(0).unwrap().max_inflight, Some(3));
        let old = json.replace(",\"max_inflight\":3", "");
        assert_ne!(old, json);
        let old: StoredKey = serde_json::from_str(&old).unwrap();
        assert_eq!(old.max_inflight, None);
    }

    #[tokio::test]
    async fn memory_backend_meets_the_contract() {
        backend_contract(&MemoryKeys::default()).await;
    }

    #[test]
    fn disabled_and_expired_keys_are_not_usable() {
        let mut k = stored("cai-x");
        assert!(k.usable(100).is_some());
        k.expires_at = Some(100);
        assert!(k.usable(99).is_some());
        assert!(k.usable(100).is_none());
        k.expires_at = None;
        k.disabled = true;
        assert!(k.usable(0).is_none());
        assert!(new_secret().starts_with("cai-") && new_secret().len() == 68);
    }
}

#[cfg(test)]
mod redis_tests {
    use super::*;

    #[tokio::test]
    async fn redis_backend_meets_the_same_contract() {
        let server = crate::state::tests::redis_server();
        let redis = Redis::new(&server.1, std::time::Duration::from_secs(2)).unwrap();
        tests::backend_contract(&RedisKeys::new(Arc::new(redis))).await;
    }
}
