//! The `[state]` table: where the shared state lives (one Redis, a Redis Cluster, or this
//! process alone) and how a Redis failure is handled.

use std::time::Duration;

use super::file::{FileConfig, FileOnRedisError};
use super::Validator;
use crate::limits::OnRedisError;

/// Shared state: Redis or Redis Cluster, when configured; in-process state otherwise (one
/// instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateConfig {
    pub redis_url: Option<String>,
    /// Seed nodes of a Redis Cluster; empty when not a cluster. Exclusive with `redis_url`.
    pub redis_cluster: Vec<String>,
    /// Deadline of every Redis call.
    pub timeout: Duration,
    pub on_redis_error: OnRedisError,
    /// How long a looked-up client key is trusted before Redis is asked again (a disabled
    /// key keeps working this long at most).
    pub key_cache_ttl: Duration,
    /// How long a budget reservation is held when nothing settles it (its instance died,
    /// the check's answer came too late): then it comes off the key's spend by itself.
    pub reservation_ttl: Duration,
}

impl StateConfig {
    /// The Redis this table names: a cluster, one Redis, or `None` (state in-process). Checks
    /// the URLs; no connection is made yet.
    pub fn redis(&self) -> Result<Option<crate::state::Redis>, crate::state::StateError> {
        use crate::state::Redis;
        if !self.redis_cluster.is_empty() {
            return Redis::cluster(&self.redis_cluster, self.timeout).map(Some);
        }
        self.redis_url
            .as_deref()
            .map(|url| Redis::new(url, self.timeout))
            .transpose()
    }
}

fn is_redis_url(url: &str) -> bool {
    url.starts_with("redis://") || url.starts_with("rediss://")
}

impl Validator<'_> {
    pub(super) fn state(&mut self, raw: &FileConfig) -> StateConfig {
        let state = raw.state.as_ref();
        let url = state.and_then(|s| s.redis_url.as_ref());
        let cluster = state.and_then(|s| s.redis_cluster.as_ref());
        if let Some(url) = url.filter(|u| !is_redis_url(u.get_ref())) {
            self.problem(
                url,
                "state.redis_url",
                "must start with redis:// or rediss://",
            );
        }
        if let Some(nodes) = cluster {
            if url.is_some() {
                self.problem(
                    nodes,
                    "state.redis_cluster",
                    "set either `redis_url` (one Redis) or `redis_cluster`, not both",
                );
            }
            if nodes.get_ref().is_empty() {
                self.problem(nodes, "state.redis_cluster", "list at least one node");
            }
            for (i, node) in nodes.get_ref().iter().enumerate() {
                if !is_redis_url(node.get_ref()) {
                    self.problem(
                        node,
                        &format!("state.redis_cluster[{i}]"),
                        "must start with redis:// or rediss://",
                    );
                }
            }
        }
        let reservation_ttl = match state.and_then(|s| s.reservation_ttl_seconds.as_ref()) {
            None => crate::limits::DEFAULT_RESERVATION_TTL,
            Some(t) if *t.get_ref() == 0 => {
                self.problem(t, "state.reservation_ttl_seconds", "must be at least 1");
                crate::limits::DEFAULT_RESERVATION_TTL
            }
            Some(t) => Duration::from_secs(*t.get_ref()),
        };
        StateConfig {
            reservation_ttl,
            redis_url: url.map(|u| u.get_ref().clone()),
            redis_cluster: cluster
                .map(|n| n.get_ref().iter().map(|u| u.get_ref().clone()).collect())
                .unwrap_or_default(),
            timeout: Duration::from_millis(state.and_then(|s| s.timeout_ms).unwrap_or(50)),
            on_redis_error: match state.and_then(|s| s.on_redis_error) {
                Some(FileOnRedisError::Deny) => OnRedisError::Deny,
                _ => OnRedisError::Allow,
            },
            key_cache_ttl: Duration::from_millis(
                state.and_then(|s| s.key_cache_ttl_ms).unwrap_or(5_000),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(state: &str) -> Result<Config, crate::config::ConfigError> {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:8080\"\nupgrade_sock = \"gw.sock\"\n\n[state]\n{state}"
        );
        Config::parse(&text, "t.toml", &|_| None)
    }

    #[test]
    fn a_cluster_is_its_seed_nodes_and_the_upgrade_socket_is_kept() {
        let c = parse("redis_cluster = [\"redis://10.0.0.1:7000\", \"redis://10.0.0.2:7000\"]\n")
            .unwrap();
        assert_eq!(c.state.redis_cluster.len(), 2);
        assert_eq!(c.state.redis_url, None);
        assert_eq!(c.server.upgrade_sock.as_deref(), Some("gw.sock"));
        let one = parse("redis_url = \"redis://10.0.0.1:6379\"\n").unwrap();
        assert!(one.state.redis_cluster.is_empty());
    }

    #[test]
    fn url_and_cluster_together_is_an_error_with_its_line() {
        let e = parse("redis_url = \"redis://a:6379\"\nredis_cluster = [\"redis://b:7000\"]\n")
            .unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(e.0[0].starts_with("t.toml:7: state.redis_cluster"), "{e}");
        assert!(e.0[0].contains("not both"), "{e}");
    }

    #[test]
    fn bad_cluster_nodes_are_reported_one_by_one() {
        let e = parse("redis_cluster = [\n  \"redis://a:7000\",\n  \"http://b:7000\",\n]\n")
            .unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(
            e.0[0].starts_with("t.toml:8: state.redis_cluster[1]"),
            "{e}"
        );
        let empty = parse("redis_cluster = []\n").unwrap_err();
        assert!(empty.0[0].contains("at least one node"), "{empty}");
    }
}
