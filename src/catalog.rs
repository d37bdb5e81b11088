//! The model catalog: which deployments serve a model name, under which upstream name, at
//! what price, with which limits, retries and fallbacks.
//!
//! A catalog entry is either an exact name (`gpt-4o`) or a pattern (`claude-*`): a prefix
//! followed by one `*`. A requested name resolves to its exact entry when there is one, else
//! to the pattern with the longest matching prefix. A pattern sends the requested name
//! upstream (unless a deployment names its own `upstream_model`), so clients can use the
//! provider's newest names without a config change.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::providers::anthropic::upstream::cache::PromptCache;
use crate::providers::Provider;

/// Longest model name a pattern route forwards: provider names are short, and the name ends
/// up in a URL path (Gemini) and in usage records.
const MAX_PATTERN_MATCH_LEN: usize = 128;

/// Prices in integer micro-USD per one million tokens, so that costs add up exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Price {
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
    /// Prompt tokens written to Anthropic's 5-minute cache: Anthropic bills them at 1.25×
    /// input (the config's default), so pricing them as input under-bills every cached
    /// prompt.
    pub cache_write_5m: u64,
    /// Prompt tokens written to Anthropic's 1-hour cache, billed at 2× input (the default).
    pub cache_write_1h: u64,
}

/// Requests and tokens per minute; `None` = unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
}

/// One place a model is served: a provider, the name it knows the model by, and its share
/// of the traffic.
#[derive(Debug)]
pub struct Deployment {
    pub provider: Arc<Provider>,
    /// The provider's name for the model; `None` = the catalog name (or, on a pattern route,
    /// the name the client asked for).
    pub upstream_model: Option<String>,
    /// Relative share of the traffic among healthy deployments (≥ 1).
    pub weight: u32,
    /// This deployment's metric series, resolved on its first request.
    pub metrics: crate::metrics::RouteSeries,
    /// Its circuit and requests in flight (runtime state, kept across reloads).
    pub health: Arc<crate::routing::Health>,
}

/// How a model's failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Further attempts after the first, across this model's deployments.
    pub retries: u32,
    /// All attempts of one client request (this model and its fallbacks) end by this long
    /// after the request arrived. It bounds the wait for an answer to start, not a stream
    /// that has started (that one is bounded by the provider's `idle_timeout_ms`).
    pub deadline: Duration,
    /// Whether a non-streaming request whose provider timed out before answering may be sent
    /// again. Off by default: the provider may still be generating (and billing) the first.
    pub retry_non_stream_timeouts: bool,
    /// Whether a whole answer the gateway could not read or translate may be asked for
    /// again elsewhere (the provider billed it).
    pub retry_unreadable_answers: bool,
}

/// One catalog entry, shared by every request for it.
#[derive(Debug)]
pub struct Model {
    /// The config name: an exact model name (`gpt-4o`) or a pattern (`claude-*`). This is
    /// the metrics label and the limits' bucket, so both stay bounded under any traffic.
    pub name: String,
    /// At least one.
    pub deployments: Vec<Deployment>,
    pub price: Price,
    pub limits: Limits,
    pub retry: RetryPolicy,
    /// Exact catalog names tried in order when this model's deployments all failed.
    pub fallbacks: Vec<String>,
    /// The most output tokens the model writes (`max_output_tokens`): what a request without
    /// `max_tokens` is assumed to cost when it is held against a budget.
    pub max_output_tokens: Option<u64>,
    /// Whether the gateway marks prompt-cache breakpoints when an OpenAI chat or Responses
    /// client reaches this model on Anthropic (`prompt_cache`, default `auto`).
    pub prompt_cache: PromptCache,
}

impl Model {
    /// A pattern entry (`claude-*`), as opposed to an exact name.
    pub fn is_pattern(&self) -> bool {
        self.name.ends_with('*')
    }

    /// The name a deployment is known by in metrics, logs and `/ready`: the name its provider
    /// is asked for, or this entry's name (a pattern route's pattern). Bounded: both come
    /// from the config.
    pub fn deployment_name<'a>(&'a self, deployment: &'a Deployment) -> &'a str {
        deployment.upstream_model.as_deref().unwrap_or(&self.name)
    }

    /// The model name sent to `deployment`'s provider for a client that asked for `requested`.
    pub fn upstream_name<'a>(&'a self, deployment: &'a Deployment, requested: &'a str) -> &'a str {
        match &deployment.upstream_model {
            Some(name) => name,
            None if self.is_pattern() => requested,
            None => &self.name,
        }
    }
}

/// Whether `pattern` (`prefix*`) matches `name`.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Whether a name the client made up may be forwarded by a pattern route: provider model
/// names are letters, digits and `-._:@` (fine-tuned `ft:…`, Vertex `…@date`); anything else
/// (`/`, `?`, spaces, control bytes) could change the upstream URL or a log line.
fn forwardable(name: &str) -> bool {
    name.len() <= MAX_PATTERN_MATCH_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:@".contains(&b))
        && !name.contains("..")
}

/// All models, looked up by the `model` of a request.
#[derive(Debug, Default)]
pub struct Catalog {
    exact: BTreeMap<String, Arc<Model>>,
    /// Longest prefix first, so the first match is the most specific.
    patterns: Vec<Arc<Model>>,
}

impl Catalog {
    /// Builds the catalog; names are validated by the config loader.
    pub fn new(models: impl IntoIterator<Item = Model>) -> Self {
        let mut catalog = Self::default();
        for model in models {
            let model = Arc::new(model);
            if model.is_pattern() {
                catalog.patterns.push(model);
            } else {
                catalog.exact.insert(model.name.clone(), model);
            }
        }
        catalog
            .patterns
            .sort_by(|a, b| b.name.len().cmp(&a.name.len()).then(a.name.cmp(&b.name)));
        catalog
    }

    /// The entry serving `requested`: its exact entry, else the longest matching pattern
    /// (only for names a pattern may forward).
    pub fn resolve(&self, requested: &str) -> Option<&Arc<Model>> {
        if let Some(model) = self.exact.get(requested) {
            return Some(model);
        }
        if !forwardable(requested) {
            return None;
        }
        self.patterns
            .iter()
            .find(|m| pattern_matches(&m.name, requested))
    }

    /// An exact entry (fallbacks and `/v1/models/{id}` name exact entries only).
    pub fn get(&self, name: &str) -> Option<&Arc<Model>> {
        self.exact.get(name)
    }

    /// The model itself, then its fallbacks that exist, without repeats.
    pub fn routes(&self, model: &Arc<Model>) -> Vec<Arc<Model>> {
        let mut routes = vec![model.clone()];
        for name in &model.fallbacks {
            if let Some(m) = self.exact.get(name) {
                if !routes.iter().any(|r| r.name == m.name) {
                    routes.push(m.clone());
                }
            }
        }
        routes
    }

    /// Every exact entry, sorted by name (the `/v1/models` order). Patterns are not listed:
    /// a pattern is not a model, and the names it may serve are the provider's to choose.
    pub fn listed(&self) -> impl Iterator<Item = &Arc<Model>> {
        self.exact.values()
    }

    /// Every entry, exact names first.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Model>> {
        self.exact.values().chain(self.patterns.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ProviderKind;

    fn provider() -> Arc<Provider> {
        Arc::new(Provider::for_tests(
            "p",
            ProviderKind::OpenAi,
            Default::default(),
        ))
    }

    fn model(name: &str, upstream: Option<&str>) -> Model {
        Model {
            name: name.into(),
            deployments: vec![Deployment {
                provider: provider(),
                upstream_model: upstream.map(Into::into),
                weight: 1,
                metrics: Default::default(),
                health: Default::default(),
            }],
            price: Price::default(),
            limits: Limits::default(),
            retry: RetryPolicy {
                retries: 0,
                deadline: Duration::from_secs(1),
                retry_non_stream_timeouts: false,
                retry_unreadable_answers: false,
            },
            fallbacks: Vec::new(),
            max_output_tokens: None,
            prompt_cache: Default::default(),
        }
    }

    #[test]
    fn exact_names_win_then_the_longest_pattern() {
        let catalog = Catalog::new([
            model("claude-*", None),
            model("claude-opus-*", None),
            model("claude-opus-4-8", Some("claude-opus-4-8-20261001")),
            model("o*", None),
        ]);
        let name = |n: &str| catalog.resolve(n).map(|m| m.name.as_str());
        assert_eq!(name("claude-opus-4-8"), Some("claude-opus-4-8"));
        assert_eq!(name("claude-opus-5"), Some("claude-opus-*"));
        assert_eq!(name("claude-haiku-4-5"), Some("claude-*"));
        assert_eq!(name("o3-mini"), Some("o*"));
        assert_eq!(name("gpt-4o"), None);
        assert_eq!(name("claude"), None, "the prefix itself needs the dash");
    }

    #[test]
    fn pattern_routes_forward_the_requested_name_unless_renamed() {
        let catalog = Catalog::new([model("claude-*", None), model("gpt-*", Some("gpt-4o"))]);
        let m = catalog.resolve("claude-sonnet-4-5").unwrap();
        assert_eq!(
            m.upstream_name(&m.deployments[0], "claude-sonnet-4-5"),
            "claude-sonnet-4-5"
        );
        let m = catalog.resolve("gpt-9").unwrap();
        assert_eq!(m.upstream_name(&m.deployments[0], "gpt-9"), "gpt-4o");
        let exact = Catalog::new([model("gpt-4o", None)]);
        let m = exact.resolve("gpt-4o").unwrap();
        assert_eq!(m.upstream_name(&m.deployments[0], "gpt-4o"), "gpt-4o");
    }

    #[test]
    fn names_that_could_change_the_upstream_url_match_no_pattern() {
        let catalog = Catalog::new([model("gemini-*", None)]);
        for bad in [
            "gemini-x/../../v1/files",
            "gemini-x?key=1",
            "gemini-a b",
            "gemini-\r\nx",
            "gemini-..",
            &format!("gemini-{}", "x".repeat(200)),
        ] {
            assert!(catalog.resolve(bad).is_none(), "{bad:?}");
        }
        assert!(catalog.resolve("gemini-2.5-pro-preview-06-05").is_some());
    }

    #[test]
    fn listing_names_exact_entries_only() {
        let catalog = Catalog::new([model("claude-*", None), model("gpt-4o", None)]);
        let names: Vec<_> = catalog.listed().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["gpt-4o"]);
        assert_eq!(catalog.all().count(), 2);
    }
}
