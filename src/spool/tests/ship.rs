//! Records through the spool to a store: order, retries, segments, the cap, flush.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::spool::frame;
use crate::spool::AppendError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_records_from_many_threads_arrive_once_each_in_append_order() {
    let dir = TempDir::new("round-trip");
    let (spool, shipper, metrics) = open(SpoolConfig {
        segment_bytes: 64 * 1024,
        ..config(dir.path())
    });
    let store = Arc::new(Recorder::default());
    const THREADS: usize = 4;
    const EACH: usize = 5_000;
    let shipping = tokio::spawn({
        let store = store.clone();
        ship_until(shipper, store.clone(), move || {
            store.len() >= THREADS * EACH
        })
    });
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let spool = spool.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    spool.append(&record(t * EACH + i)).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    shipping.await.unwrap();

    let got = store.numbers();
    assert_eq!(got.len(), THREADS * EACH, "every record exactly once");
    let mut sorted = got.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_numbers(&sorted, 0..THREADS * EACH);
    for t in 0..THREADS {
        let mine: Vec<_> = got.iter().filter(|&&n| n / EACH == t).collect();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "thread {t} out of order"
        );
    }
    assert_eq!(metrics.appended.get(), (THREADS * EACH) as u64);
    assert_eq!(metrics.shipped.get(), (THREADS * EACH) as u64);
    assert_eq!(spool.unshipped_bytes(), 0);
    assert_eq!(metrics.unshipped_bytes.get(), 0);
    // batches, not a delivery per record
    let calls = store.calls.load(Ordering::SeqCst);
    assert!(calls < THREADS * EACH / 10, "{calls} deliveries");
}

#[tokio::test]
async fn a_failing_store_is_retried_with_backoff_until_everything_arrives_in_order() {
    let dir = TempDir::new("retry");
    let (spool, shipper, metrics) = open(config(dir.path()));
    let store = Recorder::failing(3);
    for i in 0..300 {
        spool.append(&record(i)).unwrap();
    }
    spool.flush().await;
    let started = Instant::now();
    let waiting = store.clone();
    let shipping = tokio::spawn(ship_until(shipper, store.clone(), move || {
        waiting.len() >= 300
    }));
    // while the store is down, the lag gauge shows the records waiting
    until(Duration::from_secs(5), || metrics.lag_seconds.get() >= 0.1).await;
    shipping.await.unwrap();
    assert_numbers(&store.numbers(), 0..300);
    assert_eq!(metrics.delivery_failures.get(), 3);
    assert!(store.calls.load(Ordering::SeqCst) >= 4);
    // three backoffs: at least 50 + 100 + 200 ms (the lower halves of 100, 200, 400)
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(metrics.lag_seconds.get(), 0.0);
}

#[tokio::test]
async fn records_appended_while_the_store_is_down_keep_spooling_and_ship_later() {
    let dir = TempDir::new("outage");
    let (spool, shipper, metrics) = open(config(dir.path()));
    let store = Recorder::failing(4);
    let waiting = store.clone();
    let shipping = tokio::spawn(ship_until(shipper, store.clone(), move || {
        waiting.len() >= 2_000
    }));
    for i in 0..2_000 {
        spool.append(&record(i)).unwrap();
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    shipping.await.unwrap();
    assert_numbers(&store.numbers(), 0..2_000);
    assert_eq!(metrics.delivery_failures.get(), 4);
}

#[tokio::test]
async fn shipped_segments_are_deleted() {
    let dir = TempDir::new("deletion");
    let (spool, shipper, _) = open(SpoolConfig {
        segment_bytes: 4 * 1024,
        ..config(dir.path())
    });
    for i in 0..1_000 {
        spool.append(&record(i)).unwrap();
        if i % 50 == 49 {
            spool.flush().await;
        }
    }
    spool.flush().await;
    let before = segment_files(dir.path()).len();
    assert!(
        before >= 20,
        "{before} segments for ~350 KB in 4 KiB segments"
    );
    let store = Arc::new(Recorder::default());
    let waiting = store.clone();
    ship_until(shipper, store.clone(), move || waiting.len() >= 1_000).await;
    assert_numbers(&store.numbers(), 0..1_000);
    // only the segment still being written is left
    let after = segment_files(dir.path());
    assert_eq!(after.len(), 1, "{after:?}");
}

#[tokio::test]
async fn the_cap_refuses_records_reports_full_first_and_drains_after_delivery() {
    let dir = TempDir::new("cap");
    let max_bytes = 64 * 1024;
    let (spool, shipper, metrics) = open(SpoolConfig {
        max_bytes,
        ..config(dir.path())
    });
    let mut unshipped_when_full = None;
    let mut accepted = 0;
    let mut accepted_when_full = 0;
    let refused = loop {
        match spool.append(&record(accepted)) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        if spool.is_full() && unshipped_when_full.is_none() {
            unshipped_when_full = Some(spool.unshipped_bytes());
            accepted_when_full = accepted;
        }
    };
    assert_eq!(refused, AppendError::Full);
    let unshipped = spool.unshipped_bytes();
    let frame_len = unshipped / accepted as u64;
    assert!(unshipped <= max_bytes);
    assert!(
        unshipped + frame_len + 16 > max_bytes,
        "refused early: {unshipped}"
    );
    // full from 15/16 of the cap on, while the last 1/16 still takes records
    let when_full = unshipped_when_full.expect("full before the cap");
    let threshold = max_bytes - max_bytes / 16;
    assert!(when_full >= threshold && when_full < threshold + frame_len + 16);
    assert!(
        accepted > accepted_when_full + 5,
        "{accepted_when_full} of {accepted}"
    );
    assert!(spool.is_full());
    assert_eq!(metrics.full.get(), 1);
    assert_eq!(metrics.refused.get(), 1);
    assert_eq!(metrics.unshipped_bytes.get() as u64, unshipped);
    // nothing was queued for the refused record: it is not delivered
    let store = Arc::new(Recorder::default());
    let waiting = store.clone();
    ship_until(shipper, store.clone(), move || waiting.len() >= accepted).await;
    assert_numbers(&store.numbers(), 0..accepted);
    assert_eq!(spool.unshipped_bytes(), 0);
    assert!(!spool.is_full());
    assert_eq!(metrics.full.get(), 0);
    spool.append(&record(accepted)).unwrap();
}

#[tokio::test]
async fn the_queue_cap_applies_when_the_disk_does_not_keep_up() {
    let dir = TempDir::new("queue-cap");
    // a commit at most every 10 s: the queue is what fills
    let (spool, _shipper, metrics) = open(SpoolConfig {
        queue_bytes: 16 * 1024,
        commit_interval: Duration::from_secs(10),
        ..config(dir.path())
    });
    spool.append(&record(0)).unwrap();
    spool.flush().await; // the first commit
    let mut accepted = 0;
    while spool.append(&record(accepted + 1)).is_ok() {
        accepted += 1;
    }
    assert!(
        accepted > 10 && accepted < 60,
        "{accepted} records in a 16 KiB queue"
    );
    assert!(spool.is_full());
    assert_eq!(metrics.refused.get(), 1);
}

#[tokio::test]
async fn flush_resolves_only_once_the_records_are_fsynced_on_disk() {
    let dir = TempDir::new("flush");
    // commits at most every 300 ms: a flush right after the first waits for the next one
    let (spool, _shipper, metrics) = open(SpoolConfig {
        commit_interval: Duration::from_millis(300),
        ..config(dir.path())
    });
    spool.append(&record(0)).unwrap();
    spool.flush().await;
    assert_eq!(metrics.fsync_seconds.get_sample_count(), 1);
    for i in 1..50 {
        spool.append(&record(i)).unwrap();
    }
    let started = Instant::now();
    spool.flush().await;
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        metrics.fsync_seconds.get_sample_count(),
        2,
        "one fsync for 49 records"
    );
    let files = segment_files(dir.path());
    let bytes = std::fs::read(&files[0]).unwrap();
    let scan = frame::scan(&bytes);
    assert_eq!((scan.frames, scan.tail), (50, frame::Tail::Clean));
}
