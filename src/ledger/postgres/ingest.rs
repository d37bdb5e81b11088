//! A batch into PostgreSQL in one transaction: the records not stored yet, and the rollups of
//! exactly those. One statement does both: `INSERT … ON CONFLICT DO NOTHING RETURNING` gives
//! the rows that were new, and the rollup upsert sums only them, so a batch sent twice (or
//! by two instances at once) adds nothing twice.
//!
//! Rows go in sorted by the unique index's order and rollups by theirs, so two transactions
//! inserting overlapping batches take their locks in the same order and never deadlock.
//!
//! Two ways to send the rows ([`Ingest`]): `COPY … FROM STDIN BINARY` into the connection's
//! temporary staging table, then `INSERT … SELECT` from it; or one multi-row `INSERT …
//! VALUES`. The bench measures both (see README/benchmarks); COPY is the default.

use std::pin::pin;

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use super::connect::{error, Lease};
use super::dictionary::RowIds;
use crate::ledger::row::Row;
use crate::ledger::{Ingest, LedgerError};

/// The record columns, in table order (widest first).
const COLUMNS: &str = "ts, cost_micro_usd, key_id, model_id, prompt_tokens, completion_tokens, \
    cached_tokens, cache_write_tokens, duration_ms, ttft_ms, provider_id, endpoint_id, \
    error_id, status, attempts, flags, rid, rid_text";
const TYPES: [Type; 18] = [
    Type::INT8,
    Type::INT8,
    Type::INT4,
    Type::INT4,
    Type::INT4,
    Type::INT4,
    Type::INT4,
    Type::INT4,
    Type::INT4,
    Type::INT4,
    Type::INT2,
    Type::INT2,
    Type::INT2,
    Type::INT2,
    Type::INT2,
    Type::INT2,
    Type::UUID,
    Type::TEXT,
];
/// Rows per `INSERT … VALUES` statement (18 parameters each; the protocol allows 65,535).
const VALUES_ROWS: usize = 2_000;

/// The statement around a row source: insert the new records, sum them per (key, hour,
/// model), add the sums to the rollups, count the new records.
fn insert_sql(source: &str) -> String {
    format!(
        "WITH new AS (\
           INSERT INTO ledger_records ({COLUMNS}) {source} \
           ON CONFLICT (key_id, ts, rid) DO NOTHING \
           RETURNING ts, key_id, model_id, error_id, prompt_tokens, completion_tokens, \
             cached_tokens, cache_write_tokens, cost_micro_usd), \
         sums AS (\
           SELECT (ts / 3600000)::int4 AS hour, key_id, model_id, count(*)::int4 AS requests, \
             (count(*) FILTER (WHERE error_id <> 0))::int4 AS errors, \
             sum(prompt_tokens)::int8 AS p, sum(completion_tokens)::int8 AS c, \
             sum(cached_tokens)::int8 AS ca, sum(cache_write_tokens)::int8 AS cw, \
             sum(cost_micro_usd)::int8 AS cost \
           FROM new GROUP BY 1, 2, 3), \
         added AS (\
           INSERT INTO ledger_rollups AS u (hour, key_id, model_id, requests, errors, \
             prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, \
             cost_micro_usd) \
           SELECT hour, key_id, model_id, requests, errors, p, c, ca, cw, cost FROM sums \
           ORDER BY key_id, hour, model_id \
           ON CONFLICT (key_id, hour, model_id) DO UPDATE SET \
             requests = u.requests + excluded.requests, errors = u.errors + excluded.errors, \
             prompt_tokens = u.prompt_tokens + excluded.prompt_tokens, \
             completion_tokens = u.completion_tokens + excluded.completion_tokens, \
             cached_tokens = u.cached_tokens + excluded.cached_tokens, \
             cache_write_tokens = u.cache_write_tokens + excluded.cache_write_tokens, \
             cost_micro_usd = u.cost_micro_usd + excluded.cost_micro_usd) \
         SELECT count(*) FROM new"
    )
}

/// One row's values, in [`COLUMNS`] order.
struct Values {
    ts: i64,
    cost: i64,
    ints: [i32; 8],
    smalls: [i16; 6],
    rid: Uuid,
    rid_text: String,
}

impl Values {
    fn new(row: &Row<'_>, ids: &RowIds) -> Self {
        Self {
            ts: row.timestamp_ms,
            cost: row.cost_micro_usd,
            ints: [
                ids.key,
                ids.model,
                row.prompt_tokens,
                row.completion_tokens,
                row.cached_tokens,
                row.cache_write_tokens,
                row.duration_ms,
                row.ttft_ms,
            ],
            smalls: [
                ids.provider,
                ids.endpoint,
                ids.error,
                row.status,
                row.attempts,
                row.flags,
            ],
            rid: Uuid::from_bytes(row.id.bytes),
            rid_text: row.id_text().to_string(),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 18] {
        let [k, m, p, c, ca, cw, d, t] = &self.ints;
        let [pr, en, er, st, at, fl] = &self.smalls;
        [
            &self.ts,
            &self.cost,
            k,
            m,
            p,
            c,
            ca,
            cw,
            d,
            t,
            pr,
            en,
            er,
            st,
            at,
            fl,
            &self.rid,
            &self.rid_text,
        ]
    }

    /// The unique index's order: (key, ts, rid).
    fn index_order(&self) -> (i32, i64, Uuid) {
        (self.ints[0], self.ts, self.rid)
    }
}

/// Inserts `rows` (with their dictionary ids) in one transaction; returns how many were new.
pub async fn insert(
    lease: &mut Lease,
    name: &str,
    how: Ingest,
    rows: &[Row<'_>],
    ids: &[RowIds],
) -> Result<usize, LedgerError> {
    let mut values: Vec<Values> = rows
        .iter()
        .zip(ids)
        .map(|(r, i)| Values::new(r, i))
        .collect();
    values.sort_by_key(Values::index_order);
    let client = lease.client()?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| error(name, "begin", e))?;
    let mut inserted: i64 = 0;
    match how {
        Ingest::Copy => {
            let sink = tx
                .copy_in(&format!("COPY ledger_stage ({COLUMNS}) FROM STDIN BINARY"))
                .await
                .map_err(|e| error(name, "copy", e))?;
            let mut writer = pin!(BinaryCopyInWriter::new(sink, &TYPES));
            for v in &values {
                writer
                    .as_mut()
                    .write(&v.params())
                    .await
                    .map_err(|e| error(name, "copy", e))?;
            }
            writer.finish().await.map_err(|e| error(name, "copy", e))?;
            let statement = tx
                .prepare_cached(&insert_sql(&format!(
                    "SELECT {COLUMNS} FROM ledger_stage ORDER BY key_id, ts, rid"
                )))
                .await
                .map_err(|e| error(name, "insert", e))?;
            inserted = tx
                .query_one(&statement, &[])
                .await
                .and_then(|r| r.try_get(0))
                .map_err(|e| error(name, "insert", e))?;
        }
        Ingest::Values => {
            for chunk in values.chunks(VALUES_ROWS) {
                let sql = insert_sql(&values_list(chunk.len()));
                let params: Vec<&(dyn ToSql + Sync)> =
                    chunk.iter().flat_map(|v| v.params()).collect();
                let n: i64 = tx
                    .query_one(&sql, &params)
                    .await
                    .and_then(|r| r.try_get(0))
                    .map_err(|e| error(name, "insert", e))?;
                inserted += n;
            }
        }
    }
    tx.commit().await.map_err(|e| error(name, "commit", e))?;
    Ok(usize::try_from(inserted).unwrap_or(0))
}

/// `VALUES ($1, …, $18), ($19, …)` for `rows` rows.
fn values_list(rows: usize) -> String {
    let mut sql = String::from("VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..18 {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(r * 18 + c + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_are_numbered_row_by_row() {
        let sql = super::values_list(2);
        assert!(sql.starts_with("VALUES ($1, $2, "));
        assert!(sql.contains("$18), ($19, "));
        assert!(sql.ends_with("$36)"));
    }
}
