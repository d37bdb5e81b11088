//! Writes to the SQLite ledger: a batch in one transaction (records, new dictionary names,
//! rollups of the records that were new), and retention in bounded chunks.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::{error, Writer};
use crate::ledger::row::Row;
use crate::ledger::totals::{hour_of, HOUR_MS};
use crate::ledger::{Dict, LedgerError};
use crate::usage::UsageRecord;

/// Rows deleted per retention chunk: a few milliseconds of writer time each.
const DELETE_CHUNK: usize = 5_000;

/// One rollup's additions: requests, errors, prompt, completion, cached, cache-write tokens,
/// micro-USD.
type Adds = [i64; 7];

/// Inserts the records of `batch` not stored yet (and not older than `cutoff`), adding only
/// those to the rollups; all in one transaction.
pub fn insert(
    w: &mut Writer,
    name: &str,
    batch: &[UsageRecord],
    cutoff: i64,
) -> Result<usize, LedgerError> {
    // every record is checked before anything is written: a bad one fails the whole batch
    let rows = batch
        .iter()
        .map(Row::from_record)
        .collect::<Result<Vec<_>, _>>()?;
    let err = |what: &str| {
        let what = what.to_string();
        move |e| error(name, &what, e)
    };
    let tx = w
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err("begin"))?;
    let mut fresh: HashMap<(Dict, String), i64> = HashMap::new();
    let mut rollups: BTreeMap<(i64, i64, i64), Adds> = BTreeMap::new();
    let mut inserted = 0;
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO ledger_records (ts, key_id, model_id, provider_id, endpoint_id, \
                 error_id, status, attempts, flags, prompt_tokens, completion_tokens, \
                 cached_tokens, cache_write_tokens, cost_micro_usd, duration_ms, ttft_ms, rid, \
                 rid_text) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, \
                 ?15, ?16, ?17, ?18) ON CONFLICT (rid) DO NOTHING",
            )
            .map_err(err("preparing the insert"))?;
        for row in rows.iter().filter(|r| r.timestamp_ms >= cutoff) {
            let mut id =
                |dict, text: &str| dictionary_id(&tx, name, &w.ids, &mut fresh, dict, text);
            let key = id(Dict::Key, row.key)?;
            let model = id(Dict::Model, row.model)?;
            let provider = id(Dict::Provider, row.provider)?;
            let endpoint = id(Dict::Endpoint, row.endpoint)?;
            let error_id = row
                .error
                .map(|e| id(Dict::Error, e))
                .transpose()?
                .unwrap_or(0);
            let new = insert
                .execute(params![
                    row.timestamp_ms,
                    key,
                    model,
                    provider,
                    endpoint,
                    error_id,
                    row.status,
                    row.attempts,
                    row.flags,
                    row.prompt_tokens,
                    row.completion_tokens,
                    row.cached_tokens,
                    row.cache_write_tokens,
                    row.cost_micro_usd,
                    row.duration_ms,
                    row.ttft_ms,
                    &row.id.bytes[..],
                    row.id_text(),
                ])
                .map_err(err("inserting a record"))?;
            if new == 1 {
                inserted += 1;
                let adds = rollups
                    .entry((key, hour_of(row.timestamp_ms), model))
                    .or_default();
                for (sum, n) in adds.iter_mut().zip([
                    1,
                    i64::from(row.error.is_some()),
                    row.prompt_tokens.into(),
                    row.completion_tokens.into(),
                    row.cached_tokens.into(),
                    row.cache_write_tokens.into(),
                    row.cost_micro_usd,
                ]) {
                    *sum = sum.saturating_add(n);
                }
            }
        }
        add_rollups(&tx, name, &rollups)?;
    }
    tx.commit().map_err(err("commit"))?;
    // only now: ids of a transaction that rolled back must not be remembered
    w.ids.extend(fresh);
    Ok(inserted)
}

fn add_rollups(
    tx: &Transaction,
    name: &str,
    rollups: &BTreeMap<(i64, i64, i64), Adds>,
) -> Result<(), LedgerError> {
    let mut upsert = tx
        .prepare_cached(
            "INSERT INTO ledger_rollups (key_id, hour, model_id, requests, errors, \
             prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, \
             cost_micro_usd) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
             ON CONFLICT (key_id, hour, model_id) DO UPDATE SET \
             requests = requests + excluded.requests, errors = errors + excluded.errors, \
             prompt_tokens = prompt_tokens + excluded.prompt_tokens, \
             completion_tokens = completion_tokens + excluded.completion_tokens, \
             cached_tokens = cached_tokens + excluded.cached_tokens, \
             cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens, \
             cost_micro_usd = cost_micro_usd + excluded.cost_micro_usd",
        )
        .map_err(|e| error(name, "preparing the rollup upsert", e))?;
    for ((key, hour, model), a) in rollups {
        upsert
            .execute(params![
                key, hour, model, a[0], a[1], a[2], a[3], a[4], a[5], a[6]
            ])
            .map_err(|e| error(name, "adding to a rollup", e))?;
    }
    Ok(())
}

/// The id of `text` in `dict`: from the committed cache, from this transaction's new names,
/// or read (and added when missing) in the transaction.
fn dictionary_id(
    tx: &Transaction,
    name: &str,
    committed: &HashMap<(Dict, String), i64>,
    fresh: &mut HashMap<(Dict, String), i64>,
    dict: Dict,
    text: &str,
) -> Result<i64, LedgerError> {
    let key = (dict, text.to_string());
    if let Some(id) = committed.get(&key).or_else(|| fresh.get(&key)) {
        return Ok(*id);
    }
    let table = dict.table();
    let found = tx
        .prepare_cached(&format!("SELECT id FROM {table} WHERE name = ?1"))
        .and_then(|mut s| s.query_row([text], |r| r.get(0)).optional())
        .map_err(|e| error(name, table, e))?;
    let id = match found {
        Some(id) => id,
        None => tx
            .prepare_cached(&format!(
                "INSERT INTO {table} (name) VALUES (?1) RETURNING id"
            ))
            .and_then(|mut s| s.query_row([text], |r| r.get(0)))
            .map_err(|e| error(name, table, e))?,
    };
    fresh.insert(key, id);
    Ok(id)
}

/// Deletes up to [`DELETE_CHUNK`] records older than `cutoff`, and as many rollups of the
/// hours before it (each statement its own transaction: what a crash leaves is deleted by
/// the next pass). Returns the records deleted and whether nothing old is left.
pub fn delete_chunk(
    conn: &Connection,
    name: &str,
    cutoff: i64,
) -> Result<(u64, bool), LedgerError> {
    let err = |e| error(name, "retention", e);
    let records = conn
        .prepare_cached(
            "DELETE FROM ledger_records WHERE rowid IN \
             (SELECT rowid FROM ledger_records WHERE ts < ?1 ORDER BY ts LIMIT ?2)",
        )
        .and_then(|mut s| s.execute(params![cutoff, DELETE_CHUNK]))
        .map_err(err)?;
    let cutoff_hour = cutoff.div_euclid(HOUR_MS);
    let rollups = conn
        .prepare_cached(
            "DELETE FROM ledger_rollups WHERE (key_id, hour, model_id) IN \
             (SELECT key_id, hour, model_id FROM ledger_rollups WHERE hour < ?1 LIMIT ?2)",
        )
        .and_then(|mut s| s.execute(params![cutoff_hour, DELETE_CHUNK]))
        .map_err(err)?;
    let done = records < DELETE_CHUNK && rollups < DELETE_CHUNK;
    Ok((u64::try_from(records).unwrap_or(0), done))
}
