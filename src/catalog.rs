//! The model catalog: which provider serves a model name, under which upstream name, at what
//! price and with which limits.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::providers::Provider;

/// Prices in integer micro-USD per one million tokens, so that costs add up exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Price {
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
}

/// Requests and tokens per minute; `None` = unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
}

/// One catalog entry, shared by every request for it.
#[derive(Debug)]
pub struct Model {
    /// The name clients use (`gpt-4o`).
    pub name: String,
    pub provider: Arc<Provider>,
    /// The name the provider knows it by; equal to `name` unless renamed in config.
    pub upstream_model: String,
    pub price: Price,
    pub limits: Limits,
    /// Catalog names tried in order when this route fails before any byte reached the client.
    pub fallbacks: Vec<String>,
}

/// All models, looked up by the `model` of a request.
#[derive(Debug, Default)]
pub struct Catalog {
    models: BTreeMap<String, Arc<Model>>,
}

impl Catalog {
    /// Builds the catalog; names are validated by the config loader.
    pub fn new(models: impl IntoIterator<Item = Model>) -> Self {
        Self {
            models: models
                .into_iter()
                .map(|m| (m.name.clone(), Arc::new(m)))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Model>> {
        self.models.get(name)
    }

    /// The model itself, then its fallbacks that exist, without repeats.
    pub fn routes(&self, model: &Arc<Model>) -> Vec<Arc<Model>> {
        let mut routes = vec![model.clone()];
        for name in &model.fallbacks {
            if let Some(m) = self.models.get(name) {
                if !routes.iter().any(|r| r.name == m.name) {
                    routes.push(m.clone());
                }
            }
        }
        routes
    }

    /// Every model, sorted by name (the `/v1/models` order).
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Model>> {
        self.models.values()
    }
}
