-- +goose Up
-- One row per policy scope: "global" holds the overlay administrators set on
-- top of config.toml; "client:<id>" holds a customized application's full
-- snapshot.
CREATE TABLE policy_documents (
    scope TEXT PRIMARY KEY,
    document TEXT NOT NULL,
    updated_at DATETIME NOT NULL,
    updated_by TEXT NOT NULL DEFAULT ''
);

-- A single counter bumped by every policy change, so instances notice a
-- change with one cheap read.
CREATE TABLE policy_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO policy_version (id, version) VALUES (1, 0);

-- Tokens remember the browser session (login) they came from, so ending a
-- session can end its tokens.
ALTER TABLE oauth_tokens ADD COLUMN session_id TEXT NOT NULL DEFAULT '';
CREATE INDEX oauth_tokens_session_id ON oauth_tokens(session_id);
CREATE INDEX browser_sessions_user_created ON browser_sessions(user_id, created_at);

-- What a refresh returned, sealed with the system secret, kept for the
-- policy's refresh_reuse_grace so a client that raced itself gets the same
-- answer instead of a family revocation.
CREATE TABLE refresh_grace (
    signature TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    response TEXT NOT NULL,
    expires_at DATETIME NOT NULL
);
CREATE INDEX refresh_grace_expires_at ON refresh_grace(expires_at);

-- A retired signing key stays in the JWKS until this instant, fixed when it
-- is retired: the longest lifetime anything it signed can have then.
ALTER TABLE signing_keys ADD COLUMN publish_until DATETIME;

-- +goose Down
ALTER TABLE signing_keys DROP COLUMN publish_until;
DROP TABLE refresh_grace;
DROP INDEX browser_sessions_user_created;
DROP INDEX oauth_tokens_session_id;
ALTER TABLE oauth_tokens DROP COLUMN session_id;
DROP TABLE policy_version;
DROP TABLE policy_documents;
