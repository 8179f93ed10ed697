-- +goose Up
-- Brute-force defence keeps facts, never end times: how many failures in
-- the window that began when, when a lock began and why, how many locks
-- came before. The policy in force computes each lock's end, so a changed
-- duration applies to existing locks.
CREATE TABLE account_lockouts (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    failures INTEGER NOT NULL DEFAULT 0,
    window_start DATETIME,
    locked_at DATETIME,
    cause TEXT NOT NULL DEFAULT '',
    locks_before INTEGER NOT NULL DEFAULT 0,
    device_locks INTEGER NOT NULL DEFAULT 0,
    device_locks_start DATETIME,
    updated_at DATETIME NOT NULL
);

-- One row per device of an account with failures or a lock: the device
-- id a client sends, or the browser's signed device cookie.
CREATE TABLE device_lockouts (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id TEXT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    window_start DATETIME,
    locked_at DATETIME,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- Failed sign-ins per client address, across all accounts.
CREATE TABLE address_lockouts (
    ip TEXT PRIMARY KEY,
    failures INTEGER NOT NULL DEFAULT 0,
    window_start DATETIME,
    blocked_at DATETIME,
    updated_at DATETIME NOT NULL
);
CREATE INDEX address_lockouts_updated ON address_lockouts(updated_at);

-- +goose Down
DROP TABLE address_lockouts;
DROP TABLE device_lockouts;
DROP TABLE account_lockouts;
