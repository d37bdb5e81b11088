//! Configuration: the TOML file ([`file`]) validated into the runtime [`Config`].
//!
//! Validation collects every problem, each with the file, line and field path, so an
//! operator fixes a config in one pass. Secrets come from environment variables named in the
//! file, never from the file itself.

mod azure;
mod bedrock;
pub mod file;
mod observability;
mod state;
mod usage;
pub(crate) mod vertex;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use crate::auth::{key_id, KeyInfo, KeyStore};
use crate::catalog::{Catalog, Deployment, Limits, Model, Price, RetryPolicy};
use crate::providers::vertex::Vertex;
use crate::providers::{Provider, ProviderKind, Timeouts, Upstream};
use crate::routing::plan::MAX_DEPLOYMENTS;
use crate::routing::BreakerConfig;
use crate::secret::Secret;
pub use observability::{LogFormat, TelemetryConfig};

use file::{FileConfig, FileLimits, FileModel, FilePrice, FileProvider, FileProviderKind};

const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;
const DEFAULT_FIRST_BYTE_TIMEOUT_MS: u64 = 60_000;
const DEFAULT_IDLE_TIMEOUT_MS: u64 = 30_000;
/// All attempts of one request must have an answer started within this long: two full
/// first-byte waits, so one slow attempt still leaves room for another.
const DEFAULT_DEADLINE_MS: u64 = 120_000;
/// More retries than this only queue a client behind a provider that is down.
const MAX_RETRIES: u32 = 10;
/// A whole request body (10 MiB at most) arrives well within a minute on any live link.
const DEFAULT_CLIENT_BODY_TIMEOUT_MS: u64 = 60_000;
/// A client that has taken no byte for 30 s has stopped reading (a stream's chunks are small).
const DEFAULT_CLIENT_WRITE_TIMEOUT_MS: u64 = 30_000;

/// The validated, ready-to-serve configuration.
#[derive(Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub state: StateConfig,
    pub usage: UsageConfig,
    /// Listen address of the in-process provider emulator, when enabled.
    pub emulator_listen: Option<String>,
    /// OpenTelemetry traces; `None` when no `otlp_endpoint` is set (no exporter runs).
    pub telemetry: Option<TelemetryConfig>,
    pub log_format: LogFormat,
    pub providers: Vec<Arc<Provider>>,
    pub catalog: Catalog,
    pub keys: KeyStore,
}

/// Listener and process settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    pub admin_listen: Option<String>,
    pub threads: usize,
    pub max_body_bytes: usize,
    /// Deadlines on the client side of a request.
    pub client_timeouts: ClientTimeouts,
    /// How long in-flight requests and streams may run on after SIGTERM.
    pub grace_period_seconds: u64,
    pub graceful_shutdown_timeout_seconds: u64,
    pub admin_token: Option<Secret>,
    /// Where `run --upgrade` takes the listening sockets over from the running process.
    pub upgrade_sock: Option<String>,
    /// HTTPS on `listen` with this certificate (re-read on SIGHUP); `None`: plain HTTP.
    pub tls: Option<Arc<crate::tls::ServerCert>>,
}

/// How long the gateway waits on a client. The request header is read by Pingora before the
/// gateway sees the request, with Pingora's own 60 s limit on each read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTimeouts {
    /// The whole request body must arrive within this long after its header.
    pub body: Duration,
    /// One write to the client (a chunk of an answer) must be taken within this long, or the
    /// client is taken to have stopped reading: the request ends and its provider connection
    /// is released. A slow but live client keeps taking bytes and is never cut.
    pub write: Duration,
}

pub use state::StateConfig;

pub use usage::UsageConfig;

/// Every problem found in a config file, one per line.
#[derive(Debug)]
pub struct ConfigError(pub Vec<String>);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for problem in &self.0 {
            writeln!(f, "  {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates a config file; secrets from the process environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(vec![format!("{}: cannot read: {e}", path.display())]))?;
        Self::parse(&text, &path.display().to_string(), &|name| {
            std::env::var(name).ok()
        })
    }

    /// Validates config text. `source` names it in errors; `env` looks up secrets (tests pass
    /// their own instead of touching the process environment).
    pub fn parse(
        text: &str,
        source: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let raw: FileConfig = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| format!(":{}", line_of(text, s.start)))
                .unwrap_or_default();
            ConfigError(vec![format!("{source}{at}: {}", e.message().trim_end())])
        })?;
        let mut v = Validator {
            text,
            source,
            problems: Vec::new(),
        };
        let config = v.build(raw, env);
        if v.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError(v.problems))
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

struct Validator<'a> {
    text: &'a str,
    source: &'a str,
    problems: Vec<String>,
}

impl Validator<'_> {
    fn problem<T>(&mut self, at: &Spanned<T>, field: &str, message: impl std::fmt::Display) {
        self.problem_at(at.span(), field, message);
    }

    /// A problem at a span of the text (`problem` for a value that is not a `Spanned`).
    fn problem_at(
        &mut self,
        span: std::ops::Range<usize>,
        field: &str,
        message: impl std::fmt::Display,
    ) {
        let line = line_of(self.text, span.start);
        self.problems
            .push(format!("{}:{line}: {field}: {message}", self.source));
    }

    /// Provider `name`'s base URL: `base_url` as written; without one, on kind `bedrock` its
    /// region's endpoint, on kind `vertex` its region's (`vertex`: its settings, `None` when
    /// they had problems). `None` when there is none: a problem, reported here unless the
    /// region's own problem was.
    fn base_url(
        &mut self,
        name: &str,
        table: &Spanned<FileProvider>,
        vertex: Option<&Vertex>,
    ) -> Option<String> {
        let p = table.get_ref();
        if let Some(url) = &p.base_url {
            return Some(url.get_ref().clone());
        }
        match p.kind.get_ref() {
            FileProviderKind::Bedrock => p
                .region
                .as_ref()
                .map(|r| r.get_ref())
                .filter(|r| crate::providers::bedrock::valid_region(r))
                .map(|r| crate::providers::bedrock::default_base_url(r)),
            FileProviderKind::Vertex => {
                vertex.map(|v| crate::providers::vertex::base_url(&v.region))
            }
            _ => {
                self.problem(
                    table,
                    &format!("providers.{name}.base_url"),
                    "missing: the provider's URL (like \"https://api.openai.com/v1\")",
                );
                None
            }
        }
    }

    fn build(&mut self, raw: FileConfig, env: &dyn Fn(&str) -> Option<String>) -> Config {
        let server = self.server(&raw, env);
        let emulator_listen = raw.emulator.as_ref().map(|e| {
            self.socket_addr(&e.listen, "emulator.listen");
            if !cfg!(feature = "emulator") {
                // a production build carries no test double: say so rather than start without
                // the providers this config points at
                self.problem(
                    &e.listen,
                    "emulator",
                    "this gateway was built without the provider emulator; \
                     build it with `--features emulator` or remove [emulator]",
                );
            }
            e.listen.get_ref().clone()
        });

        let used: BTreeSet<&str> = raw
            .models
            .values()
            .flat_map(|m| {
                let m = m.get_ref();
                let single = m.provider.iter().map(|p| p.get_ref().as_str());
                let many = m
                    .deployments
                    .iter()
                    .flat_map(|d| d.get_ref().iter().map(|d| d.provider.get_ref().as_str()));
                single.chain(many).collect::<Vec<_>>()
            })
            .collect();
        let mut providers = Vec::new();
        for (name, table) in &raw.providers {
            let p = table.get_ref();
            let field = |f: &str| format!("providers.{name}.{f}");
            // first: they report a Bedrock or Vertex provider's region, which its default URL
            // needs
            let bedrock = self.bedrock(name, table, used.contains(name.as_str()), env);
            let vertex = self.vertex(name, p, env, used.contains(name.as_str()));
            let Some(base_url) = self.base_url(name, table, vertex.as_ref()) else {
                continue;
            };
            // a default base URL's problems are its table's
            let url_span = p.base_url.as_ref().map_or(table.span(), Spanned::span);
            let upstream = match Upstream::parse(&base_url) {
                Ok(u) => u,
                Err(e) => {
                    self.problem_at(url_span, &field("base_url"), e);
                    continue;
                }
            };
            let roots = p.ca_file.as_ref().and_then(|file| {
                crate::providers::roots::with_ca_file(Path::new(file.get_ref()))
                    .map_err(|e| self.problem(file, &field("ca_file"), e))
                    .ok()
            });
            // HTTP/2 wherever TLS can negotiate it, unless the config says otherwise: the load
            // bench found it as fast as HTTP/1.1 per request and far lighter per open stream
            let http2 = p.http2.unwrap_or(upstream.tls);
            if http2 && !upstream.tls {
                self.problem_at(
                    url_span.clone(),
                    &field("http2"),
                    "HTTP/2 is negotiated by TLS: it needs an https:// base_url",
                );
            }
            let upstream = upstream.with_wire(http2, roots);
            let api_key = match &p.api_key_env {
                None => None,
                Some(var) => match env(var.get_ref()).filter(|v| !v.is_empty()) {
                    Some(value) => Some(Secret::new(value)),
                    None if used.contains(name.as_str()) => {
                        self.problem(
                            var,
                            &field("api_key_env"),
                            format!(
                                "environment variable {} is not set (provider `{name}` serves models)",
                                var.get_ref()
                            ),
                        );
                        None
                    }
                    None => None,
                },
            };
            let breaker = match &p.breaker {
                None => BreakerConfig::default(),
                Some(b) if b.get_ref().failures == 0 || b.get_ref().open_ms == 0 => {
                    self.problem(
                        b,
                        &field("breaker"),
                        "`failures` and `open_ms` must be at least 1",
                    );
                    BreakerConfig::default()
                }
                Some(b) => BreakerConfig {
                    failures: b.get_ref().failures,
                    open: Duration::from_millis(b.get_ref().open_ms),
                },
            };
            let ms = |v: Option<u64>, default: u64| Duration::from_millis(v.unwrap_or(default));
            let native_responses = p
                .native_responses
                .unwrap_or(*p.kind.get_ref() == FileProviderKind::Openai);
            let api_version = self.api_version(name, p);
            let provider = Provider::new(
                name.clone(),
                match p.kind.get_ref() {
                    FileProviderKind::Openai => ProviderKind::OpenAi,
                    FileProviderKind::OpenaiCompatible => ProviderKind::OpenAiCompatible,
                    FileProviderKind::Anthropic => ProviderKind::Anthropic,
                    FileProviderKind::Gemini => ProviderKind::Gemini,
                    FileProviderKind::Azure => ProviderKind::Azure,
                    FileProviderKind::Bedrock => ProviderKind::Bedrock,
                    FileProviderKind::Vertex => ProviderKind::Vertex,
                },
                upstream,
                api_key,
                Timeouts {
                    connect: ms(p.connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS),
                    first_byte: ms(p.first_byte_timeout_ms, DEFAULT_FIRST_BYTE_TIMEOUT_MS),
                    idle: ms(p.idle_timeout_ms, DEFAULT_IDLE_TIMEOUT_MS),
                },
                breaker,
                native_responses,
            );
            let provider = match api_version {
                Some(version) => provider.with_api_version(version),
                None => provider,
            };
            let provider = match bedrock {
                Some(bedrock) => provider.with_bedrock(bedrock),
                None => provider,
            };
            providers.push(Arc::new(match vertex {
                Some(vertex) => provider.with_vertex(vertex),
                None => provider,
            }));
        }

        let deadline = Duration::from_millis(raw.server.deadline_ms.unwrap_or(DEFAULT_DEADLINE_MS));
        let mut models = Vec::new();
        for (name, m) in &raw.models {
            if let Some(model) = self.model(name, m, &raw, &providers, deadline) {
                models.push(model);
            }
        }
        let catalog = Catalog::new(models);

        let mut keys = Vec::new();
        let mut names = BTreeSet::new();
        for (i, k) in raw.keys.iter().enumerate() {
            let field = |f: &str| format!("keys[{i}].{f}");
            let hash = k.sha256.get_ref().to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                self.problem(
                    &k.sha256,
                    &field("sha256"),
                    "must be the 64 hex digits printed by `cheapai-gateway hash-key KEY`",
                );
                continue;
            }
            if !names.insert(k.name.get_ref().clone()) {
                self.problem(&k.name, &field("name"), "duplicate key name");
            }
            let budget_micro_usd = k
                .budget_usd
                .as_ref()
                .and_then(|b| self.usd_to_micro(b, &field("budget_usd")));
            keys.push((
                hash.clone(),
                KeyInfo {
                    id: key_id(&hash),
                    name: k.name.get_ref().clone(),
                    models: k.models.clone(),
                    limits: limits(k.limits),
                    budget_micro_usd,
                    expires_at: None,
                    max_inflight: k.max_inflight,
                },
            ));
        }

        let state = self.state(&raw);
        let usage = self.usage(&raw, env);
        Config {
            server,
            state,
            usage,
            emulator_listen,
            telemetry: self.telemetry(&raw),
            log_format: observability::log_format(&raw),
            providers,
            catalog,
            keys: KeyStore::new(keys),
        }
    }

    /// One `[models."NAME"]` table: its deployments (the short `provider` form or the
    /// `deployments` list, never both), price, limits, retries and fallbacks.
    fn model(
        &mut self,
        name: &str,
        spanned: &Spanned<FileModel>,
        raw: &FileConfig,
        providers: &[Arc<Provider>],
        default_deadline: Duration,
    ) -> Option<Model> {
        let m = spanned.get_ref();
        let field = |f: &str| format!("models.\"{name}\".{f}");
        if name.contains('*') && (!name.ends_with('*') || name.matches('*').count() > 1) {
            self.problem(
                spanned,
                &field("name"),
                "a pattern is a prefix followed by one `*` at the end (`claude-*`)",
            );
            return None;
        }
        let wanted: Vec<(&Spanned<String>, Option<String>, u32)> =
            match (&m.provider, &m.deployments) {
                (Some(provider), None) => vec![(
                    provider,
                    m.upstream_model.as_ref().map(|u| u.get_ref().clone()),
                    1,
                )],
                (None, Some(list)) => {
                    if let Some(upstream) = &m.upstream_model {
                        self.problem(
                            upstream,
                            &field("upstream_model"),
                            "with `deployments`, set `upstream_model` on each deployment",
                        );
                    }
                    if list.get_ref().is_empty() || list.get_ref().len() > MAX_DEPLOYMENTS {
                        self.problem(
                            list,
                            &field("deployments"),
                            format!("list 1 to {MAX_DEPLOYMENTS} deployments"),
                        );
                        return None;
                    }
                    let mut wanted = Vec::new();
                    for (i, d) in list.get_ref().iter().enumerate() {
                        let weight = d.weight.as_ref().map_or(1, |w| *w.get_ref());
                        if let Some(w) = d.weight.as_ref().filter(|w| *w.get_ref() == 0) {
                            self.problem(
                                w,
                                &field(&format!("deployments[{i}].weight")),
                                "must be at least 1",
                            );
                        }
                        wanted.push((&d.provider, d.upstream_model.clone(), weight));
                    }
                    wanted
                }
                (Some(provider), Some(_)) => {
                    self.problem(
                        provider,
                        &field("provider"),
                        "set either `provider` (one deployment) or `deployments`, not both",
                    );
                    return None;
                }
                (None, None) => {
                    self.problem(
                        spanned,
                        &field("provider"),
                        "missing: set `provider` or `deployments`",
                    );
                    return None;
                }
            };
        let mut deployments = Vec::new();
        for (provider_name, upstream_model, weight) in wanted {
            match providers
                .iter()
                .find(|p| p.name == *provider_name.get_ref())
            {
                Some(provider) => deployments.push(Deployment {
                    health: crate::routing::health::shared(
                        crate::routing::DeploymentKey {
                            provider: provider.name.clone(),
                            provider_config: provider.state_fingerprint(),
                            model: upstream_model.clone().unwrap_or_else(|| name.to_string()),
                        },
                        provider.breaker,
                    ),
                    provider: provider.clone(),
                    upstream_model,
                    weight: weight.max(1),
                    metrics: Default::default(),
                }),
                // a provider whose own table failed validation was reported there
                None if raw.providers.contains_key(provider_name.get_ref()) => {}
                None => self.problem(
                    provider_name,
                    &field("provider"),
                    format!("unknown provider `{}`", provider_name.get_ref()),
                ),
            }
        }
        for fallback in &m.fallbacks {
            let target = fallback.get_ref();
            if target.contains('*') || !raw.models.contains_key(target) {
                self.problem(
                    fallback,
                    &field("fallbacks"),
                    format!("`{target}` is not an exact model name of this catalog"),
                );
            }
        }
        let retries = match &m.retries {
            Some(r) if *r.get_ref() > MAX_RETRIES => {
                self.problem(r, &field("retries"), format!("at most {MAX_RETRIES}"));
                MAX_RETRIES
            }
            Some(r) => *r.get_ref(),
            // every deployment once; a single deployment is not hammered unless asked
            None => deployments.len().saturating_sub(1) as u32,
        };
        if deployments.is_empty() {
            return None;
        }
        Some(Model {
            name: name.to_string(),
            deployments,
            price: m
                .price
                .as_ref()
                .map(|p| self.price(p, &field("price")))
                .unwrap_or_default(),
            limits: limits(m.limits),
            retry: RetryPolicy {
                retries,
                deadline: m
                    .deadline_ms
                    .map_or(default_deadline, Duration::from_millis),
                retry_non_stream_timeouts: m.retry_non_stream_timeouts.unwrap_or(false),
                retry_unreadable_answers: m.retry_unreadable_answers.unwrap_or(false),
            },
            fallbacks: m.fallbacks.iter().map(|f| f.get_ref().clone()).collect(),
            max_output_tokens: match &m.max_output_tokens {
                Some(t) if *t.get_ref() == 0 => {
                    self.problem(t, &field("max_output_tokens"), "must be at least 1");
                    None
                }
                other => other.as_ref().map(|t| *t.get_ref()),
            },
            prompt_cache: m.prompt_cache.unwrap_or_default(),
        })
    }

    fn server(&mut self, raw: &FileConfig, env: &dyn Fn(&str) -> Option<String>) -> ServerConfig {
        let s = &raw.server;
        self.socket_addr(&s.listen, "server.listen");
        if let Some(a) = &s.admin_listen {
            self.socket_addr(a, "server.admin_listen");
        }
        let admin_token = s.admin_token_env.as_ref().and_then(|var| {
            env(var.get_ref())
                .filter(|v| !v.is_empty())
                .map(Secret::new)
        });
        let tls = s.tls.as_ref().and_then(|t| {
            let files = crate::tls::TlsFiles {
                cert_file: PathBuf::from(&t.get_ref().cert_file),
                key_file: PathBuf::from(&t.get_ref().key_file),
            };
            match crate::tls::ServerCert::load(&files) {
                Ok(cert) => Some(Arc::new(cert)),
                Err(why) => {
                    self.problem(t, "server.tls", why);
                    None
                }
            }
        });
        ServerConfig {
            tls,
            listen: s.listen.get_ref().clone(),
            admin_listen: s.admin_listen.as_ref().map(|a| a.get_ref().clone()),
            threads: s.threads.unwrap_or(2).max(1),
            max_body_bytes: s.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
            client_timeouts: ClientTimeouts {
                body: Duration::from_millis(
                    s.client_body_timeout_ms
                        .unwrap_or(DEFAULT_CLIENT_BODY_TIMEOUT_MS),
                ),
                write: Duration::from_millis(
                    s.client_write_timeout_ms
                        .unwrap_or(DEFAULT_CLIENT_WRITE_TIMEOUT_MS),
                ),
            },
            grace_period_seconds: s.grace_period_seconds.unwrap_or(30),
            graceful_shutdown_timeout_seconds: s.graceful_shutdown_timeout_seconds.unwrap_or(5),
            admin_token,
            upgrade_sock: s.upgrade_sock.clone(),
        }
    }

    fn socket_addr(&mut self, addr: &Spanned<String>, field: &str) {
        if addr.get_ref().parse::<SocketAddr>().is_err() {
            self.problem(
                addr,
                field,
                format!("`{}` is not an IP:port", addr.get_ref()),
            );
        }
    }

    /// A `price = {…}` table. Unset rates default to what providers bill relative to input:
    /// cached input at the input rate (no discount assumed), Anthropic's cache writes at
    /// 1.25 × input (5 minutes) and 2 × input (1 hour), its list multipliers.
    fn price(&mut self, p: &FilePrice, field: &str) -> Price {
        let mut get = |v: &Spanned<f64>, f: &str| {
            self.usd_to_micro(v, &format!("{field}.{f}"))
                .unwrap_or_default()
        };
        let (input, output) = (get(&p.input, "input"), get(&p.output, "output"));
        let mut or = |v: &Option<Spanned<f64>>, f: &str, default: u64| {
            v.as_ref().map_or(default, |v| get(v, f))
        };
        Price {
            input,
            output,
            cached_input: or(&p.cached_input, "cached_input", input),
            cache_write_5m: or(
                &p.cache_write_5m,
                "cache_write_5m",
                input.saturating_mul(5).saturating_add(2) / 4,
            ),
            cache_write_1h: or(&p.cache_write_1h, "cache_write_1h", input.saturating_mul(2)),
        }
    }

    /// USD (as written in the file) to integer micro-USD, refusing negative or absurd values.
    fn usd_to_micro(&mut self, usd: &Spanned<f64>, field: &str) -> Option<u64> {
        let v = *usd.get_ref();
        if !(v.is_finite() && (0.0..=1e9).contains(&v)) {
            self.problem(usd, field, "must be a number between 0 and 1e9 (USD)");
            return None;
        }
        Some((v * 1e6).round() as u64)
    }
}

fn limits(l: Option<FileLimits>) -> Limits {
    let l = l.unwrap_or_default();
    Limits {
        rpm: l.rpm,
        tpm: l.tpm,
    }
}

#[cfg(test)]
mod tests;
