//! Other processes: the lock holds across processes, and records a process flushed before
//! it was SIGKILLed are delivered by the next one. The children are this test binary run
//! with one `#[ignore]`d test selected, which acts only when the environment names a
//! directory.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use super::*;

/// The environment variable naming the children's spool directory.
const DIR: &str = "CHEAPAI_SPOOL_TEST_CHILD_DIR";
/// The store file of a shipping child.
const STORE: &str = "store.txt";

/// This test binary, running only the test `name` of this module.
fn child(name: &str, dir: &Path) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            &format!("spool::tests::process::{name}"),
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR, dir)
        .stdout(Stdio::piped());
    command
}

fn child_dir() -> Option<PathBuf> {
    std::env::var_os(DIR).map(PathBuf::from)
}

#[test]
#[ignore = "the child process of a_second_process_cannot_open_a_locked_spool"]
fn lock_child() {
    let Some(dir) = child_dir() else { return };
    match crate::spool::open(config(&dir)) {
        Ok(_) => println!("CHILD opened"),
        Err(e) => println!("CHILD error: {e}"),
    }
}

fn run_lock_child(dir: &Path) -> String {
    let out = child("lock_child", dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    stdout
        .lines()
        // libtest prints the test's name on the same line, before the output
        .find_map(|l| l.split_once("CHILD ").map(|(_, answer)| answer.to_string()))
        .unwrap_or_else(|| panic!("no answer from the child: {stdout}"))
}

#[test]
fn a_second_process_cannot_open_a_locked_spool() {
    let dir = TempDir::new("lock-process");
    let (spool, shipper, _) = open(config(dir.path()));
    let answer = run_lock_child(dir.path());
    assert_eq!(
        answer,
        format!(
            "error: usage spool directory {} is locked by another process (pid {}): two \
             processes must never share one spool",
            dir.path().display(),
            std::process::id()
        )
    );
    drop((spool, shipper));
    assert_eq!(run_lock_child(dir.path()), "opened");
}

/// Appends records in batches of 100 and prints `flushed N` once the first N are durable,
/// until it is killed (or a minute passes). With a `store.txt` in the directory it also
/// ships, to a store that is that file (a line per record, fsynced before Ok).
#[tokio::test]
#[ignore = "the child process of the SIGKILL tests"]
async fn crash_child() {
    let Some(dir) = child_dir() else { return };
    let (spool, shipper) = crate::spool::open(crash_config(&dir)).unwrap();
    let store = dir.join(STORE);
    if store.exists() {
        let deliver = Arc::new(FileStore(store));
        tokio::spawn(shipper.run(deliver, std::future::pending(), Duration::ZERO));
    }
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(60) {
        for _ in 0..100 {
            spool.append(&record(n)).unwrap();
            n += 1;
        }
        spool.flush().await;
        println!("flushed {n}");
    }
}

fn crash_config(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        segment_bytes: 64 * 1024,
        ..config(dir)
    }
}

/// A store that is a file of request numbers, one a line.
struct FileStore(PathBuf);

#[async_trait]
impl Deliver for FileStore {
    async fn deliver(&self, batch: &[UsageRecord]) -> Result<(), DeliverError> {
        let mut lines = String::new();
        for r in batch {
            lines.push_str(&format!("{}\n", number(r)));
        }
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.0)
            .map_err(|e| DeliverError(e.to_string()))?;
        file.write_all(lines.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| DeliverError(e.to_string()))
    }
}

/// Starts a crash child, waits until it flushed at least `at_least` records, SIGKILLs it,
/// and returns the highest count it reported.
fn kill_after(mut child: Child, at_least: usize) -> usize {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut flushed = 0;
    let count = |line: &str| line.strip_prefix("flushed ").map(|n| n.parse().unwrap());
    while flushed < at_least {
        let line = lines.next().expect("the child ended early").unwrap();
        flushed = count(&line).unwrap_or(flushed);
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // what it printed before it died
    for line in lines {
        flushed = count(&line.unwrap()).unwrap_or(flushed);
    }
    flushed
}

/// Reopens the spool a killed child left, ships everything in it, and returns what arrived.
async fn ship_what_is_left(dir: &Path) -> Vec<usize> {
    let (spool, shipper, _) = open(crash_config(dir));
    assert!(spool.unshipped_bytes() > 0);
    let store = Arc::new(Recorder::default());
    let left = spool.clone();
    ship_until(shipper, store.clone(), move || left.unshipped_bytes() == 0).await;
    store.numbers()
}

#[tokio::test]
async fn every_record_flushed_before_a_sigkill_is_delivered_exactly_once_after_it() {
    let dir = TempDir::new("crash");
    let flushed = kill_after(child("crash_child", dir.path()).spawn().unwrap(), 5_000);
    let got = ship_what_is_left(dir.path()).await;
    // records past the last flush may have made it to disk too; never a gap or a repeat
    assert!(got.len() >= flushed, "{} of {flushed} flushed", got.len());
    assert_numbers(&got, 0..got.len());
}

#[tokio::test]
async fn a_shipping_process_killed_midway_leaves_no_gap_for_the_next() {
    let dir = TempDir::new("crash-shipping");
    std::fs::write(dir.path().join(STORE), "").unwrap();
    let flushed = kill_after(child("crash_child", dir.path()).spawn().unwrap(), 20_000);
    let stored: Vec<usize> = std::fs::read_to_string(dir.path().join(STORE))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert!(
        !stored.is_empty(),
        "the child shipped nothing before it was killed"
    );
    assert_numbers(&stored, 0..stored.len());
    let again = ship_what_is_left(dir.path()).await;
    // the next process starts at the checkpoint: at or before the end of what the store
    // holds (records delivered after the last checkpoint come again), never past it
    let first = again[0];
    assert!(
        first <= stored.len(),
        "gap: store has {}, resumed at {first}",
        stored.len()
    );
    assert_numbers(&again, first..first + again.len());
    assert!(first + again.len() >= flushed);
}
