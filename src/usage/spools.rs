//! The spool directory of a gateway: one spool per running process, in numbered slots
//! (`usage-spool/0`, `usage-spool/1`, …), each locked by the process that writes it.
//!
//! Why slots: a graceful upgrade runs the old and the new process side by side for up to
//! the grace period, and two processes must never write one spool. A process started with
//! `--upgrade` takes the next free slot; any other start refuses to run, naming the path,
//! while another process holds a slot of the directory (two instances started from one
//! directory are an operator's mistake, not an upgrade). Records a process left behind (it
//! was upgraded away, or killed) are adopted: every process ships, at start and then every
//! few seconds, the slots no process holds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::ledger::{LedgerDelivery, LedgerHandle};
use crate::spool::metrics::SpoolMetrics;
use crate::spool::{self, Shipper, Spool, SpoolConfig, SpoolError};

/// Slots a directory may have (upgrades reuse freed slots; a handful is plenty).
const MAX_SLOTS: usize = 16;
/// How often slots no process holds are looked for.
const ADOPT_EVERY: Duration = Duration::from_secs(5);
/// How long one adopted slot is shipped before the next round (its remainder waits).
const ADOPT_FOR: Duration = Duration::from_secs(30);

fn slot_dir(root: &Path, slot: usize) -> PathBuf {
    root.join(slot.to_string())
}

fn config(dir: PathBuf, max_bytes: u64) -> SpoolConfig {
    SpoolConfig {
        max_bytes,
        ..SpoolConfig::new(dir)
    }
}

/// Opens this process's spool in `root`: the first slot no process holds (an existing one
/// first: this process ships what it holds), or with none a new one. Without `upgrading`, a
/// slot another process holds is an error naming its path.
pub fn open_own(
    root: &Path,
    max_bytes: u64,
    upgrading: bool,
) -> Result<(Spool, Shipper, PathBuf), SpoolError> {
    std::fs::create_dir_all(root)
        .map_err(|e| SpoolError::Io(format!("creating {}: {e}", root.display())))?;
    let mut chosen = None;
    let mut unused = None;
    for slot in 0..MAX_SLOTS {
        let dir = slot_dir(root, slot);
        if !dir.exists() {
            unused.get_or_insert(dir);
            continue;
        }
        // opened with its own gauges: until it is chosen, it must not report for this process
        let probe = spool::open_with(config(dir.clone(), max_bytes), SpoolMetrics::for_adopted());
        match probe {
            Ok(opened) if chosen.is_none() => {
                // reopened with the process's metrics, once the probe has let the lock go
                drop(opened);
                let (spool, shipper) = spool::open(config(dir.clone(), max_bytes))?;
                chosen = Some((spool, shipper, dir));
            }
            // another slot no process holds: adopted later
            Ok(_) => {}
            Err(locked @ SpoolError::Locked { .. }) if !upgrading => return Err(locked),
            Err(SpoolError::Locked { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    if let Some(own) = chosen {
        return Ok(own);
    }
    let dir = unused.ok_or_else(|| {
        SpoolError::Io(format!(
            "every one of the {MAX_SLOTS} spool slots of {} is held by a running process",
            root.display()
        ))
    })?;
    let (spool, shipper) = spool::open(config(dir.clone(), max_bytes))?;
    Ok((spool, shipper, dir))
}

/// Ships the slots of the spool directory that no process holds (a Pingora background
/// service): what an upgraded or killed process left behind.
pub struct Adopter {
    pub root: PathBuf,
    /// This process's own slot, never adopted.
    pub own: PathBuf,
    pub max_bytes: u64,
    pub ledger: Arc<LedgerHandle>,
}

impl Adopter {
    async fn round(&self) {
        for slot in 0..MAX_SLOTS {
            let dir = slot_dir(&self.root, slot);
            if dir == self.own || !dir.exists() {
                continue;
            }
            let adopted = config(dir.clone(), self.max_bytes);
            let (orphan, shipper) = match spool::open_with(adopted, SpoolMetrics::for_adopted()) {
                Ok(opened) => opened,
                Err(SpoolError::Locked { .. }) => continue,
                Err(e) => {
                    log::warn!("usage spool {}: cannot adopt it: {e}", dir.display());
                    continue;
                }
            };
            if orphan.unshipped_bytes() == 0 {
                continue;
            }
            log::info!(
                "usage spool {}: shipping {} bytes left by a stopped process",
                dir.display(),
                orphan.unshipped_bytes()
            );
            let delivery = Arc::new(LedgerDelivery::new(self.ledger.clone(), &dir));
            // "stop" at once, then drain: ship everything there is, for a bounded time
            shipper
                .run(delivery, std::future::ready(()), ADOPT_FOR)
                .await;
            drop(orphan);
        }
    }
}

#[async_trait]
impl BackgroundService for Adopter {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                () = self.round() => {}
                _ = shutdown.changed() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(ADOPT_EVERY) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cheapai-slots-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn one_process_per_directory_unless_upgrading() {
        let root = root("own");
        let (_a, _ship_a, dir_a) = open_own(&root, 1 << 20, false).unwrap();
        assert!(dir_a.ends_with("0"));
        let e = open_own(&root, 1 << 20, false).unwrap_err();
        assert!(
            matches!(&e, SpoolError::Locked { dir, .. } if dir == &dir_a),
            "{e}"
        );
        assert!(e.to_string().contains(&dir_a.display().to_string()), "{e}");
        let (_b, _ship_b, dir_b) = open_own(&root, 1 << 20, true).unwrap();
        assert!(dir_b.ends_with("1"), "{}", dir_b.display());
        let _ = std::fs::remove_dir_all(&root);
    }
}
