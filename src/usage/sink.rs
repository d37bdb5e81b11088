//! Where usage records go: off the request path through a bounded channel to one task that
//! writes them in batches to the history store (Redis, or an in-memory ring per key) and to
//! the optional JSONL billing log.
//!
//! Nothing here ever blocks a request: a full channel sends the record straight to the JSONL
//! log (and counts it), a failing store is counted and logged while JSONL keeps the record.
//! On shutdown the task keeps draining until no request is in flight.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::mpsc;

use super::totals::{day_of, days_touched, Totals, KEEP_DAYS};
use super::UsageRecord;
use crate::metrics;

/// Records waiting for the writer task at most; beyond it they bypass to JSONL.
const CHANNEL_CAPACITY: usize = 16_384;
/// Most records written in one batch.
const BATCH: usize = 512;
/// Pause after each write so that, under load, records gather into batches: at most one
/// write per interval instead of one per handful of records (each write is a Redis pipeline
/// with its per-day totals). An idle gateway still writes a lone record at once; a full
/// batch is followed by the next one without a pause, so the pause never caps throughput.
const LINGER: Duration = Duration::from_millis(10);

/// One page of a key's records, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub records: Vec<UsageRecord>,
    /// More records of the range are older than the page.
    pub has_more: bool,
}

/// A per-key usage history: the records (capped per key) and per-day totals, so a reader
/// reads only the page it lists and takes its totals from the day sums.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Appends records (already in time order) and adds them to their day's totals.
    async fn append(&self, batch: &[UsageRecord]) -> Result<(), String>;
    /// The key's newest `limit` records with `from_ms <= timestamp_ms < to_ms`, newest
    /// first, reading no more records than that (the range is applied by the store).
    async fn query(
        &self,
        key_id: &str,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Page, String>;
    /// The key's totals over the whole UTC days that `[from_ms, to_ms)` touches (at most
    /// [`KEEP_DAYS`] back), from the per-day totals: never by reading records.
    async fn totals(&self, key_id: &str, from_ms: u64, to_ms: u64) -> Result<Totals, String>;
}

/// One key's history in process.
#[derive(Default)]
struct KeyHistory {
    records: VecDeque<UsageRecord>,
    /// Totals per day number, the last [`KEEP_DAYS`] before the newest day seen.
    days: BTreeMap<u64, Totals>,
}

/// The history kept in process (single instance, no Redis): the last `cap` records per key,
/// and per-day totals of every record appended.
pub struct MemoryStore {
    cap: usize,
    per_key: Mutex<HashMap<String, KeyHistory>>,
}

impl MemoryStore {
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            per_key: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl UsageStore for MemoryStore {
    async fn append(&self, batch: &[UsageRecord]) -> Result<(), String> {
        let mut map = self
            .per_key
            .lock()
            .map_err(|_| "usage store lock poisoned")?;
        for r in batch {
            let history = map.entry(r.key_id.clone()).or_default();
            let records = &mut history.records;
            if records.len() >= self.cap {
                records.pop_front();
            } else if records.len() == records.capacity() {
                // grown by doubling but never past the cap: a full ring holds `cap` records,
                // not the next power of two (16,384 slots of ~230 bytes for the default cap)
                let grown = (records.len() * 2).max(16).min(self.cap);
                records.reserve_exact(grown - records.len());
            }
            records.push_back(r.clone());
            let day = day_of(r.timestamp_ms);
            history.days.entry(day).or_default().add_record(r);
            if let Some(newest) = history.days.keys().next_back().copied() {
                let oldest_kept = newest.saturating_sub(KEEP_DAYS);
                history.days = history.days.split_off(&oldest_kept);
            }
        }
        Ok(())
    }

    async fn query(
        &self,
        key_id: &str,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Page, String> {
        let map = self
            .per_key
            .lock()
            .map_err(|_| "usage store lock poisoned")?;
        let mut in_range = map
            .get(key_id)
            .into_iter()
            .flat_map(|h| h.records.iter().rev())
            .filter(|r| r.timestamp_ms >= from_ms && r.timestamp_ms < to_ms);
        let records: Vec<_> = in_range.by_ref().take(limit).cloned().collect();
        Ok(Page {
            records,
            has_more: in_range.next().is_some(),
        })
    }

    async fn totals(&self, key_id: &str, from_ms: u64, to_ms: u64) -> Result<Totals, String> {
        let map = self
            .per_key
            .lock()
            .map_err(|_| "usage store lock poisoned")?;
        let mut totals = Totals::default();
        if let (Some(h), Some((first, last))) = (map.get(key_id), days_touched(from_ms, to_ms)) {
            for day in h.days.range(first..=last).map(|(_, t)| t) {
                totals.merge(day);
            }
        }
        Ok(totals)
    }
}

/// The append-only JSONL billing log, one record per line.
struct Jsonl {
    path: PathBuf,
    file: Mutex<Option<BufWriter<File>>>,
}

impl Jsonl {
    fn open(path: PathBuf) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Self {
            path,
            file: Mutex::new(Some(BufWriter::new(file))),
        })
    }

    fn write(&self, records: &[UsageRecord]) {
        let Ok(mut guard) = self.file.lock() else {
            return;
        };
        let Some(w) = guard.as_mut() else { return };
        let mut result = Ok(());
        for r in records {
            result = serde_json::to_writer(&mut *w, r)
                .map_err(std::io::Error::other)
                .and_then(|()| w.write_all(b"\n"));
            if result.is_err() {
                break;
            }
        }
        if let Err(e) = result.and_then(|()| w.flush()) {
            metrics::USAGE_SINK_ERRORS
                .with_label_values(&["jsonl"])
                .inc();
            log::error!("usage log {}: {e}", self.path.display());
        }
    }
}

/// The request side: hands records to the writer task without waiting.
#[derive(Clone)]
pub struct UsageSink {
    tx: mpsc::Sender<UsageRecord>,
    jsonl: Option<Arc<Jsonl>>,
}

/// The writer task, run as a Pingora background service.
pub struct SinkService {
    rx: tokio::sync::Mutex<Option<mpsc::Receiver<UsageRecord>>>,
    store: Arc<dyn UsageStore>,
    jsonl: Option<Arc<Jsonl>>,
}

/// Creates the sink and its writer. `jsonl_path` opens (appends to) the billing log.
pub fn channel(
    store: Arc<dyn UsageStore>,
    jsonl_path: Option<PathBuf>,
) -> std::io::Result<(UsageSink, SinkService)> {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let jsonl = jsonl_path.map(Jsonl::open).transpose()?.map(Arc::new);
    Ok((
        UsageSink {
            tx,
            jsonl: jsonl.clone(),
        },
        SinkService {
            rx: tokio::sync::Mutex::new(Some(rx)),
            store,
            jsonl,
        },
    ))
}

impl UsageSink {
    /// Queues a record. A full or closed channel is counted and the record goes straight to
    /// the JSONL log, so it is never lost silently.
    pub fn submit(&self, record: UsageRecord) {
        if let Err(e) = self.tx.try_send(record) {
            let record = match e {
                mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
            };
            metrics::USAGE_SINK_ERRORS
                .with_label_values(&["channel_full"])
                .inc();
            log::warn!(
                "usage channel full; record {} written to the JSONL log only",
                record.request_id
            );
            if let Some(j) = &self.jsonl {
                j.write(std::slice::from_ref(&record));
            }
        }
    }
}

impl SinkService {
    async fn write(&self, batch: &[UsageRecord]) {
        if batch.is_empty() {
            return;
        }
        if let Some(j) = &self.jsonl {
            j.write(batch);
        }
        if let Err(e) = self.store.append(batch).await {
            metrics::USAGE_SINK_ERRORS
                .with_label_values(&["store"])
                .inc();
            log::error!("usage history write of {} records failed: {e}", batch.len());
        }
    }
}

#[async_trait]
impl BackgroundService for SinkService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // an early exit waits for this writer's last write
        let _last_write = crate::drain::hold();
        let Some(mut rx) = self.rx.lock().await.take() else {
            return;
        };
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let full = tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        break;
                    }
                    self.write(&batch).await;
                    batch.clear();
                    n == BATCH
                }
                _ = shutdown.changed() => break,
            };
            // a full batch means records are arriving faster than the pause would let through
            if !full {
                tokio::select! {
                    _ = tokio::time::sleep(LINGER) => {}
                    _ = shutdown.changed() => break,
                }
            }
        }
        // Shutting down: requests still in flight (the grace period) keep producing records.
        loop {
            while let Ok(r) = rx.try_recv() {
                batch.push(r);
                if batch.len() >= BATCH {
                    self.write(&batch).await;
                    batch.clear();
                }
            }
            self.write(&batch).await;
            batch.clear();
            if metrics::INFLIGHT.get() <= 0 && rx.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(j) = &self.jsonl {
            if let Ok(mut f) = j.file.lock() {
                if let Some(w) = f.as_mut() {
                    let _ = w.flush();
                }
            }
        }
        log::info!(
            "usage sink flushed (in flight: {})",
            metrics::INFLIGHT.get().max(0)
        );
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn record(key: &str, ts: u64) -> UsageRecord {
        UsageRecord {
            request_id: format!("req_{ts}"),
            key_id: key.into(),
            model: "gpt-4o".into(),
            provider: "emu".into(),
            attempts: 1,
            endpoint: "chat_completions".into(),
            prompt_tokens: 1,
            completion_tokens: 2,
            cached_tokens: 0,
            cache_write_tokens: 0,
            cost_micro_usd: 3,
            status: 200,
            duration_ms: 1,
            ttft_ms: Some(1),
            stream: false,
            client_disconnected: false,
            estimated: false,
            error: None,
            timestamp_ms: ts,
        }
    }

    #[tokio::test]
    async fn memory_store_keeps_the_last_records_per_key() {
        let store = MemoryStore::new(3);
        let batch: Vec<_> = (1..=5)
            .map(|t| record("k_a", t))
            .chain([record("k_b", 9)])
            .collect();
        store.append(&batch).await.unwrap();
        let stamps = |p: &Page| p.records.iter().map(|r| r.timestamp_ms).collect::<Vec<_>>();
        let a = store.query("k_a", 0, u64::MAX, 10).await.unwrap();
        assert_eq!((stamps(&a), a.has_more), (vec![5, 4, 3], false));
        let a = store.query("k_a", 0, u64::MAX, 2).await.unwrap();
        assert_eq!((stamps(&a), a.has_more), (vec![5, 4], true));
        let a = store.query("k_a", 4, 5, 10).await.unwrap();
        assert_eq!(a.records.len(), 1);
        assert_eq!(
            store
                .query("k_b", 0, u64::MAX, 10)
                .await
                .unwrap()
                .records
                .len(),
            1
        );
        assert!(store
            .query("k_c", 0, u64::MAX, 10)
            .await
            .unwrap()
            .records
            .is_empty());
        // totals count every record appended, the ones out of the ring too
        let t = store.totals("k_a", 0, u64::MAX).await.unwrap();
        assert_eq!((t.total.requests, t.total.cost_micro_usd), (5, 15));
        assert_eq!(t.by_model["gpt-4o"].requests, 5);
    }

    #[tokio::test]
    async fn memory_ring_holds_no_more_slots_than_its_cap() {
        let store = MemoryStore::new(1000);
        let batch: Vec<_> = (1..=2500).map(|t| record("k_a", t)).collect();
        store.append(&batch).await.unwrap();
        let map = store.per_key.lock().unwrap();
        let records = &map["k_a"].records;
        assert_eq!(records.len(), 1000);
        assert_eq!(records.back().map(|r| r.timestamp_ms), Some(2500));
        assert!(records.capacity() < 1024, "{} slots", records.capacity());
    }

    #[tokio::test]
    async fn memory_totals_keep_the_last_days_only() {
        let store = MemoryStore::new(10);
        let day = crate::usage::totals::DAY_MS;
        let old = record("k_a", day);
        let new = record("k_a", (KEEP_DAYS + 5) * day);
        store.append(&[old, new]).await.unwrap();
        let t = store.totals("k_a", 0, u64::MAX).await.unwrap();
        assert_eq!(t.total.requests, 1, "a day past KEEP_DAYS is dropped");
    }
}
