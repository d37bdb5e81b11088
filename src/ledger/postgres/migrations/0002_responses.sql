-- Responses the gateway stores itself (the Responses API's conversation state), beside the
-- records so that every instance sees a response the moment another wrote it.
--
-- A plain table, not partitioned: responses expire at their own times (not by day), are far
-- fewer than records, and are read by id, which a partitioned table could only make unique
-- with the partition key in it. The key is kept as text, not a dictionary id: every read
-- compares it.

CREATE TABLE stored_responses (
    created_ms bigint NOT NULL,          -- Unix milliseconds
    expires_ms bigint NOT NULL,          -- reads skip the row after it, retention deletes it
    id text PRIMARY KEY,
    key_id text NOT NULL,
    previous_id text,                    -- the response this one continued
    input text NOT NULL,                 -- this request's input items (a JSON array)
    response text NOT NULL               -- the response object as the client received it
);
-- retention deletes what expired, in bounded chunks
CREATE INDEX stored_responses_expiry ON stored_responses (expires_ms);
