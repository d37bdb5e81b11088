//! The shipper: reads records that are durable in the spool, delivers them to the store in
//! batches, and only after a successful delivery moves the checkpoint past them and deletes
//! the segments it has shipped entirely. A failed delivery is retried with backoff, forever,
//! while records keep spooling; after a crash, everything after the checkpoint is delivered
//! again (the store dedups by request id).
//!
//! Every step can be dropped at any await (the shutdown and the drain deadline do that)
//! without losing track: the read position and the pending batch change only once a read
//! completes or a delivery succeeds, and the checkpoint's move runs to its end on the
//! blocking pool and is idempotent. A delivery dropped while in flight is sent again by
//! the drain (or the next start), which the store's dedup makes harmless.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::backoff::Backoff;
use super::checkpoint::{Checkpoint, Position};
use super::metrics::DiskOp;
use super::segments;
use super::state::{lock, Durable, Shared};
use super::Deliver;
use crate::usage::UsageRecord;

/// How long a batch smaller than `batch_records` waits for more records after its first
/// became durable. Each batch is a store transaction (and, on PostgreSQL, a WAL fsync), so
/// at moderate rates a longer wait means fewer, larger transactions: the load bench measured
/// ~54 records a transaction at 2,500 requests/s with 5 ms, and the store's cost per record
/// rising with it. 50 ms still puts a record in the store well within a second.
const BATCH_LINGER: Duration = Duration::from_millis(50);
/// First and longest wait before retrying a failed delivery.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Moves spooled records to the store; see [`Shipper::run`].
pub struct Shipper {
    shared: Arc<Shared>,
    durable: watch::Receiver<Durable>,
    checkpoint: Checkpoint,
    batch_records: usize,
    /// The next byte to read.
    read: Position,
    /// Read and not yet delivered; they end at `read`.
    pending: Vec<UsageRecord>,
    backoff: Backoff,
}

impl std::fmt::Debug for Shipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shipper")
            .field("dir", &self.shared.dir)
            .field("read", &self.read)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl Shipper {
    pub(crate) fn new(shared: Arc<Shared>, start: Position, batch_records: usize) -> Self {
        Shipper {
            durable: shared.durable.subscribe(),
            checkpoint: Checkpoint::new(&shared.dir),
            shared,
            batch_records,
            read: start,
            pending: Vec::new(),
            backoff: Backoff::new(RETRY_MIN, RETRY_MAX),
        }
    }

    /// Ships until `shutdown` resolves, then drains: waits until everything appended so far
    /// is on disk and ships it, for at most `drain` in all. What is not shipped by then
    /// stays in the spool for the next start. Appends keep working throughout.
    pub async fn run(
        mut self,
        deliver: Arc<dyn Deliver>,
        shutdown: impl Future<Output = ()>,
        drain: Duration,
    ) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                () = self.ship_once(&*deliver, true) => {}
            }
        }
        let drained = tokio::time::timeout(drain, async {
            self.shared.flush().await;
            while !self.caught_up() {
                self.ship_once(&*deliver, false).await;
            }
            // a checkpoint move the shutdown interrupted may still be under way: this one
            // waits for it (and is a no-op after it), so the checkpoint is final on return
            self.commit().await;
        })
        .await;
        let left = self.shared.unshipped();
        match drained {
            Ok(()) if left == 0 => log::info!(
                "usage spool {}: shipped everything before stopping",
                self.shared.dir.display()
            ),
            Ok(()) => log::info!(
                "usage spool {}: shipped everything durable before stopping; {left} bytes \
                 appended since stay in the spool for the next start",
                self.shared.dir.display()
            ),
            Err(_) => log::warn!(
                "usage spool {}: {left} bytes of usage records not shipped within the {drain:?} \
                 drain; they stay in the spool and are shipped at the next start",
                self.shared.dir.display()
            ),
        }
    }

    /// Nothing durable is left to read or deliver.
    fn caught_up(&self) -> bool {
        self.pending.is_empty() && self.read >= self.durable.borrow().end
    }

    /// One step: gets a batch (when `wait`, waiting for records and lingering briefly for
    /// more), delivers it, and moves the checkpoint; after a failure, waits out the backoff.
    async fn ship_once(&mut self, deliver: &dyn Deliver, wait: bool) {
        let before = self.read;
        if self.fill(wait).await.is_err() {
            tokio::time::sleep(self.backoff.next_delay()).await;
            return;
        }
        if self.pending.is_empty() {
            if self.read > before {
                // only unreadable bytes were passed: they are done with too
                self.commit().await;
            }
            return;
        }
        self.set_lag();
        match deliver.deliver(&self.pending).await {
            Ok(()) => {
                self.shared
                    .metrics
                    .shipped
                    .inc_by(self.pending.len() as u64);
                // before any await: once delivered, a dropped step must not send them again
                self.pending.clear();
                self.commit().await;
                self.backoff.reset();
            }
            Err(e) => {
                self.shared.metrics.delivery_failures.inc();
                let delay = self.backoff.next_delay();
                log::warn!(
                    "usage spool {}: delivering {} records failed: {e}; retrying in {delay:?}",
                    self.shared.dir.display(),
                    self.pending.len()
                );
                tokio::time::sleep(delay).await;
            }
        }
    }

    /// Tops the pending batch up with durable records. When `wait`, an empty batch waits
    /// for records (or for unreadable bytes to pass), and a batch that is not full waits
    /// [`BATCH_LINGER`] for more.
    async fn fill(&mut self, wait: bool) -> Result<(), ()> {
        let start = self.read;
        self.read_durable().await?;
        if !wait {
            return Ok(());
        }
        while self.pending.is_empty() && self.read == start {
            // the sender lives in `shared`, which this shipper holds
            let _ = self.durable.changed().await;
            self.read_durable().await?;
        }
        if self.pending.len() < self.batch_records {
            // one read after the linger, not one per group commit during it: each read is a
            // hop to the blocking pool, a file open and a 64 KiB buffer, and the spool
            // commits every few milliseconds. A backlog of a full batch or more is read at
            // once above, so a busy spool never waits here.
            tokio::time::sleep(BATCH_LINGER).await;
            self.read_durable().await?;
        }
        Ok(())
    }

    /// Reads what is durable past `read`, up to a full batch.
    async fn read_durable(&mut self) -> Result<(), ()> {
        let durable = self.durable.borrow_and_update().end;
        while self.read < durable && self.pending.len() < self.batch_records {
            let limit = if self.read.segment < durable.segment {
                self.shared.sealed_len(self.read.segment)
            } else {
                durable.offset
            };
            if self.read.offset >= limit {
                // a finished segment is read to its end
                self.read = Position {
                    segment: self.read.segment + 1,
                    offset: 0,
                };
                continue;
            }
            let shared = self.shared.clone();
            let path = segments::path(&shared.dir, self.read.segment);
            let (from, max) = (self.read.offset, self.batch_records - self.pending.len());
            let read = tokio::task::spawn_blocking(move || {
                let read = segments::read(&path, from, limit, max, &shared.metrics);
                if let Err(e) = &read {
                    shared.metrics.disk_error(DiskOp::Read);
                    log::error!("usage spool: {e}; retrying");
                }
                read
            })
            .await;
            let Ok(Ok(batch)) = read else {
                return Err(());
            };
            self.pending.extend(batch.records);
            self.read.offset = batch.end;
        }
        Ok(())
    }

    /// Everything before `read` is delivered (or unreadable): moves the checkpoint there.
    async fn commit(&mut self) {
        let shared = self.shared.clone();
        let checkpoint = self.checkpoint.clone();
        let to = self.read;
        // On the blocking pool: fsyncs, renames and deletions. If this future is dropped,
        // the move still completes, and doing it again is a no-op.
        let _ = tokio::task::spawn_blocking(move || advance(&shared, &checkpoint, to)).await;
        self.shared.metrics.lag_seconds.set(0.0);
    }

    /// The age of the oldest record waiting, as the lag gauge.
    fn set_lag(&self) {
        let Some(oldest) = self.pending.first() else {
            return;
        };
        let age = crate::clock::unix_ms().saturating_sub(oldest.timestamp_ms);
        self.shared.metrics.lag_seconds.set(age as f64 / 1000.0);
    }
}

/// Stores the checkpoint at `to`, releases the shipped bytes from the cap, and deletes the
/// segments wholly before `to`. A checkpoint that cannot be written is logged and counted:
/// the records are delivered, so only a restart's redelivery (harmless) depends on it.
///
/// The checkpoint is made durable (two fsyncs) only before segments are deleted, so that
/// no checkpoint a power loss leaves behind points into a deleted segment; the stores in
/// between, one per batch, skip the fsyncs: a power loss may take them back to the last
/// durable one, and what was delivered since is delivered again (the store dedups). That
/// is at most a segment and a batch of records, once, against two fsyncs per batch.
fn advance(shared: &Shared, checkpoint: &Checkpoint, to: Position) {
    let mut shipped = lock(&shared.shipped);
    if to <= *shipped {
        return;
    }
    let durable = shared.has_sealed_before(to.segment);
    if let Err(e) = checkpoint.store(to, durable) {
        shared.metrics.disk_error(DiskOp::Checkpoint);
        log::error!("usage spool checkpoint: {e}; a restart will deliver these records again");
    }
    shared.release(shared.bytes_between(*shipped, to));
    *shipped = to;
    for id in shared.take_sealed_before(to.segment) {
        let path = segments::path(&shared.dir, id);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("deleting shipped spool segment {}: {e}", path.display()),
        }
    }
}
