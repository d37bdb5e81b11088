//! Client keys: where they are read from a request, and how they are verified.
//!
//! Keys are never stored: the config holds the SHA-256 of each `cai-...` key, and a presented
//! key is hashed and looked up. The key's id (a prefix of that hash) is what logs and usage
//! records carry.

use std::collections::HashMap;
use std::sync::Arc;

use pingora::http::RequestHeader;
use sha2::{Digest, Sha256};

use crate::catalog::Limits;

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

/// Static keys from the config, by hash.
#[derive(Debug, Default)]
pub struct KeyStore {
    by_hash: HashMap<String, Arc<KeyInfo>>,
}

impl KeyStore {
    /// `keys` pairs each key's lowercase hex SHA-256 with its info.
    pub fn new(keys: impl IntoIterator<Item = (String, KeyInfo)>) -> Self {
        Self {
            by_hash: keys
                .into_iter()
                .map(|(hash, info)| (hash, Arc::new(info)))
                .collect(),
        }
    }

    /// The key's info, if the presented key is known.
    pub fn verify(&self, presented: &str) -> Option<Arc<KeyInfo>> {
        self.by_hash.get(&hash_key(presented)).cloned()
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

    #[test]
    fn verifies_by_hash_and_checks_models() {
        let hash = hash_key("cai-secret");
        assert_eq!(hash.len(), 64);
        let info = KeyInfo {
            id: key_id(&hash),
            name: "t".into(),
            models: vec!["gpt-4o".into(), "claude-*".into()],
            limits: Limits::default(),
            budget_micro_usd: None,
        };
        let store = KeyStore::new([(hash, info)]);
        let found = store.verify("cai-secret").unwrap();
        assert!(found.id.starts_with("k_") && found.id.len() == 14);
        assert!(store.verify("cai-other").is_none());
        assert!(found.allows("gpt-4o"));
        assert!(found.allows("claude-3-5-sonnet"));
        assert!(!found.allows("gpt-4o-mini"));
    }
}
