//! Writes to the SQLite ledger: a batch in one transaction (records, new dictionary names,
//! rollups of the records that were new), and retention in bounded chunks.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use rusqlite::{
    params, Connection, OptionalExtension, Statement, Transaction, TransactionBehavior,
};

use super::{error, Writer};
use crate::ledger::row::Row;
use crate::ledger::totals::{hour_of, HOUR_MS};
use crate::ledger::{Dict, LedgerError};
use crate::usage::UsageRecord;

/// Rows deleted per retention chunk: a few milliseconds of writer time each.
const DELETE_CHUNK: usize = 5_000;

/// Records per multi-row INSERT. One statement per record cost the shipper about a fifth of
/// its time in statement set-up (cursors on the table and its three indexes opened and closed
/// per record); 64 records of 18 parameters bind 1,152, far below SQLite's 32,766.
const ROWS_PER_STATEMENT: usize = 64;

/// Parameters per record in the INSERT.
const COLUMNS: usize = 18;

const INSERT_HEAD: &str = "INSERT INTO ledger_records (ts, key_id, model_id, provider_id, \
     endpoint_id, error_id, status, attempts, flags, prompt_tokens, completion_tokens, \
     cached_tokens, cache_write_tokens, cost_micro_usd, duration_ms, ttft_ms, rid, rid_text) \
     VALUES ";
const INSERT_TAIL: &str = " ON CONFLICT (rid) DO NOTHING";

/// One rollup's additions: requests, errors, prompt, completion, cached, cache-write tokens,
/// micro-USD.
type Adds = [i64; 7];

/// A record's row with its dictionary ids.
struct Resolved<'a> {
    row: &'a Row<'a>,
    key: i64,
    model: i64,
    provider: i64,
    endpoint: i64,
    error: i64,
}

/// Inserts the records of `batch` not stored yet (and not older than `cutoff`), adding only
/// those to the rollups; all in one transaction, on disk when this returns.
///
/// The connection's commits are `synchronous=NORMAL` (WAL synced only at checkpoints), which
/// a power loss can take back; a batch's commit is `FULL` (the WAL fsynced), since the
/// spool's checkpoint moves past the batch next and nothing would send it again. Stored
/// responses, the connection's other writes, keep the cheaper commit. (SQLite refuses to
/// change the level inside a transaction, hence around it.)
pub fn insert(
    w: &mut Writer,
    name: &str,
    batch: &[UsageRecord],
    cutoff: i64,
) -> Result<usize, LedgerError> {
    set_synchronous(&w.conn, name, "PRAGMA synchronous=FULL")?;
    let inserted = insert_batch(w, name, batch, cutoff);
    let restored = set_synchronous(&w.conn, name, "PRAGMA synchronous=NORMAL");
    let inserted = inserted?;
    restored?;
    Ok(inserted)
}

fn set_synchronous(conn: &Connection, name: &str, pragma: &str) -> Result<(), LedgerError> {
    conn.execute_batch(pragma)
        .map_err(|e| error(name, "synchronous", e))
}

fn insert_batch(
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
    let tx = w
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| error(name, "begin", e))?;
    let mut fresh: HashMap<(Dict, String), i64> = HashMap::new();
    let mut resolved = Vec::with_capacity(rows.len());
    for row in rows.iter().filter(|r| r.timestamp_ms >= cutoff) {
        let mut id = |dict, text: &str| dictionary_id(&tx, name, &w.ids, &mut fresh, dict, text);
        resolved.push(Resolved {
            key: id(Dict::Key, row.key)?,
            model: id(Dict::Model, row.model)?,
            provider: id(Dict::Provider, row.provider)?,
            endpoint: id(Dict::Endpoint, row.endpoint)?,
            error: row
                .error
                .map(|e| id(Dict::Error, e))
                .transpose()?
                .unwrap_or(0),
            row,
        });
    }
    let mut rollups: BTreeMap<(i64, i64, i64), Adds> = BTreeMap::new();
    let mut inserted = 0;
    let mut chunks = resolved.chunks_exact(ROWS_PER_STATEMENT);
    for chunk in &mut chunks {
        if insert_together(&tx, name, chunk)? {
            chunk.iter().for_each(|r| add_to_rollup(&mut rollups, r));
            inserted += chunk.len();
        } else {
            inserted += insert_each(&tx, name, chunk, &mut rollups)?;
        }
    }
    inserted += insert_each(&tx, name, chunks.remainder(), &mut rollups)?;
    add_rollups(&tx, name, &rollups)?;
    tx.commit().map_err(|e| error(name, "commit", e))?;
    // only now: ids of a transaction that rolled back must not be remembered
    w.ids.extend(fresh);
    Ok(inserted)
}

/// Inserts `chunk` in one statement when none of its records is stored yet, and says
/// whether it did; otherwise the transaction is left as it was, for [`insert_each`] to
/// find which ones are new. A record is stored already only when a delivery is repeated
/// (after a crash or a lost answer), so the usual batch takes the one statement.
fn insert_together(tx: &Transaction, name: &str, chunk: &[Resolved]) -> Result<bool, LedgerError> {
    let err = |what| move |e| error(name, what, e);
    let savepoint = |sql: &str| tx.prepare_cached(sql).and_then(|mut s| s.execute([]));
    savepoint("SAVEPOINT ledger_chunk").map_err(err("savepoint"))?;
    let mut insert = tx
        .prepare_cached(chunk_insert())
        .map_err(err("preparing the insert"))?;
    for (i, r) in chunk.iter().enumerate() {
        bind(&mut insert, i * COLUMNS, r).map_err(err("binding a record"))?;
    }
    let new = insert.raw_execute().map_err(err("inserting records"))?;
    if new != chunk.len() {
        savepoint("ROLLBACK TO ledger_chunk").map_err(err("rollback to savepoint"))?;
    }
    savepoint("RELEASE ledger_chunk").map_err(err("release savepoint"))?;
    Ok(new == chunk.len())
}

/// Inserts the records of `rows` one statement each, adding the new ones to `rollups`, and
/// returns how many were new.
fn insert_each(
    tx: &Transaction,
    name: &str,
    rows: &[Resolved],
    rollups: &mut BTreeMap<(i64, i64, i64), Adds>,
) -> Result<usize, LedgerError> {
    let err = |what| move |e| error(name, what, e);
    let mut insert = tx
        .prepare_cached(single_insert())
        .map_err(err("preparing the insert"))?;
    let mut inserted = 0;
    for r in rows {
        bind(&mut insert, 0, r).map_err(err("binding a record"))?;
        if insert.raw_execute().map_err(err("inserting a record"))? == 1 {
            inserted += 1;
            add_to_rollup(rollups, r);
        }
    }
    Ok(inserted)
}

/// The INSERT of one record, built once.
fn single_insert() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| insert_of(1))
}

/// The INSERT of [`ROWS_PER_STATEMENT`] records, built once.
fn chunk_insert() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| insert_of(ROWS_PER_STATEMENT))
}

fn insert_of(rows: usize) -> String {
    let values: Vec<String> = (0..rows).map(|i| placeholders(i * COLUMNS)).collect();
    format!("{INSERT_HEAD}{}{INSERT_TAIL}", values.join(", "))
}

/// `(?n, …)` for one record whose first parameter follows `before` others.
fn placeholders(before: usize) -> String {
    let marks: Vec<String> = (1..=COLUMNS).map(|i| format!("?{}", before + i)).collect();
    format!("({})", marks.join(", "))
}

/// Binds `r`'s columns to the parameters after the first `before`.
fn bind(stmt: &mut Statement, before: usize, r: &Resolved) -> rusqlite::Result<()> {
    let row = r.row;
    let at = |i: usize| before + i;
    stmt.raw_bind_parameter(at(1), row.timestamp_ms)?;
    stmt.raw_bind_parameter(at(2), r.key)?;
    stmt.raw_bind_parameter(at(3), r.model)?;
    stmt.raw_bind_parameter(at(4), r.provider)?;
    stmt.raw_bind_parameter(at(5), r.endpoint)?;
    stmt.raw_bind_parameter(at(6), r.error)?;
    stmt.raw_bind_parameter(at(7), row.status)?;
    stmt.raw_bind_parameter(at(8), row.attempts)?;
    stmt.raw_bind_parameter(at(9), row.flags)?;
    stmt.raw_bind_parameter(at(10), row.prompt_tokens)?;
    stmt.raw_bind_parameter(at(11), row.completion_tokens)?;
    stmt.raw_bind_parameter(at(12), row.cached_tokens)?;
    stmt.raw_bind_parameter(at(13), row.cache_write_tokens)?;
    stmt.raw_bind_parameter(at(14), row.cost_micro_usd)?;
    stmt.raw_bind_parameter(at(15), row.duration_ms)?;
    stmt.raw_bind_parameter(at(16), row.ttft_ms)?;
    stmt.raw_bind_parameter(at(17), &row.id.bytes[..])?;
    stmt.raw_bind_parameter(at(COLUMNS), row.id_text())
}

/// Adds a new record to its rollup.
fn add_to_rollup(rollups: &mut BTreeMap<(i64, i64, i64), Adds>, r: &Resolved) {
    let row = r.row;
    let adds = rollups
        .entry((r.key, hour_of(row.timestamp_ms), r.model))
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
