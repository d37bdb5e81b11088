//! What the request path, the writer thread and the shipper share: the queue of encoded
//! frames, the byte accounting the cap applies to, the durable end of the spool, and the
//! final lengths of the segments the writer has finished.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use super::checkpoint::Position;
use super::metrics::SpoolMetrics;
use super::segments::Recovered;

/// The spool's limits, in frame bytes (header and JSON).
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// The hard cap on unshipped bytes (queued plus on disk): an append that would pass it
    /// is refused.
    pub max_bytes: u64,
    /// The hard cap on queued bytes (memory), for a disk that is slow or failing.
    pub queue_bytes: u64,
}

/// Share of each cap kept as headroom: the spool reports itself full (so that the gateway
/// stops admitting billable requests) once this close to a cap, while the records of
/// requests already in flight still fit below the cap. It reports itself no longer full
/// once twice as far below the cap, so that readiness does not flap with every delivery.
pub const HEADROOM_DIVISOR: u64 = 16;

impl Caps {
    fn full_at(cap: u64) -> u64 {
        cap - cap / HEADROOM_DIVISOR
    }

    fn not_full_below(cap: u64) -> u64 {
        cap - 2 * (cap / HEADROOM_DIVISOR)
    }

    /// Whether the counts make the spool full, given whether it was.
    fn full(&self, was_full: bool, unshipped: u64, queued: u64) -> bool {
        if was_full {
            unshipped >= Caps::not_full_below(self.max_bytes)
                || queued >= Caps::not_full_below(self.queue_bytes)
        } else {
            unshipped >= Caps::full_at(self.max_bytes) || queued >= Caps::full_at(self.queue_bytes)
        }
    }
}

/// Encoded frames on their way to the writer thread.
#[derive(Debug, Default)]
pub struct Queue {
    pub frames: Vec<u8>,
    /// Records appended since the spool was opened: the number that [`Durable::records`]
    /// reaches once all of them are on disk.
    pub appended: u64,
    /// Set when the last `Spool` handle goes: the writer writes what is queued and stops.
    pub closing: bool,
    /// The writer is waiting for frames: an append must wake it. Otherwise it comes back
    /// for the queue by itself, and appends skip the wake-up.
    pub writer_idle: bool,
}

/// The end of what is on disk and fsynced.
#[derive(Debug, Clone, Copy, Default)]
pub struct Durable {
    /// Of the records appended since open, how many are durable.
    pub records: u64,
    pub end: Position,
}

pub struct Shared {
    pub dir: PathBuf,
    pub caps: Caps,
    pub metrics: SpoolMetrics,
    queue: Mutex<Queue>,
    pub wake_writer: Condvar,
    /// Queued plus on disk and not shipped: what `max_bytes` caps.
    unshipped: AtomicU64,
    /// Appended and not yet durable (in the queue or being written): what `queue_bytes`
    /// caps.
    queued: AtomicU64,
    full: AtomicBool,
    pub durable: watch::Sender<Durable>,
    /// Final length of each finished segment still on disk, by id.
    sealed: Mutex<BTreeMap<u64, u64>>,
    /// The shipper's durable progress: everything before it is delivered.
    pub shipped: Mutex<Position>,
    /// The directory's lock, held as long as anything of the spool is alive.
    _lock: File,
}

/// Locks a mutex whose holder may have panicked: the data under these locks stays
/// consistent at every step, so it is used as is rather than poisoning the spool.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The state of a spool opened with `recovered` on disk and the shipper's checkpoint at
    /// `shipped`.
    pub fn new(
        dir: PathBuf,
        caps: Caps,
        metrics: SpoolMetrics,
        lock_file: File,
        recovered: Recovered,
        shipped: Position,
    ) -> Self {
        let shared = Shared {
            dir,
            caps,
            metrics,
            queue: Mutex::new(Queue::default()),
            wake_writer: Condvar::new(),
            unshipped: AtomicU64::new(recovered.unshipped),
            queued: AtomicU64::new(0),
            full: AtomicBool::new(false),
            durable: watch::Sender::new(Durable {
                records: 0,
                end: Position {
                    segment: recovered.next_segment,
                    offset: 0,
                },
            }),
            sealed: Mutex::new(recovered.sealed),
            shipped: Mutex::new(shipped),
            _lock: lock_file,
        };
        shared.refresh();
        shared
    }

    pub fn queue(&self) -> MutexGuard<'_, Queue> {
        lock(&self.queue)
    }

    /// Queues one encoded frame unless a cap would be passed. Returns false, queuing
    /// nothing, when it would.
    pub fn push(&self, frame: &[u8]) -> bool {
        let len = frame.len() as u64;
        let wake = {
            let mut queue = self.queue();
            // Appends are serialized by the queue's lock and the shipper only ever lowers
            // `unshipped`, so the checks still hold when the bytes are added.
            let unshipped = self.unshipped.load(Ordering::Acquire);
            let queued = self.queued.load(Ordering::Acquire);
            if unshipped + len > self.caps.max_bytes || queued + len > self.caps.queue_bytes {
                drop(queue);
                self.refresh();
                return false;
            }
            self.unshipped.fetch_add(len, Ordering::AcqRel);
            self.queued.fetch_add(len, Ordering::AcqRel);
            queue.frames.extend_from_slice(frame);
            queue.appended += 1;
            queue.writer_idle
        };
        if wake {
            self.wake_writer.notify_one();
        }
        self.refresh();
        true
    }

    /// `bytes` of queued frames are on disk and fsynced, up to record `records` and
    /// position `end`.
    pub fn wrote(&self, bytes: u64, records: u64, end: Position) {
        self.queued.fetch_sub(bytes, Ordering::AcqRel);
        self.durable.send_modify(|durable| {
            durable.records = records;
            durable.end = end;
        });
        self.refresh();
    }

    /// `bytes` of the spool are shipped (or given up as unreadable).
    pub fn release(&self, bytes: u64) {
        self.unshipped.fetch_sub(bytes, Ordering::AcqRel);
        self.refresh();
    }

    pub fn unshipped(&self) -> u64 {
        self.unshipped.load(Ordering::Acquire)
    }

    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Acquire)
    }

    /// Sets the gauges and the full flag from the byte counts, logging when the spool
    /// fills and when it drains below the cap again.
    fn refresh(&self) {
        loop {
            let was_full = self.full.load(Ordering::Acquire);
            let unshipped = self.unshipped();
            let queued = self.queued.load(Ordering::Acquire);
            self.metrics
                .unshipped_bytes
                .set(i64::try_from(unshipped).unwrap_or(i64::MAX));
            self.metrics
                .queued_bytes
                .set(i64::try_from(queued).unwrap_or(i64::MAX));
            let full = self.caps.full(was_full, unshipped, queued);
            if full == was_full {
                return;
            }
            if self
                .full
                .compare_exchange(was_full, full, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.metrics.full.set(i64::from(full));
                if full {
                    log::error!(
                        "usage spool {} is full: {unshipped} bytes unshipped (cap {}), \
                         {queued} bytes not yet on disk (cap {}); billable requests are to \
                         be refused until the store takes records again",
                        self.dir.display(),
                        self.caps.max_bytes,
                        self.caps.queue_bytes
                    );
                } else {
                    log::warn!(
                        "usage spool {} drained below its cap: {unshipped} bytes unshipped, \
                         {queued} bytes not yet on disk",
                        self.dir.display()
                    );
                }
            }
            // the counts may have moved meanwhile: check again
        }
    }

    /// Records that a finished segment ends at `len`.
    pub fn seal(&self, segment: u64, len: u64) {
        lock(&self.sealed).insert(segment, len);
    }

    /// The final length of a finished segment; 0 for one that is gone or never existed.
    pub fn sealed_len(&self, segment: u64) -> u64 {
        lock(&self.sealed).get(&segment).copied().unwrap_or(0)
    }

    /// Spool bytes from `from` to `to` (`from <= to`, every segment before `to`'s sealed).
    pub fn bytes_between(&self, from: Position, to: Position) -> u64 {
        if from.segment == to.segment {
            return to.offset.saturating_sub(from.offset);
        }
        let sealed = lock(&self.sealed);
        let len = |id: u64| sealed.get(&id).copied().unwrap_or(0);
        let whole: u64 = sealed
            .range(from.segment + 1..to.segment)
            .map(|(_, len)| len)
            .sum();
        len(from.segment).saturating_sub(from.offset) + whole + to.offset
    }

    /// Whether a finished segment before `segment` is still on disk.
    pub fn has_sealed_before(&self, segment: u64) -> bool {
        lock(&self.sealed).range(..segment).next().is_some()
    }

    /// Forgets the finished segments before `segment` and returns their ids, for deletion.
    pub fn take_sealed_before(&self, segment: u64) -> Vec<u64> {
        let mut sealed = lock(&self.sealed);
        let keep = sealed.split_off(&segment);
        let gone = std::mem::replace(&mut *sealed, keep);
        gone.into_keys().collect()
    }

    /// Resolves once every record appended before the call is durable.
    pub async fn flush(&self) {
        let target = self.queue().appended;
        let mut durable = self.durable.subscribe();
        // The sender lives in `self`, so the wait can only end by reaching the target.
        let _ = durable.wait_for(|d| d.records >= target).await;
    }
}

#[cfg(test)]
mod tests {
    use super::Caps;

    #[test]
    fn full_from_15_16ths_of_either_cap_until_back_below_14_16ths() {
        let caps = Caps {
            max_bytes: 1600,
            queue_bytes: 320,
        };
        assert!(!caps.full(false, 1499, 0));
        assert!(caps.full(false, 1500, 0));
        assert!(caps.full(false, 0, 300));
        assert!(caps.full(true, 1400, 0));
        assert!(!caps.full(true, 1399, 0));
        assert!(caps.full(true, 0, 280));
        assert!(!caps.full(true, 1399, 279));
    }
}
