-- Responses the gateway stores itself (the Responses API's conversation state), beside the
-- records so that every process sharing the file sees them. The key is kept as text, not a
-- dictionary id: every read compares it, and a response is one row, not a billion.
-- The two JSON texts come last: a chain is followed on the columns before them, which sit in
-- the row's first page, so its walk never reads their overflow pages.

CREATE TABLE stored_responses (
    id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    previous_id TEXT,
    created_ms INTEGER NOT NULL,
    -- Unix milliseconds after which reads skip the row and retention deletes it
    expires_ms INTEGER NOT NULL,
    input TEXT NOT NULL,
    response TEXT NOT NULL
);
-- retention deletes what expired, oldest first, in bounded chunks
CREATE INDEX stored_responses_expiry ON stored_responses (expires_ms);
