//! Daily partitions of the records and of the rollups, made ahead and dropped whole.
//!
//! Why daily: at the target volume (~33 million records a day) one day's partition is ~6 GB
//! with its index; the B-tree that every insert lands in (the current day's) then stays small
//! enough to be cached, where a weekly partition's would grow to ~7× that by the end of each
//! week. Retention drops a day at a time. The cost, planning over more partitions, is
//! measured by the bench (paging a key over 30+ partitions).
//!
//! A partition is named after its UTC day (`ledger_records_20241202`, `ledger_rollups_…`),
//! and its bounds follow from the name. Creating and dropping take a transaction advisory
//! lock, so instances doing it at once never race on the catalog.

use std::collections::BTreeSet;
use std::sync::Mutex;

use super::connect::{error, Lease};
use crate::ledger::totals::{day_name, DAY_MS};
use crate::ledger::LedgerError;

/// The advisory lock key of partition changes ("ledger" in ASCII, then 2).
const PARTITION_LOCK: i64 = 0x6c65_6467_6572_0002;
/// Days made ahead of today, at open and at each retention pass, so the day change never
/// waits for a partition to be made.
pub const DAYS_AHEAD: i64 = 3;

/// The day number (days since 1970-01-01 UTC) of a Unix-millisecond time.
pub fn day_of(timestamp_ms: i64) -> i64 {
    timestamp_ms.div_euclid(DAY_MS)
}

/// `20241202` for the day of 2024-12-02.
fn suffix(day: i64) -> String {
    day_name(day).replace('-', "")
}

/// The day of a partition named by [`suffix`] (`None` for any other name).
fn day_of_name(name: &str) -> Option<i64> {
    let digits = name
        .strip_prefix("ledger_records_")
        .or_else(|| name.strip_prefix("ledger_rollups_"))?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let text = format!(
        "{}-{}-{}T00:00:00Z",
        &digits[..4],
        &digits[4..6],
        &digits[6..]
    );
    let t = humantime::parse_rfc3339(&text).ok()?;
    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs / 86_400).ok()
}

/// The statements that make `day`'s two partitions (records by ms, rollups by hour).
fn create_sql(day: i64) -> String {
    let s = suffix(day);
    let (from, to) = (day * DAY_MS, (day + 1) * DAY_MS);
    let (from_h, to_h) = (day * 24, (day + 1) * 24);
    format!(
        "CREATE TABLE IF NOT EXISTS ledger_records_{s} PARTITION OF ledger_records \
         FOR VALUES FROM ({from}) TO ({to}); \
         CREATE TABLE IF NOT EXISTS ledger_rollups_{s} PARTITION OF ledger_rollups \
         FOR VALUES FROM ({from_h}) TO ({to_h});"
    )
}

/// The partitions this process knows exist, so a batch checks its days without a query.
pub struct Partitions {
    known: Mutex<BTreeSet<i64>>,
}

impl Partitions {
    pub fn new() -> Self {
        Self {
            known: Mutex::new(BTreeSet::new()),
        }
    }

    fn known(&self) -> Result<std::sync::MutexGuard<'_, BTreeSet<i64>>, LedgerError> {
        self.known
            .lock()
            .map_err(|_| LedgerError::Store("partition list lock poisoned".into()))
    }

    /// Forgets what is known (another instance may have dropped a partition).
    pub fn forget(&self) -> Result<(), LedgerError> {
        self.known()?.clear();
        Ok(())
    }

    /// Makes sure the partitions of `days` exist, making the missing ones.
    pub async fn ensure(
        &self,
        lease: &mut Lease,
        name: &str,
        days: &BTreeSet<i64>,
    ) -> Result<(), LedgerError> {
        let missing: Vec<i64> = {
            let known = self.known()?;
            days.iter()
                .filter(|d| !known.contains(d))
                .copied()
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let client = lease.client()?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| error(name, "partitions", e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
            .await
            .map_err(|e| error(name, "partition lock", e))?;
        let sql: String = missing.iter().map(|d| create_sql(*d)).collect();
        tx.batch_execute(&sql)
            .await
            .map_err(|e| error(name, "creating partitions", e))?;
        tx.commit()
            .await
            .map_err(|e| error(name, "creating partitions", e))?;
        self.known()?.extend(missing);
        Ok(())
    }

    /// Reads the days whose partitions exist into what is known; returns them.
    pub async fn load(&self, lease: &mut Lease, name: &str) -> Result<BTreeSet<i64>, LedgerError> {
        let rows = lease
            .client()?
            .query(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 WHERE i.inhparent = 'ledger_records'::regclass",
                &[],
            )
            .await
            .map_err(|e| error(name, "listing partitions", e))?;
        let days: BTreeSet<i64> = rows
            .iter()
            .filter_map(|r| r.try_get::<_, String>(0).ok())
            .filter_map(|n| day_of_name(&n))
            .collect();
        *self.known()? = days.clone();
        Ok(days)
    }

    /// Drops the partitions of the days before `cutoff_day` (records and rollups); returns
    /// the names of the record partitions dropped.
    pub async fn drop_before(
        &self,
        lease: &mut Lease,
        name: &str,
        cutoff_day: i64,
    ) -> Result<Vec<String>, LedgerError> {
        let old: Vec<i64> = self
            .load(lease, name)
            .await?
            .range(..cutoff_day)
            .copied()
            .collect();
        if old.is_empty() {
            return Ok(Vec::new());
        }
        let client = lease.client()?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| error(name, "retention", e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
            .await
            .map_err(|e| error(name, "partition lock", e))?;
        let sql: String = old
            .iter()
            .map(|d| {
                let s = suffix(*d);
                format!("DROP TABLE IF EXISTS ledger_records_{s}, ledger_rollups_{s};")
            })
            .collect();
        tx.batch_execute(&sql)
            .await
            .map_err(|e| error(name, "dropping partitions", e))?;
        tx.commit()
            .await
            .map_err(|e| error(name, "dropping partitions", e))?;
        let mut known = self.known()?;
        for d in &old {
            known.remove(d);
        }
        Ok(old
            .iter()
            .map(|d| format!("ledger_records_{}", suffix(*d)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_named_after_their_utc_day() {
        assert_eq!(suffix(0), "19700101");
        assert_eq!(suffix(20_059), "20241202");
        assert_eq!(day_of_name("ledger_records_20241202"), Some(20_059));
        assert_eq!(day_of_name("ledger_rollups_19700101"), Some(0));
        for other in [
            "ledger_records",
            "ledger_records_2024120",
            "ledger_records_2024-12-02",
            "ledger_records_20241340",
            "other_20241202",
        ] {
            assert_eq!(day_of_name(other), None, "{other}");
        }
    }

    #[test]
    fn a_day_covers_its_milliseconds_and_hours() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(DAY_MS), 1);
        let sql = create_sql(2);
        assert!(sql.contains("ledger_records_19700103 PARTITION OF ledger_records FOR VALUES FROM (172800000) TO (259200000)"), "{sql}");
        assert!(
            sql.contains(
                "ledger_rollups_19700103 PARTITION OF ledger_rollups FOR VALUES FROM (48) TO (72)"
            ),
            "{sql}"
        );
    }
}
