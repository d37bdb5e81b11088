//! Config reload on SIGHUP, without dropping anything: the config file is read and validated
//! again and, when valid, its catalog (models, prices, limits, routes), providers and static
//! keys replace the running ones in one atomic swap. A request loads the live set once when
//! it starts and keeps it to its end, so in-flight requests and streams finish with what
//! they started with. An invalid file changes nothing; its problems are logged with their
//! lines. Settings that only a restart (or `run --upgrade`) can apply — listeners, threads,
//! Redis, the usage log, telemetry — are compared and logged as "needs restart" when they
//! changed. Provider API keys are read from the environment of the running process, so a
//! new key value in the environment needs an upgrade too. Each deployment keeps its circuit
//! across a reload unless its provider's kind, base URL or breaker setting changed
//! ([`crate::routing::health`]). The client listener's TLS certificate is re-read too
//! ([`crate::tls`]): new connections get the new one, open ones keep theirs.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::auth::KeyStore;
use crate::catalog::Catalog;
use crate::config::{Config, ConfigError};
use crate::keys::KeyBackend;
use crate::providers::Provider;

/// What a reload replaces: what a request reads from the config as it is served.
pub struct Live {
    pub catalog: Catalog,
    pub keys: KeyStore,
    /// Every configured provider (the catalog's deployments point into these), for the
    /// admin listener's circuit states.
    pub providers: Vec<Arc<Provider>>,
}

/// The live set, shared by the proxy (which reads it per request) and the [`Reloader`].
pub type LiveHandle = Arc<ArcSwap<Live>>;

/// Builds the live set of a validated config: its static keys on top of the run-time key
/// backend, if any.
pub fn live(
    catalog: Catalog,
    keys: KeyStore,
    providers: Vec<Arc<Provider>>,
    backend: Option<&Arc<dyn KeyBackend>>,
    key_cache_ttl: std::time::Duration,
) -> Live {
    let keys = match backend {
        Some(b) => keys.with_backend(b.clone(), key_cache_ttl),
        None => keys,
    };
    Live {
        catalog,
        keys,
        providers,
    }
}

/// The settings a reload cannot apply, by their config names, each in a comparable form.
pub struct Fixed(Vec<(&'static str, String)>);

impl Fixed {
    pub fn of(c: &Config) -> Self {
        Self(fixed(c))
    }
}

fn fixed(c: &Config) -> Vec<(&'static str, String)> {
    let s = &c.server;
    vec![
        ("server.listen", s.listen.clone()),
        ("server.admin_listen", format!("{:?}", s.admin_listen)),
        ("server.threads", s.threads.to_string()),
        ("server.max_body_bytes", s.max_body_bytes.to_string()),
        (
            "server.client_*_timeout_ms",
            format!("{:?}", s.client_timeouts),
        ),
        (
            "server.grace_period_seconds",
            s.grace_period_seconds.to_string(),
        ),
        (
            "server.graceful_shutdown_timeout_seconds",
            s.graceful_shutdown_timeout_seconds.to_string(),
        ),
        ("server.upgrade_sock", format!("{:?}", s.upgrade_sock)),
        // the files, not their content: SIGHUP re-reads the certificate itself
        (
            "server.tls",
            format!("{:?}", s.tls.as_ref().map(|t| t.files())),
        ),
        (
            "server.admin_token_env",
            format!(
                "{:?}",
                // compared by hash: the running process keeps no second copy of the token
                s.admin_token
                    .as_ref()
                    .map(|t| crate::auth::hash_key(t.expose()))
            ),
        ),
        ("state", format!("{:?}", c.state)),
        ("usage", format!("{:?}", c.usage)),
        ("emulator", format!("{:?}", c.emulator_listen)),
        ("telemetry", format!("{:?}", c.telemetry)),
        ("log", format!("{:?}", c.log_format)),
    ]
}

/// Reloads the config file into the live set on SIGHUP (a Pingora background service).
pub struct Reloader {
    path: PathBuf,
    live: LiveHandle,
    backend: Option<Arc<dyn KeyBackend>>,
    key_cache_ttl: std::time::Duration,
    /// The restart-only settings the process runs with.
    running: Vec<(&'static str, String)>,
    /// The client listener's certificate, re-read on SIGHUP.
    cert: Option<Arc<crate::tls::ServerCert>>,
}

impl Reloader {
    /// `running` and `key_cache_ttl` are those of the config the process started with
    /// (read from `path`).
    pub fn new(
        path: PathBuf,
        running: Fixed,
        key_cache_ttl: std::time::Duration,
        live: LiveHandle,
        backend: Option<Arc<dyn KeyBackend>>,
    ) -> Self {
        Self {
            path,
            live,
            backend,
            key_cache_ttl,
            running: running.0,
            cert: None,
        }
    }

    /// Re-reads the client listener's certificate on SIGHUP as well.
    pub fn with_server_cert(mut self, cert: Option<Arc<crate::tls::ServerCert>>) -> Self {
        self.cert = cert;
        self
    }

    /// Reads, validates and swaps in the config file. Returns the restart-only settings
    /// that differ from the running ones (not applied).
    pub fn reload(&self) -> Result<Vec<&'static str>, ConfigError> {
        let config = Config::load(&self.path)?;
        let changed = fixed(&config)
            .into_iter()
            .zip(&self.running)
            .filter(|(new, old)| new.1 != old.1)
            .map(|(new, _)| new.0)
            .collect();
        let (models, providers) = (config.catalog.all().count(), config.providers.len());
        // run-time keys looked up so far stay cached (they serve them during a Redis outage)
        let keys = config.keys.keep_lookups_of(&self.live.load().keys);
        // a model added with another encoding gets its table before its first cut stream
        crate::usage::tokenizers::warm_up(crate::usage::tokenizers::needed_by(&config.catalog));
        self.live.store(Arc::new(live(
            config.catalog,
            keys,
            config.providers,
            self.backend.as_ref(),
            self.key_cache_ttl,
        )));
        log::info!(
            "config reloaded from {}: {providers} providers, {models} models",
            self.path.display(),
        );
        Ok(changed)
    }

    fn on_hangup(&self) {
        log::info!("SIGHUP: reloading {}", self.path.display());
        match self.reload() {
            Ok(changed) => {
                for setting in changed {
                    log::warn!(
                        "config reload: {setting} changed; needs restart (or `run --upgrade`), still running with the old value"
                    );
                }
            }
            Err(e) => log::error!(
                "config reload failed, still running the previous config: {}",
                e.to_string().trim_end()
            ),
        }
        if let Some(cert) = &self.cert {
            let cert_file = cert.files().cert_file.display();
            match cert.reload() {
                Ok(()) => log::info!("TLS certificate reloaded from {cert_file}"),
                Err(e) => log::error!(
                    "TLS certificate reload failed, still serving the previous one: {e}"
                ),
            }
        }
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                log::error!("cannot watch SIGHUP, config reload is off: {e}");
                return;
            }
        };
        loop {
            tokio::select! {
                got = hangups.recv() => match got {
                    Some(()) => self.on_hangup(),
                    None => return,
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}
