-- +goose Up
-- Whether a client (a resource server) may introspect tokens issued to
-- other clients. Without it a client may introspect only its own tokens.
ALTER TABLE clients ADD COLUMN introspect BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE clients DROP COLUMN introspect;
