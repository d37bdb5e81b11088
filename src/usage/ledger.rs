//! The usage ledger as the gateway runs it: every record is appended to the spool by the
//! request that made it, a background service ships the spool to the store, another keeps
//! the store within its retention, and the usage API reads the store.
//!
//! The store is opened lazily and again after a failed open: a PostgreSQL that is down when
//! the gateway starts must not stop it from serving (records wait in the spool), and the
//! first delivery applies the migrations at start.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::Mutex;

use super::UsageRecord;
use crate::ledger::{self, Ledger, LedgerError, LedgerOptions, StoreConfig};
use crate::spool::{AppendError, Deliver, DeliverError, Shipper, Spool};

/// How long the shipper keeps shipping after the last request of a graceful stop ended;
/// what is left stays in the spool for the next start.
const SHIP_ON_STOP: Duration = Duration::from_secs(5);
/// How often old records and expired responses are dropped (the first time right after start).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Where records the store refuses as bad input are set aside, in the spool directory.
const QUARANTINE_FILE: &str = "rejected.jsonl";

/// The store, opened on first use.
pub struct LedgerHandle {
    config: StoreConfig,
    options: LedgerOptions,
    opened: tokio::sync::OnceCell<Arc<dyn Ledger>>,
}

impl LedgerHandle {
    pub fn new(config: StoreConfig, retention_days: u32) -> Self {
        Self {
            config,
            options: LedgerOptions::new(retention_days),
            opened: tokio::sync::OnceCell::new(),
        }
    }

    /// The store, opening it (and applying its migrations) when that has not succeeded yet.
    pub async fn get(&self) -> Result<Arc<dyn Ledger>, LedgerError> {
        self.opened
            .get_or_try_init(|| ledger::open_with(&self.config, &self.options))
            .await
            .cloned()
    }
}

/// Appends a finished request's record to the spool. The spool refuses only past its cap,
/// which the gateway keeps requests from reaching (it stops admitting billable requests
/// before, see [`Spool::is_full`]); a record refused all the same is written whole to the
/// error log, the last place it can be recovered from, and counted.
pub fn spool_record(spool: &Spool, record: &UsageRecord) {
    if let Err(e) = spool.append(record) {
        let json = serde_json::to_string(record).unwrap_or_default();
        match e {
            AppendError::Full => log::error!(
                "usage spool full: record {} NOT spooled, billing must recover it from this \
                 line: {json}",
                record.request_id
            ),
            AppendError::Encode(why) => log::error!(
                "usage record {} NOT spooled ({why}): {json}",
                record.request_id
            ),
        }
    }
}

/// Delivers spooled batches to the store. A batch the store refuses as bad input (a value
/// out of a column's range) would be refused forever and stop the spool: it is split until
/// the records at fault are found, and those are set aside in the spool directory's
/// `rejected.jsonl` (logged and counted) so that every other record is delivered.
pub struct LedgerDelivery {
    ledger: Arc<LedgerHandle>,
    quarantine: PathBuf,
}

impl LedgerDelivery {
    pub fn new(ledger: Arc<LedgerHandle>, spool_dir: &std::path::Path) -> Self {
        Self {
            ledger,
            quarantine: spool_dir.join(QUARANTINE_FILE),
        }
    }

    /// Inserts `batch`; on bad input, each half on its own, down to single records.
    async fn insert(&self, ledger: &dyn Ledger, batch: &[UsageRecord]) -> Result<(), LedgerError> {
        let mut stack = vec![batch];
        while let Some(part) = stack.pop() {
            match ledger.insert(part).await {
                Ok(_) => {}
                Err(LedgerError::BadInput(why)) if part.len() == 1 => {
                    self.set_aside(&part[0], &why);
                }
                Err(LedgerError::BadInput(_)) => {
                    let (a, b) = part.split_at(part.len() / 2);
                    stack.push(b);
                    stack.push(a);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn set_aside(&self, record: &UsageRecord, why: &str) {
        crate::metrics::USAGE_REJECTED.inc();
        let written = serde_json::to_string(record)
            .map_err(std::io::Error::other)
            .and_then(|json| {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.quarantine)?;
                f.write_all(json.as_bytes())?;
                f.write_all(b"\n")?;
                f.sync_data()
            });
        match written {
            Ok(()) => log::error!(
                "usage record {} refused by the store ({why}); set aside in {}",
                record.request_id,
                self.quarantine.display()
            ),
            Err(e) => log::error!(
                "usage record {} refused by the store ({why}) and not set aside ({e}): {}",
                record.request_id,
                serde_json::to_string(record).unwrap_or_default()
            ),
        }
    }
}

#[async_trait]
impl Deliver for LedgerDelivery {
    async fn deliver(&self, batch: &[UsageRecord]) -> Result<(), DeliverError> {
        let ledger = self
            .ledger
            .get()
            .await
            .map_err(|e| DeliverError(e.to_string()))?;
        self.insert(ledger.as_ref(), batch)
            .await
            .map_err(|e| DeliverError(e.to_string()))
    }
}

/// Ships the spool to the store until the process stops (a Pingora background service).
/// On a graceful stop it keeps shipping until the last request has ended, then ships what
/// is left for at most [`SHIP_ON_STOP`]; the process's early exit waits for it.
pub struct ShipperService {
    shipper: Mutex<Option<Shipper>>,
    delivery: Arc<LedgerDelivery>,
}

impl ShipperService {
    pub fn new(shipper: Shipper, delivery: Arc<LedgerDelivery>) -> Self {
        Self {
            shipper: Mutex::new(Some(shipper)),
            delivery,
        }
    }
}

#[async_trait]
impl BackgroundService for ShipperService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let _last_ship = crate::drain::hold();
        let Some(shipper) = self.shipper.lock().await.take() else {
            return;
        };
        // open the store (and apply its migrations) now rather than at the first record
        if let Err(e) = self.delivery.ledger.get().await {
            log::warn!("usage ledger not reachable at start ({e}); records wait in the spool");
        }
        let stopping = async move {
            let _ = shutdown.changed().await;
            crate::drain::requests_done().await;
        };
        shipper
            .run(self.delivery.clone(), stopping, SHIP_ON_STOP)
            .await;
    }
}

/// Drops records older than the retention, and stored responses past their expiry, at start
/// and every hour.
pub struct RetentionService {
    pub ledger: Arc<LedgerHandle>,
}

#[async_trait]
impl BackgroundService for RetentionService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            match self.ledger.get().await {
                Ok(ledger) => {
                    let now = crate::clock::unix_ms();
                    match ledger.enforce_retention(now).await {
                        Ok(r) if !r.partitions_dropped.is_empty() || r.rows_deleted > 0 => {
                            log::info!(
                                "usage ledger retention: {} partitions dropped, {} records \
                                 deleted",
                                r.partitions_dropped.len(),
                                r.rows_deleted
                            )
                        }
                        Ok(_) => {}
                        Err(e) => log::warn!("usage ledger retention: {e}"),
                    }
                    // reads skip expired responses already; this gives their space back
                    match ledger.purge_responses(now).await {
                        Ok(0) => {}
                        Ok(n) => log::info!("stored responses expired: {n} deleted"),
                        Err(e) => log::warn!("stored responses purge: {e}"),
                    }
                }
                Err(e) => log::debug!("usage ledger retention postponed: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(RETENTION_EVERY) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
