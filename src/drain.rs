//! Stopping without dropping anything and without keeping anyone waiting.
//!
//! From the moment a stop is asked for (SIGTERM, or SIGQUIT for a graceful upgrade) every
//! answer carries `Connection: close`, so keep-alive clients open their next connection
//! elsewhere (to the new process of an upgrade) instead of sending it on a connection that
//! is about to close under them. Once the listeners have stopped, the process exits as soon
//! as its last request has ended and the work registered with [`hold`] (the usage records'
//! last write) is done: an idle instance stops at once, not after the whole grace period,
//! which stays the upper bound.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use async_trait::async_trait;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::Notify;

use crate::metrics;
use crate::telemetry::Telemetry;

static DRAINING: AtomicBool = AtomicBool::new(false);
/// Work that must end before an early exit.
static PENDING: AtomicUsize = AtomicUsize::new(0);
/// Woken whenever what [`idle`] waits for may have changed.
static CHANGED: LazyLock<Notify> = LazyLock::new(Notify::new);

/// A stop was asked for: from now on answers close their connections.
pub fn start() {
    DRAINING.store(true, Ordering::SeqCst);
    CHANGED.notify_waiters();
}

/// Whether a stop was asked for.
pub fn draining() -> bool {
    DRAINING.load(Ordering::Relaxed)
}

/// Marks the answer about to be written as the connection's last while draining (Pingora
/// then sends `Connection: close` and closes it after the answer).
pub fn close_if_draining(session: &mut ServerSession) {
    if draining() {
        session.set_keepalive(None);
    }
}

/// A request ended: while draining, the exit may be due.
pub fn request_ended() {
    if draining() {
        CHANGED.notify_waiters();
    }
}

/// Keeps the process from exiting early until dropped.
#[must_use = "the hold ends when it is dropped"]
pub struct Hold(());

/// Registers work an early exit must wait for (the usage writer holds one until its last
/// write is done).
pub fn hold() -> Hold {
    PENDING.fetch_add(1, Ordering::SeqCst);
    Hold(())
}

impl Drop for Hold {
    fn drop(&mut self) {
        PENDING.fetch_sub(1, Ordering::SeqCst);
        CHANGED.notify_waiters();
    }
}

/// Resolves once no request is in flight (the usage records of all of them are spooled).
pub async fn requests_done() {
    loop {
        let changed = CHANGED.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if metrics::INFLIGHT.get() <= 0 {
            return;
        }
        changed.await;
    }
}

/// Resolves once no request is in flight and no [`Hold`] is held.
pub async fn idle() {
    loop {
        let changed = CHANGED.notified();
        tokio::pin!(changed);
        // registered before the check, so a change between the check and the wait is seen
        changed.as_mut().enable();
        if metrics::INFLIGHT.get() <= 0 && PENDING.load(Ordering::SeqCst) == 0 {
            return;
        }
        changed.await;
    }
}

/// The process's signals, as Pingora's own watcher reads them (SIGQUIT: graceful upgrade,
/// SIGTERM: graceful stop, SIGINT: fast stop), but a graceful one starts draining at once:
/// an upgrade's old process goes on accepting for a few seconds while the new one starts,
/// and its answers must already tell keep-alive clients to go.
pub struct Signals;

#[async_trait]
impl pingora::server::ShutdownSignalWatch for Signals {
    async fn recv(&self) -> pingora::server::ShutdownSignal {
        use pingora::server::ShutdownSignal;
        use tokio::signal::unix::{signal, SignalKind};
        let (quit, term, interrupt) = match (
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(q), Ok(t), Ok(i)) => (q, t, i),
            _ => {
                log::error!("cannot watch signals; stopping");
                return ShutdownSignal::FastShutdown;
            }
        };
        let (mut quit, mut term, mut interrupt) = (quit, term, interrupt);
        let signal = tokio::select! {
            _ = quit.recv() => ShutdownSignal::GracefulUpgrade,
            _ = term.recv() => ShutdownSignal::GracefulTerminate,
            _ = interrupt.recv() => ShutdownSignal::FastShutdown,
        };
        start();
        signal
    }
}

/// Exits the process once the listeners have stopped and everything is done (the binary
/// runs it; tests that run several servers in one process do not).
pub struct ExitWhenDrained {
    pub telemetry: Option<Arc<Telemetry>>,
    /// Flushed before the exit (the shipper has shipped it by then, or left it for the next
    /// start; the flush makes sure nothing of it is still only in memory).
    pub spool: Option<crate::spool::Spool>,
}

#[async_trait]
impl BackgroundService for ExitWhenDrained {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if shutdown.changed().await.is_err() {
            return;
        }
        let since = Instant::now();
        idle().await;
        if let Some(spool) = &self.spool {
            spool.flush().await;
        }
        if let Some(t) = &self.telemetry {
            t.flush();
        }
        log::info!(
            "drained in {} ms: no request in flight, usage records written; exiting",
            since.elapsed().as_millis()
        );
        std::process::exit(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_waits_for_holds_and_wakes_when_they_end() {
        let held = hold();
        let waiter = tokio::spawn(idle());
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "a hold keeps it waiting");
        drop(held);
        tokio::time::timeout(std::time::Duration::from_secs(2), waiter)
            .await
            .expect("idle once the hold ended")
            .expect("task");
    }
}
