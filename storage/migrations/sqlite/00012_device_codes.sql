-- +goose Up
-- Device authorization grant (RFC 8628) requests in progress. Both codes
-- are kept only as hashes made by the caller (the device code's SHA-256,
-- an HMAC of the normalised user code), so whoever reads the table can
-- neither poll for a token nor approve a request. A request moves
-- pending → approved | denied, and approved → redeemed, each step one
-- conditional UPDATE on status, so a code is decided once and redeemed
-- once however many requests race. Rows stay until they expire, which
-- keeps their hashes taken: a replayed device code is "already used", not
-- "unknown".
--
-- user_id is NULL until a person approves. Deleting the account deletes
-- its requests, so a code approved by a deleted account cannot be
-- redeemed; deleting the client deletes its requests too.
-- poll_interval is the seconds the device must wait between polls
-- ("interval" is an SQL keyword); it grows by 5 on each poll that comes
-- too soon (RFC 8628 §3.5).
CREATE TABLE device_codes (
    device_code_hash TEXT PRIMARY KEY,
    user_code_hash TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scopes TEXT NOT NULL DEFAULT '[]',
    audience TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'approved', 'denied', 'redeemed')),
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    auth_time DATETIME,
    amr TEXT NOT NULL DEFAULT '[]',
    acr TEXT NOT NULL DEFAULT '',
    poll_interval INTEGER NOT NULL CHECK (poll_interval > 0),
    last_polled_at DATETIME,
    created_at DATETIME NOT NULL,
    expires_at DATETIME NOT NULL,
    decided_at DATETIME,
    redeemed_at DATETIME,
    -- A grant always names the account that approved it.
    CHECK (status NOT IN ('approved', 'redeemed') OR user_id IS NOT NULL)
);
CREATE INDEX device_codes_expires ON device_codes(expires_at);
-- For the cascades: without them deleting a user or a client scans the table.
CREATE INDEX device_codes_client ON device_codes(client_id);
CREATE INDEX device_codes_user ON device_codes(user_id) WHERE user_id IS NOT NULL;

-- +goose Down
DROP TABLE device_codes;
