//! The stored responses' contract (`ledger::ResponseStore`), run on both stores: an SQLite
//! file in a temp directory and a throwaway PostgreSQL server (tests/common/postgres.rs).
//! Each case is one function taking a store; `contract!` runs it on each.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod ledger_support;

use cheapai_gateway::ledger::responses::MAX_CHAIN;
use cheapai_gateway::ledger::{self, StoreConfig, StoredResponse};
use ledger_support::*;

/// Runs a case on every store.
macro_rules! contract {
    ($case:ident) => {
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let store = super::Store::sqlite().await;
                super::$case(&store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let store = super::Store::postgres().await;
                super::$case(&store).await;
            }
        }
    };
}

/// A fixed "now" (Unix ms) the cases count from.
const T0: u64 = 1_760_000_000_000;
/// How long the cases' responses live unless told otherwise.
const LIFE: u64 = 30 * DAY;

fn stored(id: &str, key: &str, previous: Option<&str>, expires_ms: u64) -> StoredResponse {
    StoredResponse {
        id: id.into(),
        key_id: key.into(),
        previous_id: previous.map(str::to_string),
        created_ms: T0,
        expires_ms,
        input: format!(r#"[{{"id":"msg_{id}","type":"message","role":"user","content":"hi"}}]"#),
        response: format!(r#"{{"id":"{id}","object":"response","output":[]}}"#),
    }
}

/// A chain of `n` responses of `key`, `{prefix}0` the oldest, each continuing the one before.
async fn put_chain(store: &Store, prefix: &str, key: &str, n: usize, expires_ms: u64) {
    for i in 0..n {
        let previous = (i > 0).then(|| format!("{prefix}{}", i - 1));
        let r = stored(
            &format!("{prefix}{i}"),
            key,
            previous.as_deref(),
            expires_ms,
        );
        store.ledger.put_response(&r).await.unwrap();
    }
}

/// The ids of a conversation, oldest first.
async fn chain_ids(store: &Store, key: &str, id: &str, now_ms: u64) -> Option<Vec<String>> {
    store
        .ledger
        .conversation(key, id, now_ms)
        .await
        .unwrap()
        .map(|chain| chain.into_iter().map(|r| r.id).collect())
}

fn names(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

async fn every_field_round_trips(store: &Store) {
    // a ~1 MB response with text of every width, and an input with escapes and unicode
    let text = "Grüße, 世界! 🦀 e\u{301} \\\"quoted\\\" ".repeat(30_000);
    let first = StoredResponse {
        id: "resp_0001_été".into(),
        key_id: "key_ünï".into(),
        previous_id: None,
        created_ms: 0,
        expires_ms: i64::MAX as u64,
        input: r#"[{"id":"msg_1","role":"user","content":"naïve \u0000 ½ 🎉\n"}]"#.into(),
        response: format!(r#"{{"output":[{{"type":"message","text":"{text}"}}]}}"#),
    };
    assert!(first.response.len() > 1_000_000, "{}", first.response.len());
    let second = StoredResponse {
        id: "resp_0002".into(),
        previous_id: Some(first.id.clone()),
        created_ms: T0,
        expires_ms: T0 + LIFE,
        input: "[]".into(),
        response: "{}".into(),
        ..first.clone()
    };
    store.ledger.put_response(&first).await.unwrap();
    store.ledger.put_response(&second).await.unwrap();

    let got = store.ledger.response(&first.key_id, &first.id, T0).await;
    assert_eq!(got.unwrap(), Some(first.clone()));
    let got = store.ledger.response(&second.key_id, &second.id, T0).await;
    assert_eq!(got.unwrap(), Some(second.clone()));
    let chain = store.ledger.conversation(&second.key_id, &second.id, T0);
    assert_eq!(chain.await.unwrap(), Some(vec![first, second]));
    let absent = store.ledger.response("key_ünï", "resp_missing", T0).await;
    assert_eq!(absent.unwrap(), None);
}
contract!(every_field_round_trips);

async fn another_keys_response_is_absent(store: &Store) {
    let mine = stored("resp_a", "k_a", None, T0 + LIFE);
    store.ledger.put_response(&mine).await.unwrap();

    let ledger = &store.ledger;
    assert_eq!(ledger.response("k_b", "resp_a", T0).await.unwrap(), None);
    assert_eq!(
        ledger.conversation("k_b", "resp_a", T0).await.unwrap(),
        None
    );
    assert!(!ledger.delete_response("k_b", "resp_a", T0).await.unwrap());
    // the other key's attempts left it as it was
    assert_eq!(
        ledger.response("k_a", "resp_a", T0).await.unwrap(),
        Some(mine)
    );
    // a chain that claims another key's response as its previous one stops before it
    let theirs = stored("resp_b", "k_b", Some("resp_a"), T0 + LIFE);
    ledger.put_response(&theirs).await.unwrap();
    assert_eq!(
        chain_ids(store, "k_b", "resp_b", T0).await,
        Some(vec!["resp_b".to_string()])
    );
}
contract!(another_keys_response_is_absent);

async fn expired_responses_are_absent_then_purged(store: &Store) {
    let ledger = &store.ledger;
    let expires = T0 + HOUR;
    ledger
        .put_response(&stored("resp_x", "k", None, expires))
        .await
        .unwrap();
    assert!(ledger
        .response("k", "resp_x", expires - 1)
        .await
        .unwrap()
        .is_some());
    assert_eq!(ledger.response("k", "resp_x", expires).await.unwrap(), None);
    assert_eq!(
        ledger.conversation("k", "resp_x", expires).await.unwrap(),
        None
    );
    assert!(!ledger
        .delete_response("k", "resp_x", expires)
        .await
        .unwrap());

    // c0 ← c1 ← c2 ← c3 with c1 expiring first: past its expiry, c3's chain is c2, c3
    put_chain(store, "c", "k", 4, T0 + LIFE).await;
    ledger
        .put_response(&stored("c1", "k", Some("c0"), T0 + 2 * HOUR))
        .await
        .unwrap();
    assert_eq!(
        chain_ids(store, "k", "c3", T0 + 2 * HOUR - 1).await,
        Some(names("c", 0..4))
    );
    assert_eq!(
        chain_ids(store, "k", "c3", T0 + 2 * HOUR).await,
        Some(names("c", 2..4))
    );

    // purging at T0 + 2h deletes resp_x and c1 (expired at or before it), nothing else
    assert_eq!(ledger.purge_responses(T0 + 2 * HOUR).await.unwrap(), 2);
    // gone for good: not found even by a read at a time before their expiry
    assert_eq!(ledger.response("k", "resp_x", T0).await.unwrap(), None);
    assert_eq!(ledger.response("k", "c1", T0).await.unwrap(), None);
    for kept in ["c0", "c2", "c3"] {
        assert!(
            ledger.response("k", kept, T0).await.unwrap().is_some(),
            "{kept}"
        );
    }
    assert_eq!(
        chain_ids(store, "k", "c3", T0).await,
        Some(names("c", 2..4))
    );
    assert_eq!(ledger.purge_responses(T0 + 2 * HOUR).await.unwrap(), 0);
}
contract!(expired_responses_are_absent_then_purged);

async fn a_conversation_is_oldest_first(store: &Store) {
    put_chain(store, "turn_", "k", 5, T0 + LIFE).await;
    assert_eq!(
        chain_ids(store, "k", "turn_4", T0).await,
        Some(names("turn_", 0..5))
    );
    assert_eq!(
        chain_ids(store, "k", "turn_2", T0).await,
        Some(names("turn_", 0..3))
    );
    assert_eq!(
        chain_ids(store, "k", "turn_0", T0).await,
        Some(names("turn_", 0..1))
    );
    assert_eq!(chain_ids(store, "k", "turn_5", T0).await, None);
}
contract!(a_conversation_is_oldest_first);

async fn a_long_chain_keeps_its_newest_max_chain(store: &Store) {
    let links = MAX_CHAIN + 5;
    let expires = T0 + LIFE;
    put_chain(store, "l", "k", links, expires).await;
    assert_eq!(
        chain_ids(store, "k", &format!("l{}", links - 1), T0).await,
        Some(names("l", 5..links))
    );
    // their purge takes several chunks, and counts every one
    assert_eq!(
        store.ledger.purge_responses(expires).await.unwrap(),
        links as u64
    );
    assert_eq!(store.ledger.response("k", "l0", T0).await.unwrap(), None);
}
contract!(a_long_chain_keeps_its_newest_max_chain);

async fn a_deleted_response_is_gone(store: &Store) {
    let ledger = &store.ledger;
    put_chain(store, "d", "k", 2, T0 + LIFE).await;
    assert!(ledger.delete_response("k", "d1", T0).await.unwrap());
    assert_eq!(ledger.response("k", "d1", T0).await.unwrap(), None);
    assert_eq!(ledger.conversation("k", "d1", T0).await.unwrap(), None);
    assert!(!ledger.delete_response("k", "d1", T0).await.unwrap());
    // the response it continued stays
    assert_eq!(
        chain_ids(store, "k", "d0", T0).await,
        Some(names("d", 0..1))
    );
}
contract!(a_deleted_response_is_gone);

async fn instances_sharing_the_store_see_each_others_responses(store: &Store) {
    let other = store.another(400).await;
    let r = stored("resp_shared", "k", None, T0 + LIFE);
    store.ledger.put_response(&r).await.unwrap();
    // at once: the writer has returned, so any instance's next read finds it
    assert_eq!(
        other.response("k", "resp_shared", T0).await.unwrap(),
        Some(r.clone())
    );
    let next = stored("resp_next", "k", Some("resp_shared"), T0 + LIFE);
    other.put_response(&next).await.unwrap();
    let chain = store
        .ledger
        .conversation("k", "resp_next", T0)
        .await
        .unwrap();
    assert_eq!(chain, Some(vec![r, next]));
    assert!(other.delete_response("k", "resp_shared", T0).await.unwrap());
    assert_eq!(
        store.ledger.response("k", "resp_shared", T0).await.unwrap(),
        None
    );
}
contract!(instances_sharing_the_store_see_each_others_responses);

async fn a_put_on_the_same_id_replaces(store: &Store) {
    let first = stored("resp_r", "k", None, T0 + HOUR);
    store.ledger.put_response(&first).await.unwrap();
    let again = StoredResponse {
        previous_id: Some("resp_older".into()),
        created_ms: T0 + 5,
        expires_ms: T0 + LIFE,
        input: r#"[{"id":"msg_2"}]"#.into(),
        response: r#"{"id":"resp_r","status":"completed"}"#.into(),
        ..first
    };
    store.ledger.put_response(&again).await.unwrap();
    // the new expiry holds: read past the old one
    let got = store.ledger.response("k", "resp_r", T0 + 2 * HOUR).await;
    assert_eq!(got.unwrap(), Some(again.clone()));
    // one row: its chain is itself (its previous one is not stored)
    let chain = store.ledger.conversation("k", "resp_r", T0).await.unwrap();
    assert_eq!(chain, Some(vec![again]));
    assert_eq!(store.ledger.purge_responses(T0 + LIFE).await.unwrap(), 1);
}
contract!(a_put_on_the_same_id_replaces);

/// A store as the release before stored responses left it (migrated to 0001 only, records
/// in it) migrates to 0002 with its records intact. That store is made by taking 0002 back
/// off a fresh one: dropping its table and forgetting it was applied.
async fn a_ledger_of_0001_migrates_to_0002_with_its_records(store: &Store) {
    let base = day_start(1);
    let records: Vec<_> = (0..20u64)
        .map(|n| record(n, "k_mig", "m", base + n * 1_000))
        .collect();
    assert_eq!(store.ledger.insert(&records).await.unwrap(), 20);

    let undo = "DROP TABLE stored_responses; \
                DELETE FROM schema_migrations WHERE version = '0002_responses'";
    match (&store.config, &store.server) {
        (StoreConfig::Sqlite { path }, _) => {
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.execute_batch(undo).unwrap();
        }
        (StoreConfig::Postgres { .. }, Some(server)) => {
            server.psql("ledger", undo);
        }
        (StoreConfig::Postgres { .. }, None) => panic!("a PostgreSQL store without a server"),
    }
    // at 0001, there is nowhere to store a response
    let r = stored("resp_m", "k_mig", None, T0 + LIFE);
    assert!(store.ledger.put_response(&r).await.is_err());

    assert_eq!(
        ledger::migrate(&store.config).await.unwrap(),
        vec!["0002_responses".to_string()]
    );
    assert_eq!(
        ledger::migrate(&store.config).await.unwrap(),
        Vec::<String>::new()
    );
    let reopened = store.another(400).await;
    let mut want = records.clone();
    want.reverse();
    assert_eq!(all_pages(&*reopened, query(Some("k_mig"), 7)).await, want);
    reopened.put_response(&r).await.unwrap();
    assert_eq!(
        store.ledger.response("k_mig", "resp_m", T0).await.unwrap(),
        Some(r)
    );
}
contract!(a_ledger_of_0001_migrates_to_0002_with_its_records);

/// Latencies on each store, printed (not a pass/fail bound: the machine is shared). Run with
/// `cargo test --release --test response_store measured -- --ignored --nocapture
/// --test-threads=1`.
async fn measured(store: &Store) {
    use std::time::Instant;
    fn ms(since: Instant) -> f64 {
        since.elapsed().as_secs_f64() * 1000.0
    }
    fn percentiles(mut v: Vec<f64>) -> String {
        v.sort_by(f64::total_cmp);
        format!(
            "p50 {:.2} ms, p99 {:.2} ms",
            v[v.len() / 2],
            v[v.len() * 99 / 100]
        )
    }
    let kind = store.ledger.kind();
    let ledger = &store.ledger;
    let links = MAX_CHAIN + 5;
    let expires = T0 + LIFE;
    let start = Instant::now();
    for i in 0..links {
        let previous = (i > 0).then(|| format!("l{}", i - 1));
        let r = StoredResponse {
            response: "x".repeat(2_000),
            ..stored(&format!("l{i}"), "k", previous.as_deref(), expires)
        };
        ledger.put_response(&r).await.unwrap();
    }
    println!(
        "{kind}: put of a 2 KB response: {:.2} ms each (sequential)",
        ms(start) / links as f64
    );
    for (newest, len) in [(links - 1, MAX_CHAIN), (9, 10)] {
        let mut took = Vec::new();
        for _ in 0..50 {
            let start = Instant::now();
            let chain = ledger.conversation("k", &format!("l{newest}"), T0).await;
            took.push(ms(start));
            assert_eq!(chain.unwrap().map(|c| c.len()), Some(len));
        }
        println!("{kind}: conversation of {len}: {}", percentiles(took));
    }
    let mut took = Vec::new();
    for i in 0..500 {
        let start = Instant::now();
        let found = ledger.response("k", &format!("l{i}"), T0).await.unwrap();
        took.push(ms(start));
        assert!(found.is_some());
    }
    println!("{kind}: response by id: {}", percentiles(took));
    let mut took = Vec::new();
    for i in 0..20 {
        let big = StoredResponse {
            response: "x".repeat(1 << 20),
            ..stored(&format!("big{i}"), "k", None, expires)
        };
        let start = Instant::now();
        ledger.put_response(&big).await.unwrap();
        took.push(ms(start));
    }
    println!("{kind}: put of a 1 MB response: {}", percentiles(took));
    let start = Instant::now();
    let purged = ledger.purge_responses(expires).await.unwrap();
    assert_eq!(purged, links as u64 + 20);
    println!("{kind}: purge of {purged}: {:.1} ms", ms(start));
}

mod measured {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "prints latencies; run on its own"]
    async fn sqlite() {
        super::measured(&super::Store::sqlite().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "prints latencies; run on its own"]
    async fn postgres() {
        super::measured(&super::Store::postgres().await).await;
    }
}
