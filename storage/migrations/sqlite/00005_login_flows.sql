-- +goose Up
-- A login flow is one sign-in in progress, kept here rather than in the
-- browser: the request it will resume, the client whose policy judges it,
-- and what has been proven so far. browser_binding is the SHA-256 of a
-- cookie, so only the browser that started a flow can continue it.
CREATE TABLE login_flows (
    id TEXT PRIMARY KEY,
    browser_binding TEXT NOT NULL,
    client_id TEXT NOT NULL DEFAULT '',
    request TEXT NOT NULL DEFAULT '',
    return_to TEXT NOT NULL DEFAULT '',
    login_hint TEXT NOT NULL DEFAULT '',
    user_id TEXT NOT NULL DEFAULT '',
    amr TEXT NOT NULL DEFAULT '[]',
    created_at DATETIME NOT NULL,
    expires_at DATETIME NOT NULL,
    completed_at DATETIME,
    resumed_at DATETIME
);
CREATE INDEX login_flows_expires ON login_flows(expires_at);

-- How a session was authenticated, for the ID token's amr and acr.
ALTER TABLE browser_sessions ADD COLUMN amr TEXT NOT NULL DEFAULT '[]';
ALTER TABLE browser_sessions ADD COLUMN acr TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE browser_sessions DROP COLUMN acr;
ALTER TABLE browser_sessions DROP COLUMN amr;
DROP TABLE login_flows;
