//! The addresses a provider's host name resolves to: runtime state, apart from the
//! [`super::upstream::Upstream`] parsed from config, and kept per host across config reloads
//! (a reload rebuilds every provider; it does not forget what DNS said a second ago).
//!
//! Resolution is bounded and shared: a lookup gets at most [`MAX_DNS_WAIT`] (and never more
//! than the connect timeout), one lookup per host runs at a time while the others wait for
//! its answer, every address it returns is tried in turn when connecting, and a lookup that
//! fails while an earlier answer is at hand keeps using that answer (a resolver blip does not
//! take a provider down).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;

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

/// A resolved list and where to start in it (no copy of the list per request).
pub struct Ordered {
    list: Arc<Vec<SocketAddr>>,
    first: usize,
}

impl Ordered {
    pub fn iter(&self) -> impl Iterator<Item = &SocketAddr> {
        let (before, from) = self.list.split_at(self.first.min(self.list.len()));
        from.iter().chain(before)
    }
}

/// One `host:port`'s addresses, shared by every provider that names it.
#[derive(Debug)]
pub struct HostAddresses {
    host: String,
    port: u16,
    resolver: Arc<dyn Resolve>,
    resolved: Mutex<Option<Resolved>>,
    /// Held while a lookup runs: one per host at a time.
    resolving: tokio::sync::Mutex<()>,
    /// Index of the address that last took a connection: tried first.
    preferred: AtomicUsize,
}

/// The live hosts' state, by `host:port`; an entry lives as long as a provider holds it.
type Hosts = HashMap<(String, u16), Weak<HostAddresses>>;
static HOSTS: LazyLock<Mutex<Hosts>> = LazyLock::new(Mutex::default);

impl HostAddresses {
    /// The shared state of `host:port` with the system resolver: the same one a provider of
    /// the previous config held, if any still does.
    pub fn of(host: &str, port: u16) -> Arc<Self> {
        let Ok(mut hosts) = HOSTS.lock() else {
            return Arc::new(Self::with_resolver(host, port, Arc::new(SystemResolver)));
        };
        let key = (host.to_string(), port);
        if let Some(live) = hosts.get(&key).and_then(Weak::upgrade) {
            return live;
        }
        hosts.retain(|_, held| held.strong_count() > 0);
        let fresh = Arc::new(Self::with_resolver(host, port, Arc::new(SystemResolver)));
        hosts.insert(key, Arc::downgrade(&fresh));
        fresh
    }

    /// State of its own for `host:port`, resolving with `resolver` (tests).
    pub fn with_resolver(host: &str, port: u16, resolver: Arc<dyn Resolve>) -> Self {
        Self {
            host: host.to_string(),
            port,
            resolver,
            resolved: Mutex::new(None),
            resolving: tokio::sync::Mutex::new(()),
            preferred: AtomicUsize::new(0),
        }
    }

    /// The host's addresses in the order to try them, the one that last took a connection
    /// first (see [`Self::addresses`] for where they come from).
    pub async fn ordered(&self, wait: Duration) -> Result<Ordered, GatewayError> {
        let list = self.addresses(wait).await?;
        let first = self.preferred.load(Ordering::Relaxed) % list.len().max(1);
        Ok(Ordered { list, first })
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

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn host(resolver: &Arc<Counting>) -> Arc<HostAddresses> {
        let resolver: Arc<dyn Resolve> = resolver.clone();
        Arc::new(HostAddresses::with_resolver(
            "api.provider.test",
            443,
            resolver,
        ))
    }

    #[tokio::test]
    async fn one_lookup_per_host_at_a_time_and_every_address_is_a_peer() {
        let resolver = Arc::new(Counting {
            delay: Some(Duration::from_millis(50)),
            ..Counting::default()
        });
        let up = host(&resolver);
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let up = up.clone();
                tokio::spawn(async move { up.ordered(ms(2000)).await.map(|o| o.iter().count()) })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 2);
        }
        assert_eq!(resolver.lookups.load(Ordering::SeqCst), 1);
        // the address that took a connection is tried first from then on
        let second = SocketAddr::from(([10, 0, 0, 2], 443));
        up.connected_to(&second);
        let ordered = up.ordered(ms(2000)).await.unwrap();
        assert_eq!(ordered.iter().next(), Some(&second));
        assert_eq!(ordered.iter().count(), 2);
        assert_eq!(resolver.lookups.load(Ordering::SeqCst), 1, "cached");
    }

    #[tokio::test]
    async fn a_lookup_is_bounded_by_the_connect_timeout() {
        let resolver = Arc::new(Counting::default()); // never answers
        let up = host(&resolver);
        let started = Instant::now();
        let Err(e) = up.ordered(ms(100)).await else {
            panic!("a lookup that never answers fails")
        };
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
        let up = host(&resolver);
        assert_eq!(up.ordered(ms(500)).await.unwrap().iter().count(), 2);
        resolver.fail.store(true, Ordering::SeqCst);
        // the answer expires; the next lookup fails; the last answer is used
        if let Ok(mut r) = up.resolved.lock() {
            if let Some(r) = r.as_mut() {
                r.fresh_until = Instant::now();
            }
        }
        assert_eq!(up.ordered(ms(500)).await.unwrap().iter().count(), 2);
        assert_eq!(resolver.lookups.load(Ordering::SeqCst), 2);
        // and is not asked again at once
        assert_eq!(up.ordered(ms(500)).await.unwrap().iter().count(), 2);
        assert_eq!(resolver.lookups.load(Ordering::SeqCst), 2);
    }
}
