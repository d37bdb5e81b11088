//! Stored responses in PostgreSQL (the contract: `ledger::responses`): each call one
//! statement on a pooled connection, on the store's runtime, within the call deadline. Every
//! statement commits on its own, so a response put by one instance is found by the next read
//! of any other.

use async_trait::async_trait;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row as PgRow;

use super::connect::{error, Lease};
use super::{PgLedger, Shared};
use crate::ledger::responses::{ResponseStore, StoredResponse, MAX_CHAIN};
use crate::ledger::{stored_ms, unix_ms_of, LedgerError};

/// Responses deleted per purge statement, each statement a call of its own: a purge after a
/// busy hour never runs into the call deadline, and holds few row locks at a time.
const PURGE_CHUNK: u32 = 500;

const PUT: &str = "INSERT INTO stored_responses \
    (id, key_id, previous_id, created_ms, expires_ms, input, response) \
    VALUES ($1, $2, $3, $4, $5, $6, $7) \
    ON CONFLICT (id) DO UPDATE SET key_id = excluded.key_id, \
    previous_id = excluded.previous_id, created_ms = excluded.created_ms, \
    expires_ms = excluded.expires_ms, input = excluded.input, response = excluded.response";

const RESPONSE: &str = "SELECT id, key_id, previous_id, created_ms, expires_ms, input, response \
    FROM stored_responses WHERE id = $1 AND key_id = $2 AND expires_ms > $3";

/// The chain ending at response $1 of key $2, unexpired at $3, at most $4 deep, oldest first.
/// Each step is a `LATERAL` lookup by primary key (its `LIMIT` keeps the planner from
/// folding it into a join it may run as a scan of the whole table per step, which it did on
/// a freshly made table, before any ANALYZE: 1,000 links took ~300 ms instead of ~10).
const CONVERSATION: &str = "WITH RECURSIVE chain AS (\
    SELECT id, key_id, previous_id, created_ms, expires_ms, input, response, 1 AS depth \
    FROM stored_responses WHERE id = $1 AND key_id = $2 AND expires_ms > $3 \
    UNION ALL \
    SELECT r.id, r.key_id, r.previous_id, r.created_ms, r.expires_ms, r.input, r.response, \
    c.depth + 1 FROM chain c CROSS JOIN LATERAL (SELECT * FROM stored_responses \
    WHERE id = c.previous_id AND key_id = $2 AND expires_ms > $3 LIMIT 1) r \
    WHERE c.depth < $4::int4) \
    SELECT id, key_id, previous_id, created_ms, expires_ms, input, response FROM chain \
    ORDER BY depth DESC";

const DELETE: &str =
    "DELETE FROM stored_responses WHERE id = $1 AND key_id = $2 AND expires_ms > $3";

/// `SKIP LOCKED`: instances purging at the same time each take rows the others do not.
const PURGE: &str = "DELETE FROM stored_responses WHERE id IN (SELECT id FROM stored_responses \
    WHERE expires_ms <= $1 ORDER BY expires_ms LIMIT $2 FOR UPDATE SKIP LOCKED)";

#[async_trait]
impl ResponseStore for PgLedger {
    async fn put_response(&self, response: &StoredResponse) -> Result<(), LedgerError> {
        let r = response.clone();
        self.call("put_response", |s| async move {
            let (created, expires) = (stored_ms(r.created_ms), stored_ms(r.expires_ms));
            execute(
                &s,
                "put_response",
                PUT,
                &[
                    &r.id,
                    &r.key_id,
                    &r.previous_id,
                    &created,
                    &expires,
                    &r.input,
                    &r.response,
                ],
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn response(
        &self,
        key_id: &str,
        id: &str,
        now_ms: u64,
    ) -> Result<Option<StoredResponse>, LedgerError> {
        let (key_id, id, now) = (key_id.to_string(), id.to_string(), stored_ms(now_ms));
        self.call("response", |s| async move {
            let rows = query(&s, "response", RESPONSE, &[&id, &key_id, &now]).await?;
            Ok(stored_responses(&s.name, "response", &rows)?.pop())
        })
        .await
    }

    async fn conversation(
        &self,
        key_id: &str,
        id: &str,
        now_ms: u64,
    ) -> Result<Option<Vec<StoredResponse>>, LedgerError> {
        let (key_id, id, now) = (key_id.to_string(), id.to_string(), stored_ms(now_ms));
        let depth = i32::try_from(MAX_CHAIN).unwrap_or(i32::MAX);
        self.call("conversation", |s| async move {
            let rows = query(
                &s,
                "conversation",
                CONVERSATION,
                &[&id, &key_id, &now, &depth],
            )
            .await?;
            let chain = stored_responses(&s.name, "conversation", &rows)?;
            // the first row is the chain's start: none means the response itself is not there
            Ok((!chain.is_empty()).then_some(chain))
        })
        .await
    }

    async fn delete_response(
        &self,
        key_id: &str,
        id: &str,
        now_ms: u64,
    ) -> Result<bool, LedgerError> {
        let (key_id, id, now) = (key_id.to_string(), id.to_string(), stored_ms(now_ms));
        self.call("delete_response", |s| async move {
            let deleted = execute(&s, "delete_response", DELETE, &[&id, &key_id, &now]).await?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn purge_responses(&self, now_ms: u64) -> Result<u64, LedgerError> {
        let (now, chunk) = (stored_ms(now_ms), i64::from(PURGE_CHUNK));
        let mut purged = 0u64;
        loop {
            let deleted = self
                .call("purge_responses", |s| async move {
                    execute(&s, "purge_responses", PURGE, &[&now, &chunk]).await
                })
                .await?;
            purged += deleted;
            if deleted < u64::from(PURGE_CHUNK) {
                return Ok(purged);
            }
        }
    }
}

/// Runs one statement on a pooled connection; its rows.
async fn query(
    s: &Shared,
    what: &str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<PgRow>, LedgerError> {
    let mut lease = Lease::take(&s.pool, &s.name).await?;
    let client = lease.client()?;
    let statement = client
        .prepare_cached(sql)
        .await
        .map_err(|e| error(&s.name, what, e))?;
    let rows = client
        .query(&statement, params)
        .await
        .map_err(|e| error(&s.name, what, e))?;
    lease.release();
    Ok(rows)
}

/// Runs one statement on a pooled connection; how many rows it wrote or deleted.
async fn execute(
    s: &Shared,
    what: &str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, LedgerError> {
    let mut lease = Lease::take(&s.pool, &s.name).await?;
    let client = lease.client()?;
    let statement = client
        .prepare_cached(sql)
        .await
        .map_err(|e| error(&s.name, what, e))?;
    let changed = client
        .execute(&statement, params)
        .await
        .map_err(|e| error(&s.name, what, e))?;
    lease.release();
    Ok(changed)
}

fn stored_responses(
    name: &str,
    what: &str,
    rows: &[PgRow],
) -> Result<Vec<StoredResponse>, LedgerError> {
    rows.iter()
        .map(stored_response)
        .collect::<Result<_, _>>()
        .map_err(|e| error(name, what, e))
}

fn stored_response(r: &PgRow) -> Result<StoredResponse, tokio_postgres::Error> {
    Ok(StoredResponse {
        id: r.try_get(0)?,
        key_id: r.try_get(1)?,
        previous_id: r.try_get(2)?,
        created_ms: unix_ms_of(r.try_get(3)?),
        expires_ms: unix_ms_of(r.try_get(4)?),
        input: r.try_get(5)?,
        response: r.try_get(6)?,
    })
}
