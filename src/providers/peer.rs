//! The connector's view of a provider: Pingora's `HttpPeer`, minus one syscall per request.
//!
//! Before handing out a pooled connection, Pingora checks with `getpeername` that its file
//! descriptor still points at the peer's address. The pool is keyed by the peer's reuse hash
//! (address, TLS, SNI and options), and a pooled stream owns its descriptor, so the check can
//! only fail for a descriptor closed behind the pool's back, which safe Rust code cannot do.
//! Everything else is the inner `HttpPeer`'s.

use std::os::unix::io::AsRawFd;
use std::sync::Arc;

use pingora::protocols::l4::socket::SocketAddr;
use pingora::upstreams::peer::{HttpPeer, Peer, PeerOptions, Proxy, Tracer};
use pingora::utils::tls::CertKey;

/// An `HttpPeer` whose pooled connections are reused without the descriptor check.
#[derive(Debug, Clone)]
pub struct UpstreamPeer(pub HttpPeer);

impl std::fmt::Display for UpstreamPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Peer for UpstreamPeer {
    fn address(&self) -> &SocketAddr {
        self.0.address()
    }
    fn tls(&self) -> bool {
        self.0.tls()
    }
    fn sni(&self) -> &str {
        self.0.sni()
    }
    fn reuse_hash(&self) -> u64 {
        self.0.reuse_hash()
    }
    fn get_peer_options(&self) -> Option<&PeerOptions> {
        self.0.get_peer_options()
    }
    fn get_mut_peer_options(&mut self) -> Option<&mut PeerOptions> {
        self.0.get_mut_peer_options()
    }
    fn get_proxy(&self) -> Option<&Proxy> {
        self.0.get_proxy()
    }
    fn get_client_cert_key(&self) -> Option<&Arc<CertKey>> {
        self.0.get_client_cert_key()
    }
    fn get_tracer(&self) -> Option<Tracer> {
        self.0.get_tracer()
    }
    fn matches_fd<V: AsRawFd>(&self, _fd: V) -> bool {
        true
    }
}
