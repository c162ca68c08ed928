-- Webhooks: partner endpoints, a delivery outbox (one row per event and endpoint, leased by the
-- sender), and a log of every attempt.
CREATE TABLE webhook_endpoints (
    id                 INTEGER PRIMARY KEY,
    partner_id         INTEGER NOT NULL REFERENCES partners(id),
    public_id          TEXT NOT NULL UNIQUE,
    url                TEXT NOT NULL,
    secret_nonce       TEXT NOT NULL,
    prev_secret_nonce  TEXT,
    prev_secret_until  REAL,
    events             TEXT NOT NULL DEFAULT '*',
    device_id          INTEGER REFERENCES devices(id),
    status             TEXT NOT NULL DEFAULT 'active',
    failing_since      REAL,
    disabled_reason    TEXT,
    created_at         REAL NOT NULL,
    deleted_at         REAL
);
CREATE INDEX webhook_endpoints_partner ON webhook_endpoints(partner_id, status);

CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY,
    endpoint_id      INTEGER NOT NULL REFERENCES webhook_endpoints(id),
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL NOT NULL,
    claimed_until    REAL NOT NULL DEFAULT 0,
    created_at       REAL NOT NULL,
    delivered_at     REAL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries(endpoint_id, id);

CREATE TABLE webhook_attempts (
    id           INTEGER PRIMARY KEY,
    delivery_id  INTEGER NOT NULL REFERENCES webhook_deliveries(id),
    at           REAL NOT NULL,
    status_code  INTEGER,
    latency_ms   REAL NOT NULL,
    error        TEXT,
    response     TEXT
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts(delivery_id, id);
