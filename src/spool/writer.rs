//! The writer thread: group commit. It takes every frame queued since its last commit,
//! writes them in one `pwrite` to the current segment and makes them durable with one
//! `fdatasync`, so one fsync covers all the records that arrived meanwhile. A thread of its
//! own, because this blocking I/O must never run on a proxy worker.
//!
//! Commits start at most once per `commit_interval`: that caps the fsync rate, and bounds
//! what a power loss can take to the records of the last `commit_interval` plus one write
//! and fsync (records are only acknowledged as durable, through `flush`, after their fsync).
//!
//! A failed write or fsync is logged with the path and the OS error, counted, and retried
//! with backoff; the records stay queued (counted against the caps) until they are durable.
//! After a failure the segment is cut back to its last durable length, so the retry writes
//! the same bytes again: after a failed fsync the kernel may have dropped the written pages
//! while reporting later fsyncs clean, so they are never trusted. If the cut fails too, the
//! segment is finished at its durable length and the retry goes to a new one.
//!
//! A full disk (ENOSPC) is such a failure. Records then wait in memory up to the queue's
//! cap, after which appends are refused and the spool reports itself full. The spool's own
//! disk use is bounded (the unshipped-bytes cap plus the segment being written), so a cap
//! below the free space keeps the spool from causing ENOSPC; when something else fills the
//! disk, shipping still deletes shipped segments, which gives space back, and the queued
//! records are written as soon as a retry succeeds.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::checkpoint::{sync_dir, Position};
use super::metrics::DiskOp;
use super::segments;
use super::state::Shared;

/// First and longest wait before retrying a failed write.
const RETRY_MIN: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_secs(1);
/// How long the writer keeps retrying a failing disk once the spool is closed, before it
/// gives the queued records up (logged): a process stopping must not hang on a dead disk.
const CLOSE_RETRIES_FOR: Duration = Duration::from_secs(5);

/// The segment being written.
struct Active {
    id: u64,
    path: PathBuf,
    file: File,
    /// Bytes of it that are durable.
    len: u64,
}

struct Writer {
    shared: Arc<Shared>,
    segment_bytes: u64,
    commit_interval: Duration,
    active: Option<Active>,
    next_segment: u64,
}

/// Starts the writer thread; it ends once the queue is closed and written.
pub fn spawn(
    shared: Arc<Shared>,
    first_segment: u64,
    segment_bytes: u64,
    commit_interval: Duration,
) -> std::io::Result<JoinHandle<()>> {
    let writer = Writer {
        shared,
        segment_bytes,
        commit_interval,
        active: None,
        next_segment: first_segment,
    };
    std::thread::Builder::new()
        .name("usage-spool".into())
        .spawn(move || writer.run())
}

impl Writer {
    fn run(mut self) {
        // Double buffering: the queue fills one vector while this thread writes the other.
        let mut batch: Vec<u8> = Vec::new();
        let mut backoff = Backoff::new(RETRY_MIN, RETRY_MAX);
        let mut next_commit = Instant::now();
        let mut give_up_at: Option<Instant> = None;
        loop {
            let closing = {
                let mut queue = self.shared.queue();
                while batch.is_empty() && queue.frames.is_empty() && !queue.closing {
                    queue.writer_idle = true;
                    queue = self
                        .shared
                        .wake_writer
                        .wait(queue)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                queue.writer_idle = false;
                if batch.is_empty() && queue.frames.is_empty() {
                    return;
                }
                queue.closing
            };
            let now = Instant::now();
            if now < next_commit && !closing {
                self.pause(next_commit - now);
            }
            // the records appended so far, all in `batch` once it is taken
            let batch_records = {
                let mut queue = self.shared.queue();
                if batch.is_empty() {
                    std::mem::swap(&mut batch, &mut queue.frames);
                } else {
                    batch.extend_from_slice(&queue.frames);
                    queue.frames.clear();
                }
                queue.appended
            };
            next_commit = Instant::now() + self.commit_interval;
            match self.commit(&batch) {
                Some(end) => {
                    self.shared.wrote(batch.len() as u64, batch_records, end);
                    batch.clear();
                    backoff.reset();
                }
                None if closing => {
                    let give_up = *give_up_at.get_or_insert(now + CLOSE_RETRIES_FOR);
                    if Instant::now() >= give_up {
                        let queue = self.shared.queue();
                        log::error!(
                            "usage spool {}: closing, and the disk still fails after {:?} of \
                             retries; {} bytes of usage records were never written ({} \
                             records appended since the spool was opened, {} of them durable)",
                            self.shared.dir.display(),
                            CLOSE_RETRIES_FOR,
                            batch.len() + queue.frames.len(),
                            queue.appended,
                            self.shared.durable.borrow().records
                        );
                        return;
                    }
                    std::thread::sleep(backoff.next_delay());
                }
                None => self.pause(backoff.next_delay()),
            }
        }
    }

    /// Waits `duration`, or less when the spool is closed meanwhile.
    fn pause(&self, duration: Duration) {
        let queue = self.shared.queue();
        let _ = self
            .shared
            .wake_writer
            .wait_timeout_while(queue, duration, |queue| !queue.closing);
    }

    /// Writes and fsyncs `batch` at the end of the current segment (a new one when it is
    /// full); returns the durable end. Failures are logged and counted here.
    fn commit(&mut self, batch: &[u8]) -> Option<Position> {
        if self
            .active
            .as_ref()
            .is_some_and(|a| a.len >= self.segment_bytes)
        {
            self.finish_segment();
        }
        if self.active.is_none() {
            self.active = Some(self.create_segment()?);
        }
        let active = self.active.as_mut()?;
        if let Err(e) = active.file.write_all_at(batch, active.len) {
            self.failed(DiskOp::Write, &e);
            return None;
        }
        let started = Instant::now();
        if let Err(e) = active.file.sync_data() {
            self.failed(DiskOp::Fsync, &e);
            return None;
        }
        self.shared
            .metrics
            .fsync_seconds
            .observe(started.elapsed().as_secs_f64());
        active.len += batch.len() as u64;
        Some(Position {
            segment: active.id,
            offset: active.len,
        })
    }

    /// Logs and counts a failed write or fsync, then cuts the segment back to its durable
    /// length (or, when that fails too, finishes it there).
    fn failed(&mut self, op: DiskOp, error: &std::io::Error) {
        self.shared.metrics.disk_error(op);
        let Some(active) = &self.active else { return };
        log::error!(
            "usage spool: {} of {} failed: {error}; the records stay queued and are retried",
            op.label(),
            active.path.display()
        );
        if let Err(e) = active.file.set_len(active.len) {
            self.shared.metrics.disk_error(DiskOp::Truncate);
            log::error!(
                "usage spool: cutting {} back to {} bytes failed: {e}; continuing in a new \
                 segment",
                active.path.display(),
                active.len
            );
            self.finish_segment();
        }
    }

    fn finish_segment(&mut self) {
        if let Some(active) = self.active.take() {
            self.shared.seal(active.id, active.len);
        }
    }

    fn create_segment(&mut self) -> Option<Active> {
        let id = self.next_segment;
        let path = segments::path(&self.shared.dir, id);
        let opened = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("creating {}: {e}", path.display()))
            .and_then(|file| sync_dir(&self.shared.dir).map(|()| file));
        match opened {
            Ok(file) => {
                self.next_segment += 1;
                Some(Active {
                    id,
                    path,
                    file,
                    len: 0,
                })
            }
            Err(e) => {
                self.shared.metrics.disk_error(DiskOp::Open);
                log::error!("usage spool: {e}; the records stay queued and are retried");
                None
            }
        }
    }
}
