//! The usage ledger's contract, run on both stores: an SQLite file in a temp directory and a
//! throwaway PostgreSQL server (tests/common/postgres.rs). Each case is one function taking
//! a store; `contract!` runs it on SQLite, on PostgreSQL, and (where the batch path matters)
//! on PostgreSQL with the multi-row INSERT path instead of COPY.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod ledger_support;

use std::collections::BTreeSet;
use std::time::Duration;

use cheapai_gateway::ledger::{
    import_jsonl, Ingest, LedgerError, RecordQuery, Totals, TotalsQuery,
};
use cheapai_gateway::usage::UsageRecord;
use ledger_support::*;

/// Runs a case on every store.
macro_rules! contract {
    ($case:ident) => {
        contract!($case, sqlite, postgres);
    };
    ($case:ident, $($store:ident),+) => {
        mod $case {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $store() {
                    let store = super::Store::$store().await;
                    super::$case(&store).await;
                }
            )+
        }
    };
}

/// The same case on PostgreSQL with batches sent as multi-row INSERTs.
macro_rules! with_values_ingest {
    ($case:ident, $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let store = Store::postgres_with(Ingest::Values).await;
            $case(&store).await;
        }
    };
}

async fn every_field_round_trips(store: &Store) {
    let base = day_start(2) + 5 * HOUR;
    let mut edge = record(1, "k_a", "gpt-4o", base);
    edge.prompt_tokens = i32::MAX as u64;
    edge.cost_micro_usd = 9_000_000_000_000;
    edge.ttft_ms = None;
    edge.status = 599;
    edge.attempts = 3;
    edge.stream = true;
    edge.client_disconnected = true;
    edge.estimated = true;
    edge.reasoning_dropped = true;
    edge.error = Some("provider_error: 502".into());
    let mut foreign = record(2, "k_a", "claude-3-5-sonnet", base + 1);
    foreign.request_id = "chatcmpl-imported-Ä".into();
    let mut empty_id = record(3, "k_b", "ollama:llama3:8b", base + 2);
    empty_id.request_id = String::new();
    empty_id.ttft_ms = Some(0);
    let batch = vec![edge.clone(), foreign.clone(), empty_id.clone()];
    assert_eq!(store.ledger.insert(&batch).await.unwrap(), 3);

    let page = store.ledger.records(&query(None, 10)).await.unwrap();
    assert_eq!(page.records, vec![empty_id, foreign.clone(), edge.clone()]);
    assert_eq!(page.next, None);
    let a = store.ledger.records(&query(Some("k_a"), 10)).await.unwrap();
    assert_eq!(a.records, vec![foreign, edge]);
    let none = store
        .ledger
        .records(&query(Some("k_zz"), 10))
        .await
        .unwrap();
    assert!(none.records.is_empty() && none.next.is_none());
}
contract!(every_field_round_trips);
with_values_ingest!(every_field_round_trips, every_field_round_trips_values);

async fn pages_neither_skip_nor_repeat(store: &Store) {
    let base = day_start(3);
    // 50 timestamps × 5 records of k_a (equal timestamps), k_b's records interleaved
    let mut batch = Vec::new();
    for n in 0..250u64 {
        let model = if n.is_multiple_of(3) {
            "m_rare"
        } else {
            "m_common"
        };
        batch.push(record(n, "k_a", model, base + (n / 5) * 60_000));
    }
    for n in 250..330u64 {
        batch.push(record(n, "k_b", "m_common", base + (n - 250) * 37_000));
    }
    for chunk in batch.chunks(100) {
        store.ledger.insert(chunk).await.unwrap();
    }
    let of_a: Vec<&UsageRecord> = batch.iter().filter(|r| r.key_id == "k_a").collect();

    for limit in [1, 7, 250, 1000] {
        let got = all_pages(&*store.ledger, query(Some("k_a"), limit)).await;
        assert_eq!(got.len(), 250, "limit {limit}");
        assert_eq!(ids(&got).len(), 250, "limit {limit}: a record repeated");
        assert!(newest_first(&got));
        assert!(got.iter().all(|r| r.key_id == "k_a"));
    }
    let everyone = all_pages(&*store.ledger, query(None, 9)).await;
    assert_eq!(ids(&everyone), ids(&batch));
    assert_eq!(everyone.len(), batch.len());
    assert!(newest_first(&everyone));

    // the model filter
    let rare = all_pages(
        &*store.ledger,
        RecordQuery {
            model: Some("m_rare".into()),
            ..query(Some("k_a"), 11)
        },
    )
    .await;
    let want: BTreeSet<String> = of_a
        .iter()
        .filter(|r| r.model == "m_rare")
        .map(|r| r.request_id.clone())
        .collect();
    assert_eq!(ids(&rare), want);
    assert_eq!(rare.len(), want.len());

    // the time range: from inclusive, to exclusive
    let (from, to) = (base + 10 * 60_000, base + 20 * 60_000);
    let ranged = all_pages(
        &*store.ledger,
        RecordQuery {
            from_ms: from,
            to_ms: to,
            ..query(Some("k_a"), 6)
        },
    )
    .await;
    let want: BTreeSet<String> = of_a
        .iter()
        .filter(|r| r.timestamp_ms >= from && r.timestamp_ms < to)
        .map(|r| r.request_id.clone())
        .collect();
    assert_eq!(want.len(), 50);
    assert_eq!(ids(&ranged), want);
    let ranged_all = all_pages(
        &*store.ledger,
        RecordQuery {
            from_ms: from,
            to_ms: to,
            ..query(None, 13)
        },
    )
    .await;
    let want_all: BTreeSet<String> = batch
        .iter()
        .filter(|r| r.timestamp_ms >= from && r.timestamp_ms < to)
        .map(|r| r.request_id.clone())
        .collect();
    assert_eq!(ids(&ranged_all), want_all);

    // limit bounds and cursors that this ledger did not make
    for limit in [0, 1001] {
        match store.ledger.records(&query(Some("k_a"), limit)).await {
            Err(LedgerError::BadInput(_)) => {}
            other => panic!("limit {limit}: {other:?}"),
        }
    }
    for bad in ["x", "not-a-cursor!", "AAAA"] {
        let q = RecordQuery {
            after: Some(bad.into()),
            ..query(Some("k_a"), 10)
        };
        match store.ledger.records(&q).await {
            Err(LedgerError::BadCursor(_)) => {}
            other => panic!("cursor {bad:?}: {other:?}"),
        }
    }
}
contract!(pages_neither_skip_nor_repeat);

async fn totals_come_from_the_rollups(store: &Store) {
    let d0 = day_start(4);
    let mut batch = Vec::new();
    for n in 0..120u64 {
        let key = if n.is_multiple_of(4) { "k_b" } else { "k_a" };
        let model = if n.is_multiple_of(3) {
            "gpt-4o-mini"
        } else {
            "gpt-4o"
        };
        // three days, several hours each
        let ts = d0 + (n % 3) * DAY + (n % 5) * HOUR + n * 1_000;
        batch.push(record(n, key, model, ts));
    }
    store.ledger.insert(&batch).await.unwrap();
    let all_range = TotalsQuery {
        key_id: None,
        from_ms: d0,
        to_ms: d0 + 3 * DAY,
    };
    let everyone = store.ledger.totals(&all_range).await.unwrap();
    assert_eq!(everyone, expected_totals(&batch.iter().collect::<Vec<_>>()));
    assert_eq!(everyone.by_day.len(), 3);
    assert_eq!(everyone.total.requests, 120);
    assert_eq!(everyone.total.errors, 12);

    let of_a = store
        .ledger
        .totals(&TotalsQuery {
            key_id: Some("k_a".into()),
            ..all_range.clone()
        })
        .await
        .unwrap();
    let a: Vec<&UsageRecord> = batch.iter().filter(|r| r.key_id == "k_a").collect();
    assert_eq!(of_a, expected_totals(&a));

    // whole hours: [d0 + 1h30, d0 + 2h10) reads hours 1 and 2 of day 0
    let hours = store
        .ledger
        .totals(&TotalsQuery {
            key_id: Some("k_a".into()),
            from_ms: d0 + HOUR + HOUR / 2,
            to_ms: d0 + 2 * HOUR + HOUR / 6,
        })
        .await
        .unwrap();
    let in_hours: Vec<&UsageRecord> = a
        .iter()
        .copied()
        .filter(|r| r.timestamp_ms >= d0 + HOUR && r.timestamp_ms < d0 + 3 * HOUR)
        .collect();
    assert!(!in_hours.is_empty());
    assert_eq!(hours, expected_totals(&in_hours));

    let empty = store
        .ledger
        .totals(&TotalsQuery {
            key_id: Some("k_nobody".into()),
            ..all_range
        })
        .await
        .unwrap();
    assert_eq!(empty, Totals::default());
}
contract!(totals_come_from_the_rollups);

async fn redelivery_stores_each_record_once(store: &Store) {
    let base = day_start(1) + 3 * HOUR;
    let batch: Vec<UsageRecord> = (0..100u64)
        .map(|n| {
            record(
                n,
                "k_a",
                if n.is_multiple_of(2) { "a" } else { "b" },
                base + n * 1_000,
            )
        })
        .collect();
    assert_eq!(store.ledger.insert(&batch).await.unwrap(), 100);
    assert_eq!(store.ledger.insert(&batch).await.unwrap(), 0);
    // overlapping: 50 already stored, 50 new, one new record twice in the batch
    let mut overlap: Vec<UsageRecord> = (50..150u64)
        .map(|n| {
            record(
                n,
                "k_a",
                if n.is_multiple_of(2) { "a" } else { "b" },
                base + n * 1_000,
            )
        })
        .collect();
    overlap.push(overlap[60].clone());
    assert_eq!(store.ledger.insert(&overlap).await.unwrap(), 50);
    // one new batch sent by two instances at once
    let other = store.another(400).await;
    let fresh: Vec<UsageRecord> = (150..250u64)
        .map(|n| record(n, "k_a", "a", base + n * 1_000))
        .collect();
    let (one, two) = tokio::join!(store.ledger.insert(&fresh), other.insert(&fresh));
    assert_eq!(one.unwrap() + two.unwrap(), 100);
    // a batch of only new records, one of them twice: 64 rows, 63 records
    let mut twice: Vec<UsageRecord> = (250..313u64)
        .map(|n| record(n, "k_a", "a", base + n * 1_000))
        .collect();
    twice.insert(40, twice[3].clone());
    assert_eq!(store.ledger.insert(&twice).await.unwrap(), 63);

    let unique: Vec<UsageRecord> = (0..313u64)
        .map(|n| {
            let model = if n >= 150 || n.is_multiple_of(2) {
                "a"
            } else {
                "b"
            };
            record(n, "k_a", model, base + n * 1_000)
        })
        .collect();
    let stored = all_pages(&*store.ledger, query(Some("k_a"), 1000)).await;
    assert_eq!(stored.len(), 313);
    assert_eq!(ids(&stored), ids(&unique));
    let totals = store
        .ledger
        .totals(&TotalsQuery {
            key_id: Some("k_a".into()),
            from_ms: 0,
            to_ms: u64::MAX,
        })
        .await
        .unwrap();
    assert_eq!(totals, expected_totals(&unique.iter().collect::<Vec<_>>()));
}
contract!(redelivery_stores_each_record_once);
with_values_ingest!(
    redelivery_stores_each_record_once,
    redelivery_stores_each_record_once_values
);

async fn retention_drops_old_days(store: &Store) {
    let old_day = day_start(100);
    let recent_day = day_start(1);
    let old: Vec<UsageRecord> = (0..20u64)
        .map(|n| record(n, "k_a", "m", old_day + n * HOUR))
        .collect();
    let recent: Vec<UsageRecord> = (20..30u64)
        .map(|n| record(n, "k_a", "m", recent_day + n * 60_000))
        .collect();
    assert_eq!(store.ledger.insert(&old).await.unwrap(), 20);
    assert_eq!(store.ledger.insert(&recent).await.unwrap(), 10);
    let old_name = format!(
        "ledger_records_{}",
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(old_day))
            .to_string()[..10]
            .replace('-', "")
    );
    if let Some(server) = &store.server {
        let exists = format!("SELECT count(*) FROM pg_class WHERE relname = '{old_name}'");
        assert_eq!(
            server.psql("ledger", &exists),
            "1",
            "the old day's partition"
        );
    }

    let short = store.another(30).await;
    // a store keeping 30 days does not take records older than that
    let older = record(99, "k_a", "m", old_day + 1);
    assert_eq!(short.insert(&[older]).await.unwrap(), 0);

    let report = short.enforce_retention(now()).await.unwrap();
    assert_eq!(report.cutoff_ms, day_start(30));
    match &store.server {
        Some(server) => {
            assert!(report.partitions_dropped.contains(&old_name), "{report:?}");
            let exists = format!("SELECT count(*) FROM pg_class WHERE relname = '{old_name}'");
            assert_eq!(server.psql("ledger", &exists), "0");
        }
        None => assert_eq!(report.rows_deleted, 20),
    }
    let left = all_pages(&*store.ledger, query(Some("k_a"), 100)).await;
    assert_eq!(ids(&left), ids(&recent));
    let totals = |from, to| TotalsQuery {
        key_id: Some("k_a".into()),
        from_ms: from,
        to_ms: to,
    };
    let old_totals = store
        .ledger
        .totals(&totals(old_day, old_day + DAY))
        .await
        .unwrap();
    assert_eq!(old_totals, Totals::default());
    let recent_totals = store
        .ledger
        .totals(&totals(recent_day, recent_day + DAY))
        .await
        .unwrap();
    assert_eq!(recent_totals.total.requests, 10);
    // a second pass finds nothing more to drop
    let again = short.enforce_retention(now()).await.unwrap();
    assert!(again.partitions_dropped.is_empty() && again.rows_deleted == 0);
}
contract!(retention_drops_old_days);

async fn import_is_idempotent_and_reports_bad_lines(store: &Store) {
    let base = day_start(2);
    let records: Vec<UsageRecord> = (0..5u64)
        .map(|n| record(n, "k_imp", "gpt-4o", base + n * 1_000))
        .collect();
    let mut text = String::new();
    for (i, r) in records.iter().enumerate() {
        text.push_str(&serde_json::to_string(r).unwrap());
        text.push('\n');
        if i == 1 {
            text.push_str("{not json\n\n");
        }
    }
    text.push_str("{\"request_id\": 5}\n");
    let path = store.dir.join("usage.jsonl");
    std::fs::write(&path, text).unwrap();

    let first = import_jsonl(&*store.ledger, &path).await.unwrap();
    assert_eq!(first.lines, 8);
    assert_eq!(first.inserted, 5);
    assert_eq!(first.malformed, 2);
    let lines: Vec<u64> = first.malformed_lines.iter().map(|(n, _)| *n).collect();
    assert_eq!(lines, vec![3, 8]);
    let second = import_jsonl(&*store.ledger, &path).await.unwrap();
    assert_eq!(second.inserted, 0);
    assert_eq!(second.malformed, 2);
    let stored = all_pages(&*store.ledger, query(Some("k_imp"), 100)).await;
    assert_eq!(ids(&stored), ids(&records));
    let mut want = records.clone();
    want.reverse();
    assert_eq!(stored, want);
}
contract!(import_is_idempotent_and_reports_bad_lines);

/// A store keeps working for callers on one runtime after the runtime that opened (and
/// used) it has stopped: Pingora runs each service on a runtime of its own, and they stop at
/// different times.
#[test]
fn stores_outlive_the_runtime_that_opened_them() {
    let runtime = |name: &str| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()
            .unwrap()
    };
    for kind in ["sqlite", "postgres"] {
        let opener = runtime("opener");
        let store = opener.block_on(async {
            match kind {
                "sqlite" => Store::sqlite().await,
                _ => Store::postgres().await,
            }
        });
        let base = day_start(1);
        let first = opener.block_on(store.ledger.insert(&[record(1, "k", "m", base)]));
        assert_eq!(first.unwrap(), 1, "{kind}");
        drop(opener);
        let caller = runtime("caller");
        caller.block_on(async {
            let second = store.ledger.insert(&[record(2, "k", "m", base + 1)]).await;
            assert_eq!(second.unwrap(), 1, "{kind}");
            let page = store.ledger.records(&query(Some("k"), 10)).await.unwrap();
            assert_eq!(page.records.len(), 2, "{kind}");
            store.ledger.ping().await.unwrap();
        });
        drop(caller);
    }
}
