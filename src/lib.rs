//! cheapai-gateway: an LLM API gateway on Pingora.
//!
//! Clients speak OpenAI's API (and, later, Anthropic's); the gateway routes each request by
//! its `model` to the provider that serves it, in that provider's wire format. The binary,
//! the integration tests and the benches all start the same server through [`build_server`].

pub mod admin;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod dialect;
pub mod emulator;
pub mod endpoint;
pub mod error;
pub mod providers;
pub mod proxy;
pub mod request;
pub mod secret;
pub mod sse;

use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::listening::Service;

use config::Config;

/// Builds the whole server from a validated config: the proxy listener, the admin listener
/// and, when configured, the in-process provider emulator. Call `run_forever()` on the
/// result (the binary) or `run(RunArgs)` with your own shutdown signal (tests).
pub fn build_server(config: Config) -> pingora::Result<Server> {
    let server_conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(config.server.graceful_shutdown_timeout_seconds),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, server_conf);
    server.bootstrap();

    let gateway = proxy::Gateway::new(config.catalog, config.keys, config.server.max_body_bytes);
    let mut proxy_service = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        gateway,
        "cheapai-gateway",
    );
    proxy_service.add_tcp(&config.server.listen);
    server.add_service(proxy_service);

    if let Some(listen) = &config.server.admin_listen {
        let mut admin = Service::new("admin".to_string(), admin::Admin);
        admin.add_tcp(listen);
        server.add_service(admin);
    }
    if let Some(listen) = &config.emulator_listen {
        server.add_service(emulator::Emulator::new().service(listen));
    }
    Ok(server)
}

/// A server running only the provider emulator, for a process of its own: the load bench
/// runs it apart from the gateway so that the two do not share worker threads.
pub fn build_emulator_server(listen: &str, threads: usize) -> Server {
    let server_conf = ServerConf {
        threads: threads.max(1),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, server_conf);
    server.bootstrap();
    server.add_service(emulator::Emulator::new().service(listen));
    server
}
