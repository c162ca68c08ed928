-- Device link pages: expiring, revocable tokens a partner hands to an end user, who links the
-- device from a web page. Only each token's SHA-256 is kept.
CREATE TABLE link_tokens (
    id          INTEGER PRIMARY KEY,
    partner_id  INTEGER NOT NULL REFERENCES partners(id),
    device_id   INTEGER NOT NULL REFERENCES devices(id),
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL,
    revoked_at  REAL
);
CREATE INDEX link_tokens_device ON link_tokens(device_id, revoked_at);
