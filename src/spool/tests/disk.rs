//! Real disk errors. The tests run as root, so permissions cannot make a write fail; these
//! do: a segment path that is a symlink to `/dev/full` (every write fails with ENOSPC, and
//! it cannot be truncated either) or to `/dev/null` (writes succeed, fdatasync fails with
//! EINVAL), and a small tmpfs mounted for the test and filled up (a real file system out
//! of space, which gets space back).

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use super::*;
use crate::spool::frame;
use crate::spool::metrics::DiskOp;
use crate::spool::segments;

#[tokio::test]
async fn writes_failing_with_enospc_are_counted_and_retried_and_nothing_is_acknowledged_before() {
    let dir = TempDir::new("dev-full");
    let (spool, shipper, metrics) = open(config(dir.path()));
    // The first three segments the writer creates are /dev/full.
    for id in 1..=3 {
        std::os::unix::fs::symlink("/dev/full", segments::path(dir.path(), id)).unwrap();
    }
    for i in 0..20 {
        spool.append(&record(i)).unwrap();
    }
    spool.flush().await;
    // durable only after three failed writes (each segment given up, as /dev/full cannot
    // be cut back) and a fourth segment
    assert_eq!(metrics.disk_errors_of(DiskOp::Write), 3);
    assert_eq!(metrics.disk_errors_of(DiskOp::Truncate), 3);
    let real = segments::path(dir.path(), 4);
    let scan = frame::scan(&std::fs::read(&real).unwrap());
    assert_eq!((scan.frames, scan.tail), (20, frame::Tail::Clean));

    let store = Arc::new(Recorder::default());
    let waiting = store.clone();
    ship_until(shipper, store.clone(), move || waiting.len() >= 20).await;
    assert_numbers(&store.numbers(), 0..20);
    // the links are deleted with the shipped segments (what they point at is not)
    assert_eq!(segment_files(dir.path()), vec![real]);
    assert!(Path::new("/dev/full").exists());
}

#[tokio::test]
async fn records_whose_fsync_failed_are_written_again_not_trusted() {
    let dir = TempDir::new("dev-null");
    let (spool, shipper, metrics) = open(config(dir.path()));
    // Writes to /dev/null succeed and its fdatasync fails (EINVAL): the written records
    // must not count as durable.
    std::os::unix::fs::symlink("/dev/null", segments::path(dir.path(), 1)).unwrap();
    for i in 0..20 {
        spool.append(&record(i)).unwrap();
    }
    spool.flush().await;
    assert_eq!(metrics.disk_errors_of(DiskOp::Write), 0);
    assert_eq!(metrics.disk_errors_of(DiskOp::Fsync), 1);
    let real = segments::path(dir.path(), 2);
    let scan = frame::scan(&std::fs::read(&real).unwrap());
    assert_eq!((scan.frames, scan.tail), (20, frame::Tail::Clean));

    let store = Arc::new(Recorder::default());
    let waiting = store.clone();
    ship_until(shipper, store.clone(), move || waiting.len() >= 20).await;
    assert_numbers(&store.numbers(), 0..20);
}

#[tokio::test]
async fn closing_on_a_dead_disk_gives_up_after_a_few_seconds_instead_of_hanging() {
    let dir = TempDir::new("dead-disk");
    let (spool, shipper, metrics) = open(config(dir.path()));
    for id in 1..=100 {
        std::os::unix::fs::symlink("/dev/full", segments::path(dir.path(), id)).unwrap();
    }
    spool.append(&record(0)).unwrap();
    until(Duration::from_secs(5), || {
        metrics.disk_errors_of(DiskOp::Write) >= 1
    })
    .await;
    let started = Instant::now();
    drop((spool, shipper));
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(4), "gave up after {took:?}");
    assert!(took < Duration::from_secs(8), "closing took {took:?}");
    assert!(metrics.disk_errors_of(DiskOp::Write) >= 3);
}

/// A tmpfs of `size` mounted on a fresh directory for the test, unmounted on drop.
struct Tmpfs {
    path: PathBuf,
    _dir: TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = TempDir::new("tmpfs");
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs (this test needs root) failed"
        );
        Tmpfs { path, _dir: dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.path).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

#[tokio::test]
async fn a_full_file_system_keeps_records_queued_until_space_returns() {
    let tmpfs = Tmpfs::mount("256k");
    let (spool, shipper, metrics) = open(config(&tmpfs.path.join("spool")));
    let store = Arc::new(Recorder::default());
    let waiting = store.clone();
    let shipping = tokio::spawn(ship_until(shipper, store.clone(), move || {
        waiting.len() >= 210
    }));
    for i in 0..10 {
        spool.append(&record(i)).unwrap();
    }
    spool.flush().await;
    // shipped and released: the shipper lowers the unshipped bytes only after the store took
    // the batch, so waiting for the store alone let that release land between the two reads
    // of the count below (seen under load)
    until(Duration::from_secs(5), || {
        store.len() == 10 && spool.unshipped_bytes() == 0
    })
    .await;

    // fill the file system
    let ballast = tmpfs.path.join("ballast");
    let mut file = std::fs::File::create(&ballast).unwrap();
    let full = loop {
        if let Err(e) = file.write_all(&[0; 4096]) {
            break e;
        }
    };
    assert_eq!(full.raw_os_error(), Some(28), "{full}");
    drop(file);

    for i in 10..210 {
        spool.append(&record(i)).unwrap();
    }
    let queued = spool.unshipped_bytes();
    assert!(queued > 200 * 300, "{queued} bytes unshipped");
    // not durable, so neither acknowledged by flush nor shipped
    let flushed = tokio::time::timeout(Duration::from_millis(500), spool.flush()).await;
    assert!(flushed.is_err(), "flush resolved on a full file system");
    assert!(metrics.disk_errors_of(DiskOp::Write) >= 1);
    assert_eq!(store.len(), 10);
    assert!(spool.unshipped_bytes() >= queued);

    std::fs::remove_file(&ballast).unwrap();
    tokio::time::timeout(Duration::from_secs(5), spool.flush())
        .await
        .expect("durable once there is space again");
    shipping.await.unwrap();
    assert_numbers(&store.numbers(), 0..210);
    drop(spool);
}
