//! The PostgreSQL store's operations beyond the contract: migrations under concurrent
//! starts, an outage and the reconnect after it, and URLs whose password must never show.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod ledger_support;

use std::sync::Arc;
use std::time::Duration;

use cheapai_gateway::ledger::{self, Ledger, LedgerError, LedgerOptions, StoreConfig};
use cheapai_gateway::secret::Secret;
use cheapai_gateway::usage::UsageRecord;
use common::postgres::TestPostgres;
use ledger_support::{day_start, query, record};

/// Instances starting together apply each migration once; `migrate` then has nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrations_apply_once_under_concurrent_starts() {
    let server = tokio::task::spawn_blocking(TestPostgres::start_new)
        .await
        .unwrap();
    let config = StoreConfig::Postgres {
        url: Secret::new(server.create_database("fresh")),
    };
    let (a, b, c, d) = tokio::join!(
        ledger::open(&config, 30),
        ledger::open(&config, 30),
        ledger::open(&config, 30),
        ledger::open(&config, 30),
    );
    let ledgers: Vec<Arc<dyn Ledger>> = [a, b, c, d].into_iter().map(Result::unwrap).collect();
    assert_eq!(
        server.psql(
            "fresh",
            "SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations"
        ),
        "0001_ledger,0002_responses"
    );
    assert_eq!(
        ledger::migrate(&config).await.unwrap(),
        Vec::<String>::new()
    );

    // instances importing records of a day without a partition yet make it once, together
    let old_day = day_start(20);
    let batches: Vec<Vec<UsageRecord>> = (0..4u64)
        .map(|i| {
            (0..50u64)
                .map(|n| record(i * 100 + n, "k", "m", old_day + n * 1_000))
                .collect()
        })
        .collect();
    let (w, x, y, z) = tokio::join!(
        ledgers[0].insert(&batches[0]),
        ledgers[1].insert(&batches[1]),
        ledgers[2].insert(&batches[2]),
        ledgers[3].insert(&batches[3]),
    );
    assert_eq!(w.unwrap() + x.unwrap() + y.unwrap() + z.unwrap(), 200);
    assert_eq!(
        server.psql("fresh", "SELECT count(*) FROM ledger_records"),
        "200"
    );

    let cli = StoreConfig::Postgres {
        url: Secret::new(server.create_database("cli")),
    };
    assert_eq!(
        ledger::migrate(&cli).await.unwrap(),
        vec!["0001_ledger".to_string(), "0002_responses".to_string()]
    );
}

/// PostgreSQL gone: calls fail as "unavailable" within the deadline; back on the same port:
/// the same ledger works again without being reopened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_unavailable_then_recovers() {
    let mut server = tokio::task::spawn_blocking(TestPostgres::start_new)
        .await
        .unwrap();
    let config = StoreConfig::Postgres {
        url: Secret::new(server.url()),
    };
    let options = LedgerOptions {
        call_timeout: Duration::from_secs(2),
        ..LedgerOptions::new(30)
    };
    let ledger = ledger::open_with(&config, &options).await.unwrap();
    let base = day_start(0);
    assert_eq!(
        ledger.insert(&[record(1, "k", "m", base)]).await.unwrap(),
        1
    );

    let mut server = tokio::task::spawn_blocking(move || {
        server.stop();
        server
    })
    .await
    .unwrap();
    let started = std::time::Instant::now();
    match ledger.insert(&[record(2, "k", "m", base + 1)]).await {
        Err(e @ LedgerError::Unavailable(_)) => assert!(e.is_retryable()),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        ledger.ping().await,
        Err(LedgerError::Unavailable(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(5));

    let server = tokio::task::spawn_blocking(move || {
        server.start();
        server
    })
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ledger.ping().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "no reconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        ledger
            .insert(&[record(2, "k", "m", base + 1)])
            .await
            .unwrap(),
        1
    );
    let page = ledger.records(&query(Some("k"), 10)).await.unwrap();
    assert_eq!(page.records.len(), 2);
    drop(server);
}

/// A URL's password appears in no error.
#[tokio::test]
async fn postgres_errors_never_show_the_password() {
    let port = common::free_port();
    let config = StoreConfig::Postgres {
        url: Secret::new(format!(
            "postgres://ledger:hunter2-secret@127.0.0.1:{port}/usage"
        )),
    };
    let options = LedgerOptions {
        call_timeout: Duration::from_secs(2),
        ..LedgerOptions::new(30)
    };
    match ledger::open_with(&config, &options).await {
        Err(e @ LedgerError::Unavailable(_)) => {
            let text = e.to_string();
            assert!(!text.contains("hunter2"), "{text}");
            assert!(
                text.contains(&format!("postgres://ledger@127.0.0.1:{port}/usage")),
                "{text}"
            );
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("opened a ledger on a closed port"),
    }
    match ledger::migrate(&config).await {
        Err(e) => assert!(!e.to_string().contains("hunter2"), "{e}"),
        Ok(_) => panic!("migrated on a closed port"),
    }
}
