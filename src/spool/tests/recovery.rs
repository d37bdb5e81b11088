//! What a new process finds: records left unshipped, a torn tail, a corrupted frame, the
//! checkpoint, the lock.

use std::fs::OpenOptions;
use std::sync::Arc;

use super::*;
use crate::spool::frame::{self, Decoded};
use crate::spool::{open as open_registered, SpoolError};

/// Appends records `range` and waits until they are durable.
async fn append_durably(spool: &Spool, range: std::ops::Range<usize>) {
    for i in range {
        spool.append(&record(i)).unwrap();
    }
    spool.flush().await;
}

/// Ships until `count` records arrived, and returns their numbers.
async fn ship(shipper: Shipper, count: usize) -> Vec<usize> {
    let store = Arc::new(Recorder::default());
    let waiting = store.clone();
    ship_until(shipper, store.clone(), move || waiting.len() >= count).await;
    store.numbers()
}

/// The byte offsets at which the frames of a segment file start.
fn frame_starts(path: &Path) -> Vec<usize> {
    let bytes = std::fs::read(path).unwrap();
    let mut starts = Vec::new();
    let mut at = 0;
    while let Decoded::Frame { len, .. } = frame::decode(&bytes[at..]) {
        starts.push(at);
        at += len;
    }
    assert_eq!(at, bytes.len());
    starts
}

/// Flips a bit of the byte at `at`, in place (the writer may hold the file open).
fn flip_byte(path: &Path, at: usize) {
    use std::os::unix::fs::FileExt;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0];
    file.read_exact_at(&mut byte, at as u64).unwrap();
    file.write_all_at(&[byte[0] ^ 0x40], at as u64).unwrap();
}

#[tokio::test]
async fn records_left_unshipped_are_delivered_after_reopening() {
    let dir = TempDir::new("reopen");
    let (spool, shipper, _) = open(config(dir.path()));
    append_durably(&spool, 0..100).await;
    let unshipped = spool.unshipped_bytes();
    drop((spool, shipper));

    let (spool, shipper, metrics) = open(config(dir.path()));
    assert_eq!(spool.unshipped_bytes(), unshipped);
    assert_eq!(metrics.unshipped_bytes.get() as u64, unshipped);
    assert_numbers(&ship(shipper, 100).await, 0..100);
    assert_eq!(spool.unshipped_bytes(), 0);
}

#[tokio::test]
async fn only_records_after_the_checkpoint_are_delivered_again() {
    let dir = TempDir::new("checkpoint-resume");
    let (spool, shipper, _) = open(config(dir.path()));
    append_durably(&spool, 0..100).await;
    // ship the first hundred, then spool fifty more that are never shipped
    let store = Arc::new(Recorder::default());
    let waiting = store.clone();
    ship_until(shipper, store.clone(), move || waiting.len() >= 100).await;
    append_durably(&spool, 100..150).await;
    drop(spool);

    let (_spool, shipper, _) = open(config(dir.path()));
    assert_numbers(&ship(shipper, 50).await, 100..150);
}

#[tokio::test]
async fn a_torn_tail_is_cut_the_complete_records_are_delivered_and_appends_go_on() {
    let dir = TempDir::new("torn");
    let (spool, shipper, _) = open(config(dir.path()));
    append_durably(&spool, 0..10).await;
    drop((spool, shipper));
    let files = segment_files(dir.path());
    let last = files.last().unwrap();
    let starts = frame_starts(last);
    // a crash in the middle of writing the tenth record
    let cut = starts[9] + 20;
    OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(cut as u64)
        .unwrap();

    let (spool, shipper, metrics) = open(config(dir.path()));
    assert_eq!(std::fs::metadata(last).unwrap().len(), starts[9] as u64);
    assert_eq!(
        metrics.corrupt_frames.get(),
        0,
        "a torn tail is not corruption"
    );
    append_durably(&spool, 10..15).await;
    let mut expected: Vec<_> = (0..9).collect();
    expected.extend(10..15);
    assert_numbers(&ship(shipper, 14).await, expected);
}

#[tokio::test]
async fn a_corrupted_frame_found_on_opening_is_reported_and_the_rest_still_ships() {
    let dir = TempDir::new("corrupt-open");
    let (spool, shipper, _) = open(config(dir.path()));
    append_durably(&spool, 0..10).await;
    drop((spool, shipper));
    let files = segment_files(dir.path());
    let starts = frame_starts(&files[0]);
    // a bit flip inside the third record, with intact records after it
    flip_byte(&files[0], starts[2] + 30);
    let len = std::fs::metadata(&files[0]).unwrap().len();

    let (spool, shipper, metrics) = open(config(dir.path()));
    assert_eq!(metrics.corrupt_frames.get(), 1);
    // kept for inspection: the corrupt bytes are not cut off like a torn tail
    assert_eq!(std::fs::metadata(&files[0]).unwrap().len(), len);
    append_durably(&spool, 10..12).await;
    assert_numbers(&ship(shipper, 4).await, [0, 1, 10, 11]);
}

#[tokio::test]
async fn a_frame_corrupted_after_it_was_written_is_reported_while_shipping() {
    let dir = TempDir::new("corrupt-ship");
    let (spool, shipper, metrics) = open(config(dir.path()));
    append_durably(&spool, 0..10).await;
    let files = segment_files(dir.path());
    let starts = frame_starts(&files[0]);
    flip_byte(&files[0], starts[3] + 30);
    let store = Arc::new(Recorder::default());
    let waiting = store.clone();
    let shipping = tokio::spawn(ship_until(shipper, store.clone(), move || {
        waiting.len() >= 5
    }));
    // later commits are readable again
    until(Duration::from_secs(10), || {
        metrics.corrupt_frames.get() == 1
    })
    .await;
    append_durably(&spool, 10..12).await;
    shipping.await.unwrap();
    assert_numbers(&store.numbers(), [0, 1, 2, 10, 11]);
    assert_eq!(
        spool.unshipped_bytes(),
        0,
        "the unreadable bytes are released too"
    );
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_fails_naming_it() {
    let dir = TempDir::new("lock");
    let (spool, shipper) = open_registered(config(dir.path())).unwrap();
    let err = open_registered(config(dir.path())).unwrap_err();
    assert!(matches!(err, SpoolError::Locked { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    assert!(
        text.contains(&format!(
            "locked by another process (pid {})",
            std::process::id()
        )),
        "{text}"
    );
    drop((spool, shipper));
    // released with the spool
    open_registered(config(dir.path())).unwrap();
}

#[test]
fn a_config_with_a_zero_limit_is_refused() {
    let dir = TempDir::new("zero");
    let err = open_registered(SpoolConfig {
        batch_records: 0,
        ..config(dir.path())
    })
    .unwrap_err();
    assert!(matches!(err, SpoolError::Config(_)), "{err}");
}

#[test]
fn a_missing_directory_is_created() {
    let dir = TempDir::new("create");
    let nested = dir.path().join("a").join("spool");
    let (spool, _shipper) = open_registered(config(&nested)).unwrap();
    assert!(nested.join("LOCK").exists());
    assert_eq!(spool.unshipped_bytes(), 0);
}
