//! The usage ledger through real faults, on the real binary: a PostgreSQL ledger stopped for
//! ten seconds under load, the gateway killed with SIGKILL under load, a spool that fills
//! while the store is unreachable, and a spool disk that fails. Every answered request must
//! end as exactly one record in the store, and each fault must say so in the log and the
//! metrics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cheapai_gateway::ledger::StoreConfig;
use cheapai_gateway::secret::Secret;
use common::binary::Binary;
use common::postgres::TestPostgres;
use common::*;

/// A fresh directory for one test's spool.
fn spool_root(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cheapai-faults-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn sqlite_usage(spool: &Path, db: &Path) -> String {
    format!(
        "[usage]\nspool_dir = \"{}\"\nstore = \"sqlite:{}\"\n",
        spool.display(),
        db.display()
    )
}

fn postgres_usage(spool: &Path) -> String {
    format!(
        "[usage]\nspool_dir = \"{}\"\npostgres_url_env = \"TEST_LEDGER_URL\"\n",
        spool.display()
    )
}

/// Every request id in a ledger, and how many records there are.
fn stored(store: &StoreConfig) -> (BTreeSet<String>, usize) {
    let records = records_in(store);
    let count = records.len();
    (records.into_iter().map(|r| r.request_id).collect(), count)
}

/// Waits until the ledger holds `want` records (or `within` passes), then returns its ids
/// and record count.
fn stored_when(store: &StoreConfig, want: usize, within: Duration) -> (BTreeSet<String>, usize) {
    let deadline = Instant::now() + within;
    loop {
        let got = stored(store);
        if got.1 >= want || Instant::now() > deadline {
            return got;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// Client threads sending chat requests and streams without pause until stopped; the ids of
/// the requests answered whole.
struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<Mutex<Vec<String>>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Load {
    fn start(url: &str, threads: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..threads)
            .map(|i| {
                let (stop, answered, url) = (stop.clone(), answered.clone(), url.to_string());
                thread::spawn(move || {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(10))
                        .build();
                    while !stop.load(Ordering::Relaxed) {
                        let result = agent
                            .post(&format!("{url}/v1/chat/completions"))
                            .set("authorization", &format!("Bearer {KEY}"))
                            .send_string(&chat("gpt-4o", i % 2 == 1));
                        let Ok(answer) = result else { continue };
                        let id = answer
                            .header("x-request-id")
                            .unwrap_or_default()
                            .to_string();
                        if answer.into_string().is_ok() {
                            answered.lock().unwrap().push(id);
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            answered,
            threads,
        }
    }

    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let answered = self.answered.lock().unwrap().clone();
        answered
    }
}

fn metric(bin: &Binary, parts: &[&str]) -> f64 {
    let text = ureq::get(&format!("{}/metrics", bin.admin_url))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    metric_sample(&text, parts).unwrap_or(0.0)
}

#[test]
fn a_postgres_outage_under_load_loses_and_doubles_no_record() {
    let mut pg = TestPostgres::start_new();
    let url = pg.url();
    let root = spool_root("outage");
    let bin = Binary::start_with_env(
        "ledger-outage",
        &postgres_usage(&root),
        &[("TEST_LEDGER_URL", &url)],
    );
    let load = Load::start(&bin.url, 4);
    thread::sleep(Duration::from_secs(2));
    pg.stop();
    let stopped = Instant::now();
    // the store is down: requests are still answered, their records wait in the spool
    bin.line_with("ledger unavailable");
    while stopped.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(200));
    }
    assert!(metric(&bin, &["cheapai_usage_ship_failures_total"]) >= 1.0);
    assert!(metric(&bin, &["cheapai_usage_spool_unshipped_bytes"]) > 0.0);
    pg.start();
    thread::sleep(Duration::from_secs(2));
    let answered = load.finish();
    let store = StoreConfig::Postgres {
        url: Secret::new(url),
    };
    let (ids, count) = stored_when(&store, answered.len(), Duration::from_secs(30));
    let answered: BTreeSet<String> = answered.into_iter().collect();
    eprintln!("outage: {} answered, {} stored", answered.len(), count);
    assert!(answered.len() > 100, "too little load: {}", answered.len());
    assert_eq!(count, ids.len(), "a record stored twice");
    let missing: Vec<_> = answered.difference(&ids).collect();
    assert!(missing.is_empty(), "answered, never stored: {missing:?}");
}

#[test]
fn after_a_sigkill_every_spooled_record_reaches_the_store_once() {
    let root = spool_root("sigkill");
    let db = root.with_extension("db");
    let usage = sqlite_usage(&root, &db);
    let store = StoreConfig::Sqlite { path: db };

    // killed under load: only the records of the last moments can be lost, none doubled
    let mut first = Binary::start("ledger-sigkill", &usage);
    let load = Load::start(&first.url, 8);
    thread::sleep(LOAD);
    let slowest_fsync = slowest_fsync(&first);
    // what the spool itself says a crash would take now: bytes not yet written and fsynced
    // (large when the disk stalls: the group commit then waits on a slow fsync)
    let queued_bytes = metric(&first, &["cheapai_usage_spool_queued_bytes"]);
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    let answered: HashSet<String> = load.finish().into_iter().collect();
    let mut second = Binary::start("ledger-sigkill-again", &usage);
    shipped_everything(&second);
    let records = records_in(&store);
    let count = records.len();
    // the smallest record's JSON (a frame is that plus its header): an upper bound on how
    // many records the queued bytes held
    let smallest = records
        .iter()
        .filter_map(|r| serde_json::to_vec(r).ok())
        .map(|json| json.len())
        .min()
        .unwrap_or(1);
    let ids: BTreeSet<String> = records.into_iter().map(|r| r.request_id).collect();
    assert_eq!(count, ids.len(), "a record stored twice");
    let lost = answered.iter().filter(|id| !ids.contains(*id)).count();
    let per_second = answered.len() as f64 / LOAD.as_secs_f64();
    let queued = (queued_bytes / smallest as f64).ceil() as usize;
    eprintln!(
        "sigkill under load: {} answered ({per_second:.0}/s), {} stored, {lost} answered but \
         lost; the slowest group commit's fsync took at most {slowest_fsync:?}; just before \
         the kill {queued_bytes} bytes (at most {queued} records) were not yet durable",
        answered.len(),
        count,
    );
    assert!(answered.len() > 100, "too little load: {}", answered.len());
    // A record is made just after its answer's last byte and is durable once the group commit
    // after it has been written and fsynced: what a kill can take is what was queued and not
    // yet durable just before it (the spool's own gauge, read a moment before the kill), plus
    // what was queued in that moment: at most two fsyncs' worth (the one running when the
    // record was queued, then its own), the 5 ms between commits and the time a record takes
    // to be made (50 ms, for a busy machine). The fsync time is the spool's own measure (its
    // histogram's bucket). Nothing durable may be lost.
    let window = slowest_fsync * 2 + Duration::from_millis(55);
    let bound = queued + (per_second * window.as_secs_f64()) as usize + 8;
    assert!(
        lost <= bound,
        "{lost} lost, more than the {queued} queued plus the {window:?} window's records \
         ({bound})"
    );

    // killed once every answered request's record is durable, while the shipper is still
    // shipping them: every one reaches the store, once
    let load = Load::start(&second.url, 8);
    thread::sleep(LOAD);
    let answered: HashSet<String> = load.finish().into_iter().collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    // nothing appended is still only in memory: every record is written and fsynced
    while metric(&second, &["cheapai_usage_spool_queued_bytes"]) > 0.0 {
        assert!(
            Instant::now() < deadline,
            "the spool never caught up with the disk"
        );
        thread::sleep(Duration::from_millis(5));
    }
    second.child.kill().unwrap();
    second.child.wait().unwrap();
    let third = Binary::start("ledger-sigkill-third", &usage);
    shipped_everything(&third);
    let (ids, count) = stored(&store);
    assert_eq!(count, ids.len(), "a record stored twice");
    let lost: Vec<_> = answered.iter().filter(|id| !ids.contains(*id)).collect();
    eprintln!(
        "sigkill after the last commit: {} answered, {} lost",
        answered.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "spooled but never stored: {lost:?}");
}

/// How long the SIGKILL test's load runs before the kill.
const LOAD: Duration = Duration::from_secs(3);

/// The upper bound of the slowest fsync of `bin`'s spool so far: the smallest bucket of
/// `cheapai_usage_spool_fsync_seconds` that holds every observation.
fn slowest_fsync(bin: &Binary) -> Duration {
    let text = ureq::get(&format!("{}/metrics", bin.admin_url))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let count = metric_sample(&text, &["cheapai_usage_spool_fsync_seconds_count"]).unwrap_or(0.0);
    let bound = text
        .lines()
        .filter_map(|l| l.strip_prefix("cheapai_usage_spool_fsync_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, rest) = l.split_once("\"} ")?;
            Some((le.parse::<f64>().ok()?, rest.trim().parse::<f64>().ok()?))
        })
        .filter(|(_, n)| *n >= count)
        .map(|(le, _)| le)
        .fold(f64::INFINITY, f64::min);
    Duration::from_secs_f64(if bound.is_finite() { bound } else { 10.0 })
}

/// Waits until `bin` has shipped everything in its spool (its unshipped bytes and lag 0).
fn shipped_everything(bin: &Binary) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = ureq::get(&format!("{}/metrics", bin.admin_url))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        let shipped = metric_sample(&text, &["cheapai_usage_spool_unshipped_bytes"]) == Some(0.0)
            && metric_sample(&text, &["cheapai_usage_ship_lag_seconds"]) == Some(0.0);
        if shipped {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the spool was never shipped: {text}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_full_spool_refuses_billable_requests_and_readiness_until_the_store_is_back() {
    let mut pg = TestPostgres::start_new();
    let url = pg.url();
    pg.stop();
    let root = spool_root("full");
    let usage = format!("{}spool_max_mb = 1\n", postgres_usage(&root));
    let bin = Binary::start_with_env("ledger-full", &usage, &[("TEST_LEDGER_URL", &url)]);
    let ready = |bin: &Binary| match ureq::get(&format!("{}/ready", bin.admin_url)).call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(ready(&bin), 200);
    // ~450 bytes a record: a megabyte fills within a few thousand requests
    let mut refused = None;
    for _ in 0..10_000 {
        let (status, _) = bin.post(KEY, &[], &chat("gpt-4o", false));
        if status == 503 {
            refused = Some(status);
            break;
        }
        assert_eq!(status, 200);
    }
    assert_eq!(refused, Some(503), "the spool never filled");
    assert_eq!(
        ready(&bin),
        503,
        "a full spool takes the instance out of the pool"
    );
    assert_eq!(metric(&bin, &["cheapai_usage_spool_full"]), 1.0);
    bin.line_with("is full:");
    // the models listing and the usage history are not billable: still served
    let models = ureq::get(&format!("{}/v1/models", bin.url))
        .set("authorization", &format!("Bearer {KEY}"))
        .call()
        .unwrap();
    assert_eq!(models.status(), 200);

    pg.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready(&bin) != 200 {
        assert!(Instant::now() < deadline, "the spool never drained");
        thread::sleep(Duration::from_millis(100));
    }
    let (status, _) = bin.post(KEY, &[], &chat("gpt-4o", false));
    assert_eq!(status, 200);
    assert_eq!(metric(&bin, &["cheapai_usage_spool_full"]), 0.0);
}

#[test]
fn a_failing_spool_disk_is_logged_counted_and_loses_nothing() {
    let root = spool_root("disk");
    let db = root.with_extension("db");
    let usage = sqlite_usage(&root, &db);
    let bin = Binary::start("ledger-disk", &usage);
    // the first segments this process writes are /dev/full: every write fails (ENOSPC)
    let slot = root.join("0");
    for id in 1..=3u64 {
        std::os::unix::fs::symlink("/dev/full", slot.join(format!("{id:020}.seg"))).unwrap();
    }
    let mut ids = Vec::new();
    for _ in 0..20 {
        let (status, id) = bin.post(KEY, &[], &chat("gpt-4o", false));
        assert_eq!(status, 200);
        ids.push(id);
    }
    let line = bin.line_with("No space left on device");
    assert!(line.contains(&slot.display().to_string()), "{line}");
    assert!(
        metric(
            &bin,
            &["cheapai_usage_spool_disk_errors_total", "op=\"write\""]
        ) >= 1.0
    );
    let store = StoreConfig::Sqlite { path: db };
    let (stored_ids, count) = stored_when(&store, ids.len(), Duration::from_secs(20));
    assert_eq!(count, ids.len());
    assert!(ids.iter().all(|id| stored_ids.contains(id)));
}

/// What a power loss keeps is only what was fsynced, and the spool deletes what its
/// checkpoint has passed: so each batch's SQLite commit must fsync the ledger's WAL before
/// the checkpoint moves past the batch. (SQLite's `synchronous=NORMAL` commits without it,
/// and a power loss can take such a commit back.) Seen from outside with strace: a record
/// answered, then an fsync of the WAL, then the checkpoint's rename.
#[test]
fn a_batch_is_fsynced_in_the_ledger_before_the_checkpoint_passes_it() {
    let root = spool_root("wal-sync");
    let db = root.with_extension("db");
    let usage = sqlite_usage(&root, &db);
    let mut bin = Binary::start("ledger-wal-sync", &usage);
    let trace = root.with_extension("strace");
    let mut strace = std::process::Command::new("strace")
        .args([
            "-f",
            "-y",
            "-e",
            "trace=fdatasync,fsync,rename,renameat,renameat2",
            "-o",
        ])
        .arg(&trace)
        .arg("-p")
        .arg(bin.child.id().to_string())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("strace (scripts/setup installs it)");
    // strace says on stderr when it holds the process; only then is every call seen
    let mut said = BufReader::new(strace.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("attached") {
        line.clear();
        assert!(said.read_line(&mut line).unwrap() > 0, "strace ended");
    }
    std::thread::spawn(move || std::io::copy(&mut said, &mut std::io::sink()));

    let (status, _) = bin.post(KEY, &[], &chat("gpt-4o-mini", false));
    assert_eq!(status, 200);
    // the record in the store, then nothing unshipped: the checkpoint has moved past it
    let (ids, _) = stored_when(
        &StoreConfig::Sqlite { path: db.clone() },
        1,
        Duration::from_secs(10),
    );
    assert_eq!(ids.len(), 1);
    shipped_everything(&bin);
    // SIGINT: strace writes out what it saw and lets the process go
    signal(strace.id(), "INT");
    strace.wait().unwrap();
    bin.child.kill().unwrap();
    bin.child.wait().unwrap();

    let calls = std::fs::read_to_string(&trace).unwrap();
    let wal = format!("{}-wal>", db.display());
    let moved = calls
        .lines()
        .position(|l| l.contains("rename") && l.contains("checkpoint.tmp"))
        .unwrap_or_else(|| panic!("no checkpoint rename in:\n{calls}"));
    let synced = calls
        .lines()
        .position(|l| (l.contains("fsync(") || l.contains("fdatasync(")) && l.contains(&wal));
    assert!(
        synced.is_some_and(|at| at < moved),
        "the WAL {wal} was not fsynced before the checkpoint moved:\n{calls}"
    );
}
