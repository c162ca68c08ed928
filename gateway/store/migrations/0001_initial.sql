-- Partners, end users and devices.
CREATE TABLE partners (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    email       TEXT NOT NULL,
    domain      TEXT NOT NULL DEFAULT '',
    key_hash    TEXT NOT NULL UNIQUE,
    status      TEXT NOT NULL DEFAULT 'active',
    created_at  REAL NOT NULL
);

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    partner_id  INTEGER NOT NULL REFERENCES partners(id),
    label       TEXT NOT NULL,
    email       TEXT NOT NULL DEFAULT '',
    token_nonce TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  REAL NOT NULL
);
CREATE INDEX users_partner ON users(partner_id);

CREATE TABLE devices (
    id               INTEGER PRIMARY KEY,
    partner_id       INTEGER NOT NULL REFERENCES partners(id),
    user_id          INTEGER NOT NULL REFERENCES users(id),
    session_id       TEXT NOT NULL UNIQUE,
    name             TEXT NOT NULL,
    token_nonce      TEXT NOT NULL,
    token_hash       TEXT UNIQUE,
    prev_token_hash  TEXT UNIQUE,
    prev_token_until REAL,
    status           TEXT NOT NULL,
    linked           INTEGER NOT NULL DEFAULT 0,
    phone            TEXT,
    jid              TEXT,
    status_since     REAL NOT NULL,
    last_error       TEXT,
    created_at       REAL NOT NULL,
    deleted_at       REAL
);
CREATE INDEX devices_partner ON devices(partner_id, user_id);
