//! Segment files: `<id>.seg`, ids counting up from 1 in the order they were written, each a
//! run of frames. Opening a spool checks every segment left on disk ([`recover`]); the
//! shipper reads frames back from a byte range of one ([`read`]).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::checkpoint::Position;
use super::frame::{self, Decoded, Tail, HEADER};
use super::metrics::SpoolMetrics;
use crate::usage::UsageRecord;

const SUFFIX: &str = ".seg";

/// The file of segment `id`.
pub fn path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}{SUFFIX}"))
}

/// The ids of the segments in `dir`, in order.
fn list(dir: &Path) -> Result<Vec<u64>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("listing {}: {e}", dir.display()))?;
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("listing {}: {e}", dir.display()))?;
        let name = entry.file_name();
        if let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// What an earlier process left in the spool directory.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The length of intact frames of each segment at or after the checkpoint.
    pub sealed: BTreeMap<u64, u64>,
    /// Bytes after the checkpoint.
    pub unshipped: u64,
    /// The id the writer starts with: a fresh segment, so that nothing is ever appended
    /// after a tail this process did not write.
    pub next_segment: u64,
}

/// Deletes the segments wholly before `checkpoint` (shipped; a crash came before their
/// deletion), checks every frame of the others, cuts off a torn tail, and reports
/// corruption.
pub fn recover(
    dir: &Path,
    checkpoint: Position,
    metrics: &SpoolMetrics,
) -> Result<Recovered, String> {
    let mut recovered = Recovered::default();
    let ids = list(dir)?;
    for &id in &ids {
        let path = path(dir, id);
        if id < checkpoint.segment {
            if let Err(e) = fs::remove_file(&path) {
                log::warn!("deleting shipped spool segment {}: {e}", path.display());
            }
            continue;
        }
        let len = recover_segment(&path, metrics)?;
        recovered.sealed.insert(id, len);
    }
    for (&id, &len) in &recovered.sealed {
        let shipped = if id == checkpoint.segment {
            if checkpoint.offset > len {
                log::warn!(
                    "usage spool checkpoint {checkpoint:?} is past the end of segment {} \
                     ({len} bytes): nothing of it is shipped again",
                    path(dir, id).display()
                );
            }
            checkpoint.offset.min(len)
        } else {
            0
        };
        recovered.unshipped += len - shipped;
    }
    let last = ids.last().copied().unwrap_or(0);
    recovered.next_segment = last.max(checkpoint.segment) + 1;
    Ok(recovered)
}

/// Checks one segment and returns the length of its intact frames.
fn recover_segment(path: &Path, metrics: &SpoolMetrics) -> Result<u64, String> {
    let bytes = fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let scan = frame::scan(&bytes);
    let rest = bytes.len() as u64 - scan.valid_len;
    match scan.tail {
        Tail::Clean => {}
        Tail::Torn => {
            log::warn!(
                "usage spool segment {}: cutting a torn tail of {rest} bytes after {} \
                 intact records (a write the previous process did not finish; it was never \
                 acknowledged)",
                path.display(),
                scan.frames
            );
            OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|file| {
                    file.set_len(scan.valid_len)?;
                    file.sync_all()
                })
                .map_err(|e| format!("truncating {}: {e}", path.display()))?;
        }
        Tail::Corrupt => {
            metrics.corrupt_frames.inc();
            log::error!(
                "usage spool segment {}: corrupt frame at byte {} after {} intact records; \
                 the {rest} bytes from there cannot be read and are skipped (the file is \
                 kept for inspection until it is shipped past)",
                path.display(),
                scan.valid_len,
                scan.frames
            );
        }
    }
    Ok(scan.valid_len)
}

/// Records read from a segment.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<UsageRecord>,
    /// The offset after the last frame consumed (read, or skipped as unreadable).
    pub end: u64,
}

/// Reads up to `max` records from the frames of `path` in `[from, to)`, a range of whole,
/// durable frames. A frame that fails its checksum makes the rest of the range unreadable:
/// it is logged, counted and skipped (the end is then `to`), since retrying cannot repair
/// it and stopping would hold every later record back.
pub fn read(
    path: &Path,
    from: u64,
    to: u64,
    max: usize,
    metrics: &SpoolMetrics,
) -> Result<Batch, String> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            metrics.corrupt_frames.inc();
            log::error!(
                "usage spool segment {} is gone: the records in its bytes {from}..{to} are \
                 lost",
                path.display()
            );
            return Ok(Batch {
                records: Vec::new(),
                end: to,
            });
        }
        Err(e) => return Err(format!("opening {}: {e}", path.display())),
    };
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    reader
        .seek(SeekFrom::Start(from))
        .map_err(|e| format!("seeking {} to {from}: {e}", path.display()))?;
    let mut batch = Batch {
        records: Vec::new(),
        end: from,
    };
    let mut buf = Vec::new();
    while batch.end < to && batch.records.len() < max {
        let at = batch.end;
        buf.resize(HEADER, 0);
        reader
            .read_exact(&mut buf)
            .map_err(|e| format!("reading {} at {at}: {e}", path.display()))?;
        let payload_len = u64::from(u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]));
        let frame_end = at + HEADER as u64 + payload_len;
        let frame = if frame_end > to {
            Decoded::Incomplete
        } else {
            buf.resize(HEADER + payload_len as usize, 0);
            reader
                .read_exact(&mut buf[HEADER..])
                .map_err(|e| format!("reading {} at {at}: {e}", path.display()))?;
            frame::decode(&buf)
        };
        let Decoded::Frame { payload, .. } = frame else {
            metrics.corrupt_frames.inc();
            log::error!(
                "usage spool segment {}: corrupt frame at byte {at}; its bytes up to {to} \
                 cannot be read and are skipped",
                path.display()
            );
            batch.end = to;
            break;
        };
        match serde_json::from_slice(payload) {
            Ok(record) => batch.records.push(record),
            Err(e) => {
                metrics.corrupt_frames.inc();
                log::error!(
                    "usage spool segment {}: the frame at byte {at} is intact but not a usage \
                     record ({e}); skipped",
                    path.display()
                );
            }
        }
        batch.end = frame_end;
    }
    Ok(batch)
}
