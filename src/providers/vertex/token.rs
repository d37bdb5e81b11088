//! The access-token cache of one Vertex provider: a token is minted once and shared by every
//! request until shortly before it expires; then the first request that needs a fresh one
//! refreshes it while the others wait for that refresh (one in flight), instead of each
//! minting its own.
//!
//! The exchange itself (the signed assertion posted to `token_uri`) is I/O, done by the
//! proxy and handed in as `fetch`; this module only decides when to call it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use crate::secret::Secret;

/// How long before its expiry a token is replaced: Google's libraries refresh five minutes
/// early, so a request never goes out with a token that expires on the way.
pub const REFRESH_EARLY: Duration = Duration::from_secs(300);

/// A minted access token and when to stop using it.
#[derive(Debug)]
pub struct AccessToken {
    value: Secret,
    refresh_at: Instant,
}

impl AccessToken {
    /// The bearer value (a secret: never logged).
    pub fn expose(&self) -> &str {
        self.value.expose()
    }
}

/// One provider's current token and the lock its refresh holds.
#[derive(Debug, Default)]
pub struct TokenCache {
    current: ArcSwapOption<AccessToken>,
    refresh: tokio::sync::Mutex<()>,
}

impl TokenCache {
    /// A usable token: the cached one while `now()` is before its refresh time, else a new
    /// one from `fetch` (the token and its lifetime). Callers that find the token stale
    /// while another refreshes it wait for that refresh and share its result.
    pub async fn get<F, Fut, E>(
        &self,
        now: impl Fn() -> Instant,
        fetch: F,
    ) -> Result<Arc<AccessToken>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(String, Duration), E>>,
    {
        if let Some(token) = self.usable(now()) {
            return Ok(token);
        }
        let _refreshing = self.refresh.lock().await;
        // refreshed by the caller this one waited for
        if let Some(token) = self.usable(now()) {
            return Ok(token);
        }
        let (value, lifetime) = fetch().await?;
        // a short-lived token (minutes) is replaced half-way instead
        let early = REFRESH_EARLY.min(lifetime / 2);
        let token = Arc::new(AccessToken {
            value: Secret::new(value),
            refresh_at: now() + lifetime - early,
        });
        self.current.store(Some(Arc::clone(&token)));
        Ok(token)
    }

    fn usable(&self, now: Instant) -> Option<Arc<AccessToken>> {
        self.current
            .load_full()
            .filter(|token| now < token.refresh_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A clock the test moves by hand: a start plus seconds.
    struct Clock {
        start: Instant,
        secs: AtomicU64,
    }

    impl Clock {
        fn new() -> Self {
            Self {
                start: Instant::now(),
                secs: AtomicU64::new(0),
            }
        }
        fn now(&self) -> Instant {
            self.start + Duration::from_secs(self.secs.load(Ordering::SeqCst))
        }
        fn set(&self, secs: u64) {
            self.secs.store(secs, Ordering::SeqCst);
        }
    }

    async fn mint(cache: &TokenCache, clock: &Clock, minted: &AtomicU64, life: u64) -> String {
        let token = cache
            .get(
                || clock.now(),
                || async {
                    let n = minted.fetch_add(1, Ordering::SeqCst) + 1;
                    Ok::<_, String>((format!("token-{n}"), Duration::from_secs(life)))
                },
            )
            .await
            .unwrap();
        token.expose().to_string()
    }

    #[tokio::test]
    async fn a_token_is_reused_then_refreshed_five_minutes_before_it_expires() {
        let (cache, clock, minted) = (TokenCache::default(), Clock::new(), AtomicU64::new(0));
        assert_eq!(mint(&cache, &clock, &minted, 3600).await, "token-1");
        clock.set(3600 - 301);
        assert_eq!(mint(&cache, &clock, &minted, 3600).await, "token-1");
        clock.set(3600 - 300);
        assert_eq!(mint(&cache, &clock, &minted, 3600).await, "token-2");
        assert_eq!(minted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_short_lived_token_is_refreshed_half_way() {
        let (cache, clock, minted) = (TokenCache::default(), Clock::new(), AtomicU64::new(0));
        assert_eq!(mint(&cache, &clock, &minted, 60).await, "token-1");
        clock.set(29);
        assert_eq!(mint(&cache, &clock, &minted, 60).await, "token-1");
        clock.set(30);
        assert_eq!(mint(&cache, &clock, &minted, 60).await, "token-2");
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_refresh() {
        let (cache, clock, minted) = (TokenCache::default(), Clock::new(), AtomicU64::new(0));
        let slow_fetch = || async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let n = minted.fetch_add(1, Ordering::SeqCst) + 1;
            Ok::<_, String>((format!("token-{n}"), Duration::from_secs(3600)))
        };
        let get = || cache.get(|| clock.now(), slow_fetch);
        let (a, b, c) = tokio::join!(get(), get(), get());
        assert_eq!(minted.load(Ordering::SeqCst), 1);
        for token in [a, b, c] {
            assert_eq!(token.unwrap().expose(), "token-1");
        }
    }

    #[tokio::test]
    async fn a_failed_refresh_is_the_callers_error_and_the_next_call_tries_again() {
        let (cache, clock, minted) = (TokenCache::default(), Clock::new(), AtomicU64::new(0));
        let failed = cache
            .get(
                || clock.now(),
                || async { Err::<(String, Duration), _>("token endpoint said 400") },
            )
            .await;
        assert_eq!(failed.unwrap_err(), "token endpoint said 400");
        assert_eq!(mint(&cache, &clock, &minted, 3600).await, "token-1");
    }
}
