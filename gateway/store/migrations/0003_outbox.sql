-- Durable delivery: messages are an outbox dispatched per device in FIFO order, with a status
-- timeline; idempotency keys replay the first answer.
ALTER TABLE messages ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN next_attempt_at REAL NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN expires_at REAL;
ALTER TABLE messages ADD COLUMN in_doubt INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_outbox ON messages(device_id, status, next_attempt_at);

CREATE TABLE message_events (
    id          INTEGER PRIMARY KEY,
    message_id  TEXT NOT NULL REFERENCES messages(id),
    status      TEXT NOT NULL,
    detail      TEXT,
    at          REAL NOT NULL
);
CREATE INDEX message_events_message ON message_events(message_id, id);

CREATE TABLE idempotency (
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    message_id  TEXT,
    created_at  REAL NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_created ON idempotency(created_at);
