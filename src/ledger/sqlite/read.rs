//! Reads from the SQLite ledger: keyset pages of records on the (key, time, id) or (time, id)
//! index, and totals from the hourly rollups.

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, Row as SqlRow};

use super::error;
use crate::ledger::cursor::Cursor;
use crate::ledger::row::StoredRow;
use crate::ledger::totals::{hours_touched, Sums, Totals};
use crate::ledger::{stored_ms, LedgerError, RecordPage, RecordQuery, TotalsQuery};

/// The page's rows first (on the index, `LIMIT` applied), their names joined after.
const PAGE_SELECT: &str = "SELECT r.ts, r.rid, r.rid_text, k.name, m.name, p.name, d.name, \
    e.name, r.status, r.attempts, r.flags, r.prompt_tokens, r.completion_tokens, \
    r.cached_tokens, r.cache_write_tokens, r.cost_micro_usd, r.duration_ms, r.ttft_ms FROM (";
const PAGE_JOIN: &str = ") r JOIN ledger_keys k ON k.id = r.key_id \
    JOIN ledger_models m ON m.id = r.model_id \
    JOIN ledger_providers p ON p.id = r.provider_id \
    JOIN ledger_endpoints d ON d.id = r.endpoint_id \
    LEFT JOIN ledger_errors e ON e.id = r.error_id \
    ORDER BY r.ts DESC, r.rid DESC";

pub fn records(
    conn: &Connection,
    name: &str,
    q: &RecordQuery,
    after: Option<Cursor>,
) -> Result<RecordPage, LedgerError> {
    let mut sql = String::from(PAGE_SELECT);
    sql.push_str("SELECT * FROM ledger_records WHERE ts >= ? AND ts < ?");
    let mut args = vec![
        Value::Integer(stored_ms(q.from_ms)),
        Value::Integer(stored_ms(q.to_ms)),
    ];
    if let Some(key) = &q.key_id {
        sql.push_str(" AND key_id = (SELECT id FROM ledger_keys WHERE name = ?)");
        args.push(Value::Text(key.clone()));
    }
    if let Some(model) = &q.model {
        sql.push_str(" AND model_id = (SELECT id FROM ledger_models WHERE name = ?)");
        args.push(Value::Text(model.clone()));
    }
    if let Some(c) = after {
        sql.push_str(" AND (ts, rid) < (?, ?)");
        args.push(Value::Integer(c.timestamp_ms));
        args.push(Value::Blob(c.id.to_vec()));
    }
    sql.push_str(" ORDER BY ts DESC, rid DESC LIMIT ?");
    // one more than the page: whether it exists says whether there is a next page
    args.push(Value::Integer(
        i64::try_from(q.limit + 1).unwrap_or(i64::MAX),
    ));
    sql.push_str(PAGE_JOIN);

    let mut statement = conn
        .prepare_cached(&sql)
        .map_err(|e| error(name, "records", e))?;
    let rows = statement
        .query_map(params_from_iter(args), stored_row)
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| error(name, "records", e))?;
    Ok(crate::ledger::page(rows, q.limit))
}

fn stored_row(r: &SqlRow) -> rusqlite::Result<StoredRow> {
    let rid: Vec<u8> = r.get(1)?;
    let id_bytes = <[u8; 16]>::try_from(rid.as_slice()).map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            1,
            rusqlite::types::Type::Blob,
            "a packed request id is 16 bytes".into(),
        )
    })?;
    Ok(StoredRow {
        timestamp_ms: r.get(0)?,
        id_bytes,
        id_text: r.get(2)?,
        key: r.get(3)?,
        model: r.get(4)?,
        provider: r.get(5)?,
        endpoint: r.get(6)?,
        error: r.get(7)?,
        status: r.get(8)?,
        attempts: r.get(9)?,
        flags: r.get(10)?,
        prompt_tokens: r.get(11)?,
        completion_tokens: r.get(12)?,
        cached_tokens: r.get(13)?,
        cache_write_tokens: r.get(14)?,
        cost_micro_usd: r.get(15)?,
        duration_ms: r.get(16)?,
        ttft_ms: r.get(17)?,
    })
}

pub fn totals(conn: &Connection, name: &str, q: &TotalsQuery) -> Result<Totals, LedgerError> {
    let mut totals = Totals::default();
    let Some((first, last)) = hours_touched(q.from_ms, q.to_ms) else {
        return Ok(totals);
    };
    let mut sql = String::from(
        "SELECT u.hour / 24, m.name, sum(u.requests), sum(u.errors), sum(u.prompt_tokens), \
         sum(u.completion_tokens), sum(u.cached_tokens), sum(u.cache_write_tokens), \
         sum(u.cost_micro_usd) FROM ledger_rollups u JOIN ledger_models m ON m.id = u.model_id \
         WHERE u.hour >= ? AND u.hour <= ?",
    );
    let mut args = vec![Value::Integer(first), Value::Integer(last)];
    if let Some(key) = &q.key_id {
        sql.push_str(" AND u.key_id = (SELECT id FROM ledger_keys WHERE name = ?)");
        args.push(Value::Text(key.clone()));
    }
    sql.push_str(" GROUP BY 1, 2");
    let mut statement = conn
        .prepare_cached(&sql)
        .map_err(|e| error(name, "totals", e))?;
    let mut rows = statement
        .query(params_from_iter(args))
        .map_err(|e| error(name, "totals", e))?;
    while let Some(row) = rows.next().map_err(|e| error(name, "totals", e))? {
        let read = || -> rusqlite::Result<(i64, String, Sums)> {
            let mut columns = [0i64; 7];
            for (i, c) in columns.iter_mut().enumerate() {
                *c = row.get(i + 2)?;
            }
            Ok((row.get(0)?, row.get(1)?, Sums::from_columns(columns)))
        };
        let (day, model, sums) = read().map_err(|e| error(name, "totals", e))?;
        totals.add(day, &model, &sums);
    }
    Ok(totals)
}
