-- +goose Up
-- Second factors of an account: TOTP authenticators and WebAuthn
-- credentials. secret is the TOTP secret sealed with the system secret
-- (bound to the row id), '' for WebAuthn: an authenticator's secret is as
-- good as the code it makes, so it never rests in clear. credential_id and
-- credential are a WebAuthn credential's raw id and its public data as
-- JSON, NULL for TOTP; a credential id names one credential in the whole
-- server, so it is unique. last_step is the last TOTP time step accepted:
-- a code is used up by one conditional UPDATE that moves it forward, so a
-- code works once and never after a newer one. confirmed_at is NULL while
-- an enrolment awaits its first code; such a factor does not count.
CREATE TABLE mfa_factors (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    secret TEXT NOT NULL DEFAULT '',
    credential_id BLOB,
    credential BLOB,
    last_step BIGINT NOT NULL DEFAULT 0,
    confirmed_at DATETIME,
    created_at DATETIME NOT NULL,
    last_used_at DATETIME
);
CREATE INDEX mfa_factors_user ON mfa_factors(user_id, created_at);
CREATE UNIQUE INDEX mfa_factors_credential_id ON mfa_factors(credential_id) WHERE credential_id IS NOT NULL;

-- Recovery codes, as the SHA-256 of each (they are 80 random bits, so a
-- fast hash is enough). A code is used up by setting used_at in one
-- conditional UPDATE; a new set replaces the old one whole.
CREATE TABLE mfa_recovery_codes (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hash TEXT NOT NULL,
    created_at DATETIME NOT NULL,
    used_at DATETIME,
    PRIMARY KEY (user_id, hash)
);

-- Devices on which the account passed a second factor, for
-- mfa.remember_device: the policy decides for how long passed_at counts.
CREATE TABLE mfa_remembered_devices (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id TEXT NOT NULL,
    passed_at DATETIME NOT NULL,
    PRIMARY KEY (user_id, device_id)
);
CREATE INDEX mfa_remembered_devices_passed ON mfa_remembered_devices(passed_at);

-- When an account's grace period for enrolling a required second factor
-- began: recorded once, by the first sign-in that needed it, and never
-- moved by a later one.
CREATE TABLE mfa_grace (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    started_at DATETIME NOT NULL
);

-- Ceremonies in progress (WebAuthn session data, a TOTP enrolment), kept
-- here so that any instance can finish what another began. A row is
-- deleted by the one request that finishes it. user_id is '' for a
-- ceremony that starts before the account is known (a passkey sign-in),
-- hence no foreign key; rows of a deleted account expire like the rest.
CREATE TABLE mfa_challenges (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL,
    data BLOB NOT NULL,
    expires_at DATETIME NOT NULL
);
CREATE INDEX mfa_challenges_expires ON mfa_challenges(expires_at);

-- When the session last passed a second factor (sign-in or step-up).
ALTER TABLE browser_sessions ADD COLUMN second_factor_at DATETIME;

-- +goose Down
ALTER TABLE browser_sessions DROP COLUMN second_factor_at;
DROP TABLE mfa_challenges;
DROP TABLE mfa_grace;
DROP TABLE mfa_remembered_devices;
DROP TABLE mfa_recovery_codes;
DROP TABLE mfa_factors;
