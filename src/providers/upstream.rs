//! Where a provider lives: scheme, host, port and path prefix, parsed once from `base_url`.
//! The addresses its host resolves to are runtime state, kept in [`super::dns`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora::protocols::tls::CaType;
use pingora::upstreams::peer::HttpPeer;

use super::dial::DialGate;
use super::dns::{HostAddresses, Resolve, MAX_DNS_WAIT};
use super::peer::UpstreamPeer;
use super::pools::{Connection, Pools};

use crate::error::GatewayError;

/// Per-provider timeouts (all three are enforced by the exchange loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP (+TLS) connect.
    pub connect: Duration,
    /// From the end of the request until the response header arrives. LLMs think before
    /// they answer a non-streaming call, so this is long by default.
    pub first_byte: Duration,
    /// Longest silence between two body chunks.
    pub idle: Duration,
}

/// A provider's base URL, split into what the connector and the request line need.
#[derive(Debug)]
pub struct Upstream {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path before the endpoint suffix, without a trailing slash (`/v1`, `/api/v1`, ``).
    pub path_prefix: String,
    /// Value of the `Host` header: the host, plus the port when it is not the default.
    pub authority: String,
    /// What the host resolves to (shared per host, across reloads).
    dns: Arc<HostAddresses>,
    /// Offer HTTP/2 by ALPN (TLS only), many streams per connection.
    http2: bool,
    /// The roots its certificate is checked against, when its config names a `ca_file`.
    roots: Option<Arc<CaType>>,
    /// New HTTP/2 connections one at a time (see [`super::dial`]).
    dial: DialGate,
}

/// Streams one HTTP/2 connection to a provider carries at most (fewer when the provider's
/// `SETTINGS_MAX_CONCURRENT_STREAMS` says so); past it the pool opens another connection.
pub const MAX_H2_STREAMS: usize = 100;

impl Upstream {
    /// Parses `http(s)://host[:port][/prefix]`. Query strings and fragments are refused:
    /// they would silently end up on every request.
    pub fn parse(base_url: &str) -> Result<Self, String> {
        // errors name the URL with any credential in it redacted: they reach logs and
        // `check-config` output
        let shown = crate::secret::redact_url(base_url);
        let uri: http::Uri = base_url
            .parse()
            .map_err(|e| format!("`{shown}` is not a URL: {e}"))?;
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(format!(
                "`{shown}` must not carry credentials; name the key's variable in `api_key_env`"
            ));
        }
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("`{shown}` must start with http:// or https://")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("`{shown}` has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if uri.query().is_some() {
            return Err(format!("`{shown}` must not have a query string"));
        }
        let default_port = if tls { 443 } else { 80 };
        let port = uri.port_u16().unwrap_or(default_port);
        let authority = match uri.port_u16() {
            Some(p) if p != default_port => uri
                .authority()
                .map(|a| a.as_str().to_string())
                .unwrap_or_else(|| format!("{host}:{p}")),
            _ => match host.parse::<IpAddr>() {
                Ok(IpAddr::V6(_)) => format!("[{host}]"),
                _ => host.clone(),
            },
        };
        let path_prefix = uri.path().trim_end_matches('/').to_string();
        Ok(Self {
            tls,
            port,
            path_prefix,
            authority,
            dns: HostAddresses::of(&host, port),
            host,
            http2: false,
            roots: None,
            dial: DialGate::default(),
        })
    }

    /// Offers HTTP/2 (over TLS) and trusts `roots` besides the system's (see `super::roots`).
    pub fn with_wire(mut self, http2: bool, roots: Option<Arc<CaType>>) -> Self {
        self.http2 = http2 && self.tls;
        self.roots = roots;
        self
    }

    /// The same upstream, resolving with `resolver` (tests).
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolve>) -> Self {
        self.dns = Arc::new(HostAddresses::with_resolver(
            &self.host, self.port, resolver,
        ));
        self
    }

    /// The request path for an endpoint suffix such as `/chat/completions`.
    pub fn path(&self, suffix: &str) -> String {
        format!("{}{}", self.path_prefix, suffix)
    }

    /// The peers to connect to, with the provider's connect timeout: one per address the
    /// host resolves to, the one that last took a connection first. Host names are resolved
    /// asynchronously and cached: `HttpPeer::new` would otherwise resolve with blocking std
    /// DNS on the runtime thread and panic on failure.
    pub async fn peers(&self, timeouts: &Timeouts) -> Result<Vec<UpstreamPeer>, GatewayError> {
        let addresses = self.dns.ordered(timeouts.connect.min(MAX_DNS_WAIT)).await?;
        let sni = if self.tls {
            self.host.clone()
        } else {
            String::new()
        };
        Ok(addresses
            .iter()
            .map(|addr| {
                let mut peer = HttpPeer::new(*addr, self.tls, sni.clone());
                peer.options.connection_timeout = Some(timeouts.connect);
                peer.options.total_connection_timeout = Some(timeouts.connect);
                peer.options.idle_timeout = Some(Duration::from_secs(60));
                peer.options.ca = self.roots.clone();
                if self.http2 {
                    peer.options.set_http_version(2, 1);
                    peer.options.max_h2_streams = MAX_H2_STREAMS;
                }
                UpstreamPeer(peer)
            })
            .collect())
    }

    /// A session to `peer` (one of [`Self::peers`]), reused or new (the `bool`): over HTTP/2,
    /// after the requests before it have opened their streams, so that a burst shares the
    /// connection the first one dials instead of each dialing its own (see [`super::dial`]).
    pub async fn session(
        &self,
        pools: &Pools,
        peer: &UpstreamPeer,
        timeouts: &Timeouts,
    ) -> pingora::Result<(Connection, bool)> {
        if self.http2 {
            self.dial.session(pools, peer, timeouts.connect).await
        } else {
            let (stream, reused) = pools.http1.get_stream(peer).await?;
            Ok((Connection::Http1(stream), reused))
        }
    }

    /// `address` took a connection: later requests try it first.
    pub fn connected_to(&self, address: &std::net::SocketAddr) {
        self.dns.connected_to(address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefix_port_and_authority() {
        let u = Upstream::parse("http://127.0.0.1:1234/api/v1/").unwrap();
        assert!(!u.tls);
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 1234));
        assert_eq!(u.path("/chat/completions"), "/api/v1/chat/completions");
        assert_eq!(u.authority, "127.0.0.1:1234");

        let u = Upstream::parse("https://api.openai.com/v1").unwrap();
        assert!(u.tls);
        assert_eq!(u.port, 443);
        assert_eq!(u.authority, "api.openai.com");
        assert_eq!(u.path("/embeddings"), "/v1/embeddings");

        let u = Upstream::parse("https://api.anthropic.com").unwrap();
        assert_eq!(u.path("/v1/messages"), "/v1/messages");
    }

    #[test]
    fn rejects_what_would_misroute() {
        assert!(Upstream::parse("ftp://x/v1").is_err());
        assert!(Upstream::parse("api.openai.com/v1").is_err());
        assert!(Upstream::parse("https://x/v1?key=1").is_err());
        let e = Upstream::parse("https://user:hunter2@x/v1").unwrap_err();
        assert!(e.contains("must not carry credentials"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = Upstream::parse("https://x/v1?key=hunter2").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
