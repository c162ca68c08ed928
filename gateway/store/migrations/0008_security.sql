-- Platform security: scoped API keys (the partner's original key becomes its "primary" key, with
-- every scope), partner status and per-partner rate limits set by the operator, and an audit log.

ALTER TABLE partners ADD COLUMN status_reason TEXT;
ALTER TABLE partners ADD COLUMN status_changed_at REAL;
ALTER TABLE partners ADD COLUMN api_rate_per_minute INTEGER;
ALTER TABLE partners ADD COLUMN send_rate_per_minute INTEGER;

-- scopes: "*" (every scope, now and later) or scope names separated by spaces.
CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    public_id    TEXT NOT NULL UNIQUE,
    partner_id   INTEGER NOT NULL REFERENCES partners(id),
    name         TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    hint         TEXT,
    scopes       TEXT NOT NULL,
    is_primary   INTEGER NOT NULL DEFAULT 0,
    created_at   REAL NOT NULL,
    expires_at   REAL,
    last_used_at REAL,
    revoked_at   REAL
);
CREATE INDEX api_keys_partner ON api_keys(partner_id, revoked_at);

INSERT INTO api_keys (public_id, partner_id, name, key_hash, scopes, is_primary, created_at)
SELECT 'key_' || lower(hex(randomblob(8))), id, 'primary', key_hash, '*', 1, created_at
FROM partners;

-- partners.key_hash stays the primary key: creating a partner (the API or `wagate partners
-- create`) and `wagate partners rotate-key` keep api_keys in step through these triggers.
CREATE TRIGGER partners_primary_key AFTER INSERT ON partners
BEGIN
    INSERT INTO api_keys (public_id, partner_id, name, key_hash, scopes, is_primary, created_at)
    VALUES ('key_' || lower(hex(randomblob(8))), NEW.id, 'primary', NEW.key_hash, '*', 1,
            NEW.created_at);
END;

CREATE TRIGGER partners_rotate_primary_key AFTER UPDATE OF key_hash ON partners
WHEN NEW.key_hash <> OLD.key_hash
BEGIN
    UPDATE api_keys SET revoked_at = (julianday('now') - 2440587.5) * 86400.0
    WHERE partner_id = NEW.id AND is_primary = 1 AND revoked_at IS NULL;
    INSERT INTO api_keys (public_id, partner_id, name, key_hash, scopes, is_primary, created_at)
    VALUES ('key_' || lower(hex(randomblob(8))), NEW.id, 'primary', NEW.key_hash, '*', 1,
            (julianday('now') - 2440587.5) * 86400.0);
END;

-- Security-relevant actions. partner_id is the partner concerned (NULL: the whole daemon);
-- actor is "key" (a partner API key: actor_id and actor_name name it), "operator" or "public"
-- (an unauthenticated request, e.g. a registration); detail is a JSON object.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at          REAL NOT NULL,
    partner_id  INTEGER REFERENCES partners(id),
    actor       TEXT NOT NULL,
    actor_id    TEXT,
    actor_name  TEXT,
    action      TEXT NOT NULL,
    target      TEXT,
    ip          TEXT,
    detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_partner ON audit_log(partner_id, id);
