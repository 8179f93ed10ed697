-- +goose Up
-- The device registry: every device an account signed in from, keyed by
-- the device id request identity resolved (the browser's signed device
-- cookie, or the device_id a mobile client sends). A sign-in upserts the
-- row: first_seen_at stays, last_seen_at, ip and user_agent move. name is
-- the person's label for it, '' until they give one.
CREATE TABLE user_devices (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    first_seen_at TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    ip TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, device_id)
);
CREATE INDEX user_devices_last_seen ON user_devices(user_id, last_seen_at);

-- The device a browser session was started from; NULL for sessions made
-- before the registry, or from a request that named no device.
ALTER TABLE browser_sessions ADD COLUMN device_id TEXT;
CREATE INDEX browser_sessions_device ON browser_sessions(user_id, device_id) WHERE device_id IS NOT NULL;

-- +goose Down
DROP INDEX browser_sessions_device;
ALTER TABLE browser_sessions DROP COLUMN device_id;
DROP TABLE user_devices;
