//! Where a provider lives: scheme, host, port and path prefix, parsed once from `base_url`,
//! and the addresses its host name resolves to.
//!
//! Resolution is bounded and shared: a lookup gets at most [`MAX_DNS_WAIT`] (and never more
//! than the connect timeout), one lookup per host runs at a time while the others wait for
//! its answer, every address it returns is tried in turn when connecting, and a lookup that
//! fails while an earlier answer is at hand keeps using that answer (a resolver blip does not
//! take a provider down).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::upstreams::peer::HttpPeer;

use super::peer::UpstreamPeer;

use crate::error::{ErrorKind, GatewayError};

/// How long a resolved address list is reused. Short enough to follow a provider's DNS
/// changes, long enough that lookups stay off the hot path.
const DNS_TTL: Duration = Duration::from_secs(30);
/// The longest one lookup may take (less when the connect timeout is shorter).
pub const MAX_DNS_WAIT: Duration = Duration::from_secs(5);
/// After a failed lookup, an earlier answer is used this long before the next lookup.
const STALE_RETRY: Duration = Duration::from_secs(5);

/// Looks host names up: the system's resolver, or a test's.
#[async_trait]
pub trait Resolve: Send + Sync + std::fmt::Debug {
    async fn lookup(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>>;
}

/// The system resolver (getaddrinfo, on tokio's blocking pool).
#[derive(Debug)]
pub struct SystemResolver;

#[async_trait]
impl Resolve for SystemResolver {
    async fn lookup(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }
}

/// A lookup's answer and when it may be asked again.
#[derive(Debug)]
struct Resolved {
    addresses: Arc<Vec<SocketAddr>>,
    fresh_until: Instant,
}

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
    resolver: Arc<dyn Resolve>,
    resolved: Mutex<Option<Resolved>>,
    /// Held while a lookup runs: one per host at a time.
    resolving: tokio::sync::Mutex<()>,
    /// Index of the address that last took a connection: tried first.
    preferred: AtomicUsize,
}

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
            host,
            port,
            path_prefix,
            authority,
            resolver: Arc::new(SystemResolver),
            resolved: Mutex::new(None),
            resolving: tokio::sync::Mutex::new(()),
            preferred: AtomicUsize::new(0),
        })
    }

    /// The same upstream, resolving with `resolver` (tests).
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolve>) -> Self {
        self.resolver = resolver;
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
        let addresses = self.addresses(timeouts.connect.min(MAX_DNS_WAIT)).await?;
        let first = self.preferred.load(Ordering::Relaxed) % addresses.len().max(1);
        let sni = if self.tls {
            self.host.clone()
        } else {
            String::new()
        };
        Ok(addresses[first..]
            .iter()
            .chain(&addresses[..first])
            .map(|addr| {
                let mut peer = HttpPeer::new(*addr, self.tls, sni.clone());
                peer.options.connection_timeout = Some(timeouts.connect);
                peer.options.total_connection_timeout = Some(timeouts.connect);
                peer.options.idle_timeout = Some(Duration::from_secs(60));
                UpstreamPeer(peer)
            })
            .collect())
    }

    /// `address` took a connection: later requests try it first.
    pub fn connected_to(&self, address: &SocketAddr) {
        let current = self
            .resolved
            .lock()
            .ok()
            .and_then(|r| r.as_ref().map(|r| r.addresses.clone()));
        if let Some(i) = current.and_then(|list| list.iter().position(|a| a == address)) {
            self.preferred.store(i, Ordering::Relaxed);
        }
    }

    /// The host's addresses: an IP literal as it is, else the cached answer while fresh, else
    /// a lookup bounded by `wait` (one at a time; those arriving meanwhile get its answer).
    async fn addresses(&self, wait: Duration) -> Result<Arc<Vec<SocketAddr>>, GatewayError> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(Arc::new(vec![SocketAddr::new(ip, self.port)]));
        }
        if let Some(fresh) = self.cached(true) {
            return Ok(fresh);
        }
        let _one_lookup = self.resolving.lock().await;
        // another request may have looked it up while this one waited
        if let Some(fresh) = self.cached(true) {
            return Ok(fresh);
        }
        let looked_up = tokio::time::timeout(wait, self.resolver.lookup(&self.host, self.port))
            .await
            .map_err(|_| format!("no answer within {} ms", wait.as_millis()))
            .and_then(|r| r.map_err(|e| e.to_string()))
            .and_then(|list| match list.is_empty() {
                true => Err("no address".to_string()),
                false => Ok(list),
            });
        let (addresses, fresh_for) = match looked_up {
            Ok(list) => (Arc::new(list), DNS_TTL),
            Err(why) => match self.cached(false) {
                Some(stale) => {
                    log::warn!(
                        "cannot resolve provider host {} ({why}); using its last addresses",
                        self.host
                    );
                    (stale, STALE_RETRY)
                }
                None => {
                    return Err(GatewayError::new(
                        ErrorKind::UpstreamUnreachable,
                        format!("cannot resolve provider host {}: {why}", self.host),
                    ))
                }
            },
        };
        if let Ok(mut guard) = self.resolved.lock() {
            *guard = Some(Resolved {
                addresses: addresses.clone(),
                fresh_until: Instant::now() + fresh_for,
            });
        }
        Ok(addresses)
    }

    /// The cached answer: only while fresh, or whatever its age.
    fn cached(&self, fresh_only: bool) -> Option<Arc<Vec<SocketAddr>>> {
        let guard = self.resolved.lock().ok()?;
        let r = guard.as_ref()?;
        (!fresh_only || Instant::now() < r.fresh_until).then(|| r.addresses.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::upstreams::peer::Peer;
    use std::sync::atomic::AtomicU32;

    /// A resolver that counts its lookups, answers after `delay` (never, when `None`), and
    /// fails once `fail` is set.
    #[derive(Debug, Default)]
    struct Counting {
        lookups: AtomicU32,
        delay: Option<Duration>,
        fail: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl Resolve for Counting {
        async fn lookup(&self, _host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            match self.delay {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending::<()>().await,
            }
            if self.fail.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("SERVFAIL"));
            }
            Ok(vec![
                SocketAddr::from(([10, 0, 0, 1], port)),
                SocketAddr::from(([10, 0, 0, 2], port)),
            ])
        }
    }

    fn timeouts(connect_ms: u64) -> Timeouts {
        Timeouts {
            connect: Duration::from_millis(connect_ms),
            first_byte: Duration::from_secs(1),
            idle: Duration::from_secs(1),
        }
    }

    fn upstream(resolver: &Arc<Counting>) -> Arc<Upstream> {
        let resolver: Arc<dyn Resolve> = resolver.clone();
        Arc::new(
            Upstream::parse("https://api.provider.test/v1")
                .unwrap()
                .with_resolver(resolver),
        )
    }

    #[tokio::test]
    async fn one_lookup_per_host_at_a_time_and_every_address_is_a_peer() {
        let resolver = Arc::new(Counting {
            delay: Some(Duration::from_millis(50)),
            ..Counting::default()
        });
        let up = upstream(&resolver);
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let up = up.clone();
                tokio::spawn(async move { up.peers(&timeouts(2000)).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().len(), 2);
        }
        assert_eq!(resolver.lookups.load(Ordering::SeqCst), 1);
        // the address that took a connection is tried first from then on
        let second = SocketAddr::from(([10, 0, 0, 2], 443));
        up.connected_to(&second);
        let peers = up.peers(&timeouts(2000)).await.unwrap();
        assert_eq!(peers[0].0.address().as_inet(), Some(&second));
        assert_eq!(resolver.lookups.load(Ordering::SeqCst), 1, "cached");
    }

    #[tokio::test]
    async fn a_lookup_is_bounded_by_the_connect_timeout() {
        let resolver = Arc::new(Counting::default()); // never answers
        let up = upstream(&resolver);
        let started = Instant::now();
        let e = up.peers(&timeouts(100)).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(e.kind, ErrorKind::UpstreamUnreachable);
        assert!(
            e.message.contains("no answer within 100 ms"),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn a_failed_lookup_keeps_the_last_answer() {
        let resolver = Arc::new(Counting {
            delay: Some(Duration::ZERO),
            ..Counting::default()
        });
        let up = upstream(&resolver);
        assert_eq!(up.peers(&timeouts(500)).await.unwrap().len(), 2);
        resolver.fail.store(true, Ordering::SeqCst);
        // the answer expires; the next lookup fails; the last answer is used
        if let Ok(mut r) = up.resolved.lock() {
            if let Some(r) = r.as_mut() {
                r.fresh_until = Instant::now();
            }
        }
        assert_eq!(up.peers(&timeouts(500)).await.unwrap().len(), 2);
        assert_eq!(resolver.lookups.load(Ordering::SeqCst), 2);
        // and is not asked again at once
        assert_eq!(up.peers(&timeouts(500)).await.unwrap().len(), 2);
        assert_eq!(resolver.lookups.load(Ordering::SeqCst), 2);
    }

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
