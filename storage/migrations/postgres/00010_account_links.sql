-- +goose Up
-- One-time links mailed to a person: verify an address, activate an
-- account an administrator created, reset a password. Only the SHA-256 of
-- the link's token is kept, so whoever reads the table cannot follow a
-- link. email is the address the link went to: following it proves that
-- address, not whatever the account holds by then. A link is used up by
-- setting used_at in one conditional UPDATE; the row stays until it
-- expires so that its token hash stays taken.
CREATE TABLE account_links (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ
);
CREATE INDEX account_links_user_kind ON account_links(user_id, kind);
CREATE INDEX account_links_expires ON account_links(expires_at);

-- Fixed-window counters shared by every instance ("at most N of this per
-- key per window"). A key's row for a window is created or bumped by one
-- upsert, never read and written back, so parallel requests on any
-- instances each get a distinct count.
CREATE TABLE rate_counters (
    key TEXT NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    count BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX rate_counters_expires ON rate_counters(expires_at);

-- +goose Down
DROP TABLE rate_counters;
DROP TABLE account_links;
