//! Loading a JSONL billing log (one `UsageRecord` per line, as the usage sink writes it)
//! into a ledger, in batches through [`Ledger::insert`], so importing a file twice (or a
//! file whose records were shipped already) stores each record once.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::{Ledger, LedgerError};
use crate::usage::UsageRecord;

/// Records per insert: the size of the shipper's batches.
const BATCH: usize = 1_000;
/// Malformed lines listed by number at most (all are counted).
const MAX_LISTED: usize = 100;

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Lines read, blank ones included.
    pub lines: u64,
    /// Records the ledger did not hold yet.
    pub inserted: u64,
    /// Lines that are not a usage record (counted, and skipped).
    pub malformed: u64,
    /// The first malformed lines: (line number from 1, why).
    pub malformed_lines: Vec<(u64, String)>,
}

/// Reads the file at `path` and inserts its records, [`BATCH`] at a time. Stops at the
/// first failed insert (the records before it are stored; an import again resumes safely).
pub async fn import_jsonl(ledger: &dyn Ledger, path: &Path) -> Result<ImportReport, LedgerError> {
    let file = File::open(path)
        .map_err(|e| LedgerError::BadInput(format!("import {}: {e}", path.display())))?;
    let mut reader = Some(BufReader::new(file));
    let mut report = ImportReport::default();
    let name = path.display().to_string();
    while let Some(r) = reader.take() {
        // the file is read on the blocking pool, a batch at a time
        let first_line = report.lines + 1;
        let name_for_read = name.clone();
        let (r, chunk) =
            tokio::task::spawn_blocking(move || read_chunk(r, &name_for_read, first_line))
                .await
                .map_err(|e| LedgerError::Store(format!("import {name}: {e}")))??;
        report.lines += chunk.lines;
        for (line, why) in chunk.malformed {
            report.malformed += 1;
            if report.malformed_lines.len() < MAX_LISTED {
                report.malformed_lines.push((line, why));
            }
        }
        if !chunk.records.is_empty() {
            let n = ledger.insert(&chunk.records).await?;
            report.inserted += u64::try_from(n).unwrap_or(u64::MAX);
        }
        if !chunk.at_end {
            reader = Some(r);
        }
    }
    Ok(report)
}

/// Up to [`BATCH`] records read from a file.
struct Chunk {
    records: Vec<UsageRecord>,
    lines: u64,
    malformed: Vec<(u64, String)>,
    at_end: bool,
}

fn read_chunk(
    mut reader: BufReader<File>,
    name: &str,
    first_line: u64,
) -> Result<(BufReader<File>, Chunk), LedgerError> {
    let mut chunk = Chunk {
        records: Vec::with_capacity(BATCH),
        lines: 0,
        malformed: Vec::new(),
        at_end: false,
    };
    let mut line = Vec::new();
    while chunk.records.len() < BATCH {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| LedgerError::Store(format!("import {name}: reading: {e}")))?;
        if n == 0 {
            chunk.at_end = true;
            break;
        }
        let number = first_line + chunk.lines;
        chunk.lines += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<UsageRecord>(&line) {
            Ok(record) => chunk.records.push(record),
            Err(e) => chunk.malformed.push((number, e.to_string())),
        }
    }
    Ok((reader, chunk))
}
