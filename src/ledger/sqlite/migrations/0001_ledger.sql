-- The usage ledger in one SQLite file: the same logical schema as PostgreSQL's (dictionary
-- tables for the repeated strings, one row per record, hourly rollups per key and model),
-- without partitions: a single instance's volume is deleted in bounded chunks instead.

CREATE TABLE ledger_keys (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE ledger_models (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE ledger_providers (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE ledger_endpoints (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
-- error_id 0 in a record means "no error"; labels get ids from 1.
CREATE TABLE ledger_errors (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);

CREATE TABLE ledger_records (
    ts INTEGER NOT NULL,
    key_id INTEGER NOT NULL,
    model_id INTEGER NOT NULL,
    provider_id INTEGER NOT NULL,
    endpoint_id INTEGER NOT NULL,
    error_id INTEGER NOT NULL,
    status INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    cost_micro_usd INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    ttft_ms INTEGER NOT NULL,
    -- the packed request id (16 bytes); for ids of another shape, the id itself (else empty)
    rid BLOB NOT NULL UNIQUE,
    rid_text TEXT NOT NULL
);
-- a key's records newest first (keyset paging), and every key's (operators, retention)
CREATE INDEX ledger_records_key_time ON ledger_records (key_id, ts, rid);
CREATE INDEX ledger_records_time ON ledger_records (ts, rid);

CREATE TABLE ledger_rollups (
    key_id INTEGER NOT NULL,
    hour INTEGER NOT NULL,
    model_id INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    cost_micro_usd INTEGER NOT NULL,
    PRIMARY KEY (key_id, hour, model_id)
) WITHOUT ROWID;
CREATE INDEX ledger_rollups_hour ON ledger_rollups (hour);
