//! How far the shipper got: a position in the spool, kept in a file that is replaced
//! atomically (write a temporary file, rename it over the old one), so that after a crash it
//! holds either the old position or the new one; a durable store also fsyncs the file and
//! the directory, so that a power loss cannot take it back.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A byte in the spool: `offset` into segment `segment`. Positions order as the records do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

const FILE: &str = "checkpoint";
const TEMP: &str = "checkpoint.tmp";

/// The checkpoint file of a spool directory.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    dir: PathBuf,
}

impl Checkpoint {
    pub fn new(dir: &Path) -> Self {
        Checkpoint {
            dir: dir.to_path_buf(),
        }
    }

    /// The stored position; the start of the spool when there is none yet. A checkpoint
    /// that cannot be parsed is logged and read as the start: everything spooled is then
    /// delivered again, which the store's dedup makes harmless, while trusting a damaged
    /// position could skip records.
    pub fn load(&self) -> Result<Position, String> {
        let path = self.dir.join(FILE);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Position::default()),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        match serde_json::from_slice(&text) {
            Ok(position) => Ok(position),
            Err(e) => {
                log::error!(
                    "usage spool checkpoint {} is unreadable ({e}); delivering every spooled \
                     record again",
                    path.display()
                );
                Ok(Position::default())
            }
        }
    }

    /// Replaces the stored position with `position`. When `durable`, it survives a power
    /// loss once this returns; otherwise a power loss may leave an earlier position (or
    /// none, read as the start), and the records after it are delivered again.
    pub fn store(&self, position: Position, durable: bool) -> Result<(), String> {
        let temp = self.dir.join(TEMP);
        let path = self.dir.join(FILE);
        let text =
            serde_json::to_vec(&position).map_err(|e| format!("encoding {position:?}: {e}"))?;
        let mut file =
            File::create(&temp).map_err(|e| format!("creating {}: {e}", temp.display()))?;
        file.write_all(&text)
            .and_then(|()| if durable { file.sync_all() } else { Ok(()) })
            .map_err(|e| format!("writing {}: {e}", temp.display()))?;
        fs::rename(&temp, &path)
            .map_err(|e| format!("renaming {} to {}: {e}", temp.display(), path.display()))?;
        if durable {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// Makes the directory's entries (a created, renamed or deleted file) durable: a file's own
/// fsync does not cover its name.
pub fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("syncing directory {}: {e}", dir.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::spool::tests::TempDir;

    #[test]
    fn stores_and_loads_and_starts_at_zero() {
        let dir = TempDir::new("checkpoint");
        let checkpoint = Checkpoint::new(dir.path());
        assert_eq!(checkpoint.load().unwrap(), Position::default());
        let at = Position {
            segment: 3,
            offset: 1234,
        };
        checkpoint.store(at, true).unwrap();
        assert_eq!(Checkpoint::new(dir.path()).load().unwrap(), at);
        let later = Position {
            segment: 3,
            offset: 5678,
        };
        checkpoint.store(later, false).unwrap();
        assert_eq!(Checkpoint::new(dir.path()).load().unwrap(), later);
        assert!(!dir.path().join(TEMP).exists());
    }

    #[test]
    fn a_damaged_checkpoint_reads_as_the_start() {
        let dir = TempDir::new("checkpoint-damaged");
        fs::write(dir.path().join(FILE), b"{\"segment\":3,\"off").unwrap();
        assert_eq!(
            Checkpoint::new(dir.path()).load().unwrap(),
            Position::default()
        );
    }
}
