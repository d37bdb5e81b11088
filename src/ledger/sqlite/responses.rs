//! Stored responses in the SQLite file (the contract: `ledger::responses`). Writes and the
//! purge take the writer connection, reads the reader: in WAL mode a read sees every write
//! committed before it, so a response put by one process is found by the next read of any.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row as SqlRow};

use super::{error, SqliteLedger};
use crate::ledger::responses::{ResponseStore, StoredResponse, MAX_CHAIN};
use crate::ledger::{stored_ms, unix_ms_of, LedgerError};

/// Responses deleted per purge chunk. Far fewer than records per chunk: a response may be
/// megabytes, and freeing its overflow pages reads each of them, so this bounds how long one
/// chunk holds the writer.
const PURGE_CHUNK: usize = 500;

/// A response's columns, in [`StoredResponse`] order (what [`stored_response`] reads).
const COLUMNS: &str = "id, key_id, previous_id, created_ms, expires_ms, input, response";

const PUT: &str = "INSERT INTO stored_responses \
    (id, key_id, previous_id, created_ms, expires_ms, input, response) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
    ON CONFLICT (id) DO UPDATE SET key_id = excluded.key_id, \
    previous_id = excluded.previous_id, created_ms = excluded.created_ms, \
    expires_ms = excluded.expires_ms, input = excluded.input, response = excluded.response";

/// The chain ending at response ?1 of key ?2, unexpired at ?3, at most ?4 deep, oldest first.
/// The walk carries only ids and depths; the texts are joined once, at the end.
const CONVERSATION: &str = "WITH RECURSIVE chain (id, previous_id, depth) AS (\
    SELECT id, previous_id, 1 FROM stored_responses \
    WHERE id = ?1 AND key_id = ?2 AND expires_ms > ?3 \
    UNION ALL \
    SELECT r.id, r.previous_id, c.depth + 1 FROM chain c \
    JOIN stored_responses r ON r.id = c.previous_id \
    WHERE r.key_id = ?2 AND r.expires_ms > ?3 AND c.depth < ?4) \
    SELECT r.id, r.key_id, r.previous_id, r.created_ms, r.expires_ms, r.input, r.response \
    FROM chain c JOIN stored_responses r ON r.id = c.id ORDER BY c.depth DESC";

#[async_trait]
impl ResponseStore for SqliteLedger {
    async fn put_response(&self, response: &StoredResponse) -> Result<(), LedgerError> {
        let r = response.clone();
        self.with_writer("put_response", move |w, name| {
            w.conn
                .prepare_cached(PUT)
                .and_then(|mut s| {
                    s.execute(params![
                        r.id,
                        r.key_id,
                        r.previous_id,
                        stored_ms(r.created_ms),
                        stored_ms(r.expires_ms),
                        r.input,
                        r.response,
                    ])
                })
                .map_err(|e| error(name, "put_response", e))?;
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
        let (key_id, id) = (key_id.to_string(), id.to_string());
        self.with_reader("response", move |conn, name| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM stored_responses \
                 WHERE id = ?1 AND key_id = ?2 AND expires_ms > ?3"
            ))
            .and_then(|mut s| {
                s.query_row(params![id, key_id, stored_ms(now_ms)], stored_response)
                    .optional()
            })
            .map_err(|e| error(name, "response", e))
        })
        .await
    }

    async fn conversation(
        &self,
        key_id: &str,
        id: &str,
        now_ms: u64,
    ) -> Result<Option<Vec<StoredResponse>>, LedgerError> {
        let (key_id, id) = (key_id.to_string(), id.to_string());
        self.with_reader("conversation", move |conn, name| {
            conversation(conn, &key_id, &id, now_ms).map_err(|e| error(name, "conversation", e))
        })
        .await
    }

    async fn delete_response(
        &self,
        key_id: &str,
        id: &str,
        now_ms: u64,
    ) -> Result<bool, LedgerError> {
        let (key_id, id) = (key_id.to_string(), id.to_string());
        self.with_writer("delete_response", move |w, name| {
            let deleted = w
                .conn
                .prepare_cached(
                    "DELETE FROM stored_responses \
                     WHERE id = ?1 AND key_id = ?2 AND expires_ms > ?3",
                )
                .and_then(|mut s| s.execute(params![id, key_id, stored_ms(now_ms)]))
                .map_err(|e| error(name, "delete_response", e))?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn purge_responses(&self, now_ms: u64) -> Result<u64, LedgerError> {
        // chunk by chunk, each a call of its own (like the records' retention): the writer
        // is never held for longer than one chunk, nor does a long purge meet the deadline
        let mut purged = 0u64;
        loop {
            let deleted = self
                .with_writer("purge_responses", move |w, name| {
                    purge_chunk(&w.conn, now_ms).map_err(|e| error(name, "purge_responses", e))
                })
                .await?;
            purged += u64::try_from(deleted).unwrap_or(0);
            if deleted < PURGE_CHUNK {
                return Ok(purged);
            }
        }
    }
}

fn conversation(
    conn: &Connection,
    key_id: &str,
    id: &str,
    now_ms: u64,
) -> rusqlite::Result<Option<Vec<StoredResponse>>> {
    let depth = i64::try_from(MAX_CHAIN).unwrap_or(i64::MAX);
    let mut statement = conn.prepare_cached(CONVERSATION)?;
    let chain = statement
        .query_map(
            params![id, key_id, stored_ms(now_ms), depth],
            stored_response,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    // the first row is the chain's start: none means the response itself is not there
    Ok((!chain.is_empty()).then_some(chain))
}

/// Deletes up to [`PURGE_CHUNK`] responses expired by `now_ms`, soonest expired first;
/// returns how many.
fn purge_chunk(conn: &Connection, now_ms: u64) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "DELETE FROM stored_responses WHERE rowid IN (SELECT rowid FROM stored_responses \
         WHERE expires_ms <= ?1 ORDER BY expires_ms LIMIT ?2)",
    )?
    .execute(params![stored_ms(now_ms), PURGE_CHUNK])
}

fn stored_response(r: &SqlRow) -> rusqlite::Result<StoredResponse> {
    Ok(StoredResponse {
        id: r.get(0)?,
        key_id: r.get(1)?,
        previous_id: r.get(2)?,
        created_ms: unix_ms_of(r.get(3)?),
        expires_ms: unix_ms_of(r.get(4)?),
        input: r.get(5)?,
        response: r.get(6)?,
    })
}
