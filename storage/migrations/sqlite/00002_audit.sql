-- +goose Up
-- AUTOINCREMENT, unlike a plain rowid, never hands out an id again after the
-- newest rows are deleted: audit cursors and exported ids stay unambiguous
-- even when retention empties the table.
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at DATETIME NOT NULL,
    type TEXT NOT NULL DEFAULT '',
    actor TEXT NOT NULL DEFAULT '',
    user_id TEXT NOT NULL DEFAULT '',
    client_id TEXT NOT NULL DEFAULT '',
    ip TEXT NOT NULL DEFAULT '',
    device TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    details TEXT NOT NULL DEFAULT ''
);
-- Newest first is ORDER BY occurred_at DESC, id DESC (id breaks ties), and
-- each filter has an index ending in (occurred_at, id): a page, with or
-- without a time window or a cursor, is then one backward range scan that
-- stops after the page, however many million rows the table holds. Ordering
-- by id alone would not do: a window in the past would make the planner walk
-- every newer row. (occurred_at, id) serves unfiltered pages, bare windows
-- and retention deletes.
CREATE INDEX audit_events_type ON audit_events(type, occurred_at, id);
CREATE INDEX audit_events_user_id ON audit_events(user_id, occurred_at, id);
CREATE INDEX audit_events_client_id ON audit_events(client_id, occurred_at, id);
CREATE INDEX audit_events_ip ON audit_events(ip, occurred_at, id);
CREATE INDEX audit_events_occurred_at ON audit_events(occurred_at, id);

-- +goose Down
DROP TABLE audit_events;
