//! The shared state in Redis: one connection manager for the whole process, and a deadline
//! on every call so a slow or dead Redis costs at most `state.timeout_ms`, never a hang.

use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::metrics;

/// Why a Redis call gave no answer.
#[derive(Debug, Clone)]
pub struct StateError(pub String);

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Redis connection with a per-call deadline, made on first use (inside the runtime that
/// uses it). `ConnectionManager` reconnects by itself, so Redis coming back is picked up
/// without a restart; while Redis is down at start, each call retries the connect within
/// its deadline.
pub struct Redis {
    client: redis::Client,
    url: String,
    timeout: Duration,
    connection: tokio::sync::OnceCell<ConnectionManager>,
}

type Call<T> = std::pin::Pin<Box<dyn std::future::Future<Output = redis::RedisResult<T>> + Send>>;

impl Redis {
    /// Checks the URL; no connection is made yet.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, StateError> {
        let client =
            redis::Client::open(url).map_err(|e| StateError(format!("redis url {url}: {e}")))?;
        Ok(Self {
            client,
            url: url.to_string(),
            timeout,
            connection: tokio::sync::OnceCell::new(),
        })
    }

    /// The deadline of every call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
            .set_number_of_retries(1);
        self.connection
            .get_or_try_init(|| self.client.get_connection_manager_with_config(config))
            .await
            .cloned()
    }

    /// Runs a call (a script invocation, say) with the deadline (connecting first if needed); failures
    /// are counted.
    pub async fn run<T: redis::FromRedisValue>(
        &self,
        what: &str,
        call: impl FnOnce(ConnectionManager) -> Call<T>,
    ) -> Result<T, StateError> {
        let result = tokio::time::timeout(self.timeout, async {
            let connection = self.connection().await?;
            call(connection).await
        })
        .await;
        let error = match result {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => format!("redis {} {what}: {e}", self.url),
            Err(_) => format!(
                "redis {} {what}: no answer within {} ms",
                self.url,
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

    /// Runs a pipeline (`redis::pipe()…`) with the deadline.
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
}

#[cfg(test)]
pub(crate) mod tests {
    use std::process::{Child, Command, Stdio};

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
