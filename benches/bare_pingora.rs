//! The floor a Pingora-based gateway stands on: a bare Pingora proxy that forwards every
//! request to one upstream over pooled keep-alive connections and does nothing else (no
//! key, no routing, no body read, no metering, no usage record).
//!
//! `benches/load.py` runs it next to nginx and the gateway (`pingora` target): what the
//! gateway lacks against nginx but not against this, Pingora itself costs.
//!
//! `bare_pingora LISTEN UPSTREAM THREADS`, e.g. `bare_pingora 127.0.0.1:9000 127.0.0.1:9001 2`.

use async_trait::async_trait;
use pingora::prelude::{HttpPeer, Result, Session};
use pingora::proxy::ProxyHttp;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;

/// The gateway's allocator, with its settings (`main` calls `allocator::tune`), so that the
/// two differ only in what they do.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Hop {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Hop {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    cheapai_gateway::allocator::tune();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, threads] = args.as_slice() else {
        eprintln!("usage: bare_pingora LISTEN UPSTREAM THREADS");
        std::process::exit(2);
    };
    let Ok(threads) = threads.parse::<usize>() else {
        eprintln!("THREADS must be a number, not {threads:?}");
        std::process::exit(2);
    };
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let hop = Hop {
        upstream: upstream.clone(),
    };
    let mut service = pingora::proxy::http_proxy_service(&server.configuration, hop);
    service.add_tcp(listen);
    server.add_service(service);
    server.run_forever()
}
