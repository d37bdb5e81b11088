//! The usage ledger's write-ahead spool: every usage record is appended to local segment
//! files first, and a [`Shipper`] delivers them from there to the store, at least once, so
//! that no record is lost to a full channel, a store outage, the end of a shutdown's grace
//! period, or a crash. The store dedups by request id.
//!
//! - The request path only queues ([`Spool::append`]: encode, a short lock, no I/O). A
//!   writer thread group-commits the queue: one write and one `fdatasync` for everything
//!   queued, at most once per `commit_interval` (see `writer.rs`). A power loss can take the
//!   records of the last commit interval plus one write and fsync; [`Spool::flush`] tells
//!   when records are past that.
//! - Frames carry a length and a CRC-32 (`frame.rs`); opening a spool checks every segment,
//!   cuts a torn tail and reports corruption (`segments.rs`).
//! - The cap ([`SpoolConfig::max_bytes`]) is on unshipped bytes: frames queued in memory
//!   plus frames on disk after the shipper's checkpoint (a shipped segment's space is freed
//!   when the checkpoint leaves it; the segment being written stays until it is finished,
//!   so the disk holds at most one segment more than the cap). The queue in memory has a
//!   cap of its own ([`SpoolConfig::queue_bytes`]) for a disk that stalls. An append that
//!   would pass either cap is refused. The spool reports itself full ([`Spool::is_full`])
//!   already at 15/16 of a cap: the gateway then stops admitting billable requests, and the
//!   last 1/16 is headroom for the records of requests already in flight. It reports itself
//!   full until it is back below 14/16, so that readiness does not flap.
//! - One process per directory (`lock.rs`).

mod backoff;
mod checkpoint;
mod frame;
mod lock;
pub mod metrics;
mod segments;
mod shipper;
mod state;
mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;

pub use shipper::Shipper;

use crate::usage::UsageRecord;
use metrics::SpoolMetrics;
use state::{lock as lock_mutex, Caps, Shared};

/// Where and how a spool keeps its records.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// The spool's directory, created if missing.
    pub dir: PathBuf,
    /// The cap on unshipped bytes (queued plus on disk).
    pub max_bytes: u64,
    /// The cap on bytes queued in memory and not yet on disk.
    pub queue_bytes: u64,
    /// The shortest time between two group commits (fsyncs): the fsync rate's cap and,
    /// with one write and fsync, the window a power loss can take.
    pub commit_interval: Duration,
    /// A segment is finished once it reaches this size (the last write may pass it).
    pub segment_bytes: u64,
    /// Most records per delivery.
    pub batch_records: usize,
}

impl SpoolConfig {
    /// The defaults: 1 GiB cap (about 2.5 million records of ~400 bytes), 16 MiB queue,
    /// a commit at most every 5 ms, 4 MiB segments, batches of up to 1000 records.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SpoolConfig {
            dir: dir.into(),
            max_bytes: 1 << 30,
            queue_bytes: 16 << 20,
            commit_interval: Duration::from_millis(5),
            segment_bytes: 4 << 20,
            batch_records: 1000,
        }
    }
}

/// Why a spool could not be opened.
#[derive(Debug)]
pub enum SpoolError {
    /// Another process holds the directory's lock.
    Locked {
        dir: PathBuf,
        holder: Option<u32>,
    },
    Config(String),
    Io(String),
}

impl std::fmt::Display for SpoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpoolError::Locked { dir, holder } => {
                write!(
                    f,
                    "usage spool directory {} is locked by another process",
                    dir.display()
                )?;
                if let Some(pid) = holder {
                    write!(f, " (pid {pid})")?;
                }
                f.write_str(": two processes must never share one spool")
            }
            SpoolError::Config(e) => write!(f, "usage spool config: {e}"),
            SpoolError::Io(e) => write!(f, "usage spool: {e}"),
        }
    }
}

impl std::error::Error for SpoolError {}

/// Why a record was not appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendError {
    /// A cap is reached; nothing was queued.
    Full,
    /// The record could not be encoded (not expected of a `UsageRecord`).
    Encode(String),
}

impl std::fmt::Display for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppendError::Full => f.write_str("usage spool is full"),
            AppendError::Encode(e) => write!(f, "usage spool: encoding {e}"),
        }
    }
}

impl std::error::Error for AppendError {}

/// A failed delivery, as the store reports it. Its text is logged: it must never hold a
/// secret (a database URL with its password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverError(pub String);

impl std::fmt::Display for DeliverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeliverError {}

/// Where the shipper delivers records: the store.
#[async_trait]
pub trait Deliver: Send + Sync {
    /// Stores a batch; Ok only when it is durably stored. Re-sending a batch is harmless.
    async fn deliver(&self, batch: &[UsageRecord]) -> Result<(), DeliverError>;
}

/// The spool's writing end: cheap to clone, usable from any thread (`append`) and any
/// tokio runtime (`flush`). When the last clone is dropped, the writer thread writes what
/// is queued and stops (the drop waits for it: a final fsync, or up to a few seconds of
/// retries on a failing disk).
#[derive(Clone)]
pub struct Spool {
    handle: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.queue().closing = true;
        self.shared.wake_writer.notify_one();
        if let Some(writer) = lock_mutex(&self.writer).take() {
            if writer.join().is_err() {
                log::error!(
                    "usage spool {}: the writer thread panicked",
                    self.shared.dir.display()
                );
            }
        }
    }
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.handle.shared.dir)
            .field("unshipped_bytes", &self.unshipped_bytes())
            .field("full", &self.is_full())
            .finish()
    }
}

impl Spool {
    /// Queues `r` for the writer thread; never waits on the disk. Refused, with nothing
    /// queued, when it would pass a cap.
    pub fn append(&self, r: &UsageRecord) -> Result<(), AppendError> {
        let shared = &self.handle.shared;
        let mut frame = Vec::with_capacity(512);
        frame::encode(r, &mut frame).map_err(|e| {
            shared.metrics.refused.inc();
            log::error!("usage spool: {e}");
            AppendError::Encode(e)
        })?;
        if shared.push(&frame) {
            shared.metrics.appended.inc();
            Ok(())
        } else {
            shared.metrics.refused.inc();
            Err(AppendError::Full)
        }
    }

    /// The spool is close to a cap: new billable requests should be refused (the records
    /// of those in flight still fit).
    pub fn is_full(&self) -> bool {
        self.handle.shared.is_full()
    }

    /// Resolves once every record appended before the call is on disk and fsynced.
    pub async fn flush(&self) {
        self.handle.shared.flush().await;
    }

    /// Bytes appended and not yet shipped (queued plus on disk): what the cap applies to.
    pub fn unshipped_bytes(&self) -> u64 {
        self.handle.shared.unshipped()
    }
}

/// Opens (creating if missing) and locks the spool directory, recovers what an earlier
/// process left there, and starts the writer thread. The shipper delivers everything after
/// the checkpoint, including what was spooled before a crash.
pub fn open(config: SpoolConfig) -> Result<(Spool, Shipper), SpoolError> {
    open_with(config, metrics::SPOOL.clone())
}

/// [`open`] with its own metric handles (see [`SpoolMetrics::for_adopted`]).
pub fn open_with(
    config: SpoolConfig,
    metrics: SpoolMetrics,
) -> Result<(Spool, Shipper), SpoolError> {
    if config.max_bytes == 0
        || config.queue_bytes == 0
        || config.segment_bytes == 0
        || config.batch_records == 0
    {
        return Err(SpoolError::Config(format!(
            "max_bytes, queue_bytes, segment_bytes and batch_records must be above 0: {config:?}"
        )));
    }
    let dir = config.dir;
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir)
            .map_err(|e| SpoolError::Io(format!("creating {}: {e}", dir.display())))?;
        // the new directory's own name must survive a power loss too
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            checkpoint::sync_dir(parent).map_err(SpoolError::Io)?;
        }
    }
    let lock_file = lock::acquire(&dir)?;
    let shipped = checkpoint::Checkpoint::new(&dir)
        .load()
        .map_err(SpoolError::Io)?;
    let recovered = segments::recover(&dir, shipped, &metrics).map_err(SpoolError::Io)?;
    let first_segment = recovered.next_segment;
    if recovered.unshipped > 0 {
        log::info!(
            "usage spool {}: {} bytes of usage records in {} segments left by an earlier run \
             are to be shipped",
            dir.display(),
            recovered.unshipped,
            recovered.sealed.len()
        );
    }
    let caps = Caps {
        max_bytes: config.max_bytes,
        queue_bytes: config.queue_bytes,
    };
    let shared = Arc::new(Shared::new(
        dir.clone(),
        caps,
        metrics,
        lock_file,
        recovered,
        shipped,
    ));
    let writer = writer::spawn(
        shared.clone(),
        first_segment,
        config.segment_bytes,
        config.commit_interval,
    )
    .map_err(|e| {
        SpoolError::Io(format!(
            "starting the writer thread of {}: {e}",
            dir.display()
        ))
    })?;
    let shipper = Shipper::new(shared.clone(), shipped, config.batch_records);
    let spool = Spool {
        handle: Arc::new(Handle {
            shared,
            writer: Mutex::new(Some(writer)),
        }),
    };
    Ok((spool, shipper))
}
