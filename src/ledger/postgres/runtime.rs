//! The small runtime the PostgreSQL store owns: one thread that drives every connection of
//! the pool. Callers on any runtime hand it work and await the result through a
//! `JoinHandle`, so a connection never belongs to a runtime that may stop first (Pingora
//! runs each service on its own runtime, and they stop at different times).

use std::future::Future;
use std::time::Duration;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

use crate::ledger::LedgerError;

pub struct StoreRuntime {
    handle: Handle,
    /// Dropped (or sent) to stop the thread.
    _stop: oneshot::Sender<()>,
}

impl StoreRuntime {
    pub fn start() -> Result<Self, LedgerError> {
        let runtime = Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LedgerError::Store(format!("ledger runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("ledger-postgres".into())
            .spawn(move || {
                // runs the spawned work until the store is dropped; the runtime (and every
                // connection task on it) is dropped here, outside any async context
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| LedgerError::Store(format!("ledger runtime thread: {e}")))?;
        Ok(Self {
            handle,
            _stop: stop,
        })
    }

    /// Runs `work` on the store's thread, giving up after `timeout`.
    pub async fn run<T: Send + 'static>(
        &self,
        what: &str,
        timeout: Duration,
        work: impl Future<Output = Result<T, LedgerError>> + Send + 'static,
    ) -> Result<T, LedgerError> {
        let task = self
            .handle
            .spawn(async move { tokio::time::timeout(timeout, work).await });
        match task.await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(LedgerError::Unavailable(format!(
                "postgres {what}: no answer within {} ms",
                timeout.as_millis()
            ))),
            Err(e) => Err(LedgerError::Unavailable(format!(
                "postgres {what}: the store is shutting down ({e})"
            ))),
        }
    }
}
