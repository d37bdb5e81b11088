//! The shared state in Redis: one connection for the whole process (to a single Redis or to a
//! Redis Cluster), and a deadline on every call so a slow or dead Redis costs at most
//! `state.timeout_ms`, never a hang.
//!
//! On a cluster every multi-key command, script and pipeline must stay within one slot: keys
//! that go together share a hash tag (`cai:rl:{k_…}:…`, `cai:spend:{k_…}`), and batches that
//! span keys go through [`Redis::per_slot`], one pipeline per hash tag.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::metrics;

/// Why a Redis call gave no answer.
#[derive(Debug, Clone)]
pub struct StateError(pub String);

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the shared state lives.
enum Target {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

/// A live connection: either kind answers the same commands, so callers never ask which.
#[derive(Clone)]
pub enum Connection {
    /// Reconnects by itself.
    Single(ConnectionManager),
    /// Follows MOVED/ASK, refreshes the slot map and reconnects to nodes by itself.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// A Redis connection with a per-call deadline, made on first use (inside the runtime that
/// uses it). Both connection kinds reconnect by themselves, so Redis (or a cluster node)
/// coming back is picked up without a restart; while Redis is down at start, each call
/// retries the connect within its deadline.
pub struct Redis {
    target: Target,
    /// How errors name it: the URL, or the cluster's seed nodes, with passwords redacted.
    name: String,
    /// The credentials in the configured URLs, scrubbed from the client library's error
    /// texts (a cluster error may quote a node's URL).
    secrets: Vec<String>,
    timeout: Duration,
    connection: tokio::sync::OnceCell<Connection>,
}

type Call<T> = std::pin::Pin<Box<dyn std::future::Future<Output = redis::RedisResult<T>> + Send>>;

impl Redis {
    /// One Redis at `url`. Checks the URL; no connection is made yet.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, StateError> {
        let name = crate::secret::redact_url(url);
        let secrets = crate::secret::credentials_in_url(url);
        let client = redis::Client::open(url).map_err(|e| {
            StateError(format!(
                "redis url {name}: {}",
                crate::secret::scrub(&e.to_string(), &secrets)
            ))
        })?;
        Ok(Self {
            target: Target::Single(client),
            name,
            secrets,
            timeout,
            connection: tokio::sync::OnceCell::new(),
        })
    }

    /// A Redis Cluster reached through any of `nodes` (the client learns the rest). Checks
    /// the URLs; no connection is made yet.
    pub fn cluster(nodes: &[String], timeout: Duration) -> Result<Self, StateError> {
        let name = format!(
            "cluster {}",
            nodes
                .iter()
                .map(|n| crate::secret::redact_url(n))
                .collect::<Vec<_>>()
                .join(",")
        );
        let secrets: Vec<String> = nodes
            .iter()
            .flat_map(|n| crate::secret::credentials_in_url(n))
            .collect();
        let client = redis::cluster::ClusterClient::builder(nodes.to_vec())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            // a dead node's slots fail fast: the call's own deadline bounds the retries
            .retries(2)
            .min_retry_wait(5)
            .max_retry_wait(timeout.as_millis().max(10) as u64)
            .build()
            .map_err(|e| {
                StateError(format!(
                    "redis {name}: {}",
                    crate::secret::scrub(&e.to_string(), &secrets)
                ))
            })?;
        Ok(Self {
            target: Target::Cluster(client),
            name,
            secrets,
            timeout,
            connection: tokio::sync::OnceCell::new(),
        })
    }

    /// The deadline of every call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether this is a cluster (batches are then split per slot).
    pub fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    async fn connection(&self) -> redis::RedisResult<Connection> {
        self.connection
            .get_or_try_init(|| async {
                match &self.target {
                    Target::Single(client) => {
                        let config = redis::aio::ConnectionManagerConfig::new()
                            .set_connection_timeout(self.timeout)
                            .set_response_timeout(self.timeout)
                            .set_number_of_retries(1);
                        client
                            .get_connection_manager_with_config(config)
                            .await
                            .map(Connection::Single)
                    }
                    Target::Cluster(client) => {
                        client.get_async_connection().await.map(Connection::Cluster)
                    }
                }
            })
            .await
            .cloned()
    }

    /// Runs a call (a script invocation, say) with the deadline (connecting first if needed); failures
    /// are counted.
    pub async fn run<T: redis::FromRedisValue>(
        &self,
        what: &str,
        call: impl FnOnce(Connection) -> Call<T>,
    ) -> Result<T, StateError> {
        let result = tokio::time::timeout(self.timeout, async {
            let connection = self.connection().await?;
            call(connection).await
        })
        .await;
        let error = match result {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => format!(
                "redis {} {what}: {}",
                self.name,
                crate::secret::scrub(&e.to_string(), &self.secrets)
            ),
            Err(_) => format!(
                "redis {} {what}: no answer within {} ms",
                self.name,
                self.timeout.as_millis()
            ),
        };
        metrics::REDIS_ERRORS.inc();
        Err(StateError(error))
    }

    /// Runs one command (`redis::cmd(…)`) with the deadline.
    pub async fn command<T: redis::FromRedisValue>(
        &self,
        what: &str,
        command: redis::Cmd,
    ) -> Result<T, StateError> {
        self.run(what, move |mut c| {
            Box::pin(async move { command.query_async(&mut c).await })
        })
        .await
    }

    /// Runs a pipeline (`redis::pipe()…`) with the deadline. On a cluster its keys must all
    /// be in one slot (and `atomic()` is only possible then).
    pub async fn pipeline<T: redis::FromRedisValue>(
        &self,
        what: &str,
        pipeline: redis::Pipeline,
    ) -> Result<T, StateError> {
        self.run(what, move |mut c| {
            Box::pin(async move { pipeline.query_async(&mut c).await })
        })
        .await
    }

    /// Runs commands whose results are not needed, each with the key that routes it: one
    /// pipeline on a single Redis; on a cluster one pipeline per hash tag, all at once (a
    /// pipeline across slots is refused there). Stops at the first failure.
    pub async fn per_slot(
        &self,
        what: &str,
        commands: Vec<(String, Cmd)>,
    ) -> Result<(), StateError> {
        let groups: Vec<Vec<Cmd>> = if self.is_cluster() {
            let mut by_tag: BTreeMap<String, Vec<Cmd>> = BTreeMap::new();
            for (key, cmd) in commands {
                by_tag
                    .entry(hash_tag(&key).to_string())
                    .or_default()
                    .push(cmd);
            }
            by_tag.into_values().collect()
        } else {
            vec![commands.into_iter().map(|(_, c)| c).collect()]
        };
        let calls = groups.into_iter().filter(|g| !g.is_empty()).map(|group| {
            let mut pipe = redis::pipe();
            for cmd in group {
                pipe.add_command(cmd).ignore();
            }
            self.pipeline::<()>(what, pipe)
        });
        for result in join_all(calls).await {
            result?;
        }
        Ok(())
    }
}

/// Runs futures concurrently and returns their results in order (a handful here: one per
/// slot of a batch; no need for a futures crate).
async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut results: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *result = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

/// The part of a key Redis Cluster hashes: the text between the first `{` and the next `}`
/// when that is not empty, else the whole key. Keys with the same tag share a slot.
pub fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{') {
        if let Some(len) = key[open + 1..].find('}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

#[cfg(test)]
pub(crate) mod tests {
    use std::process::{Child, Command, Stdio};

    #[test]
    fn hash_tags_follow_the_cluster_rule() {
        assert_eq!(super::hash_tag("cai:rl:{k_ab}:gpt-4o"), "k_ab");
        assert_eq!(super::hash_tag("cai:spend:{k_ab}"), "k_ab");
        assert_eq!(super::hash_tag("cai:keys"), "cai:keys");
        assert_eq!(super::hash_tag("a{}b{c}"), "a{}b{c}");
        assert_eq!(super::hash_tag("a{b"), "a{b");
        assert_eq!(super::hash_tag("{x}{y}"), "x");
    }

    /// A throwaway `redis-server` for store tests; killed on drop.
    pub struct TestRedis(Child, pub String);

    impl Drop for TestRedis {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    pub fn redis_server() -> TestRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/setup installs it)");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        TestRedis(child, format!("redis://127.0.0.1:{port}/0"))
    }
}
