-- +goose Up
-- What the password policy judges a password by, kept from its last set
-- (never the password): when it was set, its counted facts (JSON: length,
-- character classes, whether it contained the username or was found
-- leaked), and whether its owner must change it at the next sign-in. A
-- NULL password_changed_at is a password set before this was kept; its
-- age counts from the account's creation.
ALTER TABLE users ADD COLUMN password_changed_at DATETIME;
ALTER TABLE users ADD COLUMN password_facts TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN password_must_change BOOLEAN NOT NULL DEFAULT FALSE;
-- An administrator's expiry date for the account; NULL follows the
-- registration policy's account_expire_days.
ALTER TABLE users ADD COLUMN expires_at DATETIME;

-- Earlier password hashes (argon2id, like the current one) of accounts
-- under a policy that refuses reuse. Only as many as that policy needs
-- are kept, the current password's included.
CREATE TABLE password_history (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    password_hash TEXT NOT NULL,
    set_at DATETIME NOT NULL
);
CREATE INDEX password_history_user ON password_history(user_id, set_at);

-- The step a login flow waits on after the password was verified
-- ('password_change'); '' while the password is still to be given.
ALTER TABLE login_flows ADD COLUMN stage TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE login_flows DROP COLUMN stage;
DROP TABLE password_history;
ALTER TABLE users DROP COLUMN expires_at;
ALTER TABLE users DROP COLUMN password_must_change;
ALTER TABLE users DROP COLUMN password_facts;
ALTER TABLE users DROP COLUMN password_changed_at;
