-- +goose Up
-- What the sign-in and consent pages show of an application, the browser
-- origins allowed to call the token, revocation and userinfo endpoints, and
-- the keys a client signs its private_key_jwt assertions with.
ALTER TABLE clients ADD COLUMN logo_uri TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN policy_uri TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN tos_uri TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN allowed_cors_origins TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN jwks TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN token_endpoint_auth_signing_alg TEXT NOT NULL DEFAULT '';

-- One row per (origin, client), so a CORS preflight, which names no client,
-- is answered with one indexed lookup.
CREATE TABLE client_cors_origins (
    origin TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    PRIMARY KEY (origin, client_id)
);
CREATE INDEX client_cors_origins_client ON client_cors_origins(client_id);

-- +goose Down
DROP TABLE client_cors_origins;
ALTER TABLE clients DROP COLUMN token_endpoint_auth_signing_alg;
ALTER TABLE clients DROP COLUMN jwks;
ALTER TABLE clients DROP COLUMN allowed_cors_origins;
ALTER TABLE clients DROP COLUMN tos_uri;
ALTER TABLE clients DROP COLUMN policy_uri;
ALTER TABLE clients DROP COLUMN logo_uri;
