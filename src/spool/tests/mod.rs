//! Tests of the spool against real files and real fsync, in fresh temporary directories.
//! Each spool gets a private metrics set, so that tests running at once do not read each
//! other's counts.

mod disk;
mod measure;
mod process;
mod recovery;
mod ship;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::metrics::SpoolMetrics;
use super::{open_with, Deliver, DeliverError, Shipper, Spool, SpoolConfig};
use crate::usage::UsageRecord;

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "cheapai-spool-{name}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Record number `i`: its request id is `req-{i}`.
pub fn record(i: usize) -> UsageRecord {
    UsageRecord {
        request_id: format!("req-{i}"),
        key_id: "key-1".into(),
        model: "gpt-4o".into(),
        provider: "openai".into(),
        attempts: 1,
        endpoint: "chat_completions".into(),
        prompt_tokens: 1200,
        completion_tokens: 345,
        cached_tokens: 0,
        cache_write_tokens: 0,
        cost_micro_usd: 6450,
        status: 200,
        duration_ms: 812,
        ttft_ms: Some(240),
        stream: true,
        client_disconnected: false,
        estimated: false,
        reasoning_dropped: false,
        error: None,
        timestamp_ms: crate::clock::unix_ms(),
    }
}

/// The number in a record's request id (`req-{i}`).
pub fn number(r: &UsageRecord) -> usize {
    r.request_id.trim_start_matches("req-").parse().unwrap()
}

/// A small, fast configuration for tests.
pub fn config(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        commit_interval: Duration::from_millis(1),
        ..SpoolConfig::new(dir)
    }
}

/// Opens a spool with a private metrics set.
pub fn open(config: SpoolConfig) -> (Spool, Shipper, SpoolMetrics) {
    let metrics = SpoolMetrics::new();
    let (spool, shipper) = open_with(config, metrics.clone()).unwrap();
    (spool, shipper, metrics)
}

/// A store in memory that fails its first `failures` deliveries.
#[derive(Default)]
pub struct Recorder {
    pub got: Mutex<Vec<UsageRecord>>,
    pub calls: AtomicUsize,
    failures: usize,
}

impl Recorder {
    pub fn failing(failures: usize) -> Arc<Self> {
        Arc::new(Recorder {
            failures,
            ..Recorder::default()
        })
    }

    pub fn len(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    pub fn numbers(&self) -> Vec<usize> {
        self.got.lock().unwrap().iter().map(number).collect()
    }
}

#[async_trait]
impl Deliver for Recorder {
    async fn deliver(&self, batch: &[UsageRecord]) -> Result<(), DeliverError> {
        assert!(!batch.is_empty(), "an empty batch was delivered");
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
            return Err(DeliverError("the store is down".into()));
        }
        self.got.lock().unwrap().extend_from_slice(batch);
        Ok(())
    }
}

/// Resolves once `done` holds; fails the test after `limit`.
pub async fn until(limit: Duration, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Runs the shipper until `done` holds (at most 20 s), then drains for up to 5 s.
pub async fn ship_until(shipper: Shipper, deliver: Arc<dyn Deliver>, done: impl Fn() -> bool) {
    shipper
        .run(
            deliver,
            until(Duration::from_secs(20), done),
            Duration::from_secs(5),
        )
        .await;
}

/// The segment files in `dir`, in order.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

/// Asserts that `got` is `expected`, describing the first difference briefly (the lists
/// run to thousands of numbers).
#[track_caller]
pub fn assert_numbers(got: &[usize], expected: impl IntoIterator<Item = usize>) {
    let expected: Vec<usize> = expected.into_iter().collect();
    if got == expected {
        return;
    }
    let at = got
        .iter()
        .zip(&expected)
        .take_while(|(a, b)| a == b)
        .count();
    let around = |v: &[usize]| v[at.saturating_sub(3)..(at + 3).min(v.len())].to_vec();
    panic!(
        "{} numbers, expected {}; first difference at index {at}: got {:?}, expected {:?}",
        got.len(),
        expected.len(),
        around(got),
        around(&expected)
    );
}
