//! cheapai-gateway: an LLM API gateway on Pingora.
//!
//! Clients speak OpenAI's API (and, later, Anthropic's); the gateway routes each request by
//! its `model` to the provider that serves it, in that provider's wire format. The binary,
//! the integration tests and the benches all start the same server through [`build_server`].

pub mod admin;
pub mod allocator;
pub mod auth;
pub mod aws_credentials;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod dialect;
pub mod drain;
pub mod endpoint;
pub mod error;
pub mod expiring;
pub mod ids;
pub mod keys;
pub mod ledger;
pub mod limits;
pub mod metrics;
pub mod ownership;
pub mod providers;
pub mod proxy;
pub mod reload;
pub mod request;
pub mod routing;
pub mod secret;
pub mod spool;
pub mod sse;
pub mod state;
pub mod telemetry;
pub mod text;
pub mod thinking;
pub mod tls;
pub mod usage;

use std::path::PathBuf;
use std::sync::Arc;

use pingora::listeners::ListenerConfig;
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::listening::Service;

use config::Config;

/// How the binary starts a server, beyond what the config says.
#[derive(Debug, Clone, Default)]
pub struct Start {
    /// Take the listening sockets over from the running process through
    /// `[server] upgrade_sock` (`run --upgrade`; that process then gets SIGQUIT).
    pub upgrade: bool,
    /// The config file, re-read on SIGHUP. `None`: no reload (tests run several servers in
    /// one process, and a signal is process-wide).
    pub config_path: Option<PathBuf>,
    /// Exit the process as soon as a graceful stop has nothing left to do ([`drain`]); only
    /// for a process that runs this one server (the binary).
    pub exit_when_drained: bool,
}

/// Read buffer of each client connection (see `build_server`).
const CLIENT_READ_BUFFER: usize = 4 * 1024;

/// Builds the whole server from a validated config: the proxy listener, the admin listener
/// and, when configured, the in-process provider emulator. Call `run_forever()` on the
/// result (the binary) or `run(RunArgs)` with your own shutdown signal (tests).
pub fn build_server(config: Config) -> pingora::Result<Server> {
    build_server_with(config, Start::default())
}

/// [`build_server`], taking the sockets over from a running process when `start.upgrade`
/// and reloading the config file on SIGHUP when `start.config_path` is set.
pub fn build_server_with(config: Config, start: Start) -> pingora::Result<Server> {
    let mut server_conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(config.server.graceful_shutdown_timeout_seconds),
        ..ServerConf::default()
    };
    match &config.server.upgrade_sock {
        Some(sock) => server_conf.upgrade_sock = sock.clone(),
        None if start.upgrade => {
            return Err(pingora::Error::explain(
                pingora::ErrorType::InternalError,
                "--upgrade needs `[server] upgrade_sock` in the config (the same path as the running process's)",
            ))
        }
        None => {}
    }
    let opt = Opt {
        upgrade: start.upgrade,
        ..Opt::default()
    };
    // with `upgrade`, this waits (a few seconds at most) for the running process to hand
    // its listening sockets over, which it does on SIGQUIT
    let mut server = Server::new_with_opt_and_conf(Some(opt), server_conf);
    server.bootstrap();
    metrics::init();
    std::sync::LazyLock::force(&spool::metrics::SPOOL);

    let redis =
        config.state.redis().map(|r| r.map(Arc::new)).map_err(|e| {
            pingora::Error::explain(pingora::ErrorType::InternalError, e.to_string())
        })?;
    let hold = config.state.reservation_ttl;
    let shared_limits = redis.clone().map(|r| {
        Arc::new(limits::redis::RedisLimits::new(r).with_hold(hold)) as Arc<dyn limits::LimitStore>
    });
    let limiter =
        limits::Limiter::new(shared_limits, config.state.on_redis_error).with_reservation_ttl(hold);
    let (spool, shipper, spool_slot) = usage::spools::open_own(
        &config.usage.spool_dir,
        config.usage.spool_max_bytes,
        start.upgrade,
    )
    .map_err(|e| pingora::Error::explain(pingora::ErrorType::FileOpenError, e.to_string()))?;
    let ledger = Arc::new(usage::ledger::LedgerHandle::new(
        config.usage.store.clone(),
        config.usage.retention_days,
    ));
    let delivery = Arc::new(usage::ledger::LedgerDelivery::new(
        ledger.clone(),
        &spool_slot,
    ));
    server.add_service(pingora::services::background::background_service(
        "usage shipper",
        usage::ledger::ShipperService::new(shipper, delivery),
    ));
    server.add_service(pingora::services::background::background_service(
        "usage spool adoption",
        usage::spools::Adopter {
            root: config.usage.spool_dir.clone(),
            own: spool_slot,
            max_bytes: config.usage.spool_max_bytes,
            ledger: ledger.clone(),
        },
    ));
    server.add_service(pingora::services::background::background_service(
        "usage retention",
        usage::ledger::RetentionService {
            ledger: ledger.clone(),
        },
    ));
    server.add_service(pingora::services::background::background_service(
        "tokenizer warm-up",
        usage::tokenizers::WarmUp(usage::tokenizers::needed_by(&config.catalog)),
    ));

    let key_backend: Arc<dyn keys::KeyBackend> = match &redis {
        Some(r) => Arc::new(keys::RedisKeys::new(r.clone())),
        None => Arc::new(keys::MemoryKeys::default()),
    };
    let telemetry = telemetry::install(config.telemetry.as_ref(), config.log_format)?;
    if start.exit_when_drained {
        server.add_service(pingora::services::background::background_service(
            "exit when drained",
            drain::ExitWhenDrained {
                telemetry: telemetry.clone(),
                spool: Some(spool.clone()),
            },
        ));
    }
    let running = reload::Fixed::of(&config);
    let live: reload::LiveHandle = Arc::new(arc_swap::ArcSwap::from_pointee(reload::live(
        config.catalog,
        config.keys,
        config.providers,
        Some(&key_backend),
        config.state.key_cache_ttl,
    )));
    if let Some(path) = start.config_path {
        let reloader = reload::Reloader::new(
            path,
            running,
            config.state.key_cache_ttl,
            live.clone(),
            Some(key_backend.clone()),
        )
        .with_server_cert(config.server.tls.clone());
        server.add_service(pingora::services::background::background_service(
            "config reload",
            reloader,
        ));
    }

    let gateway = proxy::Gateway::new(
        live.clone(),
        config.server.max_body_bytes,
        config.server.client_timeouts,
        spool.clone(),
        ledger.clone(),
        limiter,
    )
    .with_observability(telemetry, config.log_format)
    .with_response_owners(Arc::new(ownership::ResponseOwners::new(redis.clone())))
    .with_thinking_store(Arc::new(thinking::ThinkingStore::new(redis.clone())))
    .with_stored_responses(config.usage.responses_retention);
    let mut gateway_service = Service::new(
        "cheapai-gateway".to_string(),
        proxy::GatewayApp::new(gateway),
    );
    // Client connections get a 4 KiB read buffer instead of Pingora's 64 KiB: it lives as long
    // as the connection, so with thousands of long streams open it was a large part of their
    // memory (16 → 4 KiB: 3–5 KB less per open stream, docs/benchmarks.md), and a request
    // header fits in it (Pingora reads headers into its own growing buffer, and reads larger
    // than the buffer, bodies above all, go past it, straight into the reader's buffer).
    let listener = ListenerConfig::tcp(config.server.listen.as_str())
        .l4_buffer(L4BufferSettings::default().read(CLIENT_READ_BUFFER));
    let listener = match &config.server.tls {
        Some(cert) => listener.tls(
            cert.settings()
                .map_err(|e| pingora::Error::explain(pingora::ErrorType::InternalError, e))?,
        ),
        None => listener,
    };
    gateway_service.add_listener(listener);
    server.add_service(gateway_service);

    if let Some(listen) = &config.server.admin_listen {
        let admin_app = admin::Admin::new(
            config.server.admin_token.clone(),
            ledger,
            spool,
            key_backend,
            live.clone(),
        );
        let mut admin = Service::new("admin".to_string(), admin_app);
        admin.add_tcp(listen);
        server.add_service(admin);
    }
    #[cfg(feature = "emulator")]
    if let Some(listen) = &config.emulator_listen {
        // the offline demo's providers, in process (builds with the `emulator` feature)
        server.add_service(cheapai_emulator::Emulator::new().service(listen));
    }
    Ok(server)
}
