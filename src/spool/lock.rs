//! One process per spool: an exclusive `flock` on a lock file in the directory, held for
//! the life of the process (the OS releases it when the process dies, however it dies).
//! Two gateways writing one spool would interleave frames and ship each other's records.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::Path;

use super::SpoolError;

const FILE: &str = "LOCK";

/// Locks `dir` for this process; the lock lasts as long as the returned file is open.
pub fn acquire(dir: &Path) -> Result<File, SpoolError> {
    let path = dir.join(FILE);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| SpoolError::Io(format!("opening lock file {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            return Err(SpoolError::Locked {
                dir: dir.to_path_buf(),
                holder: holder.trim().parse().ok(),
            });
        }
        Err(TryLockError::Error(e)) => {
            return Err(SpoolError::Io(format!("locking {}: {e}", path.display())))
        }
    }
    // The holder's pid, for the error another process reports: informative only, the lock
    // itself is the flock.
    let pid = std::process::id().to_string();
    if let Err(e) = file
        .set_len(0)
        .and_then(|()| file.write_all(pid.as_bytes()))
    {
        log::warn!("writing the pid into {}: {e}", path.display());
    }
    Ok(file)
}
