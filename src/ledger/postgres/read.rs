//! Reads from PostgreSQL: a key's pages by keyset on its (key_id, ts, rid) index, never
//! OFFSET; every key's pages by time windows on the block-range index; totals from the
//! hourly rollups.

use tokio_postgres::types::ToSql;
use tokio_postgres::Row as PgRow;
use uuid::Uuid;

use super::connect::{error, Lease};
use crate::ledger::cursor::Cursor;
use crate::ledger::row::StoredRow;
use crate::ledger::totals::{hours_touched, Sums, Totals};
use crate::ledger::{page, stored_ms, LedgerError, RecordPage, RecordQuery, TotalsQuery};

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

/// The first time window of an every-key page; each next one is 8× wider. Reading the
/// newest minute first keeps a page of the newest records cheap at any volume, and the
/// growth reaches a sparse range's records in a few queries.
const FIRST_WINDOW_MS: i64 = 60_000;

pub async fn records(
    lease: &mut Lease,
    name: &str,
    q: &RecordQuery,
    after: Option<Cursor>,
    now_ms: i64,
) -> Result<RecordPage, LedgerError> {
    let from = stored_ms(q.from_ms);
    let mut to = stored_ms(q.to_ms);
    if let Some(c) = after {
        // nothing after the cursor is newer than it
        to = to.min(c.timestamp_ms.saturating_add(1));
    }
    let want = q.limit + 1;
    if q.key_id.is_some() {
        let rows = window(lease, name, q, after, from, to, want).await?;
        return Ok(page(rows, q.limit));
    }
    // every key: newest windows first, until the page is full or the range is read
    let mut rows = Vec::new();
    let mut hi = to;
    let mut width = FIRST_WINDOW_MS;
    // times after now (another instance's clock ahead) are few: read as one window, then
    // the windows grow back from now
    let pivot = now_ms;
    while rows.len() < want && hi > from {
        let lo = if hi > pivot {
            pivot.max(from)
        } else {
            let lo = hi.saturating_sub(width).max(from);
            width = width.saturating_mul(8);
            lo
        };
        rows.extend(window(lease, name, q, after, lo, hi, want - rows.len()).await?);
        hi = lo;
    }
    Ok(page(rows, q.limit))
}

/// Up to `limit` records of `[from, to)` matching the query, newest first.
async fn window(
    lease: &mut Lease,
    name: &str,
    q: &RecordQuery,
    after: Option<Cursor>,
    from: i64,
    to: i64,
    limit: usize,
) -> Result<Vec<StoredRow>, LedgerError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let cursor = after.map(|c| (c.timestamp_ms, Uuid::from_bytes(c.id)));
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&from, &to];
    let mut sql = String::from(PAGE_SELECT);
    sql.push_str("SELECT * FROM ledger_records WHERE ts >= $1 AND ts < $2");
    if let Some(key) = &q.key_id {
        params.push(key);
        sql.push_str(&format!(
            " AND key_id = (SELECT id FROM ledger_keys WHERE name = ${})",
            params.len()
        ));
    }
    if let Some(model) = &q.model {
        params.push(model);
        sql.push_str(&format!(
            " AND model_id = (SELECT id FROM ledger_models WHERE name = ${})",
            params.len()
        ));
    }
    if let Some((ts, rid)) = &cursor {
        params.push(ts);
        params.push(rid);
        sql.push_str(&format!(
            " AND (ts, rid) < (${}, ${})",
            params.len() - 1,
            params.len()
        ));
    }
    params.push(&limit);
    sql.push_str(&format!(
        " ORDER BY ts DESC, rid DESC LIMIT ${}",
        params.len()
    ));
    sql.push_str(PAGE_JOIN);
    let client = lease.client()?;
    let statement = client
        .prepare_cached(&sql)
        .await
        .map_err(|e| error(name, "records", e))?;
    let rows = client
        .query(&statement, &params)
        .await
        .map_err(|e| error(name, "records", e))?;
    rows.iter()
        .map(stored_row)
        .collect::<Result<_, _>>()
        .map_err(|e| error(name, "records", e))
}

fn stored_row(r: &PgRow) -> Result<StoredRow, tokio_postgres::Error> {
    let rid: Uuid = r.try_get(1)?;
    Ok(StoredRow {
        timestamp_ms: r.try_get(0)?,
        id_bytes: rid.into_bytes(),
        id_text: r.try_get(2)?,
        key: r.try_get(3)?,
        model: r.try_get(4)?,
        provider: r.try_get(5)?,
        endpoint: r.try_get(6)?,
        error: r.try_get(7)?,
        status: r.try_get(8)?,
        attempts: r.try_get(9)?,
        flags: r.try_get(10)?,
        prompt_tokens: r.try_get(11)?,
        completion_tokens: r.try_get(12)?,
        cached_tokens: r.try_get(13)?,
        cache_write_tokens: r.try_get(14)?,
        cost_micro_usd: r.try_get(15)?,
        duration_ms: r.try_get(16)?,
        ttft_ms: r.try_get(17)?,
    })
}

pub async fn totals(lease: &mut Lease, name: &str, q: &TotalsQuery) -> Result<Totals, LedgerError> {
    let mut totals = Totals::default();
    let Some((first, last)) = hours_touched(q.from_ms, q.to_ms) else {
        return Ok(totals);
    };
    let hour = |h: i64| i32::try_from(h).unwrap_or(if h < 0 { i32::MIN } else { i32::MAX });
    let (first, last) = (hour(first), hour(last));
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&first, &last];
    let mut sql = String::from(
        "SELECT (u.hour / 24)::int8, m.name, sum(u.requests)::int8, sum(u.errors)::int8, \
         sum(u.prompt_tokens)::int8, sum(u.completion_tokens)::int8, \
         sum(u.cached_tokens)::int8, sum(u.cache_write_tokens)::int8, \
         sum(u.cost_micro_usd)::int8 \
         FROM ledger_rollups u JOIN ledger_models m ON m.id = u.model_id \
         WHERE u.hour >= $1 AND u.hour <= $2",
    );
    if let Some(key) = &q.key_id {
        params.push(key);
        sql.push_str(" AND u.key_id = (SELECT id FROM ledger_keys WHERE name = $3)");
    }
    sql.push_str(" GROUP BY 1, 2");
    let client = lease.client()?;
    let statement = client
        .prepare_cached(&sql)
        .await
        .map_err(|e| error(name, "totals", e))?;
    let rows = client
        .query(&statement, &params)
        .await
        .map_err(|e| error(name, "totals", e))?;
    for r in rows {
        let read = || -> Result<(i64, String, Sums), tokio_postgres::Error> {
            let mut columns = [0i64; 7];
            for (i, c) in columns.iter_mut().enumerate() {
                *c = r.try_get(i + 2)?;
            }
            Ok((r.try_get(0)?, r.try_get(1)?, Sums::from_columns(columns)))
        };
        let (day, model, sums) = read().map_err(|e| error(name, "totals", e))?;
        totals.add(day, &model, &sums);
    }
    Ok(totals)
}
