//! Figures of this machine's disk, not pass/fail tests:
//! `cargo test --release --lib spool::tests::measure -- --ignored --nocapture`

use super::*;

/// The disk's fsync rate: one record per commit, each flushed before the next.
#[tokio::test]
#[ignore = "a measurement; run it with --ignored --nocapture"]
async fn measure_fsync_latency() {
    let dir = TempDir::new("measure-fsync");
    let (spool, _shipper, _) = open(SpoolConfig {
        commit_interval: Duration::ZERO,
        ..config(dir.path())
    });
    let mut took = Vec::new();
    let started = Instant::now();
    for i in 0..500 {
        let t = Instant::now();
        spool.append(&record(i)).unwrap();
        spool.flush().await;
        took.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    took.sort();
    println!(
        "one record per commit: {:.0} commits/s; append-to-durable p50 {:?}, p99 {:?}, max {:?}",
        500.0 / elapsed.as_secs_f64(),
        took[took.len() / 2],
        took[took.len() * 99 / 100],
        took[took.len() - 1]
    );
}

/// What the writer sustains under as many appends as two threads can make, with the
/// default commit interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
#[ignore = "a measurement; run it with --ignored --nocapture"]
async fn measure_group_commit_flood() {
    load(None).await;
}

/// Fsyncs and append-to-durable time at steady rates a gateway may see.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
#[ignore = "a measurement; run it with --ignored --nocapture"]
async fn measure_group_commit_at_steady_rates() {
    for rate in [1_000, 10_000, 50_000] {
        load(Some(rate)).await;
    }
}

/// Two threads append for 3 s, at `rate` records/s together or as fast as they can, while
/// a probe record every 10 ms measures how long a record takes to be durable.
async fn load(rate: Option<u64>) {
    let dir = TempDir::new("measure-load");
    let spool_config = SpoolConfig {
        max_bytes: 8 << 30,
        ..SpoolConfig::new(dir.path())
    };
    let commit_interval = spool_config.commit_interval;
    let (spool, _shipper, metrics) = open(spool_config);
    let run_for = Duration::from_secs(3);
    let started = Instant::now();
    let producers: Vec<_> = (0..2)
        .map(|t| {
            let spool = spool.clone();
            std::thread::spawn(move || {
                let (mut accepted, mut refused) = (0usize, 0usize);
                while started.elapsed() < run_for {
                    if let Some(rate) = rate {
                        // this thread's share of the rate, in bursts of 1 ms
                        let due = (started.elapsed().as_secs_f64() * rate as f64 / 2.0) as usize;
                        if accepted >= due {
                            std::thread::sleep(Duration::from_millis(1));
                            continue;
                        }
                    }
                    match spool.append(&record(t * 100_000_000 + accepted)) {
                        Ok(()) => accepted += 1,
                        Err(_) => {
                            refused += 1;
                            std::thread::sleep(Duration::from_micros(100));
                        }
                    }
                }
                (accepted, refused)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    while started.elapsed() < run_for {
        let t = Instant::now();
        if spool.append(&record(999_999_999)).is_ok() {
            spool.flush().await;
            latencies.push(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (mut accepted, mut refused) = (latencies.len(), 0);
    for p in producers {
        let (a, r) = p.join().unwrap();
        accepted += a;
        refused += r;
    }
    spool.flush().await;
    let elapsed = started.elapsed().as_secs_f64();
    let fsyncs = metrics.fsync_seconds.get_sample_count();
    let fsync_mean = metrics.fsync_seconds.get_sample_sum() / fsyncs as f64;
    latencies.sort();
    let load = rate.map_or("flood".to_string(), |r| format!("{r} records/s offered"));
    println!(
        "{load}, commit interval {commit_interval:?}: {:.0} records/s durable, {:.0} fsyncs/s \
         ({:.0} records and {:.1} KiB per fsync, fsync mean {:.2} ms), {refused} appends \
         refused (queue full) and retried; append to durable p50 {:?}, p99 {:?}, max {:?}",
        accepted as f64 / elapsed,
        fsyncs as f64 / elapsed,
        accepted as f64 / fsyncs as f64,
        spool_bytes(dir.path()) as f64 / 1024.0 / fsyncs as f64,
        fsync_mean * 1000.0,
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100],
        latencies[latencies.len() - 1]
    );
}

fn spool_bytes(dir: &Path) -> u64 {
    segment_files(dir)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}
