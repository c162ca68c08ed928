-- Outgoing messages and their receipts; inbound messages.
CREATE TABLE messages (
    id          TEXT PRIMARY KEY,
    partner_id  INTEGER NOT NULL REFERENCES partners(id),
    device_id   INTEGER NOT NULL REFERENCES devices(id),
    recipient   TEXT NOT NULL,
    kind        TEXT NOT NULL DEFAULT 'text',
    body        TEXT NOT NULL,
    status      TEXT NOT NULL,
    wa_id       TEXT,
    error       TEXT,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE INDEX messages_partner ON messages(partner_id, created_at);
CREATE INDEX messages_device ON messages(device_id, created_at);
CREATE INDEX messages_wa_id ON messages(device_id, wa_id);

CREATE TABLE inbound (
    id           INTEGER PRIMARY KEY,
    device_id    INTEGER NOT NULL REFERENCES devices(id),
    wa_id        TEXT NOT NULL,
    sender       TEXT NOT NULL,
    chat         TEXT NOT NULL,
    kind         TEXT NOT NULL DEFAULT 'text',
    body         TEXT NOT NULL,
    is_group     INTEGER NOT NULL DEFAULT 0,
    received_at  REAL NOT NULL,
    UNIQUE (device_id, wa_id)
);
